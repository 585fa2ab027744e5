//! Outbound messages in the `messages` table: accepted once per `clientMessageId`, then
//! claimed, sent and recorded by the message sender exactly once.
//!
//! | item | sk | notes |
//! |---|---|---|
//! | client message id | `CLIENT#<clientMessageId>` | the message it created and a digest of the request; expires after [`CLIENT_MESSAGE_TTL_SECS`] |
//! | message | `MSG#<id>` | `status` queued → sent or failed; `lease` (with the `claimToken` that took it) while a sender is calling Meta; `wamid` once Meta took it |
//!
//! A message is sent only by the sender that wins the claim (a conditional write on a
//! queued message with no lease). The lease is cleared when Meta refused the request and
//! it may be retried; a lease that expires uncleared means the sender stopped while Meta
//! had the request, and the message is then failed rather than possibly sent twice.

// NOTE: over 400 lines: one aggregate's whole life (accept, claim, send, fail), which the
// sender's exactly-once guarantee depends on reading as one.
use super::{TxError, client_key, conversation_list, message_key, sortable, usage_key, wamid_key};
use crate::resources::TTL_ATTRIBUTE;
use crate::store::attrs::{Item, get_s, key, n, now_secs, opt_n, opt_s, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{ReturnValue, ReturnValuesOnConditionCheckFailure};
use domain::meta::DeliveryStatus;

/// How long a `clientMessageId` names its message: a repeat within it is the same
/// message, a later one a new message. Far longer than any client retries for.
pub const CLIENT_MESSAGE_TTL_SECS: i64 = 7 * 86_400;

/// What `POST /api/messages` stores.
#[derive(Debug, Clone)]
pub struct NewOutbound {
    pub message_id: String,
    pub client_message_id: String,
    /// Digest of the request: an identical repeat is the same message, another is a conflict.
    pub request_hash: String,
    /// E.164.
    pub to: String,
    /// `to` without its `+`: the contact's key, as in inbound messages.
    pub wa_id: String,
    pub kind: String,
    /// The Cloud API request body, sent as it is.
    pub graph_request: serde_json::Value,
    pub preview: String,
    /// `high` or `standard`.
    pub queue: String,
    pub created_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    Created,
    /// The client message id was used before: by this very request, or by another.
    Existing {
        message_id: String,
        same_request: bool,
    },
}

/// What the sender needs of a message.
#[derive(Debug, Clone)]
pub struct Outbound {
    pub message_id: String,
    pub conversation_id: String,
    pub status: String,
    pub wamid: Option<String>,
    pub graph_request: serde_json::Value,
    pub attempts: i64,
    pub enqueued: bool,
    pub queue: String,
}

impl Outbound {
    /// Sent or failed: nothing left to do.
    pub fn settled(&self) -> bool {
        self.status != "queued"
    }
}

#[derive(Debug, Clone)]
pub enum Claim {
    /// This sender may call Meta now, for this message (`attempts` counts this one).
    Claimed(Outbound),
    /// No outbound message has this id.
    Missing,
    /// Already sent or failed.
    Settled,
    /// Another sender holds the lease: try later.
    Busy,
    /// A lease expired without an outcome: Meta may have the message.
    Abandoned,
}

fn outbound_from(item: &Item) -> Result<Outbound, StoreError> {
    Ok(Outbound {
        message_id: get_s(item, "messageId")?.to_owned(),
        conversation_id: get_s(item, "conversationId")?.to_owned(),
        status: opt_s(item, "status").unwrap_or("queued").to_owned(),
        wamid: opt_s(item, "wamid").map(str::to_owned),
        graph_request: opt_s(item, "content")
            .and_then(|c| serde_json::from_str(c).ok())
            .ok_or_else(|| StoreError::Corrupt("outbound message without content".into()))?,
        attempts: opt_n(item, "attempts").unwrap_or_default(),
        enqueued: opt_n(item, "enqueuedAt").is_some(),
        queue: opt_s(item, "queue").unwrap_or("standard").to_owned(),
    })
}

/// Outbound messages.
#[derive(Clone, Copy, Debug)]
pub struct Outbox<'a> {
    pub(crate) table: &'a Table,
}

impl Outbox<'_> {
    /// The contact's conversation and last inbound time (epoch seconds, kept on the
    /// conversation), if known.
    pub async fn contact(
        &self,
        scope: &TenantScope,
        wa_id: &str,
    ) -> Result<Option<(String, Option<i64>)>, StoreError> {
        let Some(contact) = self.table.get(key(scope.pk(), format!("CONTACT#{wa_id}"))).await?
        else {
            return Ok(None);
        };
        let conversation_id = get_s(&contact, "conversationId")?.to_owned();
        let conversation =
            self.table.get(key(scope.pk(), format!("CONV#{conversation_id}"))).await?;
        let last_inbound = conversation.as_ref().and_then(|c| opt_n(c, "lastInboundAt"));
        Ok(Some((conversation_id, last_inbound)))
    }

    /// The message a client message id created, with its request digest.
    pub async fn client_message(
        &self,
        scope: &TenantScope,
        client_message_id: &str,
    ) -> Result<Option<(String, String)>, StoreError> {
        let item = self.table.get(client_key(scope, client_message_id)).await?;
        // DynamoDB removes expired items some time after they expire, not at once.
        let live = item.filter(|i| opt_n(i, TTL_ATTRIBUTE).is_none_or(|at| at > now_secs()));
        live.map(|i| Ok((get_s(&i, "messageId")?.to_owned(), get_s(&i, "requestHash")?.to_owned())))
            .transpose()
    }

    /// Stores a queued outbound message with its client id, in its contact's conversation
    /// (created when the contact is new), in one transaction. Two racing requests with one
    /// client id: exactly one creates the message.
    ///
    /// `contact` is what the caller read of the contact (see [`Self::contact`]); a race
    /// with the contact's first message makes it read again.
    pub async fn accept(
        &self,
        scope: &TenantScope,
        new: &NewOutbound,
        contact: Option<(String, Option<i64>)>,
    ) -> Result<Accepted, StoreError> {
        let mut known = Some(contact);
        for _ in 0..5 {
            let contact = match known.take() {
                Some(contact) => contact,
                None => self.contact(scope, &new.wa_id).await?,
            };
            let (conversation_id, new_contact) = match contact {
                Some((conversation, _)) => (conversation, false),
                None => (format!("conv_{}", uuid::Uuid::new_v4().simple()), true),
            };
            match self.accept_transaction(scope, new, &conversation_id, new_contact).await {
                Ok(()) => return Ok(Accepted::Created),
                Err(TxError::Conflict) => {
                    if let Some((message_id, hash)) =
                        self.client_message(scope, &new.client_message_id).await?
                    {
                        return Ok(Accepted::Existing {
                            same_request: hash == new.request_hash,
                            message_id,
                        });
                    }
                    // The contact was created meanwhile (its first message came in): use
                    // the conversation it now has.
                }
                Err(TxError::Store(e)) => return Err(e),
            }
        }
        Err(StoreError::Conflict)
    }

    async fn accept_transaction(
        &self,
        scope: &TenantScope,
        new: &NewOutbound,
        conversation_id: &str,
        new_contact: bool,
    ) -> Result<(), TxError> {
        let pk = scope.pk();
        let tenant = scope.tenant_id();
        let now_millis = crate::store::pacing::now_us() / 1000;
        let now = now_millis / 1000;
        let mut client = client_key(scope, &new.client_message_id);
        client.insert("messageId".into(), s(&new.message_id));
        client.insert("requestHash".into(), s(&new.request_hash));
        client.insert("createdAt".into(), n(now));
        client.insert(TTL_ATTRIBUTE.into(), n(now + CLIENT_MESSAGE_TTL_SECS));

        let mut message = message_key(scope, &new.message_id);
        for (k, v) in [
            ("messageId", s(&new.message_id)),
            ("conversationId", s(conversation_id)),
            ("direction", s("outbound")),
            ("to", s(&new.to)),
            ("kind", s(&new.kind)),
            ("content", s(new.graph_request.to_string())),
            ("preview", s(&new.preview)),
            ("timestamp", n(now)),
            ("status", s("queued")),
            ("clientMessageId", s(&new.client_message_id)),
            ("queue", s(&new.queue)),
            ("createdBy", s(&new.created_by)),
            ("gsi2pk", s(format!("CONV#{tenant}#{conversation_id}"))),
            // NOTE: inbound messages sort by Meta's whole seconds (`<secs>#<id>`); outbound
            // ones add milliseconds (`<secs>.<ms>#<id>`), which sorts after an inbound
            // message of the same second: a reply shows after what it answers.
            ("gsi2sk", s(format!("{}.{:03}#{}", sortable(now), now_millis % 1000, new.message_id))),
        ] {
            message.insert(k.into(), v);
        }

        let conversation = aws_sdk_dynamodb::types::Update::builder()
            .set_key(Some(key(&pk, format!("CONV#{conversation_id}"))))
            .update_expression(
                "SET conversationId = :id, contactWaId = :to, #status = if_not_exists(#status, :open), \
                 lastMessageAt = :now, lastMessagePreview = :preview, createdAt = if_not_exists(createdAt, :now), \
                 gsi1pk = :list, gsi1sk = :order",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":id", s(conversation_id))
            .expression_attribute_values(":to", s(&new.to))
            .expression_attribute_values(":open", s("open"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":preview", s(&new.preview))
            .expression_attribute_values(":list", s(conversation_list(scope, conversation_id)))
            .expression_attribute_values(":order", s(format!("{}#{conversation_id}", sortable(now))));

        let mut items = vec![
            // New, or expired but not yet removed by DynamoDB.
            self.table.put_in_if(
                client,
                &format!("attribute_not_exists(pk) OR {TTL_ATTRIBUTE} <= :now"),
                (":now", n(now)),
            )?,
            self.table.put_in(message, None)?,
            self.table.update_in(conversation)?,
        ];
        if new_contact {
            let mut contact = key(&pk, format!("CONTACT#{}", new.wa_id));
            contact.insert("conversationId".into(), s(conversation_id));
            items.push(self.table.put_in(contact, Some("attribute_not_exists(pk)"))?);
            items.push(
                self.table.update_in(
                    aws_sdk_dynamodb::types::Update::builder()
                        .set_key(Some(usage_key(scope, now, &new.message_id)))
                        .update_expression("ADD conversationsOpened :one")
                        .expression_attribute_values(":one", n(1)),
                )?,
            );
        }
        match self.table.transact(items).await {
            Ok(_) => Ok(()),
            Err(e) => match failed_conditions(&e) {
                Some(_) => Err(TxError::Conflict),
                None => Err(TxError::Store(dynamo_err(e))),
            },
        }
    }

    /// Notes that the message is on its queue (a repeat of the request queues it again
    /// when this is missing: the first attempt stored it but could not queue it).
    pub async fn mark_enqueued(
        &self,
        scope: &TenantScope,
        message_id: &str,
    ) -> Result<(), StoreError> {
        self.table
            .update(message_key(scope, message_id))
            .update_expression("SET enqueuedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    pub async fn get(
        &self,
        scope: &TenantScope,
        message_id: &str,
    ) -> Result<Option<Outbound>, StoreError> {
        let item = self.table.get(message_key(scope, message_id)).await?;
        match item {
            Some(i) if opt_s(&i, "direction") == Some("outbound") => Ok(Some(outbound_from(&i)?)),
            _ => Ok(None),
        }
    }

    /// Takes the right to call Meta for a queued message, for `lease_secs`, and reads the
    /// message with the same write (one request per send, not a read and a write).
    pub async fn claim(
        &self,
        scope: &TenantScope,
        message_id: &str,
        lease_secs: i64,
    ) -> Result<Claim, StoreError> {
        let now = now_secs();
        let item_key = message_key(scope, message_id);
        // NOTE: the SDK retries a request whose answer was lost. Without the token, the
        // retry of a claim that did succeed would find the lease held and report Busy; the
        // message would then wait out the lease and be failed as abandoned, unsent.
        let token = uuid::Uuid::new_v4().simple().to_string();
        let claimed = self
            .table
            .update(item_key.clone())
            .update_expression("SET lease = :until, claimToken = :token ADD attempts :one")
            .condition_expression(
                "direction = :outbound AND #status = :queued \
                 AND (attribute_not_exists(lease) OR lease = :free OR claimToken = :token)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":token", s(&token))
            .expression_attribute_values(":until", n(now + lease_secs))
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":outbound", s("outbound"))
            .expression_attribute_values(":queued", s("queued"))
            .expression_attribute_values(":free", n(0))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let current = match claimed {
            Ok(out) => {
                let item = out.attributes.unwrap_or_default();
                return Ok(Claim::Claimed(outbound_from(&item)?));
            }
            Err(e) if condition_failed(&e) => {
                let returned = match e.as_service_error() {
                    Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                        failed.item.clone()
                    }
                    _ => None,
                };
                // An emulator may not return the item; DynamoDB does whenever it exists.
                match returned {
                    Some(item) => Some(item),
                    None => self.table.get(item_key).await?,
                }
            }
            Err(e) => return Err(dynamo_err(e)),
        };
        let Some(item) = current.filter(|i| opt_s(i, "direction") == Some("outbound")) else {
            return Ok(Claim::Missing);
        };
        let lease = opt_n(&item, "lease").unwrap_or_default();
        Ok(if opt_s(&item, "status") != Some("queued") {
            Claim::Settled
        } else if lease == 0 || lease > now {
            // Held by another sender, or released by one just now.
            Claim::Busy
        } else {
            Claim::Abandoned
        })
    }

    /// Gives the claim back after Meta refused the request in a way worth retrying.
    pub async fn release(
        &self,
        scope: &TenantScope,
        message_id: &str,
        last_error: &serde_json::Value,
    ) -> Result<(), StoreError> {
        self.table
            .update(message_key(scope, message_id))
            .update_expression("SET lease = :free, lastError = :error")
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":free", n(0))
            .expression_attribute_values(":error", s(last_error.to_string()))
            .expression_attribute_values(":queued", s("queued"))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    /// Meta took the message: its wamid now carries the delivery state (a status webhook
    /// may have created that item already; what it recorded stays). The day's usage is
    /// counted by the caller, once per batch ([`MessageStore::count_sent`]).
    ///
    /// NOTE: single-item writes, not a transaction: the message first (the record that
    /// stops a second send), then its wamid item. Should the second write be lost, the
    /// message still shows `sent`, and Meta's status webhooks create the wamid item. A
    /// shared counter inside a transaction would make a tenant's concurrent sends
    /// conflict; and moto copies a whole table per transaction.
    pub async fn record_sent(
        &self,
        scope: &TenantScope,
        message: &Outbound,
        wamid: &str,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let recorded = self
            .table
            .update(message_key(scope, &message.message_id))
            .update_expression(
                "SET wamid = :wamid, #status = :sent, sentAt = :now, at_sent = :now, lease = :free",
            )
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":wamid", s(wamid))
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":free", n(0))
            .expression_attribute_values(":queued", s("queued"))
            .send()
            .await;
        match recorded {
            Ok(_) => {}
            // Recorded already (a retry of this write).
            Err(e) if condition_failed(&e) => return Ok(()),
            Err(e) => return Err(dynamo_err(e)),
        }
        self.table
            .update(wamid_key(scope, wamid))
            .update_expression(
                "SET messageId = :id, conversationId = :conv, direction = :out, \
                 at_sent = if_not_exists(at_sent, :now), #status = if_not_exists(#status, :sent), \
                 statusRank = if_not_exists(statusRank, :rank)",
            )
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":id", s(&message.message_id))
            .expression_attribute_values(":conv", s(&message.conversation_id))
            .expression_attribute_values(":out", s("outbound"))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":sent", s("sent"))
            .expression_attribute_values(":rank", n(DeliveryStatus::Sent.rank()))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    /// Adds `sent` outbound messages to today's usage: one write for a batch's sends.
    pub async fn count_sent(
        &self,
        scope: &TenantScope,
        sent: usize,
        spread_by: &str,
    ) -> Result<(), StoreError> {
        self.count(scope, now_secs(), spread_by, "outbound", sent as i64).await
    }

    /// Adds `by` to a counter of the day's usage (a shard of it).
    async fn count(
        &self,
        scope: &TenantScope,
        at: i64,
        spread_by: &str,
        counter: &str,
        by: i64,
    ) -> Result<(), StoreError> {
        self.table
            .update(usage_key(scope, at, spread_by))
            .update_expression("ADD #counter :by")
            .expression_attribute_names("#counter", counter)
            .expression_attribute_values(":by", n(by))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    /// The message will not be sent: `code` and `title` say why. Returns whether this
    /// call failed it (false: it was sent or failed already).
    pub async fn record_failed(
        &self,
        scope: &TenantScope,
        message_id: &str,
        code: &serde_json::Value,
        title: &str,
    ) -> Result<bool, StoreError> {
        let now = now_secs();
        let error = serde_json::json!({ "code": code, "title": title }).to_string();
        let failed = self
            .table
            .update(message_key(scope, message_id))
            .update_expression(
                "SET #status = :failed, #error = :error, at_failed = :now, lease = :free",
            )
            .condition_expression("#status = :queued")
            .expression_attribute_names("#status", "status")
            .expression_attribute_names("#error", "error")
            .expression_attribute_values(":failed", s("failed"))
            .expression_attribute_values(":error", s(error))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":free", n(0))
            .expression_attribute_values(":queued", s("queued"))
            .send()
            .await;
        match failed {
            Ok(_) => {
                // The message is failed: a lost count must not turn that into an error
                // (a redelivery would find it settled and skip what follows).
                if let Err(e) = self.count(scope, now, message_id, "failed", 1).await {
                    tracing::warn!(error = %e, "failure not counted in the day's usage");
                }
                Ok(true)
            }
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }
}
