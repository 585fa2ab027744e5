//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::config::{Resources, StartError};
use adapters::store::tenants::TenantStore;
use domain::passwords::Passwords;
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
            TenantStore::of(clients, resources),
            Authenticator::of(config.token_keys.clone(), clients, resources),
            Passwords::new()?,
        )
        .with_data(adapters::store::tenant_data::TenantData::of(clients, resources)))
    }
}
