//! The channel function: a tenant's one WhatsApp channel, its secrets sealed with KMS.

mod handler;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
