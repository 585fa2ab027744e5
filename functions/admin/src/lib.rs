//! The admin function: what operators (SYSTEM_ADMIN) do across tenants.

mod handler;

pub use handler::{Deps, handle};
