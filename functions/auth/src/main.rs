use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::operator::ensure_operator_from_env;
use adapters::store::tenants::TenantStore;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let config = auth::Config::from_env(&clients).await?;
    let deps = auth::Deps::build(&clients, &resources, &config)?;
    if let Some(email) =
        ensure_operator_from_env(&clients, &TenantStore::of(&clients, &resources)).await?
    {
        tracing::info!(email, "operator account created");
    }
    lambda_http::run(service_fn(|request| auth::handle(&deps, request))).await
}
