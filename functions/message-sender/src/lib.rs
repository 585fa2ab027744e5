//! The message sender: one queued outbound message in, one Cloud API send out, whatever
//! the retries. See `handler` for the order of steps and why.

mod handler;
mod wiring;

pub use handler::{Deps, Policy, handle};
pub use wiring::Config;
