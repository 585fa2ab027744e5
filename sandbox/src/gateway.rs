//! A tenant's own WhatsApp gateway (a BSP such as 360dialog), as far as Switchboard uses
//! one: a Cloud API-compatible `POST {apiUrl}/messages` that wants its API key in a header,
//! and a `GET {apiUrl}/health`. A gateway is named by the last part of its URL,
//! `{sandbox}/_gateway/{name}`.
//!
//! - `PUT /_gateway/{name} {"keyHeader","key","healthy"?}`: sets the gateway up (the header
//!   its key comes in, `Authorization` meaning `Bearer <key>`), or changes its health.
//! - `POST /_gateway/{name}/messages`: a send; 401 with a Graph error without the key,
//!   503 while unhealthy, else Meta's answer with a wamid. Recorded.
//! - `GET /_gateway/{name}/health`: 200 or 503.
//! - `GET /_gateway/{name}`: `{"items":[…],"posts"}`: the sends it took (with the header
//!   that carried the key), and how many send requests came, taken or not.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct Gateway {
    key_header: String,
    key: String,
    healthy: bool,
    sent: Vec<Value>,
    /// Every send request, taken or not.
    posts: u64,
}

#[derive(Default)]
pub(crate) struct Gateways(Mutex<HashMap<String, Gateway>>);

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SetUp {
    key_header: Option<String>,
    key: Option<String>,
    healthy: Option<bool>,
}

pub(crate) async fn set_up(
    State(gateways): State<Arc<Gateways>>,
    Path(name): Path<String>,
    Json(request): Json<SetUp>,
) -> Response {
    let Ok(mut all) = gateways.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let gateway =
        all.entry(name).or_insert_with(|| Gateway { healthy: true, ..Gateway::default() });
    if let Some(header) = request.key_header {
        gateway.key_header = header;
    }
    if let Some(key) = request.key {
        gateway.key = key;
    }
    if let Some(healthy) = request.healthy {
        gateway.healthy = healthy;
    }
    StatusCode::NO_CONTENT.into_response()
}

/// Whether the request carries the gateway's key where it wants it.
fn authorised(gateway: &Gateway, headers: &HeaderMap) -> bool {
    let value = headers.get(gateway.key_header.as_str()).and_then(|v| v.to_str().ok());
    if gateway.key_header.eq_ignore_ascii_case("authorization") {
        value.and_then(|v| v.strip_prefix("Bearer ")) == Some(gateway.key.as_str())
    } else {
        value == Some(gateway.key.as_str())
    }
}

pub(crate) async fn messages(
    State(gateways): State<Arc<Gateways>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    let Ok(mut all) = gateways.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(gateway) = all.get_mut(&name) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": {"message": "no such gateway", "code": 100}})),
        )
            .into_response();
    };
    gateway.posts += 1;
    if !authorised(gateway, &headers) {
        let error =
            json!({"error": {"message": "Invalid API key", "type": "OAuthException", "code": 190}});
        return (StatusCode::UNAUTHORIZED, Json(error)).into_response();
    }
    if !gateway.healthy {
        return (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "unavailable"})))
            .into_response();
    }
    let wamid = format!("wamid.gateway.{}", uuid::Uuid::new_v4().simple());
    let to = body["to"].as_str().unwrap_or_default().trim_start_matches('+').to_owned();
    gateway.sent.push(json!({"wamid": wamid, "body": body, "keyHeader": gateway.key_header}));
    Json(json!({
        "messaging_product": "whatsapp",
        "contacts": [{"input": to, "wa_id": to}],
        "messages": [{"id": wamid}],
    }))
    .into_response()
}

pub(crate) async fn health(
    State(gateways): State<Arc<Gateways>>,
    Path(name): Path<String>,
) -> Response {
    let healthy = gateways.0.lock().ok().and_then(|all| all.get(&name).map(|g| g.healthy));
    match healthy {
        Some(true) => Json(json!({"status": "ok"})).into_response(),
        _ => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "unavailable"})))
            .into_response(),
    }
}

pub(crate) async fn sent(
    State(gateways): State<Arc<Gateways>>,
    Path(name): Path<String>,
) -> Response {
    let found =
        gateways.0.lock().ok().and_then(|all| all.get(&name).map(|g| (g.sent.clone(), g.posts)));
    let (items, posts) = found.unwrap_or_default();
    Json(json!({"items": items, "posts": posts})).into_response()
}
