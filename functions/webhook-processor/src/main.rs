use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::AwsClients;
use shared::config::Resources;
use shared::store::messages::MessageStore;
use shared::store::tenants::TenantStore;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let deps = webhook_processor::Deps::new(
        MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
        clients.sqs.clone(),
        resources.partner_events_queue_url.clone(),
    )
    .with_auto_assignment(TenantStore::new(
        clients.dynamodb.clone(),
        resources.tenants_table.clone(),
    ));
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(webhook_processor::handle(&deps, event.payload).await)
    }))
    .await
}
