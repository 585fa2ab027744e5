use lambda_http::{Error, service_fn};
use shared::aws::AwsClients;
use shared::config::Resources;

#[tokio::main]
async fn main() -> Result<(), Error> {
    shared::telemetry::init();
    let resources = Resources::from_env()?;
    let deps = health::Deps::new(AwsClients::from_env().await, resources);
    lambda_http::run(service_fn(|request| health::handle(&deps, request))).await
}
