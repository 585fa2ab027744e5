//! The `messages` table: raw webhook events, conversations, messages, delivery states,
//! contacts (the 24-hour window) and daily usage, all under the tenant's partitions.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | raw webhook event | shard of the event id | `RAW#<event id>` | body as received; see `store::raw_events` |
//! | Meta message id | shard of the wamid | `WAMID#<wamid>` | dedupe key of inbound messages; delivery state of outbound ones, with each status's raw JSON (pricing, conversation) |
//! | message | shard of the message id | `MSG#<id>` | gsi2: `CONV#<tid>#<conversation>` / `<timestamp>#<id>` |
//! | client message id | shard of the client id | `CLIENT#<id>` | names the message it created |
//! | usage | shard of what is counted | `USAGE#<yyyy-mm-dd>` | counters; a day's usage adds up every shard |
//! | contact | `TENANT#<tid>` | `CONTACT#<wa id>` | its conversation (written once; the service window is the conversation's `lastInboundAt`) |
//! | conversation | `TENANT#<tid>` | `CONV#<id>` | gsi1: `CONVS#<tid>#<0-7>` / `<last activity>#<id>` |
//! | template | `TENANT#<tid>` | `TEMPLATE#<name>#<language>` | status from Meta |
//! | channel event | `TENANT#<tid>` | `EVENT#<event id>#<n>` | quality, account and other updates, raw |
//! | webhook delivery, endpoint slot | see `webhook_deliveries` | | |
//!
//! A shard is `TENANT#<tid>#<nn>` ([`TenantScope::shard_pk`]).
//!
//! Every write the webhook processor makes is idempotent: a redelivered event finds its
//! messages already there (the wamid item is created in the same transaction as the
//! message) and its statuses already counted.

use super::attrs::{Item, get_s, key, opt_n, opt_s, rfc3339};
use super::table::Table;
use super::{StoreError, TenantScope, shard_of};
use aws_sdk_dynamodb::Client;
use domain::meta::DeliveryStatus;
use serde::Serialize;

mod conversations;
mod deliveries;
mod inbound;
pub mod outbox;
mod raw_events;
mod templates;
mod usage;
mod webhook_deliveries;

pub use conversations::Conversations;
pub use deliveries::Deliveries;
pub use inbound::Inbound;
pub use outbox::Outbox;
pub use raw_events::{RAW_EVENT_TTL_SECS, RawEvents};
pub use templates::Templates;
pub use usage::Usage;
pub use webhook_deliveries::{
    AttemptRecord, DELIVERY_TTL_SECS, Delivery, Outcome, WebhookDeliveries,
};
/// The customer service window: free-form messages may be sent this long after the
/// customer's last message.
pub const SERVICE_WINDOW_SECS: i64 = 24 * 3600;

#[derive(Clone, Debug)]
pub struct MessageStore {
    pub(super) table: Table,
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
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

#[derive(Debug, Clone, Serialize, PartialEq, Eq, utoipa::ToSchema)]
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

/// The key of a message (`MSG#`), in the shard of its id.
pub(super) fn message_key(scope: &TenantScope, message_id: &str) -> Item {
    key(scope.shard_pk(message_id), format!("MSG#{message_id}"))
}

/// The key of a Meta message id (`WAMID#`), in the shard of the wamid.
pub(super) fn wamid_key(scope: &TenantScope, wamid: &str) -> Item {
    key(scope.shard_pk(wamid), format!("WAMID#{wamid}"))
}

/// The key of a client message id (`CLIENT#`), in the shard of that id.
pub(super) fn client_key(scope: &TenantScope, client_message_id: &str) -> Item {
    key(scope.shard_pk(client_message_id), format!("CLIENT#{client_message_id}"))
}

/// The key of a usage counter: the day's counter in the shard of the message or wamid
/// counted (`spread_by`), so that a busy tenant's counts spread over its partitions. A
/// day's usage adds up its counters in every shard.
pub(super) fn usage_key(scope: &TenantScope, secs: i64, spread_by: &str) -> Item {
    key(scope.shard_pk(spread_by), format!("USAGE#{}", day(secs)))
}

/// How many index partitions a tenant's conversation list is spread over.
pub(super) const CONVERSATION_LIST_SHARDS: u32 = 8;

/// The conversation list (`gsi1`) partition of a conversation.
pub(super) fn conversation_list(scope: &TenantScope, conversation_id: &str) -> String {
    let shard = shard_of(conversation_id, CONVERSATION_LIST_SHARDS);
    format!("CONVS#{}#{shard}", scope.tenant_id())
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

    /// Inbound messages and other webhook changes.
    pub fn inbound(&self) -> Inbound<'_> {
        Inbound { table: &self.table }
    }

    pub fn deliveries(&self) -> Deliveries<'_> {
        Deliveries { table: &self.table }
    }

    pub fn templates(&self) -> Templates<'_> {
        Templates { table: &self.table }
    }

    pub fn conversations(&self) -> Conversations<'_> {
        Conversations { table: &self.table }
    }

    pub fn usage(&self) -> Usage<'_> {
        Usage { table: &self.table }
    }

    /// Outbound messages: accepted, claimed, sent or failed.
    pub fn outbox(&self) -> Outbox<'_> {
        Outbox { table: &self.table }
    }

    pub fn raw_events(&self) -> RawEvents<'_> {
        RawEvents { table: &self.table }
    }

    /// Partner webhook deliveries, and the endpoint slots that cap attempts in flight.
    pub fn webhook_deliveries(&self) -> WebhookDeliveries<'_> {
        WebhookDeliveries { table: &self.table }
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
