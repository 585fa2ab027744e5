//! The operator account (a SYSTEM_ADMIN), created from configuration when missing:
//! `OPERATOR_EMAIL`, with the password in `OPERATOR_PASSWORD` (local) or in the Secrets
//! Manager secret named by `OPERATOR_PASSWORD_SECRET_ID` (AWS; the template generates it).

use crate::aws::AwsClients;
use crate::aws::secrets::read_secret;
use crate::store::tenants::TenantStore;
use domain::passwords::Passwords;
use domain::user::{Email, check_password};

#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    #[error("OPERATOR_EMAIL {0}")]
    Email(&'static str),
    #[error("the operator password {0}")]
    Password(&'static str),
    #[error("OPERATOR_EMAIL is set but neither OPERATOR_PASSWORD nor OPERATOR_PASSWORD_SECRET_ID")]
    NoPassword,
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Hash(#[from] domain::passwords::HashError),
}

#[derive(Debug, Clone, Default)]
pub struct OperatorConfig {
    pub email: Option<String>,
    pub password: Option<String>,
    pub password_secret_id: Option<String>,
}

impl OperatorConfig {
    pub fn from_env() -> Self {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.trim().is_empty());
        Self {
            email: var("OPERATOR_EMAIL"),
            password: var("OPERATOR_PASSWORD"),
            password_secret_id: var("OPERATOR_PASSWORD_SECRET_ID"),
        }
    }
}

/// [`ensure_operator`] with the configuration from the environment.
pub async fn ensure_operator_from_env(
    clients: &AwsClients,
    store: &TenantStore,
) -> Result<Option<String>, OperatorError> {
    ensure_operator(clients, store, &OperatorConfig::from_env()).await
}

/// Creates the operator if an email is configured and no account has it yet. Returns the
/// (redacted) email when it created one. The password is read and hashed only then, so a
/// warm start costs one read.
pub async fn ensure_operator(
    clients: &AwsClients,
    store: &TenantStore,
    config: &OperatorConfig,
) -> Result<Option<String>, OperatorError> {
    let Some(email) = &config.email else { return Ok(None) };
    let email = Email::parse(email).map_err(OperatorError::Email)?;
    if store.users().find_by_email(&email).await?.is_some() {
        return Ok(None);
    }
    let password = match (&config.password, &config.password_secret_id) {
        (Some(password), _) => password.clone(),
        (None, Some(secret_id)) => {
            read_secret(clients, secret_id, "OPERATOR_PASSWORD_SECRET_ID").await?
        }
        (None, None) => return Err(OperatorError::NoPassword),
    };
    check_password(&password).map_err(OperatorError::Password)?;
    let hash = Passwords::new()?.hash(&password).await?;
    let created = store.tenants().ensure_operator(&email, "Operator", &hash).await?;
    Ok(created.then(|| email.redacted()))
}
