//! WhatsApp Web sessions: the local stack, the sandbox playing WhatsApp's servers, and two
//! session host processes sharing the pools through leases in the emulator.

use serde_json::{Value, json};
use switchboard_tests::{
    App, Emulator, Registered, SessionHost, Stack, TEST_LEASE_MS, email, eventually,
};

const HOST: &str = env!("CARGO_BIN_EXE_session-host-under-test");

/// A registered tenant whose channel is `web`.
pub(crate) async fn web_tenant(app: &App, name: &str) -> Registered {
    let owner = app.register(&email(name)).await;
    let (status, body) = app
        .call(
            "PUT",
            "/api/whatsapp/channel",
            Some(&owner.access_token),
            Some(json!({"provider": "web"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    owner
}

async fn sandbox(app: &App, path: &str, body: Value) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}{path}", app.sandbox_url))
        .json(&body)
        .send()
        .await
        .expect("sandbox");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn sandbox_get(app: &App, path: &str) -> Value {
    let url = format!("{}{path}", app.sandbox_url);
    app.http.get(url).send().await.expect("sandbox").json().await.expect("json")
}

async fn session(app: &App, token: &str) -> Value {
    let (status, body) = app.call("GET", "/api/whatsapp/channel/session", Some(token), None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn wait_state(app: &App, token: &str, state: &str, seconds: u64) -> Value {
    eventually(seconds, &format!("the session to be {state}"), || async {
        let now = session(app, token).await;
        (now["state"] == state).then_some(now)
    })
    .await
}

/// Connects and scans the QR with `phone`: the session is connected.
async fn pair_by_qr(app: &App, token: &str, phone: &str) {
    let (status, pairing) =
        app.call("POST", "/api/whatsapp/channel/connect", Some(token), None).await;
    assert_eq!(status, 202, "{pairing}");
    assert_eq!(pairing["state"], "pairing");
    let qr = pairing["qr"].as_str().expect("a QR");
    let (status, body) =
        sandbox(app, "/_sandbox/web/scan", json!({"qr": qr, "phoneNumber": phone})).await;
    assert_eq!(status, 200, "{body}");
    let connected = wait_state(app, token, "connected", 20).await;
    assert_eq!(connected["phoneNumber"], phone);
}

async fn devices(app: &App, phone: &str) -> Vec<Value> {
    let path = format!("/_sandbox/web/devices?phoneNumber={}", phone.replace('+', "%2B"));
    sandbox_get(app, &path).await["items"].as_array().cloned().unwrap_or_default()
}

async fn sent_by(app: &App, phone: &str) -> Vec<Value> {
    let path = format!("/_sandbox/web/sent?phoneNumber={}", phone.replace('+', "%2B"));
    sandbox_get(app, &path).await["items"].as_array().cloned().unwrap_or_default()
}

/// The pool item of the session's connection (owner, epoch).
async fn connection_of(stack: &Stack, tenant: &str) -> (String, String, i64) {
    let table = &stack.resources.pool_table;
    let session = stack.items(table, &format!("TENANT#{tenant}"), "SESSION").await;
    let session = session
        .iter()
        .find(|i| i["sk"].as_s().ok().map(String::as_str) == Some("SESSION"))
        .expect("session item");
    let connection = session["connectionId"].as_s().expect("connection").clone();
    let tier = connection.rsplit_once('-').expect("tier").0.to_owned();
    let items = stack.items(table, &format!("POOL#{tier}"), &format!("CONN#{connection}")).await;
    let item = items.first().expect("connection item");
    let owner = item.get("owner").and_then(|o| o.as_s().ok()).cloned().unwrap_or_default();
    let epoch = item["epoch"].as_n().expect("epoch").parse().expect("number");
    (connection, owner, epoch)
}

/// The host that made the session's last write.
async fn written_by(stack: &Stack, tenant: &str) -> String {
    let table = &stack.resources.pool_table;
    let items = stack.items(table, &format!("TENANT#{tenant}"), "SESSION").await;
    let session = items
        .iter()
        .find(|i| i["sk"].as_s().ok().map(String::as_str) == Some("SESSION"))
        .expect("session item");
    session.get("writtenBy").and_then(|w| w.as_s().ok()).cloned().unwrap_or_default()
}

fn text(to: &str, id: &str, body: &str) -> Value {
    json!({"to": to, "type": "text", "clientMessageId": id, "text": {"body": body}})
}

#[tokio::test]
async fn a_user_pairs_by_qr_and_by_code_then_receives_and_sends_through_the_session() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn_keeping_partner_events(&stack).await;
    let _a = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;
    let _b = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;

    // Refused input changes nothing: a number that is not E.164, a channel that is not web.
    let owner = web_tenant(&app, "web-qr").await;
    let token = owner.access_token.as_str();
    let bad = json!({"phoneNumber": "0800 FLOWERS"});
    let (status, problem) =
        app.call("POST", "/api/whatsapp/channel/connect", Some(token), Some(bad)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("validation_failed")));
    let cloud = app.register(&email("web-qr-cloud")).await;
    let (status, problem) =
        app.call("POST", "/api/whatsapp/channel/connect", Some(&cloud.access_token), None).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("channel_not_web")));
    // Nothing can be sent before the session is connected.
    let early = text("+15550300001", "early", "too soon");
    let (status, problem) = app.call("POST", "/api/messages", Some(token), Some(early)).await;
    assert_eq!((status, problem["code"].as_str()), (409, Some("session_not_connected")));
    assert_eq!(session(&app, token).await["state"], "disconnected");

    // By QR.
    let phone = "+15550300100";
    pair_by_qr(&app, token, phone).await;
    let status = session(&app, token).await;
    assert_eq!(status["tier"], "standard");
    assert!(
        status["connectionId"].as_str().is_some_and(|c| c.starts_with("standard-")),
        "{status}"
    );
    // Already connected: connect says so.
    let (code, body) = app.call("POST", "/api/whatsapp/channel/connect", Some(token), None).await;
    assert_eq!((code, &body["state"]), (200, &json!("connected")));

    // A customer writes: stored and processed as a Meta webhook is (conversation, event).
    let customer = "+15550300999";
    let inbound = json!({"phoneNumber": phone, "from": customer, "text": "hola"});
    let (status, _) = sandbox(&app, "/_sandbox/web/inbound", inbound).await;
    assert_eq!(status, 202);
    let conversation = eventually(20, "the conversation", || async {
        let (_, list) = app.call("GET", "/api/conversations", Some(token), None).await;
        list["items"].as_array().and_then(|items| items.first().cloned())
    })
    .await;
    assert_eq!(conversation["lastMessagePreview"], "hola", "{conversation}");

    // An answer goes out through the session, from the linked number; then a reaction.
    let (status, accepted) =
        app.call("POST", "/api/messages", Some(token), Some(text(customer, "r1", "¡hola!"))).await;
    assert_eq!(status, 202, "{accepted}");
    let id = accepted["id"].as_str().expect("id").to_owned();
    let sent = eventually(20, "the reply sent from the linked number", || async {
        let sent = sent_by(&app, phone).await;
        (!sent.is_empty()).then_some(sent)
    })
    .await;
    assert_eq!((&sent[0]["to"], &sent[0]["text"]), (&json!("15550300999"), &json!("¡hola!")));
    // Its receipts come back through the processor: delivered, then read.
    eventually(20, "the reply read", || async {
        let (_, message) = app.call("GET", &format!("/api/messages/{id}"), Some(token), None).await;
        (message["status"] == "read").then_some(())
    })
    .await;
    let reaction = json!({"to": customer, "type": "reaction", "clientMessageId": "r2",
        "reaction": {"messageId": id, "emoji": "👍"}});
    let (status, _) = app.call("POST", "/api/messages", Some(token), Some(reaction)).await;
    assert_eq!(status, 202);
    eventually(20, "the reaction sent", || async {
        let sent = sent_by(&app, phone).await;
        sent.get(1).filter(|r| r["reaction"]["emoji"] == "👍").map(|_| ())
    })
    .await;
    // Templates are the Cloud API's: refused for a web channel.
    let template = switchboard_tests::template_message(customer, "t1");
    let (status, problem) = app.call("POST", "/api/messages", Some(token), Some(template)).await;
    assert_eq!((status, problem["code"].as_str()), (422, Some("unsupported_on_web")));

    // By pairing code, for another tenant.
    let second = web_tenant(&app, "web-code").await;
    let code_phone = "+15550300200";
    let (status, pairing) = app
        .call(
            "POST",
            "/api/whatsapp/channel/connect",
            Some(&second.access_token),
            Some(json!({"phoneNumber": code_phone})),
        )
        .await;
    assert_eq!(status, 202, "{pairing}");
    let code = pairing["pairingCode"].as_str().expect("a pairing code").to_owned();
    // Asking again while that pairing is good answers with it (no second pairing).
    let (status, again) = app
        .call(
            "POST",
            "/api/whatsapp/channel/connect",
            Some(&second.access_token),
            Some(json!({"phoneNumber": code_phone})),
        )
        .await;
    assert_eq!(
        (status, &again["pairingCode"], &again["qr"]),
        (202, &pairing["pairingCode"], &pairing["qr"])
    );
    assert!(pairing["qr"].is_string() && pairing["expiresAt"].is_string(), "{pairing}");
    // The code works only for the number it was asked for.
    let (status, _) = sandbox(
        &app,
        "/_sandbox/web/pair-code",
        json!({"phoneNumber": "+15550300201", "code": code}),
    )
    .await;
    assert_eq!(status, 410);
    let (status, _) =
        sandbox(&app, "/_sandbox/web/pair-code", json!({"phoneNumber": code_phone, "code": code}))
            .await;
    assert_eq!(status, 200);
    wait_state(&app, &second.access_token, "connected", 20).await;

    // Partner events: the QR while pairing, connected, and the customer's message.
    let events = stack.drain_json(&stack.resources.partner_events_queue_url).await;
    let of = |tenant: &str, kind: &str| {
        events
            .iter()
            .filter(|e| e["tenantId"] == tenant && e["type"] == kind)
            .cloned()
            .collect::<Vec<_>>()
    };
    let statuses = of(&owner.tenant_id, "session.status");
    assert!(
        statuses.iter().any(|e| e["data"]["state"] == "pairing" && e["data"]["qr"].is_string()),
        "{statuses:?}"
    );
    assert!(statuses.iter().any(|e| e["data"]["state"] == "connected"), "{statuses:?}");
    assert_eq!(of(&owner.tenant_id, "message.received").len(), 1);
    assert!(
        of(&second.tenant_id, "session.status")
            .iter()
            .any(|e| e["data"]["pairingCode"] == code.as_str())
    );

    // The device's credentials are stored sealed: the sandbox's secret is not in clear.
    let pool = &stack.resources.pool_table;
    let device = stack.items(pool, &format!("TENANT#{}", owner.tenant_id), "SESSION#DEVICE").await;
    assert_eq!(device.len(), 1);
    assert!(!format!("{device:?}").contains("cred_"), "credentials in clear: {device:?}");
    stack.remove().await;
}

#[tokio::test]
async fn a_killed_host_s_sessions_resume_on_the_other_without_pairing_again() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let mut hosts = [
        SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await,
        SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await,
    ];
    let owner = web_tenant(&app, "failover").await;
    let token = owner.access_token.as_str();
    let phone = "+15550310100";
    pair_by_qr(&app, token, phone).await;
    let (connection, first_owner, epoch) = connection_of(&stack, &owner.tenant_id).await;
    let victim =
        hosts.iter().position(|h| h.host_id == first_owner).expect("an owner among the hosts");
    let survivor = hosts[1 - victim].host_id.clone();

    let killed_at = std::time::Instant::now();
    hosts[victim].kill();
    // Within the lease and 15 s the other host holds the connection and the session is
    // connected again, on the same linked device.
    let limit = TEST_LEASE_MS / 1000 + 15;
    eventually(limit, "the other host to take the connection", || async {
        let (now, owner, new_epoch) = connection_of(&stack, &owner.tenant_id).await;
        (now == connection && owner == survivor && new_epoch > epoch).then_some(())
    })
    .await;
    eventually(limit, "the session connected by the survivor", || async {
        let now = session(&app, token).await;
        let by = written_by(&stack, &owner.tenant_id).await;
        (now["state"] == "connected" && by == survivor).then_some(())
    })
    .await;
    let failover = killed_at.elapsed();
    assert!(failover.as_secs() <= limit, "failover took {failover:?}");
    let devices = devices(&app, phone).await;
    assert_eq!(devices.len(), 1, "{devices:?}");
    assert_eq!(devices[0]["pairings"], 1, "no new pairing: {devices:?}");
    // The survivor counts the takeover and its connected session.
    let metrics = hosts[1 - victim].metrics().await;
    assert!(metrics["takeovers"].as_u64() >= Some(1), "{metrics}");
    assert_eq!(metrics["sessions"]["standard"]["connected"], 1, "{metrics}");
    assert!(devices[0]["connections"].as_u64() >= Some(2), "{devices:?}");

    // And it sends.
    let customer = "+15550310999";
    let (status, _) = sandbox(
        &app,
        "/_sandbox/web/inbound",
        json!({"phoneNumber": phone, "from": customer, "text": "still there?"}),
    )
    .await;
    assert_eq!(status, 202);
    eventually(20, "the inbound message", || async {
        let (_, list) = app.call("GET", "/api/conversations", Some(token), None).await;
        list["items"].as_array().filter(|i| !i.is_empty()).map(|_| ())
    })
    .await;
    let (status, _) =
        app.call("POST", "/api/messages", Some(token), Some(text(customer, "after", "yes"))).await;
    assert_eq!(status, 202);
    eventually(20, "the reply from the survivor", || async {
        (sent_by(&app, phone).await.len() == 1).then_some(())
    })
    .await;
    stack.remove().await;
}

#[tokio::test]
async fn a_host_paused_past_its_lease_writes_and_sends_nothing_for_the_sessions_it_lost() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let hosts = [
        SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await,
        SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await,
    ];
    let owner = web_tenant(&app, "paused").await;
    let token = owner.access_token.as_str();
    let phone = "+15550320100";
    pair_by_qr(&app, token, phone).await;
    let customer = "+15550320999";
    let (status, _) = sandbox(
        &app,
        "/_sandbox/web/inbound",
        json!({"phoneNumber": phone, "from": customer, "text": "hi"}),
    )
    .await;
    assert_eq!(status, 202);
    eventually(20, "the inbound message", || async {
        let (_, list) = app.call("GET", "/api/conversations", Some(token), None).await;
        list["items"].as_array().filter(|i| !i.is_empty()).map(|_| ())
    })
    .await;
    let (connection, first_owner, epoch) = connection_of(&stack, &owner.tenant_id).await;
    let paused = hosts.iter().find(|h| h.host_id == first_owner).expect("owner");
    let other = hosts.iter().find(|h| h.host_id != first_owner).expect("other").host_id.clone();

    paused.pause();
    eventually(TEST_LEASE_MS / 1000 + 15, "the other host to take over", || async {
        let (now, owner, new_epoch) = connection_of(&stack, &owner.tenant_id).await;
        (now == connection && owner == other && new_epoch > epoch).then_some(())
    })
    .await;
    eventually(20, "the session connected by the other host", || async {
        let by = written_by(&stack, &owner.tenant_id).await;
        (session(&app, token).await["state"] == "connected" && by == other).then_some(())
    })
    .await;
    // Work queued meanwhile reaches the new owner.
    for n in 0..3 {
        let (status, _) = app
            .call(
                "POST",
                "/api/messages",
                Some(token),
                Some(text(customer, &format!("p{n}"), &format!("m{n}"))),
            )
            .await;
        assert_eq!(status, 202);
    }
    eventually(20, "three replies", || async {
        (sent_by(&app, phone).await.len() == 3).then_some(())
    })
    .await;

    // The paused host comes back with stale leases: it must write nothing for them.
    paused.resume();
    tokio::time::sleep(std::time::Duration::from_millis(TEST_LEASE_MS)).await;
    let sent = sent_by(&app, phone).await;
    assert_eq!(sent.len(), 3, "each message sent once: {sent:?}");
    assert_eq!(
        written_by(&stack, &owner.tenant_id).await,
        other,
        "the last write is the new owner's"
    );
    let (_, owner_now, _) = connection_of(&stack, &owner.tenant_id).await;
    assert_eq!(owner_now, other);
    assert_eq!(session(&app, token).await["state"], "connected");
    // The resumed host is healthy again and holds nothing it lost.
    let devices = devices(&app, phone).await;
    assert_eq!(devices[0]["pairings"], 1);
    stack.remove().await;
}

#[tokio::test]
async fn the_b2b_pool_holds_125_users_and_refuses_the_126th() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let _a = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;
    let _b = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;
    let operator = app.operator_token(&stack).await;
    let (platform, key) = app.platform(&operator, "Pool Co").await;
    let rows: Vec<Value> = (0..126)
        .map(|n| json!({"userId": format!("u{n:03}"), "platformUserId": format!("p{n}")}))
        .collect();
    let (status, created) =
        app.call("POST", "/api/b2b/users/bulk", Some(&key), Some(json!({"users": rows}))).await;
    assert_eq!((status, &created["created"]), (200, &json!(126)), "{created}");

    // Connect them ten at a time; each answers with a QR until the pool is full.
    let mut qrs = Vec::new();
    let mut full = Vec::new();
    for chunk in (0..126).collect::<Vec<_>>().chunks(10) {
        let calls = chunk.iter().map(|n| {
            let path = format!("/api/b2b/users/u{n:03}/connect");
            let key = key.clone();
            let app = &app;
            async move { (*n, app.call("POST", &path, Some(&key), None).await) }
        });
        for (n, (status, body)) in futures_util::future::join_all(calls).await {
            match status {
                202 => qrs.push((n, body["qr"].as_str().expect("qr").to_owned())),
                503 => full.push((n, body)),
                other => panic!("user {n}: {other} {body}"),
            }
        }
        // Scanned while the QRs are fresh.
        for (n, qr) in qrs.iter().filter(|(n, _)| chunk.contains(n)) {
            let phone = format!("+1555033{n:04}");
            let (status, body) =
                sandbox(&app, "/_sandbox/web/scan", json!({"qr": qr, "phoneNumber": phone})).await;
            assert_eq!(status, 200, "{body}");
        }
    }
    assert_eq!((qrs.len(), full.len()), (125, 1), "{full:?}");
    assert_eq!(full[0].1["code"], "pool_full");
    // Retry-After is set on the refusal.
    let refused = full[0].0;
    let response = app
        .http
        .post(app.url(&format!("/api/b2b/users/u{refused:03}/connect")))
        .bearer_auth(&key)
        .send()
        .await
        .expect("connect");
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "60");

    eventually(60, "125 connected users", || async {
        let path = format!("/api/b2b/platforms/{platform}/stats");
        let (_, stats) = app.call("GET", &path, Some(&key), None).await;
        (stats["sessions"]["connected"] == 125).then_some(())
    })
    .await;
    let (status, pools) = app.call("GET", "/api/admin/pools", Some(&operator), None).await;
    assert_eq!(status, 200, "{pools}");
    let b2b = &pools["enterprise_b2b"];
    assert_eq!(
        (&b2b["size"], &b2b["users"], &b2b["maxUsers"], &b2b["usersPerConnection"]),
        (&json!(25), &json!(125), &json!(125), &json!(5)),
        "{b2b}"
    );
    assert_eq!(b2b["utilization"], 1.0);
    assert!(b2b["hosts"].as_u64().is_some_and(|h| (1..=2).contains(&h)), "{b2b}");
    stack.remove().await;
}

#[tokio::test]
async fn an_idle_session_is_evicted_and_resumes_to_send() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let _host =
        SessionHost::start(HOST, &stack, &app.sandbox_url, &[("SESSION_IDLE_SECS_STANDARD", "2")])
            .await;
    let owner = web_tenant(&app, "idle").await;
    let token = owner.access_token.as_str();
    let phone = "+15550340100";
    pair_by_qr(&app, token, phone).await;
    wait_state(&app, token, "idle", 20).await;
    let customer = "+15550340999";
    let (status, _) =
        app.call("POST", "/api/messages", Some(token), Some(text(customer, "wake", "back"))).await;
    assert_eq!(status, 202);
    eventually(20, "the message sent after resuming", || async {
        (sent_by(&app, phone).await.len() == 1).then_some(())
    })
    .await;
    let devices = devices(&app, phone).await;
    assert_eq!(devices[0]["pairings"], 1);
    assert!(
        devices[0]["connections"].as_u64() >= Some(2),
        "resumed on a new connection: {devices:?}"
    );
    stack.remove().await;
}

#[tokio::test]
async fn a_dropped_session_reconnects_and_unlinking_logs_it_out_and_so_does_logout() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let host = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;

    let owner = web_tenant(&app, "unlink").await;
    let token = owner.access_token.as_str();
    let phone = "+15550350100";
    pair_by_qr(&app, token, phone).await;
    // A dropped connection comes back by itself, on the same device.
    let (status, _) = sandbox(&app, "/_sandbox/web/drop", json!({"phoneNumber": phone})).await;
    assert_eq!(status, 200);
    eventually(20, "the session reconnected", || async {
        let now = devices(&app, phone).await;
        (now[0]["connections"] == 2 && now[0]["online"] == true).then_some(())
    })
    .await;
    wait_state(&app, token, "connected", 20).await;
    let metrics = host.metrics().await;
    assert_eq!(metrics["reconnects"], 1, "{metrics}");
    assert_eq!(devices(&app, phone).await[0]["pairings"], 1);
    let (status, _) = sandbox(&app, "/_sandbox/web/unlink", json!({"phoneNumber": phone})).await;
    assert_eq!(status, 200);
    eventually(20, "logged out, its slot freed", || async {
        let now = session(&app, token).await;
        (now["state"] == "logged_out"
            && now["phoneNumber"].is_null()
            && now["connectionId"].is_null())
        .then_some(())
    })
    .await;
    let pool = &stack.resources.pool_table;
    let device = stack.items(pool, &format!("TENANT#{}", owner.tenant_id), "SESSION#DEVICE").await;
    assert!(device.is_empty(), "the keys are forgotten");

    let second = web_tenant(&app, "logout").await;
    let phone = "+15550350200";
    pair_by_qr(&app, &second.access_token, phone).await;
    let (status, body) =
        app.call("POST", "/api/whatsapp/channel/logout", Some(&second.access_token), None).await;
    assert_eq!((status, &body["state"]), (200, &json!("logged_out")), "{body}");
    let devices = devices(&app, phone).await;
    assert_eq!(devices[0]["linked"], false);
    // Pairing again works (a new device).
    pair_by_qr(&app, &second.access_token, phone).await;
    assert_eq!(devices_len(&app, phone).await, 2);
    stack.remove().await;
}

async fn devices_len(app: &App, phone: &str) -> usize {
    devices(app, phone).await.len()
}

#[tokio::test]
async fn a_platform_connects_its_user_and_erasing_the_user_stops_the_session() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let _host = SessionHost::start(HOST, &stack, &app.sandbox_url, &[]).await;
    let operator = app.operator_token(&stack).await;
    let (platform, key) = app.platform(&operator, "Erase Co").await;
    let user = json!({"userId": "shop-1", "platformUserId": "p1"});
    let (status, created) = app.call("POST", "/api/b2b/users", Some(&key), Some(user)).await;
    assert_eq!(status, 201, "{created}");
    let tenant = created["tenantId"].as_str().expect("tenant").to_owned();

    // B2B users are web users from the start: the aliases connect and read the session.
    let (status, pairing) =
        app.call("POST", "/api/b2b/users/shop-1/connect", Some(&key), None).await;
    assert_eq!(status, 202, "{pairing}");
    let phone = "+15550360100";
    let scan = json!({"qr": pairing["qr"], "phoneNumber": phone});
    assert_eq!(sandbox(&app, "/_sandbox/web/scan", scan).await.0, 200);
    eventually(20, "the user connected", || async {
        let (_, status) = app.call("GET", "/api/b2b/users/shop-1/status", Some(&key), None).await;
        (status["state"] == "connected" && status["tier"] == "enterprise_b2b").then_some(())
    })
    .await;
    let stats_path = format!("/api/b2b/platforms/{platform}/stats");
    let (_, stats) = app.call("GET", &stats_path, Some(&key), None).await;
    assert_eq!(stats["sessions"]["connected"], 1, "{stats}");
    // Another platform's key reaches nothing of it.
    let (_, other_key) = app.platform(&operator, "Other Co").await;
    let (status, _) = app.call("GET", "/api/b2b/users/shop-1/status", Some(&other_key), None).await;
    assert_eq!(status, 404);
    let (status, _) =
        app.call("POST", "/api/b2b/users/shop-1/connect", Some(&other_key), None).await;
    assert_eq!(status, 404);

    // A new tier moves the session to that tier's pool, on the same linked device.
    let (status, body) = app
        .call("PUT", "/api/b2b/users/shop-1", Some(&key), Some(json!({"tier": "enterprise"})))
        .await;
    assert_eq!(status, 200, "{body}");
    eventually(30, "the session connected in the enterprise pool", || async {
        let (_, status) = app.call("GET", "/api/b2b/users/shop-1/status", Some(&key), None).await;
        let moved = status["connectionId"].as_str().is_some_and(|c| c.starts_with("enterprise-"));
        let resumed = devices(&app, phone).await[0]["connections"].as_u64() >= Some(2);
        (moved && resumed && status["state"] == "connected" && status["tier"] == "enterprise")
            .then_some(())
    })
    .await;
    assert_eq!(devices(&app, phone).await[0]["pairings"], 1, "moved without a new pairing");
    let (_, pools) = app.call("GET", "/api/admin/pools", Some(&operator), None).await;
    assert_eq!(
        (&pools["enterprise"]["users"], &pools["enterprise_b2b"]["users"]),
        (&json!(1), &json!(0)),
        "{pools}"
    );

    let (status, _) = app.call("DELETE", "/api/b2b/users/shop-1", Some(&key), None).await;
    assert_eq!(status, 204);
    eventually(30, "the session stopped and its slot freed", || async {
        let online = devices(&app, phone).await.first().is_some_and(|d| d["online"] == true);
        let pool = &stack.resources.pool_table;
        let members = stack.items(pool, "POOL#enterprise", "CONN#").await;
        let member = members.iter().any(|c| format!("{:?}", c.get("members")).contains(&tenant));
        (!online && !member).then_some(())
    })
    .await;
    let (_, stats) = app.call("GET", &stats_path, Some(&key), None).await;
    assert_eq!((&stats["totalUsers"], &stats["sessions"]), (&json!(0), &json!({})), "{stats}");
    stack.remove().await;
}

#[tokio::test]
async fn a_host_stopped_with_sigterm_gives_its_leases_back_and_the_other_resumes_at_once() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    // A long lease: only a released one is taken over within the test's wait.
    let long = [("SESSION_LEASE_MS", "60000"), ("SESSION_HEARTBEAT_MS", "1000")];
    let mut first = SessionHost::start(HOST, &stack, &app.sandbox_url, &long).await;
    let owner = web_tenant(&app, "sigterm").await;
    let token = owner.access_token.as_str();
    let phone = "+15550370100";
    pair_by_qr(&app, token, phone).await;
    let second = SessionHost::start(HOST, &stack, &app.sandbox_url, &long).await;
    let (connection, held_by, epoch) = connection_of(&stack, &owner.tenant_id).await;
    assert_eq!(held_by, first.host_id);

    let stopped = first.terminate();
    assert!(stopped.success(), "a clean exit: {stopped:?}");
    // Released, not left to run out: the other host takes it within seconds, not 60 s.
    eventually(15, "the other host to take the released connection", || async {
        let (now, owner, new_epoch) = connection_of(&stack, &owner.tenant_id).await;
        (now == connection && owner == second.host_id && new_epoch > epoch).then_some(())
    })
    .await;
    eventually(15, "the session resumed by the other host", || async {
        let by = written_by(&stack, &owner.tenant_id).await;
        (session(&app, token).await["state"] == "connected" && by == second.host_id).then_some(())
    })
    .await;
    assert_eq!(devices(&app, phone).await[0]["pairings"], 1);
    stack.remove().await;
}
