//! The tenants function: the tenant's settings, its users, its API keys.

mod handler;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
