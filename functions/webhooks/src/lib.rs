//! The webhooks function: a tenant's partner webhook subscriptions (secrets sealed with
//! KMS and shown once), test events, and the delivery log with redelivery and recovery.
//! Deliveries themselves are the `webhook-dispatcher`'s.

mod handler;
mod views;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::Config;
