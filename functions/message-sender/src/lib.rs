//! The message sender: one queued outbound message in, one Cloud API send out, whatever
//! the retries. `handler` takes a batch (grouped by tenant, paced, deferrals requeued, poison
//! dead-lettered); `send` takes one message from its claim to Meta's answer.

mod handler;
mod send;
mod wiring;

pub use handler::{Deps, Policy, handle};
pub use wiring::Config;
