//! The domain: tenants, users, roles and what each may do. No AWS types here.

pub mod access;
pub mod channel;
pub mod ids;
pub mod meta;
pub mod outbound;
pub mod pacing;
pub mod tenant;
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
