//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::store::tenants::TenantStore;
use edge::config::ApiConfig;
use edge::principal::Authenticator;

/// The HTTP functions' common start-up configuration.
pub type Config = ApiConfig;

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Self {
            tenants: TenantStore::of(clients, resources),
            erasures: adapters::queues::Queue::new(
                clients.sqs.clone(),
                resources.tenant_erasure_queue_url.clone(),
            ),
            authenticator: Authenticator::of(config.token_keys.clone(), clients, resources),
            sessions: Some(adapters::sessions::Sessions::of(clients, resources)),
            pools: config.pools.clone(),
        }
    }
}
