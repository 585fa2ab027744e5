//! The gateway health checker. Every minute (an EventBridge schedule; a timer in the local
//! stack) it reads the tenants' gateway channels whose check is due (each channel's
//! `healthCheckInterval`, 60 s by default), asks each gateway's `GET {apiUrl}/health`
//! through the destination-checked client, and records `healthy` or `unhealthy` on the
//! channel. The message sender holds messages for an unhealthy gateway rather than post
//! them to it; `GET /api/whatsapp/channel` shows the status.

use adapters::aws::AwsClients;
use adapters::channel::{Channels, SandboxCredentials};
use adapters::config::Resources;
use adapters::graph::{GraphConfig, HealthChecker};
use adapters::store::TenantScope;
use futures_util::stream::{self, StreamExt};
use tracing::{info, warn};

/// Gateways checked at once.
const IN_FLIGHT: usize = 16;

pub struct Deps {
    channels: Channels,
    checker: HealthChecker,
}

impl Deps {
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        graph: GraphConfig,
    ) -> Result<Self, adapters::config::StartError> {
        Ok(Self {
            channels: Channels::of(clients, resources, SandboxCredentials::default()),
            checker: HealthChecker::new(graph)?,
        })
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub healthy: usize,
    pub unhealthy: usize,
}

/// Checks every gateway that is due at `now` (epoch seconds).
pub async fn run(deps: &Deps, now: i64) -> Result<Checked, adapters::store::StoreError> {
    let due = deps.channels.store().gateways_due(now).await?;
    let outcomes: Vec<Option<bool>> = stream::iter(due)
        .map(|scope: TenantScope| async move {
            let tenant = scope.tenant_id().clone();
            // Opened fresh: a changed key or URL is used at once.
            deps.channels.forget(&tenant);
            let channel = match deps.channels.open(&tenant).await {
                Ok(Some(channel)) => channel,
                Ok(None) => return None,
                Err(e) => {
                    warn!(tenant_id = %tenant, error = %e, "gateway channel not opened");
                    return None;
                }
            };
            let healthy = deps.checker.check(&tenant, &channel).await;
            if let Err(e) = deps.channels.store().record_health(&scope, healthy).await {
                warn!(tenant_id = %tenant, error = %e, "gateway health not recorded");
            }
            if let Err(e) = deps.channels.store().gateway_checked(&tenant, now).await {
                warn!(tenant_id = %tenant, error = %e, "gateway check time not recorded");
            }
            if healthy == Some(false) {
                warn!(tenant_id = %tenant, "gateway unhealthy: its messages wait until it recovers");
            }
            healthy
        })
        .buffer_unordered(IN_FLIGHT)
        .collect()
        .await;
    let checked = Checked {
        healthy: outcomes.iter().filter(|o| **o == Some(true)).count(),
        unhealthy: outcomes.iter().filter(|o| **o == Some(false)).count(),
    };
    info!(healthy = checked.healthy, unhealthy = checked.unhealthy, "gateways checked");
    Ok(checked)
}
