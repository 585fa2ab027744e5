//! The auth function: register, login, refresh, logout, me.

mod handler;
mod wiring;

pub use handler::{Deps, LockoutPolicy, handle};
pub use wiring::Config;
