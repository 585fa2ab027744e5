use aws_lambda_events::event::sqs::SqsEvent;
use lambda_runtime::{Error, LambdaEvent, service_fn};
use shared::aws::AwsClients;
use shared::config::Resources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let deps = message_sender::Deps::from_parts(
        &clients,
        &resources,
        shared::channel::SandboxCredentials::from_env(),
        shared::graph::GraphConfig::from_env(),
        message_sender::Policy::default(),
    );
    lambda_runtime::run(service_fn(|event: LambdaEvent<SqsEvent>| async {
        Ok::<_, Error>(message_sender::handle(&deps, event.payload).await)
    }))
    .await
}
