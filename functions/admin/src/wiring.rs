//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::config::{ConfigError, Resources};
use adapters::store::messages::MessageStore;
use edge::principal::Authenticator;
use edge::tokens::{TokenKeys, token_keys_from_env};
use std::sync::Arc;

pub struct Config {
    pub token_keys: Arc<TokenKeys>,
}

impl Config {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self { token_keys: Arc::new(token_keys_from_env(clients).await?) })
    }
}

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Deps::new(
            MessageStore::of(clients, resources),
            clients.sqs.clone(),
            resources.inbound_events_queue_url.clone(),
            Authenticator::of(config.token_keys.clone(), clients, resources),
        )
    }
}
