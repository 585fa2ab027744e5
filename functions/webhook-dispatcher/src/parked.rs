//! Deliveries parked while their endpoint fails, and how they leave the park.
//!
//! While a subscription is failing, only its probes are attempted: the retries of the
//! attempts that failed (at most two in flight). Any other delivery, first attempts
//! included, is *parked*: it waits in DynamoDB with nothing queued for it, so that a dead
//! endpoint's backlog costs one write per event instead of a trip round the retry queue at
//! every step of the schedule. The subscription's `probeUntil` says that a probe is queued;
//! when it has lapsed, the next delivery to park becomes the probe instead.
//!
//! A settling ([`SettleParked`] on the retry queue) then looks at the parked deliveries,
//! oldest first, a page at a time:
//! - the endpoint answers again (a probe was delivered): they are released to the retry
//!   lane, spread out at ten per endpoint slot and second;
//! - the subscription is off or gone: they are failed, "not attempted";
//! - still failing (a probe's schedule ran out): those past their deadline are failed, and
//!   the oldest of the others becomes the next probe.

use crate::attempt::{Ask, PROBE_GRACE_SECS, busy_wait, give_up, hand_over};
use crate::handler::{Deps, DispatchError, Done};
use adapters::queues::{DeliveryAttempt, SettleParked, WebhookWork};
use adapters::store::attrs::now_secs;
use adapters::store::messages::Delivery;
use adapters::store::tenants::Subscription;
use adapters::store::{StoreError, TenantScope};
use futures_util::future::join_all;
use std::time::Duration;
use tracing::{info, warn};

/// Parked deliveries looked at by one settling.
const SETTLE_PAGE: i32 = 100;
/// Released deliveries per endpoint slot and second.
const RELEASED_PER_SLOT: u32 = 10;

fn secs(wait: Duration) -> i64 {
    i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2)
}

/// Parks `delivery` (pending, not attempted now) because its endpoint is failing, unless
/// nobody is probing the endpoint: then it becomes the probe, in the retry lane.
pub(crate) async fn park(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
    delivery: &Delivery,
    ask: Ask,
) -> Result<(), DispatchError> {
    let webhooks = deps.tenants.webhooks();
    let id = subscription.subscription_id.as_str();
    let now = now_secs();
    if subscription.probe_until.is_none_or(|until| until < now) {
        let wait = busy_wait(ask.busy, true, 0);
        if webhooks.claim_probe(scope, id, now + secs(wait) + PROBE_GRACE_SECS).await? {
            info!(tenant_id = %scope, subscription_id = id, delivery_id = delivery.delivery_id, "delivery is the failing endpoint's probe");
            return hand_over(deps, scope, delivery, Ask { busy: ask.busy + 1, ..ask }, wait).await;
        }
    }
    match deps.messages.webhook_deliveries().park(scope, delivery).await {
        Ok(()) => {}
        // It moved on since it was read: whoever moved it owns it.
        Err(StoreError::Conflict) => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    info!(tenant_id = %scope, subscription_id = id, delivery_id = delivery.delivery_id, "delivery parked: its endpoint is failing");
    look_again(deps, scope, id).await
}

/// After a delivery was parked: a probe may have been delivered (or the subscription turned
/// off) since the subscription was read, and its settling may have looked before this
/// delivery was parked. Then it is settled again.
pub(crate) async fn look_again(
    deps: &Deps,
    scope: &TenantScope,
    subscription_id: &str,
) -> Result<(), DispatchError> {
    let now = deps.tenants.webhooks().get(scope, subscription_id).await?;
    if now.is_none_or(|s| s.failing_since.is_none() || !s.active()) {
        settle_later(deps, scope, subscription_id, Duration::ZERO).await?;
    }
    Ok(())
}

/// Queues a settling of the subscription's parked deliveries after `wait`.
pub(crate) async fn settle_later(
    deps: &Deps,
    scope: &TenantScope,
    subscription_id: &str,
    wait: Duration,
) -> Result<(), DispatchError> {
    let settle = WebhookWork::Settle(SettleParked {
        tenant_id: scope.tenant_id().clone(),
        subscription_id: subscription_id.to_owned(),
    });
    deps.retries.send_delayed(&[(&settle, wait)]).await?;
    Ok(())
}

/// One page of a subscription's parked deliveries released, failed or probed, as its state
/// says; another settling follows while there is more to do.
pub(crate) async fn settle(deps: &Deps, order: &SettleParked) -> Result<Done, DispatchError> {
    let scope = TenantScope::of_record(order);
    let id = order.subscription_id.as_str();
    let parked = deps.messages.webhook_deliveries().parked(&scope, id, SETTLE_PAGE).await?;
    if parked.is_empty() {
        return Ok(Done::Finished);
    }
    let full = parked.len() == usize::try_from(SETTLE_PAGE).unwrap_or(usize::MAX);
    let subscription = deps.tenants.webhooks().get(&scope, id).await?;
    let more_after = match &subscription {
        None => {
            fail_all(deps, &scope, &parked, "the subscription was deleted").await?;
            full.then_some(Duration::ZERO)
        }
        Some(s) if !s.active() => {
            fail_all(deps, &scope, &parked, "the subscription is disabled").await?;
            full.then_some(Duration::ZERO)
        }
        Some(s) if s.failing_since.is_none() => {
            let spread = release(deps, &scope, &parked).await?;
            full.then_some(spread)
        }
        Some(s) => expire_or_probe(deps, &scope, s, &parked, full).await?,
    };
    info!(tenant_id = %scope, subscription_id = id, parked = parked.len(), more = more_after.is_some(), "parked deliveries settled");
    if let Some(wait) = more_after {
        settle_later(deps, &scope, id, wait).await?;
    }
    Ok(Done::Finished)
}

/// Fails each of `parked` without attempting it, saying why.
async fn fail_all(
    deps: &Deps,
    scope: &TenantScope,
    parked: &[Delivery],
    why: &str,
) -> Result<(), DispatchError> {
    join_all(parked.iter().map(|d| give_up(deps, scope, d, d.attempts + 1, why)))
        .await
        .into_iter()
        .collect::<Result<Vec<()>, _>>()
        .map(|_| ())
}

/// Queues the next attempt of each of `parked`, spread out so that the endpoint is not
/// flooded, then marks them queued. How long the spread lasts.
async fn release(
    deps: &Deps,
    scope: &TenantScope,
    parked: &[Delivery],
) -> Result<Duration, DispatchError> {
    let per_second = u64::from(deps.policy.endpoint_concurrency.max(1) * RELEASED_PER_SLOT);
    let now = now_secs();
    let planned: Vec<(WebhookWork, Duration)> = parked
        .iter()
        .zip(0u64..)
        .map(|(delivery, i)| {
            let wait = Duration::from_secs(i / per_second);
            let attempt = DeliveryAttempt {
                tenant_id: scope.tenant_id().clone(),
                delivery_id: delivery.delivery_id.clone(),
                attempt: delivery.attempts + 1,
                due: now + secs(wait),
                manual: false,
                busy: 0,
            };
            (WebhookWork::Attempt(attempt), wait)
        })
        .collect();
    let sends: Vec<(&WebhookWork, Duration)> = planned.iter().map(|(w, d)| (w, *d)).collect();
    deps.retries.send_delayed(&sends).await?;
    // Queued first: a crash here leaves them parked and queued, and their attempts unpark
    // them. A delivery that moved on meanwhile is its attempt's.
    let deliveries = deps.messages.webhook_deliveries();
    let marked = join_all(
        parked
            .iter()
            .zip(&planned)
            .map(|(delivery, (_, wait))| deliveries.schedule(scope, delivery, now + secs(*wait))),
    )
    .await;
    for result in marked {
        match result {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(planned.last().map_or(Duration::ZERO, |(_, wait)| *wait) + Duration::from_secs(1))
}

/// The endpoint still fails: fails the parked deliveries past their deadline, and makes
/// the oldest of the others the probe unless one is queued. When to look again, if at all.
async fn expire_or_probe(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
    parked: &[Delivery],
    full: bool,
) -> Result<Option<Duration>, DispatchError> {
    let now = now_secs();
    let id = subscription.subscription_id.as_str();
    let (expired, waiting): (Vec<Delivery>, Vec<Delivery>) =
        parked.iter().cloned().partition(|d| deps.policy.deadline(d.created_at) <= now);
    if !expired.is_empty() {
        let since = domain::time::rfc3339(subscription.failing_since.unwrap_or(now));
        let why =
            format!("its endpoint failed for its whole retry schedule (failing since {since})");
        fail_all(deps, scope, &expired, &why).await?;
        let count = i64::try_from(expired.len()).unwrap_or(i64::MAX);
        if let Some(reason) = deps.tenants.webhooks().delivery_failed(scope, id, count).await? {
            warn!(tenant_id = %scope, subscription_id = id, reason, "subscription disabled");
            return Ok(Some(Duration::ZERO));
        }
    }
    let Some(oldest) = waiting.first() else {
        return Ok(full.then_some(Duration::ZERO));
    };
    if deps.tenants.webhooks().claim_probe(scope, id, now + PROBE_GRACE_SECS).await? {
        let probe = WebhookWork::Attempt(DeliveryAttempt {
            tenant_id: scope.tenant_id().clone(),
            delivery_id: oldest.delivery_id.clone(),
            attempt: oldest.attempts + 1,
            due: now,
            manual: false,
            busy: 0,
        });
        deps.retries.send_delayed(&[(&probe, Duration::ZERO)]).await?;
        match deps.messages.webhook_deliveries().schedule(scope, oldest, now).await {
            Ok(()) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e.into()),
        }
        info!(tenant_id = %scope, subscription_id = id, delivery_id = oldest.delivery_id, "parked delivery is the failing endpoint's probe");
    }
    Ok(None)
}
