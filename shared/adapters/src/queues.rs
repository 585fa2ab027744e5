//! The SQS adapter that carries each queue's typed message.
//!
//! A queue's body is defined once, as a type in `domain::queues`, and both its producer
//! and its consumer use that type: [`Queue::send`] writes it, [`Inbox::parse`] reads it back
//! out of a Lambda SQS record. Adding a queue is one type there and one
//! [`crate::resources`] entry here.
//!
//! [`Inbox`] is what a queue processor knows about the queues it consumes: where to put a
//! record back with a delay (deferrals that must not use up SQS's receive budget), which
//! dead-letter queue takes a poison record at once, and whether a record is on its last
//! receive before SQS moves it to the dead-letter queue by itself.

use crate::config::Resources;
use crate::resources::QueueSpec;
use crate::telemetry::error_chain;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsMessage};
use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};
pub use domain::queues::{
    DeliveryAttempt, Erasure, PartnerEvent, QueueMessage, SendJob, SettleParked, WebhookPointer,
    WebhookWork,
};
use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::Duration;

/// SQS did not take a message. Always worth retrying: SQS is a dependency that is down or
/// throttling, never a fault in what we sent (our bodies are well under its limits).
#[derive(Debug, thiserror::Error)]
#[error("sqs: {0}")]
pub struct QueueError(String);

impl QueueError {
    fn from_sdk(err: &(dyn std::error::Error + 'static)) -> Self {
        Self(error_chain(err))
    }

    pub(crate) fn of(err: &(dyn std::error::Error + 'static)) -> Self {
        Self::from_sdk(err)
    }

    pub(crate) fn message(what: impl Into<String>) -> Self {
        Self(what.into())
    }
}

/// The producer side of one queue, typed by its message.
#[derive(Debug)]
pub struct Queue<M> {
    sqs: aws_sdk_sqs::Client,
    url: String,
    message: PhantomData<fn(M)>,
}

impl<M> Clone for Queue<M> {
    fn clone(&self) -> Self {
        Self { sqs: self.sqs.clone(), url: self.url.clone(), message: PhantomData }
    }
}

impl<M: QueueMessage> Queue<M> {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        Self { sqs, url: url.into(), message: PhantomData }
    }

    pub async fn send(&self, message: &M) -> Result<(), QueueError> {
        let body = body(message)?;
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .message_group_id(message.tenant_id().as_str())
            .send()
            .await
            .map_err(|e| QueueError::from_sdk(&e))?;
        Ok(())
    }

    /// Sends a message with a `reason` attribute: how a producer puts what it knows to be
    /// unprocessable straight into a dead-letter queue.
    pub async fn send_with_reason(&self, message: &M, reason: &str) -> Result<(), QueueError> {
        send_with_reason(&self.sqs, &self.url, body(message)?, reason).await
    }

    /// Every message, ten per request (SQS's batch limit), or an error naming how many SQS
    /// refused.
    pub async fn send_batch(&self, messages: &[M]) -> Result<(), QueueError> {
        let delayed: Vec<(&M, Duration)> = messages.iter().map(|m| (m, Duration::ZERO)).collect();
        self.send_delayed(&delayed).await
    }

    /// Every message after its own delay (up to [`MAX_DELAY`]; longer is cut to it).
    pub async fn send_delayed(&self, messages: &[(&M, Duration)]) -> Result<(), QueueError> {
        let bodies = messages
            .iter()
            .map(|(m, delay)| {
                Ok(Outgoing { body: body(*m)?, group: Some(m.tenant_id().as_str()), delay: *delay })
            })
            .collect::<Result<Vec<_>, QueueError>>()?;
        match send_bodies(&self.sqs, &self.url, &bodies).await?.len() {
            0 => Ok(()),
            refused => Err(QueueError(format!("{refused} {}s not queued", M::KIND))),
        }
    }
}

/// One body with a `reason` attribute (what a dead-letter queue is given).
async fn send_with_reason(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    body: String,
    reason: &str,
) -> Result<(), QueueError> {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .message_attributes(REASON_ATTRIBUTE, reason_attribute(reason)?)
        .send()
        .await
        .map_err(|e| QueueError::from_sdk(&e))?;
    Ok(())
}

/// One message to send: its body, its group (the tenant: see [`QueueMessage`]) and how long
/// SQS holds it before it is first delivered.
struct Outgoing<'a> {
    body: String,
    group: Option<&'a str>,
    delay: Duration,
}

/// Messages ten per request, each after its own delay (SQS allows up to 15 minutes); the
/// indexes of those SQS refused.
async fn send_bodies(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    bodies: &[Outgoing<'_>],
) -> Result<Vec<usize>, QueueError> {
    let mut refused = Vec::new();
    for (chunk_index, chunk) in bodies.chunks(10).enumerate() {
        let entries = chunk
            .iter()
            .enumerate()
            .map(|(i, outgoing)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(&outgoing.body)
                    .set_message_group_id(outgoing.group.map(str::to_owned))
                    .delay_seconds(delay_secs(outgoing.delay))
                    .build()
                    .map_err(|e| QueueError::from_sdk(&e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = sqs
            .send_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| QueueError::from_sdk(&e))?;
        refused.extend(
            out.failed()
                .iter()
                .filter_map(|f| f.id().parse::<usize>().ok())
                .map(|i| chunk_index * 10 + i),
        );
    }
    Ok(refused)
}

fn body<M: QueueMessage>(message: &M) -> Result<String, QueueError> {
    // Our own types always serialise; an error here would be a bug worth surfacing.
    serde_json::to_string(message)
        .map_err(|e| QueueError(format!("{} not serialisable: {e}", M::KIND)))
}

/// The longest SQS lets a message wait before it is first delivered.
pub const MAX_DELAY: Duration = Duration::from_secs(900);

fn delay_secs(delay: Duration) -> i32 {
    // Rounded up: a deferral of 300 ms must not come back at once.
    delay.as_secs_f64().ceil().clamp(0.0, MAX_DELAY.as_secs_f64()) as i32
}

/// A record that can never be processed: it goes to the dead-letter queue at once, with
/// this reason, instead of being retried until SQS gives up on it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("poison record: {0}")]
pub struct Poison(pub String);

/// One queue a processor consumes, as its records name it.
#[derive(Debug, Clone)]
struct Source {
    spec: QueueSpec,
    url: String,
    dlq_url: String,
}

/// What a queue processor knows about the queues it consumes.
#[derive(Debug, Clone)]
pub struct Inbox {
    sqs: aws_sdk_sqs::Client,
    /// By queue name, the last part of a record's `eventSourceArn`.
    sources: HashMap<String, Source>,
}

/// The attribute a dead-lettered record carries its reason in.
pub const REASON_ATTRIBUTE: &str = "reason";

fn reason_attribute(reason: &str) -> Result<MessageAttributeValue, QueueError> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(reason.chars().take(1000).collect::<String>())
        .build()
        .map_err(|e| QueueError::from_sdk(&e))
}

impl Inbox {
    pub fn new(sqs: aws_sdk_sqs::Client, resources: &Resources, queues: &[QueueSpec]) -> Self {
        let sources = queues
            .iter()
            .filter_map(|spec| {
                let url = resources.queue_url(spec).to_owned();
                let name = url.rsplit('/').next()?.to_owned();
                let dlq_url = resources.dlq_url(spec).to_owned();
                Some((name, Source { spec: *spec, url, dlq_url }))
            })
            .collect();
        Self { sqs, sources }
    }

    /// The queue a record came from (one this processor consumes).
    pub fn queue_of(&self, record: &SqsMessage) -> Option<QueueSpec> {
        self.source(record).map(|s| s.spec)
    }

    fn source(&self, record: &SqsMessage) -> Option<&Source> {
        let name = record.event_source_arn.as_deref()?.rsplit(':').next()?;
        self.sources.get(name)
    }

    /// The record's body as the queue's message type; anything else is poison.
    pub fn parse<M: QueueMessage>(record: &SqsMessage) -> Result<M, Poison> {
        let body = record.body.as_deref().unwrap_or_default();
        serde_json::from_str(body).map_err(|e| Poison(format!("not a {}: {e}", M::KIND)))
    }

    /// How many times SQS has handed this record out, this time included.
    pub fn receive_count(record: &SqsMessage) -> u32 {
        record.attributes.get("ApproximateReceiveCount").and_then(|n| n.parse().ok()).unwrap_or(1)
    }

    /// Whether a failure now makes SQS move the record to its dead-letter queue.
    pub fn last_receive(&self, record: &SqsMessage) -> bool {
        self.source(record).is_some_and(|s| Self::receive_count(record) >= s.spec.max_receive_count)
    }

    /// Puts poison straight into the source queue's dead-letter queue, with its reason.
    /// The caller then reports the record as done, so that SQS deletes the original.
    pub async fn dead_letter(
        &self,
        record: &SqsMessage,
        reason: &Poison,
    ) -> Result<(), QueueError> {
        let source = self
            .source(record)
            .ok_or_else(|| QueueError("record from a queue this processor does not know".into()))?;
        let body = record.body.clone().unwrap_or_default();
        send_with_reason(&self.sqs, &source.dlq_url, body, &reason.0).await
    }

    /// Dead-letters a poison record and logs why. `false` when SQS did not take it: the
    /// caller then reports the record as failed, so that it is redelivered, not lost.
    pub async fn reject(&self, record: &SqsMessage, reason: &Poison) -> bool {
        let id = record.message_id.as_deref().unwrap_or_default();
        match self.dead_letter(record, reason).await {
            Ok(()) => {
                tracing::error!(record_id = id, %reason, "poison record moved to the dead-letter queue");
                true
            }
            Err(e) => {
                tracing::warn!(record_id = id, %reason, error = %e, "poison record not dead-lettered; SQS redelivers it");
                false
            }
        }
    }

    /// A record whose processing failed: poison goes to the dead-letter queue at once, any
    /// other failure is logged for SQS to hand the record out again. Returns whether the
    /// record must be reported failed (not poison, or poison SQS did not take).
    pub async fn failed(
        &self,
        record: &SqsMessage,
        poison: Option<Poison>,
        error: &(dyn std::error::Error + Send + Sync + 'static),
    ) -> bool {
        match poison {
            Some(reason) => !self.reject(record, &reason).await,
            None => {
                let id = record.message_id.as_deref().unwrap_or_default();
                let error = crate::telemetry::error_chain(error);
                tracing::error!(record_id = id, error, "record failed; it will be retried");
                true
            }
        }
    }

    /// Sends records back to the queues they came from, each after its delay, as new
    /// messages: a deferral (pacing, a busy lease, a backoff) then costs no receive of the
    /// record's budget. Returns the records SQS did not take, which the caller must report
    /// as failures so that they are not lost.
    pub async fn requeue<'a>(&self, records: &[(&'a SqsMessage, Duration)]) -> Vec<&'a SqsMessage> {
        let mut by_queue: HashMap<&str, Vec<(&'a SqsMessage, Duration)>> = HashMap::new();
        let mut lost = Vec::new();
        for (record, delay) in records {
            match self.source(record) {
                Some(source) => by_queue.entry(&source.url).or_default().push((record, *delay)),
                None => lost.push(*record),
            }
        }
        for (url, group) in by_queue {
            // Each keeps its group (its tenant): as SQS handed it over, or else as its body
            // names it.
            let tenants: Vec<Option<String>> = group.iter().map(|(r, _)| group_of(r)).collect();
            let bodies: Vec<Outgoing<'_>> = group
                .iter()
                .zip(&tenants)
                .map(|((r, d), tenant)| Outgoing {
                    body: r.body.clone().unwrap_or_default(),
                    group: tenant.as_deref(),
                    delay: *d,
                })
                .collect();
            match send_bodies(&self.sqs, url, &bodies).await {
                Ok(refused) => {
                    lost.extend(refused.into_iter().filter_map(|i| group.get(i).map(|g| g.0)))
                }
                Err(e) => {
                    tracing::warn!(error = %e, records = group.len(), "records not requeued; SQS redelivers them");
                    lost.extend(group.iter().map(|g| g.0));
                }
            }
        }
        lost
    }
}

/// A record's group: the `MessageGroupId` SQS gave it, or the `tenantId` of its body.
fn group_of(record: &SqsMessage) -> Option<String> {
    if let Some(group) = record.attributes.get("MessageGroupId") {
        return Some(group.clone());
    }
    let body: serde_json::Value = serde_json::from_str(record.body.as_deref()?).ok()?;
    body.get("tenantId")?.as_str().map(str::to_owned)
}

/// The partial batch response for the records that failed: SQS redelivers them alone.
pub fn batch_response<'a>(failed: impl IntoIterator<Item = &'a SqsMessage>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in failed {
        let mut failure = BatchItemFailure::default();
        failure.item_identifier = record.message_id.clone().unwrap_or_default();
        response.batch_item_failures.push(failure);
    }
    response
}
