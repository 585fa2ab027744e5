//! One attempt of one delivery: take an endpoint slot, sign, post, free the slot, schedule
//! the next attempt if there is one, record. A delivery whose endpoint is failing, and
//! that is not one of its probes, is parked instead (`crate::parked`).

use crate::handler::{Deps, DispatchError};
use adapters::queues::{DeliveryAttempt, WebhookWork};
use adapters::store::TenantScope;
use adapters::store::attrs::now_secs;
use adapters::store::messages::{AttemptRecord, Delivery, Outcome};
use adapters::store::tenants::{Probe, Subscription};
use domain::webhooks::{secret_key, signature_header};
use std::time::Duration;
use tracing::{info, warn};

/// Where the attempt came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lane {
    /// A first attempt on `partner-events`: it must not wait on a failing or busy endpoint.
    Fresh,
    Retry,
}

/// How soon an attempt that found its endpoint busy is tried again. A healthy endpoint is
/// only busy: 1 to 3 s, every time. A failing one has its slots held by attempts that time
/// out: 30 s, doubling each time it is found busy again up to [`MAX_BUSY_WAIT`] (one SQS
/// delay), so a backlog for a dead endpoint waits instead of spinning.
const BUSY_WAIT: Duration = Duration::from_secs(1);
const BUSY_WAIT_FAILING: Duration = Duration::from_secs(30);
const MAX_BUSY_WAIT: Duration = Duration::from_secs(900);

pub(crate) fn busy_wait(busy: u32, failing: bool, jitter: u32) -> Duration {
    if !failing {
        return BUSY_WAIT + Duration::from_millis(u64::from(jitter % 2000));
    }
    let doubled = 1u32.checked_shl(busy.min(16)).unwrap_or(u32::MAX);
    BUSY_WAIT_FAILING.saturating_mul(doubled).min(MAX_BUSY_WAIT)
}

/// The slots an attempt may use. First attempts: half the endpoint's, so that an endpoint
/// that starts to time out holds at most these of the fresh lane until its first failures
/// open its circuit. A failing endpoint: two (its probes), enough to find out when it is
/// back, while its timeouts hold at most two invocations of the retry lane. Otherwise all.
fn usable_slots(limit: u32, lane: Lane, failing: bool) -> u32 {
    match (lane, failing) {
        (_, true) => limit.min(FAILING_SLOTS),
        (Lane::Fresh, false) => limit.div_ceil(2),
        (Lane::Retry, false) => limit,
    }
}

/// Attempts a failing endpoint may have in flight.
const FAILING_SLOTS: u32 = 2;

/// What is asked of an attempt: which one, and how it came.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    pub n: u32,
    pub manual: bool,
    pub lane: Lane,
    /// Times it already found its endpoint busy.
    pub busy: u32,
}

/// Makes attempt `ask.n` of `delivery` (whose subscription is `subscription`) and records it.
pub(crate) async fn attempt(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
    delivery: Delivery,
    ask: Ask,
) -> Result<(), DispatchError> {
    let Ask { n, manual, lane, busy } = ask;
    let deliveries = deps.messages.webhook_deliveries();
    let id = subscription.subscription_id.as_str();
    let failing = subscription.failing_since.is_some();
    // The fresh lane never waits on a failing endpoint: its probes are the retry lane's.
    if failing && !manual && lane == Lane::Fresh {
        return crate::parked::park(deps, scope, subscription, &delivery, ask).await;
    }

    let keys = signing_keys(deps, scope, subscription).await?;
    let holder = format!("{}#{n}", delivery.delivery_id);
    let start = deps.next_slot.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let limit = deps.policy.endpoint_concurrency;
    let usable = usable_slots(limit, lane, failing);
    let slot = deliveries.take_slot(scope, id, usable, start, &holder).await?;
    let at = now_secs();
    // Whether the subscription was failing, or this attempt marked it so by being slow.
    let mut was_failing = failing;
    let answer = match slot {
        Some(slot) => {
            let signature =
                signature_header(&keys, &delivery.delivery_id, at, delivery.payload.as_bytes());
            let payload = delivery.payload.clone();
            let post =
                deps.client.post(&subscription.url, &delivery.delivery_id, at, &signature, payload);
            tokio::pin!(post);
            let answer = tokio::select! {
                answer = &mut post => answer,
                () = tokio::time::sleep(SLOW_ANSWER), if !failing => {
                    // Not answered yet: the endpoint counts as failing from now on, so
                    // that the deliveries behind this one park instead of waiting on it.
                    // This attempt is its probe until it ends; an answer clears it.
                    let until = at + SLOW_PROBE_SECS;
                    match deps.tenants.webhooks().attempt_failed(scope, id, Probe::Until(until)).await {
                        Ok(()) => was_failing = true,
                        Err(e) => warn!(error = %e, subscription_id = id, "slow endpoint not marked"),
                    }
                    post.await
                }
            };
            if let Err(e) = deliveries.free_slot(scope, id, slot, &holder).await {
                warn!(error = %e, subscription_id = id, "endpoint slot not freed; it frees itself in 30 s");
            }
            if deps.crash_now() {
                return Err(DispatchError::Crashed);
            }
            answer
        }
        // The circuit is open and its probes are out: the delivery waits parked for the
        // endpoint to answer again (no spinning on a dead endpoint, nothing queued).
        None if failing && !manual => {
            return crate::parked::park(deps, scope, subscription, &delivery, ask).await;
        }
        None => {
            let wait = busy_wait(busy, failing, start.wrapping_mul(7919));
            return hand_over(deps, scope, &delivery, Ask { busy: busy + 1, ..ask }, wait).await;
        }
    };

    let gone = answer.status == Some(410);
    let outcome = if answer.delivered() {
        Outcome::Delivered
    } else if gone || manual {
        Outcome::Failed
    } else {
        match deps.policy.schedule.after_with_retry_after(n, answer.retry_after) {
            Some(wait) => {
                let due = at.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2));
                // A delivery that waited parked keeps its deadline.
                if due > deps.policy.deadline(delivery.created_at) {
                    Outcome::Failed
                } else {
                    Outcome::RetryAt(due)
                }
            }
            None => Outcome::Failed,
        }
    };
    // The next attempt is queued before this one is recorded: a crash in between repeats
    // this attempt (same webhook-id), and the duplicate of the next one finds it recorded.
    if let Outcome::RetryAt(due) = outcome {
        let next = WebhookWork::Attempt(DeliveryAttempt {
            tenant_id: scope.tenant_id().clone(),
            delivery_id: delivery.delivery_id.clone(),
            attempt: n + 1,
            due,
            manual: false,
            busy: 0,
        });
        let wait = Duration::from_secs((due - now_secs()).max(0).unsigned_abs());
        deps.retries.send_delayed(&[(&next, wait)]).await?;
    }
    let record = AttemptRecord {
        at,
        status_code: answer.status,
        duration_ms: u64::try_from(answer.duration.as_millis()).unwrap_or(u64::MAX),
        error: answer.error.clone(),
        response_body: answer.body.clone(),
    };
    match deliveries.record(scope, &delivery, n, record, outcome).await {
        Ok(_) => {}
        // Another process recorded this attempt first: it owns what follows.
        Err(adapters::store::StoreError::Conflict) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    info!(
        tenant_id = %scope, subscription_id = id, delivery_id = delivery.delivery_id, attempt = n,
        status = answer.status, ms = answer.duration.as_millis() as u64, outcome = ?outcome,
        "delivery attempted"
    );

    // The subscription's health. The attempt is recorded: a failure here is logged, not
    // retried (a redelivered record would find the attempt done and do nothing more).
    match health(deps, scope, subscription, was_failing, &answer, outcome, manual).await {
        Ok(true) => {
            if let Err(e) = crate::parked::settle_later(deps, scope, id, Duration::ZERO).await {
                warn!(tenant_id = %scope, subscription_id = id, error = %e, "parked deliveries not settled now; the next probe settles them");
            }
        }
        Ok(false) => {}
        Err(e) => {
            warn!(tenant_id = %scope, subscription_id = id, error = %e, "subscription health not updated");
        }
    }
    Ok(())
}

/// How late a probe queued for a time may run before another delivery takes its duty.
pub(crate) const PROBE_GRACE_SECS: i64 = 300;

/// An attempt not answered within this marks its endpoint failing while it waits on: the
/// fresh lane then parks that endpoint's deliveries instead of holding more invocations for
/// up to 15 s each.
const SLOW_ANSWER: Duration = Duration::from_secs(5);
/// A slow attempt is the endpoint's probe until it ends (15 s at most) and a little more.
const SLOW_PROBE_SECS: i64 = 20;

/// Marks the subscription failing (with this attempt's retry as its probe) or healthy, and
/// disables it on `410` or sustained failure. Whether its parked deliveries need settling
/// now: released (the endpoint answered again), failed (it was disabled), or given a new
/// probe (this one ended).
async fn health(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
    was_failing: bool,
    answer: &adapters::webhook_client::Answer,
    outcome: Outcome,
    manual: bool,
) -> Result<bool, adapters::store::StoreError> {
    let webhooks = deps.tenants.webhooks();
    let id = subscription.subscription_id.as_str();
    if answer.delivered() {
        if was_failing || subscription.failed_deliveries > 0 {
            webhooks.attempt_delivered(scope, id).await?;
        }
        return Ok(was_failing);
    }
    let probe = match outcome {
        Outcome::RetryAt(due) => Probe::Until(due + PROBE_GRACE_SECS),
        _ => Probe::Ended,
    };
    webhooks.attempt_failed(scope, id, probe).await?;
    if answer.status == Some(410) {
        if webhooks.disable(scope, id, "the endpoint answered 410 Gone").await? {
            warn!(tenant_id = %scope, subscription_id = id, "subscription disabled: the endpoint answered 410 Gone");
        }
    } else if outcome == Outcome::Failed
        && !manual
        && let Some(reason) = webhooks.delivery_failed(scope, id, 1).await?
    {
        warn!(tenant_id = %scope, subscription_id = id, reason, "subscription disabled");
    }
    Ok(outcome == Outcome::Failed)
}

/// Moves an attempt to the retry lane, due after `wait`, without making it.
pub(crate) async fn hand_over(
    deps: &Deps,
    scope: &TenantScope,
    delivery: &Delivery,
    ask: Ask,
    wait: Duration,
) -> Result<(), DispatchError> {
    let n = ask.n;
    let due = now_secs() + i64::try_from(wait.as_secs()).unwrap_or(0);
    let next = WebhookWork::Attempt(DeliveryAttempt {
        tenant_id: scope.tenant_id().clone(),
        delivery_id: delivery.delivery_id.clone(),
        attempt: n,
        due,
        manual: ask.manual,
        busy: ask.busy,
    });
    deps.retries.send_delayed(&[(&next, wait)]).await?;
    if n == 1 && delivery.attempts == 0 {
        // So that a repeated fan-out sees it handed over (best effort: a duplicate
        // message attempts nothing twice).
        if let Err(e) = deps.messages.webhook_deliveries().schedule(scope, delivery, due).await {
            warn!(error = %e, delivery_id = delivery.delivery_id, "hand-over not recorded");
        }
    }
    Ok(())
}

/// Ends a delivery that cannot be attempted (its subscription is gone or off), saying why.
pub(crate) async fn give_up(
    deps: &Deps,
    scope: &TenantScope,
    delivery: &Delivery,
    n: u32,
    why: &str,
) -> Result<(), DispatchError> {
    let record = AttemptRecord {
        at: now_secs(),
        status_code: None,
        duration_ms: 0,
        error: Some(format!("not attempted: {why}")),
        response_body: None,
    };
    match deps
        .messages
        .webhook_deliveries()
        .record(scope, delivery, n, record, Outcome::Failed)
        .await
    {
        Ok(_) | Err(adapters::store::StoreError::Conflict) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The keys that sign now (two while a rotated secret overlaps), opened once per sealed
/// value.
async fn signing_keys(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
) -> Result<Vec<Vec<u8>>, DispatchError> {
    let mut keys = Vec::new();
    for sealed in subscription.signing_secrets(now_secs()) {
        let key = deps
            .keys
            .get_or_open(sealed, || async {
                let opened = deps
                    .envelopes
                    .open(scope.tenant_id(), sealed)
                    .await
                    .map_err(|e| DispatchError::Secret(e.to_string()))?;
                let secret = String::from_utf8(opened)
                    .map_err(|_| DispatchError::Secret("not text".into()))?;
                secret_key(&secret)
                    .ok_or_else(|| DispatchError::Secret("not a whsec_ secret".into()))
            })
            .await?;
        keys.push(key.as_ref().clone());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_endpoint_is_tried_again_soon_and_a_failing_one_later_each_time() {
        for busy in [0, 5, 100] {
            let wait = busy_wait(busy, false, busy * 7919);
            assert!(wait >= BUSY_WAIT && wait < BUSY_WAIT * 3, "a healthy endpoint: {wait:?}");
        }
        let failing: Vec<u64> = (0..6).map(|b| busy_wait(b, true, 0).as_secs()).collect();
        assert_eq!(failing, [30, 60, 120, 240, 480, 900]);
        assert_eq!(busy_wait(u32::MAX, true, 0), MAX_BUSY_WAIT);
        let usable = |limit, lane, failing| usable_slots(limit, lane, failing);
        assert_eq!((usable(10, Lane::Fresh, false), usable(5, Lane::Fresh, false)), (5, 3));
        assert_eq!((usable(10, Lane::Retry, false), usable(10, Lane::Retry, true)), (10, 2));
        assert_eq!(usable(1, Lane::Retry, true), 1);
    }
}
