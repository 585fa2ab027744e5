//! The health function: `GET /api/health`, `/api/health/live`, `/api/health/ready`.

mod handler;

pub use handler::{CHECK_TIMEOUT, Deps, handle};
