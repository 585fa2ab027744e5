//! Webhook receivers: endpoints a person (or a test) subscribes to partner webhooks, which
//! keep what they get and check its signature.
//!
//! - `POST /_sandbox/receiver/{name}`: a delivery; answered as the receiver is set up.
//! - `PUT /_sandbox/receiver/{name}` `{"secret"?, "failTimes"?, "failStatus"?,
//!   "retryAfter"?, "delayMs"?}`: the subscription's secret (to verify signatures with), how
//!   many deliveries to fail first and with what status (and `Retry-After`), and how long to
//!   wait before answering (longer than 15 s: the sender times out).
//! - `GET /_sandbox/receiver/{name}`: `{"items":[{"webhookId","timestamp","signature",
//!   "verified","body","receivedAt","answeredStatus"}]}`, oldest first; `verified` is null
//!   while no secret is set.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use domain::webhooks::{secret_key, verify};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Deliveries kept per receiver: the newest ones.
const KEEP: usize = 10_000;

#[derive(Default)]
pub(crate) struct Receivers(Mutex<HashMap<String, Receiver>>);

#[derive(Default)]
struct Receiver {
    setup: Setup,
    received: Vec<Value>,
}

#[derive(Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Setup {
    secret: Option<String>,
    #[serde(default)]
    fail_times: u32,
    fail_status: Option<u16>,
    retry_after: Option<u64>,
    #[serde(default)]
    delay_ms: u64,
}

pub(crate) async fn set_up(
    State(receivers): State<Arc<Receivers>>,
    Path(name): Path<String>,
    Json(setup): Json<Setup>,
) -> Response {
    if setup.secret.as_deref().is_some_and(|s| secret_key(s).is_none()) {
        return crate::problem(StatusCode::UNPROCESSABLE_ENTITY, "secret must be a whsec_ secret");
    }
    match receivers.0.lock() {
        Ok(mut all) => {
            all.entry(name).or_default().setup = setup;
            StatusCode::NO_CONTENT.into_response()
        }
        Err(_) => crate::problem(StatusCode::INTERNAL_SERVER_ERROR, "receiver state poisoned"),
    }
}

pub(crate) async fn list(
    State(receivers): State<Arc<Receivers>>,
    Path(name): Path<String>,
) -> Response {
    let items = receivers
        .0
        .lock()
        .map(|all| all.get(&name).map(|r| r.received.clone()).unwrap_or_default())
        .unwrap_or_default();
    Json(json!({ "items": items })).into_response()
}

pub(crate) async fn receive(
    State(receivers): State<Arc<Receivers>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let header = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (id, timestamp, signature) =
        (header("webhook-id"), header("webhook-timestamp"), header("webhook-signature"));
    let (setup, answered) = {
        let Ok(mut all) = receivers.0.lock() else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        let receiver = all.entry(name).or_default();
        let setup = receiver.setup.clone();
        let failing = receiver.setup.fail_times > 0;
        if failing {
            receiver.setup.fail_times -= 1;
        }
        let status = if failing { setup.fail_status.unwrap_or(500) } else { 200 };
        let verified = setup.secret.as_deref().and_then(secret_key).map(|key| {
            let ts = timestamp.as_deref().and_then(|t| t.parse::<i64>().ok()).unwrap_or_default();
            verify(
                &key,
                id.as_deref().unwrap_or_default(),
                ts,
                &body,
                signature.as_deref().unwrap_or_default(),
            )
        });
        let body_json: Value = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        receiver.received.push(json!({
            "webhookId": id,
            "timestamp": timestamp,
            "signature": signature,
            "verified": verified,
            "body": body_json,
            "receivedAt": now_ms(),
            "answeredStatus": status,
        }));
        if receiver.received.len() > KEEP {
            receiver.received.remove(0);
        }
        (setup, status)
    };
    if setup.delay_ms > 0 {
        tokio::time::sleep(Duration::from_millis(setup.delay_ms)).await;
    }
    let status = StatusCode::from_u16(answered).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, Json(json!({ "received": true }))).into_response();
    if answered != 200
        && let Some(secs) = setup.retry_after
        && let Ok(value) = secs.to_string().parse()
    {
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, value);
    }
    response
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}
