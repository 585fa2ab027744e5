//! A tenant's channel with its secrets opened, for the functions that use them (webhook
//! signature checks, sending). Opened secrets are cached in the warm process for a short
//! time: a webhook burst costs one KMS call, not one per event. A changed channel takes
//! effect in other warm processes within [`CACHE_TTL`].

use crate::aws::envelope::{EnvelopeError, Envelopes};
use crate::store::channels::{ChannelRecord, ChannelStore};
use crate::store::{StoreError, TenantScope};
use domain::channel::{ChannelConfig, Provider, SecretName};
use domain::ids::TenantId;
use secrecy::{ExposeSecret, SecretString};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const CACHE_TTL: Duration = Duration::from_secs(300);
/// A warm process serves a bounded number of tenants' channels from memory.
pub const CACHE_MAX_ENTRIES: usize = 1024;

/// Credentials of the local Cloud API sandbox: a tenant whose channel is
/// `provider: sandbox` is served with these (locally and in non-production stages).
#[derive(Clone, Default)]
pub struct SandboxCredentials {
    pub app_secret: Option<SecretString>,
    pub verify_token: Option<SecretString>,
}

impl SandboxCredentials {
    pub fn from_env() -> Self {
        let var =
            |n| std::env::var(n).ok().filter(|v: &String| !v.is_empty()).map(SecretString::from);
        Self { app_secret: var("SANDBOX_APP_SECRET"), verify_token: var("SANDBOX_VERIFY_TOKEN") }
    }
}

pub struct OpenChannel {
    /// The channel's tenant: a webhook whose signature this channel's secret verifies acts
    /// for it.
    pub scope: TenantScope,
    pub config: ChannelConfig,
    secrets: BTreeMap<SecretName, SecretString>,
}

impl OpenChannel {
    pub fn secret(&self, name: SecretName) -> Option<&str> {
        self.secrets.get(&name).map(|s| s.expose_secret())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
    #[error("the stored secrets are not a JSON object")]
    Corrupt,
}

type Cached = (Instant, Option<Arc<OpenChannel>>);

#[derive(Clone)]
pub struct Channels {
    store: ChannelStore,
    envelopes: Envelopes,
    sandbox: SandboxCredentials,
    cache: Arc<Mutex<HashMap<TenantId, Cached>>>,
}

impl Channels {
    /// A deployment's channels, with a cache of this process's own.
    pub fn of(
        clients: &crate::aws::AwsClients,
        resources: &crate::config::Resources,
        sandbox: SandboxCredentials,
    ) -> Self {
        Self::new(
            ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
            Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            sandbox,
        )
    }

    pub fn new(store: ChannelStore, envelopes: Envelopes, sandbox: SandboxCredentials) -> Self {
        Self { store, envelopes, sandbox, cache: Arc::default() }
    }

    pub fn store(&self) -> &ChannelStore {
        &self.store
    }

    pub fn envelopes(&self) -> &Envelopes {
        &self.envelopes
    }

    /// The tenant's channel with secrets opened; `None` when it has none.
    pub async fn open(&self, tenant: &TenantId) -> Result<Option<Arc<OpenChannel>>, ChannelError> {
        if let Ok(cache) = self.cache.lock()
            && let Some((at, channel)) = cache.get(tenant)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(channel.clone());
        }
        let opened = match self.store.get_for(tenant).await? {
            Some(record) => Some(Arc::new(self.open_record(tenant, record).await?)),
            None => None,
        };
        // NOTE: only channels that exist are cached, and the cache is bounded: webhooks to
        // made-up tenant ids must not grow a warm process's memory.
        if let Some(channel) = &opened
            && let Ok(mut cache) = self.cache.lock()
        {
            if cache.len() >= CACHE_MAX_ENTRIES {
                cache.retain(|_, (at, _)| at.elapsed() < CACHE_TTL);
                if cache.len() >= CACHE_MAX_ENTRIES {
                    cache.clear();
                }
            }
            cache.insert(tenant.clone(), (Instant::now(), Some(channel.clone())));
        }
        Ok(opened)
    }

    /// Drops a tenant's cached channel (after this process changed it).
    pub fn forget(&self, tenant: &TenantId) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.remove(tenant);
        }
    }

    async fn open_record(
        &self,
        tenant: &TenantId,
        record: ChannelRecord,
    ) -> Result<OpenChannel, ChannelError> {
        let mut secrets = BTreeMap::new();
        if let Some(sealed) = &record.sealed_secrets {
            let plain = self.envelopes.open(tenant, sealed).await?;
            let map: BTreeMap<String, String> =
                serde_json::from_slice(&plain).map_err(|_| ChannelError::Corrupt)?;
            for (name, value) in map {
                let name = SecretName::parse(&name).ok_or(ChannelError::Corrupt)?;
                secrets.insert(name, SecretString::from(value));
            }
        }
        if record.config.provider() == Provider::Sandbox {
            if let Some(s) = &self.sandbox.app_secret {
                secrets.insert(SecretName::AppSecret, s.clone());
            }
            if let Some(s) = &self.sandbox.verify_token {
                secrets.insert(SecretName::VerifyToken, s.clone());
            }
        }
        Ok(OpenChannel { scope: TenantScope::new(tenant.clone()), config: record.config, secrets })
    }
}
