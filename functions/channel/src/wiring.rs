//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::channel::Channels;
use adapters::config::{Resources, StartError};
use adapters::store::tenants::TenantStore;
use edge::config::ApiConfig;
use edge::principal::Authenticator;

/// The HTTP functions' common start-up configuration.
pub type Config = ApiConfig;

impl Deps {
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        config: &Config,
    ) -> Result<Self, StartError> {
        Ok(Deps::new(
            Channels::of(clients, resources, config.sandbox.clone()),
            TenantStore::of(clients, resources),
            (adapters::sessions::Sessions::of(clients, resources), config.pools.clone()),
            Authenticator::of(config.token_keys.clone(), clients, resources),
            config.graph.clone(),
        )?)
    }
}
