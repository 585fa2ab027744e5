//! Partner webhook deliveries (one per event and subscription) with their attempts, and the
//! per-endpoint slots that cap how many attempts an endpoint has in flight.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | delivery | shard of the delivery id | `DELIVERY#<id>` | written before its first attempt; gsi1: `DELIVERIES#<tid>#<subscription>#<0-7>` / `<created>#<id>`; while parked also gsi2: `PARKED#<tid>#<subscription>#<0-7>` / `<created>#<id>`; TTL 30 days |
//! | endpoint slot | shard of `<subscription>#<n>` | `SLOT#<subscription>#<n>` | held by one attempt until it ends (or for 30 s) |
//!
//! A delivery is *parked* while its endpoint is failing and this delivery is not one of the
//! probes: it waits in DynamoDB (the sparse gsi2 lists a subscription's parked deliveries,
//! oldest first) instead of going round the retry queue, until the endpoint answers again
//! or its schedule runs out.
//!
//! A delivery is read and written whole through serde (`serde_dynamo`): an attempt
//! replaces it on the condition that it still has the attempts it had when read, so two
//! attempts of one delivery never both record.

use super::sortable;
use crate::store::attrs::{Item, key, n, now_secs, s};
use crate::store::page::{self, Page};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, shard_of, written};
use domain::webhooks::MAX_LOGGED_ATTEMPTS;
use serde::{Deserialize, Serialize};

/// Deliveries are kept 30 days, delivered or failed, then DynamoDB removes them.
pub const DELIVERY_TTL_SECS: i64 = 30 * 24 * 3600;
/// Index partitions a subscription's delivery log is spread over.
const LOG_SHARDS: u32 = 8;
/// How long an endpoint slot is held at most: an attempt takes 15 s, and a slot whose
/// holder crashed frees itself after this.
pub const SLOT_HOLD_SECS: i64 = 30;
/// Slots an attempt tries before it counts its endpoint busy.
const SLOT_TRIES: u32 = 3;

/// One attempt, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttemptRecord {
    /// Epoch seconds.
    pub at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<String>,
}

/// A delivery as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    pub delivery_id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    /// The body every attempt sends, fixed when the delivery is made.
    pub payload: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    #[serde(default)]
    pub log: Vec<AttemptRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<i64>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered_at: Option<i64>,
    /// Since when it waits for its failing endpoint to answer again (no attempt queued).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parked_at: Option<i64>,
}

impl Delivery {
    /// A new delivery of `payload`, due now.
    pub fn new(
        delivery_id: String,
        subscription_id: &str,
        event_id: &str,
        event_type: &str,
        payload: String,
    ) -> Self {
        let now = now_secs();
        Self {
            delivery_id,
            subscription_id: subscription_id.to_owned(),
            event_id: event_id.to_owned(),
            event_type: event_type.to_owned(),
            payload,
            status: "pending".into(),
            attempts: 0,
            log: Vec::new(),
            next_attempt_at: Some(now),
            created_at: now,
            delivered_at: None,
            parked_at: None,
        }
    }

    pub fn pending(&self) -> bool {
        self.status == "pending"
    }

    /// The last attempt made (the log keeps the newest ones).
    pub fn last_attempt(&self) -> Option<&AttemptRecord> {
        self.log.last()
    }
}

/// What an attempt leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Delivered,
    /// Another attempt at this time (epoch seconds).
    RetryAt(i64),
    Failed,
}

fn delivery_key(scope: &TenantScope, id: &str) -> Item {
    key(scope.shard_pk(id), format!("DELIVERY#{id}"))
}

fn log_partition(scope: &TenantScope, subscription_id: &str, shard: u32) -> String {
    format!("DELIVERIES#{}#{subscription_id}#{shard}", scope.tenant_id())
}

fn parked_partition(scope: &TenantScope, subscription_id: &str, shard: u32) -> String {
    format!("PARKED#{}#{subscription_id}#{shard}", scope.tenant_id())
}

fn to_item(scope: &TenantScope, delivery: &Delivery) -> Result<Item, StoreError> {
    let attrs: Item = serde_dynamo::to_item(delivery)
        .map_err(|e| StoreError::Corrupt(format!("delivery: {e}")))?;
    let mut item = delivery_key(scope, &delivery.delivery_id);
    item.extend(attrs);
    let shard = shard_of(&delivery.delivery_id, LOG_SHARDS);
    item.insert("gsi1pk".into(), s(log_partition(scope, &delivery.subscription_id, shard)));
    let position = format!("{}#{}", sortable(delivery.created_at), delivery.delivery_id);
    if delivery.parked_at.is_some() {
        let parked = parked_partition(scope, &delivery.subscription_id, shard);
        item.insert("gsi2pk".into(), s(parked));
        item.insert("gsi2sk".into(), s(&position));
    }
    item.insert("gsi1sk".into(), s(position));
    item.insert(crate::resources::TTL_ATTRIBUTE.into(), n(delivery.created_at + DELIVERY_TTL_SECS));
    Ok(item)
}

fn from_item(item: Item) -> Result<Delivery, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("delivery: {e}")))
}

/// Webhook deliveries and endpoint slots.
#[derive(Clone, Copy, Debug)]
pub struct WebhookDeliveries<'a> {
    pub(crate) table: &'a Table,
}

impl WebhookDeliveries<'_> {
    /// Stores a delivery unless it exists; returns the stored one either way (a fan-out
    /// repeated after a crash finds its deliveries and their attempts).
    pub async fn create(
        &self,
        scope: &TenantScope,
        delivery: &Delivery,
    ) -> Result<Delivery, StoreError> {
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(to_item(scope, delivery)?))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match put {
            Ok(_) => Ok(delivery.clone()),
            Err(e) if condition_failed(&e) => {
                self.get(scope, &delivery.delivery_id).await?.ok_or(StoreError::Conflict)
            }
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Removes a delivery that was never attempted (one whose event could not be queued).
    pub async fn forget(&self, scope: &TenantScope, id: &str) -> Result<(), StoreError> {
        let removed = self
            .table
            .client()
            .delete_item()
            .table_name(self.table.name())
            .set_key(Some(delivery_key(scope, id)))
            .condition_expression("attempts = :none")
            .expression_attribute_values(":none", n(0))
            .send()
            .await;
        written(removed).map(|_| ())
    }

    pub async fn get(&self, scope: &TenantScope, id: &str) -> Result<Option<Delivery>, StoreError> {
        self.table.get(delivery_key(scope, id)).await?.map(from_item).transpose()
    }

    /// Records attempt `attempt` (1-based) and what it leads to. `Conflict` when another
    /// process recorded that attempt first (it then owns what follows).
    pub async fn record(
        &self,
        scope: &TenantScope,
        read: &Delivery,
        attempt: u32,
        record: AttemptRecord,
        outcome: Outcome,
    ) -> Result<Delivery, StoreError> {
        let mut next = read.clone();
        next.parked_at = None;
        next.attempts = attempt;
        next.log.push(record);
        if next.log.len() > MAX_LOGGED_ATTEMPTS {
            next.log.drain(..next.log.len() - MAX_LOGGED_ATTEMPTS);
        }
        match outcome {
            Outcome::Delivered => {
                next.status = "delivered".into();
                next.delivered_at = Some(now_secs());
                next.next_attempt_at = None;
            }
            Outcome::RetryAt(at) => {
                next.status = "pending".into();
                next.next_attempt_at = Some(at);
            }
            Outcome::Failed => {
                next.status = "failed".into();
                next.next_attempt_at = None;
            }
        }
        self.replace(scope, read, &next).await?;
        Ok(next)
    }

    /// A first attempt moved to the retry lane: due at `at`, nothing attempted yet.
    pub async fn schedule(
        &self,
        scope: &TenantScope,
        read: &Delivery,
        at: i64,
    ) -> Result<(), StoreError> {
        let mut next = read.clone();
        next.next_attempt_at = Some(at);
        next.parked_at = None;
        self.replace(scope, read, &next).await
    }

    /// Parks a pending delivery: no attempt is queued for it until its endpoint answers
    /// again (`Conflict` when it moved on since it was read).
    pub async fn park(&self, scope: &TenantScope, read: &Delivery) -> Result<(), StoreError> {
        let mut next = read.clone();
        next.next_attempt_at = None;
        next.parked_at = Some(now_secs());
        self.replace(scope, read, &next).await
    }

    /// A subscription's parked deliveries, oldest first, at most `limit`.
    pub async fn parked(
        &self,
        scope: &TenantScope,
        subscription_id: &str,
        limit: i32,
    ) -> Result<Vec<Delivery>, StoreError> {
        let reads = (0..LOG_SHARDS).map(|shard| {
            self.table
                .query()
                .index_name("gsi2")
                .key_condition_expression("gsi2pk = :parked")
                .expression_attribute_values(
                    ":parked",
                    s(parked_partition(scope, subscription_id, shard)),
                )
                .limit(limit)
                .send()
        });
        let mut parked = Vec::new();
        for read in futures_util::future::join_all(reads).await {
            let items = read.map_err(dynamo_err)?.items.unwrap_or_default();
            parked.extend(items.into_iter().map(from_item).collect::<Result<Vec<_>, _>>()?);
        }
        parked.sort_by(|a, b| (a.created_at, &a.delivery_id).cmp(&(b.created_at, &b.delivery_id)));
        parked.truncate(usize::try_from(limit).unwrap_or(0));
        Ok(parked)
    }

    /// Opens a finished delivery for one more attempt (a redelivery or recovery); the
    /// opened delivery, or `None` when it is still pending (its own attempts go on).
    pub async fn reopen(
        &self,
        scope: &TenantScope,
        read: &Delivery,
    ) -> Result<Option<Delivery>, StoreError> {
        if read.pending() {
            return Ok(None);
        }
        let mut next = read.clone();
        next.status = "pending".into();
        next.next_attempt_at = Some(now_secs());
        next.parked_at = None;
        match self.replace(scope, read, &next).await {
            Ok(()) => Ok(Some(next)),
            Err(StoreError::Conflict) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes `next` over `read`, on the condition that the stored delivery is still `read`
    /// as far as attempts and status go.
    async fn replace(
        &self,
        scope: &TenantScope,
        read: &Delivery,
        next: &Delivery,
    ) -> Result<(), StoreError> {
        let put = self
            .table
            .client()
            .put_item()
            .table_name(self.table.name())
            .set_item(Some(to_item(scope, next)?))
            .condition_expression("attempts = :attempts AND #status = :status")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":attempts", n(read.attempts))
            .expression_attribute_values(":status", s(&read.status))
            .send()
            .await;
        if written(put)? { Ok(()) } else { Err(StoreError::Conflict) }
    }

    /// A subscription's deliveries, newest first, optionally only those in `status`.
    pub async fn list(
        &self,
        scope: &TenantScope,
        subscription_id: &str,
        status: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<Delivery>, StoreError> {
        let before = cursor.map(page::decode_position).transpose()?;
        let partitions: Vec<String> =
            (0..LOG_SHARDS).map(|shard| log_partition(scope, subscription_id, shard)).collect();
        let (items, next) = self
            .table
            .merged_page(&partitions, before.as_deref(), limit, |query| match status {
                Some(status) => query
                    .filter_expression("#status = :status")
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status)),
                None => query,
            })
            .await?;
        Ok(Page {
            items: items.into_iter().map(from_item).collect::<Result<_, _>>()?,
            next_cursor: next.as_deref().map(page::encode_position),
        })
    }

    /// A subscription's failed deliveries made from `since` to `until` (epoch seconds).
    pub async fn failed_between(
        &self,
        scope: &TenantScope,
        subscription_id: &str,
        since: i64,
        until: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        let (from, to) = (sortable(since), format!("{}#~", sortable(until)));
        let queries = (0..LOG_SHARDS).map(|shard| {
            self.table
                .query()
                .index_name("gsi1")
                .key_condition_expression("gsi1pk = :list AND gsi1sk BETWEEN :from AND :to")
                .filter_expression("#status = :failed")
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(
                    ":list",
                    s(log_partition(scope, subscription_id, shard)),
                )
                .expression_attribute_values(":from", s(&from))
                .expression_attribute_values(":to", s(&to))
                .expression_attribute_values(":failed", s("failed"))
        });
        let mut failed: Vec<Delivery> = self
            .table
            .query_all_of(queries)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<_, _>>()?;
        failed.sort_by_key(|d| (d.created_at, d.delivery_id.clone()));
        Ok(failed)
    }

    /// Takes one of the endpoint's `limit` slots for `holder`, trying at most three from
    /// `start` on (each try is a conditional write, so a busy endpoint costs three, not
    /// `limit`): which one, or `None` when those were held.
    pub async fn take_slot(
        &self,
        scope: &TenantScope,
        subscription_id: &str,
        limit: u32,
        start: u32,
        holder: &str,
    ) -> Result<Option<u32>, StoreError> {
        let now = now_secs();
        for i in 0..limit.min(SLOT_TRIES) {
            let slot = start.wrapping_add(i) % limit.max(1);
            let taken = self
                .table
                .update(slot_key(scope, subscription_id, slot))
                .update_expression("SET holder = :holder, heldUntil = :until")
                .condition_expression("attribute_not_exists(heldUntil) OR heldUntil < :now")
                .expression_attribute_values(":holder", s(holder))
                .expression_attribute_values(":until", n(now + SLOT_HOLD_SECS))
                .expression_attribute_values(":now", n(now))
                .send()
                .await;
            match taken {
                Ok(_) => return Ok(Some(slot)),
                Err(e) if condition_failed(&e) => continue,
                Err(e) => return Err(dynamo_err(e)),
            }
        }
        Ok(None)
    }

    /// Gives a slot back (if `holder` still has it).
    pub async fn free_slot(
        &self,
        scope: &TenantScope,
        subscription_id: &str,
        slot: u32,
        holder: &str,
    ) -> Result<(), StoreError> {
        let freed = self
            .table
            .client()
            .delete_item()
            .table_name(self.table.name())
            .set_key(Some(slot_key(scope, subscription_id, slot)))
            .condition_expression("holder = :holder")
            .expression_attribute_values(":holder", s(holder))
            .send()
            .await;
        written(freed).map(|_| ())
    }
}

fn slot_key(scope: &TenantScope, subscription_id: &str, slot: u32) -> Item {
    let name = format!("{subscription_id}#{slot}");
    key(scope.shard_pk(&name), format!("SLOT#{name}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_delivery_round_trips_and_is_listed_under_its_subscription() {
        let scope = TenantScope::new(domain::ids::TenantId::generate());
        let mut delivery =
            Delivery::new("msg_1".into(), "whk_1", "evt_1", "message.received", "{}".into());
        delivery.log.push(AttemptRecord {
            at: 1,
            status_code: Some(500),
            duration_ms: 12,
            error: Some("HTTP 500".into()),
            response_body: Some("oops".into()),
        });
        let item = to_item(&scope, &delivery).expect("item");
        let list = item.get("gsi1pk").and_then(|v| v.as_s().ok()).expect("listed");
        assert!(list.starts_with(&format!("DELIVERIES#{}#whk_1#", scope.tenant_id())));
        assert!(item.contains_key("expiresAt"));
        assert!(!item.contains_key("gsi2pk"), "listed as parked only while parked");
        assert_eq!(from_item(item).expect("read back"), delivery);

        delivery.parked_at = Some(7);
        let item = to_item(&scope, &delivery).expect("item");
        let parked = item.get("gsi2pk").and_then(|v| v.as_s().ok()).expect("listed as parked");
        assert!(parked.starts_with(&format!("PARKED#{}#whk_1#", scope.tenant_id())));
        assert_eq!(item.get("gsi2sk"), item.get("gsi1sk"), "oldest first, as the log");
        assert_eq!(from_item(item).expect("read back"), delivery);
    }
}
