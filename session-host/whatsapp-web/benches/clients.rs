//! What a whatsapp-rust client costs the session host with the DynamoDB store
//! (`scripts/bench/whatsapp_web.sh`, which starts the emulators; figures in BENCHMARKS.md):
//!
//! 1. memory: RSS over a baseline for N clients (100) started through the driver, each with
//!    its own fenced store and a device of its own, on the offline transport (the clients
//!    wait for a connection that never answers: idle);
//! 2. store operations per inbound message: a second client (in memory) establishes a
//!    Signal session with one on the DynamoDB store through whatsapp-rust's own Signal API
//!    and sends it M messages; the store's reads and write transactions are counted while
//!    it decrypts them.
//!
//! Arguments: `[clients] [messages]`. Needs `AWS_ENDPOINT_URL` (an emulator) and optionally
//! `STACK_PREFIX`.

use adapters::aws::{AwsClients, bootstrap};
use adapters::store::pool::{PoolStore, member_scope};
use adapters::store::session_keys::SessionKeys;
use domain::ids::TenantId;
use domain::tenant::Tier;
use session_driver::{Driver, DriverSession, SessionSpec};
use std::sync::Arc;
use std::time::{Duration, Instant};
use whatsapp_rust::Jid;
use whatsapp_rust::store::traits::DeviceStore;
use whatsapp_rust::wacore::libsignal::protocol::{IdentityKey, PreKeyBundle};
use whatsapp_rust::wacore::store::InMemoryBackend;
use whatsapp_web::offline::{NoHttp, OfflineTransport, VERSION};
use whatsapp_web::store::DynamoStore;
use whatsapp_web::{Launcher, WebConfig, WhatsAppWeb};

type Failure = Box<dyn std::error::Error>;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn launcher() -> Launcher {
    let config = WebConfig { version: Some(VERSION), ..WebConfig::default() };
    Launcher::new(OfflineTransport::silent(), NoHttp::default(), config)
}

#[tokio::main]
async fn main() -> Result<(), Failure> {
    let mut args = std::env::args().skip(1).filter(|a| a != "--bench");
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let m: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let prefix = std::env::var("STACK_PREFIX").unwrap_or_else(|_| "bench-wa".into());
    let clients = AwsClients::from_env().await;
    let resources = bootstrap::ensure(&clients, &prefix).await?;
    let pool = PoolStore::of(&clients, &resources);
    let connection = pool.ensure_connection(Tier::Enterprise, 0).await?;
    let (fence, _) =
        pool.acquire(&connection, "bench", 3_600_000).await?.ok_or("the connection is held")?;
    let keys = SessionKeys::of(&clients, &resources);
    let driver = WhatsAppWeb::new(keys.clone(), launcher());
    let (events, _kept) = tokio::sync::mpsc::channel(4096);
    let spec = |tenant: &TenantId| SessionSpec {
        label: tenant.to_string(),
        tenant: tenant.clone(),
        fence: fence.clone(),
        credentials: None,
        pair_phone: None,
    };

    // One client started and stopped first: the library's one-time allocations and the
    // AWS clients' connections are in the baseline, not in the per-client figure.
    let warm = driver.start(spec(&TenantId::generate()), events.clone()).await?;
    warm.stop().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let baseline = rss_kib();
    let started = Instant::now();
    let mut sessions = Vec::with_capacity(n);
    for _ in 0..n {
        sessions.push(driver.start(spec(&TenantId::generate()), events.clone()).await?);
    }
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let loaded = rss_kib();
    println!(
        "idle clients: {n} with the DynamoDB store, RSS {:.1} MiB -> {:.1} MiB: {:.0} KiB per client (started in {:.1} s, {:.0} ms each)",
        baseline as f64 / 1024.0,
        loaded as f64 / 1024.0,
        loaded.saturating_sub(baseline) as f64 / n as f64,
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / n as f64,
    );
    let mut stopping = tokio::task::JoinSet::new();
    for session in sessions {
        stopping.spawn(async move { session.stop().await });
    }
    stopping.join_all().await;

    // Store operations per inbound message.
    let bob_tenant = TenantId::generate();
    let store = DynamoStore::open(keys.clone(), &member_scope(&bob_tenant), fence.clone()).await?;
    let counts = store.counts();
    let lost = store.lease_lost();
    let bob = launcher().launch(store, None, lost, events.clone()).await?;
    let alice =
        launcher().launch(InMemoryBackend::new(), None, Arc::default(), events.clone()).await?;
    let device = DynamoStore::open(keys, &member_scope(&bob_tenant), fence.clone())
        .await?
        .load()
        .await?
        .ok_or("bob has no device")?;
    let bundle = PreKeyBundle::new(
        device.registration_id,
        0u32.into(),
        None,
        device.signed_pre_key_id.into(),
        device.signed_pre_key.public_key,
        device.signed_pre_key_signature.to_vec(),
        IdentityKey::new(device.identity_key.public_key),
    )?;
    let bob_jid: Jid = "15550001111@s.whatsapp.net".parse()?;
    let alice_jid: Jid = "15550002222@s.whatsapp.net".parse()?;
    alice.client().signal().install_prekey_bundle(&bob_jid, &bundle).await?;
    let mut per_message = Vec::with_capacity(m);
    for i in 0..m {
        let text = format!("message {i}");
        let (kind, ciphertext) =
            alice.client().signal().encrypt_message(&bob_jid, text.as_bytes()).await?;
        let before = counts.snapshot();
        let plain = bob.client().signal().decrypt_message(&alice_jid, kind, &ciphertext).await?;
        let after = counts.snapshot();
        if !plain.starts_with(text.as_bytes()) {
            return Err("decrypted the wrong text".into());
        }
        per_message.push((after.0 - before.0, after.1 - before.1));
    }
    let (first, rest) = per_message.split_first().ok_or("no messages")?;
    let reads: u64 = rest.iter().map(|(r, _)| r).sum();
    let writes: u64 = rest.iter().map(|(_, w)| w).sum();
    let count = rest.len().max(1) as f64;
    println!(
        "store operations per inbound message (Signal decrypt through whatsapp-rust, DynamoDB store): first {} reads + {} write transactions; then {:.1} reads + {:.1} write transactions each (mean of {})",
        first.0,
        first.1,
        reads as f64 / count,
        writes as f64 / count,
        rest.len()
    );
    tokio::join!(bob.stop(), alice.stop());
    Ok(())
}
