//! Access tokens: short-lived JWTs (HS256) carrying the user, the tenant and the role.
//!
//! - The algorithm is pinned: a token whose header names any other (`none`, RS256 with
//!   our secret as a "public key", ...) is refused before its signature is looked at.
//! - `iss`, `aud`, `exp` and `sub` are required and checked; clocks may differ by
//!   [`LEEWAY_SECS`].
//! - Keys rotate by `kid`: the configuration lists keys as `kid:secret` pairs, the first
//!   signs, all verify. Add a new key first, move it to the front once every function has
//!   it, and drop the old one after an access-token lifetime.

use adapters::aws::AwsClients;
use adapters::aws::secrets::read_secret;
use adapters::config::ConfigError;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use domain::ids::{TenantId, UserId};
use domain::user::Role;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::Duration;

pub const ALGORITHM: Algorithm = Algorithm::HS256;
pub const ACCESS_TOKEN_TTL: Duration = Duration::from_secs(15 * 60);
pub const LEEWAY_SECS: u64 = 5;
/// HS256 keys shorter than the hash output weaken it.
pub const MIN_SECRET_BYTES: usize = 32;
pub const DEFAULT_ISSUER: &str = "switchboard";
pub const AUDIENCE: &str = "switchboard-api";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: UserId,
    pub tid: TenantId,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("the token is invalid")]
    Invalid,
    #[error("the token could not be signed")]
    Signing,
}

struct Key {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

pub struct TokenKeys {
    active_kid: String,
    keys: HashMap<String, Key>,
    issuer: String,
    validation: Validation,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("active_kid", &self.active_kid)
            .field("kids", &self.keys.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl TokenKeys {
    /// Parses `kid:base64url-secret[,kid:secret...]`. `source` names where the value came
    /// from, for the error message (never the value itself).
    pub fn parse(spec: &str, issuer: &str, source: &str) -> Result<Self, ConfigError> {
        let invalid =
            |reason: &str| ConfigError::Invalid { name: source.into(), reason: reason.into() };
        let mut keys = HashMap::new();
        let mut active_kid = None;
        for entry in spec.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (kid, secret) =
                entry.split_once(':').ok_or_else(|| invalid("entries are kid:secret"))?;
            let secret = URL_SAFE_NO_PAD
                .decode(secret.trim_end_matches('='))
                .map_err(|_| invalid("secrets are base64url"))?;
            if kid.is_empty() || secret.len() < MIN_SECRET_BYTES {
                return Err(invalid("every key needs a kid and at least 32 bytes of secret"));
            }
            active_kid.get_or_insert_with(|| kid.to_owned());
            keys.insert(
                kid.to_owned(),
                Key {
                    encoding: EncodingKey::from_secret(&secret),
                    decoding: DecodingKey::from_secret(&secret),
                },
            );
        }
        let active_kid = active_kid.ok_or_else(|| invalid("no keys"))?;
        let mut validation = Validation::new(ALGORITHM);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        Ok(Self { active_kid, keys, issuer: issuer.to_owned(), validation })
    }

    pub fn issue(
        &self,
        user: &UserId,
        tenant: &TenantId,
        role: Role,
        now_secs: u64,
    ) -> Result<String, TokenError> {
        let claims = AccessClaims {
            sub: user.clone(),
            tid: tenant.clone(),
            role,
            iss: self.issuer.clone(),
            aud: AUDIENCE.into(),
            iat: now_secs,
            exp: now_secs + ACCESS_TOKEN_TTL.as_secs(),
        };
        let key = self.keys.get(&self.active_kid).ok_or(TokenError::Signing)?;
        let mut header = Header::new(ALGORITHM);
        header.kid = Some(self.active_kid.clone());
        jsonwebtoken::encode(&header, &claims, &key.encoding).map_err(|_| TokenError::Signing)
    }

    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != ALGORITHM {
            return Err(TokenError::Invalid);
        }
        let key =
            header.kid.as_deref().and_then(|kid| self.keys.get(kid)).ok_or(TokenError::Invalid)?;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|_| TokenError::Invalid)
    }
}

/// A fresh key ring spec with one random key: what `make dev` writes for local use.
pub fn generate_spec(kid: &str) -> Result<String, domain::secrets::RandomUnavailable> {
    Ok(format!("{kid}:{}", domain::secrets::random_token(32)?))
}

// ---------------------------------------------------------------- the key ring at start-up
//
// `JWT_SIGNING_KEYS` (`kid:base64url-secret,...`) is used when set: locally `make dev`
// generates one into `.dev/`. In AWS the SAM template passes `JWT_SIGNING_KEYS_SECRET_ID`
// instead, and the key ring is read from that Secrets Manager secret, so it never sits in
// a function's configuration.

pub const KEYS_VAR: &str = "JWT_SIGNING_KEYS";
pub const KEYS_SECRET_VAR: &str = "JWT_SIGNING_KEYS_SECRET_ID";
pub const ISSUER_VAR: &str = "JWT_ISSUER";

pub async fn token_keys_from_env(clients: &AwsClients) -> Result<TokenKeys, ConfigError> {
    let issuer = std::env::var(ISSUER_VAR).unwrap_or_else(|_| DEFAULT_ISSUER.to_owned());
    if let Ok(spec) = std::env::var(KEYS_VAR) {
        return TokenKeys::parse(&spec, &issuer, KEYS_VAR);
    }
    let secret_id = std::env::var(KEYS_SECRET_VAR)
        .map_err(|_| ConfigError::Missing(format!("{KEYS_VAR} or {KEYS_SECRET_VAR}")))?;
    token_keys_from_secret(clients, &secret_id, &issuer).await
}

pub async fn token_keys_from_secret(
    clients: &AwsClients,
    secret_id: &str,
    issuer: &str,
) -> Result<TokenKeys, ConfigError> {
    let spec = read_secret(clients, secret_id, KEYS_SECRET_VAR).await?;
    TokenKeys::parse(&secret_as_spec(&spec), issuer, KEYS_SECRET_VAR)
}

/// The template generates the secret as one random alphanumeric string; that is a key ring
/// of one key, `k0`, whose secret is the string's bytes. A rotated secret is written in the
/// `kid:secret,...` form and used as it is.
fn secret_as_spec(value: &str) -> String {
    use base64::Engine;
    let value = value.trim();
    if value.contains(':') {
        value.to_owned()
    } else {
        format!("k0:{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_secret_is_a_ring_of_one_key_and_a_rotated_one_is_used_as_is() {
        let generated = "a".repeat(64);
        let ring = TokenKeys::parse(&secret_as_spec(&generated), DEFAULT_ISSUER, KEYS_SECRET_VAR);
        assert!(ring.is_ok());
        assert_eq!(secret_as_spec("k1:abc,k0:def"), "k1:abc,k0:def");
    }

    const NOW: u64 = 1_800_000_000;

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(NOW)
    }

    fn ring(spec: &str) -> TokenKeys {
        TokenKeys::parse(spec, DEFAULT_ISSUER, "TEST_KEYS").expect("valid spec")
    }

    fn ids() -> (UserId, TenantId) {
        (UserId::generate(), TenantId::generate())
    }

    #[test]
    fn issued_tokens_verify_with_their_claims() {
        let keys = ring(&generate_spec("k1").expect("random"));
        let (user, tenant) = ids();
        let token = keys.issue(&user, &tenant, Role::Agent, now()).expect("sign");
        let claims = keys.verify(&token).expect("valid");
        assert_eq!((claims.sub, claims.tid, claims.role), (user, tenant, Role::Agent));
        assert_eq!(claims.exp - claims.iat, 900);
    }

    #[test]
    fn rotation_keeps_old_tokens_valid_and_signs_with_the_first_key() {
        let old = generate_spec("old").expect("random");
        let new = generate_spec("new").expect("random");
        let (user, tenant) = ids();
        let token = ring(&old).issue(&user, &tenant, Role::TenantAdmin, now()).expect("sign");
        let rotated = ring(&format!("{new},{old}"));
        assert!(rotated.verify(&token).is_ok());
        let fresh = rotated.issue(&user, &tenant, Role::TenantAdmin, now()).expect("sign");
        assert_eq!(
            jsonwebtoken::decode_header(&fresh).expect("header").kid.as_deref(),
            Some("new")
        );
        assert_eq!(ring(&new).verify(&token), Err(TokenError::Invalid), "old key dropped");
    }

    #[test]
    fn expired_and_foreign_tokens_are_refused() {
        let keys = ring(&generate_spec("k1").expect("random"));
        let (user, tenant) = ids();
        let expired = keys.issue(&user, &tenant, Role::Agent, now() - 3600).expect("sign");
        assert_eq!(keys.verify(&expired), Err(TokenError::Invalid));
        let other = ring(&generate_spec("k1").expect("random"));
        let forged = other.issue(&user, &tenant, Role::Agent, now()).expect("sign");
        assert_eq!(keys.verify(&forged), Err(TokenError::Invalid), "same kid, other secret");
    }

    #[test]
    fn bad_key_specs_name_their_source_only() {
        for spec in ["", "k1", "k1:short", ":QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE", "k1:!!!"]
        {
            let err = TokenKeys::parse(spec, DEFAULT_ISSUER, "JWT_SIGNING_KEYS").expect_err(spec);
            let text = err.to_string();
            assert!(text.contains("JWT_SIGNING_KEYS"), "{text}");
            assert!(spec.len() < 6 || !text.contains(spec), "{text}");
        }
    }
}
