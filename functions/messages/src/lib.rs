//! The messages function: sending (`POST /api/messages`), conversations and messages,
//! templates and usage analytics.

mod handler;
mod send;
mod templates;
mod usage;

pub use handler::{Deps, OutboundQueues, handle};
