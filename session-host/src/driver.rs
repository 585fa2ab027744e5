//! The driver trait and its types live in their own crate (`session-driver`), so that a
//! driver crate (whatsapp-rust's, `whatsapp-web-driver`) implements it without depending
//! on the host.

pub use session_driver::*;
