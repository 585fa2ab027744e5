use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::events::{PartnerEvents, event, event_id};
use adapters::queues::{Inbox, Poison, QueueError, WebhookPointer, batch_response};
use adapters::resources::INBOUND_EVENTS_QUEUE;
use adapters::store::attrs::rfc3339;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use adapters::store::{StoreError, TenantScope};
use adapters::telemetry::error_chain;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::meta::{self, WebhookItem};
use futures_util::future::join_all;
use serde_json::{Value, json};
use tracing::{info, instrument, warn};

pub struct Deps {
    messages: MessageStore,
    events: PartnerEvents,
    inbox: Inbox,
    /// For auto-assignment of new conversations and a B2B user's platform counters (both
    /// off when `None`).
    tenants: Option<TenantStore>,
    links: adapters::store::tenants::B2bLinks,
}

impl Deps {
    /// Everything the processor uses, as its `main` and the local stack build it.
    pub fn build(clients: &AwsClients, resources: &Resources) -> Self {
        Self::new(clients, resources).with_auto_assignment(TenantStore::new(
            clients.dynamodb.clone(),
            resources.tenants_table.clone(),
        ))
    }

    /// Without auto-assignment.
    pub fn new(clients: &AwsClients, resources: &Resources) -> Self {
        Self {
            messages: MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
            events: PartnerEvents::new(
                clients.sqs.clone(),
                resources.partner_events_queue_url.clone(),
            ),
            inbox: Inbox::new(clients.sqs.clone(), resources, &[INBOUND_EVENTS_QUEUE]),
            tenants: None,
            links: Default::default(),
        }
    }

    /// Assigns new conversations round-robin to online agents where the tenant's
    /// `autoAssignment` setting is on.
    pub fn with_auto_assignment(mut self, tenants: TenantStore) -> Self {
        self.tenants = Some(tenants);
        self
    }
}

/// Gives a new conversation to the next online agent. Idempotent: a redelivered event
/// finds the conversation assigned.
async fn auto_assign(
    deps: &Deps,
    scope: &TenantScope,
    conversation_id: &str,
) -> Result<(), StoreError> {
    let tenant = scope.tenant_id();
    let Some(tenants) = &deps.tenants else { return Ok(()) };
    // NOTE: read for each new conversation (not cached): new conversations are few, and
    // a tenant switching auto-assignment on expects the next one to follow it.
    let on = tenants.tenants().find(scope).await?.is_some_and(|t| t.settings.auto_assignment);
    if !on {
        return Ok(());
    }
    match tenants.users().next_online_agent(scope).await? {
        Some(agent) => {
            if deps
                .messages
                .conversations()
                .assign_if_unassigned(scope, conversation_id, agent.as_str())
                .await?
            {
                info!(tenant_id = %tenant, conversation_id, agent_id = %agent, "conversation assigned");
            }
        }
        None => {
            info!(tenant_id = %tenant, conversation_id, "no agent online; conversation left unassigned")
        }
    }
    Ok(())
}

#[derive(Debug, thiserror::Error)]
enum ProcessError {
    /// Retrying cannot help: the record goes to the dead-letter queue at once, with this
    /// reason, where an operator sees it (and can replay it once the cause is fixed).
    #[error(transparent)]
    Poison(#[from] Poison),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

impl ProcessError {
    fn poison(&self) -> Option<Poison> {
        match self {
            Self::Poison(p) => Some(p.clone()),
            Self::Store(e) if !e.retryable() => Some(Poison(error_chain(e))),
            _ => None,
        }
    }
}

/// Processes every record concurrently and reports the failed ones, so that only they are
/// delivered again; poison goes to the dead-letter queue at once.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let outcomes = join_all(event.records.iter().map(|record| process(deps, record))).await;
    let mut failed = Vec::new();
    for (record, outcome) in event.records.iter().zip(outcomes) {
        if let Err(e) = outcome
            && deps.inbox.failed(record, e.poison(), &e).await
        {
            failed.push(record);
        }
    }
    batch_response(failed)
}

#[instrument(skip_all, fields(message_id = record.message_id.as_deref().unwrap_or_default()))]
async fn process(deps: &Deps, record: &SqsMessage) -> Result<(), ProcessError> {
    let pointer: WebhookPointer = Inbox::parse(record)?;
    let scope = TenantScope::of_record(&pointer);
    let tenant = scope.tenant_id().clone();
    let Some(raw) = deps.messages.raw_events().get(&scope, &pointer.event_id).await? else {
        warn!(tenant_id = %tenant, event_id = pointer.event_id, "raw event no longer stored; nothing to apply");
        return Ok(());
    };
    let payload: Value = serde_json::from_slice(&raw)
        .map_err(|e| Poison(format!("stored body is not JSON: {e}")))?;
    let items = meta::parse(&payload).map_err(|e| Poison(e.to_string()))?;

    let mut events = Vec::new();
    for (index, item) in items.into_iter().enumerate() {
        match item {
            WebhookItem::Message(message) => {
                let applied = deps.messages.inbound().apply(&scope, &message).await?;
                if applied.new_message
                    && let Some(tenants) = &deps.tenants
                {
                    // Beside the tenant's usage, at most once: losing it loses a count.
                    let counted = deps
                        .links
                        .count_messages(tenants, &scope, &message.wamid, 1, message.timestamp)
                        .await;
                    if let Err(e) = counted {
                        warn!(tenant_id = %tenant, error = %e, "message not counted for its platform");
                    }
                }
                if applied.new_conversation {
                    auto_assign(deps, &scope, &applied.conversation_id).await?;
                    events.push(event(
                        event_id(&["conversation.created", tenant.as_str(), &applied.conversation_id]),
                        "conversation.created",
                        &tenant,
                        json!({ "conversationId": applied.conversation_id, "contactWaId": format!("+{}", message.from) }),
                    ));
                }
                events.push(event(
                    event_id(&["message.received", tenant.as_str(), &message.wamid]),
                    "message.received",
                    &tenant,
                    json!({
                        "messageId": applied.message_id,
                        "conversationId": applied.conversation_id,
                        "wamid": message.wamid,
                        "from": format!("+{}", message.from),
                        "type": message.kind,
                        "timestamp": rfc3339(message.timestamp),
                        "preview": message.preview,
                    }),
                ));
            }
            WebhookItem::Status(status) => {
                let applied = deps.messages.deliveries().apply(&scope, &status).await?;
                events.push(event(
                    event_id(&["message.status", tenant.as_str(), &status.wamid, status.status.as_str()]),
                    "message.status",
                    &tenant,
                    json!({
                        "messageId": applied.message_id,
                        "wamid": status.wamid,
                        "status": status.status,
                        "timestamp": rfc3339(status.timestamp),
                        "error": status.error.as_ref().map(|(code, title)| json!({ "code": code, "title": title })),
                    }),
                ));
            }
            WebhookItem::Template(template) => {
                deps.messages.templates().apply_review(&scope, &template).await?;
                let language = template.language.clone().unwrap_or_default();
                events.push(event(
                    event_id(&["template.status", tenant.as_str(), &template.name, &language, &template.event]),
                    "template.status",
                    &tenant,
                    json!({ "name": template.name, "language": language, "event": template.event, "reason": template.reason }),
                ));
            }
            WebhookItem::Other { field, raw } => {
                deps.messages
                    .inbound()
                    .put_channel_event(&scope, &pointer.event_id, index, &field, &raw)
                    .await?;
            }
        }
    }
    deps.events.emit(&events).await?;
    deps.messages.raw_events().mark(&scope, &pointer.event_id, "processed").await?;
    info!(tenant_id = %tenant, event_id = pointer.event_id, partner_events = events.len(), "webhook applied");
    Ok(())
}
