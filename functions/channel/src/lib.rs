//! The channel function: a tenant's one WhatsApp channel, its secrets sealed with KMS.

mod handler;

pub use handler::{Deps, handle};
