//! The session host's WhatsApp Web driver, on whatsapp-rust (MIT; pinned exactly in the
//! workspace's `Cargo.toml`).
//!
//! - [`driver::WhatsAppWeb`] implements the host's `Driver` trait with whatsapp-rust's
//!   `Bot`: QR and pairing-code pairing, the connection's events mapped to the session's
//!   states, received messages and receipts mapped to the records the Cloud API path
//!   produces, text, replies and reactions sent, logout. A received message is
//!   acknowledged to WhatsApp only after the host persisted it (whatsapp-rust's inbound
//!   durability hook waits for the host's `ack`).
//! - [`store::DynamoStore`] implements whatsapp-rust's storage traits over the session's
//!   key store in the pool table: values sealed under the tenant's envelope key, every
//!   write fenced by the lease.
//! - [`conformance`] is one suite of the storage traits' behaviour, run on whatsapp-rust's
//!   in-memory backend (here) and on the DynamoDB store (the system tests, against the
//!   emulator).
//! - [`offline`] is what runs the driver without a network: a transport whose events the
//!   caller plays, and an HTTP client that refuses. With a pinned WhatsApp Web version
//!   nothing is fetched.
//!
//! Real pairing needs WhatsApp's servers and a phone, so it is not tested offline: the
//! README's "Releasing the WhatsApp Web driver" is the staging check.

pub mod conformance;
pub mod driver;
pub mod http;
mod mapping;
pub mod offline;
pub mod store;

pub use driver::{Launcher, WebConfig, WhatsAppWeb};
