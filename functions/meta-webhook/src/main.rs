use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::Resources;
use adapters::resources::INBOUND_EVENTS_QUEUE;
use adapters::store::channels::ChannelStore;
use adapters::store::messages::MessageStore;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let channels = Channels::new(
        ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
        Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
        SandboxCredentials::from_env(),
    );
    let deps = meta_webhook::Deps::new(
        channels,
        MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
        clients.sqs.clone(),
        resources.inbound_events_queue_url.clone(),
        resources.dlq_url(&INBOUND_EVENTS_QUEUE).to_owned(),
    )
    .with_platform_app(meta_webhook::PlatformApp::load(&clients).await?);
    lambda_http::run(service_fn(|request| meta_webhook::handle(&deps, request))).await
}
