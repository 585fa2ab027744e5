//! What the function reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::config::{Resources, StartError};
use adapters::events::PartnerEvents;
use adapters::queues::Queue;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use adapters::webhook_client::WebhookClient;
use edge::config::ApiConfig;
use edge::principal::Authenticator;

/// The HTTP functions' configuration, and the destination rules (`WEBHOOK_ALLOWED_CIDRS`).
#[derive(Clone)]
pub struct Config {
    pub api: ApiConfig,
    pub client: WebhookClient,
}

impl Config {
    pub async fn from_env(clients: &AwsClients) -> Result<Self, StartError> {
        Ok(Self { api: ApiConfig::from_env(clients).await?, client: WebhookClient::from_env()? })
    }
}

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Self {
            tenants: TenantStore::of(clients, resources),
            messages: MessageStore::of(clients, resources),
            envelopes: Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            client: config.client.clone(),
            events: PartnerEvents::new(
                clients.sqs.clone(),
                resources.partner_events_queue_url.clone(),
            ),
            retries: Queue::new(clients.sqs.clone(), resources.webhook_retries_queue_url.clone()),
            authenticator: Authenticator::of(config.api.token_keys.clone(), clients, resources),
        }
    }
}
