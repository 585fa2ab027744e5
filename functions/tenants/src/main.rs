use lambda_http::{Error, service_fn};
use shared::auth::passwords::Passwords;
use shared::auth::principal::Authenticator;
use shared::aws::AwsClients;
use shared::config::Resources;
use shared::store::tenants::TenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
    let authenticator = Authenticator::from_env(&clients, &resources).await?;
    let deps = tenants::Deps::new(store, authenticator, Passwords::new()?);
    lambda_http::run(service_fn(|request| tenants::handle(&deps, request))).await
}
