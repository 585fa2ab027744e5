//! The sample events in `events/<function>/` (what `cargo lambda invoke --data-file` sends)
//! are answered by their functions as the file names say, through each function's own
//! wiring (`Deps::build`); every function has samples.

use aws_lambda_events::event::sqs::SqsEvent;
use edge::tokens::{DEFAULT_ISSUER, TokenKeys};
use std::collections::BTreeSet;
use std::sync::Arc;
use switchboard_tests::{Emulator, Stack, loopback_graph, test_key_spec, workspace_root};

fn request_of(event: &str) -> lambda_http::Request {
    lambda_http::request::from_str(event).expect("API Gateway v2 event")
}

/// A sample SQS event, its records named as coming from this stack's `queue_url`.
async fn sqs_of(stack: &Stack, sample: &str, queue_url: &str) -> SqsEvent {
    let mut event: SqsEvent = serde_json::from_str(sample).expect("SQS event");
    let arn = adapters::aws::bootstrap::queue_arn(&stack.clients, queue_url).await.expect("arn");
    for record in &mut event.records {
        record.event_source_arn = Some(arn.clone());
    }
    event
}

fn keys() -> Arc<TokenKeys> {
    Arc::new(TokenKeys::parse(&test_key_spec(), DEFAULT_ISSUER, "test").expect("keys"))
}

fn status(response: Result<lambda_http::Response<lambda_http::Body>, lambda_http::Error>) -> u16 {
    response.expect("handler").status().as_u16()
}

#[tokio::test]
async fn the_http_samples_are_answered_as_named() {
    let stack = Stack::new(Emulator::shared()).await;
    let (c, r) = (&stack.clients, &stack.resources);
    let sandbox = adapters::channel::SandboxCredentials::default();

    let api = edge::config::ApiConfig {
        token_keys: keys(),
        sandbox: sandbox.clone(),
        graph: loopback_graph(None),
        pools: domain::sessions::PoolPolicies::default(),
    };
    let channel = channel::Deps::build(c, r, &api).expect("channel");
    let messages = messages::Deps::build(c, r, &api).expect("messages");
    let admin = admin::Deps::build(c, r, &api);
    let b2b = b2b::Deps::build(c, r, &api);
    let webhooks = webhooks::Deps::build(
        c,
        r,
        &webhooks::Config {
            api: api.clone(),
            client: switchboard_tests::test_webhook_config().client,
        },
    );
    let meta = meta_webhook::Deps::build(
        c,
        r,
        &meta_webhook::Config { sandbox, platform_app: meta_webhook::PlatformApp::default() },
    );

    let get_channel = include_str!("../../events/channel/get-channel-unauthenticated.json");
    let send = include_str!("../../events/messages/send-message-unauthenticated.json");
    let replay = include_str!("../../events/admin/replay-unauthenticated.json");
    let verify = include_str!("../../events/meta-webhook/verify-unknown-tenant.json");
    let receive = include_str!("../../events/meta-webhook/receive-unsigned.json");
    assert_eq!(status(channel::handle(&channel, request_of(get_channel)).await), 401);
    assert_eq!(status(messages::handle(&messages, request_of(send)).await), 401);
    assert_eq!(status(admin::handle(&admin, request_of(replay)).await), 401);
    let list = include_str!("../../events/webhooks/list-webhooks-unauthenticated.json");
    assert_eq!(status(webhooks::handle(&webhooks, request_of(list)).await), 401);
    let bulk = include_str!("../../events/b2b/bulk-create-unauthenticated.json");
    assert_eq!(status(b2b::handle(&b2b, request_of(bulk)).await), 401);
    assert_eq!(status(meta_webhook::handle(&meta, request_of(verify)).await), 404);
    assert_eq!(status(meta_webhook::handle(&meta, request_of(receive)).await), 401);
    stack.remove().await;
}

#[tokio::test]
async fn the_queue_samples_are_processed_as_named() {
    let stack = Stack::new(Emulator::shared()).await;
    let (c, r) = (&stack.clients, &stack.resources);
    let processor = webhook_processor::Deps::build(c, r);
    let sender = message_sender::Deps::build(
        c,
        r,
        &message_sender::Config {
            sandbox: adapters::channel::SandboxCredentials::default(),
            graph: loopback_graph(None),
            policy: switchboard_tests::test_sender_policy(),
        },
    )
    .expect("sender");

    // A pointer to a raw event no longer stored, and a send job for a message that does not
    // exist: nothing to do, nothing failed.
    let pointer = include_str!("../../events/webhook-processor/webhook-pointer.json");
    let job = include_str!("../../events/message-sender/send-job.json");
    let inbound = &r.inbound_events_queue_url;
    let outbound = &r.outbound_standard_queue_url;
    let applied = webhook_processor::handle(&processor, sqs_of(&stack, pointer, inbound).await);
    assert!(applied.await.batch_item_failures.is_empty());
    let sent = message_sender::handle(&sender, sqs_of(&stack, job, outbound).await).await;
    assert!(sent.batch_item_failures.is_empty());

    // An event for a tenant without subscriptions, an attempt of a delivery that does not
    // exist, and a settling of a subscription with nothing parked: nothing to do.
    let dispatcher =
        webhook_dispatcher::Deps::build(c, r, &switchboard_tests::test_webhook_config());
    let event = include_str!("../../events/webhook-dispatcher/partner-event.json");
    let attempt = include_str!("../../events/webhook-dispatcher/delivery-attempt.json");
    let fresh = &r.partner_events_queue_url;
    let retries = &r.webhook_retries_queue_url;
    let fanned = webhook_dispatcher::handle(&dispatcher, sqs_of(&stack, event, fresh).await).await;
    assert!(fanned.batch_item_failures.is_empty());
    let retried = webhook_dispatcher::handle(&dispatcher, sqs_of(&stack, attempt, retries).await);
    assert!(retried.await.batch_item_failures.is_empty());
    let settle = include_str!("../../events/webhook-dispatcher/settle-parked.json");
    let settled = webhook_dispatcher::handle(&dispatcher, sqs_of(&stack, settle, retries).await);
    assert!(settled.await.batch_item_failures.is_empty());
    // The last sweep of a tenant with nothing left: nothing to erase, nothing queued.
    let eraser = tenant_eraser::Deps::build(c, r);
    let sweep = include_str!("../../events/tenant-eraser/final-sweep.json");
    let erasures = &r.tenant_erasure_queue_url;
    let swept = tenant_eraser::handle(&eraser, sqs_of(&stack, sweep, erasures).await).await;
    assert!(swept.batch_item_failures.is_empty());
    // The schedule's tick with no gateway channel: nothing checked.
    let _tick: serde_json::Value =
        serde_json::from_str(include_str!("../../events/gateway-health/scheduled.json"))
            .expect("a scheduled event");
    let health = gateway_health::Deps::build(c, r, loopback_graph(None)).expect("gateway health");
    let checked = gateway_health::run(&health, domain::time::now_secs()).await.expect("run");
    assert_eq!(checked, gateway_health::Checked::default());
    let poison = include_str!("../../events/webhook-dispatcher/poison-record.json");
    let rejected = webhook_dispatcher::handle(&dispatcher, sqs_of(&stack, poison, fresh).await);
    assert!(rejected.await.batch_item_failures.is_empty());

    // Poison: straight to the dead-letter queue, with its reason.
    let poison = include_str!("../../events/webhook-processor/poison-record.json");
    let applied = webhook_processor::handle(&processor, sqs_of(&stack, poison, inbound).await);
    assert!(applied.await.batch_item_failures.is_empty());
    let poison = include_str!("../../events/message-sender/poison-record.json");
    let sent = message_sender::handle(&sender, sqs_of(&stack, poison, outbound).await).await;
    assert!(sent.batch_item_failures.is_empty());
    for (queue, body) in [
        (&adapters::resources::INBOUND_EVENTS_QUEUE, "not a webhook pointer"),
        (&adapters::resources::OUTBOUND_STANDARD_QUEUE, "not a send job"),
        (&adapters::resources::PARTNER_EVENTS_QUEUE, "not a partner event"),
    ] {
        let dead = stack.dead_letters(r.dlq_url(queue)).await;
        assert_eq!(dead.len(), 1, "{dead:?}");
        assert_eq!(dead[0].0, body);
        assert!(dead[0].1.is_some(), "with a reason");
    }
    stack.remove().await;
}

#[test]
fn every_function_has_sample_events() {
    let names = |dir: &str| -> BTreeSet<String> {
        std::fs::read_dir(workspace_root().join(dir))
            .expect("dir")
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect()
    };
    let functions = names("functions");
    for function in &functions {
        let samples = std::fs::read_dir(workspace_root().join("events").join(function))
            .map(|d| d.filter_map(|e| e.ok()).count())
            .unwrap_or(0);
        assert!(samples > 0, "events/{function}/ has no sample event");
    }
    assert_eq!(names("events"), functions, "events/ has a folder per function, and no other");
}
