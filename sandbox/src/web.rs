//! WhatsApp's servers for Web (multi-device) sessions, as the session host's simulator
//! driver sees them, and the control API a test (or a person) plays the phone with.
//!
//! What the driver calls (`/_wa/…`):
//! - `POST /_wa/pair {"phoneNumber"?}` → `{"ref","qr","pairingCode"?,"expiresAt"}`: a
//!   pairing starts. Its QR rotates every `qr_ttl` (WhatsApp's do too), at most
//!   [`MAX_QRS`] times; then the pairing has expired.
//! - `GET /_wa/pair/{ref}?after=<qr>` (long poll, 20 s): `{"status":"waiting","qr",…}` once the
//!   QR differs from `after`, `{"status":"linked","deviceId","phoneNumber","credentials"}`
//!   once a phone scanned it (or typed the code), 410 once it expired.
//! - `POST /_wa/connect {"deviceId","credentials"}` → `{"connectionId"}`, or 401
//!   `{"reason":"logged_out"}` for an unlinked device or wrong credentials. A device has one
//!   live connection: a new one replaces the old (which is told `replaced`). Messages the
//!   device has not acknowledged are delivered again on the new connection.
//! - `GET /_wa/events?connection=` (long poll, 20 s) → `{"events":[…]}`: `message`,
//!   `receipt`, and the ends of a connection: `dropped`, `logged_out`, `replaced` (410 after).
//! - `POST /_wa/ack {"connection","ids"}`: received messages the client has persisted.
//! - `POST /_wa/send {"connection","to","text"|"reaction","replyTo"?}` → `{"id"}` (410 on a
//!   connection that ended); `delivered` and `read` receipts follow.
//! - `POST /_wa/logout {"connection"}`: the device unlinks itself.
//! - `POST /_wa/close {"connection"}`: the client closes its connection (device kept).
//!
//! The control API is in the module's `control_*` handlers (see the crate's docs).

use crate::{AppState, problem};
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// QRs one pairing shows before it expires (WhatsApp Web shows about six).
pub const MAX_QRS: u32 = 6;
/// The longest a long poll waits.
const LONG_POLL: Duration = Duration::from_secs(20);

struct Pairing {
    qr: String,
    qrs_shown: u32,
    qr_until: Instant,
    pair_phone: Option<String>,
    pairing_code: Option<String>,
    linked: Option<(String, String, String)>,
}

struct Device {
    phone: String,
    credentials: String,
    linked: bool,
    pairings: u32,
    connections: u32,
    live: Option<String>,
    /// Received messages not yet acknowledged by the device, in order.
    unacked: VecDeque<Value>,
}

struct Connection {
    device: String,
    events: VecDeque<Value>,
    ended: bool,
}

#[derive(Default)]
pub(crate) struct Web {
    pairings: HashMap<String, Pairing>,
    devices: HashMap<String, Device>,
    connections: HashMap<String, Connection>,
    /// What each linked number sent, in order.
    sent: HashMap<String, Vec<Value>>,
}

/// The shared state and what wakes long polls.
#[derive(Default)]
pub(crate) struct WebServer {
    state: std::sync::Mutex<Web>,
    changed: Notify,
}

impl WebServer {
    fn with<T>(&self, f: impl FnOnce(&mut Web) -> T) -> Option<T> {
        let out = self.state.lock().ok().map(|mut web| f(&mut web));
        self.changed.notify_waiters();
        out
    }

    fn read<T>(&self, f: impl FnOnce(&mut Web) -> T) -> Option<T> {
        self.state.lock().ok().map(|mut web| f(&mut web))
    }

    /// Waits until `check` answers or the long poll ends.
    async fn wait_for<T>(&self, mut check: impl FnMut(&mut Web) -> Option<T>) -> Option<T> {
        let deadline = tokio::time::Instant::now() + LONG_POLL;
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(found) = self.read(&mut check).flatten() {
                return Some(found);
            }
            // Rotations are time-driven: look again at least every second.
            let wake = (tokio::time::Instant::now() + Duration::from_secs(1)).min(deadline);
            tokio::select! {
                () = notified => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return self.read(&mut check).flatten();
            }
        }
    }
}

fn token(prefix: &str) -> String {
    format!("{prefix}{}", uuid::Uuid::new_v4().simple())
}

fn digits_of(phone: &str) -> Option<String> {
    let digits = phone.strip_prefix('+').unwrap_or(phone);
    ((8..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.to_owned())
}

fn pairing_code() -> String {
    let alphabet = b"ABCDEFGHJKLMNPQRSTVWXYZ23456789";
    uuid::Uuid::new_v4().as_bytes()[..8]
        .iter()
        .map(|b| char::from(alphabet[usize::from(*b) % alphabet.len()]))
        .collect()
}

fn expires_at(until: Instant) -> u64 {
    crate::now_secs() + until.saturating_duration_since(Instant::now()).as_secs()
}

impl Pairing {
    /// Rotates the QR when it has run out; `false` once every QR was shown.
    fn refresh(&mut self, ttl: Duration) -> bool {
        if self.linked.is_some() || Instant::now() < self.qr_until {
            return true;
        }
        if self.qrs_shown >= MAX_QRS {
            return false;
        }
        self.qr = token("2@");
        self.qrs_shown += 1;
        self.qr_until = Instant::now() + ttl;
        true
    }

    fn waiting(&self) -> Value {
        let mut out =
            json!({"status": "waiting", "qr": self.qr, "expiresAt": expires_at(self.qr_until)});
        if let Some(code) = &self.pairing_code {
            out["pairingCode"] = json!(code);
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PairRequest {
    phone_number: Option<String>,
}

pub(crate) async fn pair(
    State(state): State<Arc<AppState>>,
    Json(request): Json<PairRequest>,
) -> Response {
    let phone = match request.phone_number.as_deref().map(digits_of) {
        Some(None) => return problem(StatusCode::BAD_REQUEST, "phoneNumber must be E.164"),
        Some(Some(digits)) => Some(digits),
        None => None,
    };
    let reference = token("pair_");
    let pairing = Pairing {
        qr: token("2@"),
        qrs_shown: 1,
        qr_until: Instant::now() + state.settings.qr_ttl,
        pairing_code: phone.as_ref().map(|_| pairing_code()),
        pair_phone: phone,
        linked: None,
    };
    let mut body = pairing.waiting();
    body["ref"] = json!(reference);
    state.web.with(|web| web.pairings.insert(reference, pairing));
    Json(body).into_response()
}

#[derive(Deserialize)]
pub(crate) struct After {
    after: Option<String>,
}

pub(crate) async fn pair_status(
    State(state): State<Arc<AppState>>,
    Path(reference): Path<String>,
    Query(after): Query<After>,
) -> Response {
    let ttl = state.settings.qr_ttl;
    let answer = state
        .web
        .wait_for(|web| {
            let Some(pairing) = web.pairings.get_mut(&reference) else {
                return Some(None);
            };
            if !pairing.refresh(ttl) {
                web.pairings.remove(&reference);
                return Some(None);
            }
            if let Some((device, phone, credentials)) = &pairing.linked {
                return Some(Some(json!({"status": "linked", "deviceId": device, "phoneNumber": format!("+{phone}"), "credentials": credentials})));
            }
            (after.after.as_deref() != Some(pairing.qr.as_str())).then(|| Some(pairing.waiting()))
        })
        .await;
    match answer {
        Some(Some(body)) => Json(body).into_response(),
        Some(None) => problem(StatusCode::GONE, "the pairing expired"),
        // Nothing changed within the long poll: the same QR again.
        None => state
            .web
            .read(|web| web.pairings.get(&reference).map(Pairing::waiting))
            .flatten()
            .map_or_else(
                || problem(StatusCode::GONE, "the pairing expired"),
                |b| Json(b).into_response(),
            ),
    }
}

/// Links a device to `phone` for a pairing (scan or code).
fn link(web: &mut Web, reference: &str, phone: &str) -> Option<String> {
    let pairing = web.pairings.get_mut(reference)?;
    let device = token("dev_");
    let credentials = token("cred_");
    pairing.linked = Some((device.clone(), phone.to_owned(), credentials.clone()));
    web.devices.insert(
        device.clone(),
        Device {
            phone: phone.to_owned(),
            credentials,
            linked: true,
            pairings: 1,
            connections: 0,
            live: None,
            unacked: VecDeque::new(),
        },
    );
    Some(device)
}

/// Links `phone` through the live (unexpired, unlinked) pairing that `matches`: 200 with
/// the new device, or 410 `gone`.
fn link_where(
    state: &AppState,
    phone: &str,
    matches: impl Fn(&Pairing) -> bool,
    gone: &str,
) -> Response {
    let linked = state.web.with(|web| {
        let now = Instant::now();
        let reference = web
            .pairings
            .iter()
            .find(|(_, p)| p.linked.is_none() && now < p.qr_until && matches(p))
            .map(|(r, _)| r.clone())?;
        link(web, &reference, phone)
    });
    match linked.flatten() {
        Some(device) => Json(json!({"deviceId": device})).into_response(),
        None => problem(StatusCode::GONE, gone),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Scan {
    qr: String,
    phone_number: String,
}

/// `POST /_sandbox/web/scan`: a phone scans a QR.
pub(crate) async fn control_scan(
    State(state): State<Arc<AppState>>,
    body: Result<Json<Scan>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(scan)) = body else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"qr\",\"phoneNumber\"}");
    };
    let Some(phone) = digits_of(&scan.phone_number) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "phoneNumber must be E.164");
    };
    link_where(&state, &phone, |p| p.qr == scan.qr, "no pairing shows this QR (expired or unknown)")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PairCode {
    phone_number: String,
    code: String,
}

/// `POST /_sandbox/web/pair-code`: the phone's owner types the pairing code.
pub(crate) async fn control_pair_code(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PairCode>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"phoneNumber\",\"code\"}");
    };
    let Some(phone) = digits_of(&request.phone_number) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "phoneNumber must be E.164");
    };
    let matches = |p: &Pairing| {
        p.pairing_code.as_deref() == Some(request.code.as_str())
            && p.pair_phone.as_deref() == Some(phone.as_str())
    };
    link_where(&state, &phone, matches, "no pairing for this number shows this code")
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConnectRequest {
    device_id: String,
    credentials: String,
}

pub(crate) async fn connect(
    State(state): State<Arc<AppState>>,
    Json(request): Json<ConnectRequest>,
) -> Response {
    let connected = state.web.with(|web| {
        let device = web.devices.get_mut(&request.device_id)?;
        if !device.linked || device.credentials != request.credentials {
            return None;
        }
        device.connections += 1;
        let id = token("conn_");
        let replaced = device.live.replace(id.clone());
        let redelivered: VecDeque<Value> = device.unacked.clone();
        if let Some(old) = replaced.and_then(|old| web.connections.get_mut(&old)) {
            old.events.push_back(json!({"type": "replaced"}));
            old.ended = true;
        }
        web.connections.insert(
            id.clone(),
            Connection { device: request.device_id.clone(), events: redelivered, ended: false },
        );
        Some(id)
    });
    match connected.flatten() {
        Some(id) => Json(json!({"connectionId": id})).into_response(),
        None => (StatusCode::UNAUTHORIZED, Json(json!({"reason": "logged_out"}))).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct EventsQuery {
    connection: String,
}

pub(crate) async fn events(
    State(state): State<Arc<AppState>>,
    Query(query): Query<EventsQuery>,
) -> Response {
    let taken = state
        .web
        .wait_for(|web| {
            let Some(connection) = web.connections.get_mut(&query.connection) else {
                return Some(None);
            };
            if connection.events.is_empty() {
                return connection.ended.then_some(None);
            }
            Some(Some(connection.events.drain(..).collect::<Vec<_>>()))
        })
        .await;
    match taken {
        Some(Some(events)) => Json(json!({"events": events})).into_response(),
        Some(None) => problem(StatusCode::GONE, "the connection ended"),
        None => Json(json!({"events": []})).into_response(),
    }
}

#[derive(Deserialize)]
pub(crate) struct Ack {
    connection: String,
    ids: Vec<String>,
}

pub(crate) async fn ack(State(state): State<Arc<AppState>>, Json(request): Json<Ack>) -> Response {
    state.web.with(|web| {
        let Some(device) =
            web.connections.get(&request.connection).and_then(|c| web.devices.get_mut(&c.device))
        else {
            return;
        };
        device.unacked.retain(|m| !request.ids.iter().any(|id| m["id"] == json!(id)));
    });
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SendRequest {
    connection: String,
    to: String,
    text: Option<String>,
    reaction: Option<Value>,
    reply_to: Option<String>,
}

pub(crate) async fn send(
    State(state): State<Arc<AppState>>,
    Json(request): Json<SendRequest>,
) -> Response {
    let Some(to) = digits_of(&request.to) else {
        return problem(StatusCode::BAD_REQUEST, "to must be a phone number");
    };
    if request.text.is_none() && request.reaction.is_none() {
        return problem(StatusCode::BAD_REQUEST, "a message needs text or a reaction");
    }
    let id = format!("3EB0{}", &uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase());
    let sent = state.web.with(|web| {
        let connection = web.connections.get(&request.connection).filter(|c| !c.ended)?;
        let phone = web.devices.get(&connection.device)?.phone.clone();
        let mut record = json!({"id": id, "to": to, "atMs": crate::now_ms()});
        if let Some(text) = &request.text {
            record["text"] = json!(text);
        }
        if let Some(reaction) = &request.reaction {
            record["reaction"] = reaction.clone();
        }
        if let Some(reply_to) = &request.reply_to {
            record["replyTo"] = json!(reply_to);
        }
        web.sent.entry(phone).or_default().push(record);
        Some(())
    });
    if sent.flatten().is_none() {
        return problem(StatusCode::GONE, "the connection ended");
    }
    // Receipts follow, as the recipient's phone gets and reads the message.
    let delay = state.settings.status_delay;
    let (state2, connection, id2) = (state.clone(), request.connection.clone(), id.clone());
    tokio::spawn(async move {
        for status in ["delivered", "read"] {
            tokio::time::sleep(delay).await;
            state2.web.with(|web| {
                if let Some(c) = web.connections.get_mut(&connection).filter(|c| !c.ended) {
                    c.events.push_back(json!({"type": "receipt", "id": id2, "recipient": to, "status": status, "timestamp": crate::now_secs()}));
                }
            });
        }
    });
    Json(json!({"id": id})).into_response()
}

/// `POST /_wa/close {"connection"}`: the client closes its connection (the device stays
/// linked).
pub(crate) async fn close(
    State(state): State<Arc<AppState>>,
    Json(request): Json<LogoutRequest>,
) -> Response {
    state.web.with(|web| {
        let Some(connection) = web.connections.get_mut(&request.connection) else { return };
        connection.ended = true;
        let device = connection.device.clone();
        if let Some(device) = web.devices.get_mut(&device)
            && device.live.as_deref() == Some(request.connection.as_str())
        {
            device.live = None;
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

#[derive(Deserialize)]
pub(crate) struct LogoutRequest {
    connection: String,
}

pub(crate) async fn logout(
    State(state): State<Arc<AppState>>,
    Json(request): Json<LogoutRequest>,
) -> Response {
    state.web.with(|web| {
        let Some(connection) = web.connections.get_mut(&request.connection) else { return };
        connection.ended = true;
        let device = connection.device.clone();
        if let Some(device) = web.devices.get_mut(&device) {
            device.linked = false;
            device.live = None;
        }
    });
    StatusCode::NO_CONTENT.into_response()
}

/// Ends the phone's live connections with `event`; `unlink` also unlinks its devices.
fn end_connections(web: &mut Web, phone: &str, event: &str, unlink: bool) -> usize {
    let mut ended = 0;
    let devices: Vec<String> = web
        .devices
        .iter()
        .filter(|(_, d)| d.phone == phone && d.linked)
        .map(|(id, _)| id.clone())
        .collect();
    for id in devices {
        let Some(device) = web.devices.get_mut(&id) else { continue };
        if unlink {
            device.linked = false;
        }
        if let Some(live) = device.live.take()
            && let Some(connection) = web.connections.get_mut(&live)
        {
            connection.events.push_back(json!({"type": event}));
            connection.ended = true;
            ended += 1;
        }
    }
    ended
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PhoneBody {
    phone_number: String,
}

async fn end(
    state: &AppState,
    body: Result<Json<PhoneBody>, axum::extract::rejection::JsonRejection>,
    event: &str,
    unlink: bool,
) -> Response {
    let Some(phone) = body.ok().and_then(|Json(b)| digits_of(&b.phone_number)) else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "expected {\"phoneNumber\"} (E.164)");
    };
    let known = state
        .web
        .with(|web| {
            let known = web.devices.values().any(|d| d.phone == phone && d.linked);
            (known, end_connections(web, &phone, event, unlink))
        })
        .unwrap_or((false, 0));
    match known {
        (false, _) => problem(StatusCode::NOT_FOUND, "no device is linked to this number"),
        (true, ended) => Json(json!({"connectionsEnded": ended})).into_response(),
    }
}

/// `POST /_sandbox/web/unlink`: the phone removes the linked device.
pub(crate) async fn control_unlink(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PhoneBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    end(&state, body, "logged_out", true).await
}

/// `POST /_sandbox/web/drop`: the phone's connections drop (the session reconnects).
pub(crate) async fn control_drop(
    State(state): State<Arc<AppState>>,
    body: Result<Json<PhoneBody>, axum::extract::rejection::JsonRejection>,
) -> Response {
    end(&state, body, "dropped", false).await
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebInbound {
    phone_number: String,
    from: String,
    text: String,
    name: Option<String>,
}

/// `POST /_sandbox/web/inbound`: a customer writes to a linked number.
pub(crate) async fn control_inbound(
    State(state): State<Arc<AppState>>,
    body: Result<Json<WebInbound>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Ok(Json(request)) = body else {
        return problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "expected {\"phoneNumber\",\"from\",\"text\"}",
        );
    };
    let (Some(phone), Some(from)) = (digits_of(&request.phone_number), digits_of(&request.from))
    else {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "phoneNumber and from must be E.164");
    };
    if request.text.is_empty() || request.text.len() > 4096 {
        return problem(StatusCode::UNPROCESSABLE_ENTITY, "text must be 1 to 4096 bytes");
    }
    let id = format!("3EB0{}", &uuid::Uuid::new_v4().simple().to_string()[..16].to_uppercase());
    let message = json!({
        "type": "message", "id": id, "from": from, "pushName": request.name.as_deref().unwrap_or("Sandbox customer"),
        "timestamp": crate::now_secs(), "text": request.text,
    });
    let delivered = state.web.with(|web| {
        let device = web.devices.values_mut().find(|d| d.phone == phone && d.linked)?;
        device.unacked.push_back(message.clone());
        let live = device.live.clone();
        if let Some(connection) = live.and_then(|l| web.connections.get_mut(&l)) {
            connection.events.push_back(message.clone());
        }
        Some(())
    });
    match delivered.flatten() {
        Some(()) => (StatusCode::ACCEPTED, Json(json!({"id": id}))).into_response(),
        None => problem(StatusCode::NOT_FOUND, "no device is linked to this number"),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PhoneQuery {
    phone_number: String,
}

/// `GET /_sandbox/web/sent?phoneNumber=`: what a linked number sent, in order.
pub(crate) async fn control_sent(
    State(state): State<Arc<AppState>>,
    Query(query): Query<PhoneQuery>,
) -> Response {
    let phone = digits_of(query.phone_number.trim()).unwrap_or_default();
    let items = state.web.read(|web| web.sent.get(&phone).cloned().unwrap_or_default());
    Json(json!({"items": items.unwrap_or_default()})).into_response()
}

/// `GET /_sandbox/web/devices?phoneNumber=`: the number's devices, whether each is linked
/// and has a live connection (`online`), and how often each was paired and connected.
pub(crate) async fn control_devices(
    State(state): State<Arc<AppState>>,
    Query(query): Query<PhoneQuery>,
) -> Response {
    let phone = digits_of(query.phone_number.trim()).unwrap_or_default();
    let items = state.web.read(|web| {
        let mut items: Vec<Value> = web
            .devices
            .iter()
            .filter(|(_, d)| d.phone == phone)
            .map(|(id, d)| json!({"deviceId": id, "linked": d.linked, "online": d.live.is_some(), "pairings": d.pairings, "connections": d.connections}))
            .collect();
        items.sort_by_key(|i| i["deviceId"].as_str().map(str::to_owned));
        items
    });
    Json(json!({"items": items.unwrap_or_default()})).into_response()
}

/// `GET /_sandbox/web/stats`: totals over every number, for load measurements:
/// `{"devices","linked","online","pairings","connections","sent"}`.
pub(crate) async fn control_stats(State(state): State<Arc<AppState>>) -> Response {
    let totals = state.web.read(|web| {
        let devices = web.devices.values();
        json!({
            "devices": web.devices.len(),
            "linked": devices.clone().filter(|d| d.linked).count(),
            "online": devices.clone().filter(|d| d.live.is_some()).count(),
            "pairings": devices.clone().map(|d| u64::from(d.pairings)).sum::<u64>(),
            "connections": devices.map(|d| u64::from(d.connections)).sum::<u64>(),
            "sent": web.sent.values().map(Vec::len).sum::<usize>(),
        })
    });
    Json(totals.unwrap_or_default()).into_response()
}
