//! Raw webhook events, stored exactly as received before they are acknowledged, in the
//! `messages` table.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | raw webhook event | shard of the event id | `RAW#<event id>` | the body (gzip above 300 KB); TTL 7 days |
//! | a part of a large body | shard of the event id | `RAWPART#<event id>#<nnn>` | up to 350 KB of the gzip each; same TTL |
//!
//! A DynamoDB item holds 400 KB, and API Gateway lets 10 MB through. A body whose gzip
//! still does not fit is cut into parts, written first; the event item, written last,
//! names how many there are, so an event is only ever read whole.

use super::sortable;
use crate::store::attrs::{Item, key, n, now_secs, opt_n, opt_s, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, dynamo_err};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use futures_util::future::try_join_all;
use std::io::{Read, Write};

/// Raw events are kept a week: long enough to replay after an incident.
pub const RAW_EVENT_TTL_SECS: i64 = 7 * 24 * 3600;
/// Larger bodies (Meta's own stay under 3 MB) are stored compressed.
const COMPRESS_ABOVE: usize = 300 * 1024;
/// The most of a compressed body kept in one item, well under DynamoDB's 400 KB.
pub const PART_BYTES: usize = 350 * 1024;
/// Parts written at once.
const PARALLEL_PARTS: usize = 8;

fn raw_key(scope: &TenantScope, event_id: &str) -> Item {
    key(scope.shard_pk(event_id), format!("RAW#{event_id}"))
}

fn part_sk(event_id: &str, index: usize) -> String {
    format!("RAWPART#{event_id}#{index:03}")
}

/// Raw webhook events.
#[derive(Clone, Copy, Debug)]
pub struct RawEvents<'a> {
    pub(crate) table: &'a Table,
}

impl RawEvents<'_> {
    /// Stores a webhook body exactly as received; returns its event id (time-ordered).
    pub async fn put(
        &self,
        scope: &TenantScope,
        body: &[u8],
        source: &str,
    ) -> Result<String, StoreError> {
        let now = now_secs();
        let expires = now + RAW_EVENT_TTL_SECS;
        let event_id =
            format!("{}-{}", sortable(now), &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let mut item = raw_key(scope, &event_id);
        if body.len() <= COMPRESS_ABOVE {
            item.insert("body".into(), AttributeValue::B(Blob::new(body.to_vec())));
        } else {
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            gz.write_all(body).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let compressed = gz.finish().map_err(|e| StoreError::Corrupt(e.to_string()))?;
            if compressed.len() <= PART_BYTES {
                item.insert("bodyGzip".into(), AttributeValue::B(Blob::new(compressed)));
            } else {
                let parts: Vec<&[u8]> = compressed.chunks(PART_BYTES).collect();
                self.put_parts(scope, &event_id, &parts, expires).await?;
                item.insert("bodyGzipParts".into(), n(parts.len()));
            }
        }
        item.insert("source".into(), s(source));
        item.insert("bytes".into(), n(body.len()));
        item.insert("receivedAt".into(), n(now));
        item.insert("expiresAt".into(), n(expires));
        self.table.put(item).await?;
        Ok(event_id)
    }

    async fn put_parts(
        &self,
        scope: &TenantScope,
        event_id: &str,
        parts: &[&[u8]],
        expires: i64,
    ) -> Result<(), StoreError> {
        for (group_index, group) in parts.chunks(PARALLEL_PARTS).enumerate() {
            let writes = group.iter().enumerate().map(|(i, part)| {
                let mut item = key(
                    scope.shard_pk(event_id),
                    part_sk(event_id, group_index * PARALLEL_PARTS + i),
                );
                item.insert("part".into(), AttributeValue::B(Blob::new(part.to_vec())));
                item.insert("expiresAt".into(), n(expires));
                self.table.put(item)
            });
            try_join_all(writes).await?;
        }
        Ok(())
    }

    pub async fn get(
        &self,
        scope: &TenantScope,
        event_id: &str,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(item) = self.table.get(raw_key(scope, event_id)).await? else {
            return Ok(None);
        };
        if let Some(AttributeValue::B(b)) = item.get("body") {
            return Ok(Some(b.as_ref().to_vec()));
        }
        if let Some(AttributeValue::B(b)) = item.get("bodyGzip") {
            return gunzip(b.as_ref()).map(Some);
        }
        if let Some(count) = opt_n(&item, "bodyGzipParts") {
            let compressed = self.read_parts(scope, event_id, count).await?;
            return gunzip(&compressed).map(Some);
        }
        Err(StoreError::Corrupt("raw event without a body".into()))
    }

    async fn read_parts(
        &self,
        scope: &TenantScope,
        event_id: &str,
        count: i64,
    ) -> Result<Vec<u8>, StoreError> {
        let query = self
            .table
            .sk_between(
                &scope.shard_pk(event_id),
                &format!("RAWPART#{event_id}#"),
                &format!("RAWPART#{event_id}#~"),
            )
            .consistent_read(true);
        let items: Vec<Item> = self.table.query_all(query).await?;
        if i64::try_from(items.len()).ok() != Some(count) {
            return Err(StoreError::Corrupt(format!(
                "raw event has {} of its {count} parts",
                items.len()
            )));
        }
        // A query returns sort-key order: the parts in sequence.
        let mut compressed = Vec::new();
        for item in &items {
            match item.get("part") {
                Some(AttributeValue::B(b)) => compressed.extend_from_slice(b.as_ref()),
                _ => return Err(StoreError::Corrupt("raw event part without bytes".into())),
            }
        }
        Ok(compressed)
    }

    /// Event ids stored for a tenant since `since` (epoch seconds), oldest first: what a
    /// replay re-queues.
    pub async fn ids_since(
        &self,
        scope: &TenantScope,
        since: i64,
    ) -> Result<Vec<String>, StoreError> {
        let from = format!("RAW#{}", sortable(since));
        let queries = scope
            .shard_pks()
            .map(|pk| self.table.sk_between(&pk, &from, "RAW#~").projection_expression("sk"));
        let mut ids: Vec<String> = self
            .table
            .query_all_of(queries)
            .await?
            .iter()
            .filter_map(|i| opt_s(i, "sk")?.strip_prefix("RAW#").map(str::to_owned))
            .collect();
        // Event ids start with their time: sorted, the shards' events are in arrival order.
        ids.sort();
        Ok(ids)
    }

    pub async fn mark(
        &self,
        scope: &TenantScope,
        event_id: &str,
        outcome: &str,
    ) -> Result<(), StoreError> {
        self.table
            .update(raw_key(scope, event_id))
            .update_expression("SET outcome = :outcome, processedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":outcome", s(outcome))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }
}

fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(compressed)
        .read_to_end(&mut out)
        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(out)
}
