use adapters::aws::AwsClients;
use adapters::config::Resources;
use lambda_http::{Error, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let deps = health::Deps::new(AwsClients::from_env().await, resources);
    lambda_http::run(service_fn(|request| health::handle(&deps, request))).await
}
