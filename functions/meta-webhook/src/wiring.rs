//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::{Deps, PlatformApp};
use adapters::aws::AwsClients;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::{ConfigError, Resources};
use adapters::resources::INBOUND_EVENTS_QUEUE;
use adapters::store::messages::MessageStore;

pub struct Config {
    pub sandbox: SandboxCredentials,
    pub platform_app: PlatformApp,
}

impl Config {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self {
            sandbox: SandboxCredentials::from_env(),
            platform_app: PlatformApp::load(clients).await?,
        })
    }
}

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Deps::new(
            Channels::of(clients, resources, config.sandbox.clone()),
            MessageStore::of(clients, resources),
            clients.sqs.clone(),
            resources.inbound_events_queue_url.clone(),
            resources.dlq_url(&INBOUND_EVENTS_QUEUE).to_owned(),
        )
        .with_platform_app(config.platform_app.clone())
    }
}
