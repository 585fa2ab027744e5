//! Events for partners' webhooks (the `partner-events` queue, delivered to the URLs
//! registered with `POST /api/webhooks`): one envelope, and a stable id per fact, so that
//! an event emitted again after a retry is recognisably the same one.

use crate::auth::secrets::sha256_hex;
use crate::domain::ids::TenantId;
use crate::store::attrs::{now_secs, rfc3339};
use crate::telemetry::error_chain;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use serde_json::{Value, json};

/// The id of the event that announces one fact (its kind and what identifies it).
pub fn event_id(parts: &[&str]) -> String {
    format!("evt_{}", &sha256_hex(&parts.join("|"))[..32])
}

/// `{"id","type","tenantId","timestamp","data"}`.
pub fn event(id: String, kind: &str, tenant: &TenantId, data: Value) -> Value {
    json!({ "id": id, "type": kind, "tenantId": tenant, "timestamp": rfc3339(now_secs()), "data": data })
}

/// `message.status` for a message Switchboard itself failed (Meta never took it, or
/// refused it for good), shaped as the ones Meta's status webhooks produce.
pub fn message_failed(tenant: &TenantId, message_id: &str, code: &Value, title: &str) -> Value {
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

/// Where events are queued.
#[derive(Clone, Debug)]
pub struct PartnerEvents {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

impl PartnerEvents {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { sqs, queue_url }
    }

    /// Queues events, ten per request (SQS's batch limit). Events carry stable ids, so
    /// sending some twice after a retry is harmless downstream.
    pub async fn emit(&self, events: &[Value]) -> Result<(), String> {
        for chunk in events.chunks(10) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(e.to_string())
                        .build()
                        .map_err(|e| e.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| error_chain(&e))?;
            if !out.failed().is_empty() {
                return Err(format!("{} partner events not queued", out.failed().len()));
            }
        }
        Ok(())
    }
}
