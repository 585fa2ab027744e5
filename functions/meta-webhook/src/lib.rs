//! The meta-webhook function: Meta's webhooks in. Verified, persisted, queued, 200.

mod handler;
mod wiring;

pub use handler::{Deps, PLATFORM_PARTITION, PlatformApp, handle};
pub use wiring::Config;
