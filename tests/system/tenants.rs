//! GET/PATCH /api/tenant, users, API keys: roles, isolation, audit.

use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, PASSWORD, Registered, Stack, email};

/// A tenant with one account of each role and an API key, plus the operator.
struct Cast {
    owner: Registered,
    tokens: Vec<(&'static str, String)>,
    agent_id: String,
}

async fn create_user(app: &App, admin: &str, role: &str) -> (String, String) {
    let address = email(&role.to_lowercase());
    let (status, body) = app
        .call(
            "POST",
            "/api/users",
            Some(admin),
            Some(json!({"email": address, "name": role, "role": role, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().expect("id").to_owned(), app.login(&address, PASSWORD).await)
}

async fn create_key(app: &App, admin: &str) -> (String, String) {
    let (status, body) =
        app.call("POST", "/api/api-keys", Some(admin), Some(json!({"name": "integration"}))).await;
    assert_eq!(status, 201, "{body}");
    (body["id"].as_str().expect("id").to_owned(), body["key"].as_str().expect("key").to_owned())
}

async fn cast(stack: &Stack, app: &App) -> Cast {
    let owner = app.register(&email("owner")).await;
    // Room for the accounts and keys the matrix creates.
    stack.set_tier(&owner.tenant_id, "enterprise").await;
    let (agent_id, agent) = create_user(app, &owner.access_token, "AGENT").await;
    let (_, billing) = create_user(app, &owner.access_token, "BILLING_ADMIN").await;
    let (_, key) = create_key(app, &owner.access_token).await;
    let operator = app.operator_token(stack).await;
    Cast {
        tokens: vec![
            ("SYSTEM_ADMIN", operator),
            ("TENANT_ADMIN", owner.access_token.clone()),
            ("AGENT", agent),
            ("BILLING_ADMIN", billing),
            ("API_KEY", key),
        ],
        owner,
        agent_id,
    }
}

#[tokio::test]
async fn every_role_gets_what_the_permission_table_grants_on_every_route() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let cast = cast(&stack, &app).await;
    let admin = cast.owner.access_token.clone();

    // Written out from API.md, not computed from the code's table.
    // Columns: SYSTEM_ADMIN, TENANT_ADMIN, AGENT, BILLING_ADMIN, API_KEY.
    // The operator belongs to no customer tenant: ids inside one are 404 to it.
    let expected: Vec<(&str, &str, [u16; 5])> = vec![
        ("GET", "/api/auth/me", [200, 200, 200, 200, 403]),
        ("POST", "/api/auth/logout", [204, 204, 204, 204, 403]),
        ("GET", "/api/tenant", [403, 200, 403, 403, 403]),
        ("PATCH", "/api/tenant", [403, 200, 403, 403, 403]),
        ("GET", "/api/users", [403, 200, 403, 403, 403]),
        ("POST", "/api/users", [403, 201, 403, 403, 403]),
        ("PATCH", "/api/users/{agent}", [404, 200, 403, 403, 403]),
        ("DELETE", "/api/users/{victim}", [404, 204, 403, 403, 403]),
        ("GET", "/api/api-keys", [403, 200, 403, 403, 403]),
        ("POST", "/api/api-keys", [403, 201, 403, 403, 403]),
        ("DELETE", "/api/api-keys/{key}", [404, 204, 403, 403, 403]),
        ("GET", "/api/webhooks", [403, 200, 403, 403, 200]),
        ("POST", "/api/webhooks", [403, 422, 403, 403, 422]),
    ];
    for (method, template, statuses) in expected {
        for ((role, token), want) in cast.tokens.iter().zip(statuses) {
            let mut path = template.replace("{agent}", &cast.agent_id);
            if template.contains("{victim}") {
                let (victim, _) = create_user(&app, &admin, "AGENT").await;
                path = template.replace("{victim}", &victim);
            }
            if template.contains("{key}") {
                let (key_id, _) = create_key(&app, &admin).await;
                path = template.replace("{key}", &key_id);
            }
            let body = match (method, template) {
                ("POST", "/api/auth/logout") => Some(json!({"refreshToken": "sbr_none"})),
                ("PATCH", "/api/tenant") => Some(json!({"name": "Renamed"})),
                ("POST", "/api/users") => Some(
                    json!({"email": email("new"), "name": "N", "role": "AGENT", "password": PASSWORD}),
                ),
                ("PATCH", _) => Some(json!({"name": "Agent Smith"})),
                ("POST", "/api/api-keys") => Some(json!({"name": "k"})),
                // Allowed, and refused for its destination (nothing is stored).
                ("POST", "/api/webhooks") => {
                    Some(json!({"url": "http://127.0.0.2:9/hook", "events": ["*"]}))
                }
                _ => None,
            };
            let (status, response) = app.call(method, &path, Some(token), body).await;
            assert_eq!(status, want, "{role} {method} {template}: {response}");
            if status == 403 {
                assert_eq!(response["code"], "forbidden");
            }
        }
    }
    stack.remove().await;
}

#[tokio::test]
async fn another_tenants_users_and_keys_are_404_to_its_token_and_its_key() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let a = app.register(&email("a")).await;
    let b = app.register(&email("b")).await;
    let (b_agent, _) = create_user(&app, &b.access_token, "AGENT").await;
    let (b_key, _) = create_key(&app, &b.access_token).await;
    let (_, a_key) = create_key(&app, &a.access_token).await;

    for token in [&a.access_token, &a_key] {
        for (method, path, body) in [
            ("DELETE", format!("/api/users/{b_agent}"), None),
            ("PATCH", format!("/api/users/{b_agent}"), Some(json!({"role": "TENANT_ADMIN"}))),
            ("DELETE", format!("/api/users/{}", b.user_id), None),
            ("DELETE", format!("/api/api-keys/{b_key}"), None),
        ] {
            let (status, response) = app.call(method, &path, Some(token), body).await;
            assert_eq!(status, 404, "{method} {path}: {response}");
        }
    }
    // A's lists show only A's.
    let (_, users) = app.call("GET", "/api/users", Some(&a.access_token), None).await;
    let ids: Vec<&str> =
        users["items"].as_array().expect("items").iter().filter_map(|u| u["id"].as_str()).collect();
    assert_eq!(ids, vec![a.user_id.as_str()]);
    // B's data is intact.
    let (_, b_users) = app.call("GET", "/api/users", Some(&b.access_token), None).await;
    assert_eq!(b_users["items"].as_array().map(Vec::len), Some(2));
    let (_, b_keys) = app.call("GET", "/api/api-keys", Some(&b.access_token), None).await;
    assert_eq!(b_keys["items"][0]["id"], b_key);

    // A cursor from B's list does not page through B's data for A.
    let (_, page) = app.call("GET", "/api/users?limit=1", Some(&b.access_token), None).await;
    let cursor = page["nextCursor"].as_str().expect("B has two users, so a next page");
    let (status, body) = app
        .call("GET", &format!("/api/users?limit=1&cursor={cursor}"), Some(&a.access_token), None)
        .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("cursor")));
    stack.remove().await;
}

#[tokio::test]
async fn api_keys_are_shown_once_work_record_use_and_stop_when_revoked() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("keys")).await;
    let (key_id, key) = create_key(&app, &owner.access_token).await;
    assert!(key.starts_with("sbk_"));

    let (_, listed) = app.call("GET", "/api/api-keys", Some(&owner.access_token), None).await;
    let entry = &listed["items"][0];
    assert_eq!(entry["id"], key_id);
    assert!(entry.get("key").is_none(), "the key is never shown again: {entry}");
    assert!(key.starts_with(entry["prefix"].as_str().expect("prefix")));
    assert_eq!(entry["lastUsedAt"], Value::Null);

    // A key authenticates where keys are allowed (here: refused by role, not by identity).
    let (status, _) = app.call("GET", "/api/users", Some(&key), None).await;
    assert_eq!(status, 403, "a valid key is known, and keys may not manage users");
    let (_, listed) = app.call("GET", "/api/api-keys", Some(&owner.access_token), None).await;
    assert!(listed["items"][0]["lastUsedAt"].is_string(), "use is recorded");

    let stored = stack.tenants_table_text().await;
    assert!(!stored.contains(&key[20..]), "only a digest of the key is stored");

    let (status, _) = app
        .call("DELETE", &format!("/api/api-keys/{key_id}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(status, 204);
    let (status, body) = app.call("GET", "/api/users", Some(&key), None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "a revoked key is unknown"
    );
    let (status, _) = app
        .call("DELETE", &format!("/api/api-keys/{key_id}"), Some(&owner.access_token), None)
        .await;
    assert_eq!(status, 404);

    let actions = stack.audit_actions(&owner.tenant_id).await;
    for action in ["api_key.created", "api_key.revoked"] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
    stack.remove().await;
}

#[tokio::test]
async fn the_last_tenant_admin_stays_and_role_changes_are_audited() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("last")).await;
    let me = format!("/api/users/{}", owner.user_id);

    let (status, body) = app.call("DELETE", &me, Some(&owner.access_token), None).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_tenant_admin")));
    let (status, body) =
        app.call("PATCH", &me, Some(&owner.access_token), Some(json!({"role": "AGENT"}))).await;
    assert_eq!((status, body["code"].as_str()), (409, Some("last_tenant_admin")));

    // With a second admin, the first may step down, and then be removed.
    let (second_id, second) = create_user(&app, &owner.access_token, "AGENT").await;
    let (status, promoted) = app
        .call(
            "PATCH",
            &format!("/api/users/{second_id}"),
            Some(&owner.access_token),
            Some(json!({"role": "TENANT_ADMIN"})),
        )
        .await;
    assert_eq!((status, promoted["role"].as_str()), (200, Some("TENANT_ADMIN")));
    let (status, _) = app.call("GET", "/api/users", Some(&second), None).await;
    assert_eq!(status, 200, "the new role applies to the existing token at once");
    let (status, _) = app.call("DELETE", &me, Some(&second), None).await;
    assert_eq!(status, 204);
    let (status, _) = app.call("GET", "/api/auth/me", Some(&owner.access_token), None).await;
    assert_eq!(status, 401, "a removed user's token stops working");
    let (status, _) = app
        .call(
            "PATCH",
            &format!("/api/users/{second_id}"),
            Some(&second),
            Some(json!({"role": "SYSTEM_ADMIN"})),
        )
        .await;
    assert_eq!(status, 422, "SYSTEM_ADMIN cannot be granted");

    let actions = stack.audit_actions(&owner.tenant_id).await;
    for action in ["user.created", "user.role_changed", "user.removed"] {
        assert!(actions.contains(&action.to_owned()), "{action} in {actions:?}");
    }
    stack.remove().await;
}

#[tokio::test]
async fn tenant_settings_update_with_validation_and_a_read_only_tier() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("settings")).await;
    let token = Some(owner.access_token.as_str());

    let (status, tenant) = app.call("GET", "/api/tenant", token, None).await;
    assert_eq!(status, 200);
    assert_eq!(tenant["tier"], "standard");
    assert_eq!(tenant["limits"]["maxUsers"], 5);

    let patch = json!({
        "name": "Acme Support",
        "branding": {"logoUrl": "https://cdn.example.com/logo.png", "primaryColor": "#112233"},
        "settings": {"autoAssignment": true, "businessHours": {"timezone": "Europe/Berlin",
            "days": [{"day": "mon", "open": "09:00", "close": "17:00"}]}}
    });
    let (status, updated) = app.call("PATCH", "/api/tenant", token, Some(patch)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["name"], "Acme Support");
    assert_eq!(updated["branding"]["primaryColor"], "#112233");
    assert_eq!(updated["settings"]["autoAssignment"], true);
    let (_, again) = app.call("GET", "/api/tenant", token, None).await;
    assert_eq!(again["settings"]["businessHours"]["days"][0]["close"], "17:00");

    let before = stack.tenants_items().await;
    for (body, field) in [
        (json!({"tier": "enterprise"}), "tier"),
        (json!({"limits": {"maxUsers": 1000}}), "limits"),
        (json!({"branding": {"primaryColor": "blue"}}), "branding.primaryColor"),
        (json!({"name": ""}), "name"),
        (json!({"colour": "x"}), "colour"),
    ] {
        let (status, problem) = app.call("PATCH", "/api/tenant", token, Some(body)).await;
        assert_eq!(
            (status, problem["errors"][0]["field"].as_str()),
            (422, Some(field)),
            "{problem}"
        );
    }
    let (_, unchanged) = app.call("GET", "/api/tenant", token, None).await;
    assert_eq!(
        (unchanged["tier"].as_str(), unchanged["name"].as_str()),
        (Some("standard"), Some("Acme Support"))
    );
    assert_eq!(stack.tenants_items().await, before, "refused patches wrote nothing");
    stack.remove().await;
}

#[tokio::test]
async fn user_lists_page_with_opaque_cursors_and_plan_limits_hold() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("pages")).await;
    let admin = Some(owner.access_token.as_str());
    for _ in 0..4 {
        create_user(&app, &owner.access_token, "AGENT").await;
    }
    // Standard allows 5 users: the owner and four agents.
    let (status, body) = app
        .call("POST", "/api/users", admin, Some(json!({"email": email("sixth"), "name": "S", "role": "AGENT", "password": PASSWORD})))
        .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("plan_limit_reached")));

    let mut seen = Vec::new();
    let mut path = "/api/users?limit=2".to_owned();
    loop {
        let (status, page) = app.call("GET", &path, admin, None).await;
        assert_eq!(status, 200);
        seen.extend(page["items"].as_array().expect("items").iter().map(|u| u["id"].clone()));
        match page["nextCursor"].as_str() {
            Some(cursor) => path = format!("/api/users?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    seen.sort_by_key(|v| v.to_string());
    seen.dedup();
    assert_eq!(seen.len(), 5);
    for bad in ["limit=0", "limit=101", "limit=x", "cursor=garbage"] {
        assert_eq!(
            app.call("GET", &format!("/api/users?{bad}"), admin, None).await.0,
            422,
            "{bad}"
        );
    }
    stack.remove().await;
}
