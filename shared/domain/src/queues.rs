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

tenanted!(WebhookPointer, SendJob, PartnerEvent, DeliveryAttempt, SettleParked, Erasure);

/// A queue's body type. Every one belongs to a tenant: its tenant is the message's group,
/// which makes each standard queue an SQS *fair queue* (a tenant that builds a backlog does
/// not hold up the others' messages).
pub trait QueueMessage: Tenanted + Serialize + DeserializeOwned + Send + Sync {
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

/// `webhook-retries`: look at the deliveries parked while a subscription's endpoint was
/// failing, and release them (the endpoint answers again), fail them (the subscription is
/// off or gone, or their schedule ran out) or make the oldest the next probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SettleParked {
    pub tenant_id: TenantId,
    pub subscription_id: String,
}

/// `tenant-erasure`: a tenant whose data is to be erased (its platform deleted it). The
/// tenant item is gone before this is processed; `waits` counts the times it was found
/// still there (its delete not made yet), `sweep` the passes already made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Erasure {
    pub tenant_id: TenantId,
    #[serde(default)]
    pub sweep: u32,
    #[serde(default)]
    pub waits: u32,
}

impl QueueMessage for Erasure {
    const KIND: &'static str = "tenant erasure";
}

/// What the `webhook-retries` queue carries. Untagged: an attempt is told from a settling
/// by its fields, so attempts queued before settlings existed still read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WebhookWork {
    Attempt(DeliveryAttempt),
    Settle(SettleParked),
}

impl QueueMessage for WebhookWork {
    const KIND: &'static str = "webhook work";
}

impl Tenanted for WebhookWork {
    fn tenant_id(&self) -> &TenantId {
        match self {
            Self::Attempt(attempt) => &attempt.tenant_id,
            Self::Settle(settle) => &settle.tenant_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_queue_tells_an_attempt_from_a_settling_and_reads_older_attempts() {
        let tenant = TenantId::generate();
        let older = serde_json::json!({
            "tenantId": tenant.as_str(), "deliveryId": "msg_1", "attempt": 2, "due": 10
        });
        let read: WebhookWork = serde_json::from_value(older).expect("an older attempt reads");
        assert!(matches!(&read, WebhookWork::Attempt(a) if a.attempt == 2 && !a.manual));
        let settle = WebhookWork::Settle(SettleParked {
            tenant_id: tenant.clone(),
            subscription_id: "whk_1".into(),
        });
        let text = serde_json::to_string(&settle).expect("serialises");
        assert_eq!(serde_json::from_str::<WebhookWork>(&text).expect("reads"), settle);
        assert_eq!(settle.tenant_id(), &tenant);
        assert!(serde_json::from_str::<WebhookWork>(r#"{"tenantId":"x"}"#).is_err());
    }
}
