//! Secrets Manager: secrets read once at cold start (the JWT key ring, the platform's
//! Meta app, the operator's password).

use super::AwsClients;
use crate::config::ConfigError;
use crate::telemetry::error_chain;

/// The string value of the secret that the environment variable `named_by` names; an
/// error names that variable.
pub async fn read_secret(
    clients: &AwsClients,
    secret_id: &str,
    named_by: &str,
) -> Result<String, ConfigError> {
    let out = clients
        .secrets
        .get_secret_value()
        .secret_id(secret_id)
        .send()
        .await
        .map_err(|e| ConfigError::Invalid { name: named_by.into(), reason: error_chain(&e) })?;
    out.secret_string().map(str::to_owned).ok_or_else(|| ConfigError::Invalid {
        name: named_by.into(),
        reason: "the secret has no string value".into(),
    })
}
