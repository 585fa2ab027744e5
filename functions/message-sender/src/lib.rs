//! The message sender: one queued outbound message in, one Cloud API send out, whatever
//! the retries. See `handler` for the order of steps and why.

mod handler;

pub use handler::{Deps, Policy, handle};
