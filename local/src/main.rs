//! `switchboard-local`: the whole system on one machine. Reads where the emulator is from
//! the standard AWS variables (`AWS_ENDPOINT_URL`), creates the resources under
//! `STACK_PREFIX` if they are missing, then serves every route on `PORT`.

use shared::aws::{AwsClients, bootstrap};
use std::net::{Ipv4Addr, SocketAddr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    shared::telemetry::init();
    let port = shared::config::port("PORT", 3000)?;
    let prefix = std::env::var("STACK_PREFIX").unwrap_or_else(|_| "switchboard-local".into());

    let clients = AwsClients::from_env().await;
    let resources = bootstrap::ensure(&clients, &prefix).await?;
    let app = local::Application::build(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        clients,
        resources,
    )
    .await?;
    tracing::info!(addr = %app.local_addr()?, prefix, "local stack listening");
    app.run_until_stopped(shared::shutdown::signal()).await?;
    Ok(())
}
