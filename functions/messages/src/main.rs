use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::Resources;
use adapters::graph::GraphConfig;
use adapters::store::channels::ChannelStore;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use edge::principal::Authenticator;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let authenticator = Authenticator::from_env(&clients, &resources).await?;
    let deps = messages::Deps::new(
        MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
        TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
        Channels::new(
            ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
            Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            SandboxCredentials::from_env(),
        ),
        clients.sqs.clone(),
        messages::OutboundQueues {
            high: resources.outbound_high_queue_url.clone(),
            standard: resources.outbound_standard_queue_url.clone(),
        },
        GraphConfig::from_env(),
        authenticator,
    );
    lambda_http::run(service_fn(|request| messages::handle(&deps, request))).await
}
