//! Partner webhooks through the local stack, delivered to the sandbox's receivers on
//! 127.0.0.1 (the only destination the tests allow): signed as the Standard Webhooks
//! specification says, retried with one `webhook-id`, disabled on 410, rotated, recovered,
//! and private to their tenant.

use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use domain::webhooks::{secret_key, verify};
use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, Registered, Stack, email, eventually, scope_of};

/// A receiver of the sandbox: its URL, set up with `setup` (see `sandbox::receiver`).
async fn receiver(app: &App, name: &str, setup: Value) -> String {
    let url = format!("{}/_sandbox/receiver/{name}", app.sandbox_url);
    let response = app.http.put(&url).json(&setup).send().await.expect("receiver set-up");
    assert_eq!(response.status(), 204);
    url
}

/// What a receiver got, oldest first.
async fn received(app: &App, url: &str) -> Vec<Value> {
    let body: Value = app.http.get(url).send().await.expect("receiver").json().await.expect("json");
    body["items"].as_array().cloned().unwrap_or_default()
}

async fn subscribe(app: &App, owner: &Registered, url: &str, events: Value) -> (String, String) {
    let (status, body) = app
        .call(
            "POST",
            "/api/webhooks",
            Some(&owner.access_token),
            Some(json!({"url": url, "events": events})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "active");
    let secret = body["secret"].as_str().expect("secret shown once").to_owned();
    assert!(secret.starts_with("whsec_"));
    (body["id"].as_str().expect("id").to_owned(), secret)
}

/// `POST /api/webhooks/{id}/test`; the delivery's id.
async fn send_test(app: &App, owner: &Registered, subscription: &str) -> String {
    let path = format!("/api/webhooks/{subscription}/test");
    let (status, test) = app.call("POST", &path, Some(&owner.access_token), None).await;
    assert_eq!(status, 202, "{test}");
    test["deliveryId"].as_str().expect("delivery id").to_owned()
}

/// The delivery `id` once `done` holds for it.
async fn delivery_when(
    app: &App,
    owner: &Registered,
    id: &str,
    what: &str,
    done: impl Fn(&Value) -> bool,
) -> Value {
    eventually(40, what, || async {
        let d = delivery(app, owner, id).await;
        done(&d).then_some(d)
    })
    .await
}

async fn delivery(app: &App, owner: &Registered, id: &str) -> Value {
    let (status, body) = app
        .call("GET", &format!("/api/webhooks/deliveries/{id}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn verifies(item: &Value, secret: &str) -> bool {
    let key = secret_key(secret).expect("key");
    let body = item["body"].to_string();
    let ts: i64 = item["timestamp"].as_str().and_then(|t| t.parse().ok()).expect("timestamp");
    verify(
        &key,
        item["webhookId"].as_str().expect("id"),
        ts,
        body.as_bytes(),
        item["signature"].as_str().expect("sig"),
    )
}

#[tokio::test]
async fn a_customer_message_is_delivered_signed_to_the_subscribed_receiver() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-signed", None).await;
    let url = receiver(&app, "signed", json!({})).await;
    let (subscription, secret) = subscribe(&app, &owner, &url, json!(["message.received"])).await;
    receiver(&app, "signed", json!({"secret": secret})).await;

    app.customer_writes(&owner, "+15550700001").await;
    let items = eventually(30, "message.received delivered", || async {
        let items = received(&app, &url).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    let item = &items[0];
    assert_eq!(item["verified"], true, "the receiver verified the signature: {item}");
    assert_eq!(item["body"]["type"], "message.received");
    assert_eq!(item["body"]["data"]["tenantId"], owner.tenant_id);
    assert!(item["body"]["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    let id = item["webhookId"].as_str().expect("webhook-id");

    // The log: one delivery, delivered at the first attempt, under that id.
    let found =
        delivery_when(&app, &owner, id, "delivery recorded", |d| d["status"] == "delivered").await;
    assert_eq!(found["attemptCount"], 1);
    assert_eq!(found["attempts"][0]["statusCode"], 200);
    assert_eq!(found["payload"], item["body"]);
    let (_, log) = app
        .call(
            "GET",
            &format!("/api/webhooks/{subscription}/deliveries?status=delivered"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(log["items"][0]["id"], id);
    assert_eq!(log["items"][0]["attempts"], 1);
    // Only the events subscribed to: no message.status or conversation.created here.
    assert!(received(&app, &url).await.iter().all(|i| i["body"]["type"] == "message.received"));
    stack.remove().await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_three_attempts_with_one_webhook_id_then_a_redelivery() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-retry", None).await;
    let url = receiver(&app, "retry", json!({"failTimes": 2, "failStatus": 503})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;

    let id = send_test(&app, &owner, &subscription).await;
    let found = delivery_when(&app, &owner, &id, "delivered at the third attempt", |d| {
        d["status"] == "delivered"
    })
    .await;
    let codes: Vec<&Value> =
        found["attempts"].as_array().expect("attempts").iter().map(|a| &a["statusCode"]).collect();
    assert_eq!(codes, [&json!(503), &json!(503), &json!(200)]);
    let items = received(&app, &url).await;
    assert_eq!(items.len(), 3);
    assert!(
        items.iter().all(|i| i["webhookId"] == id.as_str() && i["body"]["type"] == "webhook.test")
    );

    // Redelivered on request, with the same id; a pending delivery cannot be.
    let (status, _) = app
        .call(
            "POST",
            &format!("/api/webhooks/deliveries/{id}/redeliver"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 202);
    delivery_when(&app, &owner, &id, "redelivered", |d| {
        d["attemptCount"] == 4 && d["status"] == "delivered"
    })
    .await;
    let items = received(&app, &url).await;
    assert_eq!(items.len(), 4);
    assert_eq!(items[3]["webhookId"], id.as_str());
    stack.remove().await;
}

#[tokio::test]
async fn gone_disables_the_subscription_at_once() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-gone", None).await;
    let url = receiver(&app, "gone", json!({"failTimes": 1, "failStatus": 410})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;
    let id = send_test(&app, &owner, &subscription).await;
    let found =
        delivery_when(&app, &owner, &id, "failed by 410", |d| d["status"] == "failed").await;
    assert_eq!(found["attemptCount"], 1, "410 is not retried");
    let (_, view) = app
        .call("GET", &format!("/api/webhooks/{subscription}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(view["status"], "disabled");
    assert!(view["disabledReason"].as_str().is_some_and(|r| r.contains("410")), "{view}");
    assert!(view.get("secret").is_none(), "never shown again");

    // Events no longer go to it; turned back on, they do.
    app.customer_writes(&owner, "+15550700002").await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(received(&app, &url).await.len(), 1);
    let (status, view) = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{subscription}"),
            Some(&owner.access_token),
            Some(json!({"status": "active"})),
        )
        .await;
    assert_eq!(
        (status, &view["status"], &view["disabledReason"]),
        (200, &json!("active"), &Value::Null)
    );
    app.customer_writes(&owner, "+15550700003").await;
    eventually(30, "delivered again", || async {
        (received(&app, &url).await.len() > 1).then_some(())
    })
    .await;
    stack.remove().await;
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_new_one() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-rotate", None).await;
    let url = receiver(&app, "rotate", json!({})).await;
    let (subscription, old) = subscribe(&app, &owner, &url, json!(["message.status"])).await;
    let (status, rotated) = app
        .call(
            "POST",
            &format!("/api/webhooks/{subscription}/rotate-secret"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new = rotated["secret"].as_str().expect("new secret").to_owned();
    assert_ne!(new, old);

    send_test(&app, &owner, &subscription).await;
    let items = eventually(30, "test event", || async {
        let items = received(&app, &url).await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    let signature = items[0]["signature"].as_str().expect("signature");
    assert_eq!(signature.split(' ').count(), 2, "two signatures: {signature}");
    assert!(verifies(&items[0], &new) && verifies(&items[0], &old));
    let stranger = domain::webhooks::new_secret().expect("secret");
    assert!(!verifies(&items[0], &stranger));

    // Audited: created, rotated.
    let actions = stack.audit_actions(&owner.tenant_id).await;
    for action in ["webhook.created", "webhook.secret_rotated"] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
    stack.remove().await;
}

#[tokio::test]
async fn recover_resends_exactly_the_failed_deliveries_of_its_window() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-recover", None).await;
    let token = owner.access_token.clone();
    let url = receiver(&app, "recover", json!({"failTimes": 8, "failStatus": 500})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;
    let since = domain::time::rfc3339(domain::time::now_secs() - 5);
    let mut ids = Vec::new();
    for _ in 0..2 {
        ids.push(send_test(&app, &owner, &subscription).await);
    }
    // Four attempts each (the tests' schedule: 1, 2, 2 s), all failing.
    for id in &ids {
        let failed = delivery_when(&app, &owner, id, "failed", |d| d["status"] == "failed").await;
        assert_eq!(failed["attemptCount"], 4);
    }
    // A third delivery succeeds: recovery leaves it alone.
    let good = send_test(&app, &owner, &subscription).await;
    delivery_when(&app, &owner, &good, "delivered", |d| d["status"] == "delivered").await;
    let (_, failed_log) = app
        .call(
            "GET",
            &format!("/api/webhooks/{subscription}/deliveries?status=failed"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(failed_log["items"].as_array().map(Vec::len), Some(2));

    let (status, body) = app
        .call(
            "POST",
            &format!("/api/webhooks/{subscription}/recover"),
            Some(&token),
            Some(json!({"since": since})),
        )
        .await;
    assert_eq!((status, &body["queued"]), (202, &json!(2)), "{body}");
    for id in &ids {
        delivery_when(&app, &owner, id, "recovered", |d| {
            d["status"] == "delivered" && d["attemptCount"] == 5
        })
        .await;
    }
    let items = received(&app, &url).await;
    assert_eq!(items.iter().filter(|i| i["webhookId"] == good.as_str()).count(), 1, "not resent");
    for id in &ids {
        assert_eq!(items.iter().filter(|i| i["webhookId"] == id.as_str()).count(), 5);
    }
    // A window with nothing failed in it.
    let later = domain::time::rfc3339(domain::time::now_secs() + 60);
    let (status, body) = app
        .call(
            "POST",
            &format!("/api/webhooks/{subscription}/recover"),
            Some(&token),
            Some(json!({"since": later, "until": later})),
        )
        .await;
    assert_eq!((status, &body["queued"]), (202, &json!(0)));
    stack.remove().await;
}

#[tokio::test]
async fn another_tenants_subscriptions_and_deliveries_are_404() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = app.sandbox_tenant("webhooks-a", None).await;
    let b = app.register(&email("webhooks-b")).await;
    let url = receiver(&app, "isolation", json!({})).await;
    let (subscription, _) = subscribe(&app, &a, &url, json!(["*"])).await;
    let id = send_test(&app, &a, &subscription).await;
    delivery_when(&app, &a, &id, "delivered", |d| d["status"] == "delivered").await;

    let (_, key) =
        app.call("POST", "/api/api-keys", Some(&b.access_token), Some(json!({"name": "k"}))).await;
    let b_key = key["key"].as_str().expect("key").to_owned();
    let since = domain::time::rfc3339(domain::time::now_secs() - 60);
    for token in [&b.access_token, &b_key] {
        for (method, path, body) in [
            ("GET", format!("/api/webhooks/{subscription}"), None),
            ("PATCH", format!("/api/webhooks/{subscription}"), Some(json!({"status": "disabled"}))),
            ("DELETE", format!("/api/webhooks/{subscription}"), None),
            ("POST", format!("/api/webhooks/{subscription}/rotate-secret"), None),
            ("POST", format!("/api/webhooks/{subscription}/test"), None),
            ("GET", format!("/api/webhooks/{subscription}/deliveries"), None),
            (
                "POST",
                format!("/api/webhooks/{subscription}/recover"),
                Some(json!({"since": since})),
            ),
            ("GET", format!("/api/webhooks/deliveries/{id}"), None),
            ("POST", format!("/api/webhooks/deliveries/{id}/redeliver"), None),
        ] {
            let (status, response) = app.call(method, &path, Some(token), body).await;
            assert_eq!(status, 404, "{method} {path}: {response}");
        }
        let (status, list) = app.call("GET", "/api/webhooks", Some(token), None).await;
        assert_eq!((status, &list["items"]), (200, &json!([])));
    }
    // Nothing of A's changed.
    let (_, view) = app
        .call("GET", &format!("/api/webhooks/{subscription}"), Some(&a.access_token), None)
        .await;
    assert_eq!(view["status"], "active");
    assert_eq!(received(&app, &url).await.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn refused_destinations_and_bad_subscriptions_are_422_and_store_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("webhooks-bad")).await;
    let token = owner.access_token.as_str();
    // The tests allow 127.0.0.1/32 only: 127.0.0.2 stands for every refused address, and
    // nothing is connected to (only literal addresses and loopback are used).
    for url in ["http://127.0.0.2:9/hook", "http://[::1]:9/hook", "http://0.0.0.0:9/hook"] {
        let (status, body) = app
            .call("POST", "/api/webhooks", Some(token), Some(json!({"url": url, "events": ["*"]})))
            .await;
        assert_eq!(
            (status, &body["code"]),
            (422, &json!("destination_not_allowed")),
            "{url}: {body}"
        );
    }
    for (body, field) in [
        (json!({"url": "ftp://127.0.0.1/x", "events": ["*"]}), "url"),
        (json!({"url": "http://user:pw@127.0.0.1/x", "events": ["*"]}), "url"),
        (json!({"events": ["*"]}), "url"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["message.sent"]}), "events"),
        (json!({"url": "http://127.0.0.1:9/x", "events": []}), "events"),
        (json!({"url": "http://127.0.0.1:9/x", "events": ["*"], "description": 5}), "description"),
    ] {
        let (status, response) =
            app.call("POST", "/api/webhooks", Some(token), Some(body.clone())).await;
        assert_eq!(status, 422, "{body}: {response}");
        assert_eq!(response["errors"][0]["field"], field, "{response}");
    }
    let (status, _) =
        app.call_raw("POST", "/api/webhooks", Some(token), b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    let (_, list) = app.call("GET", "/api/webhooks", Some(token), None).await;
    assert_eq!(list["items"], json!([]), "nothing stored");

    // A change to a refused destination is refused too, and changes nothing.
    let url = receiver(&app, "bad", json!({})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{subscription}"),
            Some(token),
            Some(json!({"url": "http://127.0.0.2/x", "events": ["message.status"]})),
        )
        .await;
    assert_eq!((status, &body["code"]), (422, &json!("destination_not_allowed")));
    let (_, view) =
        app.call("GET", &format!("/api/webhooks/{subscription}"), Some(token), None).await;
    assert_eq!((&view["url"], &view["events"]), (&json!(url), &json!(["*"])));
    stack.remove().await;
}

/// The dispatcher stops right after the endpoint answered, before anything is recorded or
/// scheduled (as a crash would); SQS hands the event out again, and the attempt is made
/// again with the same id. Nothing is lost; the endpoint sees the delivery twice at most.
#[tokio::test]
async fn a_crash_between_the_attempt_and_its_record_repeats_the_attempt_and_loses_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn_keeping_partner_events(&stack).await;
    let owner = app.sandbox_tenant("webhooks-crash", None).await;
    let url = receiver(&app, "crash", json!({})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["message.status"])).await;

    let tenant = domain::ids::TenantId::parse(&owner.tenant_id).expect("tenant");
    let event = domain::events::event(
        "evt_crash_1".into(),
        "message.status",
        &tenant,
        json!({"messageId": "msg_1", "status": "read"}),
    );
    let arn = adapters::aws::bootstrap::queue_arn(
        &stack.clients,
        &stack.resources.partner_events_queue_url,
    )
    .await
    .expect("arn");
    let mut record = aws_lambda_events::event::sqs::SqsMessage::default();
    record.message_id = Some("crash-record".into());
    record.body = Some(serde_json::to_string(&event).expect("event"));
    record.event_source_arn = Some(arn);
    let mut batch = aws_lambda_events::event::sqs::SqsEvent::default();
    batch.records = vec![record];

    let config = switchboard_tests::test_webhook_config();
    let crashing = webhook_dispatcher::Deps::build(&stack.clients, &stack.resources, &config)
        .crashing_after_attempts(1);
    let first = webhook_dispatcher::handle(&crashing, batch.clone()).await;
    assert_eq!(
        first.batch_item_failures.len(),
        1,
        "the record is not done: SQS gives it out again"
    );
    let id = domain::webhooks::delivery_id(&subscription, "evt_crash_1");
    let messages = MessageStore::of(&stack.clients, &stack.resources);
    let stored = messages
        .webhook_deliveries()
        .get(&scope_of(&tenant), &id)
        .await
        .expect("read")
        .expect("written first");
    assert_eq!((stored.status.as_str(), stored.attempts), ("pending", 0));

    let again = webhook_dispatcher::handle(&crashing, batch).await;
    assert!(again.batch_item_failures.is_empty());
    let d = delivery(&app, &owner, &id).await;
    assert_eq!((&d["status"], &d["attemptCount"]), (&json!("delivered"), &json!(1)));
    let items = received(&app, &url).await;
    assert_eq!(items.len(), 2, "the attempt was repeated once");
    assert!(items.iter().all(|i| i["webhookId"] == id.as_str()), "with the same webhook-id");
    stack.remove().await;
}

#[tokio::test]
async fn sustained_failure_disables_a_subscription_after_five_days_and_twenty_failures() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("webhooks-sustained")).await;
    let url = receiver(&app, "sustained", json!({})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;
    let tenant = domain::ids::TenantId::parse(&owner.tenant_id).expect("tenant");
    let scope = scope_of(&tenant);
    let store = TenantStore::of(&stack.clients, &stack.resources);
    // Failing for six days (written as the dispatcher would have, days ago).
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(&stack.resources.tenants_table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(format!("TENANT#{tenant}")))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S(format!("WEBHOOK#{subscription}")))
        .update_expression("SET failingSince = :then")
        .expression_attribute_values(
            ":then",
            aws_sdk_dynamodb::types::AttributeValue::N(
                (domain::time::now_secs() - 6 * 86_400).to_string(),
            ),
        )
        .send()
        .await
        .expect("age the failure");
    for n in 1..20 {
        assert_eq!(
            store.webhooks().delivery_failed(&scope, &subscription, 1).await.expect("count"),
            None,
            "{n}"
        );
    }
    let reason = store.webhooks().delivery_failed(&scope, &subscription, 1).await.expect("count");
    assert!(reason.is_some_and(|r| r.contains("5 days")));
    let (_, view) = app
        .call("GET", &format!("/api/webhooks/{subscription}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(view["status"], "disabled");
    stack.remove().await;
}

#[tokio::test]
async fn subscriptions_are_listed_updated_and_deleted_by_an_admin_or_an_api_key() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("webhooks-crud")).await;
    let (_, key) = app
        .call("POST", "/api/api-keys", Some(&owner.access_token), Some(json!({"name": "k"})))
        .await;
    let key = key["key"].as_str().expect("key").to_owned();
    let url = receiver(&app, "crud", json!({})).await;
    let (status, made) = app
        .call(
            "POST",
            "/api/webhooks",
            Some(&key),
            Some(json!({"url": url, "events": ["message.status"], "description": "CRM"})),
        )
        .await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_str().expect("id").to_owned();
    let (_, list) = app.call("GET", "/api/webhooks", Some(&owner.access_token), None).await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    assert!(list["items"][0].get("secret").is_none());
    let (status, view) = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(&owner.access_token),
            Some(json!({"events": ["*"], "description": null})),
        )
        .await;
    assert_eq!((status, &view["events"], &view["description"]), (200, &json!(["*"]), &Value::Null));
    let (status, body) = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{id}"),
            Some(&owner.access_token),
            Some(json!({"status": "paused"})),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = app.call("DELETE", &format!("/api/webhooks/{id}"), Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("GET", &format!("/api/webhooks/{id}"), Some(&key), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call("DELETE", &format!("/api/webhooks/{id}"), Some(&key), None).await;
    assert_eq!(status, 404);
    let actions = stack.audit_actions(&owner.tenant_id).await;
    for action in ["webhook.created", "webhook.updated", "webhook.deleted"] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
    stack.remove().await;
}

/// AWS requests per delivered event, for a batch of ten events of one tenant with one
/// subscription (BENCHMARKS.md quotes these).
#[tokio::test]
async fn aws_requests_per_delivered_event_are_counted() {
    use std::time::Instant;
    use switchboard_tests::{RequestCounter, cost};
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn_keeping_partner_events(&stack).await;
    let owner = app.register(&email("webhooks-counted")).await;
    let url = receiver(&app, "counted", json!({})).await;
    subscribe(&app, &owner, &url, json!(["message.status"])).await;
    let tenant = domain::ids::TenantId::parse(&owner.tenant_id).expect("tenant");
    let events = adapters::events::PartnerEvents::new(
        stack.clients.sqs.clone(),
        stack.resources.partner_events_queue_url.clone(),
    );
    let emit = |from: u32| {
        (from..from + 10)
            .map(|n| {
                let id = format!("evt_counted_{n}");
                domain::events::event(id, "message.status", &tenant, json!({"status": "read"}))
            })
            .collect::<Vec<_>>()
    };

    let counter = RequestCounter::default();
    let clients = Emulator::shared().counted_clients(&counter).await;
    let config = switchboard_tests::test_webhook_config();
    let dispatcher = webhook_dispatcher::Deps::build(&clients, &stack.resources, &config);
    let mut batches = Vec::new();
    for (from, step) in [(0, "webhooks.deliver.cold"), (10, "webhooks.deliver.warm")] {
        events.emit(&emit(from)).await.expect("queued");
        let batch = stack.take_event(&stack.resources.partner_events_queue_url, 10).await;
        counter.take();
        let started = Instant::now();
        assert!(
            webhook_dispatcher::handle(&dispatcher, batch).await.batch_item_failures.is_empty()
        );
        batches.push(counter.take());
        cost::record(step, &counter.taken_calls(), started.elapsed(), 10);
    }
    cost::record_items(&stack).await;
    assert_eq!(received(&app, &url).await.len(), 20, "every event delivered once");
    println!("dispatcher, cold, a batch of ten: {:?}", batches[0]);
    println!("dispatcher, warm, a batch of ten: {:?}", batches[1]);
    // The tenant's subscriptions once per batch; per event: the delivery written, a slot
    // taken (one instance's attempts start at different slots, so none collide here) and
    // freed, the attempt recorded. Cold, the secret is opened once for the whole batch, and
    // the tenant read once (is it a platform's user?).
    for (batch, cold) in batches.iter().zip([true, false]) {
        let count = |k: &str| batch.get(k).copied().unwrap_or(0);
        assert_eq!(count("DynamoDB.Query"), 1, "{batch:?}");
        assert_eq!(count("DynamoDB.PutItem"), 20, "{batch:?}");
        assert_eq!(count("DynamoDB.UpdateItem"), 10, "{batch:?}");
        assert_eq!(count("DynamoDB.DeleteItem"), 10, "{batch:?}");
        assert_eq!(count("KMS.Decrypt"), u32::from(cold), "{batch:?}");
        // Whether the tenant is a platform's B2B user, read once a minute.
        assert_eq!(count("DynamoDB.GetItem"), u32::from(cold), "{batch:?}");
        assert_eq!(batch.len(), 4 + 2 * usize::from(cold), "nothing else: {batch:?}");
    }
    stack.remove().await;
}

/// Messages on the retry queue: waiting, delayed and in flight.
async fn retry_queue_messages(stack: &Stack) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let attrs = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.resources.webhook_retries_queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .unwrap_or_default();
    attrs.values().filter_map(|v| v.parse::<u64>().ok()).sum()
}

/// Whether a delivery waits parked: pending, nothing attempted, nothing due.
fn parked(d: &Value) -> bool {
    d["status"] == "pending" && d["attemptCount"] == 0 && d["nextAttemptAt"].is_null()
}

/// A subscription's `failingSince` once it is set.
async fn failing(app: &App, owner: &Registered, subscription: &str) -> Value {
    eventually(20, "the subscription failing", || async {
        let path = format!("/api/webhooks/{subscription}");
        let (_, view) = app.call("GET", &path, Some(&owner.access_token), None).await;
        (!view["failingSince"].is_null()).then_some(view)
    })
    .await
}

/// A tenant whose subscription's endpoint (receiver `name`, set up with `setup`) has failed
/// a first attempt, so that its circuit is open: the owner, the receiver's URL, the
/// subscription and that first delivery.
async fn failing_subscription(
    app: &App,
    name: &str,
    setup: Value,
) -> (Registered, String, String, String) {
    let owner = app.sandbox_tenant(&format!("webhooks-{name}"), None).await;
    let url = receiver(app, name, setup).await;
    let (subscription, _) = subscribe(app, &owner, &url, json!(["*"])).await;
    let first = send_test(app, &owner, &subscription).await;
    delivery_when(app, &owner, &first, "a first failed attempt", |d| d["attemptCount"] == 1).await;
    failing(app, &owner, &subscription).await;
    (owner, url, subscription, first)
}

/// An endpoint that answers 503 with `Retry-After`: its probe's retries wait twice the
/// tests' schedule (2, 4, 4 s), so that it is still the probe while a test looks.
fn failing_slowly_to_probe() -> Value {
    json!({"failTimes": 1000, "failStatus": 503, "retryAfter": 10})
}

#[tokio::test]
async fn a_failing_endpoints_backlog_waits_parked_and_is_delivered_once_it_answers_again() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let (owner, url, subscription, probe) =
        failing_subscription(&app, "parked", failing_slowly_to_probe()).await;
    let mut backlog = Vec::new();
    for _ in 0..5 {
        backlog.push(send_test(&app, &owner, &subscription).await);
    }
    for id in &backlog {
        delivery_when(&app, &owner, id, "parked", parked).await;
    }
    // Nothing queued for them: the retry queue holds the probe's next attempt (and perhaps a
    // settling), not one message per parked delivery.
    let queued = retry_queue_messages(&stack).await;
    assert!(queued <= 2, "{queued} messages on the retry queue for one probe");
    let (_, log) = app
        .call(
            "GET",
            &format!("/api/webhooks/{subscription}/deliveries?status=pending"),
            Some(&owner.access_token),
            None,
        )
        .await;
    assert_eq!(log["items"].as_array().map(Vec::len), Some(6), "parked deliveries are pending");

    // The endpoint answers again: a probe is delivered and the backlog follows it.
    receiver(&app, "parked", json!({})).await;
    let finished = |d: &Value| d["status"] != "pending";
    let first = delivery_when(&app, &owner, &probe, "the probe finished", finished).await;
    assert!(
        first["attempts"].as_array().is_some_and(|a| a.iter().all(|a| a["statusCode"].is_u64()))
    );
    for id in &backlog {
        let d = delivery_when(&app, &owner, id, "delivered", |d| d["status"] == "delivered").await;
        let attempts = d["attempts"].as_array().expect("attempts");
        assert!(
            attempts.iter().all(|a| a["statusCode"].is_u64()),
            "every attempt was sent (none recorded as not sent): {d}"
        );
    }
    let items = received(&app, &url).await;
    for id in &backlog {
        assert!(items.iter().any(|i| i["webhookId"] == id.as_str() && i["answeredStatus"] == 200));
    }
    let (_, view) = app
        .call("GET", &format!("/api/webhooks/{subscription}"), Some(&owner.access_token), None)
        .await;
    assert!(view["failingSince"].is_null(), "healthy again: {view}");
    stack.remove().await;
}

#[tokio::test]
async fn parked_deliveries_of_an_endpoint_that_never_recovers_fail_at_their_deadline() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let (owner, url, subscription, first) =
        failing_subscription(&app, "expiry", json!({"failTimes": 1000, "failStatus": 500})).await;
    let mut ids = vec![first];
    for _ in 0..10 {
        ids.push(send_test(&app, &owner, &subscription).await);
    }
    // The tests' schedule (1, 2, 2 s, and 4 s of grace) ends within 9 s of each delivery;
    // each probe's end makes the oldest parked delivery the next probe, and those past
    // their deadline fail unattempted.
    let mut unattempted = 0;
    for id in &ids {
        let d = delivery_when(&app, &owner, id, "failed", |d| d["status"] == "failed").await;
        let attempts = d["attempts"].as_array().expect("attempts");
        assert!(!attempts.is_empty(), "{d}");
        let last = &attempts[attempts.len() - 1];
        if last["statusCode"].is_null() {
            assert_eq!(attempts.len(), 1, "parked until it failed: {d}");
            assert!(
                last["error"].as_str().is_some_and(|e| e.contains("whole retry schedule")),
                "{d}"
            );
            unattempted += 1;
        }
    }
    assert!(unattempted >= 1, "some deliveries were never sent to the dead endpoint");
    let sent = received(&app, &url).await.len();
    assert!(sent < ids.len() * 4, "{sent} attempts for {} deliveries", ids.len());
    stack.remove().await;
}

#[tokio::test]
async fn turning_a_failing_subscription_off_fails_its_parked_deliveries() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let (owner, url, subscription, _) =
        failing_subscription(&app, "parked-off", failing_slowly_to_probe()).await;
    let later = send_test(&app, &owner, &subscription).await;
    delivery_when(&app, &owner, &later, "parked", parked).await;

    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/webhooks/{subscription}"),
            Some(&owner.access_token),
            Some(json!({"status": "disabled"})),
        )
        .await;
    assert_eq!(status, 200);
    let d = delivery_when(&app, &owner, &later, "failed", |d| d["status"] == "failed").await;
    assert_eq!(d["attemptCount"], 1);
    assert_eq!(d["attempts"][0]["error"], "not attempted: the subscription is disabled");
    assert!(
        received(&app, &url).await.iter().all(|i| i["webhookId"] != later.as_str()),
        "never sent"
    );
    stack.remove().await;
}

#[tokio::test]
async fn a_slow_endpoint_counts_as_failing_while_it_keeps_an_attempt_waiting() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.sandbox_tenant("webhooks-slow", None).await;
    // Answers 200 after 10 s: within the 15 s an attempt may take, but past the 5 s after
    // which the endpoint counts as failing.
    let url = receiver(&app, "slow", json!({"delayMs": 10_000})).await;
    let (subscription, _) = subscribe(&app, &owner, &url, json!(["*"])).await;

    let slow = send_test(&app, &owner, &subscription).await;
    failing(&app, &owner, &subscription).await;
    assert_eq!(delivery(&app, &owner, &slow).await["attemptCount"], 0, "still waiting");
    let behind = send_test(&app, &owner, &subscription).await;
    delivery_when(&app, &owner, &behind, "parked behind the slow attempt", parked).await;

    // The slow attempt is answered: delivered, the endpoint healthy, the parked one sent.
    let d = delivery_when(&app, &owner, &slow, "delivered", |d| d["status"] == "delivered").await;
    assert_eq!(d["attemptCount"], 1);
    let d = delivery_when(&app, &owner, &behind, "released", |d| d["status"] == "delivered").await;
    assert_eq!(d["attemptCount"], 1);
    let (_, view) = app
        .call("GET", &format!("/api/webhooks/{subscription}"), Some(&owner.access_token), None)
        .await;
    assert!(view["failingSince"].is_null(), "healthy again: {view}");
    stack.remove().await;
}
