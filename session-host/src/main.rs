//! `session-host`: the session host (see the crate's docs and [`session_host::run_from_env`]).
//! `session-host --health-check` asks a running host's `GET /health` (on `HEALTH_PORT`) and
//! exits 0 when it is healthy: the container's health check, with no curl in the image.

#[tokio::main]
async fn main() -> Result<(), adapters::config::StartError> {
    if std::env::args().nth(1).as_deref() == Some("--health-check") {
        let port = adapters::config::port("HEALTH_PORT", 8080)?;
        let healthy = session_host::health_check(port).await;
        std::process::exit(if healthy { 0 } else { 1 });
    }
    session_host::run_from_env().await
}
