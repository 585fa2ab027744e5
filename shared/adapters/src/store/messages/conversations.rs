//! Conversations and their messages, as the API reads and updates them.

use super::*;
use crate::store::attrs::{Item, key, n, now_secs, opt_s, s};
use crate::store::page::{self, Page};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, written};
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
        written(out)
    }

    /// Conversations by latest activity, newest first, optionally filtered: the list's
    /// [`CONVERSATION_LIST_SHARDS`] index partitions merged (`Table::merged_page`). The
    /// cursor is a position in the list, meaningless under another tenant's partitions,
    /// which the query never names.
    pub async fn list(
        &self,
        scope: &TenantScope,
        status: Option<&str>,
        assigned_agent_id: Option<&str>,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationView>, StoreError> {
        let before = cursor.map(page::decode_position).transpose()?;
        let partitions: Vec<String> = (0..CONVERSATION_LIST_SHARDS)
            .map(|shard| format!("CONVS#{}#{shard}", scope.tenant_id()))
            .collect();
        let (items, next) = self
            .table
            .merged_page(&partitions, before.as_deref(), limit, |mut query| {
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
                if filters.is_empty() {
                    query
                } else {
                    query.filter_expression(filters.join(" AND "))
                }
            })
            .await?;
        Ok(Page {
            items: items.iter().map(conversation_from).collect::<Result<_, _>>()?,
            next_cursor: next.as_deref().map(page::encode_position),
        })
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
