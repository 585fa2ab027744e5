//! Deep backlogs and records that can never be processed: nothing accepted is lost, and
//! nothing reaches a dead-letter queue without a reason.

use adapters::aws::bootstrap::queue_arn;
use adapters::resources::OUTBOUND_STANDARD_QUEUE;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use switchboard_tests::{
    App, Emulator, Stack, eventually, loopback_graph, template_message as template,
};

/// A record as Lambda hands it over from `queue_arn`, received `receive_count` times.
fn record(queue_arn: &str, receive_count: u32, body: &str) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = Some(format!("rec-{}", uuid::Uuid::new_v4().simple()));
    record.receipt_handle = Some("handle".into());
    record.body = Some(body.to_owned());
    record.event_source = Some("aws:sqs".into());
    record.event_source_arn = Some(queue_arn.to_owned());
    record.attributes.insert("ApproximateReceiveCount".into(), receive_count.to_string());
    record
}

fn event(records: Vec<SqsMessage>) -> SqsEvent {
    let mut event = SqsEvent::default();
    event.records = records;
    event
}

/// A standard-tier tenant paced at 1 msg/s queues 200 messages; the standard queue's
/// event source runs its five batches at once, so most receives find the pacing bucket
/// booked. Deferrals go back to the queue as new messages, so none of them uses up the
/// receive budget: every message is sent once, none is dead-lettered.
#[tokio::test]
async fn a_paced_backlog_under_concurrent_batches_sends_every_message_and_dead_letters_none() {
    const MESSAGES: usize = 200;
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn_keeping_partner_events(&stack).await;
    let owner = app.sandbox_tenant("backlog", Some(1)).await;

    let mut ids = BTreeSet::new();
    for n in 0..MESSAGES {
        let body = template(&format!("+1555090{n:04}"), &format!("backlog-{n}"));
        // NOTE: 503 means "retry" (the emulator answers a burst of transactions with an
        // occasional 500); the same clientMessageId makes the retry safe, as for a client.
        let mut attempt = 0;
        let accepted = loop {
            let (status, accepted) = app
                .call("POST", "/api/messages", Some(&owner.access_token), Some(body.clone()))
                .await;
            attempt += 1;
            if status == 503 && attempt < 5 {
                tokio::time::sleep(std::time::Duration::from_millis(200 * attempt)).await;
                continue;
            }
            assert!(status == 202 || (status == 200 && attempt > 1), "{status}: {accepted}");
            break accepted;
        };
        ids.insert(accepted["id"].as_str().expect("id").to_owned());
    }

    // 200 s of sends at 1 msg/s, plus the time the queue takes to hand them over.
    // The sandbox counts accepted sends (this app's sandbox serves this test alone).
    eventually(420, "every backlogged message sent", || async {
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        (app.sandbox_stats().await["sends"].as_u64()? >= MESSAGES as u64).then_some(())
    })
    .await;
    for id in &ids {
        let (status, message) =
            app.call("GET", &format!("/api/messages/{id}"), Some(&owner.access_token), None).await;
        assert_eq!(status, 200, "{message}");
        assert!(
            ["sent", "delivered", "read"].contains(&message["status"].as_str().unwrap_or_default()),
            "{message}"
        );
    }

    let stats = app.sandbox_stats().await;
    let mut recipients = BTreeSet::new();
    for n in 0..MESSAGES {
        let to = format!("+1555090{n:04}");
        let items = app.sandbox_sent(&to).await;
        assert_eq!(items.len(), 1, "{to} received {} sends; stats {stats}", items.len());
        recipients.insert(to);
    }
    assert_eq!(recipients.len(), MESSAGES);
    let dlq = stack.resources.dlq_url(&OUTBOUND_STANDARD_QUEUE).to_owned();
    assert_eq!(stack.dead_letters(&dlq).await, vec![], "nothing dead-lettered");
    drop(app);
    stack.remove().await;
}

#[tokio::test]
async fn a_poison_send_job_reaches_the_dead_letter_queue_on_its_first_receive() {
    let stack = Stack::new(Emulator::shared()).await;
    let r = &stack.resources;
    let sender = message_sender::Deps::build(
        &stack.clients,
        r,
        &message_sender::Config {
            sandbox: adapters::channel::SandboxCredentials::default(),
            graph: loopback_graph(None),
            policy: switchboard_tests::test_sender_policy(),
        },
    )
    .expect("deps");
    let arn = queue_arn(&stack.clients, &r.outbound_standard_queue_url).await.expect("arn");

    let response = message_sender::handle(
        &sender,
        event(vec![record(&arn, 1, "not a job"), record(&arn, 1, r#"{"tenantId":"a/b"}"#)]),
    )
    .await;

    assert!(response.batch_item_failures.is_empty(), "handled: deleted from the source queue");
    let mut dead = stack.dead_letters(r.dlq_url(&OUTBOUND_STANDARD_QUEUE)).await;
    dead.sort();
    assert_eq!(dead.len(), 2, "{dead:?}");
    assert_eq!(dead[0].0, "not a job");
    assert_eq!(dead[1].0, r#"{"tenantId":"a/b"}"#);
    for (_, reason) in &dead {
        assert!(reason.as_deref().is_some_and(|r| r.starts_with("not a send job")), "{reason:?}");
    }
    stack.remove().await;
}

#[tokio::test]
async fn a_poison_webhook_pointer_reaches_the_dead_letter_queue_on_its_first_receive() {
    let stack = Stack::new(Emulator::shared()).await;
    let r = &stack.resources;
    let processor = webhook_processor::Deps::new(&stack.clients, r);
    let arn = queue_arn(&stack.clients, &r.inbound_events_queue_url).await.expect("arn");

    let response =
        webhook_processor::handle(&processor, event(vec![record(&arn, 1, "{\"eventId\":1}")]))
            .await;

    assert!(response.batch_item_failures.is_empty());
    let dead = stack.dead_letters(r.dlq_url(&adapters::resources::INBOUND_EVENTS_QUEUE)).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "{\"eventId\":1}");
    assert!(dead[0].1.as_deref().is_some_and(|r| r.starts_with("not a webhook pointer")));
    stack.remove().await;
}

/// A message whose stored item is malformed can never be sent: the record goes to the
/// dead-letter queue at once, and the message is failed with a reason and announced, not
/// left `queued`.
#[tokio::test]
async fn a_message_that_reaches_the_dead_letter_queue_is_failed_and_announced() {
    use aws_sdk_dynamodb::types::AttributeValue;
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let owner = app.sandbox_tenant("deadletter", None).await;
    let (status, accepted) = app
        .call(
            "POST",
            "/api/messages",
            Some(&owner.access_token),
            Some(template("+15550910001", "dl-1")),
        )
        .await;
    assert_eq!(status, 202, "{accepted}");
    let message_id = accepted["id"].as_str().expect("id").to_owned();
    // Break the stored request the sender would post.
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(&stack.resources.messages_table)
        .key("pk", AttributeValue::S(switchboard_tests::shard_pk(&owner.tenant_id, &message_id)))
        .key("sk", AttributeValue::S(format!("MSG#{message_id}")))
        .update_expression("SET content = :broken")
        .expression_attribute_values(":broken", AttributeValue::N("1".into()))
        .send()
        .await
        .expect("break the item");
    let r = &stack.resources;
    let queued = stack.take_event(&r.outbound_standard_queue_url, 1).await;
    let arn = queue_arn(&stack.clients, &r.outbound_standard_queue_url).await.expect("arn");
    let body = queued.records[0].body.clone().expect("body");
    let sender = message_sender::Deps::build(
        &stack.clients,
        r,
        &message_sender::Config {
            sandbox: adapters::channel::SandboxCredentials::default(),
            graph: loopback_graph(Some(&app.sandbox_url)),
            policy: switchboard_tests::test_sender_policy(),
        },
    )
    .expect("deps");

    let response = message_sender::handle(&sender, event(vec![record(&arn, 1, &body)])).await;

    assert!(response.batch_item_failures.is_empty());
    let dead = stack.dead_letters(r.dlq_url(&OUTBOUND_STANDARD_QUEUE)).await;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, body);
    let (_, message) = app
        .call("GET", &format!("/api/messages/{message_id}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(message["status"], "failed", "{message}");
    assert_eq!(message["error"]["code"], "dead_lettered", "{message}");
    let events = stack.drain_json(&r.partner_events_queue_url).await;
    let failed: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "message.status" && e["data"]["messageId"] == message_id.as_str())
        .collect();
    assert_eq!(failed.len(), 1, "{events:?}");
    assert_eq!(failed[0]["data"]["status"], "failed");
    assert_eq!(failed[0]["data"]["error"]["code"], "dead_lettered");
    drop(app);
    stack.remove().await;
}

/// Published sample payloads reuse ids: a status for a wamid we never sent, then a customer
/// message with that id. The message is stored all the same (it used to fail as
/// "malformed" on every retry and end in the dead-letter queue).
#[tokio::test]
async fn a_status_for_an_unknown_wamid_does_not_poison_a_later_message_with_that_id() {
    let stack = Stack::new(Emulator::shared()).await;
    let tenant = domain::ids::TenantId::generate();
    let store = adapters::store::messages::MessageStore::new(
        stack.clients.dynamodb.clone(),
        stack.resources.messages_table.clone(),
    );
    let wamid = "wamid.shared-by-samples";
    let status = domain::meta::parse(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "1"},
            "statuses": [{"id": wamid, "status": "delivered", "timestamp": "1700000000",
                          "recipient_id": "15551230000"}]}}]}]
    }))
    .expect("status payload");
    let message = domain::meta::parse(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": "1"},
            "contacts": [{"profile": {"name": "Kim"}, "wa_id": "15551230000"}],
            "messages": [{"from": "15551230000", "id": wamid, "timestamp": "1700000001",
                          "type": "text", "text": {"body": "hi"}}]}}]}]
    }))
    .expect("message payload");
    let (
        Some(domain::meta::WebhookItem::Status(status)),
        Some(domain::meta::WebhookItem::Message(message)),
    ) = (status.into_iter().next(), message.into_iter().next())
    else {
        panic!("one status and one message");
    };

    store
        .deliveries()
        .apply(&switchboard_tests::scope_of(&tenant), &status)
        .await
        .expect("status of an unknown wamid");
    let applied = store
        .inbound()
        .apply(&switchboard_tests::scope_of(&tenant), &message)
        .await
        .expect("message stored");
    let again = store
        .inbound()
        .apply(&switchboard_tests::scope_of(&tenant), &message)
        .await
        .expect("repeat");

    assert!(applied.new_message);
    assert!(!again.new_message, "still deduplicated on the wamid");
    assert_eq!(again.message_id, applied.message_id);
    stack.remove().await;
}
