//! The meta-webhook function: Meta's webhooks in. Verified, persisted, queued, 200.

mod handler;

pub use handler::{Deps, PLATFORM_PARTITION, PlatformApp, handle};
