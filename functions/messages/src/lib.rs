//! The messages function: the read side of conversations and messages (sending arrives
//! with the outbound pipeline).

mod handler;

pub use handler::{Deps, handle};
