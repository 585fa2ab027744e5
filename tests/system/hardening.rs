//! What a black-box security sweep found, each held by a test.

use adapters::store::messages::MessageStore;
use domain::ids::TenantId;
use domain::meta::signature_header;
use serde_json::json;
use switchboard_tests::{App, Emulator, Stack, email};

const APP_SECRET: &str = "hardening-app-secret-0123456789";

/// Text that gzip cannot shrink much: hex of a hash chain.
fn incompressible(bytes: usize) -> String {
    use sha2::{Digest, Sha256};
    let mut out = String::with_capacity(bytes + 64);
    let mut block = Sha256::digest(b"seed").to_vec();
    while out.len() < bytes {
        block = Sha256::digest(&block).to_vec();
        out.push_str(&hex::encode(&block));
    }
    out.truncate(bytes);
    out
}

/// A signed webhook of several megabytes (over DynamoDB's 400 KB item limit even when
/// compressed) is stored, acknowledged, and read back byte for byte.
#[tokio::test]
async fn a_signed_webhook_too_large_for_one_item_is_stored_whole() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::without_processors(&stack).await;
    let owner = app.cloud_tenant("hardening", "400000000000001", APP_SECRET, "verify").await;
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "account_update",
            "value": {"padding": incompressible(2_500_000)}}]}]
    })
    .to_string();

    let response = app
        .http
        .post(app.url(&format!("/api/whatsapp/webhook/{}", owner.tenant_id)))
        .header("content-type", "application/json")
        .header("x-hub-signature-256", signature_header(APP_SECRET.as_bytes(), body.as_bytes()))
        .body(body.clone())
        .send()
        .await
        .expect("request");

    assert_eq!(response.status(), 200, "{:?}", response.text().await);
    let tenant = TenantId::parse(&owner.tenant_id).expect("tenant");
    let store =
        MessageStore::new(stack.clients.dynamodb.clone(), stack.resources.messages_table.clone());
    let ids =
        store.raw_events().ids_since(&switchboard_tests::scope_of(&tenant), 0).await.expect("ids");
    assert_eq!(ids.len(), 1, "{ids:?}");
    let stored = store
        .raw_events()
        .get(&switchboard_tests::scope_of(&tenant), &ids[0])
        .await
        .expect("read")
        .expect("stored");
    assert!(stored == body.as_bytes(), "the body read back differs");
    let parts =
        stack.tenant_items(&stack.resources.messages_table, &tenant.to_string(), "RAWPART#").await;
    assert!(parts.len() > 1, "stored in {} parts", parts.len());
    drop(app);
    stack.remove().await;
}

#[tokio::test]
async fn two_authorization_headers_authenticate_nobody() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = app.register(&email("twoheaders-a")).await;
    let b = app.register(&email("twoheaders-b")).await;

    let both = app
        .http
        .get(app.url("/api/auth/me"))
        .header("authorization", format!("Bearer {}", a.access_token))
        .header("authorization", format!("Bearer {}", b.access_token))
        .send()
        .await
        .expect("request");
    let joined = app
        .http
        .get(app.url("/api/auth/me"))
        .header("authorization", format!("Bearer {},Bearer {}", a.access_token, b.access_token))
        .send()
        .await
        .expect("request");
    let (one, me) = app.call("GET", "/api/auth/me", Some(&a.access_token), None).await;

    assert_eq!(both.status(), 401);
    assert_eq!(both.headers()["content-type"], "application/problem+json");
    assert_eq!(joined.status(), 401);
    assert_eq!(one, 200, "{me}");
    stack.remove().await;
}

#[tokio::test]
async fn emails_with_invisible_characters_are_refused_and_store_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let plain = email("lookalike");
    app.register(&plain).await;
    let before = stack.tenants_items().await;

    for invisible in ['\u{200B}', '\u{202E}', '\u{2066}', '\u{FEFF}'] {
        let (local, domain) = plain.split_once('@').expect("address");
        let lookalike = format!("{local}{invisible}@{domain}");
        let (status, body) = app
            .call(
                "POST",
                "/api/auth/register",
                None,
                Some(json!({"tenantName": "Lookalike", "email": lookalike,
                            "password": "a long password!", "name": "Eve"})),
            )
            .await;
        assert_eq!(status, 422, "{invisible:?}: {body}");
        assert_eq!(body["errors"][0]["field"], "email", "{body}");
    }

    assert_eq!(stack.tenants_items().await, before, "nothing stored");
    stack.remove().await;
}

#[tokio::test]
async fn a_short_secret_is_never_shown_even_in_part() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("shortsecret")).await;

    let (status, channel) = app
        .call(
            "PUT",
            "/api/whatsapp/channel",
            Some(&owner.access_token),
            Some(json!({"provider": "gateway", "apiUrl": "http://127.0.0.1:9/gateway",
                        "apiKey": "k3y9", "webhookSecret": "a-long-enough-webhook-secret-7a1b"})),
        )
        .await;
    let (_, read) = app.call("GET", "/api/whatsapp/channel", Some(&owner.access_token), None).await;

    assert_eq!(status, 200, "{channel}");
    for shown in [&channel, &read] {
        assert_eq!(shown["apiKey"], "••••", "set, and nothing of it shown: {shown}");
        assert_eq!(shown["webhookSecret"], "••••7a1b");
        assert!(!shown.to_string().contains("k3y9"), "{shown}");
    }
    let table = stack.tenants_table_text().await;
    assert!(!table.contains("k3y9"), "the short secret is stored only sealed");
    stack.remove().await;
}
