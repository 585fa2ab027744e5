use adapters::aws::bootstrap::queue_arn;
use adapters::resources::{INBOUND_EVENTS_QUEUE, physical_name};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use aws_sdk_sqs::types::{MessageAttributeValue, MessageSystemAttributeName};
use local::poller::{Poller, Processor, ProcessorFuture};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use switchboard_tests::{Emulator, Stack};
use tokio::sync::watch;

/// Fails every record whose body contains "poison" (asking SQS to redeliver it at once, as
/// a processor with a short backoff would), and fails the whole invocation once for a body
/// "crash-once". Records every record it is given.
struct Recorder {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    seen: Mutex<Vec<SqsMessage>>,
    crashed: Mutex<bool>,
}

impl Processor for Recorder {
    fn process(&self, event: SqsEvent) -> ProcessorFuture<'_> {
        Box::pin(async move {
            let mut failures = Vec::new();
            for record in event.records {
                self.seen.lock().expect("lock").push(record.clone());
                let body = record.body.clone().unwrap_or_default();
                let retry_now = || async {
                    self.sqs
                        .change_message_visibility()
                        .queue_url(&self.queue_url)
                        .receipt_handle(record.receipt_handle.clone().unwrap_or_default())
                        .visibility_timeout(0)
                        .send()
                        .await
                        .expect("change visibility");
                };
                if body == "crash-once"
                    && !std::mem::replace(&mut *self.crashed.lock().expect("lock"), true)
                {
                    retry_now().await;
                    return Err("processor crashed".into());
                }
                if body.contains("poison") {
                    retry_now().await;
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = record.message_id.clone().unwrap_or_default();
                    failures.push(failure);
                }
            }
            let mut response = SqsBatchResponse::default();
            response.batch_item_failures = failures;
            Ok(response)
        })
    }
}

fn bodies(seen: &[SqsMessage]) -> Vec<String> {
    let mut b: Vec<String> = seen.iter().filter_map(|m| m.body.clone()).collect();
    b.sort();
    b
}

#[tokio::test]
async fn failed_records_alone_are_redelivered_then_dead_lettered() {
    let stack = Stack::new(Emulator::shared()).await;
    let sqs = stack.clients.sqs.clone();
    let queue_url = stack.resources.inbound_events_queue_url.clone();
    let dlq_url = sqs
        .get_queue_url()
        .queue_name(physical_name(&stack.prefix, &INBOUND_EVENTS_QUEUE.dlq_suffix()))
        .send()
        .await
        .expect("dlq")
        .queue_url()
        .expect("url")
        .to_owned();
    let arn = queue_arn(&stack.clients, &queue_url).await.expect("arn");
    let recorder = Arc::new(Recorder {
        sqs: sqs.clone(),
        queue_url: queue_url.clone(),
        seen: Mutex::new(Vec::new()),
        crashed: Mutex::new(false),
    });

    for body in ["good-1", "poison", "good-2"] {
        sqs.send_message()
            .queue_url(&queue_url)
            .message_body(body)
            .message_attributes(
                "kind",
                MessageAttributeValue::builder()
                    .data_type("String")
                    .string_value("test")
                    .build()
                    .expect("attr"),
            )
            .send()
            .await
            .expect("send");
    }
    let (stop, stopped) = watch::channel(false);
    let poller = Poller::new("inbound", sqs.clone(), &queue_url, &arn, recorder.clone());
    let task = tokio::spawn(poller.run(stopped));

    // The poison record comes back until its receive count passes the queue's limit.
    let deadline = Instant::now() + Duration::from_secs(60);
    let dead = loop {
        let out = sqs
            .receive_message()
            .queue_url(&dlq_url)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive dlq");
        if let Some(message) = out.messages().first() {
            break message.clone();
        }
        assert!(Instant::now() < deadline, "poison record never reached the DLQ");
    };
    let _ = stop.send(true);
    task.await.expect("poller stops");

    assert_eq!(dead.body(), Some("poison"));
    let seen = recorder.seen.lock().expect("lock").clone();
    let poison_attempts = seen.iter().filter(|m| m.body.as_deref() == Some("poison")).count();
    assert_eq!(poison_attempts as u32, INBOUND_EVENTS_QUEUE.max_receive_count);
    let good: Vec<String> = bodies(&seen).into_iter().filter(|b| b.starts_with("good")).collect();
    assert_eq!(good, vec!["good-1", "good-2"], "each good record exactly once");

    let record = seen.iter().find(|m| m.body.as_deref() == Some("good-1")).expect("good-1");
    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
    assert_eq!(record.event_source_arn.as_deref(), Some(arn.as_str()));
    assert_eq!(record.attributes.get("ApproximateReceiveCount").map(String::as_str), Some("1"));
    assert_eq!(record.message_attributes["kind"].string_value.as_deref(), Some("test"));
    assert!(record.receipt_handle.is_some() && record.md5_of_body.is_some());

    let left = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .expect("attributes");
    let count = left.attributes().and_then(|a| a.values().next()).cloned();
    assert_eq!(count.as_deref(), Some("0"), "succeeded records are deleted");

    stack.remove().await;
}

#[tokio::test]
async fn when_the_processor_fails_the_whole_batch_is_delivered_again() {
    let stack = Stack::new(Emulator::shared()).await;
    let sqs = stack.clients.sqs.clone();
    let queue_url = stack.resources.partner_events_queue_url.clone();
    let recorder = Arc::new(Recorder {
        sqs: sqs.clone(),
        queue_url: queue_url.clone(),
        seen: Mutex::new(Vec::new()),
        crashed: Mutex::new(false),
    });
    sqs.send_message().queue_url(&queue_url).message_body("crash-once").send().await.expect("send");
    let poller = Poller::new("partner", sqs.clone(), &queue_url, "arn:test", recorder.clone());

    // Drive the poller's invocations directly, one receive at a time.
    let mut deleted = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while deleted.is_empty() {
        assert!(Instant::now() < deadline, "record never succeeded");
        let out = sqs
            .receive_message()
            .queue_url(&queue_url)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("receive");
        if !out.messages().is_empty() {
            deleted = poller.invoke(out.messages().to_vec()).await;
        }
    }

    let seen = recorder.seen.lock().expect("lock").clone();
    assert_eq!(bodies(&seen), vec!["crash-once", "crash-once"], "delivered again after the crash");
    assert_eq!(deleted.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn every_message_carries_its_tenant_as_its_group_and_keeps_it_when_requeued() {
    use adapters::queues::{Inbox, Queue, WebhookPointer};
    let stack = Stack::new(Emulator::shared()).await;
    let url = stack.resources.inbound_events_queue_url.clone();
    let tenant = domain::ids::TenantId::generate();
    let queue: Queue<WebhookPointer> = Queue::new(stack.clients.sqs.clone(), url.clone());
    let pointer = WebhookPointer { tenant_id: tenant.clone(), event_id: "evt_1".into() };
    queue.send(&pointer).await.expect("sent");
    queue.send_batch(std::slice::from_ref(&pointer)).await.expect("sent in a batch");

    let receive = || async {
        let out = stack
            .clients
            .sqs
            .receive_message()
            .queue_url(&url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("received");
        out.messages.unwrap_or_default()
    };
    let mut got = Vec::new();
    for _ in 0..5 {
        got.extend(receive().await);
        if got.len() >= 2 {
            break;
        }
    }
    assert_eq!(got.len(), 2);
    let group_of = |m: &aws_sdk_sqs::types::Message| {
        m.attributes().and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId)).cloned()
    };
    for message in &got {
        assert_eq!(group_of(message).as_deref(), Some(tenant.as_str()), "{message:?}");
    }

    // A deferred record goes back with its group.
    let arn = queue_arn(&stack.clients, &url).await.expect("arn");
    let mut record = SqsMessage::default();
    record.body = got[0].body.clone();
    record.event_source_arn = Some(arn);
    // (Its group is read from its body when the event does not carry it.)
    let inbox = Inbox::new(stack.clients.sqs.clone(), &stack.resources, &[INBOUND_EVENTS_QUEUE]);
    assert!(inbox.requeue(&[(&record, Duration::ZERO)]).await.is_empty(), "requeued");
    let mut again = Vec::new();
    for _ in 0..5 {
        again.extend(receive().await);
        if !again.is_empty() {
            break;
        }
    }
    assert_eq!(again.len(), 1);
    assert_eq!(group_of(&again[0]).as_deref(), Some(tenant.as_str()));
    stack.remove().await;
}
