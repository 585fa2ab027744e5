//! Switchboard's shared library: what every deployable (Lambda function, queue processor,
//! local stack, session host) is built from.
//!
//! - [`domain`]: tenants, users, roles and the permission table; no AWS types.
//! - [`auth`]: passwords, tokens, API keys, and the authenticated [`auth::principal::Principal`].
//! - [`store`]: the DynamoDB adapters, scoped by tenant.
//! - [`resources`]: the tables, queues and key the system owns, defined once (the SAM
//!   template must agree, and a test holds it to that).
//! - [`config`]: typed configuration, read once at start-up.
//! - [`events`]: the events partners' webhooks receive; [`queues`]: one typed message per
//!   queue, and what a processor knows of the queues it consumes.
//! - [`aws`]: the AWS adapters: clients, and the idempotent bootstrap used locally.
//! - [`http`]: the one mapping from errors to RFC 9457 problem+json responses.
//! - [`routes`]: every HTTP route and the function that serves it.
//! - [`telemetry`]: tracing set-up; [`shutdown`]: the stop signal of long-running processes.

pub mod domain;

pub mod auth;
pub mod aws;
pub mod channel;
pub mod config;
pub mod events;
pub mod graph;
pub mod http;
pub mod queues;
pub mod request;
pub mod resources;
pub mod routes;
pub mod shutdown;
pub mod store;
pub mod telemetry;
