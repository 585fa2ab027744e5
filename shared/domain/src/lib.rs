//! The domain: tenants, users, roles and what each may do; messages, their Meta shapes
//! and pacing; the events partners receive and the typed messages of every queue.
//!
//! Nothing here knows AWS or HTTP: neither is a dependency of this crate, so the compiler
//! refuses such a use. Adapters (`adapters`) and the HTTP edge (`edge`) build on it.

pub mod access;
pub mod channel;
pub mod events;
pub mod ids;
pub mod meta;
pub mod outbound;
pub mod pacing;
pub mod passwords;
pub mod queues;
pub mod secrets;
pub mod tenant;
pub mod time;
pub mod user;

/// One input field that breaks a rule: what a 422 lists in `errors`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    pub field: String,
    pub message: String,
}

impl Violation {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}
