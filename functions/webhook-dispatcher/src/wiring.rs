//! What the dispatcher reads at start-up, and its dependencies built from it: the one place
//! both its `main` and the local stack wire it.

use crate::Deps;
use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::config::{ConfigError, Resources, StartError};
use adapters::queues::{Inbox, Queue};
use adapters::resources::{PARTNER_EVENTS_QUEUE, WEBHOOK_RETRIES_QUEUE};
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use adapters::webhook_client::WebhookClient;
use domain::webhooks::RetrySchedule;
use std::time::Duration;

/// Attempts one endpoint may have in flight, across every dispatcher instance.
pub const DEFAULT_ENDPOINT_CONCURRENCY: u32 = 10;

/// When attempts are made.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `WEBHOOK_RETRY_DELAYS`.
    pub schedule: RetrySchedule,
    /// `WEBHOOK_ENDPOINT_CONCURRENCY`.
    pub endpoint_concurrency: u32,
    /// How far past its schedule's total a delivery may still be retried (its attempts
    /// drift a little: busy endpoints, queues): later than that it is failed.
    pub deadline_grace: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            schedule: RetrySchedule::default(),
            endpoint_concurrency: DEFAULT_ENDPOINT_CONCURRENCY,
            deadline_grace: DEFAULT_DEADLINE_GRACE,
        }
    }
}

/// An hour past the schedule's total.
pub const DEFAULT_DEADLINE_GRACE: Duration = Duration::from_secs(3600);

impl Policy {
    /// The last moment (epoch seconds) a delivery made at `created_at` may be attempted.
    pub fn deadline(&self, created_at: i64) -> i64 {
        let after = self.schedule.total().saturating_add(self.deadline_grace).as_secs();
        created_at.saturating_add(i64::try_from(after).unwrap_or(i64::MAX / 2))
    }
}

/// The dispatcher's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub policy: Policy,
    /// The delivery client, with `WEBHOOK_ALLOWED_CIDRS`.
    pub client: WebhookClient,
}

impl Config {
    pub fn from_env() -> Result<Self, StartError> {
        let invalid =
            |name: &str, reason: String| ConfigError::Invalid { name: name.into(), reason };
        let schedule = match std::env::var("WEBHOOK_RETRY_DELAYS") {
            Ok(text) if !text.trim().is_empty() => {
                RetrySchedule::parse(&text).map_err(|e| invalid("WEBHOOK_RETRY_DELAYS", e))?
            }
            _ => RetrySchedule::default(),
        };
        let endpoint_concurrency = match std::env::var("WEBHOOK_ENDPOINT_CONCURRENCY") {
            Ok(text) => {
                text.trim().parse::<u32>().ok().filter(|n| (1..=100).contains(n)).ok_or_else(
                    || invalid("WEBHOOK_ENDPOINT_CONCURRENCY", format!("{text:?} is not 1 to 100")),
                )?
            }
            Err(_) => DEFAULT_ENDPOINT_CONCURRENCY,
        };
        Ok(Self {
            policy: Policy { schedule, endpoint_concurrency, ..Policy::default() },
            client: WebhookClient::from_env()?,
        })
    }
}

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources, config: &Config) -> Self {
        Self {
            tenants: TenantStore::of(clients, resources),
            messages: MessageStore::of(clients, resources),
            envelopes: Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            client: config.client.clone(),
            retries: Queue::new(clients.sqs.clone(), resources.webhook_retries_queue_url.clone()),
            inbox: Inbox::new(
                clients.sqs.clone(),
                resources,
                &[PARTNER_EVENTS_QUEUE, WEBHOOK_RETRIES_QUEUE],
            ),
            policy: config.policy.clone(),
            keys: Default::default(),
            crashes: Default::default(),
            next_slot: Default::default(),
            links: Default::default(),
        }
    }
}
