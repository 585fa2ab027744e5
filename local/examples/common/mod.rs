//! What the benchmark examples share: their AWS clients and a quiet sandbox.

use adapters::aws::{AwsClients, emulator_config};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// Clients of the emulator at `endpoint`; DynamoDB at `AWS_ENDPOINT_URL_DYNAMODB` when set
/// (the SDK's own per-service variable): moto answers about 50 DynamoDB requests a second,
/// far below what these benchmarks need.
pub async fn bench_clients(endpoint: &str) -> AwsClients {
    let mut clients = AwsClients::for_emulator(endpoint).await;
    if let Ok(dynamodb) = std::env::var("AWS_ENDPOINT_URL_DYNAMODB") {
        clients.dynamodb = aws_sdk_dynamodb::Client::new(&emulator_config(&dynamodb).await);
    }
    clients
}

/// The sandbox on a free loopback port, with no status webhooks (only what is measured
/// runs); its URL.
pub async fn quiet_sandbox() -> std::io::Result<String> {
    let listener =
        tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let url = format!("http://{}", listener.local_addr()?);
    let sandbox = sandbox::Application::from_listener(
        listener,
        sandbox::Settings {
            app_secret: "bench".into(),
            switchboard_url: "http://127.0.0.1:9".into(),
            status_delay: Duration::from_secs(1),
            send_statuses: false,
            qr_ttl: Duration::from_secs(20),
        },
    );
    tokio::spawn(sandbox.run_until_stopped(std::future::pending()));
    Ok(url)
}
