use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::Resources;
use adapters::store::channels::ChannelStore;
use adapters::store::tenants::TenantStore;
use edge::principal::Authenticator;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
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
        adapters::graph::GraphConfig::from_env(),
    );
    lambda_http::run(service_fn(|request| channel::handle(&deps, request))).await
}
