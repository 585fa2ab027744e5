//! The session host: a long-running service (ECS in AWS, a process under `make dev`) that
//! holds WhatsApp Web sessions for the tenants whose channel is `web`.
//!
//! - Pools, connections and leases live in the pool table (`adapters::store::pool`); each
//!   host takes connections whose lease ran out, heartbeats them, and runs their member
//!   sessions ([`host`]). Several hosts share the pools; every write is fenced by the
//!   lease's epoch.
//! - Work reaches the owner of a connection through the connection's FIFO queue
//!   (`adapters::session_queues`): connect, send, logout, leave.
//! - What a session receives is stored and queued for the webhook processor exactly as a
//!   Meta webhook is ([`session`]).
//! - Drivers sit behind one trait ([`driver`]); [`simulator`] talks to the local sandbox,
//!   `whatsapp_web` (its own crate) to WhatsApp; `SESSION_DRIVER` chooses.
//! - `GET /health` on `HEALTH_PORT` says whether the loop runs and the leases heartbeat.

pub mod driver;
pub mod host;
pub mod session;
pub mod simulator;

use adapters::aws::AwsClients;
use adapters::aws::envelope::Envelopes;
use adapters::config::{ConfigError, Resources, StartError};
use adapters::events::PartnerEvents;
use adapters::queues::{Queue, WebhookPointer};
use adapters::session_queues::SessionQueues;
use adapters::store::messages::MessageStore;
use adapters::store::pool::PoolStore;
use adapters::store::session_keys::SessionKeys;
use adapters::store::tenants::{B2bLinks, TenantStore};
use axum::Json;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use domain::sessions::{PoolPolicies, PoolPolicy};
use domain::tenant::Tier;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;

/// How the host behaves; every figure can be set by an environment variable.
#[derive(Debug, Clone)]
pub struct Config {
    /// This host's id in leases (`HOST_ID`; random by default).
    pub host_id: String,
    /// `SESSION_LEASE_MS` (30 s): how long a lease lasts without a heartbeat.
    pub lease: Duration,
    /// `SESSION_HEARTBEAT_MS` (10 s): heartbeats, and looking for connections to take.
    pub heartbeat: Duration,
    /// How often the host looks for connections to take (`SESSION_CLAIM_MS`, 1 s).
    pub claim_every: Duration,
    /// Connections taken at most each time it looks (`SESSION_CLAIMS_PER_TICK`, 20).
    pub claims_per_tick: u32,
    /// Sessions resumed per second after a takeover (`SESSION_RESUMES_PER_SECOND`, 20).
    pub resumes_per_second: u32,
    /// Consecutive failed connections before a session is `failed` (`SESSION_MAX_FAILURES`, 6).
    pub max_failures: u32,
    /// The first reconnection delay (`SESSION_RECONNECT_BASE_MS`, 1 s), doubling to 5 min.
    pub reconnect_base: Duration,
    /// Each tier's pool, with the deployment's overrides (`PoolPolicy::configured`).
    pub policies: PoolPolicies,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let ms = |name: &str, default: i64| -> Result<Duration, ConfigError> {
            Ok(Duration::from_millis(
                u64::try_from(adapters::config::number(name, default)?).unwrap_or(0),
            ))
        };
        let whole = |name: &str, default: i64| -> Result<u32, ConfigError> {
            Ok(u32::try_from(adapters::config::number(name, default)?).unwrap_or(0))
        };
        let policies =
            PoolPolicies::from_lookup(|name| std::env::var(name).ok()).map_err(|reason| {
                ConfigError::Invalid { name: "SESSION_* pool settings".into(), reason }
            })?;
        Ok(Self {
            host_id: std::env::var("HOST_ID").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| {
                format!("host_{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
            }),
            lease: ms("SESSION_LEASE_MS", 30_000)?,
            heartbeat: ms("SESSION_HEARTBEAT_MS", 10_000)?,
            claim_every: ms("SESSION_CLAIM_MS", 1_000)?.max(Duration::from_millis(100)),
            claims_per_tick: whole("SESSION_CLAIMS_PER_TICK", 20)?.max(1),
            resumes_per_second: whole("SESSION_RESUMES_PER_SECOND", 20)?.max(1),
            max_failures: whole("SESSION_MAX_FAILURES", 6)?.max(1),
            reconnect_base: ms("SESSION_RECONNECT_BASE_MS", 1_000)?,
            policies,
        })
    }

    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// The tier's pool as configured.
    pub fn policy(&self, tier: Tier) -> PoolPolicy {
        self.policies.of(tier)
    }

    pub fn idle_after(&self, tier: Tier) -> Option<Duration> {
        self.policy(tier).idle_after
    }

    /// The wait before reconnection attempt `n` (1-based): doubling, capped at five
    /// minutes, with "equal jitter" (half of it, plus up to the other half at random).
    pub fn backoff(&self, n: u32) -> Duration {
        let full = self
            .reconnect_base
            .saturating_mul(2u32.saturating_pow(n.saturating_sub(1).min(16)))
            .min(Duration::from_secs(300));
        let random = f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0;
        full.mul_f64(0.5 + random / 2.0)
    }
}

/// Spreads resumptions out: at most `per_second`, each at a jittered moment of its slot,
/// so that a host taking over many sessions is not a reconnect storm.
pub struct Resumptions {
    per_second: u32,
    next: Mutex<Instant>,
}

impl Resumptions {
    pub fn new(per_second: u32) -> Self {
        Self { per_second: per_second.max(1), next: Mutex::new(Instant::now()) }
    }

    pub async fn wait(&self) {
        let slot = Duration::from_secs(1) / self.per_second;
        let at = match self.next.lock() {
            Ok(mut next) => {
                let at = (*next).max(Instant::now());
                *next = at + slot;
                at
            }
            Err(_) => Instant::now(),
        };
        let jitter = slot.mul_f64(f64::from(uuid::Uuid::new_v4().as_bytes()[0]) / 255.0);
        tokio::time::sleep_until(at + jitter).await;
    }
}

/// What `GET /health` reports: the loop ticked lately and its last heartbeats succeeded.
pub struct Health {
    last_tick: Mutex<Option<(Instant, bool, usize)>>,
    heartbeat: Duration,
}

impl Health {
    fn new(heartbeat: Duration) -> Self {
        Self { last_tick: Mutex::new(None), heartbeat }
    }

    pub fn ticked(&self, heartbeats_ok: bool, connections: usize) {
        if let Ok(mut last) = self.last_tick.lock() {
            *last = Some((Instant::now(), heartbeats_ok, connections));
        }
    }

    fn report(&self) -> (bool, serde_json::Value) {
        let last = self.last_tick.lock().ok().and_then(|l| *l);
        match last {
            Some((at, ok, connections)) => {
                let fresh = at.elapsed() < self.heartbeat * 3;
                (fresh && ok, json!({"loop": fresh, "heartbeats": ok, "connections": connections}))
            }
            None => (false, json!({"loop": false, "detail": "starting"})),
        }
    }
}

/// What this host counts (`GET /metrics`, and a `session host metrics` log line every
/// minute, which a log-based metric filter turns into CloudWatch metrics): its sessions by
/// tier and state, lease takeovers (connections it took from a host that had held them),
/// and reconnections after a drop.
#[derive(Default)]
pub struct Metrics {
    sessions: Mutex<
        std::collections::HashMap<domain::ids::TenantId, (Tier, domain::sessions::SessionState)>,
    >,
    takeovers: std::sync::atomic::AtomicU64,
    reconnects: std::sync::atomic::AtomicU64,
}

impl Metrics {
    /// A session of this host is now in `state` (`None`: it left this host).
    pub fn session(
        &self,
        tenant: &domain::ids::TenantId,
        state: Option<(Tier, domain::sessions::SessionState)>,
    ) {
        if let Ok(mut sessions) = self.sessions.lock() {
            match state {
                Some(state) => sessions.insert(tenant.clone(), state),
                None => sessions.remove(tenant),
            };
        }
    }

    pub fn took_over(&self) {
        self.takeovers.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn reconnected(&self) {
        self.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn report(&self) -> serde_json::Value {
        let mut by_tier: std::collections::BTreeMap<&str, std::collections::BTreeMap<&str, u64>> =
            std::collections::BTreeMap::new();
        if let Ok(sessions) = self.sessions.lock() {
            for (tier, state) in sessions.values() {
                *by_tier.entry(tier.as_str()).or_default().entry(state.as_str()).or_default() += 1;
            }
        }
        json!({
            "sessions": by_tier,
            "takeovers": self.takeovers.load(std::sync::atomic::Ordering::Relaxed),
            "reconnects": self.reconnects.load(std::sync::atomic::Ordering::Relaxed),
        })
    }
}

/// Everything a host uses.
pub struct Deps<D: driver::Driver> {
    pub pool: PoolStore,
    pub queues: SessionQueues,
    pub messages: MessageStore,
    pub tenants: TenantStore,
    pub inbound: Queue<WebhookPointer>,
    pub events: PartnerEvents,
    pub envelopes: Envelopes,
    /// A driver's own keys for a session (whatsapp-rust's store), forgotten on unlink.
    pub keys: SessionKeys,
    pub links: B2bLinks,
    pub driver: D,
    pub config: Config,
    pub resumptions: Resumptions,
    pub health: Health,
    pub metrics: Metrics,
}

impl<D: driver::Driver> Deps<D> {
    pub fn build(clients: &AwsClients, resources: &Resources, driver: D, config: Config) -> Self {
        Self {
            pool: PoolStore::of(clients, resources),
            queues: SessionQueues::of(clients, resources),
            messages: MessageStore::of(clients, resources),
            tenants: TenantStore::of(clients, resources),
            inbound: Queue::new(clients.sqs.clone(), resources.inbound_events_queue_url.clone()),
            events: PartnerEvents::new(
                clients.sqs.clone(),
                resources.partner_events_queue_url.clone(),
            ),
            envelopes: Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            keys: SessionKeys::of(clients, resources),
            links: B2bLinks::default(),
            driver,
            resumptions: Resumptions::new(config.resumes_per_second),
            health: Health::new(config.heartbeat),
            metrics: Metrics::default(),
            config,
        }
    }
}

/// Which driver the host runs (`SESSION_DRIVER`): `simulator` (the local sandbox's
/// WhatsApp, `SANDBOX_URL`) or `whatsapp-web` (WhatsApp's servers, through whatsapp-rust).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriverKind {
    Simulator,
    WhatsAppWeb,
}

impl DriverKind {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::parse(std::env::var("SESSION_DRIVER").as_deref().unwrap_or("simulator"))
    }

    pub fn parse(name: &str) -> Result<Self, ConfigError> {
        match name {
            "simulator" => Ok(Self::Simulator),
            "whatsapp-web" => Ok(Self::WhatsAppWeb),
            other => Err(ConfigError::Invalid {
                name: "SESSION_DRIVER".into(),
                reason: format!("{other:?}: the drivers are simulator and whatsapp-web"),
            }),
        }
    }
}

/// The simulator, against the sandbox at `SANDBOX_URL`.
pub fn simulator_from_env() -> Result<simulator::Simulator, StartError> {
    let url = std::env::var("SANDBOX_URL").map_err(|_| {
        StartError::from(ConfigError::Missing(
            "SANDBOX_URL (the simulator's WhatsApp servers)".into(),
        ))
    })?;
    simulator::Simulator::new(&url).map_err(|e| {
        StartError::from(ConfigError::Invalid { name: "SANDBOX_URL".into(), reason: e.0 })
    })
}

/// whatsapp-rust against WhatsApp's servers, its keys in the pool table.
pub fn whatsapp_web_from_env(
    clients: &AwsClients,
    resources: &Resources,
) -> Result<whatsapp_web::WhatsAppWeb, StartError> {
    let invalid = |reason: String| {
        StartError::from(ConfigError::Invalid { name: "SESSION_WA_*".into(), reason })
    };
    let config =
        whatsapp_web::WebConfig::from_lookup(|name| std::env::var(name).ok()).map_err(invalid)?;
    whatsapp_web::WhatsAppWeb::online(SessionKeys::of(clients, resources), config).map_err(invalid)
}

/// A built host: its health endpoint bound, its loop ready to run.
pub struct Application<D: driver::Driver> {
    listener: TcpListener,
    deps: Arc<Deps<D>>,
}

impl<D: driver::Driver> Application<D> {
    /// Binds the health endpoint on `addr` (port 0 picks a free one, for tests).
    pub async fn build(addr: SocketAddr, deps: Deps<D>) -> std::io::Result<Self> {
        Ok(Self { listener: TcpListener::bind(addr).await?, deps: Arc::new(deps) })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Runs until `shutdown` resolves, then closes the sessions and releases the leases.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let host = tokio::spawn(host::Host::new(self.deps.clone()).run(stop_rx));
        let deps = self.deps.clone();
        let metrics = self.deps.clone();
        let router = axum::Router::new()
            .route(
                "/health",
                axum::routing::get(move || {
                    let deps = deps.clone();
                    async move {
                        let (ok, mut body) = deps.health.report();
                        body["host"] = json!(deps.config.host_id);
                        let status =
                            if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                        body["status"] = json!(if ok { "ok" } else { "unavailable" });
                        (status, Json(body)).into_response()
                    }
                }),
            )
            .route(
                "/metrics",
                axum::routing::get(move || {
                    let deps = metrics.clone();
                    async move {
                        let mut body = deps.metrics.report();
                        body["host"] = json!(deps.config.host_id);
                        Json(body).into_response()
                    }
                }),
            );
        let served = axum::serve(self.listener, router)
            .with_graceful_shutdown(async move {
                shutdown.await;
                let _ = stop_tx.send(true);
            })
            .await;
        let _ = host.await;
        served
    }
}

/// Raises the open-file limit to its maximum: each session holds a connection.
pub fn raise_file_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// The whole host from its environment, until SIGTERM (or Ctrl-C): what `main` runs.
/// Reads the deployment's resources as the Lambda functions do (or, with `STACK_PREFIX`,
/// finds the local stack's), the driver from
/// `SESSION_DRIVER`, and serves `GET /health` on `HEALTH_PORT` (8080; on every interface
/// with `HEALTH_BIND_ALL=1`, as a container needs).
pub async fn run_from_env() -> Result<(), StartError> {
    let (clients, resources, config, addr) = prepare_from_env().await?;
    match DriverKind::from_env()? {
        DriverKind::Simulator => {
            let driver = simulator_from_env()?;
            serve(Deps::build(&clients, &resources, driver, config), addr).await
        }
        DriverKind::WhatsAppWeb => {
            let driver = whatsapp_web_from_env(&clients, &resources)?;
            serve(Deps::build(&clients, &resources, driver, config), addr).await
        }
    }
}

/// Logs, file limit, AWS clients, resources, configuration and the health endpoint's
/// address, from the environment: everything but the driver.
pub async fn prepare_from_env() -> Result<(AwsClients, Resources, Config, SocketAddr), StartError> {
    adapters::telemetry::init();
    raise_file_limit();
    let port = adapters::config::port("HEALTH_PORT", 8080)?;
    let bind = if std::env::var("HEALTH_BIND_ALL").is_ok_and(|v| v == "1") {
        std::net::Ipv4Addr::UNSPECIFIED
    } else {
        std::net::Ipv4Addr::LOCALHOST
    };
    let clients = AwsClients::from_env().await;
    // NOTE: locally (`make dev`) the host finds the stack's resources by its prefix, as the
    // local stack does; in AWS the task definition names each one.
    let resources = match std::env::var("STACK_PREFIX") {
        Ok(prefix) if !prefix.is_empty() => {
            adapters::aws::bootstrap::ensure(&clients, &prefix).await?
        }
        _ => Resources::from_env()?,
    };
    let config = Config::from_env()?;
    Ok((clients, resources, config, SocketAddr::from((bind, port))))
}

/// Runs a host with its driver until SIGTERM (or Ctrl-C).
pub async fn serve<D: driver::Driver>(deps: Deps<D>, addr: SocketAddr) -> Result<(), StartError> {
    let app = Application::build(addr, deps).await?;
    tracing::info!(addr = %app.local_addr()?, pid = std::process::id(), "session host health endpoint listening");
    app.run_until_stopped(adapters::shutdown::signal()).await?;
    Ok(())
}

/// Whether the host on this machine's `port` answers `GET /health` with 200.
pub async fn health_check(port: u16) -> bool {
    let Ok(client) = reqwest::Client::builder().timeout(Duration::from_secs(3)).build() else {
        return false;
    };
    client
        .get(format!("http://127.0.0.1:{port}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}
