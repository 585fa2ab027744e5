//! The work queues of the session host: one SQS FIFO queue per pool connection, so that a
//! session's work (connect, send, logout, leave) reaches whichever host holds the
//! connection's lease, through AWS and not through a host's address.
//!
//! - A queue is named after the pool table and the connection
//!   (`<pool table>-<tier>-<nnn>.fifo`) and made on first use by whoever needs it (the API
//!   when it queues work, the host when it takes the lease); `CreateQueue` with the same
//!   attributes returns the existing queue, and the URL is cached per process.
//! - Each message's group is its tenant: one session's work is done in order (a host also
//!   finishes a received batch before it receives the next), different sessions' work is
//!   not held up by each other.
//! - A send is deduplicated on its message id for SQS's five minutes; beyond that the
//!   outbox's claim makes a repeat harmless.
//! - After five receives a message moves to `<pool table>-dlq.fifo`.

use crate::queues::QueueError;
use aws_sdk_sqs::types::QueueAttributeName;
use domain::queues::Tenanted;
use domain::sessions::SessionWork;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a received message stays invisible while a host works on it.
pub const VISIBILITY_TIMEOUT_SECS: i32 = 60;
/// How long a received message stays invisible: short, because a message that a host
/// took just before it died comes back only after it (a host's own batch is done well
/// within it; a longer one is retried and finds its work settled).
pub const RECEIVE_VISIBILITY_SECS: i32 = 30;
/// Receives before a message goes to the dead-letter queue.
pub const MAX_RECEIVES: u32 = 5;

/// A received message: its handle, and its work (or why it is not work).
#[derive(Debug)]
pub struct Received {
    pub receipt: String,
    pub body: String,
    pub work: Result<SessionWork, String>,
    pub receive_count: u32,
}

#[derive(Clone, Debug)]
pub struct SessionQueues {
    sqs: aws_sdk_sqs::Client,
    /// The pool table's name: every queue's name starts with it.
    prefix: String,
    urls: Arc<Mutex<HashMap<String, String>>>,
}

impl SessionQueues {
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self::new(clients.sqs.clone(), resources.pool_table.clone())
    }

    pub fn new(sqs: aws_sdk_sqs::Client, prefix: impl Into<String>) -> Self {
        Self { sqs, prefix: prefix.into(), urls: Arc::default() }
    }

    /// The queue name of a connection.
    pub fn queue_name(&self, connection: &str) -> String {
        format!("{}-{connection}.fifo", self.prefix)
    }

    fn dlq_name(&self) -> String {
        format!("{}-dlq.fifo", self.prefix)
    }

    fn cached(&self, name: &str) -> Option<String> {
        self.urls.lock().ok().and_then(|urls| urls.get(name).cloned())
    }

    async fn create(
        &self,
        name: &str,
        attributes: Vec<(QueueAttributeName, String)>,
    ) -> Result<String, QueueError> {
        if let Some(url) = self.cached(name) {
            return Ok(url);
        }
        let mut request = self
            .sqs
            .create_queue()
            .queue_name(name)
            .attributes(QueueAttributeName::FifoQueue, "true");
        for (attribute, value) in attributes {
            request = request.attributes(attribute, value);
        }
        let out = request.send().await.map_err(|e| QueueError::of(&e))?;
        let url = out.queue_url.ok_or_else(|| QueueError::message("CreateQueue gave no URL"))?;
        if let Ok(mut urls) = self.urls.lock() {
            urls.insert(name.to_owned(), url.clone());
        }
        Ok(url)
    }

    /// The dead-letter queue's URL (made if it is missing). Always made with the same
    /// attributes: SQS refuses to "create" an existing queue with others.
    async fn dlq_url(&self) -> Result<String, QueueError> {
        let retention = crate::resources::DLQ_RETENTION_SECS.to_string();
        self.create(&self.dlq_name(), vec![(QueueAttributeName::MessageRetentionPeriod, retention)])
            .await
    }

    /// The connection's queue URL, made (with its dead-letter queue) if it is missing.
    pub async fn url(&self, connection: &str) -> Result<String, QueueError> {
        let name = self.queue_name(connection);
        if let Some(url) = self.cached(&name) {
            return Ok(url);
        }
        let dlq = self.dlq_url().await?;
        let arn = self
            .sqs
            .get_queue_attributes()
            .queue_url(&dlq)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?
            .attributes
            .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
            .ok_or_else(|| QueueError::message("the session dead-letter queue has no ARN"))?;
        let redrive = serde_json::json!({
            "deadLetterTargetArn": arn,
            "maxReceiveCount": MAX_RECEIVES,
        });
        self.create(
            &name,
            vec![
                (QueueAttributeName::VisibilityTimeout, VISIBILITY_TIMEOUT_SECS.to_string()),
                (QueueAttributeName::RedrivePolicy, redrive.to_string()),
                (
                    QueueAttributeName::MessageRetentionPeriod,
                    crate::resources::QUEUE_RETENTION_SECS.to_string(),
                ),
            ],
        )
        .await
    }

    /// Queues work for the host that holds `connection`.
    pub async fn send(&self, connection: &str, work: &SessionWork) -> Result<(), QueueError> {
        let url = self.url(connection).await?;
        let body = serde_json::to_string(work)
            .map_err(|e| QueueError::message(format!("session work not serialisable: {e}")))?;
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(body)
            .message_group_id(work.tenant_id().as_str())
            .message_deduplication_id(work.dedup_id())
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?;
        Ok(())
    }

    /// Up to ten messages of the connection's queue, waiting up to `wait` for the first.
    pub async fn receive(
        &self,
        connection: &str,
        wait: Duration,
    ) -> Result<Vec<Received>, QueueError> {
        let url = self.url(connection).await?;
        let out = self
            .sqs
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(i32::try_from(wait.as_secs()).unwrap_or(20).min(20))
            .visibility_timeout(RECEIVE_VISIBILITY_SECS)
            .message_system_attribute_names(
                aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount,
            )
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?;
        Ok(out
            .messages
            .unwrap_or_default()
            .into_iter()
            .filter_map(|m| {
                let receipt = m.receipt_handle.clone()?;
                let receive_count = m
                    .attributes
                    .as_ref()
                    .and_then(|a| {
                        a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
                    })
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(1);
                let body = m.body().unwrap_or_default().to_owned();
                let work = serde_json::from_str::<SessionWork>(&body).map_err(|e| e.to_string());
                Some(Received { receipt, body, work, receive_count })
            })
            .collect())
    }

    /// A body that is not session work goes to the dead-letter queue at once, with why.
    pub async fn reject(&self, body: &str, reason: &str) -> Result<(), QueueError> {
        let dlq = self.dlq_url().await?;
        self.sqs
            .send_message()
            .queue_url(dlq)
            .message_body(body)
            .message_group_id("poison")
            .message_deduplication_id(uuid::Uuid::new_v4().simple().to_string())
            .message_attributes(
                crate::queues::REASON_ATTRIBUTE,
                aws_sdk_sqs::types::MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value(reason.chars().take(256).collect::<String>())
                    .build()
                    .map_err(|e| QueueError::of(&e))?,
            )
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?;
        Ok(())
    }

    /// The message is done.
    pub async fn delete(&self, connection: &str, receipt: &str) -> Result<(), QueueError> {
        let url = self.url(connection).await?;
        self.sqs
            .delete_message()
            .queue_url(url)
            .receipt_handle(receipt)
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?;
        Ok(())
    }

    /// The message comes back after `after` (0: at once, for the next holder of the lease).
    pub async fn retry_after(
        &self,
        connection: &str,
        receipt: &str,
        after: Duration,
    ) -> Result<(), QueueError> {
        let url = self.url(connection).await?;
        self.sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(receipt)
            .visibility_timeout(i32::try_from(after.as_secs()).unwrap_or(0))
            .send()
            .await
            .map_err(|e| QueueError::of(&e))?;
        Ok(())
    }

    /// Removes every session queue of this deployment (tests and local clean-up).
    pub async fn remove_all(&self) {
        let Ok(out) = self.sqs.list_queues().queue_name_prefix(&self.prefix).send().await else {
            return;
        };
        for url in out.queue_urls() {
            let _ = self.sqs.delete_queue().queue_url(url).send().await;
        }
    }
}
