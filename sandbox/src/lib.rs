//! A local stand-in for Meta's WhatsApp Cloud API (the Graph API), so that the whole
//! system runs and is tested offline. It speaks the Cloud API's shapes; the send,
//! status-webhook and control (`/_sandbox/...`) endpoints arrive with the messaging work.

use axum::Router;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use std::net::SocketAddr;
use tokio::net::TcpListener;

pub struct Application {
    listener: TcpListener,
}

impl Application {
    /// Binds `addr`; port 0 picks a free port (tests).
    pub async fn build(addr: SocketAddr) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await? })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        axum::serve(self.listener, router()).with_graceful_shutdown(shutdown).await
    }
}

pub fn router() -> Router {
    Router::new().route("/health", get(health)).fallback(unknown_path)
}

async fn health() -> impl IntoResponse {
    axum::Json(serde_json::json!({"status": "ok", "service": "whatsapp-sandbox"}))
}

/// What the Graph API answers for a path it does not know.
async fn unknown_path() -> impl IntoResponse {
    (
        StatusCode::BAD_REQUEST,
        axum::Json(serde_json::json!({
            "error": {
                "message": "Unknown path components",
                "type": "OAuthException",
                "code": 2500,
                "fbtrace_id": "sandbox"
            }
        })),
    )
}
