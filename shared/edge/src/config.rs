//! What the HTTP functions read at start-up, read once by the same code in every one of
//! them (and given directly by the local stack).

use crate::tokens::{TokenKeys, token_keys_from_env};
use adapters::aws::AwsClients;
use adapters::channel::SandboxCredentials;
use adapters::config::ConfigError;
use adapters::graph::GraphConfig;
use std::sync::Arc;

#[derive(Clone)]
pub struct ApiConfig {
    /// Verifies (and, in the auth function, signs) access tokens.
    pub token_keys: Arc<TokenKeys>,
    /// The sandbox's credentials, for `sandbox` channels (none in production).
    pub sandbox: SandboxCredentials,
    /// Where Cloud API requests go.
    pub graph: GraphConfig,
    /// The session pools' sizes and idle times (`SESSION_*` overrides).
    pub pools: domain::sessions::PoolPolicies,
}

impl ApiConfig {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, ConfigError> {
        Ok(Self {
            token_keys: Arc::new(token_keys_from_env(clients).await?),
            sandbox: SandboxCredentials::from_env(),
            graph: GraphConfig::from_env()?,
            pools: domain::sessions::PoolPolicies::from_lookup(|name| std::env::var(name).ok())
                .map_err(|reason| ConfigError::Invalid { name: "SESSION_*".into(), reason })?,
        })
    }
}
