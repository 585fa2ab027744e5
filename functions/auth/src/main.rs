use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::operator::ensure_operator_from_env;
use adapters::store::tenants::TenantStore;
use auth::{Deps, LockoutPolicy};
use domain::passwords::Passwords;
use edge::tokens::token_keys_from_env;
use lambda_http::{Error, service_fn};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let keys = Arc::new(token_keys_from_env(&clients).await?);
    let lockout = LockoutPolicy::from_env()?;
    let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table);
    if let Some(email) = ensure_operator_from_env(&clients, &store).await? {
        tracing::info!(email, "operator account created");
    }
    let deps = Deps::new(store, keys, Passwords::new()?, lockout);
    lambda_http::run(service_fn(|request| auth::handle(&deps, request))).await
}
