//! `whatsapp-sandbox`: the local Cloud API on `SANDBOX_PORT` (default 3001).

use std::net::{Ipv4Addr, SocketAddr};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    adapters::telemetry::init();
    let port = adapters::config::port("SANDBOX_PORT", 3001)?;
    let app = sandbox::Application::build(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        sandbox::Settings::from_env(),
    )
    .await?;
    tracing::info!(addr = %app.local_addr()?, "WhatsApp sandbox listening");
    app.run_until_stopped(adapters::shutdown::signal()).await?;
    Ok(())
}
