//! Conversations and their messages, as the API reads and updates them.

use super::*;
use crate::store::attrs::{Item, get_s, key, n, now_secs, opt_s, s};
use crate::store::page::{self, Page};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err};
use aws_sdk_dynamodb::types::ReturnValue;

/// Conversations and messages.
#[derive(Clone, Copy, Debug)]
pub struct Conversations<'a> {
    pub(crate) table: &'a Table,
}

impl Conversations<'_> {
    pub async fn get(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<ConversationView>, StoreError> {
        let item = self.table.get(key(scope.pk(), format!("CONV#{id}"))).await?;
        item.as_ref().map(conversation_from).transpose()
    }

    /// Changes a conversation's status and assignee (`Some(None)` unassigns); `None` when
    /// the tenant has no such conversation.
    pub async fn update(
        &self,
        scope: &TenantScope,
        id: &str,
        status: Option<&str>,
        assignee: Option<Option<&str>>,
    ) -> Result<Option<ConversationView>, StoreError> {
        let mut sets = vec!["updatedAt = :now"];
        let mut removes = Vec::new();
        let mut update = self
            .table
            .update(key(scope.pk(), format!("CONV#{id}")))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()))
            .return_values(ReturnValue::AllNew);
        if let Some(status) = status {
            sets.push("#status = :status");
            update = update
                .expression_attribute_names("#status", "status")
                .expression_attribute_values(":status", s(status));
        }
        match assignee {
            Some(Some(agent)) => {
                sets.push("assignedAgentId = :agent");
                update = update.expression_attribute_values(":agent", s(agent));
            }
            Some(None) => removes.push("assignedAgentId"),
            None => {}
        }
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        match update.update_expression(expression).send().await {
            Ok(out) => out.attributes.as_ref().map(conversation_from).transpose(),
            Err(e) if condition_failed(&e) => Ok(None),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Auto-assignment: gives a new conversation to `agent` unless someone has it already.
    pub async fn assign_if_unassigned(
        &self,
        scope: &TenantScope,
        conversation_id: &str,
        agent: &str,
    ) -> Result<bool, StoreError> {
        let out = self
            .table
            .update(key(scope.pk(), format!("CONV#{conversation_id}")))
            .update_expression("SET assignedAgentId = :agent")
            .condition_expression("attribute_exists(pk) AND attribute_not_exists(assignedAgentId)")
            .expression_attribute_values(":agent", s(agent))
            .send()
            .await;
        match out {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    /// Conversations by latest activity, newest first, optionally filtered.
    ///
    /// The list is spread over [`CONVERSATION_LIST_SHARDS`] index partitions: each is read
    /// from the cursor's position and the pages merged. An item is returned only once
    /// every shard has been read past it, so the order holds across pages. The cursor is
    /// that position (an activity key, `<time>#<id>`): meaningless under another tenant's
    /// partitions, which the query never names.
    pub async fn list(
        &self,
        scope: &TenantScope,
        status: Option<&str>,
        assigned_agent_id: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationView>, StoreError> {
        let before = cursor.map(page::decode_position).transpose()?;
        let reads = (0..CONVERSATION_LIST_SHARDS).map(|shard| {
            let list = format!("CONVS#{}#{shard}", scope.tenant_id());
            let mut query = self
                .table
                .query()
                .index_name("gsi1")
                .expression_attribute_values(":list", s(list))
                .scan_index_forward(false)
                .limit(limit);
            query = match &before {
                Some(position) => query
                    .key_condition_expression("gsi1pk = :list AND gsi1sk < :before")
                    .expression_attribute_values(":before", s(position)),
                None => query.key_condition_expression("gsi1pk = :list"),
            };
            let mut filters = Vec::new();
            if let Some(status) = status {
                filters.push("#status = :status");
                query = query
                    .expression_attribute_names("#status", "status")
                    .expression_attribute_values(":status", s(status));
            }
            if let Some(agent) = assigned_agent_id {
                filters.push("assignedAgentId = :agent");
                query = query.expression_attribute_values(":agent", s(agent));
            }
            if !filters.is_empty() {
                query = query.filter_expression(filters.join(" AND "));
            }
            query.send()
        });
        let pages = futures_util::future::try_join_all(reads).await.map_err(dynamo_err)?;

        // Every shard has been read down to `floor`: its items above it are all known.
        let floor = pages
            .iter()
            .filter_map(|p| p.last_evaluated_key().and_then(|k| opt_s(k, "gsi1sk")))
            .max()
            .map(str::to_owned);
        let mut known: Vec<(String, &Item)> = pages
            .iter()
            .flat_map(|p| p.items())
            .map(|item| Ok((get_s(item, "gsi1sk")?.to_owned(), item)))
            .filter(|found: &Result<(String, &Item), StoreError>| match (found, &floor) {
                (Ok((position, _)), Some(floor)) => position >= floor,
                _ => true,
            })
            .collect::<Result<_, StoreError>>()?;
        known.sort_by(|a, b| b.0.cmp(&a.0));
        let wanted = usize::try_from(limit).unwrap_or(0);
        let next_cursor = if known.len() > wanted {
            known.truncate(wanted);
            known.last().map(|(position, _)| page::encode_position(position))
        } else {
            floor.as_deref().map(page::encode_position)
        };
        let items =
            known.iter().map(|(_, item)| conversation_from(item)).collect::<Result<_, _>>()?;
        Ok(Page { items, next_cursor })
    }

    /// A conversation's messages, newest first.
    pub async fn messages(
        &self,
        scope: &TenantScope,
        conversation_id: &str,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<MessageView>, StoreError> {
        let list = format!("CONV#{}#{conversation_id}", scope.tenant_id());
        let start = cursor
            .map(|c| page::decode_index(c, "gsi2pk", &list, |pk| scope.owns_pk(pk)))
            .transpose()?;
        let out = self
            .table
            .query()
            .index_name("gsi2")
            .key_condition_expression("gsi2pk = :list")
            .expression_attribute_values(":list", s(&list))
            .scan_index_forward(false)
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_err)?;
        let mut items = Vec::new();
        for item in out.items() {
            items.push(self.with_delivery(scope, item).await?);
        }
        Ok(Page { items, next_cursor: page::encode(out.last_evaluated_key()) })
    }

    pub async fn message(
        &self,
        scope: &TenantScope,
        id: &str,
    ) -> Result<Option<MessageView>, StoreError> {
        let Some(item) = self.table.get(message_key(scope, id)).await? else {
            return Ok(None);
        };
        Ok(Some(self.with_delivery(scope, &item).await?))
    }

    async fn with_delivery(
        &self,
        scope: &TenantScope,
        item: &Item,
    ) -> Result<MessageView, StoreError> {
        let delivery = match (opt_s(item, "direction"), opt_s(item, "wamid")) {
            (Some("outbound"), Some(wamid)) => self.table.get(wamid_key(scope, wamid)).await?,
            _ => None,
        };
        message_from(item, delivery.as_ref())
    }
}
