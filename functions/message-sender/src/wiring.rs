//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Policy;
use adapters::channel::SandboxCredentials;
use adapters::graph::GraphConfig;

pub struct Config {
    pub sandbox: SandboxCredentials,
    pub graph: GraphConfig,
    pub policy: Policy,
}

impl Config {
    pub fn from_env() -> Result<Self, adapters::config::ConfigError> {
        Ok(Self {
            sandbox: SandboxCredentials::from_env(),
            graph: GraphConfig::from_env()?,
            policy: Policy::default(),
        })
    }
}
