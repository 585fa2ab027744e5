//! The tenants function: the tenant's settings, its users, its API keys.

mod handler;

pub use handler::{Deps, handle};
