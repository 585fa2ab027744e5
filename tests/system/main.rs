//! The system driven from outside: HTTP against the local stack, real SQS events, all
//! against a moto emulator that the suite starts itself.

// Test code: a failed expectation is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod auth;
mod b2b;
mod backlog;
mod conversations;
mod gateway;
mod hardening;
mod health;
mod inbound;
mod infra_agreement;
mod outbound;
mod poller;
mod samples;
mod session_keys;
mod sessions;
mod tenants;
mod webhooks;
mod whatsapp_web;
