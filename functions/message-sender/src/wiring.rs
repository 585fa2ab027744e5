//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::{Deps, Policy};
use adapters::aws::AwsClients;
use adapters::channel::SandboxCredentials;
use adapters::config::{Resources, StartError};
use adapters::graph::GraphConfig;

pub struct Config {
    pub sandbox: SandboxCredentials,
    pub graph: GraphConfig,
    pub policy: Policy,
}

impl Config {
    pub fn from_env() -> Self {
        Self {
            sandbox: SandboxCredentials::from_env(),
            graph: GraphConfig::from_env(),
            policy: Policy::default(),
        }
    }
}

impl Deps {
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        config: &Config,
    ) -> Result<Self, StartError> {
        Ok(Deps::from_parts(
            clients,
            resources,
            config.sandbox.clone(),
            config.graph.clone(),
            config.policy,
        )?)
    }
}
