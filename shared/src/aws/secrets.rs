//! Secrets read once at cold start: the JWT signing keys.
//!
//! `JWT_SIGNING_KEYS` (`kid:base64url-secret,...`) is used when set: locally `make dev`
//! generates one into `.dev/`. In AWS the SAM template passes `JWT_SIGNING_KEYS_SECRET_ID`
//! instead, and the key ring is read from that Secrets Manager secret, so it never sits in
//! a function's configuration.

use super::AwsClients;
use crate::auth::tokens::{DEFAULT_ISSUER, TokenKeys};
use crate::config::ConfigError;
use crate::telemetry::error_chain;

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
    let spec = read_secret(clients, secret_id).await?;
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

pub async fn read_secret(clients: &AwsClients, secret_id: &str) -> Result<String, ConfigError> {
    let out =
        clients.secrets.get_secret_value().secret_id(secret_id).send().await.map_err(|e| {
            ConfigError::Invalid { name: KEYS_SECRET_VAR.into(), reason: error_chain(&e) }
        })?;
    out.secret_string().map(str::to_owned).ok_or_else(|| ConfigError::Invalid {
        name: KEYS_SECRET_VAR.into(),
        reason: "the secret has no string value".into(),
    })
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
}
