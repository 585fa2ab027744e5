//! Switchboard's HTTP edge: what only the HTTP functions need.
//!
//! - [`routes`]: every HTTP route, the function that serves it and who may call it.
//! - [`principal`]: a request's bearer token turned into an authenticated, tenant-scoped
//!   caller; [`tokens`]: the access tokens (JWT) themselves.
//! - [`request`]: reading what API Gateway hands a function, checked into typed values.
//! - [`http`]: the one mapping from errors (the adapters' included) to RFC 9457
//!   problem+json responses.
//!
//! Queue processors do not depend on this crate: they cannot answer HTTP by mistake.

pub mod config;
pub mod http;
pub mod principal;
pub mod request;
pub mod routes;
pub mod tokens;
