//! A local stand-in for Meta's WhatsApp Cloud API (the Graph API), so that the whole
//! system runs and is tested offline. It speaks the Cloud API's shapes.
//!
//! Control API (for tests and people trying the system):
//! - `POST /_sandbox/inbound {"tenantId","from","text"}`: a customer writes to a tenant.
//!   The sandbox sends the tenant's webhook exactly what Meta would: a signed
//!   `whatsapp_business_account` payload with one text message.
//!
//! Sending (`/{version}/{phone-number-id}/messages`) and status webhooks arrive with the
//! outbound pipeline.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use shared::domain::meta::signature_header;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The sandbox's own phone number id, in the payloads it sends.
pub const PHONE_NUMBER_ID: &str = "100000000000000";

#[derive(Clone)]
pub struct Settings {
    /// Signs the webhooks the sandbox sends (Switchboard's `SANDBOX_APP_SECRET`).
    pub app_secret: String,
    /// Where Switchboard's API is (`http://127.0.0.1:3000` under `make dev`).
    pub switchboard_url: String,
}

impl Settings {
    pub fn from_env() -> Self {
        Self {
            app_secret: std::env::var("SANDBOX_APP_SECRET")
                .unwrap_or_else(|_| "local-sandbox-app-secret".into()),
            switchboard_url: std::env::var("SWITCHBOARD_URL")
                .unwrap_or_else(|_| "http://127.0.0.1:3000".into()),
        }
    }
}

struct AppState {
    settings: Settings,
    http: reqwest::Client,
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

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let http =
            reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap_or_default();
        let state = Arc::new(AppState { settings: self.settings, http });
        axum::serve(self.listener, router(state)).with_graceful_shutdown(shutdown).await
    }
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/_sandbox/inbound", post(inbound))
        .fallback(unknown_path)
        .with_state(state)
}

async fn health() -> impl IntoResponse {
    Json(json!({"status": "ok", "service": "whatsapp-sandbox"}))
}

fn problem(status: StatusCode, detail: impl Into<String>) -> axum::response::Response {
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

/// The webhook Meta sends when a customer writes a text message.
pub fn text_message_payload(
    from_digits: &str,
    name: &str,
    wamid: &str,
    text: &str,
    timestamp: u64,
) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "100000000000001",
            "changes": [{
                "field": "messages",
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": PHONE_NUMBER_ID},
                    "contacts": [{"profile": {"name": name}, "wa_id": from_digits}],
                    "messages": [{"from": from_digits, "id": wamid, "timestamp": timestamp.to_string(), "type": "text", "text": {"body": text}}]
                }
            }]
        }]
    })
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
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let name = request.name.as_deref().unwrap_or("Sandbox customer");
    let payload = text_message_payload(digits, name, &wamid, &request.text, now).to_string();
    let url = format!(
        "{}/api/whatsapp/webhook/{}",
        state.settings.switchboard_url.trim_end_matches('/'),
        request.tenant_id
    );
    let sent = state
        .http
        .post(url)
        .header("content-type", "application/json")
        .header(
            "x-hub-signature-256",
            signature_header(state.settings.app_secret.as_bytes(), payload.as_bytes()),
        )
        .body(payload)
        .send()
        .await;
    match sent {
        Ok(response) if response.status().is_success() => (
            StatusCode::ACCEPTED,
            Json(json!({"wamid": wamid, "webhookStatus": response.status().as_u16()})),
        )
            .into_response(),
        Ok(response) => problem(
            StatusCode::BAD_GATEWAY,
            format!("Switchboard answered the webhook with {}", response.status().as_u16()),
        ),
        Err(e) => problem(
            StatusCode::BAD_GATEWAY,
            format!("Switchboard did not answer: {}", e.without_url()),
        ),
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
