use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::graph::GraphConfig;
use lambda_runtime::{Error, LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    adapters::telemetry::init();
    let resources = Resources::from_env()?;
    let clients = AwsClients::from_env().await;
    let deps = gateway_health::Deps::build(&clients, &resources, GraphConfig::from_env()?)?;
    // The schedule's event says nothing the run needs: it checks what is due now.
    lambda_runtime::run(service_fn(|_: LambdaEvent<serde_json::Value>| async {
        let checked = gateway_health::run(&deps, domain::time::now_secs()).await?;
        Ok::<_, Error>(
            serde_json::json!({"healthy": checked.healthy, "unhealthy": checked.unhealthy}),
        )
    }))
    .await
}
