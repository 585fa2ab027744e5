//! POST /api/auth/register, login, refresh, logout; GET /api/auth/me.

// NOTE: over 400 lines: the system tests of one capability, sharing its helpers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use switchboard_tests::{App, Emulator, PASSWORD, Stack, email};

#[tokio::test]
async fn register_login_me_refresh_logout_is_one_coherent_flow() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let address = email("owner");

    let (status, registered) = app
        .call(
            "POST",
            "/api/auth/register",
            None,
            Some(json!({"tenantName": "Acme", "email": address.to_uppercase(), "password": PASSWORD, "name": "Ana"})),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["tenant"]["name"], "Acme");
    assert_eq!(registered["tenant"]["tier"], "standard");
    assert_eq!(registered["user"]["email"], address, "emails are stored lower-cased");
    assert_eq!(registered["user"]["role"], "TENANT_ADMIN");
    assert_eq!(registered["expiresIn"], 900);
    assert!(registered["user"].get("passwordHash").is_none());

    let (status, login) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": address, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let access = login["accessToken"].as_str().expect("access");
    let refresh = login["refreshToken"].as_str().expect("refresh");
    assert_eq!(login["user"]["id"], registered["user"]["id"]);

    let (status, me) = app.call("GET", "/api/auth/me", Some(access), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["email"], address);
    assert_eq!(me["tenant"]["id"], registered["tenant"]["id"]);

    let (status, refreshed) =
        app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": refresh}))).await;
    assert_eq!(status, 200, "{refreshed}");
    let new_refresh = refreshed["refreshToken"].as_str().expect("rotated");
    assert_ne!(new_refresh, refresh, "refresh tokens rotate");
    let (status, _) =
        app.call("GET", "/api/auth/me", refreshed["accessToken"].as_str(), None).await;
    assert_eq!(status, 200);

    let (status, body) = app
        .call("POST", "/api/auth/logout", Some(access), Some(json!({"refreshToken": new_refresh})))
        .await;
    assert_eq!((status, body), (204, Value::Null));
    let (status, _) = app
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": new_refresh})))
        .await;
    assert_eq!(status, 401, "logout ends the login");

    stack.remove().await;
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_login() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let address = email("reuse");
    let owner = app.register(&address).await;

    let (status, first) = app
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": owner.refresh_token})))
        .await;
    assert_eq!(status, 200);
    let second = first["refreshToken"].as_str().expect("rotated").to_owned();

    // The spent token comes back (stolen, say): refused, and the login it belonged to ends.
    let (status, body) = app
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": owner.refresh_token})))
        .await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "unauthorized");
    let (status, _) =
        app.call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": second}))).await;
    assert_eq!(status, 401, "the legitimate holder's newer token is revoked too");
    assert!(
        stack
            .audit_actions(&owner.tenant_id)
            .await
            .contains(&"login.refresh_reuse_revoked".to_owned())
    );

    // Only that login ends: the user signs in again and that new login refreshes fine.
    let (status, again) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": address, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call(
            "POST",
            "/api/auth/refresh",
            None,
            Some(json!({"refreshToken": again["refreshToken"]})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .call("POST", "/api/auth/refresh", None, Some(json!({"refreshToken": "sbr_unknown"})))
        .await;
    assert_eq!(status, 401);

    stack.remove().await;
}

fn encode_segment(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).expect("json"))
}

fn forge(keys_spec: &str, header: Value, claims: Value, secret_override: Option<&[u8]>) -> String {
    let (kid, secret) = keys_spec.split_once(':').expect("spec");
    let secret = URL_SAFE_NO_PAD.decode(secret).expect("secret");
    let alg: jsonwebtoken::Algorithm = serde_json::from_value(header["alg"].clone()).expect("alg");
    let mut h = jsonwebtoken::Header::new(alg);
    h.kid = Some(header["kid"].as_str().unwrap_or(kid).to_owned());
    let key = jsonwebtoken::EncodingKey::from_secret(secret_override.unwrap_or(&secret));
    jsonwebtoken::encode(&h, &claims, &key).expect("sign")
}

#[tokio::test]
async fn forged_expired_and_tampered_tokens_are_refused() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let owner = app.register(&email("forge")).await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let claims = |aud: &str, iat: u64, exp: u64| {
        json!({"sub": owner.user_id, "tid": owner.tenant_id, "role": "TENANT_ADMIN",
               "iss": "switchboard", "aud": aud, "iat": iat, "exp": exp})
    };
    let hs256 = json!({"alg": "HS256"});

    // A well-formed token signed with the app's key works: the forgeries below differ in
    // one way each.
    let genuine =
        forge(&app.token_keys_spec, hs256.clone(), claims("switchboard-api", now, now + 600), None);
    assert_eq!(app.call("GET", "/api/auth/me", Some(&genuine), None).await.0, 200);

    let payload = encode_segment(&claims("switchboard-api", now, now + 600));
    let alg_none = format!(
        "{}.{payload}.",
        encode_segment(&json!({"alg": "none", "typ": "JWT", "kid": "test-kid"}))
    );
    let wrong_key = forge(
        &app.token_keys_spec,
        hs256.clone(),
        claims("switchboard-api", now, now + 600),
        Some(&[7u8; 32]),
    );
    let expired = forge(
        &app.token_keys_spec,
        hs256.clone(),
        claims("switchboard-api", now - 7200, now - 3600),
        None,
    );
    let wrong_audience =
        forge(&app.token_keys_spec, hs256.clone(), claims("another-api", now, now + 600), None);
    let other_algorithm = forge(
        &app.token_keys_spec,
        json!({"alg": "HS384"}),
        claims("switchboard-api", now, now + 600),
        None,
    );
    let unknown_kid = forge(
        &app.token_keys_spec,
        json!({"alg": "HS256", "kid": "other"}),
        claims("switchboard-api", now, now + 600),
        None,
    );
    let mut parts: Vec<String> = genuine.split('.').map(str::to_owned).collect();
    let mut elevated = claims("switchboard-api", now, now + 600);
    elevated["role"] = json!("SYSTEM_ADMIN");
    parts[1] = encode_segment(&elevated);
    let tampered = parts.join(".");

    for (name, token) in [
        ("alg none", alg_none),
        ("wrong key", wrong_key),
        ("expired", expired),
        ("wrong audience", wrong_audience),
        ("HS384", other_algorithm),
        ("unknown kid", unknown_kid),
        ("tampered payload", tampered),
        ("garbage", "not.a.token".to_owned()),
    ] {
        let (status, body) = app.call("GET", "/api/auth/me", Some(&token), None).await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["code"], "unauthorized", "{name}");
    }
    assert_eq!(app.call("GET", "/api/auth/me", None, None).await.0, 401, "no token");

    stack.remove().await;
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_same_answer() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let address = email("same");
    app.register(&address).await;

    let (s1, wrong_password) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": address, "password": "not the password!"})),
        )
        .await;
    let (s2, unknown) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": email("nobody"), "password": "not the password!"})),
        )
        .await;
    assert_eq!((s1, s2), (401, 401));
    assert_eq!(wrong_password, unknown);

    stack.remove().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_email_then_it_recovers() {
    let stack = Stack::new(Emulator::shared()).await;
    let policy = auth::LockoutPolicy {
        max_failures_per_email: 3,
        max_failures_per_ip: 100,
        window_secs: 60,
        lock_secs: 2,
    };
    let app = App::spawn_with(&stack, policy).await;
    let address = email("locked");
    let owner = app.register(&address).await;
    let attempt = |password: &'static str| {
        let app = &app;
        let address = address.clone();
        async move {
            let response = app
                .http
                .post(app.url("/api/auth/login"))
                .json(&json!({"email": address, "password": password}))
                .send()
                .await
                .expect("request");
            let retry_after =
                response.headers().get("retry-after").map(|v| v.to_str().unwrap_or("").to_owned());
            (response.status().as_u16(), retry_after)
        }
    };

    assert_eq!(attempt("wrong password 1").await.0, 401);
    assert_eq!(attempt("wrong password 2").await.0, 401);
    let (status, retry_after) = attempt("wrong password 3").await;
    assert_eq!(status, 429, "the third failure locks");
    assert_eq!(retry_after.as_deref(), Some("2"));
    let (status, retry_after) = attempt(PASSWORD).await;
    assert_eq!(status, 429, "even the right password waits out the lock");
    assert!(retry_after.is_some());
    assert!(stack.audit_actions(&owner.tenant_id).await.contains(&"login.locked".to_owned()));

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    assert_eq!(attempt(PASSWORD).await.0, 200, "the lock ends");

    stack.remove().await;
}

#[tokio::test]
async fn bad_input_is_refused_with_problem_details_and_writes_nothing() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let taken = email("taken");
    app.register(&taken).await;
    let before = stack.tenants_items().await;

    let register =
        |body: &str| app.call_raw("POST", "/api/auth/register", None, body.as_bytes().to_vec());
    let (status, body) = register("{\"tenantName\": ").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("malformed_body")));
    let (status, body) = register(r#"{"tenantName":"A","email":"a@example.com","name":"A"}"#).await;
    assert_eq!(status, 422);
    assert_eq!(body["errors"][0]["field"], "password");
    let (status, body) =
        register(r#"{"tenantName":"A","email":"a@example.com","name":"A","password":12}"#).await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("password")));
    let (status, body) =
        register(r#"{"tenantName":"A","email":"a@example.com","name":"A","password":"short"}"#)
            .await;
    assert_eq!((status, body["errors"][0]["field"].as_str()), (422, Some("password")));
    let (status, body) = register(
        r#"{"tenantName":"","email":"nope","name":"A","password":"long enough password"}"#,
    )
    .await;
    assert_eq!(status, 422);
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .expect("errors")
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, vec!["tenantName", "email"]);
    let huge = format!(
        r#"{{"tenantName":"{}","email":"a@example.com","name":"A","password":"long enough password"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(register(&huge).await.0, 413);
    let (status, body) = register(&format!(
        r#"{{"tenantName":"A","email":"{taken}","name":"A","password":"long enough password"}}"#
    ))
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("email_taken")));
    let (status, _) = app.call_raw("POST", "/api/auth/login", None, b"[]".to_vec()).await;
    assert_eq!(status, 422);

    assert_eq!(stack.tenants_items().await, before, "refused requests wrote nothing");
    stack.remove().await;
}

#[tokio::test]
async fn signing_keys_are_read_from_secrets_manager() {
    use edge::tokens::DEFAULT_ISSUER;
    use edge::tokens::token_keys_from_secret;
    let stack = Stack::new(Emulator::shared()).await;
    let name = format!("{}-jwt", stack.prefix);
    let generated = "Z".repeat(64);
    let created = stack
        .clients
        .secrets
        .create_secret()
        .name(&name)
        .secret_string(&generated)
        .send()
        .await
        .expect("create");
    let arn = created.arn().expect("arn").to_owned();

    let keys =
        token_keys_from_secret(&stack.clients, &arn, DEFAULT_ISSUER).await.expect("key ring");
    let user = domain::ids::UserId::generate();
    let tenant = domain::ids::TenantId::generate();
    let token = keys.issue(&user, &tenant, domain::user::Role::Agent, 2_000_000_000).expect("sign");
    assert_eq!(jsonwebtoken::decode_header(&token).expect("header").kid.as_deref(), Some("k0"));

    let missing = token_keys_from_secret(&stack.clients, "no-such-secret", DEFAULT_ISSUER).await;
    assert!(
        missing.expect_err("missing secret").to_string().contains("JWT_SIGNING_KEYS_SECRET_ID")
    );
    stack
        .clients
        .secrets
        .delete_secret()
        .secret_id(&arn)
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("delete");
    stack.remove().await;
}

#[tokio::test]
async fn the_sample_events_are_answered_by_the_auth_and_tenants_handlers() {
    use adapters::store::tenants::TenantStore;
    use domain::passwords::Passwords;
    use edge::principal::Authenticator;
    use edge::tokens::{DEFAULT_ISSUER, TokenKeys};
    use std::sync::Arc;

    let stack = Stack::new(Emulator::shared()).await;
    let keys = Arc::new(
        TokenKeys::parse(&switchboard_tests::test_key_spec(), DEFAULT_ISSUER, "test")
            .expect("keys"),
    );
    let store =
        TenantStore::new(stack.clients.dynamodb.clone(), stack.resources.tenants_table.clone());
    let passwords = Passwords::new().expect("argon2");
    let auth_deps = auth::Deps::new(
        store.clone(),
        keys.clone(),
        passwords.clone(),
        auth::LockoutPolicy::default(),
    );
    let tenants_deps =
        tenants::Deps::new(store.clone(), Authenticator::new(keys, store), passwords);

    for (event, expected) in [
        (include_str!("../../events/auth/login.json"), 401),
        (include_str!("../../events/auth/register.json"), 201),
        (include_str!("../../events/auth/register.json"), 409),
        (include_str!("../../events/auth/login-wrong-password.json"), 401),
        (include_str!("../../events/auth/login.json"), 200),
    ] {
        let response = auth::handle(&auth_deps, request_of(event)).await.expect("handler");
        assert_eq!(
            response.status(),
            expected,
            "{}",
            String::from_utf8_lossy(response.body().as_ref())
        );
    }
    let request = request_of(include_str!("../../events/tenants/get-tenant-unauthenticated.json"));
    let response = tenants::handle(&tenants_deps, request).await.expect("handler");
    assert_eq!(response.status(), 401);
    stack.remove().await;
}

fn request_of(event: &str) -> lambda_http::Request {
    lambda_http::request::from_str(event).expect("API Gateway v2 event")
}

#[tokio::test]
async fn failures_spread_over_many_emails_lock_the_client_address() {
    let stack = Stack::new(Emulator::shared()).await;
    let policy = auth::LockoutPolicy {
        max_failures_per_email: 100,
        max_failures_per_ip: 3,
        window_secs: 60,
        lock_secs: 60,
    };
    let app = App::spawn_with(&stack, policy).await;
    let address = email("victim");
    app.register(&address).await;

    for attempt in 0..2 {
        let (status, _) = app
            .call("POST", "/api/auth/login", None, Some(json!({"email": email(&format!("guess{attempt}")), "password": "guessing here"})))
            .await;
        assert_eq!(status, 401);
    }
    let (status, body) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": email("guess2"), "password": "guessing here"})),
        )
        .await;
    assert_eq!((status, body["code"].as_str()), (429, Some("rate_limited")));
    let (status, _) = app
        .call(
            "POST",
            "/api/auth/login",
            None,
            Some(json!({"email": address, "password": PASSWORD})),
        )
        .await;
    assert_eq!(status, 429, "the address stays locked, whatever account it tries");
    stack.remove().await;
}

#[tokio::test]
async fn the_operator_is_created_once_with_the_password_from_secrets_manager() {
    use adapters::operator::{OperatorConfig, ensure_operator};
    use adapters::store::tenants::TenantStore;
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let store =
        TenantStore::new(stack.clients.dynamodb.clone(), stack.resources.tenants_table.clone());
    let secret = stack
        .clients
        .secrets
        .create_secret()
        .name(format!("{}-operator", stack.prefix))
        .secret_string("generated operator password")
        .send()
        .await
        .expect("secret");
    let address = email("ops");
    let config = OperatorConfig {
        email: Some(address.clone()),
        password: None,
        password_secret_id: secret.arn().map(str::to_owned),
    };

    let created = ensure_operator(&stack.clients, &store, &config).await.expect("operator");
    assert!(
        created.is_some_and(|redacted| !redacted.contains(&address)),
        "logs see a redacted email"
    );
    assert_eq!(
        ensure_operator(&stack.clients, &store, &config).await.expect("again"),
        None,
        "idempotent"
    );
    let token = app.login(&address, "generated operator password").await;
    let (status, me) = app.call("GET", "/api/auth/me", Some(&token), None).await;
    assert_eq!((status, me["user"]["role"].as_str()), (200, Some("SYSTEM_ADMIN")));

    let no_password = OperatorConfig { email: Some(email("other")), ..OperatorConfig::default() };
    assert!(ensure_operator(&stack.clients, &store, &no_password).await.is_err());
    stack.remove().await;
}
