//! Switchboard's shared library: what every deployable (Lambda function, queue processor,
//! local stack, session host) is built from.
//!
//! - [`resources`]: the tables, queues and key the system owns, defined once (the SAM
//!   template must agree, and a test holds it to that).
//! - [`config`]: typed configuration, read once at start-up.
//! - [`aws`]: the AWS adapters: clients, and the idempotent bootstrap used locally.
//! - [`http`]: the one mapping from errors to RFC 9457 problem+json responses.
//! - [`routes`]: every HTTP route and the function that serves it.
//! - [`telemetry`]: tracing set-up; [`shutdown`]: the stop signal of long-running processes.

pub mod aws;
pub mod config;
pub mod http;
pub mod resources;
pub mod routes;
pub mod shutdown;
pub mod telemetry;
