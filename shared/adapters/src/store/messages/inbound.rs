//! Inbound messages, stored once each (keyed on the wamid) with their conversation, the
//! contact's service window and the day's usage; and the other changes webhooks bring.

use super::*;
use crate::store::attrs::{get_s, key, n, now_secs, opt_bool, opt_n, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, dynamo_err};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Update};
use domain::meta::InboundMessage;

/// Inbound messages and other webhook changes.
#[derive(Clone, Copy, Debug)]
pub struct Inbound<'a> {
    pub(crate) table: &'a Table,
}

impl Inbound<'_> {
    /// Stores an inbound message once, with its conversation (created on the contact's
    /// first message, with the contact), its service window and the day's usage, in one
    /// transaction keyed on the wamid. A known contact's item is only read: the window
    /// (`lastInboundAt`) lives on the conversation, whose update carries the guard.
    pub async fn apply(
        &self,
        scope: &TenantScope,
        message: &InboundMessage,
    ) -> Result<Applied, StoreError> {
        let pk = scope.pk();
        // Concurrent first messages of one new contact race for the contact item; the
        // loser reads the winner's conversation and tries again.
        for attempt in 0..10u64 {
            if attempt > 0 {
                // Jittered, growing pause: messages of one customer often come in bursts.
                let jitter = u64::from(uuid::Uuid::new_v4().as_bytes()[0]) % 40;
                tokio::time::sleep(std::time::Duration::from_millis(10 * attempt + jitter)).await;
            }
            // NOTE: a status for a wamid we never sent leaves an item without a message id
            // (published sample payloads reuse ids); only a stored message deduplicates.
            let existing = self.table.get(wamid_key(scope, &message.wamid)).await?;
            if let Some(existing) = existing.filter(|e| e.contains_key("messageId")) {
                return Ok(Applied {
                    message_id: get_s(&existing, "messageId")?.to_owned(),
                    conversation_id: get_s(&existing, "conversationId")?.to_owned(),
                    new_message: false,
                    new_conversation: opt_bool(&existing, "openedConversation").unwrap_or(false),
                });
            }
            let contact = self.table.get(key(&pk, format!("CONTACT#{}", message.from))).await?;
            let (conversation_id, new_conversation) = match &contact {
                Some(c) => (get_s(c, "conversationId")?.to_owned(), false),
                None => (format!("conv_{}", uuid::Uuid::new_v4().simple()), true),
            };
            let message_id = format!("msg_{}", uuid::Uuid::new_v4().simple());
            let seen = match contact {
                None => None,
                Some(_) => self
                    .table
                    .get(key(&pk, format!("CONV#{conversation_id}")))
                    .await?
                    .and_then(|c| opt_n(&c, "lastInboundAt")),
            };
            match self
                .transaction(scope, message, &conversation_id, &message_id, contact.is_some(), seen)
                .await
            {
                Ok(()) => {
                    return Ok(Applied {
                        message_id,
                        conversation_id,
                        new_message: true,
                        new_conversation,
                    });
                }
                Err(TxError::Conflict) => continue,
                Err(TxError::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn transaction(
        &self,
        scope: &TenantScope,
        message: &InboundMessage,
        conversation_id: &str,
        message_id: &str,
        known_contact: bool,
        seen_last_inbound: Option<i64>,
    ) -> Result<(), TxError> {
        let tenant = scope.tenant_id();
        let new_contact = !known_contact;
        let pk = scope.pk();
        let ts = if message.timestamp > 0 { message.timestamp } else { now_secs() };
        let preview = message.preview.clone().unwrap_or_else(|| format!("[{}]", message.kind));
        // An update, not a put: it completes an item that a status may have started, and
        // only a stored message id makes the wamid taken.
        let wamid = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(wamid_key(scope, &message.wamid)))
            .update_expression(
                "SET direction = :inbound, messageId = :message, conversationId = :conversation, \
                 openedConversation = :opened",
            )
            .condition_expression("attribute_not_exists(messageId)")
            .expression_attribute_values(":inbound", s("inbound"))
            .expression_attribute_values(":message", s(message_id))
            .expression_attribute_values(":conversation", s(conversation_id))
            .expression_attribute_values(":opened", AttributeValue::Bool(new_contact));

        let mut item = message_key(scope, message_id);
        for (k, v) in [
            ("messageId", s(message_id)),
            ("conversationId", s(conversation_id)),
            ("direction", s("inbound")),
            ("from", s(format!("+{}", message.from))),
            ("kind", s(&message.kind)),
            ("wamid", s(&message.wamid)),
            ("timestamp", n(ts)),
            ("preview", s(&preview)),
            ("status", s("received")),
            ("content", s(message.raw.to_string())),
            ("gsi2pk", s(format!("CONV#{tenant}#{conversation_id}"))),
            ("gsi2sk", s(format!("{}#{message_id}", sortable(ts)))),
        ] {
            item.insert(k.into(), v);
        }

        // NOTE: messages of one contact may be applied out of order and concurrently. The
        // conversation's last inbound time only grows, and is written on the condition that
        // it is still what was read; a concurrent writer makes this transaction retry. A new
        // contact's item is made here (once: a racing first message retries and finds it);
        // a known contact's is not written at all.
        let newest = seen_last_inbound.map_or(ts, |seen| seen.max(ts));
        let is_latest = seen_last_inbound.is_none_or(|seen| ts >= seen);
        let contact = if new_contact {
            let mut c = key(&pk, format!("CONTACT#{}", message.from));
            c.insert("conversationId".into(), s(conversation_id));
            Some(self.table.put_in(c, Some("attribute_not_exists(pk)"))?)
        } else {
            None
        };

        let mut sets = vec![
            "conversationId = :id",
            "contactWaId = :wa",
            "#status = :open",
            "lastMessageAt = :newest",
            "lastInboundAt = :newest",
            "createdAt = if_not_exists(createdAt, :ts)",
            "gsi1pk = :list",
            "gsi1sk = :order",
        ];
        let mut conversation = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(key(&pk, format!("CONV#{conversation_id}"))))
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":id", s(conversation_id))
            .expression_attribute_values(":wa", s(format!("+{}", message.from)))
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":ts", n(ts))
            .expression_attribute_values(":newest", n(newest))
            .expression_attribute_values(":list", s(conversation_list(scope, conversation_id)))
            .expression_attribute_values(
                ":order",
                s(format!("{}#{conversation_id}", sortable(newest))),
            );
        if is_latest {
            sets.push("lastMessagePreview = :preview");
            conversation = conversation.expression_attribute_values(":preview", s(&preview));
        }
        if let Some(name) = &message.profile_name {
            sets.push("contactName = :name");
            conversation = conversation.expression_attribute_values(":name", s(name));
        }
        let conversation = conversation.update_expression(format!("SET {}", sets.join(", ")));
        let conversation = match seen_last_inbound {
            Some(seen) => conversation
                .condition_expression("lastInboundAt = :seen")
                .expression_attribute_values(":seen", n(seen)),
            None => conversation.condition_expression("attribute_not_exists(lastInboundAt)"),
        };

        let usage = Update::builder()
            .table_name(self.table.name())
            .set_key(Some(usage_key(scope, ts, &message.wamid)))
            .update_expression("ADD inbound :one, conversationsOpened :opened")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":opened", n(i64::from(new_contact)));

        let mut items = vec![
            self.table.update_in(wamid)?,
            self.table.put_in(item, None)?,
            self.table.update_in(conversation)?,
            self.table.update_in(usage)?,
        ];
        items.extend(contact);
        match self.table.transact(items).await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => {
                    Err(TxError::Conflict)
                }
                _ => Err(TxError::Store(dynamo_err(e))),
            },
        }
    }

    /// Keeps an event this code does not act on (quality and account updates, errors,
    /// unknown fields), raw, under the event it came in.
    pub async fn put_channel_event(
        &self,
        scope: &TenantScope,
        event_id: &str,
        index: usize,
        field: &str,
        raw: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let mut item = key(scope.pk(), format!("EVENT#{event_id}#{index:04}"));
        item.insert("field".into(), s(field));
        item.insert("raw".into(), s(raw.to_string()));
        item.insert("receivedAt".into(), n(now_secs()));
        self.table.put(item).await?;
        Ok(())
    }
}
