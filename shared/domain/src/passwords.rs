//! Password hashing with argon2id.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane: OWASP's first recommended argon2id
//! configuration. It fits a 128–256 MB Lambda with room to spare, and on one vCPU costs
//! tens of milliseconds (measured in BENCHMARKS.md); memory-hardness, not time, is what
//! makes offline guessing expensive. Stored hashes are PHC strings that carry their own
//! parameters, so raising them later only affects new hashes.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use std::sync::Arc;

pub const MEMORY_KIB: u32 = 19 * 1024;
pub const ITERATIONS: u32 = 2;
pub const LANES: u32 = 1;

#[derive(Debug, thiserror::Error)]
#[error("password hashing failed: {0}")]
pub struct HashError(String);

/// A real hash, with the parameters above, of a random password nobody kept: verifying
/// against it when an email is unknown makes "no such user" cost exactly what "wrong
/// password" costs. NOTE: a constant rather than one hashed at start-up, which would add
/// a full argon2 run to every cold start.
const DECOY: &str = "$argon2id$v=19$m=19456,t=2,p=1$xpvX2nL+d5xphHLh6fDL2w$KH/7Wp6lj3vSTtfj/ybZhLvqmBWkKETI+KNglM4juFI";

/// Cheap to clone; hashing runs on the blocking pool so that a burst of logins does not
/// stall other requests on the async runtime.
#[derive(Clone)]
pub struct Passwords {
    argon2: Arc<Argon2<'static>>,
}

impl Passwords {
    pub fn new() -> Result<Self, HashError> {
        let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None)
            .map_err(|e| HashError(e.to_string()))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        Ok(Self { argon2: Arc::new(argon2) })
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            argon2.hash_password(password.as_bytes()).map(|h| h.to_string())
        })
        .await
        .map_err(|e| HashError(e.to_string()))?
        .map_err(|e| HashError(e.to_string()))
    }

    /// Whether `password` matches `stored`; with `None` (unknown user) it does the same
    /// work against the decoy and answers false.
    pub async fn verify(&self, password: &str, stored: Option<&str>) -> bool {
        let argon2 = self.argon2.clone();
        let password = password.to_owned();
        let known = stored.is_some();
        let stored = stored.unwrap_or(DECOY).to_owned();
        let matched = tokio::task::spawn_blocking(move || {
            argon2.verify_password(password.as_bytes(), stored.as_str()).is_ok()
        })
        .await
        .unwrap_or(false);
        known && matched
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_only_their_own_password() {
        let passwords = Passwords::new().expect("params");
        let hash = passwords.hash("correct horse battery").await.expect("hash");
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{hash}");
        assert!(passwords.verify("correct horse battery", Some(&hash)).await);
        assert!(!passwords.verify("correct horse batterx", Some(&hash)).await);
        assert!(!passwords.verify("correct horse battery", None).await);
        assert!(!passwords.verify("anything", Some("not a phc string")).await);
    }

    #[tokio::test]
    async fn the_decoy_costs_what_a_real_hash_costs() {
        let passwords = Passwords::new().expect("params");
        let real = passwords.hash("some password here").await.expect("hash");
        let params = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        assert_eq!(params(DECOY), params(&real), "same memory, passes and lanes");
        assert_eq!(DECOY.len(), real.len(), "same salt and output lengths");
        assert!(!passwords.verify("some password here", Some(DECOY)).await);
    }

    #[tokio::test]
    async fn the_same_password_hashes_differently_each_time() {
        let passwords = Passwords::new().expect("params");
        let a = passwords.hash("same password here").await.expect("hash");
        let b = passwords.hash("same password here").await.expect("hash");
        assert_ne!(a, b, "salts must differ");
    }
}
