//! One DynamoDB table, as every repository uses it: strongly consistent point reads, puts
//! (plain or conditional), transactions, and queries read whole or a page at a time.
//! Repositories keep their key layout and their update expressions; this is the rest.

use super::attrs::{Item, s};
use super::page::{self, Page};
use super::{StoreError, dynamo_err};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::builders::UpdateBuilder;
use aws_sdk_dynamodb::types::{
    AttributeValue, Delete, KeysAndAttributes, Put, TransactWriteItem, Update,
};

/// Queries [`Table::query_all_of`] keeps in flight: a tenant's 64 shards read in four rounds.
const QUERIES_IN_FLIGHT: usize = 16;

#[derive(Clone, Debug)]
pub struct Table {
    db: Client,
    name: String,
}

impl Table {
    pub fn new(db: Client, name: impl Into<String>) -> Self {
        Self { db, name: name.into() }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn client(&self) -> &Client {
        &self.db
    }

    /// A strongly consistent point read: every repository reads what it, or a concurrent
    /// writer, has just written.
    pub async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        let out = self
            .db
            .get_item()
            .table_name(&self.name)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(dynamo_err)?;
        Ok(out.item)
    }

    /// The items of `keys` that exist (BatchGetItem, 100 keys a request, strongly
    /// consistent; what DynamoDB leaves unprocessed is asked for again).
    pub async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>, StoreError> {
        let mut found = Vec::new();
        for chunk in keys.chunks(100) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(dynamo_err)?,
            );
            while let Some(request) = pending.take() {
                let out = self
                    .db
                    .batch_get_item()
                    .request_items(&self.name, request)
                    .send()
                    .await
                    .map_err(dynamo_err)?;
                let items =
                    out.responses.and_then(|mut r| r.remove(&self.name)).unwrap_or_default();
                found.extend(items);
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.name))
                    .filter(|k| !k.keys().is_empty());
                if pending.is_some() {
                    // Throttled: DynamoDB asks for the rest again, after a pause.
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            }
        }
        Ok(found)
    }

    /// A put of an item that must not exist yet: `false` when it did (nothing written).
    pub async fn put_if_absent(&self, item: Item) -> Result<bool, StoreError> {
        let out = self
            .db
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        super::written(out)
    }

    /// An unconditional put.
    pub async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.db
            .put_item()
            .table_name(&self.name)
            .set_item(Some(item))
            .send()
            .await
            .map_err(dynamo_err)?;
        Ok(())
    }

    /// An update of one item, its key set; the caller writes the expression.
    pub fn update(&self, key: Item) -> UpdateItemFluentBuilder {
        self.db.update_item().table_name(&self.name).set_key(Some(key))
    }

    /// A query on this table; the caller writes the key condition.
    pub fn query(&self) -> QueryFluentBuilder {
        self.db.query().table_name(&self.name)
    }

    /// A query for the items of partition `pk` whose sort keys lie between `from` and `to`.
    pub fn sk_between(&self, pk: &str, from: &str, to: &str) -> QueryFluentBuilder {
        self.query()
            .key_condition_expression("pk = :pk AND sk BETWEEN :from AND :to")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":from", s(from))
            .expression_attribute_values(":to", s(to))
    }

    /// Every item a query matches, page after page (for the few lists that are read whole).
    pub async fn query_all(&self, query: QueryFluentBuilder) -> Result<Vec<Item>, StoreError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out =
                query.clone().set_exclusive_start_key(start).send().await.map_err(dynamo_err)?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) => start = Some(k),
                None => return Ok(items),
            }
        }
    }

    /// Every item of several queries (one per shard of a tenant, say), run a few at a time.
    pub async fn query_all_of(
        &self,
        queries: impl IntoIterator<Item = QueryFluentBuilder>,
    ) -> Result<Vec<Item>, StoreError> {
        use futures_util::{StreamExt, TryStreamExt};
        let pages: Vec<Vec<Item>> = futures_util::stream::iter(queries)
            .map(|query| self.query_all(query))
            .buffer_unordered(QUERIES_IN_FLIGHT)
            .try_collect()
            .await?;
        Ok(pages.into_iter().flatten().collect())
    }

    /// One page of a list kept in `gsi1` under several index partitions (a hot list spread
    /// out), newest first: each partition is read from `before` (a position, `gsi1sk`) and
    /// the pages merged. An item is returned only once every partition has been read past
    /// it, so that pages in a row are the whole list in order, filtered or not. Returns the
    /// items and the position the next page starts before. `shape` adds filters to each
    /// partition's query (and must leave its key condition alone).
    pub async fn merged_page(
        &self,
        partitions: &[String],
        before: Option<&str>,
        limit: i32,
        shape: impl Fn(QueryFluentBuilder) -> QueryFluentBuilder,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let reads = partitions.iter().map(|partition| {
            let query = self
                .query()
                .index_name("gsi1")
                .expression_attribute_values(":list", s(partition))
                .scan_index_forward(false)
                .limit(limit);
            let query = match before {
                Some(position) => query
                    .key_condition_expression("gsi1pk = :list AND gsi1sk < :before")
                    .expression_attribute_values(":before", s(position)),
                None => query.key_condition_expression("gsi1pk = :list"),
            };
            shape(query).send()
        });
        let pages = futures_util::future::try_join_all(reads).await.map_err(dynamo_err)?;

        // Every partition has been read down to `floor`: all its items above it are known.
        let position = |item: &Item| item.get("gsi1sk").and_then(|v| v.as_s().ok()).cloned();
        let floor = pages.iter().filter_map(|p| p.last_evaluated_key().and_then(position)).max();
        let mut known: Vec<(String, Item)> = pages
            .into_iter()
            .flat_map(|p| p.items.unwrap_or_default())
            .filter_map(|item| Some((position(&item)?, item)))
            .filter(|(at, _)| floor.as_ref().is_none_or(|floor| at >= floor))
            .collect();
        known.sort_by(|a, b| b.0.cmp(&a.0));
        let wanted = usize::try_from(limit).unwrap_or(0);
        let next = if known.len() > wanted {
            known.truncate(wanted);
            known.last().map(|(at, _)| at.clone())
        } else {
            floor
        };
        Ok((known.into_iter().map(|(_, item)| item).collect(), next))
    }

    /// One page of the items of partition `pk` whose sort keys start with `prefix`, from
    /// `cursor` (an opaque cursor this list handed out, refused for any other list).
    pub async fn page<T>(
        &self,
        pk: &str,
        prefix: &str,
        limit: i32,
        cursor: Option<&str>,
        parse: fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let start = cursor.map(|c| page::decode(c, pk, prefix)).transpose()?;
        let out = self
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":prefix", s(prefix))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_err)?;
        let items = out.items().iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor: page::encode(out.last_evaluated_key()) })
    }

    /// A put inside a transaction, with an optional condition.
    pub fn put_in(
        &self,
        item: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        self.put_with(Put::builder().set_condition_expression(condition.map(str::to_owned)), item)
    }

    /// A put inside a transaction whose condition compares with one value.
    pub fn put_in_if(
        &self,
        item: Item,
        condition: &str,
        (name, value): (&str, AttributeValue),
    ) -> Result<TransactWriteItem, StoreError> {
        let put =
            Put::builder().condition_expression(condition).expression_attribute_values(name, value);
        self.put_with(put, item)
    }

    fn put_with(
        &self,
        put: aws_sdk_dynamodb::types::builders::PutBuilder,
        item: Item,
    ) -> Result<TransactWriteItem, StoreError> {
        let put = put.table_name(&self.name).set_item(Some(item)).build().map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// An update inside a transaction (the builder names key and expression).
    pub fn update_in(&self, update: UpdateBuilder) -> Result<TransactWriteItem, StoreError> {
        let update = update.table_name(&self.name).build().map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// An update builder for a transaction, its key set.
    pub fn update_of(&self, key: Item) -> UpdateBuilder {
        Update::builder().table_name(&self.name).set_key(Some(key))
    }

    /// A delete inside a transaction, with an optional condition.
    pub fn delete_in(
        &self,
        key: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(&self.name)
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    /// Runs a transaction. The raw SDK error is returned: a cancelled transaction is often
    /// an expected outcome ([`super::failed_conditions`] tells which item's condition
    /// failed), which only the repository can interpret.
    pub async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.db.transact_write_items().set_transact_items(Some(items)).send().await.map(|_| ())
    }

    /// Runs a transaction whose first item is conditional on the thing it changes being
    /// there: `false` when it was not (gone already), `Conflict` when another condition
    /// did not hold.
    pub async fn transact_if_first(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<bool, StoreError> {
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) => match super::failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => Ok(false),
                Some(_) => Err(StoreError::Conflict),
                None => Err(dynamo_err(e)),
            },
        }
    }
}
