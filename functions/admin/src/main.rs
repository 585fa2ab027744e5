use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::store::messages::MessageStore;
use edge::principal::Authenticator;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let authenticator = Authenticator::from_env(&clients, &resources).await?;
    let deps = admin::Deps::new(
        MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
        clients.sqs.clone(),
        resources.inbound_events_queue_url.clone(),
        authenticator,
    );
    lambda_http::run(service_fn(|request| admin::handle(&deps, request))).await
}
