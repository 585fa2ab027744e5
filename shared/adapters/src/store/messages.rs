//! The `messages` table: raw webhook events, conversations, messages, delivery states,
//! contacts (the 24-hour window) and daily usage, all under `TENANT#<tid>`.
//!
//! | item | sk | notes |
//! |---|---|---|
//! | raw webhook event | `RAW#<event id>` | body as received; see `store::raw_events` |
//! | Meta message id | `WAMID#<wamid>` | dedupe key of inbound messages; delivery state of outbound ones, with each status's raw JSON (pricing, conversation) |
//! | message | `MSG#<id>` | gsi2: `CONV#<tid>#<conversation>` / `<timestamp>#<id>` |
//! | contact | `CONTACT#<wa id>` | its conversation, last inbound time |
//! | conversation | `CONV#<id>` | gsi1: `CONVS#<tid>` / `<last activity>#<id>` |
//! | usage | `USAGE#<yyyy-mm-dd>#<shard>` | counters; a day's rows add up (shards spread hot writes; an unsharded `USAGE#<yyyy-mm-dd>` of earlier versions is added in too) |
//! | template | `TEMPLATE#<name>#<language>` | status from Meta |
//! | channel event | `EVENT#<event id>#<n>` | quality, account and other updates, raw |
//!
//! Every write the webhook processor makes is idempotent: a redelivered event finds its
//! messages already there (the wamid item is created in the same transaction as the
//! message) and its statuses already counted.

// NOTE: over 400 lines: until the repositories are split per aggregate (issue 10, still open).

use super::attrs::{Item, get_s, key, n, now_secs, opt_bool, opt_n, opt_s, rfc3339, s};
use super::page::{self, Page};
use super::table::Table;
use super::{StoreError, TenantScope, condition_failed, dynamo_err};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, Update};
use domain::ids::TenantId;
use domain::meta::{DeliveryStatus, InboundMessage, StatusUpdate, TemplateStatus};
use serde::Serialize;

pub use super::raw_events::RAW_EVENT_TTL_SECS;
/// The customer service window: free-form messages may be sent this long after the
/// customer's last message.
pub const SERVICE_WINDOW_SECS: i64 = 24 * 3600;

#[derive(Clone, Debug)]
pub struct MessageStore {
    pub(super) table: Table,
}

pub(super) fn tenant_pk(tenant: &TenantId) -> String {
    format!("TENANT#{tenant}")
}

/// What applying an inbound message did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub message_id: String,
    pub conversation_id: String,
    /// False when the message was already stored (a redelivery).
    pub new_message: bool,
    pub new_conversation: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConversationView {
    pub id: String,
    pub contact_wa_id: String,
    pub contact_name: Option<String>,
    pub status: String,
    pub assigned_agent_id: Option<String>,
    pub created_at: String,
    pub last_message_at: String,
    pub last_message_preview: Option<String>,
    /// When the 24-hour customer service window closes (RFC 3339).
    pub service_window_ends_at: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MessageView {
    pub id: String,
    pub conversation_id: String,
    pub direction: String,
    pub from: Option<String>,
    pub to: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    pub wamid: Option<String>,
    pub timestamp: String,
    pub preview: Option<String>,
    pub status: String,
    pub status_history: Vec<StatusEntry>,
    pub error: Option<serde_json::Value>,
    /// The message as Meta sent it (inbound) or as it was sent (outbound).
    pub content: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct TemplateView {
    pub name: String,
    pub language: String,
    pub category: String,
    /// Meta's review state: PENDING, APPROVED, REJECTED, PAUSED, DISABLED, …
    pub status: String,
    pub reason: Option<String>,
    pub components: serde_json::Value,
    #[serde(skip)]
    pub meta_id: Option<String>,
    pub updated_at: String,
}

fn template_from(item: &Item) -> Result<TemplateView, StoreError> {
    Ok(TemplateView {
        name: get_s(item, "name")?.to_owned(),
        language: get_s(item, "language")?.to_owned(),
        category: opt_s(item, "category").unwrap_or("UNKNOWN").to_owned(),
        status: opt_s(item, "status").unwrap_or("PENDING").to_owned(),
        reason: opt_s(item, "reason").filter(|r| *r != "NONE").map(str::to_owned),
        components: opt_s(item, "components")
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or(serde_json::json!([])),
        meta_id: opt_s(item, "metaId").map(str::to_owned),
        updated_at: rfc3339(opt_n(item, "updatedAt").unwrap_or_default()),
    })
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StatusEntry {
    pub status: String,
    pub timestamp: String,
}

fn conversation_from(item: &Item) -> Result<ConversationView, StoreError> {
    let last_inbound = opt_n(item, "lastInboundAt");
    Ok(ConversationView {
        id: get_s(item, "conversationId")?.to_owned(),
        contact_wa_id: get_s(item, "contactWaId")?.to_owned(),
        contact_name: opt_s(item, "contactName").map(str::to_owned),
        status: opt_s(item, "status").unwrap_or("open").to_owned(),
        assigned_agent_id: opt_s(item, "assignedAgentId").map(str::to_owned),
        created_at: rfc3339(opt_n(item, "createdAt").unwrap_or_default()),
        last_message_at: rfc3339(opt_n(item, "lastMessageAt").unwrap_or_default()),
        last_message_preview: opt_s(item, "lastMessagePreview").map(str::to_owned),
        service_window_ends_at: last_inbound.map(|t| rfc3339(t + SERVICE_WINDOW_SECS)),
    })
}

pub(super) const STATUSES: [DeliveryStatus; 4] =
    [DeliveryStatus::Sent, DeliveryStatus::Delivered, DeliveryStatus::Read, DeliveryStatus::Failed];

fn history_from(item: &Item) -> Vec<StatusEntry> {
    let mut history: Vec<(i64, &str)> = STATUSES
        .iter()
        .filter_map(|st| opt_n(item, &format!("at_{}", st.as_str())).map(|t| (t, st.as_str())))
        .collect();
    history.sort_by_key(|(t, st)| (*t, DeliveryStatus::parse(st).map(DeliveryStatus::rank)));
    history
        .into_iter()
        .map(|(t, st)| StatusEntry { status: st.to_owned(), timestamp: rfc3339(t) })
        .collect()
}

fn message_from(item: &Item, delivery: Option<&Item>) -> Result<MessageView, StoreError> {
    let direction = get_s(item, "direction")?.to_owned();
    let error_of = |i: &Item| opt_s(i, "error").and_then(|e| serde_json::from_str(e).ok());
    let (status, mut history, error) = match delivery {
        Some(d) => (opt_s(d, "status").unwrap_or("sent").to_owned(), history_from(d), error_of(d)),
        None => (
            opt_s(item, "status").unwrap_or("received").to_owned(),
            history_from(item),
            error_of(item),
        ),
    };
    if direction == "outbound" {
        // Accepted and queued first: the start of every outbound message's history.
        let queued = rfc3339(opt_n(item, "timestamp").unwrap_or_default());
        history.insert(0, StatusEntry { status: "queued".into(), timestamp: queued });
    }
    Ok(MessageView {
        id: get_s(item, "messageId")?.to_owned(),
        conversation_id: get_s(item, "conversationId")?.to_owned(),
        from: opt_s(item, "from").map(str::to_owned),
        to: opt_s(item, "to").map(str::to_owned),
        kind: opt_s(item, "kind").unwrap_or("unknown").to_owned(),
        wamid: opt_s(item, "wamid").map(str::to_owned),
        timestamp: rfc3339(opt_n(item, "timestamp").unwrap_or_default()),
        preview: opt_s(item, "preview").map(str::to_owned),
        content: opt_s(item, "content")
            .and_then(|c| serde_json::from_str(c).ok())
            .unwrap_or_default(),
        direction,
        status,
        status_history: history,
        error,
    })
}

/// Usage counters written outside the inbound transaction are spread over shards, so
/// that a busy tenant's sends and statuses do not all write one item.
pub(super) const USAGE_SHARDS: u32 = 8;

pub(super) fn usage_sk(secs: i64, spread_by: &str) -> String {
    let shard = spread_by.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("USAGE#{}#{}", day(secs), shard % USAGE_SHARDS)
}

pub(super) fn day(secs: i64) -> String {
    rfc3339(secs).chars().take(10).collect()
}

/// `00001751142888`: timestamps that sort as strings.
pub(super) fn sortable(secs: i64) -> String {
    format!("{:014}", secs.max(0))
}

/// What [`MessageStore::apply_status`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusApplied {
    /// The first time this status was recorded for the message.
    pub new: bool,
    /// Our id of the message, once the sender has recorded its wamid.
    pub message_id: Option<String>,
}

impl MessageStore {
    /// The messages table of a deployment.
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self::new(clients.dynamodb.clone(), resources.messages_table.clone())
    }

    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Self { table: Table::new(db, table) }
    }

    /// One put of a transaction, on this table, with an optional condition.
    /// A query for the tenant's items whose sort keys lie between `from` and `to`.
    pub(super) fn sk_between(
        &self,
        tenant: &TenantId,
        from: &str,
        to: &str,
    ) -> aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder {
        self.table
            .client()
            .query()
            .table_name(self.table.name())
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(tenant_pk(tenant)))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
    }

    // ------------------------------------------------------------------ inbound messages

    /// Stores an inbound message once, with its conversation (created on the contact's
    /// first message), the contact's service window and the day's usage, in one
    /// transaction keyed on the wamid.
    pub async fn apply_inbound(
        &self,
        scope: &TenantScope,
        message: &InboundMessage,
    ) -> Result<Applied, StoreError> {
        let tenant = scope.tenant_id();
        let pk = tenant_pk(tenant);
        // Concurrent first messages of one new contact race for the contact item; the
        // loser reads the winner's conversation and tries again.
        for attempt in 0..10u64 {
            if attempt > 0 {
                // Jittered, growing pause: messages of one customer often come in bursts.
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 40;
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt + jitter)).await;
            }
            // NOTE: a status for a wamid we never sent leaves an item without a message id
            // (published sample payloads reuse ids); only a stored message deduplicates.
            let existing = self.table.get(key(&pk, format!("WAMID#{}", message.wamid))).await?;
            if let Some(existing) = existing.filter(|e| e.contains_key("messageId")) {
                return Ok(Applied {
                    message_id: get_s(&existing, "messageId")?.to_owned(),
                    conversation_id: get_s(&existing, "conversationId")?.to_owned(),
                    new_message: false,
                    new_conversation: opt_bool(&existing, "openedConversation").unwrap_or(false),
                });
            }
            let contact = self.table.get(key(&pk, format!("CONTACT#{}", message.from))).await?;
            let (conversation_id, new_conversation) = match &contact {
                Some(c) => (get_s(c, "conversationId")?.to_owned(), false),
                None => (format!("conv_{}", uuid::Uuid::new_v4().simple()), true),
            };
            let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let seen = contact.as_ref().and_then(|c| opt_n(c, "lastInboundAt"));
            match self
                .inbound_transaction(
                    tenant,
                    message,
                    &conversation_id,
                    &message_id,
                    contact.is_some(),
                    seen,
                )
                .await
            {
                Ok(()) => {
                    return Ok(Applied {
                        message_id,
                        conversation_id,
                        new_message: true,
                        new_conversation,
                    });
                }
                Err(TxError::Conflict) => continue,
                Err(TxError::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn inbound_transaction(
        &self,
        tenant: &TenantId,
        message: &InboundMessage,
        conversation_id: &str,
        message_id: &str,
        known_contact: bool,
        seen_last_inbound: Option<i64>,
    ) -> Result<(), TxError> {
        let new_contact = !known_contact;
        let pk = tenant_pk(tenant);
        let ts = if message.timestamp > 0 { message.timestamp } else { now_secs() };
        let preview = message.preview.clone().unwrap_or_else(|| format!("[{}]", message.kind));
        // An update, not a put: it completes an item that a status may have started, and
        // only a stored message id makes the wamid taken.
        let wamid = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, format!("WAMID#{}", message.wamid))))
            .update_expression(
                "SET direction = :inbound, messageId = :message, conversationId = :conversation, \
                 openedConversation = :opened",
            )
            .condition_expression("attribute_not_exists(messageId)")
            .expression_attribute_values(":inbound", s("inbound"))
            .expression_attribute_values(":message", s(message_id))
            .expression_attribute_values(":conversation", s(conversation_id))
            .expression_attribute_values(":opened", AttributeValue::Bool(new_contact));

        let mut item = key(&pk, format!("MSG#{message_id}"));
        for (k, v) in [
            ("messageId", s(message_id)),
            ("conversationId", s(conversation_id)),
            ("direction", s("inbound")),
            ("from", s(format!("+{}", message.from))),
            ("kind", s(&message.kind)),
            ("wamid", s(&message.wamid)),
            ("timestamp", n(ts)),
            ("preview", s(&preview)),
            ("status", s("received")),
            ("content", s(message.raw.to_string())),
            ("gsi2pk", s(format!("CONV#{tenant}#{conversation_id}"))),
            ("gsi2sk", s(format!("{}#{message_id}", sortable(ts)))),
        ] {
            item.insert(k.into(), v);
        }

        // NOTE: messages of one contact may be applied out of order and concurrently. The
        // contact's last inbound time only grows, and is written on the condition that it is
        // still what was read; a concurrent writer makes this transaction retry.
        let newest = seen_last_inbound.map_or(ts, |seen| seen.max(ts));
        let is_latest = seen_last_inbound.is_none_or(|seen| ts >= seen);
        let contact_key = key(&pk, format!("CONTACT#{}", message.from));
        let contact = match seen_last_inbound {
            _ if new_contact => {
                let mut c = contact_key;
                c.insert("conversationId".into(), s(conversation_id));
                c.insert("lastInboundAt".into(), n(ts));
                self.table.put_in(c, Some("attribute_not_exists(pk)"))?
            }
            Some(seen) => self.table.update_in(
                Update::builder()
                    .table_name(self.table.name())
                    .set_key(Some(contact_key))
                    .update_expression("SET lastInboundAt = :newest")
                    .condition_expression("lastInboundAt = :seen")
                    .expression_attribute_values(":newest", n(newest))
                    .expression_attribute_values(":seen", n(seen)),
            )?,
            None => self.table.update_in(
                Update::builder()
                    .table_name(self.table.name())
                    .set_key(Some(contact_key))
                    .update_expression("SET lastInboundAt = :newest")
                    .condition_expression(
                        "attribute_exists(pk) AND attribute_not_exists(lastInboundAt)",
                    )
                    .expression_attribute_values(":newest", n(newest)),
            )?,
        };

        let mut sets = vec![
            "conversationId = :id",
            "contactWaId = :wa",
            "#status = :open",
            "lastMessageAt = :newest",
            "lastInboundAt = :newest",
            "createdAt = if_not_exists(createdAt, :ts)",
            "gsi1pk = :list",
            "gsi1sk = :order",
        ];
        let mut conversation = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, format!("CONV#{conversation_id}"))))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":id", s(conversation_id))
            .expression_attribute_values(":wa", s(format!("+{}", message.from)))
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":ts", n(ts))
            .expression_attribute_values(":newest", n(newest))
            .expression_attribute_values(":list", s(format!("CONVS#{tenant}")))
            .expression_attribute_values(
                ":order",
                s(format!("{}#{conversation_id}", sortable(newest))),
            );
        if is_latest {
            sets.push("lastMessagePreview = :preview");
            conversation = conversation.expression_attribute_values(":preview", s(&preview));
        }
        if let Some(name) = &message.profile_name {
            sets.push("contactName = :name");
            conversation = conversation.expression_attribute_values(":name", s(name));
        }
        let conversation = conversation.update_expression(format!("SET {}", sets.join(", ")));

        let usage = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, usage_sk(ts, &message.wamid))))
            .update_expression("ADD inbound :one, conversationsOpened :opened")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":opened", n(i64::from(new_contact)));

        let items = vec![
            self.table.update_in(wamid)?,
            self.table.put_in(item, None)?,
            contact,
            self.table.update_in(conversation)?,
            self.table.update_in(usage)?,
        ];
        match self
            .table
            .client()
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => {
                    Err(TxError::Conflict)
                }
                _ => Err(TxError::Store(dynamo_err(e))),
            },
        }
    }

    // ------------------------------------------------------------------ delivery states

    /// Records a status of an outbound message. Each status is recorded once (with its
    /// time) whatever the order; the current state only moves forward. Returns whether
    /// this status was new (so that it is counted once), and our id of the message when
    /// the sender has recorded its wamid.
    pub async fn apply_status(
        &self,
        scope: &TenantScope,
        update: &StatusUpdate,
    ) -> Result<StatusApplied, StoreError> {
        let tenant = scope.tenant_id();
        let pk = tenant_pk(tenant);
        let status = update.status.as_str();
        let ts = if update.timestamp > 0 { update.timestamp } else { now_secs() };
        let recorded = self
            .table.client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, format!("WAMID#{}", update.wamid))))
            .update_expression(format!(
                "SET at_{status} = if_not_exists(at_{status}, :ts), raw_{status} = if_not_exists(raw_{status}, :raw), \
                 direction = if_not_exists(direction, :out)"
            ))
            .expression_attribute_values(":ts", n(ts))
            .expression_attribute_values(":raw", s(update.raw.to_string()))
            .expression_attribute_values(":out", s("outbound"))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(dynamo_err)?;
        let old = recorded.attributes();
        let new = old.is_none_or(|old| !old.contains_key(&format!("at_{status}")));
        let message_id = old.and_then(|old| opt_s(old, "messageId")).map(str::to_owned);

        let mut forward = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, format!("WAMID#{}", update.wamid))))
            .update_expression("SET #status = :status, statusRank = :rank")
            .condition_expression("attribute_not_exists(statusRank) OR statusRank < :rank")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":rank", n(update.status.rank()));
        if let Some((code, title)) = &update.error {
            let error = serde_json::json!({ "code": code, "title": title }).to_string();
            forward = forward
                .update_expression("SET #status = :status, statusRank = :rank, #error = :error")
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", s(error));
        }
        match forward.send().await {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => {}
            Err(e) => return Err(dynamo_err(e)),
        }
        if new && update.status != DeliveryStatus::Sent {
            self.table
                .client()
                .update_item()
                .table_name(self.table.name())
                .set_key(Some(key(&pk, usage_sk(ts, &update.wamid))))
                .update_expression("ADD #counter :one")
                .expression_attribute_names("#counter", status)
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map_err(dynamo_err)?;
        }
        Ok(StatusApplied { new, message_id })
    }

    pub async fn delivery_state(
        &self,
        scope: &TenantScope,
        wamid: &str,
    ) -> Result<Option<(String, Vec<StatusEntry>)>, StoreError> {
        let tenant = scope.tenant_id();
        let item = self.table.get(key(tenant_pk(tenant), format!("WAMID#{wamid}"))).await?;
        Ok(item.map(|i| (opt_s(&i, "status").unwrap_or("queued").to_owned(), history_from(&i))))
    }

    // ------------------------------------------------------------------ templates, other events

    /// Records Meta's review outcome of a template; what was stored when it was created
    /// (category, components) stays.
    pub async fn apply_template_status(
        &self,
        scope: &TenantScope,
        template: &TemplateStatus,
    ) -> Result<(), StoreError> {
        let tenant = scope.tenant_id();
        let language = template.language.as_deref().unwrap_or("-");
        self.table
            .client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(tenant_pk(tenant), format!("TEMPLATE#{}#{language}", template.name))))
            .update_expression(
                "SET #name = :name, #language = :language, #status = :status, reason = :reason, \
                 #raw = :raw, updatedAt = :now",
            )
            .expression_attribute_names("#name", "name")
            .expression_attribute_names("#language", "language")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#raw", "raw")
            .expression_attribute_values(":name", s(&template.name))
            .expression_attribute_values(":language", s(language))
            .expression_attribute_values(":status", s(&template.event))
            .expression_attribute_values(":reason", s(template.reason.as_deref().unwrap_or("NONE")))
            .expression_attribute_values(":raw", s(template.raw.to_string()))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    /// A template submitted to Meta, before its review.
    pub async fn create_template(
        &self,
        scope: &TenantScope,
        template: &TemplateView,
    ) -> Result<bool, StoreError> {
        let mut item = key(scope.pk(), format!("TEMPLATE#{}#{}", template.name, template.language));
        item.insert("name".into(), s(&template.name));
        item.insert("language".into(), s(&template.language));
        item.insert("category".into(), s(&template.category));
        item.insert("status".into(), s(&template.status));
        item.insert("components".into(), s(template.components.to_string()));
        if let Some(id) = &template.meta_id {
            item.insert("metaId".into(), s(id));
        }
        item.insert("updatedAt".into(), n(now_secs()));
        let out = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Every template of the tenant (a WhatsApp account holds at most a few hundred).
    pub async fn templates(&self, scope: &TenantScope) -> Result<Vec<TemplateView>, StoreError> {
        let query = self
            .table
            .client()
            .query()
            .table_name(self.table.name())
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(scope.pk()))
            .expression_attribute_values(":prefix", s("TEMPLATE#"));
        self.table.query_all(query).await?.iter().map(template_from).collect()
    }

    /// Deletes every language of a template; false when there was none.
    pub async fn delete_template(
        &self,
        scope: &TenantScope,
        name: &str,
    ) -> Result<bool, StoreError> {
        let found: Vec<TemplateView> =
            self.templates(scope).await?.into_iter().filter(|t| t.name == name).collect();
        for template in &found {
            self.table
                .client()
                .delete_item()
                .table_name(self.table.name())
                .set_key(Some(key(
                    scope.pk(),
                    format!("TEMPLATE#{}#{}", template.name, template.language),
                )))
                .send()
                .await
                .map_err(dynamo_err)?;
        }
        Ok(!found.is_empty())
    }

    pub async fn template_status(
        &self,
        scope: &TenantScope,
        name: &str,
        language: &str,
    ) -> Result<Option<String>, StoreError> {
        let tenant = scope.tenant_id();
        let item =
            self.table.get(key(tenant_pk(tenant), format!("TEMPLATE#{name}#{language}"))).await?;
        Ok(item.as_ref().and_then(|i| opt_s(i, "status")).map(str::to_owned))
    }

    /// Keeps an event this code does not act on (quality and account updates, errors,
    /// unknown fields), raw, under the event it came in.
    pub async fn put_channel_event(
        &self,
        scope: &TenantScope,
        event_id: &str,
        index: usize,
        field: &str,
        raw: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let tenant = scope.tenant_id();
        let mut item = key(tenant_pk(tenant), format!("EVENT#{event_id}#{index:04}"));
        item.insert("field".into(), s(field));
        item.insert("raw".into(), s(raw.to_string()));
        item.insert("receivedAt".into(), n(now_secs()));
        self.table.put(item).await?;
        Ok(())
    }

    // ------------------------------------------------------------------ reads (tenant-scoped)

    pub async fn conversation(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<ConversationView>, StoreError> {
        let item = self.table.get(key(scope.pk(), format!("CONV#{id}"))).await?;
        item.as_ref().map(conversation_from).transpose()
    }

    /// Changes a conversation's status and assignee (`Some(None)` unassigns); `None` when
    /// the tenant has no such conversation.
    pub async fn update_conversation(
        &self,
        scope: &TenantScope,
        id: &str,
        status: Option<&str>,
        assignee: Option<Option<&str>>,
    ) -> Result<Option<ConversationView>, StoreError> {
        let mut sets = vec!["updatedAt = :now"];
        let mut removes = Vec::new();
        let mut update = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(scope.pk(), format!("CONV#{id}"))))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllNew);
        if let Some(status) = status {
            sets.push("#status = :status");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status));
        }
        match assignee {
            Some(Some(agent)) => {
                sets.push("assignedAgentId = :agent");
                update = update.expression_attribute_values(":agent", s(agent));
            }
            Some(None) => removes.push("assignedAgentId"),
            None => {}
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression).send().await {
            Ok(out) => out.attributes.as_ref().map(conversation_from).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Auto-assignment: gives a new conversation to `agent` unless someone has it already.
    pub async fn assign_if_unassigned(
        &self,
        scope: &TenantScope,
        conversation_id: &str,
        agent: &str,
    ) -> Result<bool, StoreError> {
        let tenant = scope.tenant_id();
        let out = self
            .table
            .client()
            .update_item()
            .table_name(self.table.name())
            .set_key(Some(key(tenant_pk(tenant), format!("CONV#{conversation_id}"))))
            .update_expression("SET assignedAgentId = :agent")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(assignedAgentId)")
            .expression_attribute_values(":agent", s(agent))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Conversations by latest activity, newest first, optionally filtered.
    pub async fn conversations(
        &self,
        scope: &TenantScope,
        status: Option<&str>,
        assigned_agent_id: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationView>, StoreError> {
        let list = format!("CONVS#{}", scope.tenant_id());
        let start = cursor
            .map(|c| page::decode_fixed(c, &[("pk", &scope.pk()), ("gsi1pk", &list)]))
            .transpose()?;
        let mut query = self
            .table
            .client()
            .query()
            .table_name(self.table.name())
            .index_name("gsi1")
            .key_condition_expression("gsi1pk = :list")
            .expression_attribute_values(":list", s(&list))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start);
        let mut filters = Vec::new();
        if let Some(status) = status {
            filters.push("#status = :status");
            query = query
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status));
        }
        if let Some(agent) = assigned_agent_id {
            filters.push("assignedAgentId = :agent");
            query = query.expression_attribute_values(":agent", s(agent));
        }
        if !filters.is_empty() {
            query = query.filter_expression(filters.join(" AND "));
        }
        let out = query.send().await.map_err(dynamo_err)?;
        let items = out.items().iter().map(conversation_from).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor: page::encode(out.last_evaluated_key()) })
    }

    /// A conversation's messages, newest first.
    pub async fn conversation_messages(
        &self,
        scope: &TenantScope,
        conversation_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<MessageView>, StoreError> {
        let list = format!("CONV#{}#{conversation_id}", scope.tenant_id());
        let start = cursor
            .map(|c| page::decode_fixed(c, &[("pk", &scope.pk()), ("gsi2pk", &list)]))
            .transpose()?;
        let out = self
            .table
            .client()
            .query()
            .table_name(self.table.name())
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :list")
            .expression_attribute_values(":list", s(&list))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_err)?;
        let mut items = Vec::new();
        for item in out.items() {
            items.push(self.with_delivery(scope, item).await?);
        }
        Ok(Page { items, next_cursor: page::encode(out.last_evaluated_key()) })
    }

    pub async fn message(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let Some(item) = self.table.get(key(scope.pk(), format!("MSG#{id}"))).await? else {
            return Ok(None);
        };
        Ok(Some(self.with_delivery(scope, &item).await?))
    }

    async fn with_delivery(
        &self,
        scope: &TenantScope,
        item: &Item,
    ) -> Result<MessageView, StoreError> {
        let delivery = match (opt_s(item, "direction"), opt_s(item, "wamid")) {
            (Some("outbound"), Some(wamid)) => {
                self.table.get(key(scope.pk(), format!("WAMID#{wamid}"))).await?
            }
            _ => None,
        };
        message_from(item, delivery.as_ref())
    }

    /// Daily usage counters from `from` to `to` (`yyyy-mm-dd`, inclusive), each day's
    /// shards added up.
    pub async fn usage(
        &self,
        scope: &TenantScope,
        from: &str,
        to: &str,
    ) -> Result<
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
        StoreError,
    > {
        let tenant = scope.tenant_id();
        let mut days: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> =
            std::collections::BTreeMap::new();
        let query = self.sk_between(tenant, &format!("USAGE#{from}"), &format!("USAGE#{to}#~"));
        for item in self.table.query_all(query).await? {
            let Some(date) = opt_s(&item, "sk")
                .and_then(|sk| sk.strip_prefix("USAGE#"))
                .map(|d| d.chars().take(10).collect::<String>())
            else {
                continue;
            };
            let counters = days.entry(date).or_default();
            for (name, value) in &item {
                if let Some(v) = value.as_n().ok().and_then(|v| v.parse::<i64>().ok()) {
                    *counters.entry(name.clone()).or_default() += v;
                }
            }
        }
        Ok(days)
    }
}

pub(super) enum TxError {
    Conflict,
    Store(StoreError),
}

impl From<StoreError> for TxError {
    fn from(e: StoreError) -> Self {
        TxError::Store(e)
    }
}
