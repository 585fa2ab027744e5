//! Send-rate buckets in the `messages` table, shared by every concurrent sender.
//!
//! | item | sk | notes |
//! |---|---|---|
//! | bucket | `RATE#PHONE#<phone number id>` or `RATE#TENANT` | `tat`: the bucket's clock, µs |
//!
//! A reservation reads the clock (or uses the value this process wrote last), computes the
//! slots ([`domain::pacing`]) and writes the new clock on the condition that it is
//! unchanged; a concurrent sender's write makes it read again and retry.

use super::attrs::{key, n, opt_n};
use super::table::Table;
use super::{StoreError, TenantScope, condition_failed, dynamo_err, written};
use aws_sdk_dynamodb::Client;
use domain::ids::TenantId;
use domain::pacing::{Decision, Rate, Reservation, reserve};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    Phone(String),
    Tenant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Booking {
    Slots(Reservation),
    /// Booked further ahead than the caller waits: come back after this.
    Busy(Duration),
}

#[derive(Clone, Debug)]
pub struct RateBuckets {
    pub(super) table: Table,
    /// The clock this process last wrote, per bucket: when no other sender wrote since,
    /// a reservation is a single conditional write.
    seen: Arc<Mutex<HashMap<(TenantId, Bucket), i64>>>,
}

pub use domain::time::now_us;

impl RateBuckets {
    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Self { table: Table::new(db, table), seen: Arc::default() }
    }

    /// Reserves `count` send slots in a bucket, waiting at most `max_wait` for the first.
    pub async fn reserve(
        &self,
        scope: &TenantScope,
        bucket: &Bucket,
        rate: Rate,
        count: usize,
        max_wait: Duration,
    ) -> Result<Booking, StoreError> {
        let tenant = scope.tenant_id();
        let item_key = bucket_key(scope, bucket);
        let cache_key = (tenant.clone(), bucket.clone());
        let mut cached = self.seen.lock().ok().and_then(|s| s.get(&cache_key).copied());
        for attempt in 0..50u32 {
            let tat = match cached.take() {
                Some(tat) => Some(tat),
                None => {
                    let item = self.table.get(item_key.clone()).await?;
                    item.as_ref().and_then(|i| opt_n(i, "tat"))
                }
            };
            let (new_tat, reservation) = match reserve(rate, tat, now_us(), count, max_wait) {
                Decision::Reserve { new_tat, reservation } => (new_tat, reservation),
                Decision::Busy(after) => return Ok(Booking::Busy(after)),
            };
            let mut write = self
                .table
                .update(item_key.clone())
                .update_expression("SET tat = :new")
                .expression_attribute_values(":new", n(new_tat));
            write = match tat {
                Some(seen) => write
                    .condition_expression("tat = :seen")
                    .expression_attribute_values(":seen", n(seen)),
                None => write.condition_expression("attribute_not_exists(tat)"),
            };
            match write.send().await {
                Ok(_) => {
                    if let Ok(mut seen) = self.seen.lock() {
                        seen.insert(cache_key, new_tat);
                    }
                    return Ok(Booking::Slots(reservation));
                }
                Err(e) if condition_failed(&e) => {
                    // Another sender booked meanwhile: read its clock and try again, after a
                    // short jittered pause once contention repeats.
                    if attempt > 2 {
                        let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 5;
                        tokio::time::sleep(Duration::from_millis(jitter + u64::from(attempt)))
                            .await;
                    }
                }
                Err(e) => return Err(dynamo_err(e)),
            }
        }
        Err(StoreError::Conflict)
    }

    /// Books nothing in a bucket until `until_us`: every sender's next reservation starts
    /// there at the earliest. A clock already later stays.
    pub async fn hold(
        &self,
        scope: &TenantScope,
        bucket: &Bucket,
        until_us: i64,
    ) -> Result<(), StoreError> {
        let tenant = scope.tenant_id();
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(&(tenant.clone(), bucket.clone()));
        }
        let held = self
            .table
            .update(bucket_key(scope, bucket))
            .update_expression("SET tat = :until")
            .condition_expression("attribute_not_exists(tat) OR tat < :until")
            .expression_attribute_values(":until", n(until_us))
            .send()
            .await;
        written(held).map(|_| ())
    }
}

fn bucket_key(scope: &TenantScope, bucket: &Bucket) -> super::attrs::Item {
    let sk = match bucket {
        Bucket::Phone(id) => format!("RATE#PHONE#{id}"),
        Bucket::Tenant => "RATE#TENANT".to_owned(),
    };
    key(scope.pk(), sk)
}
