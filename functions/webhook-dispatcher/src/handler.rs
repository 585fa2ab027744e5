//! The batch: each record is an event to fan out (fresh lane), or an attempt that is due or
//! a settling of parked deliveries (retry lane), processed concurrently; failures are
//! reported alone, poison goes to the dead-letter queue at once.

use crate::attempt::{Ask, Lane, attempt};
use crate::wiring::Policy;
use adapters::aws::envelope::Envelopes;
use adapters::queues::{
    DeliveryAttempt, Inbox, PartnerEvent, Poison, Queue, QueueError, WebhookWork, batch_response,
};
use adapters::resources::WEBHOOK_RETRIES_QUEUE;
use adapters::store::attrs::now_secs;
use adapters::store::messages::{Delivery, MessageStore};
use adapters::store::tenants::{B2bLink, B2bLinks, Subscription, TenantStore};
use adapters::store::{StoreError, TenantScope};
use adapters::telemetry::error_chain;
use adapters::webhook_client::WebhookClient;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};
use domain::ids::{PlatformId, TenantId};
use domain::webhooks::{B2bIds, EventFilter, body, delivery_id};
use futures_util::future::join_all;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, instrument};

pub struct Deps {
    pub(crate) tenants: TenantStore,
    pub(crate) messages: MessageStore,
    pub(crate) envelopes: Envelopes,
    pub(crate) client: WebhookClient,
    pub(crate) retries: Queue<WebhookWork>,
    pub(crate) inbox: Inbox,
    pub(crate) policy: Policy,
    /// Opened signing keys by their sealed form: a sealed secret never changes meaning, so
    /// the cache is never stale (a rotation seals a new one).
    pub(crate) keys: KeyCache,
    /// Crashes still to simulate (tests only; see [`Deps::crashing_after_attempts`]).
    pub(crate) crashes: std::sync::atomic::AtomicU32,
    /// Where this instance's next attempt starts looking for a free endpoint slot: its
    /// concurrent attempts start at different slots instead of colliding.
    pub(crate) next_slot: std::sync::atomic::AtomicU32,
    /// Whose B2B user each tenant is, and its platform's own tenant.
    pub(crate) links: LinkCache,
}

/// A tenant's place under a platform: its ids, and the platform's own tenant, whose
/// subscriptions receive the events of all its users.
#[derive(Debug, Clone)]
pub(crate) struct PlatformLink {
    link: B2bLink,
    platform: TenantScope,
}

/// [`PlatformLink`]s by tenant: whose B2B user it is (read at most once a minute), and
/// each platform's own tenant (which never changes).
#[derive(Default)]
pub(crate) struct LinkCache {
    links: B2bLinks,
    platforms: Mutex<HashMap<PlatformId, TenantScope>>,
}

impl LinkCache {
    /// The tenant's link to its platform, if it is a B2B user.
    async fn of(
        &self,
        deps: &Deps,
        scope: &TenantScope,
    ) -> Result<Option<PlatformLink>, StoreError> {
        let Some(link) = self.links.of(&deps.tenants, scope).await? else {
            return Ok(None);
        };
        let known = self.platforms.lock().ok().and_then(|m| m.get(&link.platform_id).cloned());
        let platform = match known {
            Some(platform) => platform,
            None => match deps.tenants.platforms().get(&link.platform_id).await? {
                Some(platform) => {
                    let own = platform.scope();
                    if let Ok(mut known) = self.platforms.lock() {
                        known.insert(link.platform_id.clone(), own.clone());
                    }
                    own
                }
                None => return Ok(None),
            },
        };
        Ok(Some(PlatformLink { link, platform }))
    }
}

impl Deps {
    /// For tests: the next `n` attempts end as if the process died right after the endpoint
    /// answered, with nothing scheduled and nothing recorded (the record then fails, and SQS
    /// hands it out again).
    pub fn crashing_after_attempts(self, n: u32) -> Self {
        self.crashes.store(n, std::sync::atomic::Ordering::SeqCst);
        self
    }

    /// Takes one simulated crash, if any is left.
    pub(crate) fn crash_now(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.crashes.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok()
    }
}

/// Opened keys by sealed secret; concurrent attempts that need the same key open it once.
#[derive(Default)]
pub(crate) struct KeyCache(Mutex<HashMap<String, Arc<KeyCell>>>);

/// One key, opened once.
type KeyCell = tokio::sync::OnceCell<Arc<Vec<u8>>>;

/// Keys kept at most; the cache starts over beyond it.
const MAX_CACHED_KEYS: usize = 10_000;

impl KeyCache {
    /// The key of `sealed`, opened by `open` unless it was (or is being) opened already.
    pub(crate) async fn get_or_open<F, Fut>(
        &self,
        sealed: &str,
        open: F,
    ) -> Result<Arc<Vec<u8>>, DispatchError>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<u8>, DispatchError>>,
    {
        let cell = {
            let mut keys =
                self.0.lock().map_err(|_| DispatchError::Secret("key cache poisoned".into()))?;
            if keys.len() >= MAX_CACHED_KEYS && !keys.contains_key(sealed) {
                keys.clear();
            }
            keys.entry(sealed.to_owned()).or_default().clone()
        };
        cell.get_or_try_init(|| async { open().await.map(Arc::new) }).await.cloned()
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DispatchError {
    #[error(transparent)]
    Poison(#[from] Poison),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error("the signing secret does not open: {0}")]
    Secret(String),
    #[error("simulated crash after an attempt")]
    Crashed,
}

impl DispatchError {
    fn poison(&self) -> Option<Poison> {
        match self {
            Self::Poison(p) => Some(p.clone()),
            Self::Store(e) if !e.retryable() => Some(Poison(error_chain(e))),
            _ => None,
        }
    }
}

/// What became of a record.
pub(crate) enum Done {
    Finished,
    /// Send the record back to its queue after this wait (not yet due).
    Later(Duration),
}

/// Who receives a tenant's events: its own subscriptions and, for a B2B user, its
/// platform's (each delivery is its subscription owner's).
#[derive(Debug, Clone)]
pub(crate) struct Audience {
    link: Option<PlatformLink>,
    owners: Vec<(TenantScope, Vec<Subscription>)>,
}

impl Audience {
    /// How the tenant's events name it to partners.
    fn b2b(&self) -> Option<B2bIds<'_>> {
        self.link.as_ref().map(|l| B2bIds {
            user_id: l.link.user_id.as_str(),
            platform_user_id: &l.link.platform_user_id,
        })
    }
}

/// The audience of each tenant with events in the batch, read once per batch.
type Subscribed = HashMap<TenantId, Audience>;

async fn audience(deps: &Deps, scope: &TenantScope) -> Result<Audience, StoreError> {
    let webhooks = deps.tenants.webhooks();
    let own = webhooks.list(scope).await?;
    let link = deps.links.of(deps, scope).await?;
    let mut owners = vec![(scope.clone(), own)];
    if let Some(link) = &link {
        owners.push((link.platform.clone(), webhooks.list(&link.platform).await?));
    }
    Ok(Audience { link, owners })
}

/// Processes every record concurrently and reports the failed ones.
pub async fn handle(deps: &Deps, event: SqsEvent) -> SqsBatchResponse {
    let subscribed = subscriptions_of_batch(deps, &event.records).await;
    let outcomes =
        join_all(event.records.iter().map(|record| process(deps, record, &subscribed))).await;
    let mut failed = Vec::new();
    let mut later = Vec::new();
    for (record, outcome) in event.records.iter().zip(outcomes) {
        match outcome {
            Ok(Done::Finished) => {}
            Ok(Done::Later(wait)) => later.push((record, wait)),
            Err(e) => {
                if deps.inbox.failed(record, e.poison(), &e).await {
                    failed.push(record);
                }
            }
        }
    }
    failed.extend(deps.inbox.requeue(&later).await);
    batch_response(failed)
}

/// Each tenant's audience, for the events of the batch (a tenant whose audience cannot be
/// read now is left out: its events read it again, and fail alone if they still cannot).
async fn subscriptions_of_batch(deps: &Deps, records: &[SqsMessage]) -> Subscribed {
    let mut tenants: Vec<TenantScope> = records
        .iter()
        .filter(|r| deps.inbox.queue_of(r) != Some(WEBHOOK_RETRIES_QUEUE))
        .filter_map(|r| Inbox::parse::<PartnerEvent>(r).ok())
        .map(|event| TenantScope::of_record(&event))
        .collect();
    tenants.sort();
    tenants.dedup();
    let read = join_all(tenants.iter().map(|scope| audience(deps, scope))).await;
    tenants
        .into_iter()
        .zip(read)
        .filter_map(|(scope, audience)| Some((scope.tenant_id().clone(), audience.ok()?)))
        .collect()
}

#[instrument(skip_all, fields(message_id = record.message_id.as_deref().unwrap_or_default()))]
async fn process(
    deps: &Deps,
    record: &SqsMessage,
    subscribed: &Subscribed,
) -> Result<Done, DispatchError> {
    if deps.inbox.queue_of(record) == Some(WEBHOOK_RETRIES_QUEUE) {
        match Inbox::parse(record)? {
            WebhookWork::Attempt(due) => retry(deps, &due).await,
            WebhookWork::Settle(order) => crate::parked::settle(deps, &order).await,
        }
    } else {
        let event: PartnerEvent = Inbox::parse(record)?;
        fan_out(deps, &event, subscribed).await.map(|()| Done::Finished)
    }
}

/// One delivery per subscription that wants the event, each written before its first
/// attempt; then the first attempts, at once.
async fn fan_out(
    deps: &Deps,
    event: &PartnerEvent,
    subscribed: &Subscribed,
) -> Result<(), DispatchError> {
    let scope = TenantScope::of_record(event);
    let read;
    let audience = match subscribed.get(scope.tenant_id()) {
        Some(audience) => audience,
        None => {
            read = audience(deps, &scope).await?;
            &read
        }
    };
    let targets: Vec<(&TenantScope, &Subscription)> = audience
        .owners
        .iter()
        .flat_map(|(owner, subscriptions)| subscriptions.iter().map(move |s| (owner, s)))
        .filter(|(_, s)| match &event.subscription_id {
            // A test event goes to its subscription, on or off.
            Some(only) => *only == s.subscription_id,
            None => s.active() && EventFilter::from_stored(s.events.clone()).matches(&event.kind),
        })
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    let payload = body(event, audience.b2b());
    let outcomes = join_all(targets.iter().map(|(owner, subscription)| {
        first_attempt(deps, owner, subscription, event, payload.clone())
    }))
    .await;
    info!(tenant_id = %scope, event_id = event.id, kind = event.kind, deliveries = targets.len(), "event fanned out");
    // Every delivery is stored or its error reported: a redelivered event finds the stored
    // ones and attempts only what was not attempted.
    outcomes.into_iter().collect::<Result<Vec<()>, _>>().map(|_| ())
}

async fn first_attempt(
    deps: &Deps,
    scope: &TenantScope,
    subscription: &Subscription,
    event: &PartnerEvent,
    payload: String,
) -> Result<(), DispatchError> {
    let id = delivery_id(&subscription.subscription_id, &event.id);
    let new = Delivery::new(id, &subscription.subscription_id, &event.id, &event.kind, payload);
    let delivery = deps.messages.webhook_deliveries().create(scope, &new).await?;
    if delivery.parked_at.is_some() {
        // Parked before this fan-out was repeated, perhaps just before a crash.
        return crate::parked::look_again(deps, scope, &subscription.subscription_id).await;
    }
    let scheduled = delivery.next_attempt_at.is_some_and(|at| at > delivery.created_at);
    if !delivery.pending() || delivery.attempts > 0 || scheduled {
        // Attempted, or handed to the retry lane, before this fan-out was repeated.
        return Ok(());
    }
    let ask = Ask { n: 1, manual: false, lane: Lane::Fresh, busy: 0 };
    attempt(deps, scope, subscription, delivery, ask).await
}

/// An attempt from the retry lane: made when due, unless the delivery has moved on (a
/// duplicate message, a finished delivery) or its subscription is gone or off.
async fn retry(deps: &Deps, due: &DeliveryAttempt) -> Result<Done, DispatchError> {
    let wait = due.due - now_secs();
    if wait > 0 {
        return Ok(Done::Later(Duration::from_secs(wait.unsigned_abs())));
    }
    let scope = TenantScope::of_record(due);
    let deliveries = deps.messages.webhook_deliveries();
    let Some(mut delivery) = deliveries.get(&scope, &due.delivery_id).await? else {
        return Ok(Done::Finished);
    };
    if delivery.attempts + 1 != due.attempt {
        return Ok(Done::Finished);
    }
    if !delivery.pending() {
        // A redelivery opens a finished delivery for one more attempt; anything else
        // finished stays so.
        if !due.manual {
            return Ok(Done::Finished);
        }
        match deliveries.reopen(&scope, &delivery).await? {
            Some(opened) => delivery = opened,
            None => return Ok(Done::Finished),
        }
    }
    let subscription = deps.tenants.webhooks().get(&scope, &delivery.subscription_id).await?;
    let subscription = match subscription {
        Some(s) if s.active() || due.manual => s,
        missing_or_off => {
            let why = if missing_or_off.is_some() {
                "the subscription is disabled"
            } else {
                "the subscription was deleted"
            };
            crate::attempt::give_up(deps, &scope, &delivery, due.attempt, why).await?;
            return Ok(Done::Finished);
        }
    };
    let ask = Ask { n: due.attempt, manual: due.manual, lane: Lane::Retry, busy: due.busy };
    attempt(deps, &scope, &subscription, delivery, ask).await.map(|()| Done::Finished)
}
