//! Authentication: passwords, access tokens (JWT), opaque secrets (API keys, refresh
//! tokens), and turning a request's bearer token into a [`principal::Principal`].

pub mod operator;
pub mod passwords;
pub mod principal;
pub mod secrets;
pub mod tokens;
