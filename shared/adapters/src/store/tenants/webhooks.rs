//! Partner webhook subscriptions, under their owner's partition: `WEBHOOK#<id>`.
//!
//! The owner is a tenant today (its events). A platform's own subscriptions (the events of
//! all its users) will sit under the platform's partition with the same item shape: the
//! dispatcher then reads the tenant's and its platform's subscriptions.
//!
//! The item is written and read whole through serde (`serde_dynamo`); updates name each
//! attribute they change. The owner's tenant item counts the subscriptions, so that the
//! limit holds under concurrent creates.

use super::TENANT_SK;
use crate::store::attrs::{Item, key, n, now_secs, s};
use crate::store::table::Table;
use crate::store::{
    StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions, written,
};
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, TransactWriteItem};
use domain::webhooks::{MAX_SUBSCRIPTIONS, sustained_failure};
use serde::{Deserialize, Serialize};

const WEBHOOK_PREFIX: &str = "WEBHOOK#";

/// A subscription as stored. `secret` and `previous_secret` are KMS envelopes
/// (`aws::envelope`), never the secret itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subscription {
    pub subscription_id: String,
    pub url: String,
    pub events: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
    pub secret: String,
    /// The secret before the last rotation, which signs too until `previous_secret_until`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_secret_until: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Since when attempts have been failing (cleared by a delivered attempt): while set,
    /// first attempts skip the fresh lane.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since: Option<i64>,
    /// Deliveries that ended `failed` since `failing_since`.
    #[serde(default)]
    pub failed_deliveries: i64,
    /// While failing: an attempt (a probe) is queued to run before this time, so parked
    /// deliveries will hear when the endpoint answers again. Past it, the next delivery to
    /// park becomes the probe instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe_until: Option<i64>,
}

impl Subscription {
    /// A new, active subscription (`sealed_secret`: its secret's KMS envelope), made now.
    pub fn new(
        url: String,
        events: Vec<String>,
        description: Option<String>,
        sealed_secret: String,
    ) -> Self {
        let now = now_secs();
        Self {
            subscription_id: format!("whk_{}", uuid::Uuid::new_v4().simple()),
            url,
            events,
            description,
            status: "active".into(),
            disabled_reason: None,
            secret: sealed_secret,
            previous_secret: None,
            previous_secret_until: None,
            created_at: now,
            updated_at: now,
            failing_since: None,
            failed_deliveries: 0,
            probe_until: None,
        }
    }

    pub fn active(&self) -> bool {
        self.status == "active"
    }

    /// The sealed secrets that sign now: the current one, and the previous one during its
    /// overlap.
    pub fn signing_secrets(&self, now: i64) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && now < until
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// What a failed attempt means for the probing of its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// Its retry is queued: it probes the endpoint, due before this time (epoch seconds).
    Until(i64),
    /// Its delivery is finished: nobody may be probing now.
    Ended,
}

/// What a PATCH changes.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionChanges {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    /// `Some(None)` removes the description.
    pub description: Option<Option<String>>,
    pub active: Option<bool>,
}

fn subscription_key(scope: &TenantScope, id: &str) -> Item {
    key(scope.pk(), format!("{WEBHOOK_PREFIX}{id}"))
}

fn from_item(item: Item) -> Result<Subscription, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("subscription: {e}")))
}

fn to_item(scope: &TenantScope, subscription: &Subscription) -> Result<Item, StoreError> {
    let attrs: Item = serde_dynamo::to_item(subscription)
        .map_err(|e| StoreError::Corrupt(format!("subscription: {e}")))?;
    let mut item = subscription_key(scope, &subscription.subscription_id);
    item.extend(attrs);
    Ok(item)
}

/// A tenant's webhook subscriptions.
#[derive(Clone, Copy, Debug)]
pub struct Webhooks<'a> {
    pub(crate) table: &'a Table,
}

impl Webhooks<'_> {
    /// Stores a new subscription; `LimitReached` past [`MAX_SUBSCRIPTIONS`].
    pub async fn create(
        &self,
        scope: &TenantScope,
        subscription: &Subscription,
    ) -> Result<(), StoreError> {
        let count = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
            .update_expression("ADD webhookCount :one")
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(webhookCount) OR webhookCount < :max)",
            )
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(MAX_SUBSCRIPTIONS))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.table.put_in(to_item(scope, subscription)?, Some("attribute_not_exists(pk)"))?,
        ];
        match self.table.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => Err(match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => {
                    StoreError::LimitReached("webhook subscriptions")
                }
                Some(_) => StoreError::Conflict,
                None => dynamo_err(e),
            }),
        }
    }

    /// Every subscription of the owner (at most [`MAX_SUBSCRIPTIONS`]), oldest first.
    pub async fn list(&self, scope: &TenantScope) -> Result<Vec<Subscription>, StoreError> {
        let prefix_end = format!("{WEBHOOK_PREFIX}~");
        let query = self.table.sk_between(&scope.pk(), WEBHOOK_PREFIX, &prefix_end);
        let mut list = self
            .table
            .query_all(query)
            .await?
            .into_iter()
            .map(from_item)
            .collect::<Result<Vec<_>, _>>()?;
        list.sort_by_key(|s| s.created_at);
        Ok(list)
    }

    pub async fn get(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        self.table.get(subscription_key(scope, id)).await?.map(from_item).transpose()
    }

    /// Applies a PATCH; `None` when there is no such subscription. Turning a subscription
    /// back on forgets its failures.
    pub async fn update(
        &self,
        scope: &TenantScope,
        id: &str,
        changes: &SubscriptionChanges,
    ) -> Result<Option<Subscription>, StoreError> {
        let mut sets = vec!["updatedAt = :now"];
        let mut removes = Vec::new();
        let mut update = self
            .table
            .update(subscription_key(scope, id))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllNew);
        if let Some(url) = &changes.url {
            sets.push("#url = :url");
            update = update
                .expression_attribute_names("#url", "url")
                .expression_attribute_values(":url", s(url));
        }
        if let Some(events) = &changes.events {
            sets.push("events = :events");
            let list = events.iter().map(s).collect();
            update = update.expression_attribute_values(":events", AttributeValue::L(list));
        }
        match &changes.description {
            Some(Some(text)) => {
                sets.push("description = :description");
                update = update.expression_attribute_values(":description", s(text));
            }
            Some(None) => removes.push("description"),
            None => {}
        }
        match changes.active {
            Some(true) => {
                sets.extend(["#status = :active", "failedDeliveries = :zero"]);
                removes.extend(["disabledReason", "failingSince", "probeUntil"]);
                update = update
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":active", s("active"))
                    .expression_attribute_values(":zero", n(0));
            }
            Some(false) => {
                sets.extend(["#status = :disabled", "disabledReason = :reason"]);
                update = update
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":disabled", s("disabled"))
                    .expression_attribute_values(":reason", s("disabled by the owner"));
            }
            None => {}
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression).send().await {
            Ok(out) => out.attributes.map(from_item).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Removes a subscription; `false` when there was none.
    pub async fn delete(&self, scope: &TenantScope, id: &str) -> Result<bool, StoreError> {
        let count = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
            .update_expression("ADD webhookCount :minus")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            self.table.delete_in(subscription_key(scope, id), Some("attribute_exists(pk)"))?,
            TransactWriteItem::builder().update(count).build(),
        ];
        self.table.transact_if_first(items).await
    }

    /// Replaces the secret with `sealed`; the one it replaces keeps signing until `until`.
    /// `Conflict` when another rotation came first (the caller read `current`).
    pub async fn rotate(
        &self,
        scope: &TenantScope,
        id: &str,
        current: &str,
        sealed: &str,
        until: i64,
    ) -> Result<(), StoreError> {
        let rotated = self
            .table
            .update(subscription_key(scope, id))
            .update_expression(
                "SET secret = :new, previousSecret = :old, previousSecretUntil = :until, updatedAt = :now",
            )
            .condition_expression("secret = :old")
            .expression_attribute_values(":new", s(sealed))
            .expression_attribute_values(":old", s(current))
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await;
        if written(rotated)? { Ok(()) } else { Err(StoreError::Conflict) }
    }

    /// An attempt failed: the subscription is failing (since now, unless it already was),
    /// and the attempt's retry is a probe, or its delivery's probing has ended.
    pub async fn attempt_failed(
        &self,
        scope: &TenantScope,
        id: &str,
        probe: Probe,
    ) -> Result<(), StoreError> {
        let update = self
            .table
            .update(subscription_key(scope, id))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()));
        let update = match probe {
            Probe::Until(until) => update
                .update_expression(
                    "SET failingSince = if_not_exists(failingSince, :now), probeUntil = :until",
                )
                .expression_attribute_values(":until", n(until)),
            Probe::Ended => update.update_expression(
                "SET failingSince = if_not_exists(failingSince, :now) REMOVE probeUntil",
            ),
        };
        written(update.send().await).map(|_| ())
    }

    /// Takes the probe duty of a failing subscription until `until`, if nobody holds it:
    /// whether this caller now does.
    pub async fn claim_probe(
        &self,
        scope: &TenantScope,
        id: &str,
        until: i64,
    ) -> Result<bool, StoreError> {
        let claimed = self
            .table
            .update(subscription_key(scope, id))
            .update_expression("SET probeUntil = :until")
            .condition_expression(
                "attribute_exists(failingSince) AND \
                 (attribute_not_exists(probeUntil) OR probeUntil < :now)",
            )
            .expression_attribute_values(":until", n(until))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await;
        written(claimed)
    }

    /// An attempt was delivered: the subscription is healthy again.
    pub async fn attempt_delivered(&self, scope: &TenantScope, id: &str) -> Result<(), StoreError> {
        let cleared = self
            .table
            .update(subscription_key(scope, id))
            .update_expression("SET failedDeliveries = :zero REMOVE failingSince, probeUntil")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        written(cleared).map(|_| ())
    }

    /// `count` deliveries ended `failed`. Returns the reason when this disabled the
    /// subscription (failing for 5 days with at least 20 failed deliveries).
    pub async fn delivery_failed(
        &self,
        scope: &TenantScope,
        id: &str,
        count: i64,
    ) -> Result<Option<String>, StoreError> {
        let now = now_secs();
        let counted = self
            .table
            .update(subscription_key(scope, id))
            .update_expression(
                "SET failedDeliveries = if_not_exists(failedDeliveries, :zero) + :count, \
                 failingSince = if_not_exists(failingSince, :now)",
            )
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":count", n(count))
            .expression_attribute_values(":now", n(now))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let subscription = match counted {
            Ok(out) => match out.attributes.map(from_item).transpose()? {
                Some(subscription) => subscription,
                None => return Ok(None),
            },
            Err(e) if condition_failed(&e) => return Ok(None),
            Err(e) => return Err(dynamo_err(e)),
        };
        let since = subscription.failing_since.unwrap_or(now);
        if !subscription.active() || !sustained_failure(since, subscription.failed_deliveries, now)
        {
            return Ok(None);
        }
        let reason = format!(
            "no successful delivery for 5 days ({} failed deliveries)",
            subscription.failed_deliveries
        );
        Ok(self.disable(scope, id, &reason).await?.then_some(reason))
    }

    /// Disables an active subscription with `reason`; `false` when it was not active.
    pub async fn disable(
        &self,
        scope: &TenantScope,
        id: &str,
        reason: &str,
    ) -> Result<bool, StoreError> {
        let disabled = self
            .table
            .update(subscription_key(scope, id))
            .update_expression(
                "SET #status = :disabled, disabledReason = :reason, updatedAt = :now",
            )
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":disabled", s("disabled"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":reason", s(reason))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await;
        written(disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Subscription {
        Subscription {
            subscription_id: "whk_1".into(),
            url: "https://example.com/hook".into(),
            events: vec!["message.received".into()],
            description: None,
            status: "active".into(),
            disabled_reason: None,
            secret: "sealed-new".into(),
            previous_secret: Some("sealed-old".into()),
            previous_secret_until: Some(1_000),
            created_at: 1,
            updated_at: 1,
            failing_since: None,
            failed_deliveries: 0,
            probe_until: None,
        }
    }

    #[test]
    fn the_previous_secret_signs_only_until_its_time() {
        let subscription = sample();
        assert_eq!(subscription.signing_secrets(999), ["sealed-new", "sealed-old"]);
        assert_eq!(subscription.signing_secrets(1_000), ["sealed-new"]);
    }

    #[test]
    fn the_stored_item_round_trips_without_null_attributes() {
        let scope = TenantScope::new(domain::ids::TenantId::generate());
        let item = to_item(&scope, &sample()).expect("item");
        assert!(!item.contains_key("description"), "absent, not NULL");
        assert_eq!(item.get("sk"), Some(&s("WEBHOOK#whk_1")));
        assert_eq!(from_item(item).expect("read back"), sample());
    }
}
