//! The typed message of every queue: one serde type per queue, used by its producer and
//! its consumer alike (the SQS adapter is `adapters::queues`).

use crate::ids::TenantId;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A message that belongs to one tenant.
pub trait Tenanted {
    fn tenant_id(&self) -> &TenantId;
}

macro_rules! tenanted {
    ($($message:ty),*) => {
        $(impl Tenanted for $message {
            fn tenant_id(&self) -> &TenantId {
                &self.tenant_id
            }
        })*
    };
}

tenanted!(WebhookPointer, SendJob, PartnerEvent, DeliveryAttempt);

/// A queue's body type.
pub trait QueueMessage: Serialize + DeserializeOwned + Send + Sync {
    /// What the message is, for logs and dead-letter reasons.
    const KIND: &'static str;
}

/// `inbound-events`: a stored raw webhook (Meta's, or a tenant gateway's) to apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookPointer {
    pub tenant_id: TenantId,
    pub event_id: String,
}

impl QueueMessage for WebhookPointer {
    const KIND: &'static str = "webhook pointer";
}

/// `outbound-high` and `outbound-standard`: an accepted message to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SendJob {
    pub tenant_id: TenantId,
    pub message_id: String,
}

impl QueueMessage for SendJob {
    const KIND: &'static str = "send job";
}

/// `partner-events`: the envelope every partner webhook receives (see [`crate::events`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PartnerEvent {
    /// Stable per fact: the same fact emitted twice has the same id.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub tenant_id: TenantId,
    pub timestamp: String,
    pub data: serde_json::Value,
    /// Set on a test event: it goes to this subscription alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
}

impl QueueMessage for PartnerEvent {
    const KIND: &'static str = "partner event";
}

/// `webhook-retries`: an attempt of a partner webhook delivery that is not its first
/// (a retry, a redelivery or a recovery), or a first attempt moved off the fresh lane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryAttempt {
    pub tenant_id: TenantId,
    pub delivery_id: String,
    /// Which attempt this is (1-based): it runs only if the delivery has recorded
    /// `attempt - 1` attempts, so a duplicate message attempts nothing.
    pub attempt: u32,
    /// When the attempt is due (epoch seconds). SQS delays a message 15 minutes at most:
    /// an attempt received early is sent back with the rest of its wait.
    pub due: i64,
    /// A redelivery or recovery asked for by a person: one attempt, no retries.
    #[serde(default)]
    pub manual: bool,
    /// How many times this attempt found every slot of its endpoint held: for a failing
    /// endpoint each time doubles the wait (up to 15 minutes), so a flood does not spin.
    #[serde(default)]
    pub busy: u32,
}

impl QueueMessage for DeliveryAttempt {
    const KIND: &'static str = "delivery attempt";
}
