//! The driver: one whatsapp-rust `Bot` per session, its store the session's
//! [`DynamoStore`], its events turned into the host's [`DriverEvent`]s.
//!
//! - Reconnection is the host's: whatsapp-rust reconnects by itself while pairing (the
//!   server restarts the stream once a phone scanned), and once the session is connected
//!   the driver turns that off, so a dropped connection ends the client and the host's
//!   backoff, failure count and lease decide what happens next.
//! - A received message is handed to the host (`DriverEvent::Message`) from whatsapp-rust's
//!   inbound durability hook, which waits for the host's `ack` (the message is stored and
//!   queued) before the client acknowledges it to WhatsApp; without the `ack` in time the
//!   hook fails and WhatsApp delivers the message again. The store keeps the decrypted
//!   message meanwhile (`pin`), so a crash in between loses nothing.

use crate::mapping;
use crate::store::DynamoStore;
use adapters::store::pool::{Fenced, member_scope};
use adapters::store::session_keys::SessionKeys;
use session_driver::{
    Driver, DriverError, DriverEvent, DriverSession, Outgoing, SendError, SessionSpec,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::info;
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::HttpClient;
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::store::traits::Backend;
use whatsapp_rust::transport::TransportFactory;
use whatsapp_rust::types::events::{Event, EventHandler, InboundMessage};
use whatsapp_rust::{Client, InboundDurabilityHook, TokioRuntime, anyhow, async_trait};

/// How the driver runs.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// The WhatsApp Web version to announce (`SESSION_WA_VERSION`, e.g. `2.3000.1027634211`);
    /// by default the client asks WhatsApp for the current one.
    pub version: Option<(u32, u32, u32)>,
    /// How long a received message waits for the host to persist it before WhatsApp is
    /// left to deliver it again (`SESSION_WA_ACK_TIMEOUT_MS`, 30 s).
    pub ack_timeout: Duration,
    /// What the linked device is called on the phone.
    pub device_name: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        Self {
            version: None,
            ack_timeout: Duration::from_secs(30),
            device_name: "Switchboard".into(),
        }
    }
}

/// A version as `major.minor.patch`.
pub fn parse_version(text: &str) -> Result<(u32, u32, u32), String> {
    let parts: Vec<u32> = text
        .split('.')
        .map(|p| p.trim().parse::<u32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{text:?} is not a version like 2.3000.1027634211"))?;
    match parts.as_slice() {
        [a, b, c] => Ok((*a, *b, *c)),
        _ => Err(format!("{text:?} is not a version like 2.3000.1027634211")),
    }
}

impl WebConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let mut config = Self::default();
        if let Some(version) = lookup("SESSION_WA_VERSION").filter(|v| !v.trim().is_empty()) {
            config.version = Some(parse_version(&version)?);
        }
        if let Some(ms) = lookup("SESSION_WA_ACK_TIMEOUT_MS") {
            let ms: u64 = ms.trim().parse().map_err(|_| {
                format!("SESSION_WA_ACK_TIMEOUT_MS={ms:?} is not a number of milliseconds")
            })?;
            config.ack_timeout = Duration::from_millis(ms);
        }
        Ok(config)
    }
}

/// whatsapp-rust behind the host's driver trait: each session's client on its own
/// [`DynamoStore`].
#[derive(Clone)]
pub struct WhatsAppWeb {
    keys: SessionKeys,
    launcher: Launcher,
}

impl WhatsAppWeb {
    pub fn new(keys: SessionKeys, launcher: Launcher) -> Self {
        Self { keys, launcher }
    }

    /// The driver as deployed: WhatsApp's websocket (TLS) and HTTP, over the internet.
    pub fn online(keys: SessionKeys, config: WebConfig) -> Result<Self, String> {
        let http = crate::http::ReqwestHttp::new().map_err(|e| e.to_string())?;
        let transport = whatsapp_rust::transport::TokioWebSocketTransportFactory::new();
        Ok(Self::new(keys, Launcher::new(transport, http, config)))
    }
}

/// Starts whatsapp-rust clients: their transport and HTTP client, and the configuration.
#[derive(Clone)]
pub struct Launcher {
    transport: Arc<dyn TransportFactory>,
    http: Arc<dyn HttpClient>,
    config: WebConfig,
}

impl Launcher {
    pub fn new(
        transport: impl TransportFactory + 'static,
        http: impl HttpClient + 'static,
        config: WebConfig,
    ) -> Self {
        Self { transport: Arc::new(transport), http: Arc::new(http), config }
    }
}

/// A transport factory shared by every session's client.
struct Shared<T: ?Sized>(Arc<T>);

#[async_trait]
impl TransportFactory for Shared<dyn TransportFactory> {
    async fn create_transport(
        &self,
    ) -> Result<
        (
            Arc<dyn whatsapp_rust::transport::Transport>,
            whatsapp_rust::async_channel::Receiver<whatsapp_rust::transport::TransportEvent>,
        ),
        anyhow::Error,
    > {
        self.0.create_transport().await
    }
}

#[async_trait]
impl HttpClient for Shared<dyn HttpClient> {
    async fn execute(
        &self,
        request: whatsapp_rust::http::HttpRequest,
    ) -> anyhow::Result<whatsapp_rust::http::HttpResponse> {
        self.0.execute(request).await
    }
}

/// Received messages waiting for the host's `ack`, by WhatsApp's id.
type Waiting = Arc<Mutex<HashMap<String, Vec<oneshot::Sender<()>>>>>;

/// What the client's event bus and the run's end send to the session's forwarder, in order.
enum Raw {
    Event(Arc<Event>),
    Ended,
}

/// The event bus's handler: runs inline on the client's dispatch path, so it only queues.
struct Forward(mpsc::UnboundedSender<Raw>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(Raw::Event(event));
    }
}

/// The inbound durability hook: the host persists, then WhatsApp is acknowledged.
struct Commit {
    events: mpsc::Sender<DriverEvent>,
    waiting: Waiting,
    timeout: Duration,
}

#[async_trait]
impl InboundDurabilityHook for Commit {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> anyhow::Result<()> {
        let mut acks = Vec::new();
        for received in batch {
            if !mapping::taken(&received.info) {
                continue;
            }
            let message = mapping::inbound(&received.message, &received.info);
            let (done, ack) = oneshot::channel();
            if let Ok(mut waiting) = self.waiting.lock() {
                waiting.entry(message.id.clone()).or_default().push(done);
            }
            self.events.send(DriverEvent::Message(message)).await.map_err(|_| {
                anyhow::anyhow!("the session stopped before the message was stored")
            })?;
            acks.push(ack);
        }
        for ack in acks {
            match tokio::time::timeout(self.timeout, ack).await {
                Ok(Ok(())) => {}
                _ => return Err(anyhow::anyhow!("the host did not store the message in time")),
            }
        }
        Ok(())
    }
}

/// The host stored these messages: their hooks may let the client acknowledge them.
fn acknowledge(waiting: &Waiting, ids: Vec<String>) {
    let Ok(mut waiting) = waiting.lock() else { return };
    for id in ids {
        for done in waiting.remove(&id).unwrap_or_default() {
            let _ = done.send(());
        }
    }
}

/// What the host's `Paired` credentials are for this driver: a marker that the device is
/// in the session's store (the keys themselves never leave it).
fn marker(device: &whatsapp_rust::Jid) -> Vec<u8> {
    serde_json::json!({ "driver": "whatsapp-web", "device": device.device })
        .to_string()
        .into_bytes()
}

fn terminal(event: &DriverEvent) -> bool {
    matches!(
        event,
        DriverEvent::PairingExpired
            | DriverEvent::LoggedOut
            | DriverEvent::StreamReplaced
            | DriverEvent::TemporaryBan { .. }
            | DriverEvent::ClientOutdated
            | DriverEvent::Disconnected { .. }
    )
}

impl Driver for WhatsAppWeb {
    type Session = WebSession;

    async fn start(
        &self,
        spec: SessionSpec,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<WebSession, DriverError> {
        let scope = member_scope(&spec.tenant);
        if spec.credentials.is_none() {
            // A new pairing starts from nothing: what an unfinished one left is forgotten.
            match self.keys.forget(&spec.fence, &scope).await {
                Ok(Fenced::Written) => {}
                Ok(_) => return Err(DriverError("the lease is no longer held".into())),
                Err(e) => return Err(DriverError(format!("session keys not reset: {e}"))),
            }
        }
        let store = DynamoStore::open(self.keys.clone(), &scope, spec.fence.clone())
            .await
            .map_err(|e| DriverError(format!("session keys not opened: {e}")))?;
        let lease_lost = store.lease_lost();
        let pairing = spec.credentials.is_none();
        let session =
            self.launcher.launch(store, spec.pair_phone.clone(), lease_lost, events).await?;
        info!(session = spec.label, pairing, "whatsapp web client started");
        Ok(session)
    }
}

impl Launcher {
    /// Starts a client on `backend` (the session's store; any backend in tests). Its events
    /// arrive on `events`; `lease_lost` says why a run ended when the store refused a write.
    pub async fn launch(
        &self,
        backend: impl Backend + 'static,
        pair_phone: Option<String>,
        lease_lost: Arc<AtomicBool>,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<WebSession, DriverError> {
        let waiting: Waiting = Arc::default();
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let mut builder = Bot::builder()
            .with_backend(backend)
            .with_transport_factory(Shared(self.transport.clone()))
            .with_http_client(Shared(self.http.clone()))
            .with_runtime(TokioRuntime)
            .with_event_handler(Forward(raw_tx.clone()))
            .with_inbound_durability_hook(Commit {
                events: events.clone(),
                waiting: waiting.clone(),
                timeout: self.config.ack_timeout,
            })
            .with_device_props(
                whatsapp_rust::wacore::store::DevicePropsOverride::new()
                    .with_os(self.config.device_name.clone()),
            )
            .skip_history_sync();
        if let Some(version) = self.config.version {
            builder = builder.with_version(version);
        }
        if let Some(phone) = pair_phone {
            builder = builder
                .with_pair_code(PairCodeOptions { phone_number: phone, ..Default::default() });
        }
        let bot =
            builder.build().await.map_err(|e| DriverError(format!("client not built: {e}")))?;
        let client = bot.client();
        let handle = bot.spawn();

        let (stop_tx, stop_rx) = oneshot::channel();
        let (done_tx, done_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(watch(handle, stop_rx, raw_tx, done_tx));
        tokio::spawn(forward(raw_rx, events, client.clone(), lease_lost));
        Ok(WebSession { client, waiting, stop: Mutex::new(Some(stop_tx)), done: done_rx })
    }
}

/// How long a stopping client may take to close before it is aborted.
const STOP_WAIT: Duration = Duration::from_secs(3);

/// Runs the client until it ends by itself or the session stops it.
async fn watch(
    mut handle: BotHandle,
    stop: oneshot::Receiver<()>,
    raw: mpsc::UnboundedSender<Raw>,
    done: tokio::sync::watch::Sender<bool>,
) {
    tokio::select! {
        () = &mut handle => {
            let _ = raw.send(Raw::Ended);
        }
        // Asked to stop, or the session was dropped. A connected client stops at once
        // (flushing what it holds); one still waiting for WhatsApp's handshake does not
        // notice the request until the handshake times out, and has nothing to flush, so it
        // is aborted after a while.
        _ = stop => {
            if tokio::time::timeout(STOP_WAIT, handle.shutdown()).await.is_err() {
                info!("the whatsapp web client did not stop in time; aborted");
            }
        }
    }
    let _ = done.send(true);
}

/// Turns the client's events into the session's, in order.
async fn forward(
    mut raw: mpsc::UnboundedReceiver<Raw>,
    events: mpsc::Sender<DriverEvent>,
    client: Arc<Client>,
    lease_lost: Arc<AtomicBool>,
) {
    let mut pairing = mapping::Pairing::default();
    let mut ended = false;
    while let Some(raw) = raw.recv().await {
        let mapped = match raw {
            Raw::Event(event) => mapping::session_event(&event, &mut pairing, marker),
            Raw::Ended if ended => Vec::new(),
            Raw::Ended => {
                let reason = if lease_lost.load(Ordering::Relaxed) {
                    "the session's lease was lost"
                } else {
                    "the connection closed"
                };
                vec![DriverEvent::Disconnected { reason: reason.into() }]
            }
        };
        for event in mapped {
            if matches!(event, DriverEvent::Connected) {
                // From here on a dropped connection is the host's to retry.
                client.enable_auto_reconnect.store(false, Ordering::Relaxed);
            }
            ended |= terminal(&event);
            if events.send(event).await.is_err() {
                info!("the session no longer listens; the client's events are dropped");
                return;
            }
        }
    }
}

/// A started client.
pub struct WebSession {
    client: Arc<Client>,
    waiting: Waiting,
    stop: Mutex<Option<oneshot::Sender<()>>>,
    done: tokio::sync::watch::Receiver<bool>,
}

impl WebSession {
    /// The whatsapp-rust client (for tests and measurements).
    pub fn client(&self) -> Arc<Client> {
        self.client.clone()
    }

    /// Whether the client's run has ended (stopped, or ended by itself).
    pub fn ended(&self) -> bool {
        *self.done.borrow()
    }

    fn stop_now(&self) {
        if let Ok(mut stop) = self.stop.lock()
            && let Some(stop) = stop.take()
        {
            let _ = stop.send(());
        }
    }
}

impl Drop for WebSession {
    fn drop(&mut self) {
        // A session dropped without `stop` (a failed connection, a replaced stream) must not
        // leave its client running.
        self.stop_now();
    }
}

impl DriverSession for WebSession {
    async fn send(&self, to: &str, message: &Outgoing) -> Result<String, SendError> {
        let jid = mapping::recipient(to).map_err(SendError::Refused)?;
        if !self.client.is_connected() {
            return Err(SendError::NotConnected);
        }
        let message = mapping::outgoing(&jid, message);
        match self.client.send_message(jid, message).await {
            Ok(sent) => Ok(sent.message_id),
            Err(whatsapp_rust::send::SendError::NotLoggedIn) => Err(SendError::NotConnected),
            Err(whatsapp_rust::send::SendError::InvalidRequest(reason)) => {
                Err(SendError::Refused(reason))
            }
            Err(_) if !self.client.is_connected() => Err(SendError::NotConnected),
            Err(e) => Err(SendError::Unanswered(e.to_string())),
        }
    }

    async fn ack(&self, ids: Vec<String>) {
        acknowledge(&self.waiting, ids);
    }

    async fn logout(&self) -> Result<(), DriverError> {
        self.client.logout().await;
        self.stop().await;
        Ok(())
    }

    async fn stop(&self) {
        self.stop_now();
        let mut done = self.done.clone();
        let _ = tokio::time::timeout(Duration::from_secs(15), done.wait_for(|d| *d)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offline::{NoHttp, OfflineTransport, VERSION};
    use whatsapp_rust::transport::{DisconnectReason, TransportEvent};
    use whatsapp_rust::types::message::{MessageInfo, MessageSource};
    use whatsapp_rust::wacore::store::InMemoryBackend;
    use whatsapp_rust::waproto::whatsapp as wa;

    fn launcher(transport: &OfflineTransport, http: &NoHttp) -> Launcher {
        let config = WebConfig { version: Some(VERSION), ..WebConfig::default() };
        Launcher::new(transport.clone(), http.clone(), config)
    }

    async fn until(what: &str, cond: impl Fn() -> bool) {
        for _ in 0..500 {
            if cond() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("timed out waiting for {what}");
    }

    /// A client launched on an in-memory backend and the offline transport.
    async fn started() -> (OfflineTransport, NoHttp, WebSession, mpsc::Receiver<DriverEvent>) {
        let (transport, http) = (OfflineTransport::new(), NoHttp::default());
        let (tx, events) = mpsc::channel(16);
        let session = launcher(&transport, &http)
            .launch(InMemoryBackend::new(), None, Arc::default(), tx)
            .await
            .expect("launched");
        (transport, http, session, events)
    }

    #[tokio::test]
    async fn a_client_opens_the_transport_writes_its_hello_and_stops_cleanly() {
        let (transport, http, session, mut events) = started().await;
        until("the client to open a connection", || transport.opened() == 1).await;
        until("the client to write", || !transport.written(0).is_empty()).await;
        let first = transport.written(0)[0].clone();
        assert!(first.starts_with(b"WA"), "the noise prologue comes first: {first:?}");
        assert_eq!(http.asked(), 0, "a pinned version fetches nothing");

        session.stop().await;
        assert!(session.ended(), "the client's run ended");
        assert!(events.try_recv().is_err(), "a stop is not a disconnection");
        assert!(!transport.play(0, TransportEvent::Connected), "the connection was closed");
    }

    #[tokio::test]
    async fn while_pairing_a_dropped_transport_is_redialled_by_the_library() {
        let (transport, _http, session, mut events) = started().await;
        until("a connection", || transport.opened() == 1).await;
        assert!(transport.play(0, TransportEvent::Disconnected(DisconnectReason::StreamEnded)));
        until("a second connection", || transport.opened() == 2).await;
        assert!(!session.ended());
        assert!(events.try_recv().is_err(), "the session is not told of it");
        session.stop().await;
    }

    #[tokio::test]
    async fn once_connected_a_dropped_transport_ends_the_client_and_the_host_is_told() {
        let (transport, _http, session, mut events) = started().await;
        until("a connection", || transport.opened() == 1).await;
        // What the forwarder does on `Connected` (which needs WhatsApp's handshake).
        session.client().enable_auto_reconnect.store(false, Ordering::Relaxed);
        assert!(transport.play(0, TransportEvent::Disconnected(DisconnectReason::StreamEnded)));
        let event = tokio::time::timeout(Duration::from_secs(10), events.recv()).await;
        assert!(
            matches!(event, Ok(Some(DriverEvent::Disconnected { ref reason })) if reason == "the connection closed"),
            "{event:?}"
        );
        until("the run to end", || session.ended()).await;
        assert_eq!(transport.opened(), 1, "the host, not the library, reconnects now");
    }

    #[tokio::test]
    async fn client_events_are_forwarded_in_order_and_a_run_end_is_said_once() {
        let (_transport, _http, session, _events) = started().await;
        let client = session.client();
        let (raw_tx, raw_rx) = mpsc::unbounded_channel();
        let (events_tx, mut events) = mpsc::channel(16);
        let lost = Arc::new(AtomicBool::new(false));
        tokio::spawn(forward(raw_rx, events_tx, client.clone(), lost.clone()));
        let connected = whatsapp_rust::types::events::Connected::builder().build();
        raw_tx.send(Raw::Event(Arc::new(Event::Connected(connected)))).ok();
        assert!(matches!(events.recv().await, Some(DriverEvent::Connected)));
        assert!(
            !client.enable_auto_reconnect.load(Ordering::Relaxed),
            "connected: reconnecting is the host's"
        );
        lost.store(true, Ordering::Relaxed);
        raw_tx.send(Raw::Ended).ok();
        raw_tx.send(Raw::Ended).ok();
        assert!(matches!(
            events.recv().await,
            Some(DriverEvent::Disconnected { reason }) if reason.contains("lease")
        ));
        drop(raw_tx);
        assert!(events.recv().await.is_none(), "one end, said once");
        session.stop().await;
    }

    fn received(sender: &str, group: bool) -> InboundMessage {
        let jid: whatsapp_rust::Jid = sender.parse().expect("jid");
        let info = MessageInfo {
            source: MessageSource {
                chat: jid.clone(),
                sender: jid,
                is_group: group,
                ..Default::default()
            },
            id: "3EB0HOOK".into(),
            ..Default::default()
        };
        let message = wa::Message { conversation: Some("persist me".into()), ..Default::default() };
        InboundMessage::builder().message(Arc::new(message)).info(Arc::new(info)).build()
    }

    #[tokio::test]
    async fn a_received_message_is_acknowledged_only_once_the_host_stored_it() {
        let (_transport, _http, session, _events) = started().await;
        let (events_tx, mut events) = mpsc::channel(16);
        let waiting: Waiting = Arc::default();
        let hook = Commit {
            events: events_tx,
            waiting: waiting.clone(),
            timeout: Duration::from_millis(300),
        };
        let batch = [received("15551230001@s.whatsapp.net", false)];

        // Stored: the hook lets the client acknowledge it.
        let (committed, _) = tokio::join!(hook.on_messages(session.client(), &batch), async {
            match events.recv().await {
                Some(DriverEvent::Message(m)) => {
                    assert_eq!(m.id, "3EB0HOOK");
                    acknowledge(&waiting, vec![m.id]);
                }
                other => panic!("{other:?}"),
            }
        });
        assert!(committed.is_ok(), "{committed:?}");

        // Not stored in time: the hook fails, and WhatsApp delivers the message again.
        let unstored = hook.on_messages(session.client(), &batch).await;
        assert!(unstored.is_err(), "no ack, no commit");
        assert!(matches!(events.recv().await, Some(DriverEvent::Message(_))));

        // A group's message is not the platform's: committed without asking the host.
        let group = [received("120363021033254949@g.us", true)];
        assert!(hook.on_messages(session.client(), &group).await.is_ok());
        assert!(events.try_recv().is_err());
        session.stop().await;
    }

    #[test]
    fn versions_and_timeouts_are_read_or_refused() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(n, _)| *n == name).map(|(_, v)| v.to_string())
        };
        let config = WebConfig::from_lookup(env(&[])).expect("defaults");
        assert_eq!(config.version, None);
        assert_eq!(config.ack_timeout, Duration::from_secs(30));
        let config = WebConfig::from_lookup(env(&[
            ("SESSION_WA_VERSION", "2.3000.1027634211"),
            ("SESSION_WA_ACK_TIMEOUT_MS", "500"),
        ]))
        .expect("set");
        assert_eq!(config.version, Some((2, 3000, 1_027_634_211)));
        assert_eq!(config.ack_timeout, Duration::from_millis(500));
        assert!(WebConfig::from_lookup(env(&[("SESSION_WA_VERSION", "2.3000")])).is_err());
        assert!(WebConfig::from_lookup(env(&[("SESSION_WA_VERSION", "latest")])).is_err());
        assert!(WebConfig::from_lookup(env(&[("SESSION_WA_ACK_TIMEOUT_MS", "soon")])).is_err());
    }
}
