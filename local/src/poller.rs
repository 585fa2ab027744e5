//! Lambda's SQS event-source mapping, locally: receive a batch, invoke the processor with
//! the SQS event Lambda would build, delete the records that succeeded.
//!
//! As in AWS, a record the processor reports in `batchItemFailures` is left alone: it
//! becomes visible again when its visibility timeout ends (the processor may shorten that
//! with ChangeMessageVisibility to retry sooner), and SQS moves it to the dead-letter queue
//! once it has been received `maxReceiveCount` times. A processor error fails the whole
//! batch, as a crashed invocation does. Up to the event source's `MaximumConcurrency`
//! batches are processed at once, as Lambda does: what concurrent batches do to a backlog
//! (contention for pacing, receive counts) shows locally as it would in AWS.

use adapters::aws::LOCAL_REGION;
use adapters::resources::EventSourceSpec;
use adapters::telemetry::error_chain;
use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, Message, MessageSystemAttributeName};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tracing::{debug, error, warn};

/// Lambda's default (and our template's) batch size for SQS sources.
pub const BATCH_SIZE: i32 = 10;
/// Long-poll wait: short, so that shutdown is prompt.
const WAIT_SECS: i32 = 1;

pub type ProcessorFuture<'a> =
    Pin<Box<dyn Future<Output = Result<SqsBatchResponse, lambda_runtime::Error>> + Send + 'a>>;

/// A queue processor as Lambda runs it: one SQS event in, partial batch failures out.
pub trait Processor: Send + Sync + 'static {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_>;
}

pub struct Poller {
    name: String,
    sqs: Client,
    queue_url: String,
    queue_arn: String,
    processor: Arc<dyn Processor>,
    batch_size: i32,
    max_concurrency: usize,
}

impl Poller {
    pub fn new(
        name: impl Into<String>,
        sqs: Client,
        queue_url: impl Into<String>,
        queue_arn: impl Into<String>,
        processor: Arc<dyn Processor>,
    ) -> Self {
        Self {
            name: name.into(),
            sqs,
            queue_url: queue_url.into(),
            queue_arn: queue_arn.into(),
            processor,
            batch_size: BATCH_SIZE,
            max_concurrency: 1,
        }
    }

    /// Polls as the template's event source does: its batch size, and up to its
    /// `MaximumConcurrency` batches at once.
    pub fn with_source(mut self, source: &EventSourceSpec) -> Self {
        self.batch_size = i32::try_from(source.batch_size).unwrap_or(BATCH_SIZE);
        self.max_concurrency = usize::try_from(source.max_concurrency).unwrap_or(1).max(1);
        self
    }

    /// Polls until `stop` turns true; the batches in hand are finished first.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let slots = Arc::new(Semaphore::new(this.max_concurrency));
        let mut backoff = Duration::from_millis(200);
        while !*stop.borrow() {
            // A batch is received only when an invocation is free to take it, so that
            // nothing waits out its visibility timeout in the poller's hands.
            let slot = tokio::select! {
                _ = stop.changed() => break,
                s = slots.clone().acquire_owned() => match s { Ok(s) => s, Err(_) => break },
            };
            let received = tokio::select! {
                _ = stop.changed() => break,
                r = this.receive() => r,
            };
            match received {
                Ok(messages) if messages.is_empty() => {}
                Ok(messages) => {
                    backoff = Duration::from_millis(200);
                    let this = this.clone();
                    tokio::spawn(async move {
                        this.invoke(messages).await;
                        drop(slot);
                    });
                }
                Err(e) => {
                    warn!(poller = %this.name, error = %e, "receive failed; retrying");
                    tokio::select! {
                        _ = stop.changed() => break,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
        // Every invocation in flight holds a slot: taking them all waits for the last.
        let all = u32::try_from(this.max_concurrency).unwrap_or(u32::MAX);
        let _ = slots.acquire_many(all).await;
    }

    async fn receive(&self) -> Result<Vec<Message>, String> {
        let out = self
            .sqs
            .receive_message()
            .queue_url(&self.queue_url)
            .max_number_of_messages(self.batch_size)
            .wait_time_seconds(WAIT_SECS)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| error_chain(&e))?;
        Ok(out.messages.unwrap_or_default())
    }

    /// One invocation. Returns the ids of the records that were deleted.
    pub async fn invoke(&self, messages: Vec<Message>) -> Vec<String> {
        let event = self.event(&messages);
        let failed: HashSet<String> = match self.processor.process(event).await {
            Ok(response) => {
                response.batch_item_failures.into_iter().map(|f| f.item_identifier).collect()
            }
            Err(e) => {
                error!(poller = %self.name, error = %e, "processor failed; the whole batch will be retried");
                return Vec::new();
            }
        };
        let done: Vec<&Message> = messages
            .iter()
            .filter(|m| m.message_id().is_some_and(|id| !failed.contains(id)))
            .collect();
        debug!(poller = %self.name, ok = done.len(), failed = failed.len(), "batch processed");
        if done.is_empty() {
            return Vec::new();
        }
        let entries: Vec<DeleteMessageBatchRequestEntry> = done
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect();
        if let Err(e) = self
            .sqs
            .delete_message_batch()
            .queue_url(&self.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            // The records will be delivered again: processors are idempotent for this.
            warn!(poller = %self.name, error = %error_chain(&e), "delete failed");
            return Vec::new();
        }
        done.iter().filter_map(|m| m.message_id().map(str::to_owned)).collect()
    }

    /// The event Lambda builds from received messages.
    fn event(&self, messages: &[Message]) -> SqsEvent {
        let mut event = SqsEvent::default();
        event.records = messages
            .iter()
            .map(|m| {
                let mut record = SqsMessage::default();
                record.message_id = m.message_id().map(str::to_owned);
                record.receipt_handle = m.receipt_handle().map(str::to_owned);
                record.body = m.body().map(str::to_owned);
                record.md5_of_body = m.md5_of_body().map(str::to_owned);
                record.md5_of_message_attributes = m.md5_of_message_attributes().map(str::to_owned);
                record.attributes = m
                    .attributes()
                    .map(|a| a.iter().map(|(k, v)| (k.as_str().to_owned(), v.clone())).collect())
                    .unwrap_or_default();
                record.message_attributes = m
                    .message_attributes()
                    .map(|attrs| {
                        attrs
                            .iter()
                            .map(|(k, v)| {
                                let mut attr = SqsMessageAttribute::default();
                                attr.string_value = v.string_value().map(str::to_owned);
                                attr.binary_value = v.binary_value().map(|b| {
                                    let mut data = Base64Data::default();
                                    data.0 = b.as_ref().to_vec();
                                    data
                                });
                                attr.data_type = Some(v.data_type().to_owned());
                                (k.clone(), attr)
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                record.event_source = Some("aws:sqs".into());
                record.event_source_arn = Some(self.queue_arn.clone());
                record.aws_region = Some(LOCAL_REGION.into());
                record
            })
            .collect();
        event
    }
}
