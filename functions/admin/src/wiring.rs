//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use edge::config::ApiConfig;
use edge::principal::Authenticator;

/// The HTTP functions' common start-up configuration.
pub type Config = ApiConfig;

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Deps::new(
            MessageStore::of(clients, resources),
            TenantStore::of(clients, resources),
            clients.sqs.clone(),
            resources.inbound_events_queue_url.clone(),
            Authenticator::of(config.token_keys.clone(), clients, resources),
        )
        .with_pools(adapters::store::pool::PoolStore::of(clients, resources), config.pools.clone())
    }
}
