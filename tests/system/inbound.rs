//! The WhatsApp channel and the inbound pipeline: Meta webhooks in, persisted first,
//! processed exactly once, readable through the API.

// NOTE: over 400 lines: the system tests of one capability, sharing its helpers and fixtures.

use adapters::store::messages::MessageStore;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use domain::ids::TenantId;
use domain::meta::{signature_header, signature_valid};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use switchboard_tests::{App, Emulator, Registered, Stack, email, eventually, fixture};

const APP_SECRET: &str = "fixture-app-secret-0123456789";
const VERIFY_TOKEN: &str = "vibecoding";
const PHONE_NUMBER_ID: &str = "106540352242922";

async fn with_cloud_channel(app: &App, phone_number_id: &str) -> Registered {
    app.cloud_tenant("inbound", phone_number_id, APP_SECRET, VERIFY_TOKEN).await
}

async fn post_signed(app: &App, tenant: &str, body: &str, secret: &str) -> (u16, Value) {
    let response = app
        .http
        .post(app.url(&format!("/api/whatsapp/webhook/{tenant}")))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature_header(secret.as_bytes(), body.as_bytes()))
        .body(body.to_owned())
        .send()
        .await
        .expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn raw_events(
    stack: &Stack,
    tenant: &str,
) -> Vec<std::collections::HashMap<String, AttributeValue>> {
    stack.tenant_items(&stack.resources.messages_table, tenant, "RAW#").await
}

async fn all_processed(stack: &Stack, tenant: &str, expected: usize) -> Option<()> {
    let events = raw_events(stack, tenant).await;
    (events.len() == expected && events.iter().all(|e| e.contains_key("outcome"))).then_some(())
}

/// (wamid, type) of every message the API shows, across conversations.
async fn api_messages(app: &App, token: &str) -> BTreeSet<(String, String)> {
    let mut seen = BTreeSet::new();
    let (status, conversations) =
        app.call("GET", "/api/conversations?limit=100", Some(token), None).await;
    assert_eq!(status, 200, "{conversations}");
    for conversation in conversations["items"].as_array().into_iter().flatten() {
        let id = conversation["id"].as_str().expect("id");
        let (status, messages) = app
            .call("GET", &format!("/api/conversations/{id}/messages?limit=100"), Some(token), None)
            .await;
        assert_eq!(status, 200);
        for m in messages["items"].as_array().into_iter().flatten() {
            seen.insert((
                m["wamid"].as_str().unwrap_or_default().to_owned(),
                m["type"].as_str().unwrap_or_default().to_owned(),
            ));
        }
    }
    seen
}

/// What one fixture must produce, read from the fixture itself.
#[derive(Default)]
struct Expected {
    messages: BTreeSet<(String, String)>,
    statuses: Vec<(String, String)>,
    templates: Vec<(String, String, String)>,
    other: Vec<String>,
}

fn expected(payload: &Value) -> Expected {
    let mut want = Expected::default();
    for change in payload["entry"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["changes"].as_array().into_iter().flatten())
    {
        let value = &change["value"];
        match change["field"].as_str() {
            Some("messages") => {
                for m in value["messages"].as_array().into_iter().flatten() {
                    want.messages.insert((
                        m["id"].as_str().expect("id").to_owned(),
                        m["type"].as_str().expect("type").to_owned(),
                    ));
                }
                for st in value["statuses"].as_array().into_iter().flatten() {
                    want.statuses.push((
                        st["id"].as_str().expect("id").to_owned(),
                        st["status"].as_str().expect("status").to_owned(),
                    ));
                }
                if value.get("errors").is_some() {
                    want.other.push("errors".to_owned());
                }
            }
            Some("message_template_status_update") => want.templates.push((
                value["message_template_name"].as_str().expect("name").to_owned(),
                value["message_template_language"].as_str().expect("language").to_owned(),
                value["event"].as_str().expect("event").to_owned(),
            )),
            Some(other) => want.other.push(other.to_owned()),
            None => panic!("a change without field"),
        }
    }
    want
}

/// Each fixture goes to a tenant of its own: Meta's examples reuse placeholder wamids
/// across message types, and one tenant rightly keeps one message per wamid.
#[tokio::test]
async fn every_inbound_fixture_lands_as_the_right_records() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let store =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone());
    let dir = switchboard_tests::workspace_root().join("tests/fixtures/meta/inbound");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    files.sort();
    assert!(files.len() >= 29, "every fixture is here");

    let mut posted = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let body = std::fs::read_to_string(path).expect("fixture");
        let payload: Value = serde_json::from_str(&body).expect("fixture is JSON");
        let owner = with_cloud_channel(&app, &format!("2000000000{i:05}")).await;
        let (status, response) = post_signed(&app, &owner.tenant_id, &body, APP_SECRET).await;
        assert_eq!(status, 200, "{}: {response}", path.display());
        posted.push((
            path.file_name().expect("name").to_string_lossy().into_owned(),
            owner,
            expected(&payload),
        ));
    }

    for (name, owner, want) in posted {
        let tenant = TenantId::parse(&owner.tenant_id).expect("tenant");
        eventually(60, &format!("{name} processed"), || all_processed(&stack, &owner.tenant_id, 1))
            .await;
        let outcome = raw_events(&stack, &owner.tenant_id).await[0]["outcome"]
            .as_s()
            .cloned()
            .unwrap_or_default();
        assert_eq!(outcome, "processed", "{name}");
        assert_eq!(
            api_messages(&app, &owner.access_token).await,
            want.messages,
            "{name}: messages with their types"
        );
        for (wamid, status) in &want.statuses {
            let (state, history) = store
                .deliveries()
                .state(&switchboard_tests::scope_of(&tenant), wamid)
                .await
                .expect("read")
                .expect("status stored");
            assert_eq!(&state, status, "{name}");
            assert_eq!(
                history.iter().map(|h| h.status.as_str()).collect::<Vec<_>>(),
                vec![status.as_str()],
                "{name}"
            );
        }
        for (template, language, event) in &want.templates {
            let stored = store
                .templates()
                .status(&switchboard_tests::scope_of(&tenant), template, language)
                .await
                .expect("read");
            assert_eq!(stored.as_deref(), Some(event.as_str()), "{name}");
        }
        let mut stored_other: Vec<String> = stack
            .items(&stack.resources.messages_table, &format!("TENANT#{tenant}"), "EVENT#")
            .await
            .iter()
            .filter_map(|i| i.get("field").and_then(|f| f.as_s().ok()).cloned())
            .collect();
        stored_other.sort();
        let mut want_other = want.other.clone();
        want_other.sort();
        assert_eq!(stored_other, want_other, "{name}: quality, account and error updates kept raw");
        for (wamid, status) in &want.statuses {
            let item = stack
                .tenant_items(
                    &stack.resources.messages_table,
                    &tenant.to_string(),
                    &format!("WAMID#{wamid}"),
                )
                .await;
            let raw: Value = serde_json::from_str(
                item[0][&format!("raw_{status}")].as_s().expect("raw status kept"),
            )
            .expect("json");
            assert_eq!(
                raw["id"],
                json!(wamid),
                "{name}: the status as Meta sent it, pricing and all"
            );
        }
        if name == "status_failed_131049.json" {
            let (wamid, _) = &want.statuses[0];
            let raw = stack
                .clients
                .dynamodb
                .get_item()
                .table_name(&stack.resources.messages_table)
                .key(
                    "pk",
                    AttributeValue::S(switchboard_tests::shard_pk(&tenant.to_string(), wamid)),
                )
                .key("sk", AttributeValue::S(format!("WAMID#{wamid}")))
                .send()
                .await
                .expect("get");
            let error: Value = serde_json::from_str(
                raw.item().and_then(|i| i.get("error")).and_then(|e| e.as_s().ok()).expect("error"),
            )
            .expect("json");
            assert_eq!(error["code"], 131049);
        }
    }
    stack.remove().await;
}

#[test]
fn every_signature_vector_verifies_and_any_change_fails() {
    let vectors: Value =
        serde_json::from_str(&fixture("meta/signature_vectors.json")).expect("json");
    for v in vectors["vectors"].as_array().expect("vectors") {
        let secret = v["app_secret"].as_str().expect("secret").as_bytes();
        let body = base64::engine::general_purpose::STANDARD
            .decode(v["raw_body_utf8_base64"].as_str().expect("b64"))
            .expect("b64");
        assert_eq!(body, v["raw_body"].as_str().expect("raw").as_bytes());
        let header = v["expected_header"].as_str().expect("header");
        assert!(signature_valid(secret, &body, Some(header)), "{}", v["name"]);
        assert_eq!(signature_header(secret, &body), header);
        let mut altered = body.clone();
        altered.push(b' ');
        assert!(!signature_valid(secret, &altered, Some(header)), "{}: altered body", v["name"]);
        assert!(
            !signature_valid(b"another secret", &body, Some(header)),
            "{}: other secret",
            v["name"]
        );
    }
}

#[tokio::test]
async fn the_verification_handshake_cases_pass() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, "100000000000001").await;
    let cases: Value = serde_json::from_str(&fixture("meta/verification.json")).expect("json");
    for case in cases["test_cases"].as_array().expect("cases") {
        let query: Vec<(String, String)> = case["query"]
            .as_object()
            .expect("query")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect();
        let response = app
            .http
            .get(app.url(&format!("/api/whatsapp/webhook/{}", owner.tenant_id)))
            .query(&query)
            .send()
            .await
            .expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.expect("body");
        match case["expected_status"].as_u64() {
            Some(200) => assert_eq!(
                (status, body.as_str()),
                (200, case["expected_body"].as_str().expect("body")),
                "{}",
                case["name"]
            ),
            _ => assert_eq!(status, 403, "{}", case["name"]),
        }
    }
    // A tenant without a channel, or that does not exist, verifies nothing.
    let stranger = app.get(&format!("/api/whatsapp/webhook/{}?hub.mode=subscribe&hub.challenge=1&hub.verify_token={VERIFY_TOKEN}", TenantId::generate())).await;
    assert_eq!(stranger.status(), 404);
    stack.remove().await;
}

#[tokio::test]
async fn unsigned_or_badly_signed_webhooks_store_and_queue_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, "100000000000002").await;
    let body = fixture("meta/inbound/text_message.json");

    let (status, _) = post_signed(&app, &owner.tenant_id, &body, "not the app secret").await;
    assert_eq!(status, 401);
    let unsigned = app
        .call_raw(
            "POST",
            &format!("/api/whatsapp/webhook/{}", owner.tenant_id),
            None,
            body.clone().into_bytes(),
        )
        .await;
    assert_eq!(unsigned.0, 401);
    let (status, _) = post_signed(&app, &TenantId::generate().to_string(), &body, APP_SECRET).await;
    assert_eq!(status, 401, "an unknown tenant has no secret to match");

    assert!(raw_events(&stack, &owner.tenant_id).await.is_empty(), "nothing stored");
    let queued = stack
        .clients
        .sqs
        .get_queue_attributes()
        .queue_url(&stack.resources.inbound_events_queue_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
        .send()
        .await
        .expect("attributes");
    let attrs = queued.attributes().expect("attributes");
    for name in [
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
        aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
    ] {
        assert_eq!(attrs.get(&name).map(String::as_str), Some("0"), "nothing queued ({name:?})");
    }
    stack.remove().await;
}

#[tokio::test]
async fn a_signed_body_that_is_not_json_is_stored_and_dead_lettered_with_its_reason() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, "100000000000003").await;
    let (status, _) = post_signed(&app, &owner.tenant_id, "{not json", APP_SECRET).await;
    assert_eq!(status, 200, "accepted: Meta must not retry it forever");

    let events = raw_events(&stack, &owner.tenant_id).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["outcome"].as_s().map(String::as_str), Ok("dead_lettered:malformed_json"));
    let dlq = stack.resources.dlq_url(&adapters::resources::INBOUND_EVENTS_QUEUE).to_owned();
    let received = stack
        .clients
        .sqs
        .receive_message()
        .queue_url(&dlq)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive");
    let message = received.messages().first().expect("dead-lettered");
    assert_eq!(
        message.message_attributes().and_then(|a| a.get("reason")).and_then(|r| r.string_value()),
        Some("malformed_json")
    );
    let pointer: Value = serde_json::from_str(message.body().expect("body")).expect("pointer");
    assert_eq!(pointer["tenantId"], owner.tenant_id);
    stack.remove().await;
}

#[tokio::test]
async fn the_same_webhook_three_times_is_one_message_and_statuses_only_move_forward() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, PHONE_NUMBER_ID).await;
    let tenant = TenantId::parse(&owner.tenant_id).expect("tenant");
    let body = fixture("meta/inbound/text_message.json");
    for _ in 0..3 {
        assert_eq!(post_signed(&app, &owner.tenant_id, &body, APP_SECRET).await.0, 200);
    }

    // read arrives before delivered, and sent last.
    let status = |wamid: &str, status: &str, ts: &str| {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp", "metadata": {"phone_number_id": PHONE_NUMBER_ID},
            "statuses": [{"id": wamid, "status": status, "timestamp": ts, "recipient_id": "16505551234"}]}}]}]})
        .to_string()
    };
    for (st, ts) in [("read", "1751000030"), ("delivered", "1751000020"), ("sent", "1751000010")] {
        assert_eq!(
            post_signed(&app, &owner.tenant_id, &status("wamid.OUT1", st, ts), APP_SECRET).await.0,
            200
        );
    }
    eventually(30, "six webhooks processed", || all_processed(&stack, &owner.tenant_id, 6)).await;

    let messages = api_messages(&app, &owner.access_token).await;
    assert_eq!(messages.len(), 1, "three deliveries, one message: {messages:?}");
    let (status_now, history) =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone())
            .deliveries()
            .state(&switchboard_tests::scope_of(&tenant), "wamid.OUT1")
            .await
            .expect("read")
            .expect("state");
    assert_eq!(status_now, "read");
    let order: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert_eq!(order, vec!["sent", "delivered", "read"], "history in event time order");

    let (_, conversations) =
        app.call("GET", "/api/conversations", Some(&owner.access_token), None).await;
    let conversation = &conversations["items"][0];
    assert_eq!(conversation["status"], "open");
    assert_eq!(conversation["contactWaId"], "+16505551234");
    assert_eq!(conversation["contactName"], "Sheena Nelson");
    assert!(conversation["serviceWindowEndsAt"].is_string());

    // Usage counted once.
    let usage =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone())
            .usage()
            .days(&switchboard_tests::scope_of(&tenant), "2000-01-01", "2100-01-01")
            .await
            .expect("usage");
    let inbound: i64 = usage.values().filter_map(|c| c.get("inbound").copied()).sum();
    let read: i64 = usage.values().filter_map(|c| c.get("read").copied()).sum();
    assert_eq!((inbound, read), (1, 1));
    stack.remove().await;
}

#[tokio::test]
async fn processing_a_record_twice_as_after_a_crash_before_delete_changes_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let tenant = TenantId::generate();
    let store =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone());
    let event_id = store
        .raw_events()
        .put(
            &switchboard_tests::scope_of(&tenant),
            fixture("meta/inbound/image_message.json").as_bytes(),
            "test",
        )
        .await
        .expect("raw");
    let deps = webhook_processor::Deps::new(&stack.clients, &stack.resources);
    let body = json!({"tenantId": tenant, "eventId": event_id}).to_string();
    let event = switchboard_tests::sqs_event(Some("m-1"), Some(&body));

    let first = webhook_processor::handle(&deps, event.clone()).await;
    let second = webhook_processor::handle(&deps, event).await;
    assert!(first.batch_item_failures.is_empty() && second.batch_item_failures.is_empty());

    let items =
        stack.tenant_items(&stack.resources.messages_table, &tenant.to_string(), "MSG#").await;
    assert_eq!(items.len(), 1, "one message after two runs");

    // Partner events were emitted both times with the same ids.
    let ids: Vec<String> = stack
        .drain_json(&stack.resources.partner_events_queue_url)
        .await
        .iter()
        .map(|e| e["id"].as_str().unwrap_or_default().to_owned())
        .collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(
        (ids.len(), unique.len()),
        (4, 2),
        "conversation.created and message.received, twice each: {ids:?}"
    );
    stack.remove().await;
}

#[tokio::test]
async fn a_poisoned_record_alone_is_retried_then_dead_lettered() {
    let stack = Stack::new(Emulator::shared()).await;
    // NOTE: the queue redelivers after its visibility timeout (180 s in the definitions);
    // the test shortens it so that the receive limit is reached in seconds.
    stack
        .clients
        .sqs
        .set_queue_attributes()
        .queue_url(&stack.resources.inbound_events_queue_url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .expect("visibility");
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, PHONE_NUMBER_ID).await;
    let sqs = &stack.clients.sqs;
    sqs.send_message()
        .queue_url(&stack.resources.inbound_events_queue_url)
        .message_body("not a pointer")
        .send()
        .await
        .expect("send");
    assert_eq!(
        post_signed(&app, &owner.tenant_id, &fixture("meta/inbound/text_message.json"), APP_SECRET)
            .await
            .0,
        200
    );

    let dlq = stack.resources.dlq_url(&adapters::resources::INBOUND_EVENTS_QUEUE).to_owned();
    let dead = eventually(60, "the poison record in the DLQ", || async {
        let out = sqs.receive_message().queue_url(&dlq).send().await.ok()?;
        out.messages().first().and_then(|m| m.body().map(str::to_owned))
    })
    .await;
    assert_eq!(dead, "not a pointer");
    eventually(10, "the good record processed", || all_processed(&stack, &owner.tenant_id, 1))
        .await;
    assert_eq!(api_messages(&app, &owner.access_token).await.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn another_tenants_conversations_and_messages_are_404() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = with_cloud_channel(&app, PHONE_NUMBER_ID).await;
    let b = app.register(&email("other")).await;
    assert_eq!(
        post_signed(&app, &a.tenant_id, &fixture("meta/inbound/text_message.json"), APP_SECRET)
            .await
            .0,
        200
    );
    eventually(30, "processed", || all_processed(&stack, &a.tenant_id, 1)).await;

    let (_, conversations) =
        app.call("GET", "/api/conversations", Some(&a.access_token), None).await;
    let conversation = conversations["items"][0]["id"].as_str().expect("conversation").to_owned();
    let (_, messages) = app
        .call(
            "GET",
            &format!("/api/conversations/{conversation}/messages"),
            Some(&a.access_token),
            None,
        )
        .await;
    let message = messages["items"][0]["id"].as_str().expect("message").to_owned();
    let (status, one) =
        app.call("GET", &format!("/api/messages/{message}"), Some(&a.access_token), None).await;
    assert_eq!(
        (status, one["direction"].as_str(), one["status"].as_str()),
        (200, Some("inbound"), Some("received"))
    );

    for path in [
        format!("/api/conversations/{conversation}"),
        format!("/api/conversations/{conversation}/messages"),
        format!("/api/messages/{message}"),
    ] {
        assert_eq!(app.call("GET", &path, Some(&b.access_token), None).await.0, 404, "{path}");
    }
    let (_, b_list) = app.call("GET", "/api/conversations", Some(&b.access_token), None).await;
    assert_eq!(b_list["items"], json!([]));
    stack.remove().await;
}

#[tokio::test]
async fn channel_secrets_are_sealed_per_tenant_and_shown_masked() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = with_cloud_channel(&app, "100000000000009").await;
    let b = app.register(&email("b")).await;

    let (status, channel) =
        app.call("GET", "/api/whatsapp/channel", Some(&a.access_token), None).await;
    assert_eq!(status, 200);
    assert_eq!(channel["accessToken"], "••••9876");
    assert_eq!(channel["appSecret"], "••••6789");
    assert_eq!(channel["phoneNumberId"], "100000000000009");
    assert_eq!(channel["healthStatus"], "unknown");
    let table = stack.tenants_table_text().await;
    for secret in ["EAAG-fake-access-token-9876", APP_SECRET, VERIFY_TOKEN] {
        assert!(!table.contains(secret), "{secret} stored in clear");
    }

    // The same phone number cannot be connected by another tenant.
    let (status, body) = app
        .call("PUT", "/api/whatsapp/channel", Some(&b.access_token),
              Some(json!({"provider": "cloud", "phoneNumberId": "100000000000009", "wabaId": "1", "accessToken": "x", "appSecret": "y", "verifyToken": "z"})))
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("phone_number_in_use")));

    // A's sealed secrets copied into B's channel do not open for B.
    let envelopes = adapters::aws::envelope::Envelopes::new(
        stack.clients.kms.clone(),
        stack.resources.kms_key_id.clone(),
    );
    let channels = adapters::store::channels::ChannelStore::new(
        stack.clients.dynamodb.clone(),
        stack.resources.tenants_table.clone(),
    );
    let a_id = TenantId::parse(&a.tenant_id).expect("id");
    let sealed = channels
        .get_for(&a_id)
        .await
        .expect("read")
        .expect("channel")
        .sealed_secrets
        .expect("sealed");
    assert!(envelopes.open(&a_id, &sealed).await.is_ok());
    let opened_as_b = envelopes.open(&TenantId::parse(&b.tenant_id).expect("id"), &sealed).await;
    assert!(opened_as_b.is_err(), "the encryption context binds the ciphertext to its tenant");

    // Bad input changes nothing; delete removes it.
    for body in [
        json!({"provider": "carrier-pigeon"}),
        json!({"provider": "cloud", "phoneNumberId": "abc"}),
        json!({"provider": "gateway", "apiUrl": "ftp://x", "apiKey": "k", "webhookSecret": "s"}),
    ] {
        assert_eq!(
            app.call("PUT", "/api/whatsapp/channel", Some(&a.access_token), Some(body)).await.0,
            422
        );
    }
    assert_eq!(
        app.call("GET", "/api/whatsapp/channel", Some(&a.access_token), None).await.1["appSecret"],
        "••••6789"
    );
    let (status, checked) =
        app.call("POST", "/api/whatsapp/channel/health-check", Some(&a.access_token), None).await;
    assert_eq!(
        (status, checked["healthStatus"].as_str()),
        (200, Some("unhealthy")),
        "the Graph API is not reachable here"
    );
    assert!(checked["lastHealthCheck"].is_string());
    assert_eq!(
        app.call("DELETE", "/api/whatsapp/channel", Some(&a.access_token), None).await.0,
        204
    );
    assert_eq!(app.call("GET", "/api/whatsapp/channel", Some(&a.access_token), None).await.0, 404);
    let (status, _) = app
        .call("PUT", "/api/whatsapp/channel", Some(&b.access_token),
              Some(json!({"provider": "cloud", "phoneNumberId": "100000000000009", "wabaId": "1", "accessToken": "x", "appSecret": "y", "verifyToken": "z"})))
        .await;
    assert_eq!(status, 200, "the number is free again");
    stack.remove().await;
}

/// An API Gateway v2 event for a signed POST to the tenant's webhook route.
fn webhook_request(tenant: &str, body: &str) -> lambda_http::Request {
    meta_event(tenant, body, true)
}

/// Meta's webhook as the function's URL delivers it: no route key of its own, no path
/// parameters.
fn function_url_request(tenant: &str, body: &str) -> lambda_http::Request {
    meta_event(tenant, body, false)
}

/// A signed webhook of Meta's for `tenant`, as API Gateway or the function's URL passes it.
fn meta_event(tenant: &str, body: &str, through_api_gateway: bool) -> lambda_http::Request {
    let path = format!("/api/whatsapp/webhook/{tenant}");
    let mut event = json!({
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "",
        "headers": {"content-type": "application/json", "x-hub-signature-256": signature_header(APP_SECRET.as_bytes(), body.as_bytes())},
        "requestContext": {"http": {"method": "POST", "path": path, "sourceIp": "203.0.113.1"},
                           "routeKey": "$default", "requestId": "r", "stage": "$default"},
        "body": body, "isBase64Encoded": false
    });
    if through_api_gateway {
        let key = json!("POST /api/whatsapp/webhook/{tenantId}");
        event["routeKey"] = key.clone();
        event["requestContext"]["routeKey"] = key;
        event["pathParameters"] = json!({"tenantId": tenant});
    }
    lambda_http::request::from_str(&event.to_string()).expect("event")
}

/// The figure BENCHMARKS.md records as "AWS requests per inbound message": every request
/// the webhook function and the processor make for one new text message, counted by an
/// SDK interceptor. A change in these numbers is a change in cost; update both.
#[tokio::test]
async fn aws_requests_per_inbound_message_are_counted() {
    use adapters::aws::envelope::Envelopes;
    use adapters::channel::{Channels, SandboxCredentials};
    use adapters::store::channels::ChannelStore;
    use std::time::Instant;
    use switchboard_tests::{RequestCounter, cost};

    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, "300000000000001").await;
    // The app's own poller would consume the queue: stop it (its long poll ends within 1 s).
    drop(app);
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let counter = RequestCounter::default();
    let clients = Emulator::shared().counted_clients(&counter).await;
    let r = &stack.resources;
    let channels = Channels::new(
        ChannelStore::new(clients.dynamodb.clone(), r.tenants_table.clone()),
        Envelopes::new(clients.kms.clone(), r.kms_key_id.clone()),
        SandboxCredentials::default(),
    );
    let store = MessageStore::new(clients.dynamodb.clone(), r.messages_table.clone());
    let ingest = meta_webhook::Deps::new(
        channels,
        store.clone(),
        clients.sqs.clone(),
        r.inbound_events_queue_url.clone(),
        r.dlq_url(&adapters::resources::INBOUND_EVENTS_QUEUE).to_owned(),
    );
    let processor = webhook_processor::Deps::new(&clients, r);
    // Compact, as Meta sends it (the fixture is indented for reading): the raw item's size,
    // and so its write units, are a real webhook's.
    let message = |n: u32| {
        let text = fixture("meta/inbound/text_message.json").replace(
            "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
            &format!("wamid.count{n}"),
        );
        serde_json::from_str::<Value>(&text).expect("fixture").to_string()
    };

    let started = Instant::now();
    let cold = meta_webhook::handle(&ingest, webhook_request(&owner.tenant_id, &message(1)))
        .await
        .expect("ingest");
    assert_eq!(cold.status(), 200);
    let cold_ingest = counter.take();
    cost::record("inbound.ingest.cold", &counter.taken_calls(), started.elapsed(), 1);
    let started = Instant::now();
    let warm = meta_webhook::handle(&ingest, webhook_request(&owner.tenant_id, &message(2)))
        .await
        .expect("ingest");
    assert_eq!(warm.status(), 200);
    let warm_ingest = counter.take();
    cost::record("inbound.ingest.warm", &counter.taken_calls(), started.elapsed(), 1);
    // The same through the function's URL (no API Gateway): routed and stored alike.
    let via_url =
        meta_webhook::handle(&ingest, function_url_request(&owner.tenant_id, &message(3)))
            .await
            .expect("ingest");
    assert_eq!(via_url.status(), 200);
    assert_eq!(counter.take(), warm_ingest, "the function URL's webhook costs the same");

    // The processor, for the first message (new contact) and the second (known contact).
    let mut per_message = Vec::new();
    let mut known_contact_calls = Vec::new();
    for step in ["inbound.process.new_contact", "inbound.process.known_contact"] {
        let event = stack.take_event(&r.inbound_events_queue_url, 1).await;
        counter.take();
        let started = Instant::now();
        assert!(webhook_processor::handle(&processor, event).await.batch_item_failures.is_empty());
        per_message.push(counter.take());
        known_contact_calls = counter.taken_calls();
        cost::record(step, &known_contact_calls, started.elapsed(), 1);
    }
    cost::record_items(&stack).await;

    println!("ingest, cold: {cold_ingest:?}");
    println!("ingest, warm: {warm_ingest:?}");
    println!("processor, new contact: {:?}", per_message[0]);
    println!("processor, known contact: {:?}", per_message[1]);
    let expected = |pairs: &[(&str, u32)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    assert_eq!(
        cold_ingest,
        expected(&[
            ("DynamoDB.GetItem", 1),
            ("DynamoDB.PutItem", 1),
            ("KMS.Decrypt", 1),
            ("SQS.SendMessage", 1)
        ])
    );
    assert_eq!(
        warm_ingest,
        expected(&[("DynamoDB.PutItem", 1), ("SQS.SendMessage", 1)]),
        "secrets cached"
    );
    // Raw event, wamid, contact (and a known contact's conversation, for its window); one
    // transaction (wamid, message, conversation, usage, and a new contact); the event's
    // outcome; its partner events.
    let processing = |reads: u32| {
        expected(&[
            ("DynamoDB.GetItem", reads),
            ("DynamoDB.TransactWriteItems", 1),
            ("DynamoDB.UpdateItem", 1),
            ("SQS.SendMessageBatch", 1),
        ])
    };
    assert_eq!(per_message[0], processing(3));
    assert_eq!(per_message[1], processing(4));
    let transaction_items = |calls: &[cost::Call]| {
        calls
            .iter()
            .find(|c| c.op == "DynamoDB.TransactWriteItems")
            .and_then(|c| c.request["TransactItems"].as_array().map(Vec::len))
    };
    assert_eq!(transaction_items(&known_contact_calls), Some(4), "a known contact is not written");
    stack.remove().await;
}

#[tokio::test]
async fn the_sandbox_makes_a_customer_write_to_a_sandbox_tenant() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let sandbox_url = app.sandbox_url.clone();

    let owner = app.register(&email("sandboxed")).await;
    let (status, _) = app
        .call(
            "PUT",
            "/api/whatsapp/channel",
            Some(&owner.access_token),
            Some(json!({"provider": "sandbox"})),
        )
        .await;
    assert_eq!(status, 200);

    let written = app
        .http
        .post(format!("{sandbox_url}/_sandbox/inbound"))
        .json(&json!({"tenantId": owner.tenant_id, "from": "+15551234567", "text": "Hello from the sandbox"}))
        .send()
        .await
        .expect("sandbox inbound");
    assert_eq!(written.status(), 202);
    let wamid =
        written.json::<Value>().await.expect("json")["wamid"].as_str().expect("wamid").to_owned();

    eventually(30, "the message processed", || all_processed(&stack, &owner.tenant_id, 1)).await;
    let messages = api_messages(&app, &owner.access_token).await;
    assert_eq!(messages, BTreeSet::from([(wamid, "text".to_owned())]));
    let (_, conversations) =
        app.call("GET", "/api/conversations", Some(&owner.access_token), None).await;
    assert_eq!(conversations["items"][0]["lastMessagePreview"], "Hello from the sandbox");

    let refused = app
        .http
        .post(format!("{sandbox_url}/_sandbox/inbound"))
        .json(&json!({"tenantId": owner.tenant_id, "from": "555", "text": "x"}))
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 422);
    stack.remove().await;
}

#[tokio::test]
async fn an_operator_replays_stored_webhooks_and_nothing_is_applied_twice() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, PHONE_NUMBER_ID).await;
    assert_eq!(
        post_signed(&app, &owner.tenant_id, &fixture("meta/inbound/text_message.json"), APP_SECRET)
            .await
            .0,
        200
    );
    eventually(30, "processed", || all_processed(&stack, &owner.tenant_id, 1)).await;

    let operator = app.operator_token(&stack).await;
    let path = format!("/api/admin/tenants/{}/webhook-events/replay", owner.tenant_id);

    let (status, _) = app
        .call(
            "POST",
            &path,
            Some(&owner.access_token),
            Some(json!({"since": "2000-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(status, 403, "tenant admins do not replay");
    let (status, body) =
        app.call("POST", &path, Some(&operator), Some(json!({"since": "yesterday"}))).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("since")));
    let (status, body) = app
        .call("POST", &path, Some(&operator), Some(json!({"since": "2000-01-01T00:00:00Z"})))
        .await;
    assert_eq!((status, body["queued"].as_u64()), (202, Some(1)));
    let (status, body) = app
        .call("POST", &path, Some(&operator), Some(json!({"since": "2100-01-01T00:00:00Z"})))
        .await;
    assert_eq!((status, body["queued"].as_u64()), (202, Some(0)));

    // Wait for the replayed record to be consumed; the message stays single.
    eventually(30, "the replay consumed", || async {
        let attrs = stack
            .clients
            .sqs
            .get_queue_attributes()
            .queue_url(&stack.resources.inbound_events_queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .ok()?;
        let a = attrs.attributes()?;
        let pending: u32 = [
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages,
            aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
        ]
        .iter()
        .filter_map(|k| a.get(k)?.parse::<u32>().ok())
        .sum();
        (pending == 0).then_some(())
    })
    .await;
    assert_eq!(api_messages(&app, &owner.access_token).await.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn a_large_webhook_is_stored_compressed_and_still_processed() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = with_cloud_channel(&app, PHONE_NUMBER_ID).await;
    let mut payload: Value =
        serde_json::from_str(&fixture("meta/inbound/text_message.json")).expect("json");
    // Meta allows bodies up to 3 MB; a DynamoDB item holds 400 KB.
    payload["entry"][0]["changes"][0]["value"]["padding"] = json!("x".repeat(1024 * 1024));
    let body = payload.to_string();
    assert!(body.len() > 1_000_000);

    assert_eq!(post_signed(&app, &owner.tenant_id, &body, APP_SECRET).await.0, 200);
    eventually(30, "processed", || all_processed(&stack, &owner.tenant_id, 1)).await;
    let raw = raw_events(&stack, &owner.tenant_id).await;
    assert!(raw[0].contains_key("bodyGzip") && !raw[0].contains_key("body"), "stored compressed");
    let tenant = TenantId::parse(&owner.tenant_id).expect("tenant");
    let event_id = raw[0]["sk"].as_s().expect("sk").trim_start_matches("RAW#").to_owned();
    let stored =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone())
            .raw_events()
            .get(&switchboard_tests::scope_of(&tenant), &event_id)
            .await
            .expect("read")
            .expect("stored");
    assert_eq!(stored, body.as_bytes(), "the exact bytes come back");
    assert_eq!(api_messages(&app, &owner.access_token).await.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn the_platform_webhook_routes_each_change_to_the_tenant_of_its_phone_number() {
    use switchboard_tests::{PLATFORM_APP_SECRET, PLATFORM_VERIFY_TOKEN};
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = with_cloud_channel(&app, "400000000000001").await;
    let b = with_cloud_channel(&app, "400000000000002").await;
    let change = |phone: &str, wamid: &str| {
        json!({"field": "messages", "value": {"messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550000000", "phone_number_id": phone},
            "messages": [{"from": "16505551234", "id": wamid, "timestamp": "1751000000", "type": "text", "text": {"body": "hi"}}]}})
    };
    let payload = json!({"object": "whatsapp_business_account", "entry": [
        {"id": "waba", "changes": [change("400000000000001", "wamid.A"), change("400000000000002", "wamid.B")]},
        {"id": "waba", "changes": [change("499999999999999", "wamid.NOBODY")]}
    ]})
    .to_string();

    let post = |secret: &str| {
        app.http
            .post(app.url("/api/whatsapp/webhook"))
            .header("x-hub-signature-256", signature_header(secret.as_bytes(), payload.as_bytes()))
            .body(payload.clone())
            .send()
    };
    assert_eq!(post("wrong").await.expect("request").status(), 401);
    assert_eq!(post(PLATFORM_APP_SECRET).await.expect("request").status(), 200);

    eventually(30, "A processed", || all_processed(&stack, &a.tenant_id, 1)).await;
    eventually(30, "B processed", || all_processed(&stack, &b.tenant_id, 1)).await;
    assert_eq!(
        api_messages(&app, &a.access_token).await,
        BTreeSet::from([("wamid.A".to_owned(), "text".to_owned())])
    );
    assert_eq!(
        api_messages(&app, &b.access_token).await,
        BTreeSet::from([("wamid.B".to_owned(), "text".to_owned())])
    );
    let platform = raw_events(&stack, meta_webhook::PLATFORM_PARTITION).await;
    assert_eq!(platform.len(), 1, "the original body is kept");
    assert_eq!(platform[0]["outcome"].as_s().map(String::as_str), Ok("routed; 1 changes unrouted"));

    let verified = app
        .get(&format!("/api/whatsapp/webhook?hub.mode=subscribe&hub.challenge=42&hub.verify_token={PLATFORM_VERIFY_TOKEN}"))
        .await;
    assert_eq!(
        (verified.status().as_u16(), verified.text().await.expect("body")),
        (200, "42".to_owned())
    );
    stack.remove().await;
}

#[tokio::test]
async fn a_gateway_endpoint_delivers_events_signed_with_its_webhook_secret() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("gateway")).await;
    let (status, channel) = app
        .call("PUT", "/api/whatsapp/channel", Some(&owner.access_token),
              Some(json!({"provider": "gateway", "apiUrl": "http://127.0.0.1:9/gateway", "apiKey": "gw-key-1234", "webhookSecret": "gw-secret-5678"})))
        .await;
    assert_eq!(status, 200, "{channel}");
    assert_eq!(channel["webhookSecret"], "••••5678");
    let endpoint = channel["endpointId"].as_str().expect("endpoint id").to_owned();
    let path = format!("/api/whatsapp/webhook/{}/{endpoint}", owner.tenant_id);
    let body = fixture("meta/inbound/text_message.json");
    let send = |secret: &str, path: String| {
        app.http
            .post(app.url(&path))
            .header("x-hub-signature-256", signature_header(secret.as_bytes(), body.as_bytes()))
            .body(body.clone())
            .send()
    };

    assert_eq!(
        send("gw-secret-5678", format!("/api/whatsapp/webhook/{}/gw_other", owner.tenant_id))
            .await
            .expect("request")
            .status(),
        401
    );
    assert_eq!(send("wrong secret", path.clone()).await.expect("request").status(), 401);
    assert!(raw_events(&stack, &owner.tenant_id).await.is_empty());
    assert_eq!(send("gw-secret-5678", path).await.expect("request").status(), 200);
    eventually(30, "processed", || all_processed(&stack, &owner.tenant_id, 1)).await;
    assert_eq!(api_messages(&app, &owner.access_token).await.len(), 1);
    stack.remove().await;
}

#[tokio::test]
async fn the_platform_app_credentials_are_read_from_secrets_manager() {
    use secrecy::ExposeSecret;
    let stack = Stack::new(Emulator::shared()).await;
    let secret = stack
        .clients
        .secrets
        .create_secret()
        .name(format!("{}-platform-meta", stack.prefix))
        .secret_string(r#"{"appSecret":"platform-secret","verifyToken":""}"#)
        .send()
        .await
        .expect("secret");
    let app =
        meta_webhook::PlatformApp::load_from_secret(&stack.clients, secret.arn().expect("arn"))
            .await
            .expect("load");
    assert_eq!(
        app.app_secret.as_ref().map(|s| s.expose_secret().to_owned()),
        Some("platform-secret".to_owned())
    );
    assert!(app.verify_token.is_none(), "an empty field is unset: the route answers 404");
    stack.remove().await;
}

/// Statuses in order cost one write each (recorded and the state moved forward together);
/// one that comes after a later one is recorded too (a refused write and a second one),
/// and the state stays where it was.
#[tokio::test]
async fn each_status_in_order_is_one_write_and_a_late_one_never_moves_the_state_back() {
    use adapters::store::messages::MessageStore;
    use domain::meta::{DeliveryStatus, StatusUpdate};
    use switchboard_tests::RequestCounter;

    let stack = Stack::new(Emulator::shared()).await;
    let counter = RequestCounter::default();
    let clients = Emulator::shared().counted_clients(&counter).await;
    let store = MessageStore::new(clients.dynamodb.clone(), stack.resources.messages_table.clone());
    let tenant = domain::ids::TenantId::generate();
    let scope = switchboard_tests::scope_of(&tenant);
    let status = |status: DeliveryStatus, timestamp: i64| StatusUpdate {
        phone_number_id: None,
        wamid: "wamid.ordered".into(),
        status,
        recipient: None,
        timestamp,
        error: None,
        raw: json!({"status": status.as_str()}),
    };
    let updates = |counts: std::collections::BTreeMap<String, u32>| {
        // A status other than `sent` also counts in the day's usage: one more write.
        counts.get("DynamoDB.UpdateItem").copied().unwrap_or(0)
    };
    let deliveries = store.deliveries();
    assert!(deliveries.apply(&scope, &status(DeliveryStatus::Sent, 100)).await.expect("sent").new);
    assert_eq!(updates(counter.take()), 1);
    assert!(deliveries.apply(&scope, &status(DeliveryStatus::Read, 300)).await.expect("read").new);
    assert_eq!(updates(counter.take()), 2, "the status, and the day's read count");
    let late = deliveries.apply(&scope, &status(DeliveryStatus::Delivered, 200)).await;
    assert!(late.expect("delivered").new, "recorded, and counted once");
    assert_eq!(updates(counter.take()), 3, "refused, recorded, counted");
    let again = deliveries.apply(&scope, &status(DeliveryStatus::Delivered, 200)).await;
    assert!(!again.expect("again").new, "a repeat is not new");
    counter.take();
    let (state, history) =
        deliveries.state(&scope, "wamid.ordered").await.expect("state").expect("stored");
    assert_eq!(state, "read", "a late status never moves the state back");
    let seen: Vec<&str> = history.iter().map(|h| h.status.as_str()).collect();
    assert!(["sent", "delivered", "read"].iter().all(|s| seen.contains(s)), "{seen:?}");
    stack.remove().await;
}
