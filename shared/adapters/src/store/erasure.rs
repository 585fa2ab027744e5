//! Erasing a tenant: every item it has in every table, and the look-up items elsewhere
//! that name it.
//!
//! A tenant's items are under `TENANT#<tid>` and its 64 shards (`TENANT#<tid>#<nn>`) in each
//! table. Outside them, three kinds of item point at it: an email of one of its users
//! (`EMAIL#<email>`), an API key's lookup id (`APIKEYLOOKUP#<lookup>`), and its Cloud API
//! number (`PHONE#<phone number id>`). They are found through the tenant's own items, so
//! they go first. Deletes go 25 to a BatchWriteItem; a caller gives a deadline, and an
//! erasure that meets it says so and is simply run again (what is gone stays gone).

use super::attrs::{Item, key, opt_s};
use super::table::Table;
use super::{StoreError, TenantScope, dynamo_err};
use crate::config::Resources;
use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
use std::time::Instant;

/// A tenant's partitions, page size of a read.
const PAGE: i32 = 500;

/// The three tables, for erasing.
#[derive(Clone, Debug)]
pub struct Eraser {
    tenants: Table,
    pool: Table,
    messages: Table,
}

/// How far an erasure got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub items: usize,
    /// Whether nothing of the tenant is left.
    pub done: bool,
}

impl Eraser {
    pub fn of(clients: &crate::aws::AwsClients, resources: &Resources) -> Self {
        let table = |name: &str| Table::new(clients.dynamodb.clone(), name);
        Self {
            tenants: table(&resources.tenants_table),
            pool: table(&resources.pool_table),
            messages: table(&resources.messages_table),
        }
    }

    /// Whether the tenant item is still there (an erasure waits until it is gone).
    pub async fn tenant_exists(&self, scope: &TenantScope) -> Result<bool, StoreError> {
        Ok(self.tenants.get(key(scope.pk(), "TENANT")).await?.is_some())
    }

    /// Deletes what it can of the tenant before `deadline`.
    pub async fn erase(
        &self,
        scope: &TenantScope,
        deadline: Instant,
    ) -> Result<Erased, StoreError> {
        let mut items = 0;
        // The look-ups first: they are found through the tenant's own items.
        let outside = self.outside_keys(scope).await?;
        items += outside.len();
        self.delete_all(&self.tenants, outside).await?;
        let partitions: Vec<String> =
            std::iter::once(scope.pk()).chain(scope.shard_pks()).collect();
        for table in [&self.tenants, &self.messages, &self.pool] {
            for pk in &partitions {
                loop {
                    if Instant::now() >= deadline {
                        return Ok(Erased { items, done: false });
                    }
                    let keys = self.keys_of(table, pk).await?;
                    if keys.is_empty() {
                        break;
                    }
                    items += keys.len();
                    self.delete_all(table, keys).await?;
                }
            }
        }
        Ok(Erased { items, done: true })
    }

    /// The look-up items outside the tenant's partitions that name it.
    async fn outside_keys(&self, scope: &TenantScope) -> Result<Vec<Item>, StoreError> {
        let own = self
            .tenants
            .query_all(
                self.tenants
                    .query()
                    .key_condition_expression("pk = :pk")
                    .expression_attribute_values(":pk", super::attrs::s(scope.pk())),
            )
            .await?;
        let mut keys = Vec::new();
        for item in &own {
            let sk = opt_s(item, "sk").unwrap_or_default();
            if sk.starts_with("USER#")
                && let Some(email) = opt_s(item, "email")
            {
                keys.push(key(format!("EMAIL#{email}"), "EMAIL"));
            }
            if sk.starts_with("APIKEY#")
                && let Some(lookup) = opt_s(item, "lookupId")
            {
                keys.push(key(format!("APIKEYLOOKUP#{lookup}"), "APIKEYLOOKUP"));
            }
            if sk == "CHANNEL"
                && let Some(settings) = opt_s(item, "settings")
                && let Ok(settings) = serde_json::from_str::<serde_json::Value>(settings)
                && let Some(phone) = settings.get("phoneNumberId").and_then(|p| p.as_str())
            {
                keys.push(key(format!("PHONE#{phone}"), "PHONE"));
            }
        }
        Ok(keys)
    }

    /// Up to a page of keys of one partition.
    async fn keys_of(&self, table: &Table, pk: &str) -> Result<Vec<Item>, StoreError> {
        let out = table
            .query()
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", super::attrs::s(pk))
            .projection_expression("pk, sk")
            .limit(PAGE)
            .send()
            .await
            .map_err(dynamo_err)?;
        Ok(out.items.unwrap_or_default())
    }

    /// Deletes `keys`, 25 to a request, asking again for what DynamoDB left unprocessed.
    async fn delete_all(&self, table: &Table, keys: Vec<Item>) -> Result<(), StoreError> {
        for chunk in keys.chunks(25) {
            let mut requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|k| {
                    let delete = DeleteRequest::builder().set_key(Some(k.clone())).build();
                    delete.map(|d| WriteRequest::builder().delete_request(d).build())
                })
                .collect::<Result<_, _>>()
                .map_err(dynamo_err)?;
            for attempt in 0..8u32 {
                let out = table
                    .client()
                    .batch_write_item()
                    .request_items(table.name(), requests)
                    .send()
                    .await
                    .map_err(dynamo_err)?;
                requests = out
                    .unprocessed_items
                    .and_then(|mut u| u.remove(table.name()))
                    .unwrap_or_default();
                if requests.is_empty() {
                    break;
                }
                if attempt == 7 {
                    return Err(StoreError::Unavailable("deletes left unprocessed".into()));
                }
                tokio::time::sleep(std::time::Duration::from_millis(50 << attempt)).await;
            }
        }
        Ok(())
    }
}
