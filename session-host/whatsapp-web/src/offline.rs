//! The driver without a network: a transport factory whose connections the caller drives
//! (it sees what the client writes and plays the server's transport events), and an HTTP
//! client that refuses every request. With a pinned WhatsApp Web version (`WebConfig::version`)
//! the client fetches nothing, so a test proves the wiring and no byte leaves the process.

use std::sync::{Arc, Mutex};
use whatsapp_rust::anyhow;
use whatsapp_rust::async_channel;
use whatsapp_rust::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::transport::{Transport, TransportEvent, TransportFactory};

/// One connection the client opened.
pub struct Line {
    /// What the client wrote (noise frames), in order.
    pub written: Arc<Mutex<Vec<Bytes>>>,
    /// Plays the server's side: connected, data, disconnected.
    pub events: async_channel::Sender<TransportEvent>,
}

/// Every connection made, for the test to drive.
#[derive(Clone, Default)]
pub struct OfflineTransport {
    lines: Arc<Mutex<Vec<Line>>>,
    /// Announce `Connected` as soon as a connection is made (what a socket does).
    connect_at_once: bool,
}

impl OfflineTransport {
    pub fn new() -> Self {
        Self { lines: Arc::default(), connect_at_once: true }
    }

    /// Connections that never come up: the client waits, idle (a host's session while
    /// WhatsApp is unreachable).
    pub fn silent() -> Self {
        Self { lines: Arc::default(), connect_at_once: false }
    }

    /// How many connections the client opened.
    pub fn opened(&self) -> usize {
        self.lines.lock().map(|l| l.len()).unwrap_or(0)
    }

    /// The bytes the client wrote on connection `n`.
    pub fn written(&self, n: usize) -> Vec<Bytes> {
        self.lines
            .lock()
            .ok()
            .and_then(|l| l.get(n).and_then(|line| line.written.lock().ok().map(|w| w.clone())))
            .unwrap_or_default()
    }

    /// Plays a transport event on connection `n`; false when there is no such connection
    /// or the client dropped it.
    pub fn play(&self, n: usize, event: TransportEvent) -> bool {
        let sender = self.lines.lock().ok().and_then(|l| l.get(n).map(|line| line.events.clone()));
        sender.is_some_and(|s| s.try_send(event).is_ok())
    }
}

struct OfflineLine {
    written: Arc<Mutex<Vec<Bytes>>>,
    events: async_channel::Sender<TransportEvent>,
}

#[async_trait]
impl Transport for OfflineLine {
    async fn send(&self, data: Bytes) -> Result<(), anyhow::Error> {
        if self.events.is_closed() {
            return Err(anyhow::anyhow!("the offline connection is closed"));
        }
        if let Ok(mut written) = self.written.lock() {
            written.push(data);
        }
        Ok(())
    }

    async fn disconnect(&self) {
        self.events.close();
    }
}

#[async_trait]
impl TransportFactory for OfflineTransport {
    async fn create_transport(
        &self,
    ) -> Result<(Arc<dyn Transport>, async_channel::Receiver<TransportEvent>), anyhow::Error> {
        let (tx, rx) = async_channel::unbounded();
        let written = Arc::new(Mutex::new(Vec::new()));
        if self.connect_at_once {
            let _ = tx.try_send(TransportEvent::Connected);
        }
        if let Ok(mut lines) = self.lines.lock() {
            lines.push(Line { written: written.clone(), events: tx.clone() });
        }
        Ok((Arc::new(OfflineLine { written, events: tx }), rx))
    }
}

/// Refuses every request (nothing leaves the process), and counts them.
#[derive(Debug, Clone, Default)]
pub struct NoHttp {
    asked: Arc<std::sync::atomic::AtomicUsize>,
}

impl NoHttp {
    /// How many requests the client tried.
    pub fn asked(&self) -> usize {
        self.asked.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, request: HttpRequest) -> anyhow::Result<HttpResponse> {
        self.asked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Err(anyhow::anyhow!("offline: no HTTP request is made ({} refused)", request.method))
    }
}

/// A WhatsApp Web version to pin offline, so that the client asks nothing of WhatsApp.
pub const VERSION: (u32, u32, u32) = (2, 3000, 1_026_131_876);
