//! The webhook processor: one SQS record is a pointer to a stored raw webhook; applying it
//! is idempotent, so redeliveries and retries change nothing twice.

mod handler;

pub use handler::{Deps, handle};
