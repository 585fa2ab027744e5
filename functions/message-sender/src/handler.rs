//! Sends queued outbound messages.
//!
//! Per batch, records are grouped by tenant. Per tenant: open the channel (cached), book
//! send slots for the whole group in the phone number's and the tenant's rate buckets
//! (DynamoDB, shared by every concurrent invocation), then send each message at its slot:
//! claim it just before (a conditional write: only one sender calls Meta for a message),
//! post it to the Graph API at the slot, record the wamid. Meta's error code decides what
//! happens next, as Meta's error reference says: throttling and transient errors come back
//! through the queue after a backoff with jitter (the record is requeued, delayed by it;
//! 130429 also pauses the number's bucket), a bad token marks the channel unhealthy
//! and fails the message, anything else fails it with Meta's code and title. Every
//! failure is announced to partners as a `message.status` event.

use crate::send::{fail, send_one};
use adapters::aws::AwsClients;
use adapters::channel::{Channels, OpenChannel};
use adapters::config::{Resources, StartError};
use adapters::events::PartnerEvents;
use adapters::graph::{GraphConfig, Target};
use adapters::queues::{Inbox, Poison, SendJob, batch_response};
use adapters::resources::{OUTBOUND_HIGH_QUEUE, OUTBOUND_STANDARD_QUEUE};
use adapters::store::messages::MessageStore;
use adapters::store::pacing::{Booking, Bucket, RateBuckets};
use adapters::store::tenants::TenantStore;
use adapters::store::{StoreError, TenantScope};
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::ids::TenantId;
use domain::pacing::{DEFAULT_MESSAGES_PER_SECOND, Rate, Reservation};
use futures_util::future::join_all;
use serde_json::json;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, instrument, warn};

/// How the sender waits and retries.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// The longest a batch waits for its send slots; beyond it, records come back later.
    pub max_pacing_wait: Duration,
    /// How long a claimed message is held while Meta is called.
    pub lease_secs: i64,
    /// First retry delay; each later one doubles (quadruples for pair rate limits).
    pub retry_base: Duration,
    pub retry_max: Duration,
    /// Sends of one message that Meta failed transiently before it is failed for good.
    pub transient_attempts: i64,
    /// The same for throttling; below the queues' receive limit, so that a message is
    /// failed with Meta's reason rather than left in a dead-letter queue.
    pub throttled_attempts: i64,
    pub http_timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            max_pacing_wait: Duration::from_secs(5),
            lease_secs: 60,
            retry_base: Duration::from_secs(2),
            retry_max: Duration::from_secs(900),
            transient_attempts: 5,
            throttled_attempts: 7,
            http_timeout: Duration::from_secs(10),
        }
    }
}

pub struct Deps {
    pub(crate) messages: MessageStore,
    pub(crate) channels: Channels,
    tenants: TenantStore,
    pub(crate) buckets: RateBuckets,
    pub(crate) events: PartnerEvents,
    inbox: Inbox,
    graph: GraphConfig,
    pub(crate) http: reqwest::Client,
    /// Tenants' own gateways are reached through the destination-checked client.
    pub(crate) gateway: adapters::webhook_client::WebhookClient,
    pub(crate) policy: Policy,
    plan_rates: Arc<Mutex<HashMap<TenantId, (Instant, u32)>>>,
    /// A B2B user's platform, for its counters.
    links: Arc<adapters::store::tenants::B2bLinks>,
}

impl Deps {
    /// Everything the sender uses, as its `main` and the local stack build it.
    pub fn build(
        clients: &AwsClients,
        resources: &Resources,
        config: &crate::Config,
    ) -> Result<Self, StartError> {
        Ok(Self {
            messages: MessageStore::of(clients, resources),
            channels: Channels::of(clients, resources, config.sandbox.clone()),
            tenants: TenantStore::of(clients, resources),
            buckets: RateBuckets::new(clients.dynamodb.clone(), resources.messages_table.clone()),
            events: PartnerEvents::new(
                clients.sqs.clone(),
                resources.partner_events_queue_url.clone(),
            ),
            inbox: Inbox::new(
                clients.sqs.clone(),
                resources,
                &[OUTBOUND_HIGH_QUEUE, OUTBOUND_STANDARD_QUEUE],
            ),
            graph: config.graph.clone(),
            http: adapters::graph::http_client(config.policy.http_timeout)?,
            gateway: config.graph.gateway_client()?,
            policy: config.policy,
            plan_rates: Arc::default(),
            links: Arc::default(),
        })
    }
}

/// What became of one record.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// Meta took the message and its wamid is recorded: delete the record.
    Sent,
    /// Failed for good, or nothing to do: delete the record.
    Done,
    /// Not yet (pacing, a busy lease, a backoff after Meta's answer): the record goes back
    /// to its queue as a new message delayed this long, so that waiting never uses up the
    /// receive budget that protects against our own failures.
    Retry(Duration),
    /// Something of ours failed (DynamoDB, KMS): the normal redelivery retries it.
    Error(String),
    /// Never processable: to the dead-letter queue at once.
    Poison(Poison),
}

impl From<StoreError> for Outcome {
    fn from(e: StoreError) -> Self {
        if e.retryable() {
            Outcome::Error(e.to_string())
        } else {
            Outcome::Poison(Poison(e.to_string()))
        }
    }
}

pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let mut outcomes: Vec<Option<Outcome>> = event.records.iter().map(|_| None).collect();
    let mut groups: BTreeMap<TenantScope, Vec<(usize, String)>> = BTreeMap::new();
    for (index, record) in event.records.iter().enumerate() {
        match Inbox::parse::<SendJob>(record) {
            Ok(job) => groups
                .entry(TenantScope::of_record(&job))
                .or_default()
                .push((index, job.message_id)),
            Err(poison) => outcomes[index] = Some(Outcome::Poison(poison)),
        }
    }
    let results =
        join_all(groups.into_iter().map(|(tenant, jobs)| send_group(deps, tenant, jobs))).await;
    for (index, outcome) in results.into_iter().flatten() {
        outcomes[index] = Some(outcome);
    }

    let mut deferred = Vec::new();
    let mut failed = Vec::new();
    for (record, outcome) in event.records.iter().zip(outcomes) {
        let id = record.message_id.as_deref().unwrap_or_default();
        match outcome.unwrap_or(Outcome::Error("not processed".into())) {
            Outcome::Sent | Outcome::Done => {}
            Outcome::Retry(after) => deferred.push((record, after)),
            Outcome::Poison(reason) => {
                give_up(deps, record).await;
                if !deps.inbox.reject(record, &reason).await {
                    failed.push(record);
                }
            }
            Outcome::Error(e) => {
                error!(record_id = id, error = %e, "send job failed; it will be retried");
                if deps.inbox.last_receive(record) {
                    give_up(deps, record).await;
                }
                failed.push(record);
            }
        }
    }
    failed.extend(deps.inbox.requeue(&deferred).await);
    batch_response(failed)
}

/// The record goes to the dead-letter queue (poison, or its last receive failed too): its
/// message is failed with a reason and announced, rather than left `queued` forever.
async fn give_up(deps: &Deps, record: &SqsMessage) {
    let Ok(job) = Inbox::parse::<SendJob>(record) else { return };
    let failed = fail(
        deps,
        &TenantScope::of_record(&job),
        &job.message_id,
        &json!("dead_lettered"),
        "Switchboard could not process the send and gave it up; it was not sent.",
    )
    .await;
    match failed {
        Ok(()) => warn!(message_id = job.message_id, "message failed as dead-lettered"),
        Err(e) => {
            error!(message_id = job.message_id, error = %e, "dead-lettered message not marked failed")
        }
    }
}

#[instrument(skip_all, fields(tenant_id = %tenant, records = jobs.len()))]
async fn send_group(
    deps: &Deps,
    tenant: TenantScope,
    jobs: Vec<(usize, String)>,
) -> Vec<(usize, Outcome)> {
    let all = |outcome: &dyn Fn() -> Outcome| jobs.iter().map(|(i, _)| (*i, outcome())).collect();
    let channel = match deps.channels.open(tenant.tenant_id()).await {
        Ok(channel) => channel,
        Err(e) => {
            let e = e.to_string();
            return all(&|| Outcome::Error(e.clone()));
        }
    };
    let target = match &channel {
        Some(channel) => {
            deps.graph.target(tenant.tenant_id(), channel).map(|t| (channel.clone(), t))
        }
        None => Err("the tenant has no WhatsApp channel".into()),
    };
    let (channel, target) = match target {
        Ok(found) => found,
        Err(reason) => {
            let mut out = Vec::new();
            for (index, message_id) in &jobs {
                let failed =
                    fail(deps, &tenant, message_id, &json!("channel_cannot_send"), &reason).await;
                out.push((*index, failed.map_or_else(Outcome::from, |()| Outcome::Done)));
            }
            return out;
        }
    };
    // An unhealthy gateway is not posted to: its messages wait (and fail if it does not
    // recover within their attempts). Read fresh, not from the channel cache.
    let held = target.gateway
        && matches!(
            deps.channels.store().get(&tenant).await.map(|c| c.map(|c| c.health_status)),
            Ok(Some(status)) if status == "unhealthy"
        );
    let reservation = match book(deps, &tenant, &channel, &target, jobs.len()).await {
        Ok(Booking::Slots(reservation)) => reservation,
        Ok(Booking::Busy(after)) => return all(&|| Outcome::Retry(after)),
        Err(e) => {
            let e = e.to_string();
            return all(&|| Outcome::Error(e.clone()));
        }
    };
    let sends = jobs.iter().enumerate().map(|(slot, (index, message_id))| {
        let due = reservation.due_us(slot);
        let (tenant, target) = (&tenant, &target);
        async move { (*index, send_one(deps, tenant, (target, held), message_id, due).await) }
    });
    let outcomes = join_all(sends).await;
    let sent = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Sent)).count();
    if sent > 0 {
        // The day's usage, once per batch. Losing it loses a count, never a message.
        let spread_by = jobs.first().map_or("", |(_, id)| id.as_str());
        if let Err(e) = deps.messages.outbox().count_sent(&tenant, sent, spread_by).await {
            warn!(error = %e, sent, "sends not counted in the day's usage");
        }
        let by = i64::try_from(sent).unwrap_or(0);
        let now = adapters::store::attrs::now_secs();
        if let Err(e) = deps.links.count_messages(&deps.tenants, &tenant, spread_by, by, now).await
        {
            warn!(error = %e, sent, "sends not counted for the tenant's platform");
        }
    }
    outcomes
}

/// Slots for `count` sends in the phone number's bucket and the tenant's.
async fn book(
    deps: &Deps,
    tenant: &TenantScope,
    channel: &OpenChannel,
    target: &Target,
    count: usize,
) -> Result<Booking, StoreError> {
    let phone_rate = channel.config.messages_per_second().unwrap_or(DEFAULT_MESSAGES_PER_SECOND);
    let plan_rate = plan_rate(deps, tenant).await?;
    let wait = deps.policy.max_pacing_wait;
    let phone = deps
        .buckets
        .reserve(
            tenant,
            &Bucket::Phone(target.phone_number_id.clone()),
            Rate::per_second(phone_rate),
            count,
            wait,
        )
        .await?;
    let Booking::Slots(phone) = phone else { return Ok(phone) };
    let plan = deps
        .buckets
        .reserve(tenant, &Bucket::Tenant, Rate::per_second(plan_rate), count, wait)
        .await?;
    Ok(match plan {
        Booking::Slots(plan) => Booking::Slots(Reservation::combine(phone, plan)),
        busy => busy,
    })
}

/// The tenant's plan limit, read at most once a minute per process.
async fn plan_rate(deps: &Deps, tenant: &TenantScope) -> Result<u32, StoreError> {
    if let Ok(cache) = deps.plan_rates.lock()
        && let Some((at, rate)) = cache.get(tenant.tenant_id())
        && at.elapsed() < Duration::from_secs(60)
    {
        return Ok(*rate);
    }
    let record = deps.tenants.tenants().find(tenant).await?.ok_or(StoreError::NotFound)?;
    let rate = record.tier.limits().messages_per_second;
    if let Ok(mut cache) = deps.plan_rates.lock() {
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(tenant.tenant_id().clone(), (Instant::now(), rate));
    }
    Ok(rate)
}
