//! A tenant's data, whole: erasing it (every item it has in every table, and the look-up
//! items elsewhere that name it) and exporting it (GDPR access), a page at a time.
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

/// The three tables, for erasing and exporting a tenant.
#[derive(Clone, Debug)]
pub struct TenantData {
    tenants: Table,
    pool: Table,
    messages: Table,
}

/// One page of a tenant's export.
#[derive(Debug, Clone)]
pub struct ExportPage {
    /// Each item with the table it is in (`tenants`, `messages`, `pool`), as plain JSON.
    pub items: Vec<(&'static str, serde_json::Value)>,
    pub next_cursor: Option<String>,
}

/// Attributes an export never shows: credentials, stored only as digests or envelopes.
const REDACTED: &[&str] =
    &["passwordHash", "digest", "secret", "secrets", "previousSecret", "payloadSecret"];

/// Where an export goes on: the partition (by its index in [`TenantData::partitions`]) and
/// the last key read in it.
#[derive(serde::Serialize, serde::Deserialize)]
struct Position {
    p: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sk: Option<String>,
}

/// An attribute as plain JSON: numbers as numbers (as text when too large), binary as
/// base64, sets as arrays.
fn plain(value: &aws_sdk_dynamodb::types::AttributeValue) -> serde_json::Value {
    use aws_sdk_dynamodb::types::AttributeValue as A;
    use base64::Engine;
    use serde_json::{Value, json};
    let number = |n: &str| {
        n.parse::<i64>()
            .map(Value::from)
            .or_else(|_| n.parse::<f64>().map(Value::from))
            .unwrap_or_else(|_| json!(n))
    };
    let bytes = |b: &aws_smithy_types::Blob| {
        json!(base64::engine::general_purpose::STANDARD.encode(b.as_ref()))
    };
    match value {
        A::S(s) => json!(s),
        A::N(n) => number(n),
        A::B(b) => bytes(b),
        A::Bool(b) => json!(b),
        A::Null(_) => Value::Null,
        A::L(list) => Value::Array(list.iter().map(plain).collect()),
        A::M(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), plain(v))).collect()),
        A::Ss(set) => json!(set),
        A::Ns(set) => Value::Array(set.iter().map(|n| number(n)).collect()),
        A::Bs(set) => Value::Array(set.iter().map(bytes).collect()),
        _ => Value::Null,
    }
}

/// How far an erasure got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub items: usize,
    /// Whether nothing of the tenant is left.
    pub done: bool,
}

impl TenantData {
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
        for (_, table, pk) in self.partitions(scope) {
            loop {
                if Instant::now() >= deadline {
                    return Ok(Erased { items, done: false });
                }
                let keys = self.keys_of(table, &pk).await?;
                if keys.is_empty() {
                    break;
                }
                items += keys.len();
                self.delete_all(table, keys).await?;
            }
        }
        Ok(Erased { items, done: true })
    }

    /// Every partition of the tenant, with its table's name for the export.
    fn partitions(&self, scope: &TenantScope) -> Vec<(&'static str, &Table, String)> {
        let pks: Vec<String> = std::iter::once(scope.pk()).chain(scope.shard_pks()).collect();
        let mut all = Vec::new();
        for (name, table) in
            [("tenants", &self.tenants), ("messages", &self.messages), ("pool", &self.pool)]
        {
            all.extend(pks.iter().map(|pk| (name, table, pk.clone())));
        }
        all
    }

    /// Up to `limit` of the tenant's items from `cursor` on, in a fixed order (table by
    /// table, partition by partition), credentials redacted. Reads only what the page
    /// needs, so an export of any size goes page by page.
    pub async fn export_page(
        &self,
        scope: &TenantScope,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<ExportPage, StoreError> {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut at = match cursor {
            None => Position { p: 0, pk: None, sk: None },
            Some(c) => URL_SAFE_NO_PAD
                .decode(c)
                .ok()
                .and_then(|json| serde_json::from_slice::<Position>(&json).ok())
                .ok_or(StoreError::InvalidCursor)?,
        };
        let partitions = self.partitions(scope);
        let mut items = Vec::new();
        while at.p < partitions.len() && items.len() < usize::try_from(limit).unwrap_or(0) {
            let (name, table, pk) = &partitions[at.p];
            let start = match (&at.pk, &at.sk) {
                (Some(p), Some(s)) if p == pk => Some(key(p.clone(), s.clone())),
                (Some(_), _) => return Err(StoreError::InvalidCursor),
                _ => None,
            };
            let want = limit - i32::try_from(items.len()).unwrap_or(limit);
            let out = table
                .query()
                .key_condition_expression("pk = :pk")
                .expression_attribute_values(":pk", super::attrs::s(pk))
                .set_exclusive_start_key(start)
                .limit(want)
                .send()
                .await
                .map_err(dynamo_err)?;
            for item in out.items() {
                let object: serde_json::Map<String, serde_json::Value> = item
                    .iter()
                    .map(|(field, value)| {
                        let shown = if REDACTED.contains(&field.as_str()) {
                            serde_json::json!("[redacted]")
                        } else {
                            plain(value)
                        };
                        (field.clone(), shown)
                    })
                    .collect();
                items.push((*name, serde_json::Value::Object(object)));
            }
            match out.last_evaluated_key() {
                Some(last) => {
                    at.pk = opt_s(last, "pk").map(str::to_owned);
                    at.sk = opt_s(last, "sk").map(str::to_owned);
                }
                None => at = Position { p: at.p + 1, pk: None, sk: None },
            }
        }
        let next_cursor = (at.p < partitions.len())
            .then(|| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&at).unwrap_or_default()));
        Ok(ExportPage { items, next_cursor })
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
