//! Opaque secrets: API keys and refresh tokens. Both are 256 random bits, shown to their
//! owner once and stored only as a SHA-256 digest (a fast hash is right for random
//! secrets: there is nothing to guess).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

#[derive(Debug, thiserror::Error)]
#[error("the operating system's random number generator failed")]
pub struct RandomUnavailable;

/// `bytes` random bytes from the OS, base64url without padding.
pub fn random_token(bytes: usize) -> Result<String, RandomUnavailable> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).map_err(|_| RandomUnavailable)?;
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

pub fn sha256_hex(value: &str) -> String {
    let digest = Sha256::digest(value.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares two digests without leaking, through timing, how much of them matched.
pub fn digests_equal(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A tenant API key: `sbk_<lookup id>_<secret>`. The lookup id is public (it names the
/// key in listings and finds its record); only the digest of the whole key is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeySecret {
    pub lookup_id: String,
    pub key: String,
}

pub const API_KEY_PREFIX: &str = "sbk_";
/// A partner platform's key (`/api/admin/platforms`): the same shape as a tenant's API key.
pub const PLATFORM_KEY_PREFIX: &str = "sbp_";

impl ApiKeySecret {
    /// A new tenant API key.
    pub fn generate() -> Result<Self, RandomUnavailable> {
        Self::generate_with(API_KEY_PREFIX)
    }

    /// A new platform key.
    pub fn generate_platform() -> Result<Self, RandomUnavailable> {
        Self::generate_with(PLATFORM_KEY_PREFIX)
    }

    fn generate_with(prefix: &str) -> Result<Self, RandomUnavailable> {
        let lookup_id = random_token(9)?.replace(['-', '_'], "x");
        let key = format!("{prefix}{lookup_id}_{}", random_token(32)?);
        Ok(Self { lookup_id, key })
    }

    /// The lookup id of something that looks like one of our tenant API keys.
    pub fn lookup_id_of(key: &str) -> Option<&str> {
        lookup_id_with(API_KEY_PREFIX, key)
    }

    /// The lookup id of something that looks like one of our platform keys.
    pub fn platform_lookup_id_of(key: &str) -> Option<&str> {
        lookup_id_with(PLATFORM_KEY_PREFIX, key)
    }

    pub fn digest(&self) -> String {
        sha256_hex(&self.key)
    }
}

fn lookup_id_with<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    let rest = key.strip_prefix(prefix)?;
    let (lookup, secret) = rest.split_once('_')?;
    let plausible = lookup.len() == 12
        && lookup.bytes().all(|b| b.is_ascii_alphanumeric())
        && secret.len() == 43;
    plausible.then_some(lookup)
}

/// Refresh tokens carry no structure: the digest is the record's key.
pub const REFRESH_TOKEN_PREFIX: &str = "sbr_";

pub fn new_refresh_token() -> Result<String, RandomUnavailable> {
    Ok(format!("{REFRESH_TOKEN_PREFIX}{}", random_token(32)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_expose_their_lookup_id_and_nothing_else() {
        let secret = ApiKeySecret::generate().expect("random");
        assert_eq!(ApiKeySecret::lookup_id_of(&secret.key), Some(secret.lookup_id.as_str()));
        assert_eq!(secret.lookup_id.len(), 12);
        assert_ne!(secret.digest(), secret.key);
        assert_eq!(ApiKeySecret::lookup_id_of("sbk_short_x"), None);
        assert_eq!(ApiKeySecret::lookup_id_of("eyJhbGciOiJIUzI1NiJ9.x.y"), None);
        let platform = ApiKeySecret::generate_platform().expect("random");
        assert!(platform.key.starts_with("sbp_"));
        let lookup = ApiKeySecret::platform_lookup_id_of(&platform.key);
        assert_eq!(lookup, Some(platform.lookup_id.as_str()));
        assert_eq!(ApiKeySecret::lookup_id_of(&platform.key), None, "not a tenant key");
        assert_eq!(ApiKeySecret::platform_lookup_id_of(&secret.key), None, "not a platform key");
    }

    #[test]
    fn tokens_are_random_and_digests_compare_exactly() {
        assert_ne!(new_refresh_token().expect("random"), new_refresh_token().expect("random"));
        assert_eq!(random_token(32).expect("random").len(), 43);
        let d = sha256_hex("abc");
        assert_eq!(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert!(digests_equal(&d, &sha256_hex("abc")));
        assert!(!digests_equal(&d, &sha256_hex("abd")));
    }
}
