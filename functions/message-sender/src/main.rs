use adapters::aws::AwsClients;
use adapters::config::Resources;
use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let deps =
        message_sender::Deps::build(&clients, &resources, &message_sender::Config::from_env()?)?;
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(message_sender::handle(&deps, event.payload).await)
    }))
    .await
}
