//! Delivery states of outbound messages, from Meta's status webhooks: each status once,
//! the state only forward.

use super::*;
use crate::store::attrs::{n, now_secs, opt_s, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err};
use aws_sdk_dynamodb::types::ReturnValue;
use domain::meta::{DeliveryStatus, StatusUpdate};

/// Delivery states, by wamid.
#[derive(Clone, Copy, Debug)]
pub struct Deliveries<'a> {
    pub(crate) table: &'a Table,
}

impl Deliveries<'_> {
    /// Records a status of an outbound message. Each status is recorded once (with its
    /// time) whatever the order; the current state only moves forward. Returns whether
    /// this status was new (so that it is counted once), and our id of the message when
    /// the sender has recorded its wamid.
    pub async fn apply(
        &self,
        scope: &TenantScope,
        update: &StatusUpdate,
    ) -> Result<StatusApplied, StoreError> {
        let status = update.status.as_str();
        let ts = if update.timestamp > 0 { update.timestamp } else { now_secs() };
        let record = format!(
            "SET at_{status} = if_not_exists(at_{status}, :ts), raw_{status} = if_not_exists(raw_{status}, :raw), \
             direction = if_not_exists(direction, :out)"
        );
        let recorded = |expression: String| {
            self.table
                .update(wamid_key(scope, &update.wamid))
                .update_expression(expression)
                .expression_attribute_values(":ts", n(ts))
                .expression_attribute_values(":raw", s(update.raw.to_string()))
                .expression_attribute_values(":out", s("outbound"))
                .return_values(ReturnValue::AllOld)
        };
        // Statuses mostly come in order: one write records this one and moves the state
        // forward. One that comes after a later status is only recorded (a second write;
        // the refused first one is billed too, as a write).
        let mut forward = recorded(format!("{record}, #status = :status, statusRank = :rank"))
            .condition_expression("attribute_not_exists(statusRank) OR statusRank < :rank")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":rank", n(update.status.rank()));
        if let Some((code, title)) = &update.error {
            let error = serde_json::json!({ "code": code, "title": title }).to_string();
            forward = forward
                .update_expression(format!(
                    "{record}, #status = :status, statusRank = :rank, #error = :error"
                ))
                .expression_attribute_names("#error", "error")
                .expression_attribute_values(":error", s(error));
        }
        let old = match forward.send().await {
            Ok(out) => out.attributes,
            Err(e) if condition_failed(&e) => {
                recorded(record).send().await.map_err(dynamo_err)?.attributes
            }
            Err(e) => return Err(dynamo_err(e)),
        };
        let old = old.as_ref();
        let new = old.is_none_or(|old| !old.contains_key(&format!("at_{status}")));
        let message_id = old.and_then(|old| opt_s(old, "messageId")).map(str::to_owned);

        if new && update.status != DeliveryStatus::Sent {
            self.table
                .update(usage_key(scope, ts, &update.wamid))
                .update_expression("ADD #counter :one")
                .expression_attribute_names("#counter", status)
                .expression_attribute_values(":one", n(1))
                .send()
                .await
                .map_err(dynamo_err)?;
        }
        Ok(StatusApplied { new, message_id })
    }

    pub async fn state(
        &self,
        scope: &TenantScope,
        wamid: &str,
    ) -> Result<Option<(String, Vec<StatusEntry>)>, StoreError> {
        let item = self.table.get(wamid_key(scope, wamid)).await?;
        Ok(item.map(|i| (opt_s(&i, "status").unwrap_or("queued").to_owned(), history_from(&i))))
    }
}
