//! The tenant eraser. On `tenant-erasure` it deletes every item of a tenant its platform
//! deleted, in every table (`adapters::store::erasure`), within a time budget: what is not
//! done is queued again at once. Once nothing is left it sweeps once more fifteen minutes
//! later, for what was in flight when the tenant went (a webhook being processed, a
//! message being sent). It never touches a tenant whose tenant item still exists: that
//! delete was not made (yet), and the message waits for it a while, then gives up. A
//! WhatsApp Web session of the tenant leaves its pool and is stopped first.

use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::queues::{Erasure, Inbox, Queue, batch_response};
use adapters::resources::TENANT_ERASURE_QUEUE;
use adapters::sessions::Sessions;
use adapters::store::TenantScope;
use adapters::store::tenant_data::TenantData;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// How long one invocation erases before it hands the rest to the next (the function's
/// timeout is 300 s).
const BUDGET: Duration = Duration::from_secs(240);
/// When the last sweep runs.
const SWEEP_AFTER: Duration = Duration::from_secs(900);
/// How long, and how often, an erasure waits for its tenant item to go.
const WAIT: Duration = Duration::from_secs(30);
const MAX_WAITS: u32 = 10;

pub struct Deps {
    eraser: TenantData,
    sessions: Sessions,
    queue: Queue<Erasure>,
    inbox: Inbox,
}

impl Deps {
    pub fn build(clients: &AwsClients, resources: &Resources) -> Self {
        Self {
            eraser: TenantData::of(clients, resources),
            sessions: Sessions::of(clients, resources),
            queue: Queue::new(clients.sqs.clone(), resources.tenant_erasure_queue_url.clone()),
            inbox: Inbox::new(clients.sqs.clone(), resources, &[TENANT_ERASURE_QUEUE]),
        }
    }
}

/// Erases the tenant of each record; a record whose step failed is reported alone.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut failed = Vec::new();
    for record in &event.records {
        let outcome = match Inbox::parse::<Erasure>(record) {
            Ok(order) => erase(deps, &order).await,
            Err(poison) => {
                if deps.inbox.failed(record, Some(poison.clone()), &poison).await {
                    failed.push(record);
                }
                continue;
            }
        };
        if let Err(e) = outcome
            && deps.inbox.failed(record, None, e.as_ref()).await
        {
            failed.push(record);
        }
    }
    batch_response(failed)
}

type Error = Box<dyn std::error::Error + Send + Sync>;

async fn erase(deps: &Deps, order: &Erasure) -> Result<(), Error> {
    let scope = TenantScope::of_record(order);
    if deps.eraser.tenant_exists(&scope).await? {
        if order.waits >= MAX_WAITS {
            warn!(tenant_id = %scope, "tenant still there: its deletion was not made, nothing erased");
            return Ok(());
        }
        let again = Erasure { waits: order.waits + 1, ..order.clone() };
        deps.queue.send_delayed(&[(&again, WAIT)]).await?;
        return Ok(());
    }
    if deps.sessions.stop(&scope).await? {
        info!(tenant_id = %scope, "the erased tenant's session left its pool");
    }
    let erased = deps.eraser.erase(&scope, Instant::now() + BUDGET).await?;
    info!(tenant_id = %scope, items = erased.items, done = erased.done, sweep = order.sweep, "tenant erased");
    if !erased.done {
        deps.queue.send(order).await?;
    } else if order.sweep == 0 {
        let last = Erasure { sweep: 1, ..order.clone() };
        deps.queue.send_delayed(&[(&last, SWEEP_AFTER)]).await?;
    }
    Ok(())
}
