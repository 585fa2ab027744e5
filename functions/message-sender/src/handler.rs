//! Sends queued outbound messages.
//!
//! Per batch, records are grouped by tenant. Per tenant: open the channel (cached), book
//! send slots for the whole group in the phone number's and the tenant's rate buckets
//! (DynamoDB, shared by every concurrent invocation), then send each message at its slot:
//! claim it just before (a conditional write: only one sender calls Meta for a message),
//! post it to the Graph API at the slot, record the wamid. Meta's error code decides what
//! happens next, as Meta's error reference says: throttling and transient errors come back
//! through the queue after a backoff with jitter (the record's visibility is shortened to
//! it; 130429 also pauses the number's bucket), a bad token marks the channel unhealthy
//! and fails the message, anything else fails it with Meta's code and title. Every
//! failure is announced to partners as a `message.status` event.

use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::channel::{Channels, OpenChannel, SandboxCredentials};
use adapters::config::Resources;
use adapters::events::{self, PartnerEvents};
use adapters::graph::{GraphConfig, Target};
use adapters::queues::{Inbox, Poison, SendJob, batch_response};
use adapters::resources::{OUTBOUND_HIGH_QUEUE, OUTBOUND_STANDARD_QUEUE};
use adapters::store::StoreError;
use adapters::store::channels::ChannelStore;
use adapters::store::messages::MessageStore;
use adapters::store::outbound::{Claim, Outbound};
use adapters::store::pacing::{Booking, Bucket, RateBuckets, now_us};
use adapters::store::tenants::TenantStore;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::ids::TenantId;
use domain::meta::{ErrorClass, classify_error, graph_error};
use domain::pacing::{DEFAULT_MESSAGES_PER_SECOND, Rate, Reservation};
use futures_util::future::join_all;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::{error, info, instrument, warn};

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
    messages: MessageStore,
    channels: Channels,
    tenants: TenantStore,
    buckets: RateBuckets,
    events: PartnerEvents,
    inbox: Inbox,
    graph: GraphConfig,
    http: reqwest::Client,
    policy: Policy,
    plan_rates: Arc<Mutex<HashMap<TenantId, (Instant, u32)>>>,
}

impl Deps {
    pub fn from_parts(
        clients: &AwsClients,
        resources: &Resources,
        sandbox: SandboxCredentials,
        graph: GraphConfig,
        policy: Policy,
    ) -> Result<Self, reqwest::Error> {
        let channels = Channels::new(
            ChannelStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
            Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            sandbox,
        );
        let inbox = Inbox::new(
            clients.sqs.clone(),
            resources,
            &[OUTBOUND_HIGH_QUEUE, OUTBOUND_STANDARD_QUEUE],
        );
        let http = adapters::graph::http_client(policy.http_timeout)?;
        Ok(Self {
            messages: MessageStore::new(clients.dynamodb.clone(), resources.messages_table.clone()),
            channels,
            tenants: TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone()),
            buckets: RateBuckets::new(clients.dynamodb.clone(), resources.messages_table.clone()),
            events: PartnerEvents::new(
                clients.sqs.clone(),
                resources.partner_events_queue_url.clone(),
            ),
            inbox,
            graph,
            http,
            policy,
            plan_rates: Arc::default(),
        })
    }
}

/// What became of one record.
#[derive(Debug)]
enum Outcome {
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
    let mut groups: BTreeMap<TenantId, Vec<(usize, String)>> = BTreeMap::new();
    for (index, record) in event.records.iter().enumerate() {
        match Inbox::parse::<SendJob>(record) {
            Ok(job) => groups.entry(job.tenant_id).or_default().push((index, job.message_id)),
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
        &job.tenant_id,
        &job.message_id,
        &json!("dead_lettered"),
        "Switchboard failed to process the send repeatedly and gave it up; it was not sent.",
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
    tenant: TenantId,
    jobs: Vec<(usize, String)>,
) -> Vec<(usize, Outcome)> {
    let all = |outcome: &dyn Fn() -> Outcome| jobs.iter().map(|(i, _)| (*i, outcome())).collect();
    let channel = match deps.channels.open(&tenant).await {
        Ok(channel) => channel,
        Err(e) => {
            let e = e.to_string();
            return all(&|| Outcome::Error(e.clone()));
        }
    };
    let target = match &channel {
        Some(channel) => deps.graph.target(&tenant, channel).map(|t| (channel.clone(), t)),
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
        async move { (*index, send_one(deps, tenant, target, message_id, due).await) }
    });
    let outcomes = join_all(sends).await;
    let sent = outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Sent)).count();
    if sent > 0 {
        // The day's usage, once per batch. Losing it loses a count, never a message.
        let spread_by = jobs.first().map_or("", |(_, id)| id.as_str());
        if let Err(e) = deps.messages.count_sent(&tenant, sent, spread_by).await {
            warn!(error = %e, sent, "sends not counted in the day's usage");
        }
    }
    outcomes
}

/// Slots for `count` sends in the phone number's bucket and the tenant's.
async fn book(
    deps: &Deps,
    tenant: &TenantId,
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
async fn plan_rate(deps: &Deps, tenant: &TenantId) -> Result<u32, StoreError> {
    if let Ok(cache) = deps.plan_rates.lock()
        && let Some((at, rate)) = cache.get(tenant)
        && at.elapsed() < Duration::from_secs(60)
    {
        return Ok(*rate);
    }
    let record = deps.tenants.tenant_by_id(tenant).await?.ok_or(StoreError::NotFound)?;
    let rate = record.tier.limits().messages_per_second;
    if let Ok(mut cache) = deps.plan_rates.lock() {
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(tenant.clone(), (Instant::now(), rate));
    }
    Ok(rate)
}

/// What the Graph API answered.
enum Answer {
    Sent {
        wamid: String,
    },
    Refused {
        code: i64,
        title: String,
    },
    /// No usable answer (timeout, connection, 5xx without a Graph error).
    Unanswered(String),
}

async fn post(deps: &Deps, target: &Target, body: &Value) -> Answer {
    let request = target.authorise(deps.http.post(target.messages_url()).json(body));
    let response = match request.send().await {
        Ok(response) => response,
        Err(e) => return Answer::Unanswered(e.without_url().to_string()),
    };
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some((code, title)) = graph_error(&body) {
        return Answer::Refused { code, title };
    }
    match body.pointer("/messages/0/id").and_then(Value::as_str) {
        Some(wamid) if status.is_success() => Answer::Sent { wamid: wamid.to_owned() },
        _ => Answer::Unanswered(format!("HTTP {} without a message id", status.as_u16())),
    }
}

#[instrument(skip_all, fields(message_id = %message_id))]
async fn send_one(
    deps: &Deps,
    tenant: &TenantId,
    target: &Target,
    message_id: &str,
    due_us: i64,
) -> Outcome {
    match try_send(deps, tenant, target, message_id, due_us).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

async fn try_send(
    deps: &Deps,
    tenant: &TenantId,
    target: &Target,
    message_id: &str,
    due_us: i64,
) -> Result<Outcome, Outcome> {
    sleep_until_us(due_us - CLAIM_AHEAD_US).await;
    let message = match deps.messages.claim_send(tenant, message_id, deps.policy.lease_secs).await?
    {
        Claim::Claimed(message) => message,
        Claim::Missing => {
            warn!("no such outbound message; nothing to send");
            return Ok(Outcome::Done);
        }
        Claim::Settled => return Ok(Outcome::Done),
        Claim::Busy => {
            return Ok(Outcome::Retry(Duration::from_secs(deps.policy.lease_secs as u64)));
        }
        Claim::Abandoned => {
            // NOTE: a sender stopped between calling Meta and recording the answer. Meta
            // may have the message; sending it again could deliver it twice, so it is
            // failed visibly instead (the agent can send it again).
            warn!("an earlier send stopped without an outcome; not sending again");
            fail(
                deps,
                tenant,
                message_id,
                &json!("send_outcome_unknown"),
                "The send was interrupted; it may or may not have reached WhatsApp, so it was not repeated.",
            )
            .await?;
            return Ok(Outcome::Done);
        }
    };
    sleep_until_us(due_us).await;
    let attempt = message.attempts;
    match post(deps, target, &message.graph_request).await {
        Answer::Sent { wamid } => {
            record_sent(deps, tenant, &message, &wamid).await?;
            info!(attempt, "message sent");
            Ok(Outcome::Sent)
        }
        Answer::Refused { code, title } => {
            refused(deps, tenant, target, &message, attempt, (code, &title)).await
        }
        Answer::Unanswered(reason) => {
            warn!(attempt, reason, "the Graph API did not answer");
            retry_or_fail(
                deps,
                tenant,
                &message,
                attempt,
                deps.policy.transient_attempts,
                (json!("no_answer"), &reason),
                2,
            )
            .await
        }
    }
}

/// How long before its slot a message is claimed: enough for the DynamoDB round trip, so
/// that the request leaves at the slot itself; short, so that a sender that stops while
/// holding a claim has almost never stopped before calling Meta (its message is then
/// failed as "outcome unknown").
const CLAIM_AHEAD_US: i64 = 50_000;

async fn sleep_until_us(at_us: i64) {
    let wait = at_us - now_us();
    if wait > 0 {
        tokio::time::sleep(Duration::from_micros(wait as u64)).await;
    }
}

/// Meta has the message: its wamid must be recorded, or a retry would send it again.
async fn record_sent(
    deps: &Deps,
    tenant: &TenantId,
    message: &Outbound,
    wamid: &str,
) -> Result<(), Outcome> {
    let recorded = in_place(6, "sent, but not recorded yet", || {
        deps.messages.record_sent(tenant, message, wamid)
    })
    .await;
    if recorded.is_ok() {
        return Ok(());
    }
    // The lease stays held: a redelivery finds it expired and fails the message as
    // "outcome unknown" rather than sending it twice. The wamid is logged to reconcile.
    error!(wamid, "sent, but the wamid could not be recorded");
    Err(Outcome::Error("sent message not recorded".into()))
}

async fn refused(
    deps: &Deps,
    tenant: &TenantId,
    target: &Target,
    message: &Outbound,
    attempt: i64,
    (code, title): (i64, &str),
) -> Result<Outcome, Outcome> {
    let class = classify_error(code);
    warn!(attempt, code, ?class, "the Graph API refused the message");
    if code == THROUGHPUT_REACHED {
        // The number as a whole is over Meta's limit, not this message: every sender
        // pauses the number's sends.
        let until = now_us() + THROUGHPUT_PAUSE_US;
        let phone = Bucket::Phone(target.phone_number_id.clone());
        if let Err(e) = deps.buckets.hold(tenant, &phone, until).await {
            warn!(error = %e, "the number's sends not paused");
        }
    }
    match class {
        ErrorClass::Throttled => {
            // Pair rate limits (one recipient) back off faster: Meta suggests 4^n seconds.
            let growth = if code == 131056 { 4 } else { 2 };
            retry_or_fail(
                deps,
                tenant,
                message,
                attempt,
                deps.policy.throttled_attempts,
                (json!(code), title),
                growth,
            )
            .await
        }
        ErrorClass::Transient => {
            retry_or_fail(
                deps,
                tenant,
                message,
                attempt,
                deps.policy.transient_attempts,
                (json!(code), title),
                2,
            )
            .await
        }
        ErrorClass::Token => {
            if let Err(e) = deps.channels.store().record_health_for(tenant, Some(false)).await {
                warn!(error = %e, "channel health not recorded");
            }
            deps.channels.forget(tenant);
            let reason = format!(
                "The channel's access token was refused ({title}); update it with PUT /api/whatsapp/channel."
            );
            fail(deps, tenant, &message.message_id, &json!(code), &reason).await?;
            Ok(Outcome::Done)
        }
        ErrorClass::Permanent => {
            fail(deps, tenant, &message.message_id, &json!(code), title).await?;
            Ok(Outcome::Done)
        }
    }
}

/// Fails a message for good and tells partners (`message.status`, `failed`): once, by the
/// call that failed it.
async fn fail(
    deps: &Deps,
    tenant: &TenantId,
    message_id: &str,
    code: &Value,
    title: &str,
) -> Result<(), StoreError> {
    if !deps.messages.record_failed(tenant, message_id, code, title).await? {
        return Ok(());
    }
    let event = events::message_failed(tenant, message_id, code, title);
    // NOTE: the message is failed already, so a redelivery would not come back here: the
    // event is retried in place. The event id is stable, so a repeat is harmless.
    let queued = in_place(4, "failure event not queued yet", || {
        deps.events.emit(std::slice::from_ref(&event))
    })
    .await;
    if queued.is_err() {
        error!(event_id = event.id, "failure event not queued");
    }
    Ok(())
}

/// Runs `write` until it succeeds, at most `times`, pausing 200 ms and then twice as long
/// each time: for writes that must follow what already happened (a redelivery would not
/// come back to them).
async fn in_place<E, Fut>(times: u32, what: &str, write: impl Fn() -> Fut) -> Result<(), E>
where
    E: std::fmt::Display,
    Fut: Future<Output = Result<(), E>>,
{
    let mut pause = Duration::from_millis(200);
    let mut result = write().await;
    for _ in 1..times {
        let Err(e) = &result else { break };
        warn!(error = %e, "{what}; retrying");
        tokio::time::sleep(pause).await;
        pause *= 2;
        result = write().await;
    }
    result
}

/// Meta's "Cloud API message throughput has been reached" (per phone number).
const THROUGHPUT_REACHED: i64 = 130429;
/// How long every sender stops sending from a number that reached its throughput.
const THROUGHPUT_PAUSE_US: i64 = 1_000_000;

/// Retries after a backoff with jitter, or fails the message once `limit` sends failed.
async fn retry_or_fail(
    deps: &Deps,
    tenant: &TenantId,
    message: &Outbound,
    attempt: i64,
    limit: i64,
    (code, title): (Value, &str),
    growth: u32,
) -> Result<Outcome, Outcome> {
    if attempt >= limit {
        fail(deps, tenant, &message.message_id, &code, title).await?;
        return Ok(Outcome::Done);
    }
    deps.messages
        .release_send(tenant, &message.message_id, &json!({ "code": code, "title": title }))
        .await?;
    Ok(Outcome::Retry(backoff(&deps.policy, attempt, growth)))
}

/// `base * growth^(attempt-1)`, capped, with "equal jitter": between half and all of it.
fn backoff(policy: &Policy, attempt: i64, growth: u32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(16);
    let full =
        policy.retry_base.saturating_mul(growth.saturating_pow(exponent)).min(policy.retry_max);
    let random = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
    full.mul_f64(0.5 + random / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_stays_under_its_cap() {
        let policy = Policy::default();
        for attempt in 1..=10 {
            let full = (policy.retry_base * 2u32.pow(attempt as u32 - 1)).min(policy.retry_max);
            let d = backoff(&policy, attempt, 2);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?} of {full:?}");
        }
        assert!(backoff(&policy, 3, 4) >= Duration::from_secs(16), "pair limits grow by 4");
        assert!(backoff(&policy, 40, 4) <= policy.retry_max);
    }
}
