//! `switchboard-local`: the whole system on one machine. Reads where the emulator is from
//! the standard AWS variables (`AWS_ENDPOINT_URL`), creates the resources under
//! `STACK_PREFIX` if they are missing, creates the operator account from `OPERATOR_EMAIL`
//! and `OPERATOR_PASSWORD` if given (see `adapters::operator`), then serves every route on `PORT`.

use adapters::aws::{AwsClients, bootstrap};
use adapters::operator::ensure_operator_from_env;
use adapters::store::tenants::TenantStore;
use std::net::{Ipv4Addr, SocketAddr};

#[tokio::main]
async fn main() -> Result<(), adapters::config::StartError> {
    adapters::telemetry::init();
    let port = adapters::config::port("PORT", 3000)?;
    let prefix = std::env::var("STACK_PREFIX").unwrap_or_else(|_| "switchboard-local".into());

    let clients = AwsClients::from_env().await;
    let resources = bootstrap::ensure(&clients, &prefix).await?;
    let settings = local::Settings {
        api: edge::config::ApiConfig::from_env(&clients).await?,
        lockout: auth::LockoutPolicy::from_env()?,
        sender: message_sender::Policy::default(),
        platform_app: meta_webhook::PlatformApp::from_env(),
        // NOTE: LOCAL_PROCESSORS=off measures ingest alone (make bench); never in make dev.
        webhooks: webhook_dispatcher::Config::from_env()?,
        run_processors: std::env::var("LOCAL_PROCESSORS").map_or(true, |v| v != "off"),
        deliver_webhooks: true,
    };

    let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
    if let Some(email) = ensure_operator_from_env(&clients, &store).await? {
        tracing::info!(email, "operator account created");
    }

    let app = local::Application::build(
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        clients,
        resources,
        settings,
    )
    .await?;
    tracing::info!(addr = %app.local_addr()?, prefix, "local stack listening");
    app.run_until_stopped(adapters::shutdown::signal()).await?;
    Ok(())
}
