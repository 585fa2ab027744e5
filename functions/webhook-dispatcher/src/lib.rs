//! The partner webhook dispatcher. On `partner-events` (the fresh lane) it fans each event
//! out to the subscriptions that want it, writes one delivery per subscription before
//! anything is sent, and makes the first attempts. On `webhook-retries` (the retry lane) it
//! makes every later attempt. An attempt signs the body (Standard Webhooks), posts it through
//! `adapters::webhook_client`, and records what came back; a failed one schedules the next
//! on the retry lane before it is recorded, so a crash repeats an attempt at worst (with the
//! same `webhook-id`) and loses none. While an endpoint fails, the deliveries that are not
//! its probes wait parked in DynamoDB until it answers again (`parked`).

mod attempt;
mod handler;
mod parked;
mod wiring;

pub use handler::{Deps, handle};
pub use wiring::{Config, Policy};
