//! One tenant's session on this host: a task that owns the driver's client and the
//! session's record, and does the session's work in order.
//!
//! Every write it makes is fenced by its connection's lease (`PoolStore::write`): when the
//! lease is gone the task stops at once, writing nothing more, and tells its connection.

use crate::Deps;
use crate::driver::{Driver, DriverEvent, DriverSession, Outgoing, SendError, SessionSpec};
use adapters::events::{event, event_id};
use adapters::queues::WebhookPointer;
use adapters::store::StoreError;
use adapters::store::TenantScope;
use adapters::store::messages::outbox::{Claim, Outbound};
use adapters::store::pool::{Fence, Fenced, SessionChange, SessionRecord, member_scope};
use domain::ids::TenantId;
use domain::sessions::{SessionState, WebInbound, WebReceipt, inbound_webhook, receipt_webhook};
use domain::time::{now_secs, rfc3339};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tracing::{info, instrument, warn};

/// What the connection asks of a session.
#[derive(Debug)]
pub enum Command {
    /// Connect, pairing if there is no device (by code for this number, if given).
    Connect {
        pair_phone: Option<String>,
    },
    Send {
        message_id: String,
        done: oneshot::Sender<Done>,
    },
    Logout {
        done: oneshot::Sender<Done>,
    },
    /// Leave the pool: stop and write `disconnected` (erasure, tier change).
    Leave {
        done: oneshot::Sender<Done>,
    },
}

/// How a piece of work ended, for the connection's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Finished (or nothing to do): delete the message.
    Finished,
    /// Not now: the message comes back after this long.
    Later(Duration),
}

/// Why a session task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The host stopped it (shutdown, lease given up).
    Stopped,
    /// A write was refused: this host no longer holds the connection.
    LeaseLost,
    /// The session is no longer a member of the connection.
    Left,
}

pub struct Handle {
    pub commands: mpsc::Sender<Command>,
    pub task: tokio::task::JoinHandle<Ended>,
}

/// Starts the task of a member session. `resume`: reconnect a session that was connected
/// (a takeover), after waiting for the host's resumption budget.
pub fn spawn<D: Driver>(
    deps: Arc<Deps<D>>,
    fence: Fence,
    tenant: TenantId,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Handle {
    let (commands, inbox) = mpsc::channel(64);
    let task = tokio::spawn(async move {
        let mut session = Session::<D> {
            deps,
            fence,
            scope: member_scope(&tenant),
            tenant,
            record: None,
            client: None,
            driver_events: None,
            last_activity: Instant::now(),
            failures: 0,
            retry_at: None,
            pair_phone: None,
        };
        session.run(inbox, stop).await
    });
    Handle { commands, task }
}

struct Session<D: Driver> {
    deps: Arc<Deps<D>>,
    fence: Fence,
    tenant: TenantId,
    scope: TenantScope,
    record: Option<SessionRecord>,
    client: Option<D::Session>,
    driver_events: Option<mpsc::Receiver<DriverEvent>>,
    last_activity: Instant,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// When to try connecting again (reconnecting).
    retry_at: Option<Instant>,
    pair_phone: Option<String>,
}

/// A write refused by the fence ends the task.
type Step = Result<(), Ended>;

impl<D: Driver> Session<D> {
    #[instrument(skip_all, fields(tenant_id = %self.tenant, connection = self.fence.connection_id))]
    async fn run(
        &mut self,
        mut inbox: mpsc::Receiver<Command>,
        mut stop: tokio::sync::watch::Receiver<bool>,
    ) -> Ended {
        let ended = match self.start().await {
            Ok(()) => self.serve(&mut inbox, &mut stop).await,
            Err(ended) => ended,
        };
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
        self.deps.metrics.session(&self.tenant, None);
        ended
    }

    /// The host's count of its sessions by state.
    fn count(&self) {
        let tier = domain::sessions::parse_connection_id(&self.fence.connection_id).map(|(t, _)| t);
        if let Some(tier) = tier {
            self.deps.metrics.session(&self.tenant, Some((tier, self.state())));
        }
    }

    /// Reads the session; a session that was live is resumed (rate-limited, jittered).
    async fn start(&mut self) -> Step {
        let record = self.read().await?;
        let resume = matches!(
            record.state,
            SessionState::Connected | SessionState::Reconnecting | SessionState::Pairing
        );
        self.pair_phone = record.pair_phone.clone();
        self.record = Some(record);
        self.count();
        if resume {
            // Until its client is up again here, the session is not connected.
            if self.state() == SessionState::Connected {
                self.become_(SessionState::Reconnecting, Some("resuming on another host")).await?;
            }
            self.deps.resumptions.wait().await;
            self.connect().await?;
        }
        Ok(())
    }

    async fn read(&self) -> Result<SessionRecord, Ended> {
        for attempt in 0..5u32 {
            match self.deps.pool.session(&self.scope).await {
                Ok(Some(record))
                    if record.connection_id.as_deref() == Some(&self.fence.connection_id) =>
                {
                    return Ok(record);
                }
                Ok(_) => return Err(Ended::Left),
                Err(e) => {
                    warn!(error = %e, attempt, "session not read; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        Err(Ended::Stopped)
    }

    async fn serve(
        &mut self,
        inbox: &mut mpsc::Receiver<Command>,
        stop: &mut tokio::sync::watch::Receiver<bool>,
    ) -> Ended {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            let step = tokio::select! {
                _ = stop.changed() => return Ended::Stopped,
                command = inbox.recv() => match command {
                    Some(command) => self.command(command).await,
                    None => return Ended::Stopped,
                },
                Some(event) = next_event(&mut self.driver_events) => self.driver_event(event).await,
                _ = tick.tick() => self.housekeeping().await,
            };
            if let Err(ended) = step {
                return ended;
            }
        }
    }

    fn state(&self) -> SessionState {
        self.record.as_ref().map_or(SessionState::Disconnected, |r| r.state)
    }

    /// Writes a change, fenced; updates the record it holds.
    async fn write(&mut self, change: SessionChange) -> Step {
        let Some(record) = self.record.clone() else { return Err(Ended::Left) };
        for attempt in 0..6u32 {
            let written = self.deps.pool.write(&self.fence, &record, &change).await;
            tracing::debug!(from = record.state.as_str(), to = ?change.state, ?written, "session write");
            match written {
                Ok(Fenced::Written) => {
                    self.apply(&change);
                    self.count();
                    return Ok(());
                }
                Ok(Fenced::LeaseLost) => {
                    warn!("the connection's lease is lost; stopping the session");
                    return Err(Ended::LeaseLost);
                }
                Ok(Fenced::NotMember) => {
                    // Moved on since it was read (its state), or left the connection.
                    let fresh = self.read().await?;
                    if fresh.state == record.state {
                        return Err(Ended::Left);
                    }
                    self.record = Some(fresh);
                    return Box::pin(self.write(change)).await;
                }
                Err(e) => {
                    warn!(error = %e, attempt, "session state not written; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        Err(Ended::Stopped)
    }

    fn apply(&mut self, change: &SessionChange) {
        let Some(record) = self.record.as_mut() else { return };
        if let Some(state) = change.state {
            record.state = state;
            if state != SessionState::Pairing {
                record.qr = None;
                record.pairing_code = None;
            }
        }
        if let Some((qr, code, expires)) = &change.qr {
            record.qr = Some(qr.clone());
            record.pairing_code = code.clone();
            record.expires_at = Some(*expires);
        }
        if let Some((phone, device)) = &change.linked {
            record.phone_number = Some(phone.clone());
            record.device_id = Some(device.clone());
        }
        if change.unlink {
            record.phone_number = None;
            record.device_id = None;
        }
    }

    /// Moves to `state` (writing and announcing it) unless it is there already.
    async fn become_(&mut self, state: SessionState, detail: Option<&str>) -> Step {
        if self.state() == state {
            return Ok(());
        }
        self.write(SessionChange { state: Some(state), ..Default::default() }).await?;
        self.announce(detail).await;
        Ok(())
    }

    /// A `session.status` partner event: the state, and the QR while pairing.
    async fn announce(&self, detail: Option<&str>) {
        let Some(record) = &self.record else { return };
        let mut data = json!({
            "state": record.state.as_str(),
            "connectionId": record.connection_id,
            "phoneNumber": record.phone_number,
        });
        if record.state == SessionState::Pairing {
            data["qr"] = json!(record.qr);
            data["pairingCode"] = json!(record.pairing_code);
            data["expiresAt"] = json!(record.expires_at.map(rfc3339));
        }
        if let Some(detail) = detail {
            data["detail"] = json!(detail);
        }
        let marker = record.qr.clone().unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
        let id =
            event_id(&["session.status", self.tenant.as_str(), record.state.as_str(), &marker]);
        let announced = event(id, "session.status", &self.tenant, data);
        if let Err(e) = self.deps.events.emit(std::slice::from_ref(&announced)).await {
            warn!(error = %e, "session status event not queued");
        }
    }

    /// Starts the driver's client: with the device's credentials, or to pair.
    async fn connect(&mut self) -> Step {
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
        let credentials = match self.deps.pool.device(&self.scope).await {
            Ok(Some(sealed)) => match self.deps.envelopes.open(&self.tenant, &sealed).await {
                Ok(plain) => Some(plain),
                Err(e) => {
                    warn!(error = %e, "device credentials could not be opened");
                    return self.connect_failed("device credentials unreadable").await;
                }
            },
            Ok(None) => None,
            Err(e) => {
                warn!(error = %e, "device credentials not read");
                return self.connect_failed("storage unavailable").await;
            }
        };
        let pairing = credentials.is_none();
        let (tx, rx) = mpsc::channel(64);
        let spec = SessionSpec {
            label: self.tenant.to_string(),
            tenant: self.tenant.clone(),
            fence: self.fence.clone(),
            credentials,
            pair_phone: if pairing { self.pair_phone.clone() } else { None },
        };
        match self.deps.driver.start(spec, tx).await {
            Ok(client) => {
                self.client = Some(client);
                self.driver_events = Some(rx);
                self.retry_at = None;
                if pairing {
                    self.become_(SessionState::Pairing, None).await?;
                }
                Ok(())
            }
            Err(e) => {
                warn!(error = %e, "the client did not start");
                self.connect_failed(&e.0).await
            }
        }
    }

    /// A failed connection attempt: back off and try again, or give up.
    async fn connect_failed(&mut self, reason: &str) -> Step {
        self.failures += 1;
        self.client = None;
        self.driver_events = None;
        if self.failures >= self.deps.config.max_failures {
            self.retry_at = None;
            return self.end_in(SessionState::Failed, Some(reason)).await;
        }
        let delay = self.deps.config.backoff(self.failures);
        self.retry_at = Some(Instant::now() + delay);
        self.become_(SessionState::Reconnecting, Some(reason)).await
    }

    async fn housekeeping(&mut self) -> Step {
        if let Some(at) = self.retry_at
            && Instant::now() >= at
        {
            self.retry_at = None;
            self.deps.resumptions.wait().await;
            return self.connect().await;
        }
        let idle_after =
            self.record.as_ref().and_then(|r| r.tier).and_then(|t| self.deps.config.idle_after(t));
        if self.state() == SessionState::Connected
            && idle_after.is_some_and(|idle| self.last_activity.elapsed() >= idle)
        {
            info!("idle: the session is evicted until there is something to send");
            if let Some(client) = self.client.take() {
                client.stop().await;
            }
            self.driver_events = None;
            return self.become_(SessionState::Idle, None).await;
        }
        Ok(())
    }

    async fn command(&mut self, command: Command) -> Step {
        match command {
            Command::Connect { pair_phone } => {
                self.last_activity = Instant::now();
                let connecting =
                    self.state() == SessionState::Reconnecting && self.retry_at.is_none();
                match self.state() {
                    SessionState::Connected | SessionState::Pairing if self.client.is_some() => {
                        // Already connected, or pairing: a new QR is not needed.
                        if self.state() == SessionState::Pairing {
                            self.announce(None).await;
                        }
                        Ok(())
                    }
                    // A client is starting (a resumption): it reports by itself.
                    SessionState::Reconnecting if connecting && self.client.is_some() => Ok(()),
                    _ => {
                        self.failures = 0;
                        self.pair_phone = pair_phone;
                        self.connect().await
                    }
                }
            }
            Command::Send { message_id, done } => {
                let outcome = self.send(&message_id).await;
                let (step, answer) = match outcome {
                    Ok(answer) => (Ok(()), answer),
                    Err(ended) => (Err(ended), Done::Later(Duration::ZERO)),
                };
                let _ = done.send(answer);
                step
            }
            Command::Logout { done } => {
                let step = self.logout().await;
                let _ = done.send(Done::Finished);
                step
            }
            Command::Leave { done } => {
                if let Some(client) = self.client.take() {
                    client.stop().await;
                }
                self.driver_events = None;
                let step = self.leave().await;
                let _ = done.send(Done::Finished);
                step.and(Err(Ended::Left))
            }
        }
    }

    async fn leave(&mut self) -> Step {
        if self.state().holds_slot() {
            self.become_(SessionState::Disconnected, Some("left the pool")).await?;
        }
        if let Err(e) = self.deps.pool.leave(&self.scope, &self.fence.connection_id).await {
            warn!(error = %e, "the session did not leave its connection");
        }
        Ok(())
    }

    /// Moves to a state that holds no slot (`failed`, `disconnected`), frees the slot, and
    /// ends the task: connecting again joins the pool again.
    async fn end_in(&mut self, state: SessionState, detail: Option<&str>) -> Step {
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
        self.driver_events = None;
        self.become_(state, detail).await?;
        if let Err(e) = self.deps.pool.leave(&self.scope, &self.fence.connection_id).await {
            warn!(error = %e, "the session kept its slot");
        }
        Err(Ended::Left)
    }

    async fn logout(&mut self) -> Step {
        if let Some(client) = self.client.take()
            && let Err(e) = client.logout().await
        {
            warn!(error = %e, "the device was not unlinked by the driver");
        }
        self.driver_events = None;
        self.logged_out(None).await
    }

    /// The device is gone: forget its keys, and free the slot.
    async fn logged_out(&mut self, detail: Option<&str>) -> Step {
        // Stopped before its keys are forgotten: a client flushes what it holds as it stops.
        if let Some(client) = self.client.take() {
            client.stop().await;
        }
        self.driver_events = None;
        self.retry_at = None;
        match self.deps.pool.forget_device(&self.fence, &self.scope).await {
            Ok(Fenced::LeaseLost) => return Err(Ended::LeaseLost),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "device keys not deleted"),
        }
        match self.deps.keys.forget(&self.fence, &self.scope).await {
            Ok(Fenced::LeaseLost) => return Err(Ended::LeaseLost),
            Ok(_) => {}
            Err(e) => warn!(error = %e, "the driver's session keys not deleted"),
        }
        self.write(SessionChange {
            state: Some(SessionState::LoggedOut),
            unlink: true,
            ..Default::default()
        })
        .await?;
        self.announce(detail).await;
        if let Err(e) = self.deps.pool.leave(&self.scope, &self.fence.connection_id).await {
            warn!(error = %e, "the logged-out session kept its slot");
        }
        Err(Ended::Left)
    }

    async fn driver_event(&mut self, event: DriverEvent) -> Step {
        match event {
            DriverEvent::Qr { qr, pairing_code, expires_at } => {
                let state =
                    (self.state() != SessionState::Pairing).then_some(SessionState::Pairing);
                self.write(SessionChange {
                    state,
                    qr: Some((qr, pairing_code, expires_at)),
                    ..Default::default()
                })
                .await?;
                self.announce(None).await;
                Ok(())
            }
            DriverEvent::PairingExpired => {
                self.client = None;
                self.driver_events = None;
                self.end_in(SessionState::Disconnected, Some("no QR was scanned in time")).await
            }
            DriverEvent::Paired { phone_number, device_id, credentials } => {
                let sealed = match self.deps.envelopes.seal(&self.tenant, &credentials).await {
                    Ok(sealed) => sealed,
                    Err(e) => {
                        warn!(error = %e, "device credentials not sealed");
                        return self.connect_failed("device credentials not stored").await;
                    }
                };
                match self.deps.pool.store_device(&self.fence, &self.scope, &sealed).await {
                    Ok(Fenced::Written) => {}
                    Ok(Fenced::LeaseLost) => return Err(Ended::LeaseLost),
                    Ok(Fenced::NotMember) => return Err(Ended::Left),
                    Err(e) => {
                        warn!(error = %e, "device credentials not stored");
                        return self.connect_failed("device credentials not stored").await;
                    }
                }
                info!("device linked");
                self.write(SessionChange {
                    linked: Some((phone_number, device_id)),
                    ..Default::default()
                })
                .await
            }
            DriverEvent::CredentialsChanged(credentials) => {
                match self.deps.envelopes.seal(&self.tenant, &credentials).await {
                    Ok(sealed) => {
                        match self.deps.pool.store_device(&self.fence, &self.scope, &sealed).await {
                            Ok(Fenced::LeaseLost) => Err(Ended::LeaseLost),
                            Ok(_) => Ok(()),
                            Err(e) => {
                                warn!(error = %e, "changed device keys not stored");
                                Ok(())
                            }
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "changed device keys not sealed");
                        Ok(())
                    }
                }
            }
            DriverEvent::Connected => {
                self.failures = 0;
                self.last_activity = Instant::now();
                self.write(SessionChange {
                    state: (self.state() != SessionState::Connected)
                        .then_some(SessionState::Connected),
                    seen: true,
                    failures: Some(0),
                    ..Default::default()
                })
                .await?;
                self.announce(None).await;
                Ok(())
            }
            DriverEvent::Disconnected { reason } => {
                info!(reason, "the connection dropped; reconnecting");
                self.deps.metrics.reconnected();
                self.connect_failed(&reason).await
            }
            DriverEvent::LoggedOut => {
                self.logged_out(Some("the phone removed the linked device")).await
            }
            DriverEvent::StreamReplaced => {
                // Another client connected with this device: the session's new owner (a
                // host that took the connection, or the connection the session moved to).
                // Only this session stops; the lease, if it is lost, shows at the heartbeat.
                warn!("another client took the session over; stopping it here");
                self.client = None;
                self.driver_events = None;
                Err(Ended::Left)
            }
            DriverEvent::TemporaryBan { reason } => {
                self.client = None;
                self.driver_events = None;
                self.end_in(SessionState::Failed, Some(&format!("temporarily banned: {reason}")))
                    .await
            }
            DriverEvent::ClientOutdated => {
                self.client = None;
                self.driver_events = None;
                self.end_in(
                    SessionState::Failed,
                    Some("WhatsApp no longer accepts this client version"),
                )
                .await
            }
            DriverEvent::Message(message) => {
                self.last_activity = Instant::now();
                self.received(&message).await
            }
            DriverEvent::Receipt(receipt) => {
                self.receipt(&receipt).await;
                Ok(())
            }
        }
    }

    /// Persisted first, queued after, then acknowledged to WhatsApp: a message the host
    /// loses before the acknowledgement comes again.
    async fn received(&mut self, message: &WebInbound) -> Step {
        let payload = inbound_webhook(&self.tenant, message);
        if self.persist(&payload).await
            && let Some(client) = &self.client
        {
            client.ack(vec![message.id.clone()]).await;
        }
        Ok(())
    }

    async fn receipt(&self, receipt: &WebReceipt) {
        let payload = receipt_webhook(&self.tenant, receipt);
        self.persist(&payload).await;
    }

    /// Stores the payload as a raw event and queues it for the webhook processor.
    async fn persist(&self, payload: &Value) -> bool {
        let body = payload.to_string();
        let event_id =
            match self.deps.messages.raw_events().put(&self.scope, body.as_bytes(), "web").await {
                Ok(id) => id,
                Err(e) => {
                    warn!(error = %e, "received event not stored; WhatsApp delivers it again");
                    return false;
                }
            };
        let pointer = WebhookPointer { tenant_id: self.tenant.clone(), event_id };
        for attempt in 0..4u32 {
            match self.deps.inbound.send(&pointer).await {
                Ok(()) => return true,
                Err(e) => {
                    warn!(error = %e, attempt, "received event stored but not queued; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
            }
        }
        false
    }

    /// Sends one accepted message.
    async fn send(&mut self, message_id: &str) -> Result<Done, Ended> {
        self.last_activity = Instant::now();
        match self.state() {
            SessionState::Idle => {
                info!("resuming an idle session to send");
                self.connect().await?;
            }
            SessionState::Reconnecting if self.retry_at.is_some() => {
                self.retry_at = None;
                self.connect().await?;
            }
            SessionState::Connected | SessionState::Reconnecting => {}
            other => {
                let reason = format!(
                    "The WhatsApp session is {}; connect it (POST /api/whatsapp/channel/connect) and send again.",
                    other.as_str()
                );
                self.fail(message_id, "session_not_connected", &reason).await;
                return Ok(Done::Finished);
            }
        }
        if !self.wait_connected(Duration::from_secs(20)).await? {
            return Ok(Done::Later(Duration::from_secs(5)));
        }
        // The fence is checked before WhatsApp is called: a host that lost its lease sends
        // nothing (and its client was replaced by the new owner's in any case).
        match self.deps.pool.holds(&self.fence).await {
            Ok(true) => {}
            Ok(false) => return Err(Ended::LeaseLost),
            Err(_) => return Ok(Done::Later(Duration::from_secs(2))),
        }
        let outbox = self.deps.messages.outbox();
        let message = match outbox.claim(&self.scope, message_id, 60).await {
            Ok(Claim::Claimed(message)) => message,
            Ok(Claim::Missing | Claim::Settled) => return Ok(Done::Finished),
            Ok(Claim::Busy) => return Ok(Done::Later(Duration::from_secs(60))),
            Ok(Claim::Abandoned) => {
                self.fail(message_id, "send_outcome_unknown", "The send was interrupted; it may or may not have reached WhatsApp, so it was not repeated.").await;
                return Ok(Done::Finished);
            }
            Err(e) => {
                warn!(error = %e, "message not claimed");
                return Ok(Done::Later(Duration::from_secs(2)));
            }
        };
        let Some((to, outgoing)) = outgoing(&message) else {
            self.fail(message_id, "unsupported_on_web", "This kind of message cannot be sent through a WhatsApp Web session yet (text, replies and reactions can).").await;
            return Ok(Done::Finished);
        };
        let Some(client) = &self.client else { return Ok(Done::Later(Duration::from_secs(2))) };
        match client.send(&to, &outgoing).await {
            Ok(id) => {
                self.sent(&message, &id).await;
                Ok(Done::Finished)
            }
            Err(SendError::NotConnected) => {
                let _ = outbox
                    .release(&self.scope, message_id, &json!({"code": "not_connected"}))
                    .await;
                Ok(Done::Later(Duration::from_secs(2)))
            }
            Err(SendError::Refused(reason)) => {
                self.fail(message_id, "refused", &reason).await;
                Ok(Done::Finished)
            }
            Err(SendError::Unanswered(reason)) => {
                // It may have left: failing it is safer than sending it twice.
                self.fail(message_id, "send_outcome_unknown", &reason).await;
                Ok(Done::Finished)
            }
        }
    }

    /// Waits for the driver's `Connected` (handling its other events meanwhile).
    async fn wait_connected(&mut self, limit: Duration) -> Result<bool, Ended> {
        let deadline = Instant::now() + limit;
        while self.state() != SessionState::Connected {
            if self.client.is_none() && self.retry_at.is_none() {
                return Ok(false);
            }
            let event = tokio::select! {
                event = next_event(&mut self.driver_events) => event,
                () = tokio::time::sleep_until(deadline) => return Ok(false),
            };
            match event {
                Some(event) => self.driver_event(event).await?,
                None => return Ok(false),
            }
        }
        Ok(true)
    }

    async fn sent(&self, message: &Outbound, id: &str) {
        let outbox = self.deps.messages.outbox();
        for attempt in 0..6u32 {
            match outbox.record_sent(&self.scope, message, id).await {
                Ok(()) => break,
                Err(e) if attempt == 5 => {
                    // The claim stays held: a redelivery fails it as "outcome unknown".
                    warn!(error = %e, "sent, but not recorded");
                    return;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200 << attempt)).await,
            }
        }
        if let Err(e) = outbox.count_sent(&self.scope, 1, &message.message_id).await {
            warn!(error = %e, "send not counted in the day's usage");
        }
        let counted = self
            .deps
            .links
            .count_messages(&self.deps.tenants, &self.scope, &message.message_id, 1, now_secs())
            .await;
        if let Err(e) = counted {
            warn!(error = %e, "send not counted for the tenant's platform");
        }
        info!("message sent");
    }

    async fn fail(&self, message_id: &str, code: &str, title: &str) {
        let failed = self
            .deps
            .messages
            .outbox()
            .record_failed(&self.scope, message_id, &json!(code), title)
            .await;
        match failed {
            Ok(true) => {
                let announced =
                    adapters::events::message_failed(&self.tenant, message_id, &json!(code), title);
                if let Err(e) = self.deps.events.emit(std::slice::from_ref(&announced)).await {
                    warn!(error = %e, "failure event not queued");
                }
            }
            Ok(false) => {}
            Err(e) => warn!(error = %e, "message not failed"),
        }
    }
}

async fn next_event(events: &mut Option<mpsc::Receiver<DriverEvent>>) -> Option<DriverEvent> {
    match events {
        Some(events) => events.recv().await,
        None => std::future::pending().await,
    }
}

/// The recipient and what to send, from the Cloud API request the outbox holds.
fn outgoing(message: &Outbound) -> Option<(String, Outgoing)> {
    let request = &message.graph_request;
    let to = request["to"].as_str()?.trim_start_matches('+').to_owned();
    let reply_to = request["context"]["message_id"].as_str().map(str::to_owned);
    let outgoing = match request["type"].as_str()? {
        "text" => Outgoing::Text { body: request["text"]["body"].as_str()?.to_owned(), reply_to },
        "reaction" => Outgoing::Reaction {
            message_id: request["reaction"]["message_id"].as_str()?.to_owned(),
            emoji: request["reaction"]["emoji"].as_str()?.to_owned(),
        },
        _ => return None,
    };
    Some((to, outgoing))
}

impl From<StoreError> for Ended {
    fn from(_: StoreError) -> Self {
        Ended::Stopped
    }
}
