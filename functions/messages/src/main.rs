use lambda_http::{Error, service_fn};
use shared::auth::principal::Authenticator;
use shared::aws::AwsClients;
use shared::aws::envelope::Envelopes;
use shared::channel::{Channels, SandboxCredentials};
use shared::config::Resources;
use shared::graph::GraphConfig;
use shared::store::channels::ChannelStore;
use shared::store::messages::MessageStore;
use shared::store::tenants::TenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
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
