//! Partner platforms' users: `/api/b2b/users` (one, or up to a thousand at once, each
//! idempotent on its `userId`), read, update, and the platform's list. A platform key
//! reaches only its own users; any other id is 404.

mod handler;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
