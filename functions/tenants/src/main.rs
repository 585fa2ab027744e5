use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::store::tenants::TenantStore;
use domain::passwords::Passwords;
use edge::principal::Authenticator;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
    let authenticator = Authenticator::from_env(&clients, &resources).await?;
    let deps = tenants::Deps::new(store, authenticator, Passwords::new()?);
    lambda_http::run(service_fn(|request| tenants::handle(&deps, request))).await
}
