//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::{Deps, OutboundQueues};
use adapters::aws::AwsClients;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::{ConfigError, Resources, StartError};
use adapters::graph::GraphConfig;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use edge::principal::Authenticator;
use edge::tokens::{TokenKeys, token_keys_from_env};
use std::sync::Arc;

pub struct Config {
    pub token_keys: Arc<TokenKeys>,
    pub sandbox: SandboxCredentials,
    pub graph: GraphConfig,
}

impl Config {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self {
            token_keys: Arc::new(token_keys_from_env(clients).await?),
            sandbox: SandboxCredentials::from_env(),
            graph: GraphConfig::from_env(),
        })
    }
}

impl Deps {
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        config: &Config,
    ) -> Result<Self, StartError> {
        Ok(Deps::new(
            MessageStore::of(clients, resources),
            TenantStore::of(clients, resources),
            Channels::of(clients, resources, config.sandbox.clone()),
            clients.sqs.clone(),
            OutboundQueues {
                high: resources.outbound_high_queue_url.clone(),
                standard: resources.outbound_standard_queue_url.clone(),
            },
            config.graph.clone(),
            Authenticator::of(config.token_keys.clone(), clients, resources),
        )?)
    }
}
