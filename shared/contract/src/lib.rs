//! The HTTP API as a partner reads it: the bodies each route takes and answers
//! ([`requests`], [`views`]) and the OpenAPI 3.1 document ([`openapi::document`]) built from
//! the route table, so that a route cannot exist without its entry.
//!
//! Handlers build their answers from [`views`] and the stores' records (which derive their
//! schemas where they are defined); the document refers to the same types.

pub mod openapi;
pub mod requests;
pub mod views;

/// The reference page served at `GET /api/docs`: one file, no assets from elsewhere.
pub const DOCS_PAGE: &str = include_str!("docs.html");
