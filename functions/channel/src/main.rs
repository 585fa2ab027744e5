use lambda_http::{Error, service_fn};
use shared::auth::principal::Authenticator;
use shared::aws::AwsClients;
use shared::aws::envelope::Envelopes;
use shared::channel::{Channels, SandboxCredentials};
use shared::config::Resources;
use shared::store::channels::ChannelStore;
use shared::store::tenants::TenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let tenants = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
    let channels = Channels::new(
        ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
        Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
        SandboxCredentials::from_env(),
    );
    let authenticator = Authenticator::from_env(&clients, &resources).await?;
    let deps = channel::Deps::new(
        channels,
        tenants,
        authenticator,
        shared::graph::GraphConfig::from_env(),
    );
    lambda_http::run(service_fn(|request| channel::handle(&deps, request))).await
}
