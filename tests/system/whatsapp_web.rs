//! The WhatsApp Web driver (whatsapp-rust) against the emulator: its DynamoDB store passes
//! the same conformance suite as whatsapp-rust's in-memory backend, refuses a writer whose
//! lease was taken, and the driver and the session host run on it with the offline
//! transport (nothing reaches WhatsApp from a test).

use adapters::store::pool::{Fence, PoolStore};
use adapters::store::session_keys::SessionKeys;
use domain::ids::TenantId;
use domain::tenant::Tier;
use serde_json::json;
use session_host::driver::{Driver, DriverSession, SessionSpec};
use std::sync::Arc;
use switchboard_tests::{App, Emulator, SessionHost, Stack, eventually, scope_of};
use whatsapp_rust::store::traits::{DeviceStore, SignalStore};
use whatsapp_web::conformance;
use whatsapp_web::offline::{NoHttp, OfflineTransport, VERSION};
use whatsapp_web::store::DynamoStore;
use whatsapp_web::{Launcher, WebConfig, WhatsAppWeb};

const HOST: &str = env!("CARGO_BIN_EXE_session-host-under-test");

async fn leased(stack: &Stack, host: &str, lease_ms: i64) -> (PoolStore, String, Fence) {
    let pool = PoolStore::of(&stack.clients, &stack.resources);
    let connection = pool.ensure_connection(Tier::Standard, 0).await.expect("connection");
    let (fence, _) =
        pool.acquire(&connection, host, lease_ms).await.expect("acquire").expect("free");
    (pool, connection, fence)
}

#[tokio::test]
async fn the_dynamodb_store_passes_the_conformance_suite() {
    let stack = Stack::new(Emulator::shared()).await;
    let keys = SessionKeys::of(&stack.clients, &stack.resources);
    let (_, _, fence) = leased(&stack, "host-conformance", 600_000).await;
    let failures = conformance::run(|| {
        let (keys, fence) = (keys.clone(), fence.clone());
        async move {
            let scope = scope_of(&TenantId::generate());
            Arc::new(DynamoStore::open(keys, &scope, fence).await.expect("open the store"))
        }
    })
    .await;
    assert!(failures.is_empty(), "{failures:#?}");
    stack.remove().await;
}

#[tokio::test]
async fn a_store_whose_lease_was_taken_writes_nothing_and_never_rolls_the_new_owner_back() {
    let stack = Stack::new(Emulator::shared()).await;
    let keys = SessionKeys::of(&stack.clients, &stack.resources);
    let (pool, connection, first) = leased(&stack, "host-a", 60_000).await;
    let scope = scope_of(&TenantId::generate());
    let old = DynamoStore::open(keys.clone(), &scope, first).await.expect("open");
    old.create().await.expect("device");
    old.put_sender_key("group::me::0", b"chain at 1").await.expect("write under the lease");

    // host-a's lease runs out (a long pause) and host-b takes the connection.
    pool.acquire(&connection, "host-a", 1).await.expect("re-acquire").expect("own");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (newer, _) =
        pool.acquire(&connection, "host-b", 60_000).await.expect("acquire").expect("expired");
    let new = DynamoStore::open(keys, &scope, newer).await.expect("open");
    new.put_sender_key("group::me::0", b"chain at 7").await.expect("the new owner writes");

    // The paused host wakes and writes what it held: refused, and nothing changes.
    let refused = old.put_sender_key("group::me::0", b"chain at 2").await;
    assert!(refused.is_err(), "a stale epoch wrote");
    assert!(old.lease_lost().load(std::sync::atomic::Ordering::Relaxed), "the driver is told");
    let mut device = old.load().await.expect("read").expect("device");
    device.push_name = "written by a paused host".into();
    assert!(old.save(&device).await.is_err());
    assert!(
        old.put_sessions_batch(&[(Arc::from("15551230001.0"), vec![1u8].into())]).await.is_err()
    );
    assert_eq!(
        new.get_sender_key("group::me::0").await.expect("read").as_deref(),
        Some(&b"chain at 7"[..]),
        "the new owner's state stands"
    );
    // Reads are not cached: even the stale store reads the current value.
    assert_eq!(
        old.get_sender_key("group::me::0").await.expect("read").as_deref(),
        Some(&b"chain at 7"[..])
    );
    assert_ne!(new.load().await.expect("read").expect("device").push_name, device.push_name);
    assert!(new.get_session("15551230001.0").await.expect("read").is_none());
    stack.remove().await;
}

fn offline_driver(stack: &Stack) -> WhatsAppWeb {
    let transport = OfflineTransport::silent();
    let config = WebConfig { version: Some(VERSION), ..WebConfig::default() };
    WhatsAppWeb::new(
        SessionKeys::of(&stack.clients, &stack.resources),
        Launcher::new(transport, NoHttp::default(), config),
    )
}

async fn identity(stack: &Stack, scope: &adapters::store::TenantScope, fence: &Fence) -> Vec<u8> {
    let keys = SessionKeys::of(&stack.clients, &stack.resources);
    let store = DynamoStore::open(keys, scope, fence.clone()).await.expect("open");
    let device = store.load().await.expect("read").expect("a device");
    device.identity_key.public_key.public_key_bytes().to_vec()
}

#[tokio::test]
async fn the_driver_keeps_its_device_sealed_in_the_pool_table_and_resumes_it() {
    let stack = Stack::new(Emulator::shared()).await;
    let (_, _, fence) = leased(&stack, "host-driver", 600_000).await;
    let driver = offline_driver(&stack);
    let tenant = TenantId::generate();
    let scope = scope_of(&tenant);
    let spec = |credentials: Option<Vec<u8>>| SessionSpec {
        label: tenant.to_string(),
        tenant: tenant.clone(),
        fence: fence.clone(),
        credentials,
        pair_phone: None,
    };
    let (tx, _events) = tokio::sync::mpsc::channel(16);
    let pairing = driver.start(spec(None), tx.clone()).await.expect("started to pair");
    let pk = format!("TENANT#{tenant}");
    let device = eventually(20, "the device stored", || async {
        let items = stack.items(&stack.resources.pool_table, &pk, "WA#dev#").await;
        (!items.is_empty()).then_some(items)
    })
    .await;
    let raw = format!("{device:?}");
    assert!(!raw.contains("identity_key") && !raw.contains("noise_key"), "sealed: {raw}");
    let first = identity(&stack, &scope, &fence).await;
    pairing.stop().await;

    // Resumed (the host holds a device): the same keys.
    let resumed = driver.start(spec(Some(b"marker".to_vec())), tx.clone()).await.expect("resumed");
    assert_eq!(identity(&stack, &scope, &fence).await, first, "the same device");
    resumed.stop().await;

    // A new pairing starts from nothing: a new device.
    let fresh = driver.start(spec(None), tx).await.expect("started afresh");
    assert_ne!(identity(&stack, &scope, &fence).await, first, "a new device");
    fresh.stop().await;
    stack.remove().await;
}

#[tokio::test]
async fn the_session_host_runs_the_whatsapp_web_driver_by_configuration() {
    let stack = Stack::new(Emulator::shared()).await;
    let app = App::spawn(&stack).await;
    let env = [("SESSION_DRIVER", "whatsapp-web"), ("TEST_WA_OFFLINE", "1")];
    let _host = SessionHost::start(HOST, &stack, &app.sandbox_url, &env).await;
    let owner = crate::sessions::web_tenant(&app, "wa-web").await;
    let token = owner.access_token.as_str();

    let (status, body) = app.call("POST", "/api/whatsapp/channel/connect", Some(token), None).await;
    // WhatsApp's servers never answer offline: no QR comes, the session is pairing.
    assert_eq!((status, &body["state"]), (202, &json!("pairing")), "{body}");
    let pk = format!("TENANT#{}", owner.tenant_id);
    let pool = &stack.resources.pool_table;
    eventually(20, "the client's device in the pool table", || async {
        (!stack.items(pool, &pk, "WA#dev#").await.is_empty()).then_some(())
    })
    .await;

    let (status, body) = app.call("POST", "/api/whatsapp/channel/logout", Some(token), None).await;
    assert_eq!((status, &body["state"]), (200, &json!("logged_out")), "{body}");
    eventually(20, "every key of the session forgotten", || async {
        stack.items(pool, &pk, "WA#").await.is_empty().then_some(())
    })
    .await;
    stack.remove().await;
}
