//! What the API shows of subscriptions and deliveries: never a secret.

use adapters::store::messages::Delivery;
use adapters::store::tenants::Subscription;
use domain::time::rfc3339;
use serde_json::{Value, json};

pub(crate) fn subscription(s: &Subscription) -> Value {
    json!({
        "id": s.subscription_id,
        "url": s.url,
        "events": s.events,
        "description": s.description,
        "status": s.status,
        "disabledReason": s.disabled_reason,
        "createdAt": rfc3339(s.created_at),
        "updatedAt": rfc3339(s.updated_at),
        "failingSince": s.failing_since.map(rfc3339),
    })
}

pub(crate) fn delivery_summary(d: &Delivery) -> Value {
    json!({
        "id": d.delivery_id,
        "subscriptionId": d.subscription_id,
        "eventId": d.event_id,
        "eventType": d.event_type,
        "status": d.status,
        "attempts": d.attempts,
        "lastStatusCode": d.last_attempt().and_then(|a| a.status_code),
        "lastError": d.last_attempt().and_then(|a| a.error.as_deref()),
        "nextAttemptAt": d.next_attempt_at.filter(|_| d.pending()).map(rfc3339),
        "createdAt": rfc3339(d.created_at),
        "deliveredAt": d.delivered_at.map(rfc3339),
    })
}

/// One delivery: its summary, with `attempts` the list of attempts (the count is
/// `attemptCount`) and the event `payload` as sent.
pub(crate) fn delivery(d: &Delivery) -> Value {
    let mut view = delivery_summary(d);
    view["attemptCount"] = json!(d.attempts);
    view["attempts"] = d
        .log
        .iter()
        .map(|a| {
            json!({
                "at": rfc3339(a.at),
                "statusCode": a.status_code,
                "durationMs": a.duration_ms,
                "error": a.error,
                "responseBody": a.response_body,
            })
        })
        .collect();
    view["payload"] = serde_json::from_str(&d.payload).unwrap_or(Value::String(d.payload.clone()));
    view
}
