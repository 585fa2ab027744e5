//! Events for partners' webhooks (the `partner-events` queue, delivered to the URLs
//! registered with `POST /api/webhooks`): one envelope ([`PartnerEvent`]), and a stable
//! id per fact, so that an event emitted again after a retry is recognisably the same one.
//! Queueing them is `adapters::events`.

use crate::ids::TenantId;
pub use crate::queues::PartnerEvent;
use crate::secrets::sha256_hex;
use crate::time::{now_secs, rfc3339};
use serde_json::{Value, json};

/// The id of the event that announces one fact (its kind and what identifies it).
pub fn event_id(parts: &[&str]) -> String {
    format!("evt_{}", &sha256_hex(&parts.join("|"))[..32])
}

/// An event of `kind` about `tenant`, stamped now.
pub fn event(id: String, kind: &str, tenant: &TenantId, data: Value) -> PartnerEvent {
    PartnerEvent {
        id,
        kind: kind.to_owned(),
        tenant_id: tenant.clone(),
        timestamp: rfc3339(now_secs()),
        data,
        subscription_id: None,
    }
}

/// `message.status` for a message Switchboard itself failed (Meta never took it, or
/// refused it for good), shaped as the ones Meta's status webhooks produce.
pub fn message_failed(
    tenant: &TenantId,
    message_id: &str,
    code: &Value,
    title: &str,
) -> PartnerEvent {
    event(
        event_id(&["message.status", tenant.as_str(), message_id, "failed"]),
        "message.status",
        tenant,
        json!({
            "messageId": message_id,
            "wamid": null,
            "status": "failed",
            "timestamp": rfc3339(now_secs()),
            "error": { "code": code, "title": title },
        }),
    )
}
