//! A local stand-in for Meta's WhatsApp Cloud API (the Graph API), so that the whole
//! system runs and is tested offline. It speaks the Cloud API's shapes ([`graph`]).
//!
//! Cloud API (what Switchboard calls):
//! - `POST /{version}/{phone-number-id}/messages`: checked as Meta checks it; answered with
//!   Meta's response or error; then signed `sent`, `delivered` and `read` status webhooks
//!   go to the tenant's webhook URL. A sandbox channel's phone number id is its tenant id
//!   (see `adapters::graph`), so statuses go to `/api/whatsapp/webhook/{that id}`; any other
//!   (numeric) id's statuses go to the platform webhook, `/api/whatsapp/webhook`.
//! - `GET /{version}/{phone-number-id}`: the phone number (channel health checks).
//! - `GET`, `POST`, `DELETE /{version}/{waba-id}/message_templates`: templates; a created
//!   template is approved shortly after, by a `message_template_status_update` webhook.
//!
//! Control API (for tests and people trying the system):
//! - `POST /_sandbox/inbound {"tenantId","from","text"}`: a customer writes to a tenant.
//! - `POST /_sandbox/faults {"to","code","times"}`: the next `times` sends to `to` fail
//!   with Meta's error `code`.
//! - `GET /_sandbox/messages?to=`: what was sent (to `to`), oldest first:
//!   `{"items":[<request body as received, plus "wamid">]}`.
//! - `GET /_sandbox/stats`: `{"sends", "sentAtMs"}`, when each accepted send arrived.
//!
//! WhatsApp Web (the session host's simulator driver; see [`web`] for both sides):
//! - `POST /_sandbox/web/scan {"qr","phoneNumber"}`, `POST /_sandbox/web/pair-code
//!   {"phoneNumber","code"}`: a phone links a device (410 for an expired or unknown one).
//! - `POST /_sandbox/web/inbound {"phoneNumber","from","text"}`: a customer writes to it.
//! - `POST /_sandbox/web/unlink`, `POST /_sandbox/web/drop` `{"phoneNumber"}`: the phone
//!   removes the device; the connection drops.
//! - `GET /_sandbox/web/sent?phoneNumber=`, `GET /_sandbox/web/devices?phoneNumber=`,
//!   `GET /_sandbox/web/stats` (totals, for load measurements).
//!
//! A tenant's own gateway (`/_gateway/{name}`, a Cloud API-compatible BSP): see [`gateway`].
//!
//! Webhook receivers (`/_sandbox/receiver/{name}`) to subscribe partner webhooks to: see
//! [`receiver`].

// NOTE: over 400 lines: the sandbox's control API, webhook signing and the Cloud API's send
// path in one place, as a reader of a test wants them; the Graph API reads are in graph.rs.

mod gateway;
pub mod graph;
mod receiver;
mod web;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use domain::meta::signature_header;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// Sends kept for `GET /_sandbox/messages`: the newest ones.
const KEEP_SENT: usize = 20_000;

#[derive(Clone)]
pub struct Settings {
    /// Signs the webhooks the sandbox sends (Switchboard's `SANDBOX_APP_SECRET`).
    pub app_secret: String,
    /// Where Switchboard's API is (`http://127.0.0.1:3000` under `make dev`).
    pub switchboard_url: String,
    /// The pause before each status webhook (sent, then delivered, then read).
    pub status_delay: Duration,
    /// Off only to measure sending alone (`make bench`): no status webhooks.
    pub send_statuses: bool,
    /// How long each WhatsApp Web pairing QR is shown before the next one.
    pub qr_ttl: Duration,
}

impl Settings {
    pub fn from_env() -> Self {
        Self {
            app_secret: std::env::var("SANDBOX_APP_SECRET")
                .unwrap_or_else(|_| "local-sandbox-app-secret".into()),
            switchboard_url: std::env::var("SWITCHBOARD_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:3000".into()),
            status_delay: Duration::from_millis(
                std::env::var("SANDBOX_STATUS_DELAY_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(500),
            ),
            send_statuses: std::env::var("SANDBOX_STATUSES").map_or(true, |v| v != "off"),
            qr_ttl: Duration::from_millis(
                std::env::var("SANDBOX_QR_TTL_MS")
                    .ok()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(20_000),
            ),
        }
    }
}

#[derive(Default)]
struct Memory {
    /// Recipient digits → (Meta error code, sends left to fail).
    faults: HashMap<String, (i64, u32)>,
    sent: VecDeque<Value>,
    /// When each accepted send arrived (ms since the epoch), for pacing measurements.
    sent_at_ms: VecDeque<u64>,
    /// Business account id → its templates.
    templates: HashMap<String, Vec<Value>>,
}

struct AppState {
    settings: Settings,
    http: reqwest::Client,
    memory: Mutex<Memory>,
    web: web::WebServer,
}

pub struct Application {
    listener: TcpListener,
    settings: Settings,
}

impl Application {
    /// Binds `addr`; port 0 picks a free port (tests).
    pub async fn build(addr: SocketAddr, settings: Settings) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await?, settings })
    }

    /// On a listener bound before Switchboard's URL was known (tests bind both first).
    pub fn from_listener(listener: TcpListener, settings: Settings) -> Self {
        Self { listener, settings }
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        let state = Arc::new(AppState {
            settings: self.settings,
            http,
            memory: Mutex::default(),
            web: web::WebServer::default(),
        });
        axum::serve(self.listener, router(state)).with_graceful_shutdown(shutdown).await
    }
}

fn router(state: Arc<AppState>) -> Router {
    let receivers = Router::new()
        .route(
            "/_sandbox/receiver/{name}",
            post(receiver::receive).put(receiver::set_up).get(receiver::list),
        )
        .with_state(Arc::new(receiver::Receivers::default()));
    let gateways = Router::new()
        .route("/_gateway/{name}", axum::routing::put(gateway::set_up).get(gateway::sent))
        .route("/_gateway/{name}/messages", post(gateway::messages))
        .route("/_gateway/{name}/health", get(gateway::health))
        .with_state(Arc::new(gateway::Gateways::default()));
    Router::new()
        .route("/health", get(health))
        .route("/_sandbox/inbound", post(inbound))
        .route("/_sandbox/faults", post(add_fault))
        .route("/_sandbox/messages", get(list_sent))
        .route("/_sandbox/stats", get(stats))
        .route("/_sandbox/web/scan", post(web::control_scan))
        .route("/_sandbox/web/pair-code", post(web::control_pair_code))
        .route("/_sandbox/web/inbound", post(web::control_inbound))
        .route("/_sandbox/web/unlink", post(web::control_unlink))
        .route("/_sandbox/web/drop", post(web::control_drop))
        .route("/_sandbox/web/sent", get(web::control_sent))
        .route("/_sandbox/web/devices", get(web::control_devices))
        .route("/_sandbox/web/stats", get(web::control_stats))
        .route("/_wa/pair", post(web::pair))
        .route("/_wa/pair/{reference}", get(web::pair_status))
        .route("/_wa/connect", post(web::connect))
        .route("/_wa/events", get(web::events))
        .route("/_wa/ack", post(web::ack))
        .route("/_wa/send", post(web::send))
        .route("/_wa/logout", post(web::logout))
        .route("/_wa/close", post(web::close))
        .route("/{version}/{id}", get(phone_number))
        .route("/{version}/{id}/messages", post(send))
        .route(
            "/{version}/{id}/message_templates",
            get(list_templates).post(create_template).delete(delete_template),
        )
        .fallback(unknown_path)
        .with_state(state)
        .merge(receivers)
        .merge(gateways)
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "service": "whatsapp-sandbox"}))
}

pub(crate) fn problem(status: StatusCode, detail: impl Into<String>) -> axum::response::Response {
    (status, Json(json!({"status": status.as_u16(), "detail": detail.into()}))).into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Inbound {
    tenant_id: String,
    /// The customer's number, E.164 (`+15551234567`).
    from: String,
    text: String,
    name: Option<String>,
}

async fn inbound(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Inbound>, axum::extract::rejection::JsonRejection>,
) -> axum::response::Response {
    let Ok(Json(request)) = body else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected {\"tenantId\",\"from\",\"text\"}",
        );
    };
    let digits = request.from.strip_prefix('+').unwrap_or_default();
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "from must be an E.164 number like +15551234567",
        );
    }
    if request.text.is_empty() || request.text.len() > 4096 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "text must be 1 to 4096 bytes");
    }
    let wamid = format!("wamid.sandbox.{}", uuid::Uuid::new_v4().simple());
    let now = now_secs();
    let name = request.name.as_deref().unwrap_or("Sandbox customer");
    let payload =
        graph::text_message_payload(&request.tenant_id, digits, name, &wamid, &request.text, now)
            .to_string();
    let sent = deliver(&state, &request.tenant_id, payload).await;
    match sent {
        Ok(status) if status.is_success() => {
            (StatusCode::ACCEPTED, Json(json!({"wamid": wamid, "webhookStatus": status.as_u16()})))
                .into_response()
        }
        Ok(status) => problem(
            StatusCode::BAD_GATEWAY,
            format!("Switchboard answered the webhook with {}", status.as_u16()),
        ),
        Err(e) => problem(StatusCode::BAD_GATEWAY, format!("Switchboard did not answer: {e}")),
    }
}

/// What the Graph API answers for a path it does not know.
async fn unknown_path() -> impl IntoResponse {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({
            "error": {
                "message": "Unknown path components",
                "type": "OAuthException",
                "code": 2500,
                "fbtrace_id": "sandbox"
            }
        })),
    )
}

/// Posts a signed webhook where Meta would: the tenant's webhook URL for a sandbox
/// channel (its phone number id is its tenant id), the platform's for a numeric id.
async fn deliver(
    state: &AppState,
    phone_number_id: &str,
    payload: String,
) -> Result<StatusCode, String> {
    let base = state.settings.switchboard_url.trim_end_matches('/');
    let url = if phone_number_id.bytes().all(|b| b.is_ascii_digit()) {
        format!("{base}/api/whatsapp/webhook")
    } else {
        format!("{base}/api/whatsapp/webhook/{phone_number_id}")
    };
    let signature = signature_header(state.settings.app_secret.as_bytes(), payload.as_bytes());
    state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature)
        .body(payload)
        .send()
        .await
        .map(|r| r.status())
        .map_err(|e| e.without_url().to_string())
}

/// Delivers a webhook as Meta does: retried for a while when Switchboard fails.
async fn deliver_with_retries(state: &AppState, phone_number_id: &str, payload: Value) {
    let payload = payload.to_string();
    for attempt in 0..5u32 {
        match deliver(state, phone_number_id, payload.clone()).await {
            Ok(status) if status.is_success() => return,
            outcome => {
                tracing::warn!(attempt, ?outcome, "webhook not accepted; retrying");
                tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt))).await;
            }
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

fn now_secs() -> u64 {
    now_ms() / 1000
}

/// `GET /_sandbox/stats`: how many sends were accepted, and when (ms since the epoch).
async fn stats(State(state): State<Arc<AppState>>) -> axum::response::Response {
    let times: Vec<u64> =
        state.memory.lock().map(|m| m.sent_at_ms.iter().copied().collect()).unwrap_or_default();
    Json(json!({ "sends": times.len(), "sentAtMs": times })).into_response()
}

fn graph_reply((status, body): (StatusCode, Value)) -> axum::response::Response {
    (status, Json(body)).into_response()
}

async fn send(
    State(state): State<Arc<AppState>>,
    Path((_version, phone_number_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_reply(graph::error(100, Some("The request body is not JSON.")));
    };
    let digits = match graph::validate_send(&body) {
        Ok(digits) => digits,
        Err(refused) => return graph_reply(refused),
    };
    let wamid = format!("wamid.sandbox.{}", uuid::Uuid::new_v4().simple());
    {
        let Ok(mut memory) = state.memory.lock() else {
            return graph_reply(graph::error(131000, None));
        };
        if let Some((code, left)) = memory.faults.get_mut(&digits) {
            let code = *code;
            *left -= 1;
            if *left == 0 {
                memory.faults.remove(&digits);
            }
            return graph_reply(graph::error(code, None));
        }
        let mut record = body.clone();
        record["wamid"] = json!(wamid);
        if memory.sent.len() >= KEEP_SENT {
            memory.sent.pop_front();
            memory.sent_at_ms.pop_front();
        }
        memory.sent.push_back(record);
        memory.sent_at_ms.push_back(now_ms());
    }
    let to = body["to"].as_str().unwrap_or_default().to_owned();
    let template = body["type"] == "template";
    let statuses = {
        let (state, wamid, digits) = (state.clone(), wamid.clone(), digits.clone());
        async move {
            for status in ["sent", "delivered", "read"] {
                tokio::time::sleep(state.settings.status_delay).await;
                let payload =
                    graph::status_payload(&phone_number_id, &wamid, status, &digits, now_secs());
                deliver_with_retries(&state, &phone_number_id, payload).await;
            }
        }
    };
    if state.settings.send_statuses {
        tokio::spawn(statuses);
    }
    (StatusCode::OK, Json(graph::sent(&to, &digits, &wamid, template))).into_response()
}

#[derive(Deserialize)]
struct Fault {
    to: String,
    code: i64,
    times: Option<u32>,
}

async fn add_fault(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Fault>, axum::extract::rejection::JsonRejection>,
) -> axum::response::Response {
    let Ok(Json(fault)) = body else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"to\",\"code\",\"times\"}");
    };
    let digits = fault.to.trim_start_matches('+').to_owned();
    let times = fault.times.unwrap_or(1);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || times == 0 {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "to must be a phone number, times at least 1",
        );
    }
    if let Ok(mut memory) = state.memory.lock() {
        memory.faults.insert(digits.clone(), (fault.code, times));
    }
    (StatusCode::CREATED, Json(json!({"to": fault.to, "code": fault.code, "times": times})))
        .into_response()
}

#[derive(Deserialize)]
struct SentQuery {
    to: Option<String>,
}

async fn list_sent(
    State(state): State<Arc<AppState>>,
    Query(query): Query<SentQuery>,
) -> axum::response::Response {
    let wanted = query.to.map(|t| t.trim_start_matches('+').to_owned());
    let items: Vec<Value> = state
        .memory
        .lock()
        .map(|m| {
            m.sent
                .iter()
                .filter(|s| {
                    wanted.as_deref().is_none_or(|w| {
                        s["to"].as_str().is_some_and(|to| to.trim_start_matches('+') == w)
                    })
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    Json(json!({ "items": items })).into_response()
}

/// `GET /{version}/{phone-number-id}`: what health checks ask.
async fn phone_number(Path((_version, id)): Path<(String, String)>) -> axum::response::Response {
    Json(json!({
        "id": id,
        "display_phone_number": "15550000000",
        "verified_name": "Switchboard Sandbox",
        "quality_rating": "GREEN",
        "code_verification_status": "VERIFIED",
    }))
    .into_response()
}

async fn list_templates(
    State(state): State<Arc<AppState>>,
    Path((_version, waba_id)): Path<(String, String)>,
) -> axum::response::Response {
    let data = state
        .memory
        .lock()
        .map(|m| m.templates.get(&waba_id).cloned().unwrap_or_default())
        .unwrap_or_default();
    Json(json!({ "data": data, "paging": {} })).into_response()
}

async fn create_template(
    State(state): State<Arc<AppState>>,
    Path((_version, waba_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return graph_reply(graph::error(100, Some("The request body is not JSON.")));
    };
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    let language = body["language"].as_str().unwrap_or_default().to_owned();
    let category = body["category"].as_str().unwrap_or_default().to_owned();
    if name.is_empty()
        || !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return graph_reply(graph::error(
            100,
            Some("Param name must be lower case letters, digits and underscores."),
        ));
    }
    if language.is_empty()
        || !matches!(category.as_str(), "AUTHENTICATION" | "MARKETING" | "UTILITY")
    {
        return graph_reply(graph::error(
            100,
            Some(
                "Params language and category (AUTHENTICATION, MARKETING or UTILITY) are required.",
            ),
        ));
    }
    let id =
        u64::from_be_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or_default())
            >> 12;
    {
        let Ok(mut memory) = state.memory.lock() else {
            return graph_reply(graph::error(131000, None));
        };
        let list = memory.templates.entry(waba_id.clone()).or_default();
        if list.iter().any(|t| t["name"] == name && t["language"] == language) {
            return graph_reply(graph::error(
                100,
                Some("Message template already exists in this language."),
            ));
        }
        let mut stored = body.clone();
        stored["id"] = json!(id.to_string());
        stored["status"] = json!("PENDING");
        list.push(stored);
    }
    let review = {
        let state = state.clone();
        let (name, language, category) = (name.clone(), language.clone(), category.clone());
        async move {
            tokio::time::sleep(state.settings.status_delay).await;
            if let Ok(mut memory) = state.memory.lock()
                && let Some(t) = memory
                    .templates
                    .get_mut(&waba_id)
                    .and_then(|l| l.iter_mut().find(|t| t["id"] == json!(id.to_string())))
            {
                t["status"] = json!("APPROVED");
            }
            let payload = graph::template_status_payload(
                &waba_id, id, &name, &language, &category, "APPROVED",
            );
            deliver_with_retries(&state, &waba_id, payload).await;
        }
    };
    tokio::spawn(review);
    Json(json!({ "id": id.to_string(), "status": "PENDING", "category": category })).into_response()
}

#[derive(Deserialize)]
struct DeleteQuery {
    name: Option<String>,
}

async fn delete_template(
    State(state): State<Arc<AppState>>,
    Path((_version, waba_id)): Path<(String, String)>,
    Query(query): Query<DeleteQuery>,
) -> axum::response::Response {
    let Some(name) = query.name.filter(|n| !n.is_empty()) else {
        return graph_reply(graph::error(100, Some("Param name is required.")));
    };
    let removed = state
        .memory
        .lock()
        .map(|mut m| {
            let list = m.templates.entry(waba_id).or_default();
            let before = list.len();
            list.retain(|t| t["name"] != name);
            before != list.len()
        })
        .unwrap_or(false);
    if removed {
        Json(json!({ "success": true })).into_response()
    } else {
        graph_reply(graph::error(100, Some("Message template not found.")))
    }
}
