//! What a WhatsApp Web driver does for the host, behind one trait: the simulator (against
//! the local sandbox) and, in AWS, whatsapp-rust.
//!
//! The shape follows whatsapp-rust's event model: a client is started with the device's
//! stored credentials (or none, to pair), and everything that happens afterwards arrives
//! as [`DriverEvent`]s on a channel: QR codes and pairing codes as they rotate, the
//! pairing's result, connected, disconnected, logged out, stream replaced, temporary ban,
//! client outdated, received messages and receipts. A received message is acknowledged to
//! WhatsApp ([`DriverSession::ack`]) only after the host persisted it.

use adapters::store::pool::Fence;
use domain::ids::TenantId;
use domain::sessions::{WebInbound, WebReceipt};
use std::future::Future;
use tokio::sync::mpsc;

/// What the driver needs to start a session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    /// For logs only (no phone numbers).
    pub label: String,
    /// Whose session it is.
    pub tenant: TenantId,
    /// The lease the session runs under: a driver that stores anything writes under it.
    pub fence: Fence,
    /// The linked device's credentials, as the driver gave them (`Paired`,
    /// `CredentialsChanged`); `None` to pair a new device. (A driver that keeps its keys
    /// in its own store gives a marker here, and reads the keys from its store.)
    pub credentials: Option<Vec<u8>>,
    /// Pair by code for this number (digits) rather than by QR alone.
    pub pair_phone: Option<String>,
}

#[derive(Debug)]
pub enum DriverEvent {
    /// A QR to scan (and, when a number was given, the code to type), until `expires_at`
    /// (epoch seconds).
    Qr {
        qr: String,
        pairing_code: Option<String>,
        expires_at: i64,
    },
    /// Every QR was shown and none was scanned.
    PairingExpired,
    /// A phone linked the device: store the credentials (the driver connects next).
    /// `phone_number` is E.164.
    Paired {
        phone_number: String,
        device_id: String,
        credentials: Vec<u8>,
    },
    /// The device's keys changed: store them.
    CredentialsChanged(Vec<u8>),
    Connected,
    /// The connection dropped; reconnecting may help.
    Disconnected {
        reason: String,
    },
    /// The phone removed the device.
    LoggedOut,
    /// Another client connected with this device (a new owner of the session): stop, and
    /// write nothing.
    StreamReplaced,
    /// WhatsApp refuses the device for a while.
    TemporaryBan {
        reason: String,
    },
    /// WhatsApp no longer accepts this client version.
    ClientOutdated,
    Message(WebInbound),
    Receipt(WebReceipt),
}

/// An outbound message as a driver sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outgoing {
    Text { body: String, reply_to: Option<String> },
    Reaction { message_id: String, emoji: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The connection is not up (dropped, replaced): try again once it is.
    #[error("not connected")]
    NotConnected,
    /// WhatsApp refused this message for good.
    #[error("refused: {0}")]
    Refused(String),
    /// No answer: the message may or may not have left.
    #[error("no answer: {0}")]
    Unanswered(String),
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriverError(pub String);

/// A started client.
pub trait DriverSession: Send + Sync + 'static {
    /// Sends a message to `to` (digits); WhatsApp's message id.
    fn send(
        &self,
        to: &str,
        message: &Outgoing,
    ) -> impl Future<Output = Result<String, SendError>> + Send;
    /// The received messages with these ids are persisted.
    fn ack(&self, ids: Vec<String>) -> impl Future<Output = ()> + Send;
    /// Unlinks the device.
    fn logout(&self) -> impl Future<Output = Result<(), DriverError>> + Send;
    /// Closes the connection, keeping the device linked (another host resumes it).
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

pub trait Driver: Send + Sync + 'static {
    type Session: DriverSession;

    /// Starts a client; its events arrive on `events` until it is stopped or ends.
    fn start(
        &self,
        spec: SessionSpec,
        events: mpsc::Sender<DriverEvent>,
    ) -> impl Future<Output = Result<Self::Session, DriverError>> + Send;
}
