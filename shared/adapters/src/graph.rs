//! Where a tenant's Cloud API requests go: Meta's Graph API for a `cloud` channel, the
//! local sandbox for a `sandbox` channel (no credentials; only where `SANDBOX_URL` is set,
//! which production leaves unset).

use crate::channel::OpenChannel;
use domain::channel::{ChannelConfig, SecretName};
use domain::ids::TenantId;
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug)]
pub struct GraphConfig {
    pub graph_api_base: String,
    pub graph_api_version: String,
    pub sandbox_url: Option<String>,
}

/// An HTTP client for outside services: its timeout holds (a client that cannot be built
/// is a start-up error, never a silent fallback to one without a timeout), and redirects
/// are not followed.
pub fn http_client(timeout: std::time::Duration) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .pool_max_idle_per_host(64)
        .build()
}

impl GraphConfig {
    pub fn from_env() -> Self {
        Self {
            graph_api_base: std::env::var("GRAPH_API_BASE")
                .unwrap_or_else(|_| "https://graph.facebook.com".into()),
            graph_api_version: std::env::var("GRAPH_API_VERSION")
                .unwrap_or_else(|_| "v23.0".into()),
            sandbox_url: std::env::var("SANDBOX_URL").ok().filter(|v| !v.is_empty()),
        }
    }

    /// The Cloud API endpoints of a tenant's channel, or why it has none.
    pub fn target(&self, tenant: &TenantId, channel: &OpenChannel) -> Result<Target, String> {
        match &channel.config {
            ChannelConfig::Cloud { phone_number_id, waba_id, .. } => Ok(Target {
                base: format!(
                    "{}/{}",
                    self.graph_api_base.trim_end_matches('/'),
                    self.graph_api_version
                ),
                phone_number_id: phone_number_id.clone(),
                waba_id: waba_id.clone(),
                token: channel.secret(SecretName::AccessToken).map(SecretString::from),
            }),
            // NOTE: in the sandbox a tenant's phone number (and business account) id is its
            // tenant id: that is how the sandbox knows where to send status webhooks.
            ChannelConfig::Sandbox { .. } => match &self.sandbox_url {
                Some(url) => Ok(Target {
                    base: format!("{}/{}", url.trim_end_matches('/'), self.graph_api_version),
                    phone_number_id: tenant.to_string(),
                    waba_id: tenant.to_string(),
                    token: None,
                }),
                None => Err("the sandbox provider is not available in this stage".into()),
            },
            other => Err(format!(
                "a {} channel does not send through the Cloud API",
                other.provider().as_str()
            )),
        }
    }
}

pub struct Target {
    /// `{base}/{version}`.
    pub base: String,
    pub phone_number_id: String,
    pub waba_id: String,
    token: Option<SecretString>,
}

impl Target {
    /// The phone number itself (what a health check reads).
    pub fn phone_number_url(&self) -> String {
        format!("{}/{}", self.base, self.phone_number_id)
    }

    pub fn messages_url(&self) -> String {
        format!("{}/{}/messages", self.base, self.phone_number_id)
    }

    pub fn templates_url(&self) -> String {
        format!("{}/{}/message_templates", self.base, self.waba_id)
    }

    /// Adds the channel's access token, if it has one.
    pub fn authorise(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.token {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        }
    }
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("base", &self.base)
            .field("phone_number_id", &self.phone_number_id)
            .finish_non_exhaustive()
    }
}
