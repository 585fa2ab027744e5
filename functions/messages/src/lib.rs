//! The messages function: sending (`POST /api/messages`), conversations and messages,
//! templates and usage analytics.

mod handler;
mod send;
mod templates;
mod usage;
mod wiring;

pub use handler::{Deps, OutboundQueues, handle};
pub use wiring::Config;
