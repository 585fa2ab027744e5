//! Queueing partner events (the envelope and the stable ids are `domain::events`).

use crate::queues::{Queue, QueueError};
pub use domain::events::*;

/// Where events are queued.
#[derive(Clone, Debug)]
pub struct PartnerEvents {
    queue: Queue<PartnerEvent>,
}

impl PartnerEvents {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: String) -> Self {
        Self { queue: Queue::new(sqs, queue_url) }
    }

    /// Queues events. They carry stable ids, so sending some twice after a retry is
    /// harmless downstream.
    pub async fn emit(&self, events: &[PartnerEvent]) -> Result<(), QueueError> {
        self.queue.send_batch(events).await
    }
}
