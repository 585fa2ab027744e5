//! WhatsApp Web sessions, as the domain sees them: their states, the pool each tier's
//! sessions share, the work a session host is given, and how what a session receives
//! becomes the Cloud API's webhook shape (so that one processor handles both).

use crate::ids::TenantId;
use crate::queues::{QueueMessage, Tenanted};
use crate::tenant::Tier;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::Duration;

/// Where a tenant's WhatsApp Web session is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    /// Never connected, or stopped (erased, moved) with its device still linked.
    Disconnected,
    /// Waiting for the phone to scan the QR (or type the pairing code).
    Pairing,
    Connected,
    /// The connection dropped; the host reconnects by itself.
    Reconnecting,
    /// Evicted for inactivity; resumes by itself when there is something to send.
    Idle,
    /// The phone removed the linked device: only a new pairing helps.
    LoggedOut,
    /// Gave up after repeated failures (or WhatsApp refused the device).
    Failed,
}

impl SessionState {
    pub const ALL: [SessionState; 7] = [
        Self::Disconnected,
        Self::Pairing,
        Self::Connected,
        Self::Reconnecting,
        Self::Idle,
        Self::LoggedOut,
        Self::Failed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disconnected => "disconnected",
            Self::Pairing => "pairing",
            Self::Connected => "connected",
            Self::Reconnecting => "reconnecting",
            Self::Idle => "idle",
            Self::LoggedOut => "logged_out",
            Self::Failed => "failed",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// A message accepted in this state is sent without a new pairing (at once, after the
    /// reconnection, or after resuming from idle).
    pub fn can_send(self) -> bool {
        matches!(self, Self::Connected | Self::Reconnecting | Self::Idle)
    }

    /// The session holds (or is about to hold) a slot of its pool's connection.
    pub fn holds_slot(self) -> bool {
        matches!(self, Self::Pairing | Self::Connected | Self::Reconnecting | Self::Idle)
    }
}

/// How a tier's sessions are pooled (ARCHITECTURE.md, "The session host").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolPolicy {
    pub tier: Tier,
    /// Users whose sessions one pool connection hosts.
    pub users_per_connection: u32,
    /// Connections the pool may grow to (configurable; these are the defaults).
    pub max_connections: u32,
    /// Connections kept leased and ready before anyone asks.
    pub prewarm: u32,
    /// A session idle this long is evicted; `None`: never.
    pub idle_after: Option<Duration>,
}

impl PoolPolicy {
    pub fn of(tier: Tier) -> Self {
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        match tier {
            Tier::Standard => Self {
                tier,
                users_per_connection: 10,
                max_connections: 100,
                prewarm: 0,
                idle_after: minutes(30),
            },
            Tier::Professional => Self {
                tier,
                users_per_connection: 3,
                max_connections: 100,
                prewarm: 0,
                idle_after: minutes(15),
            },
            Tier::Enterprise => Self {
                tier,
                users_per_connection: 1,
                max_connections: 500,
                prewarm: 0,
                idle_after: None,
            },
            Tier::EnterpriseB2b => Self {
                tier,
                users_per_connection: 5,
                max_connections: 25,
                prewarm: 3,
                idle_after: minutes(10),
            },
        }
    }

    /// The tier's pool with a deployment's overrides: `SESSION_MAX_CONNECTIONS_<TIER>` and
    /// `SESSION_IDLE_SECS_<TIER>` (0: never), read through `lookup` (the environment).
    /// A value that is not a whole number is named in the error.
    pub fn configured(tier: Tier, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut policy = Self::of(tier);
        let suffix = tier.as_str().to_uppercase();
        let number = |name: String| -> Result<Option<u64>, String> {
            match lookup(&name) {
                Some(raw) => raw
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|_| format!("{name}: {raw:?} is not a whole number")),
                None => Ok(None),
            }
        };
        if let Some(max) = number(format!("SESSION_MAX_CONNECTIONS_{suffix}"))? {
            policy.max_connections = u32::try_from(max).unwrap_or(u32::MAX);
        }
        if let Some(secs) = number(format!("SESSION_IDLE_SECS_{suffix}"))? {
            policy.idle_after = (secs > 0).then(|| Duration::from_secs(secs));
        }
        Ok(policy)
    }

    pub fn max_users(&self) -> u32 {
        self.users_per_connection * self.max_connections
    }
}

/// Every tier's pool as a deployment configures it, read once at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPolicies(Vec<PoolPolicy>);

impl Default for PoolPolicies {
    fn default() -> Self {
        Self(TIERS.into_iter().map(PoolPolicy::of).collect())
    }
}

impl PoolPolicies {
    /// With the overrides `lookup` gives (see [`PoolPolicy::configured`]).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        TIERS
            .into_iter()
            .map(|tier| PoolPolicy::configured(tier, &lookup))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    pub fn of(&self, tier: Tier) -> PoolPolicy {
        self.0.iter().find(|p| p.tier == tier).copied().unwrap_or_else(|| PoolPolicy::of(tier))
    }

    pub fn all(&self) -> &[PoolPolicy] {
        &self.0
    }
}

/// Every tier, in the order pools are looked at.
pub const TIERS: [Tier; 4] =
    [Tier::Standard, Tier::Professional, Tier::Enterprise, Tier::EnterpriseB2b];

/// A connection of a pool: `<tier>-<nn>`.
pub fn connection_id(tier: Tier, index: u32) -> String {
    format!("{}-{index:03}", tier.as_str())
}

/// The tier and index of a connection id.
pub fn parse_connection_id(id: &str) -> Option<(Tier, u32)> {
    let (tier, index) = id.rsplit_once('-')?;
    Some((Tier::parse(tier)?, index.parse().ok()?))
}

/// Work for the host that owns a session's connection, on that connection's queue (FIFO,
/// grouped by tenant: one session's work is done in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", rename_all_fields = "camelCase")]
pub enum SessionWork {
    /// Start (or resume) the session; pair if it has no linked device.
    Connect { tenant_id: TenantId, phone_number: Option<String> },
    /// Send an accepted outbound message (the outbox holds it).
    Send { tenant_id: TenantId, message_id: String },
    /// Unlink the device and forget its keys.
    Logout { tenant_id: TenantId },
    /// Stop the session and leave the pool (the tenant is being erased, or moves to
    /// another tier's pool: `Connect` on the new connection follows).
    Leave { tenant_id: TenantId },
}

impl Tenanted for SessionWork {
    fn tenant_id(&self) -> &TenantId {
        match self {
            Self::Connect { tenant_id, .. }
            | Self::Send { tenant_id, .. }
            | Self::Logout { tenant_id }
            | Self::Leave { tenant_id } => tenant_id,
        }
    }
}

impl QueueMessage for SessionWork {
    const KIND: &'static str = "session work";
}

impl SessionWork {
    /// What makes two sends of the same work one (FIFO deduplication, 5 minutes).
    pub fn dedup_id(&self) -> String {
        match self {
            Self::Send { message_id, .. } => format!("send-{message_id}"),
            // Repeated commands are harmless; each one is its own.
            _ => uuid::Uuid::new_v4().simple().to_string(),
        }
    }
}

/// A message a session received, as a driver reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebInbound {
    /// WhatsApp's message id.
    pub id: String,
    /// The sender's number, digits only.
    pub from: String,
    pub push_name: Option<String>,
    pub timestamp: i64,
    pub content: WebContent,
    /// The message this one replies to.
    pub reply_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WebContent {
    Text(String),
    Reaction {
        message_id: String,
        emoji: String,
    },
    /// Media, as metadata: what it is, not its bytes (they stay on WhatsApp's servers).
    Media {
        /// `image`, `video`, `audio`, `document` or `sticker`.
        kind: String,
        mime_type: Option<String>,
        /// The file's SHA-256, base64.
        sha256: Option<String>,
        caption: Option<String>,
        filename: Option<String>,
    },
    /// Anything else: its kind only.
    Other(String),
}

/// A receipt for a message the session sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebReceipt {
    pub message_id: String,
    pub recipient: String,
    /// `delivered` or `read`.
    pub status: String,
    pub timestamp: i64,
}

fn cloud_webhook(phone_number_id: &str, value: Value) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": phone_number_id, "changes": [{ "field": "messages", "value": value }] }]
    })
}

/// A received message in the Cloud API's webhook shape, which the webhook processor
/// stores, deduplicates and announces as it does Meta's. The tenant id stands in for the
/// phone number id (a web session has none).
pub fn inbound_webhook(tenant: &TenantId, message: &WebInbound) -> Value {
    let mut entry = json!({
        "from": message.from,
        "id": message.id,
        "timestamp": message.timestamp.to_string(),
    });
    match &message.content {
        WebContent::Text(body) => {
            entry["type"] = json!("text");
            entry["text"] = json!({ "body": body });
        }
        WebContent::Reaction { message_id, emoji } => {
            entry["type"] = json!("reaction");
            entry["reaction"] = json!({ "message_id": message_id, "emoji": emoji });
        }
        WebContent::Media { kind, mime_type, sha256, caption, filename } => {
            let mut media = serde_json::Map::new();
            for (name, value) in [
                ("mime_type", mime_type),
                ("sha256", sha256),
                ("caption", caption),
                ("filename", filename),
            ] {
                if let Some(value) = value {
                    media.insert(name.into(), json!(value));
                }
            }
            entry["type"] = json!(kind);
            entry[kind.as_str()] = Value::Object(media);
        }
        WebContent::Other(kind) => {
            entry["type"] = json!(kind);
        }
    }
    if let Some(reply_to) = &message.reply_to {
        entry["context"] = json!({ "from": message.from, "id": reply_to });
    }
    let name = message.push_name.clone().unwrap_or_default();
    cloud_webhook(
        tenant.as_str(),
        json!({
            "messaging_product": "whatsapp",
            "metadata": { "phone_number_id": tenant.as_str() },
            "contacts": [{ "profile": { "name": name }, "wa_id": message.from }],
            "messages": [entry],
        }),
    )
}

/// A receipt in the Cloud API's status webhook shape.
pub fn receipt_webhook(tenant: &TenantId, receipt: &WebReceipt) -> Value {
    cloud_webhook(
        tenant.as_str(),
        json!({
            "messaging_product": "whatsapp",
            "metadata": { "phone_number_id": tenant.as_str() },
            "statuses": [{
                "id": receipt.message_id,
                "status": receipt.status,
                "timestamp": receipt.timestamp.to_string(),
                "recipient_id": receipt.recipient,
            }],
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{WebhookItem, parse};

    fn tenant() -> TenantId {
        TenantId::parse("tn_0123456789abcdef").expect("tenant id")
    }

    #[test]
    fn states_round_trip_and_say_what_they_allow() {
        for state in SessionState::ALL {
            assert_eq!(SessionState::parse(state.as_str()), Some(state));
        }
        assert!(SessionState::Idle.can_send());
        assert!(!SessionState::LoggedOut.can_send() && !SessionState::Pairing.can_send());
        assert!(!SessionState::Failed.holds_slot() && SessionState::Pairing.holds_slot());
    }

    #[test]
    fn the_b2b_pool_holds_125_users_on_25_connections() {
        let b2b = PoolPolicy::of(Tier::EnterpriseB2b);
        assert_eq!((b2b.users_per_connection, b2b.max_connections, b2b.prewarm), (5, 25, 3));
        assert_eq!(b2b.max_users(), 125);
        assert_eq!(PoolPolicy::of(Tier::Enterprise).idle_after, None);
        assert_eq!(PoolPolicy::of(Tier::Standard).users_per_connection, 10);
        assert_eq!(PoolPolicy::of(Tier::Professional).users_per_connection, 3);
    }

    #[test]
    fn a_deployment_may_resize_a_pool_and_its_idle_time() {
        let env = |name: &str| match name {
            "SESSION_MAX_CONNECTIONS_ENTERPRISE_B2B" => Some("2".to_owned()),
            "SESSION_IDLE_SECS_ENTERPRISE_B2B" => Some("0".to_owned()),
            "SESSION_IDLE_SECS_STANDARD" => Some("five".to_owned()),
            _ => None,
        };
        let b2b = PoolPolicy::configured(Tier::EnterpriseB2b, env).expect("valid");
        assert_eq!((b2b.max_connections, b2b.idle_after, b2b.max_users()), (2, None, 10));
        let error = PoolPolicy::configured(Tier::Standard, env).expect_err("not a number");
        assert!(error.contains("SESSION_IDLE_SECS_STANDARD"), "{error}");
        assert_eq!(
            PoolPolicy::configured(Tier::Enterprise, env),
            Ok(PoolPolicy::of(Tier::Enterprise))
        );
    }

    #[test]
    fn connection_ids_round_trip() {
        let id = connection_id(Tier::EnterpriseB2b, 7);
        assert_eq!(id, "enterprise_b2b-007");
        assert_eq!(parse_connection_id(&id), Some((Tier::EnterpriseB2b, 7)));
        assert_eq!(parse_connection_id("gold-001"), None);
    }

    #[test]
    fn work_is_tagged_and_sends_deduplicate_on_the_message() {
        let send = SessionWork::Send { tenant_id: tenant(), message_id: "msg_1".into() };
        let json = serde_json::to_value(&send).expect("json");
        assert_eq!(
            json,
            json!({"kind": "send", "tenantId": tenant().as_str(), "messageId": "msg_1"})
        );
        assert_eq!(serde_json::from_value::<SessionWork>(json).expect("back"), send);
        assert_eq!(send.dedup_id(), send.dedup_id());
        let logout = SessionWork::Logout { tenant_id: tenant() };
        assert_ne!(logout.dedup_id(), logout.dedup_id());
    }

    #[test]
    fn what_a_session_receives_reads_as_a_cloud_api_webhook() {
        let text = WebInbound {
            id: "3EB0A1".into(),
            from: "15551234567".into(),
            push_name: Some("Ana".into()),
            timestamp: 1_700_000_000,
            content: WebContent::Text("hola".into()),
            reply_to: Some("3EB0FF".into()),
        };
        let items = parse(&inbound_webhook(&tenant(), &text)).expect("parses");
        let [WebhookItem::Message(message)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!((message.wamid.as_str(), message.from.as_str()), ("3EB0A1", "15551234567"));
        assert_eq!(message.preview.as_deref(), Some("hola"));
        assert_eq!(message.raw["context"]["id"], "3EB0FF");

        let reaction = WebInbound {
            content: WebContent::Reaction { message_id: "3EB0FF".into(), emoji: "👍".into() },
            reply_to: None,
            ..text
        };
        let items = parse(&inbound_webhook(&tenant(), &reaction)).expect("parses");
        let [WebhookItem::Message(message)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(message.kind, "reaction");

        let image = WebInbound {
            content: WebContent::Media {
                kind: "image".into(),
                mime_type: Some("image/jpeg".into()),
                sha256: Some("AQID".into()),
                caption: Some("the receipt".into()),
                filename: None,
            },
            reply_to: None,
            ..reaction
        };
        let items = parse(&inbound_webhook(&tenant(), &image)).expect("parses");
        let [WebhookItem::Message(message)] = items.as_slice() else { panic!("{items:?}") };
        assert_eq!(message.kind, "image");
        assert_eq!(message.preview.as_deref(), Some("the receipt"), "the caption previews it");
        assert_eq!(
            message.raw["image"],
            serde_json::json!({"mime_type": "image/jpeg", "sha256": "AQID", "caption": "the receipt"})
        );

        let receipt = WebReceipt {
            message_id: "3EB0FF".into(),
            recipient: "15551234567".into(),
            status: "read".into(),
            timestamp: 1_700_000_001,
        };
        let items = parse(&receipt_webhook(&tenant(), &receipt)).expect("parses");
        assert!(matches!(items.as_slice(), [WebhookItem::Status(s)] if s.wamid == "3EB0FF"));
    }
}
