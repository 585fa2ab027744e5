use adapters::aws::AwsClients;
use adapters::config::Resources;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let config = b2b::Config::from_env(&clients).await?;
    let deps = b2b::Deps::build(&clients, &resources, &config);
    lambda_http::run(service_fn(|request| b2b::handle(&deps, request))).await
}
