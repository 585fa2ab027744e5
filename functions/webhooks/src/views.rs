//! What the API shows of subscriptions and deliveries: never a secret.

use adapters::store::messages::Delivery;
use adapters::store::tenants::Subscription;
use contract::views::{AttemptView, DeliveryDetail, DeliverySummary, SubscriptionView};
use domain::time::rfc3339;
use serde_json::Value;

pub(crate) fn subscription(s: &Subscription) -> SubscriptionView {
    SubscriptionView {
        id: s.subscription_id.clone(),
        url: s.url.clone(),
        events: s.events.clone(),
        description: s.description.clone(),
        status: s.status.clone(),
        disabled_reason: s.disabled_reason.clone(),
        created_at: rfc3339(s.created_at),
        updated_at: rfc3339(s.updated_at),
        failing_since: s.failing_since.map(rfc3339),
    }
}

pub(crate) fn delivery_summary(d: &Delivery) -> DeliverySummary {
    DeliverySummary {
        id: d.delivery_id.clone(),
        subscription_id: d.subscription_id.clone(),
        event_id: d.event_id.clone(),
        event_type: d.event_type.clone(),
        status: d.status.clone(),
        attempts: d.attempts,
        last_status_code: d.last_attempt().and_then(|a| a.status_code),
        last_error: d.last_attempt().and_then(|a| a.error.clone()),
        next_attempt_at: d.next_attempt_at.filter(|_| d.pending()).map(rfc3339),
        created_at: rfc3339(d.created_at),
        delivered_at: d.delivered_at.map(rfc3339),
    }
}

/// One delivery: its summary, with `attempts` the list of attempts (the count is
/// `attemptCount`) and the event `payload` as sent.
pub(crate) fn delivery(d: &Delivery) -> DeliveryDetail {
    let summary = delivery_summary(d);
    DeliveryDetail {
        id: summary.id,
        subscription_id: summary.subscription_id,
        event_id: summary.event_id,
        event_type: summary.event_type,
        status: summary.status,
        attempt_count: d.attempts,
        attempts: d
            .log
            .iter()
            .map(|a| AttemptView {
                at: rfc3339(a.at),
                status_code: a.status_code,
                duration_ms: a.duration_ms,
                error: a.error.clone(),
                response_body: a.response_body.clone(),
            })
            .collect(),
        last_status_code: summary.last_status_code,
        last_error: summary.last_error,
        next_attempt_at: summary.next_attempt_at,
        created_at: summary.created_at,
        delivered_at: summary.delivered_at,
        payload: serde_json::from_str(&d.payload).unwrap_or(Value::String(d.payload.clone())),
    }
}
