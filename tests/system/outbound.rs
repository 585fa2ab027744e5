//! Outbound messages: the API's request shape and the Cloud API's.

// NOTE: over 400 lines: the system tests of one capability, sharing its helpers and fixtures.

use domain::outbound::OutboundMessage;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use switchboard_tests::workspace_root;

/// How a partner writes, through `POST /api/messages`, the message a Cloud API request
/// fixture sends: camelCase at our edge, Meta's objects otherwise.
fn as_api_request(name: &str, graph: &Value) -> Value {
    let kind = graph["type"].as_str().expect("type");
    let to = graph["to"].as_str().expect("to").trim_start_matches('+');
    let object = &graph[kind];
    let content = match kind {
        "text" => {
            json!({"body": object["body"], "previewUrl": object.get("preview_url").cloned().unwrap_or(json!(false))})
        }
        "template" => {
            json!({"name": object["name"], "language": object["language"]["code"], "components": object["components"]})
        }
        "reaction" => json!({"messageId": object["message_id"], "emoji": object["emoji"]}),
        _ => object.clone(),
    };
    let mut request = json!({"to": format!("+{to}"), "type": kind, "clientMessageId": format!("fixture-{name}"), kind: content});
    if let Some(reply) = graph.pointer("/context/message_id") {
        request["context"] = json!({"messageId": reply});
    }
    request
}

/// The fixture as Meta reads it: `to` with its `+`, and the defaults spelt out.
fn normalised(graph: &Value) -> Value {
    let mut g = graph.clone();
    let to = g["to"].as_str().expect("to").trim_start_matches('+').to_owned();
    g["to"] = json!(format!("+{to}"));
    g["recipient_type"] = json!("individual");
    if g["type"] == "text" && g["text"].get("preview_url").is_none() {
        g["text"]["preview_url"] = json!(false);
    }
    g
}

/// Every `send_*.request.json` fixture: its name and the Cloud API request it holds.
fn send_fixtures() -> Vec<(String, Value)> {
    let dir = workspace_root().join("tests/fixtures/meta/outbound");
    let mut fixtures: Vec<(String, Value)> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            (name.starts_with("send_") && name.ends_with(".request.json")).then(|| {
                let text = std::fs::read_to_string(entry.path()).expect("read");
                (name, serde_json::from_str(&text).expect("json"))
            })
        })
        .collect();
    fixtures.sort_by(|a, b| a.0.cmp(&b.0));
    fixtures
}

#[test]
fn every_send_fixture_is_expressible_through_the_api_and_renders_back_the_same() {
    let mut checked = 0;
    for (name, graph) in send_fixtures() {
        let request = as_api_request(&name, &graph);
        let message = OutboundMessage::parse(&request).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(message.graph_request(), normalised(&graph), "{name}");
        assert_eq!(message.is_template(), graph["type"] == "template", "{name}");
        checked += 1;
    }
    assert_eq!(checked, 11, "every send fixture");
}

/// Each error fixture, classified as ERRORS.md says a sender must treat it.
#[test]
fn every_error_fixture_is_classified_as_the_error_reference_says() {
    use domain::meta::{ErrorClass, classify_error, graph_error};
    let expected = [
        ("error_130429_rate_limit_hit.json", 130429, ErrorClass::Throttled),
        ("error_131056_pair_rate_limit.json", 131056, ErrorClass::Throttled),
        ("error_131000_something_went_wrong.json", 131000, ErrorClass::Transient),
        ("error_131016_service_unavailable.json", 131016, ErrorClass::Transient),
        ("error_131026_message_undeliverable.json", 131026, ErrorClass::Permanent),
        ("error_131047_reengagement.json", 131047, ErrorClass::Permanent),
        ("error_132000_param_count_mismatch.json", 132000, ErrorClass::Permanent),
        ("error_132001_template_does_not_exist.json", 132001, ErrorClass::Permanent),
        ("error_190_access_token_expired.json", 190, ErrorClass::Token),
        ("error_190_graph_api_doc_sample.json", 190, ErrorClass::Token),
        ("error_190_invalid_oauth_token.json", 190, ErrorClass::Token),
    ];
    let dir = workspace_root().join("tests/fixtures/meta/outbound");
    let on_disk = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("error_"))
        .count();
    assert_eq!(on_disk, expected.len(), "every error fixture is classified here");
    for (file, code, class) in expected {
        let body: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join(file)).expect("read"))
                .expect("json");
        let (parsed, title) =
            graph_error(&body).unwrap_or_else(|| panic!("{file}: not a Graph error"));
        assert_eq!(parsed, code, "{file}");
        assert!(!title.is_empty(), "{file}: a reason to show");
        assert_eq!(classify_error(code), class, "{file}");
    }
    // Codes met only on the webhook path, and unknown ones, fail the message.
    assert_eq!(classify_error(131049), ErrorClass::Permanent);
    assert_eq!(classify_error(999_999), ErrorClass::Permanent);
}

// ---------------------------------------------------------------- through the local stack

use switchboard_tests::{App, Emulator, Registered, Stack, email, eventually};

/// A tenant whose channel is the sandbox.
async fn sandbox_tenant(app: &App, name: &str) -> Registered {
    app.sandbox_tenant(name, None).await
}

/// The customer `from` writes to the tenant (through the sandbox, signed as Meta would),
/// which opens the 24-hour window; returns once the message is in a conversation.
async fn customer_writes(app: &App, owner: &Registered, from: &str) {
    app.customer_writes(owner, from).await;
    eventually(30, "the customer's message stored", || async {
        let (_, list) =
            app.call("GET", "/api/conversations?limit=100", Some(&owner.access_token), None).await;
        list["items"]
            .as_array()?
            .iter()
            .any(|c| c["contactWaId"] == from && c["serviceWindowEndsAt"].is_string())
            .then_some(())
    })
    .await;
}

/// What the sandbox received for `to`, in order.
async fn sandbox_sent(app: &App, to: &str) -> Vec<Value> {
    app.sandbox_sent(to).await
}

async fn fault(app: &App, to: &str, code: i64, times: u32) {
    let response = app
        .http
        .post(format!("{}/_sandbox/faults", app.sandbox_url))
        .json(&json!({"to": to, "code": code, "times": times}))
        .send()
        .await
        .expect("sandbox faults");
    assert_eq!(response.status(), 201);
}

/// The message once its status is `wanted`.
async fn message_when(app: &App, token: &str, id: &str, wanted: &str) -> Value {
    eventually(40, &format!("message {id} {wanted}"), || async {
        let (status, message) =
            app.call("GET", &format!("/api/messages/{id}"), Some(token), None).await;
        (status == 200 && message["status"] == wanted).then_some(message)
    })
    .await
}

/// `POST /api/messages` as `token`.
async fn send(app: &App, token: &str, body: Value) -> (u16, Value) {
    app.call("POST", "/api/messages", Some(token), Some(body)).await
}

fn text(to: &str, client_id: &str, body: &str) -> Value {
    json!({"to": to, "type": "text", "clientMessageId": client_id, "text": {"body": body}})
}

use switchboard_tests::template_message as template;

#[tokio::test]
async fn every_send_fixture_reaches_the_sandbox_as_meta_would_receive_it() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "fixtures").await;
    let mut sent = 0;
    for (name, graph) in send_fixtures() {
        let request = as_api_request(&name, &graph);
        let to = request["to"].as_str().expect("to").to_owned();
        if graph["type"] != "template" {
            customer_writes(&app, &owner, &to).await;
        }
        let before = sandbox_sent(&app, &to).await.len();
        let (status, accepted) = send(&app, &owner.access_token, request).await;
        assert_eq!(status, 202, "{name}: {accepted}");
        assert_eq!(accepted["status"], "queued");
        let id = accepted["id"].as_str().expect("id").to_owned();
        let sent_message = message_when(&app, &owner.access_token, &id, "read").await;
        let received = sandbox_sent(&app, &to).await;
        assert_eq!(received.len(), before + 1, "{name}: sent once");
        let mut body = received[before].clone();
        let wamid = body.as_object_mut().and_then(|b| b.remove("wamid")).expect("wamid");
        assert_eq!(body, normalised(&graph), "{name}: what Meta receives");
        assert_eq!(sent_message["wamid"], wamid, "{name}");
        sent += 1;
    }
    assert_eq!(sent, 11);
    stack.remove().await;
}

#[tokio::test]
async fn a_sent_message_ends_read_with_its_history() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "history").await;
    customer_writes(&app, &owner, "+15550100001").await;

    let (status, accepted) =
        send(&app, &owner.access_token, text("+15550100001", "h-1", "Your order shipped")).await;
    assert_eq!((status, accepted["clientMessageId"].as_str()), (202, Some("h-1")), "{accepted}");
    let id = accepted["id"].as_str().expect("id");
    let message = message_when(&app, &owner.access_token, id, "read").await;
    let history: Vec<&str> = message["statusHistory"]
        .as_array()
        .expect("history")
        .iter()
        .filter_map(|h| h["status"].as_str())
        .collect();
    assert_eq!(history, ["queued", "sent", "delivered", "read"]);
    assert!(
        message["statusHistory"].as_array().expect("h").iter().all(|h| h["timestamp"].is_string())
    );
    assert_eq!(
        (message["direction"].as_str(), message["to"].as_str()),
        (Some("outbound"), Some("+15550100001"))
    );

    // The conversation shows it, newest first, after the customer's message.
    let conversation = message["conversationId"].as_str().expect("conversation");
    let (_, page) = app
        .call(
            "GET",
            &format!("/api/conversations/{conversation}/messages"),
            Some(&owner.access_token),
            None,
        )
        .await;
    let directions: Vec<&str> = page["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|m| m["direction"].as_str())
        .collect();
    assert_eq!(directions, ["outbound", "inbound"]);
    assert_eq!(page["items"][0]["status"], "read");
    stack.remove().await;
}

#[tokio::test]
async fn each_error_fixture_leads_to_a_retry_or_the_failure_it_calls_for() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn_keeping_partner_events(&stack).await;
    let owner = sandbox_tenant(&app, "errors").await;
    let token = owner.access_token.clone();
    // (code, whether a retry then succeeds). Templates: no service window needed.
    let cases = [
        (130429, true),
        (131056, true),
        (131000, true),
        (131016, true),
        (131026, false),
        (131047, false),
        (132000, false),
        (132001, false),
    ];
    let mut ids = Vec::new();
    for (i, (code, _)) in cases.iter().enumerate() {
        let to = format!("+1555020{i:04}");
        fault(&app, &to, *code, 1).await;
        let (status, accepted) = send(&app, &token, template(&to, &format!("err-{code}"))).await;
        assert_eq!(status, 202, "{accepted}");
        ids.push((to, accepted["id"].as_str().expect("id").to_owned()));
    }
    for ((code, retried), (to, id)) in cases.iter().zip(&ids) {
        if *retried {
            let message = message_when(&app, &token, id, "read").await;
            assert!(message["error"].is_null(), "{code}: {message}");
            assert_eq!(
                sandbox_sent(&app, to).await.len(),
                1,
                "{code}: one accepted send after the retry"
            );
        } else {
            let message = message_when(&app, &token, id, "failed").await;
            assert_eq!(message["error"]["code"], *code, "{code}: {message}");
            assert!(message["error"]["title"].as_str().is_some_and(|t| !t.is_empty()));
            assert!(sandbox_sent(&app, to).await.is_empty(), "{code}: never retried");
        }
    }

    // A transient error that persists fails the message after the bounded retries.
    fault(&app, "+15550299999", 131000, 50).await;
    let (_, accepted) = send(&app, &token, template("+15550299999", "err-persistent")).await;
    let message = message_when(&app, &token, accepted["id"].as_str().expect("id"), "failed").await;
    assert_eq!(message["error"]["code"], 131000);

    // A refused token fails the message with the reason and marks the channel unhealthy.
    fault(&app, "+15550300000", 190, 1).await;
    let (_, accepted) = send(&app, &token, template("+15550300000", "err-190")).await;
    let message = message_when(&app, &token, accepted["id"].as_str().expect("id"), "failed").await;
    assert_eq!(message["error"]["code"], 190);
    assert!(
        message["error"]["title"].as_str().is_some_and(|t| t.contains("access token")),
        "{message}"
    );
    let (_, channel) = app.call("GET", "/api/whatsapp/channel", Some(&token), None).await;
    assert_eq!(channel["healthStatus"], "unhealthy");
    let failed_for_good = [
        (ids[4].1.clone(), json!(131026)),
        (ids[5].1.clone(), json!(131047)),
        (ids[6].1.clone(), json!(132000)),
        (ids[7].1.clone(), json!(132001)),
        (accepted["id"].as_str().expect("id").to_owned(), json!(190)),
    ];

    // Partners hear of every failure, once, with our message id; and of Meta's statuses
    // with it too.
    // Nothing consumes the partner-events queue in the local stack yet.
    let events = stack.drain_json(&stack.resources.partner_events_queue_url).await;
    let status_events = |id: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["type"] == "message.status" && e["data"]["messageId"] == id)
            .collect()
    };
    for (id, code) in &failed_for_good {
        let found = status_events(id);
        assert_eq!(found.len(), 1, "{id}: {found:?}");
        assert_eq!(found[0]["data"]["status"], "failed");
        assert_eq!(&found[0]["data"]["error"]["code"], code);
        assert!(found[0]["id"].as_str().is_some_and(|i| i.starts_with("evt_")));
    }
    for (_, id) in &ids[..4] {
        assert!(
            status_events(id)
                .iter()
                .any(|e| e["data"]["status"] == "read" && e["data"]["wamid"].is_string()),
            "{id}: Meta's read status names our message"
        );
    }
    stack.remove().await;
}

#[tokio::test]
async fn concurrent_requests_with_one_client_message_id_send_once() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "idempotent").await;
    let to = "+15550400001";
    customer_writes(&app, &owner, to).await;
    let body = text(to, "same-id", "Only once");

    let answers = futures_util::future::join_all(
        (0..8).map(|_| send(&app, &owner.access_token, body.clone())),
    )
    .await;
    let mut statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 200, 202], "{answers:?}");
    let ids: BTreeSet<&str> = answers.iter().filter_map(|(_, b)| b["id"].as_str()).collect();
    assert_eq!(ids.len(), 1, "one message: {answers:?}");
    let id = ids.into_iter().next().expect("id").to_owned();
    message_when(&app, &owner.access_token, &id, "read").await;

    // Later repeats: the same message, with its current status; a different body is a conflict.
    let (status, again) = send(&app, &owner.access_token, body).await;
    assert_eq!(
        (status, again["id"].as_str(), again["status"].as_str()),
        (200, Some(id.as_str()), Some("read"))
    );
    let (status, conflict) =
        send(&app, &owner.access_token, text(to, "same-id", "Something else")).await;
    assert_eq!((status, conflict["code"].as_str()), (409, Some("client_message_id_conflict")));
    assert_eq!(sandbox_sent(&app, to).await.len(), 1, "sent once");
    stack.remove().await;
}

#[tokio::test]
async fn free_form_messages_need_the_customer_service_window() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "window").await;
    let token = owner.access_token.clone();

    // Never wrote: only a template may go.
    let (status, refused) = send(&app, &token, text("+15550500001", "w-1", "Hi")).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (422, Some("outside_service_window")),
        "{refused}"
    );
    let (status, _) = send(&app, &token, template("+15550500001", "w-2")).await;
    assert_eq!(status, 202);

    // Wrote 25 hours ago (a signed webhook with that time): closed.
    let old = adapters::store::attrs::now_secs() as u64 - 25 * 3600;
    let payload = sandbox::graph::text_message_payload(
        &owner.tenant_id,
        "15550500002",
        "Old",
        "wamid.old-1",
        "hi",
        old,
    )
    .to_string();
    let response = app
        .http
        .post(app.url(&format!("/api/whatsapp/webhook/{}", owner.tenant_id)))
        .header(
            "x-hub-signature-256",
            domain::meta::signature_header(
                switchboard_tests::SANDBOX_APP_SECRET.as_bytes(),
                payload.as_bytes(),
            ),
        )
        .body(payload)
        .send()
        .await
        .expect("webhook");
    assert_eq!(response.status(), 200);
    eventually(30, "the old message stored", || async {
        let (_, list) = app.call("GET", "/api/conversations", Some(&token), None).await;
        list["items"].as_array()?.iter().any(|c| c["contactWaId"] == "+15550500002").then_some(())
    })
    .await;
    let (status, refused) = send(&app, &token, text("+15550500002", "w-3", "Hi")).await;
    assert_eq!((status, refused["code"].as_str()), (422, Some("outside_service_window")));

    // Wrote just now: open.
    customer_writes(&app, &owner, "+15550500003").await;
    let (status, _) = send(&app, &token, text("+15550500003", "w-4", "Hi")).await;
    assert_eq!(status, 202);

    // A refused request stored nothing: its client id is still free.
    let (status, _) = send(&app, &token, template("+15550500002", "w-3")).await;
    assert_eq!(status, 202, "w-3 was never used");
    stack.remove().await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_fields_and_store_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "bad-sends").await;
    let token = owner.access_token.clone();
    let (status, problem) =
        send(&app, &token, json!({"to": "555", "type": "text", "text": {"body": ""}})).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["to", "clientMessageId", "text.body"]);
    let raw = app
        .http
        .post(app.url("/api/messages"))
        .bearer_auth(&token)
        .body("{not json")
        .send()
        .await
        .expect("request");
    assert_eq!(raw.status(), 400);

    // No credentials: 401.
    let (status, _) =
        app.call("POST", "/api/messages", None, Some(template("+15550600001", "r-1"))).await;
    assert_eq!(status, 401);

    // No channel: a clear conflict.
    let lonely = app.register(&email("no-channel")).await;
    let (status, problem) = send(&app, &lonely.access_token, template("+15550600001", "n-1")).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("channel_not_configured")));
    let (_, list) = app.call("GET", "/api/conversations", Some(&lonely.access_token), None).await;
    assert_eq!(list["items"], json!([]));
    stack.remove().await;
}

#[tokio::test]
async fn messages_queue_by_tier() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let standard = sandbox_tenant(&app, "tier-standard").await;
    let enterprise = sandbox_tenant(&app, "tier-enterprise").await;
    stack.set_tier(&enterprise.tenant_id, "enterprise").await;
    let b2b = sandbox_tenant(&app, "tier-b2b").await;
    stack.set_tier(&b2b.tenant_id, "enterprise_b2b").await;
    let professional = sandbox_tenant(&app, "tier-pro").await;
    stack.set_tier(&professional.tenant_id, "professional").await;

    let mut expected_high = BTreeSet::new();
    let mut expected_standard = BTreeSet::new();
    for (owner, high) in
        [(&standard, false), (&enterprise, true), (&b2b, true), (&professional, false)]
    {
        let (status, accepted) =
            send(&app, &owner.access_token, template("+15550700001", "tier")).await;
        assert_eq!(status, 202, "{accepted}");
        let job = serde_json::to_string(&adapters::queues::SendJob {
            tenant_id: domain::ids::TenantId::parse(&owner.tenant_id).expect("tenant id"),
            message_id: accepted["id"].as_str().expect("id").to_owned(),
        })
        .expect("job");
        if high {
            expected_high.insert(job)
        } else {
            expected_standard.insert(job)
        };
    }
    let drain = |url: String| {
        let sqs = stack.clients.sqs.clone();
        async move {
            let mut bodies = BTreeSet::new();
            for _ in 0..3 {
                let out = sqs
                    .receive_message()
                    .queue_url(&url)
                    .max_number_of_messages(10)
                    .wait_time_seconds(1)
                    .send()
                    .await
                    .expect("receive");
                bodies.extend(out.messages().iter().filter_map(|m| m.body().map(str::to_owned)));
            }
            bodies
        }
    };
    assert_eq!(drain(stack.resources.outbound_high_queue_url.clone()).await, expected_high);
    assert_eq!(drain(stack.resources.outbound_standard_queue_url.clone()).await, expected_standard);
    stack.remove().await;
}

#[tokio::test]
async fn another_tenants_messages_are_not_found_and_cannot_be_named() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = sandbox_tenant(&app, "iso-a").await;
    let b = sandbox_tenant(&app, "iso-b").await;
    customer_writes(&app, &a, "+15550800001").await;
    customer_writes(&app, &b, "+15550800001").await;
    let (_, accepted) = send(&app, &a.access_token, text("+15550800001", "iso", "Hi")).await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    message_when(&app, &a.access_token, &id, "read").await;

    assert_eq!(
        app.call("GET", &format!("/api/messages/{id}"), Some(&b.access_token), None).await.0,
        404
    );
    // B reusing A's client id is B's own, new message.
    let (status, mine) = send(&app, &b.access_token, text("+15550800001", "iso", "Hi")).await;
    assert_eq!(status, 202);
    assert_ne!(mine["id"], accepted["id"]);
    // B cannot react to or reply to A's message by its id.
    let reaction = json!({"to": "+15550800001", "type": "reaction", "clientMessageId": "iso-r",
        "reaction": {"messageId": id, "emoji": "👍"}});
    let (status, problem) = send(&app, &b.access_token, reaction.clone()).await;
    assert_eq!((status, problem["errors"][0]["field"].as_str()), (422, Some("reaction.messageId")));
    // A can: the reaction goes out with the wamid of the message.
    let (status, reacted) = send(&app, &a.access_token, reaction).await;
    assert_eq!(status, 202, "{reacted}");
    message_when(&app, &a.access_token, reacted["id"].as_str().expect("id"), "read").await;
    let sent = sandbox_sent(&app, "+15550800001").await;
    let wamid = app
        .call("GET", &format!("/api/messages/{id}"), Some(&a.access_token), None)
        .await
        .1["wamid"]
        .clone();
    assert!(
        sent.iter().any(|s| s["type"] == "reaction" && s["reaction"]["message_id"] == wamid),
        "{sent:?}"
    );
    stack.remove().await;
}

// ---------------------------------------------------------------- conversations, templates, usage

/// An agent of the owner's tenant, logged in (so online); returns (id, token).
async fn agent(app: &App, owner: &Registered, name: &str) -> (String, String) {
    let address = email(name);
    let (status, user) = app
        .call(
            "POST",
            "/api/users",
            Some(&owner.access_token),
            Some(json!({"email": address, "name": name, "role": "AGENT", "password": switchboard_tests::PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    let token = app.login(&address, switchboard_tests::PASSWORD).await;
    (user["id"].as_str().expect("id").to_owned(), token)
}

async fn conversation_of(app: &App, token: &str, contact: &str) -> Value {
    let (_, list) = app.call("GET", "/api/conversations?limit=100", Some(token), None).await;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["contactWaId"] == contact)
        .cloned()
        .expect("conversation")
}

#[tokio::test]
async fn conversations_are_closed_assigned_and_auto_assigned_round_robin() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "assign").await;
    let token = owner.access_token.clone();
    let (first, first_token) = agent(&app, &owner, "agent-one").await;
    let (second, _) = agent(&app, &owner, "agent-two").await;

    // By hand: assign, close, unassign; bad input changes nothing.
    customer_writes(&app, &owner, "+15550900001").await;
    let id =
        conversation_of(&app, &token, "+15550900001").await["id"].as_str().expect("id").to_owned();
    let path = format!("/api/conversations/{id}");
    let (status, updated) = app
        .call(
            "PATCH",
            &path,
            Some(&first_token),
            Some(json!({"assignedAgentId": first, "status": "closed"})),
        )
        .await;
    assert_eq!(
        (status, updated["assignedAgentId"].as_str(), updated["status"].as_str()),
        (200, Some(first.as_str()), Some("closed")),
        "{updated}"
    );
    for bad in [
        json!({"status": "snoozed"}),
        json!({"assignedAgentId": "usr_nobody"}),
        json!({}),
        json!({"colour": "red"}),
    ] {
        let (status, problem) = app.call("PATCH", &path, Some(&token), Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad}: {problem}");
    }
    let other = sandbox_tenant(&app, "assign-other").await;
    let outsider = agent(&app, &other, "outsider").await.0;
    let (status, _) =
        app.call("PATCH", &path, Some(&token), Some(json!({"assignedAgentId": outsider}))).await;
    assert_eq!(status, 422, "an agent of another tenant");
    assert_eq!(
        app.call("PATCH", &path, Some(&other.access_token), Some(json!({"status": "open"})))
            .await
            .0,
        404
    );
    let (_, unassigned) =
        app.call("PATCH", &path, Some(&token), Some(json!({"assignedAgentId": null}))).await;
    assert!(unassigned["assignedAgentId"].is_null());
    assert_eq!(unassigned["status"], "closed");

    // Automatic: new conversations go to the online agents in turn.
    let (status, _) = app
        .call(
            "PATCH",
            "/api/tenant",
            Some(&token),
            Some(json!({"settings": {"autoAssignment": true}})),
        )
        .await;
    assert_eq!(status, 200);
    let mut assigned = Vec::new();
    for n in 2..=5 {
        let contact = format!("+1555090000{n}");
        customer_writes(&app, &owner, &contact).await;
        let conversation = eventually(20, "assigned", || async {
            let c = conversation_of(&app, &token, &contact).await;
            c["assignedAgentId"].as_str().map(str::to_owned)
        })
        .await;
        assigned.push(conversation);
    }
    let mut agents = BTreeSet::from([first.clone(), second.clone()]);
    assert!(agents.contains(&assigned[0]), "{assigned:?}");
    for pair in assigned.windows(2) {
        assert_ne!(pair[0], pair[1], "round-robin: {assigned:?}");
    }
    agents.retain(|a| !assigned.contains(a));
    assert!(agents.is_empty(), "both agents got conversations: {assigned:?}");
    stack.remove().await;
}

#[tokio::test]
async fn templates_are_submitted_and_follow_metas_review() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "templates").await;
    let token = owner.access_token.clone();
    let body = json!({"name": "order_update", "language": "en_US", "category": "UTILITY",
        "components": [{"type": "BODY", "text": "Your order {{1}} shipped."}]});
    let (status, created) =
        app.call("POST", "/api/templates", Some(&token), Some(body.clone())).await;
    assert_eq!((status, created["status"].as_str()), (201, Some("PENDING")), "{created}");
    assert_eq!(app.call("POST", "/api/templates", Some(&token), Some(body)).await.0, 409);
    let (status, problem) = app
        .call(
            "POST",
            "/api/templates",
            Some(&token),
            Some(json!({"name": "Bad Name", "language": "en_US", "category": "SPAM"})),
        )
        .await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!((status, fields), (422, vec!["name", "category", "components"]));

    // The sandbox approves it by webhook, as Meta does after review.
    let approved = eventually(20, "template approved", || async {
        let (_, list) = app.call("GET", "/api/templates", Some(&token), None).await;
        let t = list["items"].as_array()?.iter().find(|t| t["name"] == "order_update")?.clone();
        (t["status"] == "APPROVED").then_some(t)
    })
    .await;
    assert_eq!(approved["category"], "UTILITY", "what was submitted stays");
    assert_eq!(approved["components"][0]["type"], "BODY");

    // Another tenant sees none of it; deleting removes it here and at Meta.
    let other = sandbox_tenant(&app, "templates-other").await;
    let (_, theirs) = app.call("GET", "/api/templates", Some(&other.access_token), None).await;
    assert_eq!(theirs["items"], json!([]));
    assert_eq!(
        app.call("DELETE", "/api/templates/order_update", Some(&other.access_token), None).await.0,
        404
    );
    assert_eq!(app.call("DELETE", "/api/templates/order_update", Some(&token), None).await.0, 204);
    let (_, list) = app.call("GET", "/api/templates", Some(&token), None).await;
    assert_eq!(list["items"], json!([]));
    let at_meta = app
        .http
        .get(format!("{}/v23.0/{}/message_templates", app.sandbox_url, owner.tenant_id))
        .send()
        .await
        .expect("sandbox")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(at_meta["data"], json!([]));
    stack.remove().await;
}

#[tokio::test]
async fn usage_counts_each_day_as_json_and_csv() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = sandbox_tenant(&app, "usage").await;
    let token = owner.access_token.clone();
    customer_writes(&app, &owner, "+15551000001").await;
    let (_, accepted) = send(&app, &token, text("+15551000001", "u-1", "Hi")).await;
    message_when(&app, &token, accepted["id"].as_str().expect("id"), "read").await;
    fault(&app, "+15551000002", 131026, 1).await;
    let (_, accepted) = send(&app, &token, template("+15551000002", "u-2")).await;
    message_when(&app, &token, accepted["id"].as_str().expect("id"), "failed").await;

    let today =
        adapters::store::attrs::rfc3339(adapters::store::attrs::now_secs())[..10].to_owned();
    let (status, usage) = app
        .call("GET", &format!("/api/analytics/usage?from={today}&to={today}"), Some(&token), None)
        .await;
    assert_eq!(status, 200, "{usage}");
    assert_eq!(
        usage["items"],
        json!([{"date": today, "inbound": 1, "outbound": 1, "delivered": 1, "read": 1, "failed": 1, "conversationsOpened": 2}])
    );
    let (_, month) = app.call("GET", "/api/analytics/usage", Some(&token), None).await;
    assert_eq!(month["items"].as_array().map(Vec::len), Some(30), "a row per day, zeros included");

    let csv = app
        .http
        .get(app.url(&format!("/api/analytics/usage?from={today}&to={today}&format=csv")))
        .bearer_auth(&token)
        .send()
        .await
        .expect("csv");
    assert!(csv.headers()["content-type"].to_str().unwrap_or_default().starts_with("text/csv"));
    assert_eq!(
        csv.text().await.expect("text"),
        format!(
            "date,inbound,outbound,delivered,read,failed,conversationsOpened\n{today},1,1,1,1,1,2\n"
        )
    );
    for bad in [
        "from=2026-02-30",
        "from=2026-01-10&to=2026-01-01",
        "from=2020-01-01&to=2026-01-01",
        "format=xml",
    ] {
        assert_eq!(
            app.call("GET", &format!("/api/analytics/usage?{bad}"), Some(&token), None).await.0,
            422,
            "{bad}"
        );
    }
    let (_, agent_token) = agent(&app, &owner, "usage-agent").await;
    assert_eq!(app.call("GET", "/api/analytics/usage", Some(&agent_token), None).await.0, 403);
    stack.remove().await;
}

/// The figures BENCHMARKS.md records as "AWS requests per outbound message": every
/// request `POST /api/messages` and the sender make for one template message, counted by
/// an SDK interceptor. A change in these numbers is a change in cost; update both.
#[tokio::test]
async fn aws_requests_per_outbound_message_are_counted() {
    use adapters::aws::envelope::Envelopes;
    use adapters::channel::{Channels, SandboxCredentials};
    use adapters::store::channels::ChannelStore;
    use adapters::store::messages::MessageStore;
    use adapters::store::tenants::TenantStore;
    use std::time::Instant;
    use switchboard_tests::{RequestCounter, cost};

    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let owner = sandbox_tenant(&app, "counted-out").await;
    let counter = RequestCounter::default();
    let clients = Emulator::shared().counted_clients(&counter).await;
    let r = &stack.resources;
    let keys =
        edge::tokens::TokenKeys::parse(&app.token_keys_spec, edge::tokens::DEFAULT_ISSUER, "test")
            .expect("keys");
    let tenants = TenantStore::new(clients.dynamodb.clone(), r.tenants_table.clone());
    let channels = || {
        Channels::new(
            ChannelStore::new(clients.dynamodb.clone(), r.tenants_table.clone()),
            Envelopes::new(clients.kms.clone(), r.kms_key_id.clone()),
            SandboxCredentials::default(),
        )
    };
    let graph = adapters::graph::GraphConfig {
        graph_api_base: "http://127.0.0.1:9".into(),
        graph_api_version: "v23.0".into(),
        sandbox_url: Some(app.sandbox_url.clone()),
        destinations_allowed: domain::webhooks::Cidr::parse_list("127.0.0.1/32").expect("range"),
    };
    let api = messages::Deps::new(
        MessageStore::new(clients.dynamodb.clone(), r.messages_table.clone()),
        tenants.clone(),
        channels(),
        clients.sqs.clone(),
        messages::OutboundQueues {
            high: r.outbound_high_queue_url.clone(),
            standard: r.outbound_standard_queue_url.clone(),
        },
        graph.clone(),
        edge::principal::Authenticator::new(std::sync::Arc::new(keys), tenants),
    )
    .expect("deps");
    let request = |n: u32| {
        let body = template(&format!("+1555110{n:04}"), &format!("count-{n}")).to_string();
        let event = json!({
            "version": "2.0", "routeKey": "POST /api/messages", "rawPath": "/api/messages", "rawQueryString": "",
            "headers": {"content-type": "application/json", "authorization": format!("Bearer {}", owner.access_token)},
            "requestContext": {"http": {"method": "POST", "path": "/api/messages", "sourceIp": "203.0.113.1"},
                               "routeKey": "POST /api/messages", "requestId": "r", "stage": "$default"},
            "body": body, "isBase64Encoded": false
        });
        lambda_http::request::from_str(&event.to_string()).expect("event")
    };
    let mut accepted = Vec::new();
    for (n, step) in [(0, "outbound.accept.first"), (1, "outbound.accept.next")] {
        counter.take();
        let started = Instant::now();
        let response = messages::handle(&api, request(n)).await.expect("handled");
        assert_eq!(response.status(), 202);
        accepted.push(counter.take());
        cost::record(step, &counter.taken_calls(), started.elapsed(), 1);
    }

    let sender = message_sender::Deps::build(
        &clients,
        r,
        &message_sender::Config {
            sandbox: SandboxCredentials::default(),
            graph,
            policy: message_sender::Policy::default(),
        },
    )
    .expect("deps");
    let mut sent = Vec::new();
    for step in ["outbound.send.cold", "outbound.send.warm"] {
        let event = stack.take_event(&r.outbound_standard_queue_url, 1).await;
        counter.take();
        let started = Instant::now();
        assert!(message_sender::handle(&sender, event).await.batch_item_failures.is_empty());
        sent.push(counter.take());
        cost::record(step, &counter.taken_calls(), started.elapsed(), 1);
    }
    // A full batch of ten, warm: what each message costs when the queue is busy.
    for n in 2..12 {
        let response = messages::handle(&api, request(n)).await.expect("handled");
        assert_eq!(response.status(), 202);
    }
    let batch = stack.take_event(&r.outbound_standard_queue_url, 10).await;
    counter.take();
    let started = Instant::now();
    assert!(message_sender::handle(&sender, batch).await.batch_item_failures.is_empty());
    let batch_of_ten = counter.take();
    cost::record("outbound.send.batch_of_ten", &counter.taken_calls(), started.elapsed(), 10);
    // Meta's `sent`, `delivered` and `read` webhooks follow each message (the sandbox sends
    // them to the app, whose ingest stores and queues them): six of them processed, one at
    // a time, as part of what an outbound message costs.
    let processor = webhook_processor::Deps::new(&clients, r);
    let (mut statuses, mut busy) = (Vec::new(), std::time::Duration::ZERO);
    for _ in 0..6 {
        let event = stack.take_event(&r.inbound_events_queue_url, 1).await;
        counter.take();
        let started = Instant::now();
        assert!(webhook_processor::handle(&processor, event).await.batch_item_failures.is_empty());
        busy += started.elapsed();
        counter.take();
        statuses.extend(counter.taken_calls());
    }
    cost::record("outbound.status", &statuses, busy, 6);
    let ops = |op: &str| statuses.iter().filter(|c| c.op == op).count();
    // Each status: the raw event read, its wamid item written (once when in order), the
    // day's count (not for `sent`), the event's outcome; its partner event queued.
    assert_eq!((ops("DynamoDB.GetItem"), ops("SQS.SendMessageBatch")), (6, 6));
    assert!((12..=6 * 4).contains(&ops("DynamoDB.UpdateItem")), "{}", ops("DynamoDB.UpdateItem"));
    cost::record_items(&stack).await;
    let sandbox = app.sandbox_stats().await;
    assert_eq!(sandbox["sends"], 12, "every message reached the sandbox once");

    println!("POST /api/messages, first: {:?}", accepted[0]);
    println!("POST /api/messages, next: {:?}", accepted[1]);
    println!("sender, cold: {:?}", sent[0]);
    println!("sender, warm: {:?}", sent[1]);
    println!("sender, warm, a batch of ten: {batch_of_ten:?}");
    let expected = |pairs: &[(&str, u32)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    // User, client id, channel, contact, tenant; the transaction; the queue; the queued mark.
    let accept = expected(&[
        ("DynamoDB.GetItem", 5),
        ("DynamoDB.TransactWriteItems", 1),
        ("DynamoDB.UpdateItem", 1),
        ("SQS.SendMessage", 1),
    ]);
    assert_eq!(accepted[0], accept);
    assert_eq!(accepted[1], accept);
    // Cold: channel and plan read, both buckets read and booked; then the message claimed
    // (the claim returns it), recorded (message, then wamid item), and the batch counted,
    // and the tenant read once (is it a platform's user, whose platform counts it too?).
    // Warm: the caches and the buckets' last clocks save the five reads.
    assert_eq!(sent[0], expected(&[("DynamoDB.GetItem", 5), ("DynamoDB.UpdateItem", 6)]));
    assert_eq!(sent[1], expected(&[("DynamoDB.UpdateItem", 6)]));
    // Ten: two bookings and one count for the batch, three writes per message.
    assert_eq!(batch_of_ten, expected(&[("DynamoDB.UpdateItem", 2 + 10 * 3 + 1)]));
    stack.remove().await;
}

/// Lets the first claim reach DynamoDB, then loses its answer (a 500 in its place), as a
/// dropped connection would: the SDK sends the same request again.
#[derive(Debug, Default, Clone)]
struct LoseFirstClaimAnswer(std::sync::Arc<std::sync::atomic::AtomicU8>);

const CLAIM_SEEN: u8 = 1;
const ANSWER_LOST: u8 = 2;

impl aws_smithy_runtime_api::client::interceptors::Intercept for LoseFirstClaimAnswer {
    fn name(&self) -> &'static str {
        "LoseFirstClaimAnswer"
    }

    fn read_before_transmit(
        &self,
        context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let body = context.request().body().bytes().unwrap_or_default();
        if String::from_utf8_lossy(body).contains("claimToken") {
            let _ = self.0.compare_exchange(
                0,
                CLAIM_SEEN,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            );
        }
        Ok(())
    }

    fn modify_before_deserialization(
        &self,
        context: &mut aws_smithy_runtime_api::client::interceptors::context::BeforeDeserializationInterceptorContextMut<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        _cfg: &mut aws_smithy_types::config_bag::ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let lose = self
            .0
            .compare_exchange(
                CLAIM_SEEN,
                ANSWER_LOST,
                std::sync::atomic::Ordering::SeqCst,
                std::sync::atomic::Ordering::SeqCst,
            )
            .is_ok();
        if lose {
            let response = context.response_mut();
            *response.status_mut() = 500.try_into()?;
            *response.body_mut() = aws_smithy_types::body::SdkBody::from(
                r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"answer lost"}"#,
            );
        }
        Ok(())
    }
}

/// A claim that DynamoDB applied but whose answer was lost is sent again by the SDK; the
/// repeat must still win the claim (it carries the same token), not find the lease held
/// and leave the message to be failed as abandoned, unsent.
#[tokio::test]
async fn a_claim_whose_answer_was_lost_still_claims_when_the_sdk_repeats_it() {
    use adapters::store::messages::MessageStore;
    use adapters::store::messages::outbox::Claim;

    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let owner = sandbox_tenant(&app, "lost-claim").await;
    let (status, accepted) =
        send(&app, &owner.access_token, template("+15550400000", "lost-claim")).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("id");

    let lossy = LoseFirstClaimAnswer::default();
    let config = adapters::aws::emulator_config(&Emulator::shared().endpoint).await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::config::Builder::from(&config).interceptor(lossy.clone()).build(),
    );
    let store = MessageStore::new(dynamodb, stack.resources.messages_table.clone());
    let tenant = domain::ids::TenantId::parse(&owner.tenant_id).expect("tenant id");
    let claim =
        store.outbox().claim(&switchboard_tests::scope_of(&tenant), id, 60).await.expect("claim");
    assert_eq!(
        lossy.0.load(std::sync::atomic::Ordering::SeqCst),
        ANSWER_LOST,
        "the first answer was lost"
    );
    let Claim::Claimed(message) = claim else { panic!("the repeated claim lost: {claim:?}") };
    assert_eq!(message.message_id, id);
    // A second claim (another sender, another token) finds the lease held.
    let again =
        store.outbox().claim(&switchboard_tests::scope_of(&tenant), id, 60).await.expect("claim");
    assert!(matches!(again, Claim::Busy), "{again:?}");
    stack.remove().await;
}

/// A `clientMessageId` names its message for seven days (its idempotency record expires);
/// afterwards it may name a new one, even before DynamoDB has removed the expired record.
#[tokio::test]
async fn a_client_message_id_names_its_message_until_its_record_expires() {
    use adapters::store::messages::outbox::CLIENT_MESSAGE_TTL_SECS;
    use aws_sdk_dynamodb::types::AttributeValue;

    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let owner = sandbox_tenant(&app, "client-ttl").await;
    let token = owner.access_token.as_str();
    let body = template("+15550500000", "ttl-1");
    let (status, first) = send(&app, token, body.clone()).await;
    assert_eq!(status, 202, "{first}");

    let pk = switchboard_tests::shard_pk(&owner.tenant_id, "ttl-1");
    let records =
        stack.tenant_items(&stack.resources.messages_table, &owner.tenant_id, "CLIENT#").await;
    assert_eq!(records.len(), 1);
    let expires: i64 = match records[0].get("expiresAt") {
        Some(AttributeValue::N(n)) => n.parse().expect("number"),
        other => panic!("no expiry: {other:?}"),
    };
    let now = adapters::store::attrs::now_secs();
    assert!((expires - now - CLIENT_MESSAGE_TTL_SECS).abs() < 60, "expires {expires}, now {now}");

    let (status, again) = send(&app, token, body.clone()).await;
    assert_eq!((status, &again["id"]), (200, &first["id"]), "a repeat within the window");

    // Expired, and still in the table (DynamoDB removes expired items within days).
    stack
        .clients
        .dynamodb
        .update_item()
        .table_name(&stack.resources.messages_table)
        .key("pk", AttributeValue::S(pk.clone()))
        .key("sk", AttributeValue::S("CLIENT#ttl-1".into()))
        .update_expression("SET expiresAt = :past")
        .expression_attribute_values(":past", AttributeValue::N((now - 1).to_string()))
        .send()
        .await
        .expect("expire");
    let (status, later) = send(&app, token, body.clone()).await;
    assert_eq!(status, 202, "{later}");
    assert_ne!(later["id"], first["id"], "a new message");
    let (status, repeat) = send(&app, token, body).await;
    assert_eq!((status, &repeat["id"]), (200, &later["id"]), "the id now names the new one");
    stack.remove().await;
}

/// A 130429 (the number's throughput reached) pauses the number in the shared bucket:
/// every sender's next booking starts after the pause, a later clock is left alone.
#[tokio::test]
async fn a_held_bucket_books_nothing_before_the_hold_ends() {
    use adapters::store::pacing::{Booking, Bucket, RateBuckets, now_us};
    use domain::ids::TenantId;
    use domain::pacing::Rate;
    use std::time::Duration;

    let stack = Stack::new(Emulator::shared()).await;
    let tenant = TenantId::generate();
    let phone = Bucket::Phone("1234567890".into());
    let table = stack.resources.messages_table.clone();
    // Two senders, each with its own cache of the clock.
    let first = RateBuckets::new(stack.clients.dynamodb.clone(), table.clone());
    let second = RateBuckets::new(stack.clients.dynamodb.clone(), table);
    let wait = Duration::from_secs(5);
    let book = |buckets: &RateBuckets| {
        let (buckets, tenant, phone) = (buckets.clone(), tenant.clone(), phone.clone());
        async move {
            match buckets
                .reserve(
                    &switchboard_tests::scope_of(&tenant),
                    &phone,
                    Rate::per_second(80),
                    1,
                    wait,
                )
                .await
            {
                Ok(Booking::Slots(slots)) => slots.due_us(0),
                other => panic!("no slot: {other:?}"),
            }
        }
    };
    book(&first).await;
    book(&second).await;

    let until = now_us() + 1_000_000;
    first.hold(&switchboard_tests::scope_of(&tenant), &phone, until).await.expect("hold");
    assert!(book(&second).await >= until, "the other sender waits for the hold");
    assert!(book(&first).await >= until, "so does the one that held it");

    // An earlier hold does not pull the clock back.
    first.hold(&switchboard_tests::scope_of(&tenant), &phone, now_us()).await.expect("hold");
    assert!(book(&second).await >= until);
    stack.remove().await;
}
