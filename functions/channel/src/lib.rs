//! The channel function: a tenant's one WhatsApp channel, its secrets sealed with KMS, and
//! its WhatsApp Web session (connect, status, logout).

mod handler;
mod sessions;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
