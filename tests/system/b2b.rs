//! Partner platforms through the local stack: made by the operator, provisioning users one
//! at a time and a thousand at once (idempotently), acting for them, and never reaching
//! another platform's users.

use edge::routes::{Access, ROUTES};
use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, Stack, eventually};

fn row(n: usize) -> Value {
    json!({"userId": format!("cust-{n:04}"), "platformUserId": format!("p{n}")})
}

/// A stack, its local app, an operator's token, and a platform `name` made by it (its id
/// and key).
async fn with_platform(name: &str) -> (Stack, App, String, String, String) {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let operator = app.operator_token(&stack).await;
    let (platform, key) = app.platform(&operator, name).await;
    (stack, app, operator, platform, key)
}

/// Creates `user_id` for the platform whose key is `key`: the user's tenant id.
async fn b2b_user(app: &App, key: &str, user_id: &str, platform_user_id: &str) -> String {
    let user = json!({"userId": user_id, "platformUserId": platform_user_id});
    let (status, created) = app.call("POST", "/api/b2b/users", Some(key), Some(user)).await;
    assert_eq!(status, 201, "{created}");
    created["tenantId"].as_str().expect("tenant").to_owned()
}

/// The same, its channel switched (by the platform, acting for it) to the sandbox.
async fn sandbox_b2b_user(app: &App, key: &str, user_id: &str, platform_user_id: &str) -> String {
    let tenant = b2b_user(app, key, user_id, platform_user_id).await;
    let sandbox = json!({"provider": "sandbox"});
    let acting = [("x-tenant-id", user_id)];
    let (status, _) =
        app.call_with("PUT", "/api/whatsapp/channel", Some(key), &acting, Some(sandbox)).await;
    assert_eq!(status, 200);
    tenant
}

#[tokio::test]
async fn a_platform_provisions_a_thousand_users_in_one_call_and_a_repeat_changes_nothing() {
    let (stack, app, operator, platform, key) = with_platform("Acme CRM").await;

    // 1,000 rows, three of them bad, one a repeat of an earlier row.
    let mut rows: Vec<Value> = (0..996).map(row).collect();
    rows.push(json!({"userId": "has space", "platformUserId": "x"}));
    rows.push(json!({"userId": "no-platform-user-id"}));
    rows.push(json!({"userId": "bad-tier", "platformUserId": "x", "tier": "gold"}));
    rows.push(row(5));
    let body = json!({"users": rows});
    let (status, first) =
        app.call("POST", "/api/b2b/users/bulk", Some(&key), Some(body.clone())).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(
        (&first["created"], &first["existing"], &first["failed"]),
        (&json!(996), &json!(0), &json!(4))
    );
    let results = first["results"].as_array().expect("results");
    assert_eq!(results.len(), 1_000, "one result per row, in order");
    assert_eq!(results[0]["userId"], "cust-0000");
    assert_eq!(results[0]["status"], "created");
    for (index, field) in [(996, "userId"), (997, "platformUserId"), (998, "tier")] {
        assert_eq!(results[index]["status"], "failed");
        assert!(
            results[index]["error"].as_str().is_some_and(|e| e.contains(field)),
            "{}",
            results[index]
        );
    }
    assert!(results[999]["error"].as_str().is_some_and(|e| e.contains("row 5")));

    let (status, again) = app.call("POST", "/api/b2b/users/bulk", Some(&key), Some(body)).await;
    assert_eq!(status, 200);
    assert_eq!(
        (&again["created"], &again["existing"], &again["failed"]),
        (&json!(0), &json!(996), &json!(4))
    );
    assert_eq!(again["results"][0]["tenantId"], first["results"][0]["tenantId"], "the same tenant");

    // The operator sees the count; the list pages through them all.
    let (_, seen) =
        app.call("GET", &format!("/api/admin/platforms/{platform}"), Some(&operator), None).await;
    assert_eq!(seen["userCount"], 996, "{seen}");
    let mut listed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/b2b/platforms/{platform}/users?limit=100&cursor={c}"),
            None => format!("/api/b2b/platforms/{platform}/users?limit=100"),
        };
        let (status, page) = app.call("GET", &path, Some(&key), None).await;
        assert_eq!(status, 200, "{page}");
        let items = page["items"].as_array().expect("items");
        assert!(
            items.iter().all(|u| u["state"] == "disconnected" && u["tier"] == "enterprise_b2b")
        );
        listed += items.len();
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(listed, 996);
    let path = format!("/api/b2b/platforms/{platform}/users?page=3&limit=10");
    let (_, third) = app.call("GET", &path, Some(&key), None).await;
    assert_eq!(third["items"][0]["userId"], "cust-0020", "page 3 of 10 starts at the 21st");
    assert_eq!(third["page"], 3);

    // Too many rows, or none.
    let many: Vec<Value> = (0..1_001).map(row).collect();
    let (status, _) =
        app.call("POST", "/api/b2b/users/bulk", Some(&key), Some(json!({"users": many}))).await;
    assert_eq!(status, 413);
    let (status, _) =
        app.call("POST", "/api/b2b/users/bulk", Some(&key), Some(json!({"users": []}))).await;
    assert_eq!(status, 422);
    stack.remove().await;
}

#[tokio::test]
async fn one_user_is_created_read_updated_and_its_create_is_idempotent() {
    let (stack, app, operator, platform, key) = with_platform("Solo").await;
    let user = json!({"userId": "shop-42", "platformUserId": "acct-42", "platformName": "Shop 42"});

    let (status, created) =
        app.call("POST", "/api/b2b/users", Some(&key), Some(user.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        (&created["platformId"], &created["tier"]),
        (&json!(platform), &json!("enterprise_b2b"))
    );
    assert!(created["tenantId"].as_str().is_some_and(|t| t.starts_with("ten_")));
    let (status, again) = app.call("POST", "/api/b2b/users", Some(&key), Some(user)).await;
    assert_eq!((status, &again["tenantId"]), (200, &created["tenantId"]));
    let other = json!({"userId": "shop-42", "platformUserId": "someone-else"});
    let (status, conflict) = app.call("POST", "/api/b2b/users", Some(&key), Some(other)).await;
    assert_eq!((status, &conflict["code"]), (409, &json!("user_exists")));
    let foreign = json!({"userId": "shop-43", "platformUserId": "x", "platformId": "plt_other"});
    let (status, _) = app.call("POST", "/api/b2b/users", Some(&key), Some(foreign)).await;
    assert_eq!(status, 403, "a platformId that is not the caller's");

    let (status, read) = app.call("GET", "/api/b2b/users/shop-42", Some(&key), None).await;
    assert_eq!((status, &read["platformName"]), (200, &json!("Shop 42")));
    let change = json!({"tier": "professional", "platformUserId": "acct-42b"});
    let (status, updated) =
        app.call("PUT", "/api/b2b/users/shop-42", Some(&key), Some(change)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(
        (&updated["tier"], &updated["platformUserId"]),
        (&json!("professional"), &json!("acct-42b"))
    );
    // The user's tenant moved to that tier's limits.
    let (status, tenant) =
        app.call_with("GET", "/api/tenant", Some(&key), &[("x-tenant-id", "shop-42")], None).await;
    assert_eq!((status, &tenant["tier"]), (200, &json!("professional")), "{tenant}");
    let (status, _) =
        app.call("PUT", "/api/b2b/users/shop-42", Some(&key), Some(json!({"tier": 1}))).await;
    assert_eq!(status, 422);
    let (status, _) = app.call("GET", "/api/b2b/users/nobody", Some(&key), None).await;
    assert_eq!(status, 404);

    // The old key works for a day after a rotation; the new one at once.
    let path = format!("/api/admin/platforms/{platform}/rotate-key");
    let (status, rotated) = app.call("POST", &path, Some(&operator), None).await;
    assert_eq!(status, 200, "{rotated}");
    let new_key = rotated["apiKey"].as_str().expect("new key");
    for key in [key.as_str(), new_key] {
        let (status, _) = app.call("GET", "/api/b2b/users/shop-42", Some(key), None).await;
        assert_eq!(status, 200);
    }
    let (status, _) = app.call("POST", &path, Some(&operator), None).await;
    assert_eq!(status, 200);
    let (status, _) = app.call("GET", "/api/b2b/users/shop-42", Some(&key), None).await;
    assert_eq!(status, 401, "a key rotated away twice works no more");
    stack.remove().await;
}

#[tokio::test]
async fn a_platform_acts_for_its_user_and_is_the_actor_of_record() {
    let (stack, app, _operator, platform, key) = with_platform("Actor").await;
    let tenant = b2b_user(&app, &key, "u1", "p1").await;
    let acting = [("x-tenant-id", "u1")];

    // A new user has a web channel; the platform switches it to the sandbox for the test.
    let (status, channel) =
        app.call_with("GET", "/api/whatsapp/channel", Some(&key), &acting, None).await;
    assert_eq!((status, &channel["provider"]), (200, &json!("web")), "{channel}");
    let sandbox = json!({"provider": "sandbox"});
    let (status, _) =
        app.call_with("PUT", "/api/whatsapp/channel", Some(&key), &acting, Some(sandbox)).await;
    assert_eq!(status, 200);

    // A customer writes; the platform sees the conversation and answers, both ways.
    let customer = "+15550800001";
    customer_writes_to(&app, &tenant, customer, "Hi").await;
    let conversations = eventually(20, "the conversation", || async {
        let (_, list) = app.call_with("GET", "/api/conversations", Some(&key), &acting, None).await;
        list["items"].as_array().filter(|items| !items.is_empty()).cloned()
    })
    .await;
    assert_eq!(conversations.len(), 1);
    let reply = json!({"to": customer, "type": "text", "clientMessageId": "r1",
        "text": {"body": "Hello from the platform"}});
    let (status, sent) =
        app.call_with("POST", "/api/messages", Some(&key), &acting, Some(reply)).await;
    assert_eq!(status, 202, "{sent}");
    let alias = json!({"to": customer, "type": "text", "clientMessageId": "r2",
        "text": {"body": "And through the alias"}});
    let (status, sent) =
        app.call("POST", "/api/b2b/users/u1/messages", Some(&key), Some(alias)).await;
    assert_eq!(status, 202, "{sent}");
    eventually(20, "both replies sent", || async {
        (app.sandbox_sent(customer).await.len() >= 2).then_some(())
    })
    .await;

    // Without X-Tenant-Id the key is the platform's own: no messages of its own to send.
    let (status, _) = app.call("GET", "/api/conversations", Some(&key), None).await;
    assert_eq!(status, 403);
    // A user token may not name another tenant.
    let owner = app.register(&switchboard_tests::email("not-a-platform")).await;
    let (status, _) =
        app.call_with("GET", "/api/conversations", Some(&owner.access_token), &acting, None).await;
    assert_eq!(status, 422);

    // The channel change is in the user's audit trail with the platform as actor.
    let tenants = &stack.resources.tenants_table;
    let audit = stack.tenant_items(tenants, &tenant, "AUDIT#").await;
    let replaced = audit
        .iter()
        .find(|e| {
            e.get("action").and_then(|a| a.as_s().ok()).is_some_and(|a| a == "channel.replaced")
        })
        .expect("audited");
    assert_eq!(replaced.get("actorId").and_then(|a| a.as_s().ok()), Some(&platform));
    stack.remove().await;
}

/// A value for a path parameter other than the user or platform.
fn some_id(name: &str) -> &'static str {
    match name {
        "deliveryId" => "msg_0123456789abcdef0123456789abcdef",
        "tenantId" => "ten_0123456789abcdef0123456789abcdef",
        _ => "x_0123456789abcdef0123456789abcdef",
    }
}

#[tokio::test]
async fn another_platforms_users_are_404_on_every_route() {
    let (stack, app, operator, _platform, key_a) = with_platform("Platform A").await;
    let (platform_b, key_b) = app.platform(&operator, "Platform B").await;
    b2b_user(&app, &key_b, "b-user", "b").await;

    // Every route that takes credentials, from the route table: platform A naming B's user
    // (in X-Tenant-Id and in the path) or B's platform is 404.
    let mut checked = 0;
    for route in ROUTES.iter().filter(|r| r.access != Access::Public) {
        let path: String = route
            .path
            .split('/')
            .map(|part| match part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                Some("userId") => "b-user".to_owned(),
                Some("platformId") => platform_b.clone(),
                Some(other) => some_id(other).to_owned(),
                None => part.to_owned(),
            })
            .collect::<Vec<_>>()
            .join("/");
        let body = matches!(route.method, "POST" | "PUT" | "PATCH").then(|| json!({}));
        let (status, answer) = app
            .call_with(route.method, &path, Some(&key_a), &[("x-tenant-id", "b-user")], body)
            .await;
        assert_eq!(status, 404, "{} {path}: {answer}", route.method);
        checked += 1;
    }
    assert!(checked > 40, "{checked} routes");

    // And B's own key reaches its user.
    let (status, _) = app.call("GET", "/api/b2b/users/b-user", Some(&key_b), None).await;
    assert_eq!(status, 200);
    let (status, _) = app.call("GET", "/api/b2b/users/b-user", Some(&key_a), None).await;
    assert_eq!(status, 404, "without the header too");
    stack.remove().await;
}

#[tokio::test]
async fn aws_requests_per_user_of_a_bulk_create_are_counted() {
    use std::time::Instant;
    use switchboard_tests::{RequestCounter, cost};
    let (stack, _app, _operator, platform, key) = with_platform("Counted").await;

    let counter = RequestCounter::default();
    let clients = Emulator::shared().counted_clients(&counter).await;
    let api = edge::config::ApiConfig {
        token_keys: std::sync::Arc::new(
            edge::tokens::TokenKeys::parse(
                &switchboard_tests::test_key_spec(),
                edge::tokens::DEFAULT_ISSUER,
                "test",
            )
            .expect("keys"),
        ),
        sandbox: adapters::channel::SandboxCredentials::default(),
        graph: switchboard_tests::loopback_graph(None),
        pools: domain::sessions::PoolPolicies::default(),
    };
    let b2b = b2b::Deps::build(&clients, &stack.resources, &api);
    let sample = include_str!("../../events/b2b/bulk-create-unauthenticated.json");
    let mut event: Value = serde_json::from_str(sample).expect("sample");
    let rows: Vec<Value> = (0..100).map(row).collect();
    event["body"] = json!(json!({"users": rows}).to_string());
    event["headers"]["authorization"] = json!(format!("Bearer {key}"));
    let request = || lambda_http::request::from_str(&event.to_string()).expect("request");
    let mut stats_event = event.clone();
    let stats_path = format!("/api/b2b/platforms/{platform}/stats");
    stats_event["routeKey"] = json!("GET /api/b2b/platforms/{platformId}/stats");
    stats_event["requestContext"]["routeKey"] = stats_event["routeKey"].clone();
    stats_event["rawPath"] = json!(stats_path);
    stats_event["requestContext"]["http"]["path"] = json!(stats_path);
    stats_event["requestContext"]["http"]["method"] = json!("GET");
    stats_event["pathParameters"] = json!({"platformId": platform});
    stats_event["body"] = Value::Null;

    counter.take();
    let started = Instant::now();
    let response = b2b::handle(&b2b, request()).await.expect("handled");
    assert_eq!(response.status(), 200);
    let created = counter.take();
    cost::record("b2b.bulk_create", &counter.taken_calls(), started.elapsed(), 100);
    let response = b2b::handle(&b2b, request()).await.expect("handled");
    assert_eq!(response.status(), 200);
    let repeated = counter.take();
    println!("bulk create of 100 users: {created:?}; the same again: {repeated:?}");
    let count = |batch: &std::collections::BTreeMap<String, u32>, k: &str| {
        batch.get(k).copied().unwrap_or(0)
    };
    // The key looked up; the 100 directory entries read in one BatchGetItem; four
    // transactions of 25 users (3 items each, and a counter); the audit entry.
    assert_eq!(count(&created, "DynamoDB.GetItem"), 1, "{created:?}");
    assert_eq!(count(&created, "DynamoDB.BatchGetItem"), 1, "{created:?}");
    assert_eq!(count(&created, "DynamoDB.TransactWriteItems"), 4, "{created:?}");
    assert_eq!(count(&created, "DynamoDB.PutItem"), 1, "{created:?}");
    assert_eq!(created.len(), 4, "nothing else: {created:?}");
    counter.take();
    let stats_request = lambda_http::request::from_str(&stats_event.to_string()).expect("request");
    let response = b2b::handle(&b2b, stats_request).await.expect("handled");
    assert_eq!(response.status(), 200);
    let read = counter.take();
    println!("platform stats: {read:?}");
    cost::record_items(&stack).await;
    // The key; the user counters (one query); active days and message counters (one batch).
    assert_eq!(count(&read, "DynamoDB.GetItem"), 1, "{read:?}");
    assert_eq!(count(&read, "DynamoDB.Query"), 1, "{read:?}");
    assert_eq!(count(&read, "DynamoDB.BatchGetItem"), 1, "{read:?}");
    assert_eq!(read.len(), 3, "nothing else: {read:?}");
    // A repeat reads and writes nothing but the key and the directory entries.
    assert_eq!(count(&repeated, "DynamoDB.GetItem"), 1, "{repeated:?}");
    assert_eq!(count(&repeated, "DynamoDB.BatchGetItem"), 1, "{repeated:?}");
    assert_eq!(repeated.len(), 2, "nothing else: {repeated:?}");
    stack.remove().await;
}

#[tokio::test]
async fn a_platform_subscription_receives_the_events_of_all_its_users_with_their_ids() {
    let (stack, app, _operator, _platform, key) = with_platform("Hooked").await;
    let tenant = sandbox_b2b_user(&app, &key, "hooked-1", "crm-77").await;
    let acting = [("x-tenant-id", "hooked-1")];

    // The platform's own subscription (no X-Tenant-Id) and the user's (acting for it).
    let receiver = |name: &str| format!("{}/_sandbox/receiver/{name}", app.sandbox_url);
    let events = json!(["message.received"]);
    let platform_hook = json!({"url": receiver("platform-hook"), "events": events});
    let (status, platform_sub) =
        app.call("POST", "/api/webhooks", Some(&key), Some(platform_hook)).await;
    assert_eq!(status, 201, "{platform_sub}");
    let user_hook = json!({"url": receiver("user-hook"), "events": events});
    let (status, _) =
        app.call_with("POST", "/api/webhooks", Some(&key), &acting, Some(user_hook)).await;
    assert_eq!(status, 201);
    let (_, own) = app.call("GET", "/api/webhooks", Some(&key), None).await;
    assert_eq!(own["items"].as_array().map(Vec::len), Some(1), "the platform's own only");

    customer_writes_to(&app, &tenant, "+15550900001", "Hi").await;
    for name in ["platform-hook", "user-hook"] {
        let items = eventually(30, "message.received delivered", || async {
            let got: Value = app.http.get(receiver(name)).send().await.ok()?.json().await.ok()?;
            got["items"].as_array().filter(|i| !i.is_empty()).cloned()
        })
        .await;
        let data = &items[0]["body"]["data"];
        assert_eq!(items[0]["body"]["type"], "message.received", "{name}");
        assert_eq!(
            (&data["userId"], &data["platformUserId"]),
            (&json!("hooked-1"), &json!("crm-77"))
        );
        assert_eq!(data["tenantId"], tenant);
    }
    // The platform's delivery log has it.
    let id = platform_sub["id"].as_str().expect("id");
    let (status, log) =
        app.call("GET", &format!("/api/webhooks/{id}/deliveries"), Some(&key), None).await;
    assert_eq!(status, 200);
    assert_eq!(log["items"][0]["eventType"], "message.received");
    stack.remove().await;
}

/// Every item of every table of the stack that mentions `needle` anywhere.
async fn items_mentioning(stack: &Stack, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let r = &stack.resources;
    for table in [&r.tenants_table, &r.pool_table, &r.messages_table] {
        let mut start = None;
        loop {
            let out = stack
                .clients
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("scan");
            for item in out.items() {
                let text = format!("{item:?}");
                if text.contains(needle) {
                    found.push(format!("{table}: {text}"));
                }
            }
            start = out.last_evaluated_key().cloned();
            if start.is_none() {
                break;
            }
        }
    }
    found
}

/// The (pk, sk) of every item in the tenant's partitions of every table.
async fn partition_keys(
    stack: &Stack,
    tenant: &str,
) -> std::collections::BTreeSet<(String, String)> {
    let r = &stack.resources;
    let mut keys = std::collections::BTreeSet::new();
    for table in [&r.tenants_table, &r.messages_table, &r.pool_table] {
        for item in stack.tenant_items(table, tenant, "").await {
            let text =
                |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
            keys.insert((text("pk"), text("sk")));
        }
    }
    keys
}

/// A B2B user's export, every page of 7 items.
async fn export_all(app: &App, key: &str, tenant: &str) -> Vec<Value> {
    let mut exported = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/b2b/users/gone-1/export?limit=7&cursor={c}"),
            None => "/api/b2b/users/gone-1/export?limit=7".to_owned(),
        };
        let (status, page) = app.call("GET", &path, Some(key), None).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["tenantId"], tenant);
        let items = page["items"].as_array().expect("items");
        assert!(items.len() <= 7);
        exported.extend(items.iter().cloned());
        match page["nextCursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => return exported,
        }
    }
}

#[tokio::test]
async fn a_users_data_is_exported_then_erased_from_every_table() {
    let (stack, app, operator, platform, key) = with_platform("Eraser").await;
    let tenant = sandbox_b2b_user(&app, &key, "gone-1", "crm-1").await;
    let keep = sandbox_b2b_user(&app, &key, "kept-1", "crm-2").await;
    let acting = [("x-tenant-id", "gone-1")];

    // Data of every kind: a conversation with messages both ways, a subscription and its
    // deliveries, an API key (with its look-up item), audit entries, usage counters.
    let hook = json!({"url": format!("{}/_sandbox/receiver/erased", app.sandbox_url),
        "events": ["*"]});
    let (status, _) = app.call_with("POST", "/api/webhooks", Some(&key), &acting, Some(hook)).await;
    assert_eq!(status, 201);
    let (status, _) = app
        .call_with("POST", "/api/api-keys", Some(&key), &acting, Some(json!({"name": "crm"})))
        .await;
    assert_eq!(status, 201);
    for (user, who) in [(&tenant, "+15550910001"), (&keep, "+15550910002")] {
        customer_writes_to(&app, user, who, "Hi").await;
    }
    eventually(20, "the conversation", || async {
        let (_, list) = app.call_with("GET", "/api/conversations", Some(&key), &acting, None).await;
        list["items"].as_array().filter(|items| !items.is_empty()).cloned()
    })
    .await;
    let reply = json!({"to": "+15550910001", "type": "text", "clientMessageId": "bye",
        "text": {"body": "Bye"}});
    let (status, _) =
        app.call_with("POST", "/api/messages", Some(&key), &acting, Some(reply)).await;
    assert_eq!(status, 202);
    eventually(20, "the reply sent and its delivery logged", || async {
        (!app.sandbox_sent("+15550910001").await.is_empty()).then_some(())
    })
    .await;
    let stored = items_mentioning(&stack, &tenant).await;
    assert!(!stored.is_empty());

    // The export, page by page, has every item of the tenant's partitions, and no secret
    // (compared once the tenant's items stop changing: status webhooks arrive for a while).
    let mut exported = Vec::new();
    for _ in 0..20 {
        let before = partition_keys(&stack, &tenant).await;
        exported = export_all(&app, &key, &tenant).await;
        let after = partition_keys(&stack, &tenant).await;
        // The export's own audit entry, written once its last page is read.
        let added: Vec<_> = after.difference(&before).collect();
        let quiet =
            before.is_subset(&after) && added.len() == 1 && added[0].1.starts_with("AUDIT#");
        if quiet {
            let keys: std::collections::BTreeSet<(String, String)> = exported
                .iter()
                .map(|e| {
                    let item = &e["item"];
                    (
                        item["pk"].as_str().unwrap_or("").to_owned(),
                        item["sk"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect();
            assert_eq!(keys, before, "every item of its partitions");
            assert_eq!(keys.len(), exported.len(), "once each");
            break;
        }
        exported.clear();
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(!exported.is_empty(), "the tenant's items never stopped changing");
    let text = serde_json::to_string(&exported).expect("json");
    assert!(text.contains("\"sk\":\"CHANNEL\"") && text.contains("conversationId"), "{text}");
    assert!(!text.contains("whsec_") && !text.contains("sbk_"), "no secret in an export");
    let (status, _) = app.call_with("GET", "/api/tenant/export", Some(&key), &acting, None).await;
    assert_eq!(status, 200, "the tenant route, acting for the user");

    let (status, _) = app.call("DELETE", "/api/b2b/users/gone-1", Some(&key), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("GET", "/api/b2b/users/gone-1", Some(&key), None).await;
    assert_eq!(status, 404);
    let (status, _) = app.call_with("GET", "/api/conversations", Some(&key), &acting, None).await;
    assert_eq!(status, 404, "nothing reaches it any more");
    let (status, _) = app.call("DELETE", "/api/b2b/users/gone-1", Some(&key), None).await;
    assert_eq!(status, 404);

    let left = eventually(30, "every item of the tenant erased", || async {
        let left = items_mentioning(&stack, &tenant).await;
        left.is_empty().then_some(left)
    })
    .await;
    assert!(left.is_empty());
    // The other user is untouched, and the platform's trail records the erasure.
    assert!(!items_mentioning(&stack, &keep).await.is_empty());
    let (status, _) = app.call("GET", "/api/b2b/users/kept-1", Some(&key), None).await;
    assert_eq!(status, 200);
    let (_, seen) =
        app.call("GET", &format!("/api/admin/platforms/{platform}"), Some(&operator), None).await;
    assert_eq!(seen["userCount"], 1);
    let own = seen["tenantId"].as_str().expect("the platform's own tenant");
    let trail = stack.tenant_items(&stack.resources.tenants_table, own, "AUDIT#").await;
    let erased = trail.iter().find(|e| {
        e.get("action").and_then(|a| a.as_s().ok()).is_some_and(|a| a == "b2b.user_erased")
    });
    let erased = erased.expect("the erasure is in the platform's trail");
    assert_eq!(
        erased.get("targetId").and_then(|a| a.as_s().ok()).map(String::as_str),
        Some("gone-1")
    );
    stack.remove().await;
}

/// A customer writes `text` to the B2B user whose tenant is `tenant`.
async fn customer_writes_to(app: &App, tenant: &str, from: &str, text: &str) {
    let written = app
        .http
        .post(format!("{}/_sandbox/inbound", app.sandbox_url))
        .json(&json!({"tenantId": tenant, "from": from, "text": text}))
        .send()
        .await
        .expect("inbound");
    assert_eq!(written.status(), 202);
}

#[tokio::test]
async fn platform_stats_follow_the_messages_of_its_users_from_counters() {
    let (stack, app, operator, platform, key) = with_platform("Counted users").await;
    let first = sandbox_b2b_user(&app, &key, "s1", "c1").await;
    let second = sandbox_b2b_user(&app, &key, "s2", "c2").await;
    b2b_user(&app, &key, "s3", "c3").await;
    let path = format!("/api/b2b/platforms/{platform}/stats");
    let (status, stats) = app.call("GET", &path, Some(&key), None).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(
        stats,
        json!({"totalUsers": 3, "activeUsers": 0, "totalMessages": 0,
            "averageMessagesPerUser": 0.0, "sessions": {"disconnected": 3}})
    );

    // Three messages in, to two users; one answer out.
    customer_writes_to(&app, &first, "+15550920001", "one").await;
    customer_writes_to(&app, &first, "+15550920001", "two").await;
    customer_writes_to(&app, &second, "+15550920002", "three").await;
    eventually(20, "the inbound messages stored", || async {
        let (_, list) = app
            .call_with("GET", "/api/conversations", Some(&key), &[("x-tenant-id", "s1")], None)
            .await;
        list["items"].as_array().filter(|items| !items.is_empty()).cloned()
    })
    .await;
    let reply = json!({"to": "+15550920001", "type": "text", "clientMessageId": "stats-1",
        "text": {"body": "Thanks"}});
    let (status, _) = app.call("POST", "/api/b2b/users/s1/messages", Some(&key), Some(reply)).await;
    assert_eq!(status, 202);
    let stats = eventually(30, "four messages counted", || async {
        let (_, stats) = app.call("GET", &path, Some(&key), None).await;
        (stats["totalMessages"] == 4).then_some(stats)
    })
    .await;
    assert_eq!(stats["totalUsers"], 3);
    assert_eq!(stats["activeUsers"], 2, "{stats}");
    assert_eq!(stats["averageMessagesPerUser"], 1.33);

    // A deleted user leaves the counts; another platform's stats are not this one's.
    let (status, _) = app.call("DELETE", "/api/b2b/users/s3", Some(&key), None).await;
    assert_eq!(status, 204);
    let (_, stats) = app.call("GET", &path, Some(&key), None).await;
    assert_eq!(
        (&stats["totalUsers"], &stats["sessions"]),
        (&json!(2), &json!({"disconnected": 2}))
    );
    let (_, other_key) = app.platform(&operator, "Nosy").await;
    let (status, _) = app.call("GET", &path, Some(&other_key), None).await;
    assert_eq!(status, 404);
    stack.remove().await;
}
