use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::AwsClients;
use shared::config::Resources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let deps = webhook_processor::Deps::build(&clients, &resources);
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(webhook_processor::handle(&deps, event.payload).await)
    }))
    .await
}
