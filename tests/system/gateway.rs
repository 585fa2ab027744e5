//! A tenant's own WhatsApp gateway (a Cloud API-compatible BSP): the message sender sends
//! through it with the channel's key in the header it wants, its health is checked on its
//! interval and on demand, an unhealthy gateway is not posted to, and its address obeys the
//! destination rules of partner webhooks.

use serde_json::{Value, json};
use switchboard_tests::{
    App, Emulator, Registered, Stack, email, eventually, loopback_graph, template_message,
};

async fn gateway(app: &App, name: &str, body: Value) {
    let url = format!("{}/_gateway/{name}", app.sandbox_url);
    let response = app.http.put(url).json(&body).send().await.expect("gateway set-up");
    assert_eq!(response.status(), 204);
}

async fn gateway_state(app: &App, name: &str) -> Value {
    let url = format!("{}/_gateway/{name}", app.sandbox_url);
    app.http.get(url).send().await.expect("gateway").json().await.expect("json")
}

async fn gateway_sent(app: &App, name: &str) -> Vec<Value> {
    gateway_state(app, name).await["items"].as_array().cloned().unwrap_or_default()
}

async fn gateway_tenant(app: &App, name: &str, channel: Value) -> Registered {
    let owner = app.register(&email(name)).await;
    let (status, body) =
        app.call("PUT", "/api/whatsapp/channel", Some(&owner.access_token), Some(channel)).await;
    assert_eq!(status, 200, "{body}");
    owner
}

async fn message_status(app: &App, token: &str, id: &str) -> Value {
    let (_, message) = app.call("GET", &format!("/api/messages/{id}"), Some(token), None).await;
    message
}

#[tokio::test]
async fn a_gateway_channel_sends_with_its_key_header_and_is_held_while_unhealthy() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let key = "d360-key-0123456789";
    gateway(&app, "bsp", json!({"keyHeader": "D360-API-KEY", "key": key})).await;
    let api_url = format!("{}/_gateway/bsp", app.sandbox_url);
    let owner = gateway_tenant(
        &app,
        "gateway-send",
        json!({"provider": "gateway", "apiUrl": api_url, "apiKey": key,
               "webhookSecret": "gw-webhook-secret-0001", "apiKeyHeader": "D360-API-KEY",
               "healthCheckInterval": 30}),
    )
    .await;
    let token = owner.access_token.as_str();
    let (_, channel) = app.call("GET", "/api/whatsapp/channel", Some(token), None).await;
    assert_eq!(
        (&channel["apiKeyHeader"], &channel["healthCheckInterval"]),
        (&json!("D360-API-KEY"), &json!(30)),
        "{channel}"
    );
    assert_eq!(channel["apiKey"], "••••6789");
    assert!(!channel.to_string().contains(key));

    // Sent through the gateway, the key in its header.
    let (status, accepted) = app
        .call("POST", "/api/messages", Some(token), Some(template_message("+15550400001", "g1")))
        .await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("id").to_owned();
    let sent = eventually(20, "the gateway to take the message", || async {
        let sent = gateway_sent(&app, "bsp").await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!(sent[0]["body"]["to"], "+15550400001");
    assert_eq!(sent[0]["keyHeader"], "D360-API-KEY");
    let wamid = sent[0]["wamid"].as_str().expect("wamid").to_owned();
    eventually(20, "the message recorded as sent", || async {
        let message = message_status(&app, token, &id).await;
        (message["status"] == "sent" && message["wamid"] == wamid.as_str()).then_some(())
    })
    .await;

    // On demand: healthy. Then the gateway fails its checks on the schedule.
    let (status, checked) =
        app.call("POST", "/api/whatsapp/channel/health-check", Some(token), None).await;
    assert_eq!((status, &checked["healthStatus"]), (200, &json!("healthy")), "{checked}");
    gateway(&app, "bsp", json!({"healthy": false})).await;
    let health =
        gateway_health::Deps::build(&stack.clients, &stack.resources, loopback_graph(None))
            .expect("deps");
    let later = domain::time::now_secs() + 31;
    let run = gateway_health::run(&health, later).await.expect("run");
    assert_eq!(run, gateway_health::Checked { healthy: 0, unhealthy: 1 });
    // Not due again until its interval has passed.
    assert_eq!(
        gateway_health::run(&health, later + 5).await.expect("run"),
        gateway_health::Checked::default()
    );
    let (_, channel) = app.call("GET", "/api/whatsapp/channel", Some(token), None).await;
    assert_eq!(channel["healthStatus"], "unhealthy", "reported: {channel}");

    // An unhealthy gateway is not posted to: the message waits for it.
    let (status, accepted) = app
        .call("POST", "/api/messages", Some(token), Some(template_message("+15550400002", "g2")))
        .await;
    assert_eq!(status, 202);
    let held = accepted["id"].as_str().expect("id").to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let posts = gateway_state(&app, "bsp").await["posts"].clone();
    assert_eq!(posts, 1, "nothing posted while unhealthy");
    assert_eq!(message_status(&app, token, &held).await["status"], "queued");
    // It recovers: the next check says so and the message goes.
    gateway(&app, "bsp", json!({"healthy": true})).await;
    let run = gateway_health::run(&health, later + 31).await.expect("run");
    assert_eq!(run.healthy, 1);
    eventually(20, "the held message sent", || async {
        (gateway_sent(&app, "bsp").await.len() == 2).then_some(())
    })
    .await;
    stack.remove().await;
}

#[tokio::test]
async fn a_gateway_takes_a_bearer_key_by_default_and_a_wrong_key_fails_the_message() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    gateway(&app, "bearer", json!({"keyHeader": "Authorization", "key": "bearer-key-0123456789"}))
        .await;
    let api_url = format!("{}/_gateway/bearer", app.sandbox_url);
    let owner = gateway_tenant(
        &app,
        "gateway-bearer",
        json!({"provider": "gateway", "apiUrl": api_url, "apiKey": "bearer-key-0123456789",
               "webhookSecret": "gw-webhook-secret-0002"}),
    )
    .await;
    let token = owner.access_token.as_str();
    let (_, channel) = app.call("GET", "/api/whatsapp/channel", Some(token), None).await;
    assert_eq!(
        (&channel["apiKeyHeader"], &channel["healthCheckInterval"]),
        (&json!("Authorization"), &json!(60))
    );
    let (status, _) = app
        .call("POST", "/api/messages", Some(token), Some(template_message("+15550410001", "b1")))
        .await;
    assert_eq!(status, 202);
    eventually(20, "sent with a bearer key", || async {
        (gateway_sent(&app, "bearer").await.len() == 1).then_some(())
    })
    .await;

    // The gateway no longer takes the key: Meta's token error, the message failed with it.
    gateway(&app, "bearer", json!({"key": "rotated-elsewhere-000"})).await;
    let (_, accepted) = app
        .call("POST", "/api/messages", Some(token), Some(template_message("+15550410002", "b2")))
        .await;
    let id = accepted["id"].as_str().expect("id").to_owned();
    let failed = eventually(20, "the message failed", || async {
        let message = message_status(&app, token, &id).await;
        (message["status"] == "failed").then_some(message)
    })
    .await;
    assert_eq!(failed["error"]["code"], 190, "{failed}");
    stack.remove().await;
}

#[tokio::test]
async fn a_gateway_at_a_private_or_metadata_address_is_refused_when_set() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("gateway-ssrf")).await;
    let token = owner.access_token.as_str();
    let before = stack.tenants_items().await;
    // Literal addresses: refused without any connection (the tests allow 127.0.0.1 only).
    for url in [
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7:8080",
        "http://127.0.0.2:9",
        "http://[::1]:9",
    ] {
        let channel = json!({"provider": "gateway", "apiUrl": url, "apiKey": "k-0123456789ab", "webhookSecret": "s-0123456789ab"});
        let (status, problem) =
            app.call("PUT", "/api/whatsapp/channel", Some(token), Some(channel)).await;
        assert_eq!(
            (status, problem["code"].as_str()),
            (422, Some("destination_not_allowed")),
            "{url}: {problem}"
        );
    }
    let bad = json!({"provider": "gateway", "apiUrl": "http://127.0.0.1:9", "apiKey": "k-0123456789ab",
        "webhookSecret": "s-0123456789ab", "apiKeyHeader": "Bad Header", "healthCheckInterval": 5});
    let (status, problem) = app.call("PUT", "/api/whatsapp/channel", Some(token), Some(bad)).await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["apiKeyHeader", "healthCheckInterval"], "{problem}");
    assert_eq!(stack.tenants_items().await, before, "nothing stored");
    stack.remove().await;
}
