//! The auth function: register, login, refresh, logout, me.

mod handler;

pub use handler::{Deps, LockoutPolicy, handle};
