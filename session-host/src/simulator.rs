//! The simulator driver: WhatsApp's servers are the local sandbox's `/_wa/…` API (see the
//! sandbox's `web` module), reached over HTTP long polls. Used by `make dev` and the
//! tests; never in AWS.

use crate::driver::{
    Driver, DriverError, DriverEvent, DriverSession, Outgoing, SendError, SessionSpec,
};
use domain::sessions::{WebContent, WebInbound, WebReceipt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::debug;

#[derive(Clone)]
pub struct Simulator {
    base: String,
    http: reqwest::Client,
}

impl Simulator {
    pub fn new(sandbox_url: &str) -> Result<Self, DriverError> {
        let http = reqwest::Client::builder()
            // Long polls wait 20 s at the sandbox.
            .timeout(Duration::from_secs(30))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DriverError(e.to_string()))?;
        Ok(Self { base: sandbox_url.trim_end_matches('/').to_owned(), http })
    }
}

/// What the simulator stores as a device's credentials.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Credentials {
    device_id: String,
    credentials: String,
    phone_number: String,
}

pub struct SimulatedSession {
    inner: Arc<Inner>,
}

struct Inner {
    sim: Simulator,
    connection: Mutex<Option<String>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Inner {
    fn connection(&self) -> Option<String> {
        self.connection.lock().ok().and_then(|c| c.clone())
    }
}

impl Driver for Simulator {
    type Session = SimulatedSession;

    async fn start(
        &self,
        spec: SessionSpec,
        events: mpsc::Sender<DriverEvent>,
    ) -> Result<SimulatedSession, DriverError> {
        let inner = Arc::new(Inner {
            sim: self.clone(),
            connection: Mutex::new(None),
            task: Mutex::new(None),
        });
        let task = match spec.credentials {
            Some(bytes) => {
                let credentials: Credentials = serde_json::from_slice(&bytes)
                    .map_err(|e| DriverError(format!("stored credentials unreadable: {e}")))?;
                // Connecting is part of starting: a refused device is known at once.
                match connect(&inner, &credentials).await? {
                    true => {
                        let _ = events.send(DriverEvent::Connected).await;
                        tokio::spawn(listen(inner.clone(), events))
                    }
                    false => {
                        let _ = events.send(DriverEvent::LoggedOut).await;
                        tokio::spawn(async {})
                    }
                }
            }
            None => {
                let started = self
                    .http
                    .post(format!("{}/_wa/pair", self.base))
                    .json(&json!({ "phoneNumber": spec.pair_phone.map(|p| format!("+{p}")) }))
                    .send()
                    .await
                    .map_err(|e| DriverError(e.without_url().to_string()))?;
                if !started.status().is_success() {
                    return Err(DriverError(format!("pairing refused: {}", started.status())));
                }
                let body: Value =
                    started.json().await.map_err(|e| DriverError(e.without_url().to_string()))?;
                let reference = body["ref"].as_str().unwrap_or_default().to_owned();
                let _ = events.send(qr_event(&body)).await;
                tokio::spawn(pair(inner.clone(), reference, body, events))
            }
        };
        if let Ok(mut slot) = inner.task.lock() {
            *slot = Some(task);
        }
        debug!(session = spec.label, "simulated session started");
        Ok(SimulatedSession { inner })
    }
}

/// The client's connection (or pairing) ended for `reason`: reconnecting may help.
async fn dropped(events: &mpsc::Sender<DriverEvent>, reason: String) {
    let _ = events.send(DriverEvent::Disconnected { reason }).await;
}

fn qr_event(body: &Value) -> DriverEvent {
    DriverEvent::Qr {
        qr: body["qr"].as_str().unwrap_or_default().to_owned(),
        pairing_code: body["pairingCode"].as_str().map(str::to_owned),
        expires_at: body["expiresAt"].as_i64().unwrap_or_default(),
    }
}

/// `Ok(false)`: the device is logged out.
async fn connect(inner: &Inner, credentials: &Credentials) -> Result<bool, DriverError> {
    let answer = inner
        .sim
        .http
        .post(format!("{}/_wa/connect", inner.sim.base))
        .json(&json!({ "deviceId": credentials.device_id, "credentials": credentials.credentials }))
        .send()
        .await
        .map_err(|e| DriverError(e.without_url().to_string()))?;
    if answer.status() == reqwest::StatusCode::UNAUTHORIZED {
        return Ok(false);
    }
    if !answer.status().is_success() {
        return Err(DriverError(format!("connect refused: {}", answer.status())));
    }
    let body: Value = answer.json().await.map_err(|e| DriverError(e.without_url().to_string()))?;
    let connection = body["connectionId"].as_str().unwrap_or_default().to_owned();
    if let Ok(mut slot) = inner.connection.lock() {
        *slot = Some(connection);
    }
    Ok(true)
}

/// Follows a pairing: new QRs as they rotate, then the linked device, then its connection.
async fn pair(
    inner: Arc<Inner>,
    reference: String,
    first: Value,
    events: mpsc::Sender<DriverEvent>,
) {
    let mut qr = first["qr"].as_str().unwrap_or_default().to_owned();
    loop {
        let answer = inner
            .sim
            .http
            .get(format!("{}/_wa/pair/{reference}", inner.sim.base))
            .query(&[("after", qr.as_str())])
            .send()
            .await;
        let answer = match answer {
            Ok(answer) if answer.status() == reqwest::StatusCode::GONE => {
                let _ = events.send(DriverEvent::PairingExpired).await;
                return;
            }
            Ok(answer) if answer.status().is_success() => answer,
            Ok(answer) => {
                return dropped(&events, format!("pairing status {}", answer.status())).await;
            }
            Err(e) => return dropped(&events, e.without_url().to_string()).await,
        };
        let Ok(body) = answer.json::<Value>().await else { continue };
        match body["status"].as_str() {
            Some("linked") => {
                let credentials = Credentials {
                    device_id: body["deviceId"].as_str().unwrap_or_default().to_owned(),
                    credentials: body["credentials"].as_str().unwrap_or_default().to_owned(),
                    phone_number: body["phoneNumber"].as_str().unwrap_or_default().to_owned(),
                };
                let bytes = serde_json::to_vec(&credentials).unwrap_or_default();
                let paired = DriverEvent::Paired {
                    phone_number: credentials.phone_number.clone(),
                    device_id: credentials.device_id.clone(),
                    credentials: bytes,
                };
                if events.send(paired).await.is_err() {
                    return;
                }
                match connect(&inner, &credentials).await {
                    Ok(true) => {
                        let _ = events.send(DriverEvent::Connected).await;
                        listen(inner, events).await;
                    }
                    Ok(false) => {
                        let _ = events.send(DriverEvent::LoggedOut).await;
                    }
                    Err(e) => dropped(&events, e.0).await,
                }
                return;
            }
            _ => {
                let next = body["qr"].as_str().unwrap_or_default();
                if next != qr {
                    qr = next.to_owned();
                    if events.send(qr_event(&body)).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

/// Turns the connection's events into driver events until it ends.
async fn listen(inner: Arc<Inner>, events: mpsc::Sender<DriverEvent>) {
    let Some(connection) = inner.connection() else { return };
    loop {
        let answer = inner
            .sim
            .http
            .get(format!("{}/_wa/events", inner.sim.base))
            .query(&[("connection", connection.as_str())])
            .send()
            .await;
        let body: Value = match answer {
            Ok(answer) if answer.status().is_success() => match answer.json().await {
                Ok(body) => body,
                Err(e) => return dropped(&events, e.without_url().to_string()).await,
            },
            Ok(answer) => return dropped(&events, format!("events {}", answer.status())).await,
            Err(e) => return dropped(&events, e.without_url().to_string()).await,
        };
        for event in body["events"].as_array().into_iter().flatten() {
            let mapped = match event["type"].as_str() {
                Some("message") => DriverEvent::Message(inbound(event)),
                Some("receipt") => DriverEvent::Receipt(WebReceipt {
                    message_id: event["id"].as_str().unwrap_or_default().to_owned(),
                    recipient: event["recipient"].as_str().unwrap_or_default().to_owned(),
                    status: event["status"].as_str().unwrap_or_default().to_owned(),
                    timestamp: event["timestamp"].as_i64().unwrap_or_default(),
                }),
                Some("dropped") => {
                    DriverEvent::Disconnected { reason: "connection dropped".into() }
                }
                Some("logged_out") => DriverEvent::LoggedOut,
                Some("replaced") => DriverEvent::StreamReplaced,
                _ => continue,
            };
            let ends = matches!(
                mapped,
                DriverEvent::Disconnected { .. }
                    | DriverEvent::LoggedOut
                    | DriverEvent::StreamReplaced
            );
            if events.send(mapped).await.is_err() || ends {
                return;
            }
        }
    }
}

fn inbound(event: &Value) -> WebInbound {
    let text = |name: &str| event[name].as_str().map(str::to_owned);
    let content = match (&event["text"], &event["reaction"]) {
        (Value::String(text), _) => WebContent::Text(text.clone()),
        (_, Value::Object(reaction)) => WebContent::Reaction {
            message_id: reaction
                .get("messageId")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            emoji: reaction.get("emoji").and_then(Value::as_str).unwrap_or_default().to_owned(),
        },
        _ => WebContent::Other("unsupported".into()),
    };
    WebInbound {
        id: text("id").unwrap_or_default(),
        from: text("from").unwrap_or_default(),
        push_name: text("pushName"),
        timestamp: event["timestamp"].as_i64().unwrap_or_default(),
        content,
        reply_to: text("replyTo"),
    }
}

impl DriverSession for SimulatedSession {
    async fn send(&self, to: &str, message: &Outgoing) -> Result<String, SendError> {
        let Some(connection) = self.inner.connection() else { return Err(SendError::NotConnected) };
        let mut body = json!({ "connection": connection, "to": to });
        match message {
            Outgoing::Text { body: text, reply_to } => {
                body["text"] = json!(text);
                if let Some(reply_to) = reply_to {
                    body["replyTo"] = json!(reply_to);
                }
            }
            Outgoing::Reaction { message_id, emoji } => {
                body["reaction"] = json!({ "messageId": message_id, "emoji": emoji });
            }
        }
        let answer = self
            .inner
            .sim
            .http
            .post(format!("{}/_wa/send", self.inner.sim.base))
            .json(&body)
            .send()
            .await
            .map_err(|e| SendError::Unanswered(e.without_url().to_string()))?;
        match answer.status() {
            s if s.is_success() => {
                let body: Value = answer
                    .json()
                    .await
                    .map_err(|e| SendError::Unanswered(e.without_url().to_string()))?;
                Ok(body["id"].as_str().unwrap_or_default().to_owned())
            }
            reqwest::StatusCode::GONE => Err(SendError::NotConnected),
            s if s.is_client_error() => Err(SendError::Refused(format!("HTTP {}", s.as_u16()))),
            s => Err(SendError::Unanswered(format!("HTTP {}", s.as_u16()))),
        }
    }

    async fn ack(&self, ids: Vec<String>) {
        let Some(connection) = self.inner.connection() else { return };
        let _ = self
            .inner
            .sim
            .http
            .post(format!("{}/_wa/ack", self.inner.sim.base))
            .json(&json!({ "connection": connection, "ids": ids }))
            .send()
            .await;
    }

    async fn logout(&self) -> Result<(), DriverError> {
        let Some(connection) = self.inner.connection() else {
            return Err(DriverError("not connected".into()));
        };
        if let Some(task) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        let answer = self
            .inner
            .sim
            .http
            .post(format!("{}/_wa/logout", self.inner.sim.base))
            .json(&json!({ "connection": connection }))
            .send()
            .await
            .map_err(|e| DriverError(e.without_url().to_string()))?;
        if answer.status().is_success() {
            Ok(())
        } else {
            Err(DriverError(format!("logout refused: {}", answer.status())))
        }
    }

    async fn stop(&self) {
        if let Some(task) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
        // Closing is a courtesy: a host that dies closes nothing, and WhatsApp copes.
        if let Some(connection) = self.inner.connection.lock().ok().and_then(|mut c| c.take()) {
            let _ = self
                .inner
                .sim
                .http
                .post(format!("{}/_wa/close", self.inner.sim.base))
                .timeout(Duration::from_secs(2))
                .json(&json!({ "connection": connection }))
                .send()
                .await;
        }
    }
}

impl Drop for SimulatedSession {
    fn drop(&mut self) {
        if let Some(task) = self.inner.task.lock().ok().and_then(|mut t| t.take()) {
            task.abort();
        }
    }
}
