//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::{Deps, OutboundQueues};
use adapters::aws::AwsClients;
use adapters::channel::Channels;
use adapters::config::{Resources, StartError};
use adapters::store::messages::MessageStore;
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
        )?
        .with_sessions(adapters::sessions::Sessions::of(clients, resources)))
    }
}
