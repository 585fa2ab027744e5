//! The admin function: what operators (SYSTEM_ADMIN) do across tenants.

mod handler;
mod platforms;
mod pools;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
