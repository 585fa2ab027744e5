//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::{Deps, LockoutPolicy};
use adapters::aws::AwsClients;
use adapters::config::{Resources, StartError};
use adapters::store::tenants::TenantStore;
use domain::passwords::Passwords;
use edge::config::ApiConfig;

pub struct Config {
    pub api: ApiConfig,
    pub lockout: LockoutPolicy,
}

impl Config {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, StartError> {
        Ok(Self { api: ApiConfig::from_env(clients).await?, lockout: LockoutPolicy::from_env()? })
    }
}

impl Deps {
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        config: &Config,
    ) -> Result<Self, StartError> {
        Ok(Deps::new(
            TenantStore::of(clients, resources),
            config.api.token_keys.clone(),
            Passwords::new()?,
            config.lockout,
        ))
    }
}
