//! Switchboard's adapters: the domain's data in AWS, and the other services it calls.
//!
//! - [`store`]: the DynamoDB repositories, scoped by tenant.
//! - [`queues`]: the SQS adapter carrying each queue's typed message, and what a processor
//!   knows of the queues it consumes; [`events`]: queueing partner events.
//! - [`aws`]: the SDK clients, KMS envelopes, Secrets Manager, and the idempotent
//!   bootstrap used locally.
//! - [`channel`]: a tenant's channel with its secrets opened; [`graph`]: where Cloud API
//!   requests go.
//! - [`resources`]: the tables, queues, event sources and key the system owns, defined
//!   once (the SAM template must agree, and a test holds it to that); [`config`]: typed
//!   configuration, read once at start-up.
//! - [`operator`]: the operator account from configuration.
//! - [`webhook_client`]: the HTTP client of partner webhook deliveries, which refuses
//!   private and reserved destinations.
//! - [`telemetry`]: tracing set-up; [`shutdown`]: the stop signal of long-running processes.
//!
//! Nothing here knows HTTP responses: errors say what went wrong and whether a retry can
//! help, and the edge decides what a caller sees.

pub mod aws;
pub mod channel;
pub mod config;
pub mod events;
pub mod graph;
pub mod operator;
pub mod queues;
pub mod resources;
pub mod session_queues;
pub mod sessions;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod webhook_client;
