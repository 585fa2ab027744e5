//! Where a tenant's Cloud API requests go: Meta's Graph API for a `cloud` channel, the
//! tenant's own Cloud API-compatible gateway (a BSP such as 360dialog) for a `gateway`
//! channel, the local sandbox for a `sandbox` channel (no credentials; only where
//! `SANDBOX_URL` is set, which production leaves unset).
//!
//! A gateway's address is the tenant's to choose, so its requests go through the
//! destination-checked client of partner webhooks ([`crate::webhook_client`]): no private,
//! loopback or metadata address unless `WEBHOOK_ALLOWED_CIDRS` exempts it, checked when the
//! channel is set and at every connection.

use crate::channel::OpenChannel;
use domain::channel::{ChannelConfig, KeyHeader, SecretName};
use domain::ids::TenantId;
use domain::webhooks::Cidr;
use secrecy::{ExposeSecret, SecretString};

#[derive(Clone, Debug)]
pub struct GraphConfig {
    pub graph_api_base: String,
    pub graph_api_version: String,
    pub sandbox_url: Option<String>,
    /// Ranges a gateway may be at although they are private or reserved
    /// (`WEBHOOK_ALLOWED_CIDRS`, shared with partner webhooks).
    pub destinations_allowed: Vec<Cidr>,
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
    pub fn from_env() -> Result<Self, crate::config::ConfigError> {
        let allowed = std::env::var("WEBHOOK_ALLOWED_CIDRS").unwrap_or_default();
        Ok(Self {
            graph_api_base: std::env::var("GRAPH_API_BASE")
                .unwrap_or_else(|_| "https://graph.facebook.com".into()),
            graph_api_version: std::env::var("GRAPH_API_VERSION")
                .unwrap_or_else(|_| "v23.0".into()),
            sandbox_url: std::env::var("SANDBOX_URL").ok().filter(|v| !v.is_empty()),
            destinations_allowed: Cidr::parse_list(&allowed).map_err(|reason| {
                crate::config::ConfigError::Invalid { name: "WEBHOOK_ALLOWED_CIDRS".into(), reason }
            })?,
        })
    }

    /// The destination-checked client gateway requests go through.
    pub fn gateway_client(&self) -> Result<crate::webhook_client::WebhookClient, reqwest::Error> {
        crate::webhook_client::WebhookClient::new(self.destinations_allowed.clone())
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
                key_header: KeyHeader::Bearer,
                gateway: false,
            }),
            // NOTE: a gateway's number is its own business; its endpoint id stands for it
            // in the pacing bucket.
            ChannelConfig::Gateway { api_url, endpoint_id, key_header, .. } => Ok(Target {
                base: api_url.trim_end_matches('/').to_owned(),
                phone_number_id: endpoint_id.clone(),
                waba_id: endpoint_id.clone(),
                token: channel.secret(SecretName::ApiKey).map(SecretString::from),
                key_header: key_header.clone(),
                gateway: true,
            }),
            // NOTE: in the sandbox a tenant's phone number (and business account) id is its
            // tenant id: that is how the sandbox knows where to send status webhooks.
            ChannelConfig::Sandbox { .. } => match &self.sandbox_url {
                Some(url) => Ok(Target {
                    base: format!("{}/{}", url.trim_end_matches('/'), self.graph_api_version),
                    phone_number_id: tenant.to_string(),
                    waba_id: tenant.to_string(),
                    token: None,
                    key_header: KeyHeader::Bearer,
                    gateway: false,
                }),
                None => Err("the sandbox provider is not available in this stage".into()),
            },
            ChannelConfig::Web => {
                Err("a web channel sends through its WhatsApp Web session".into())
            }
        }
    }
}

pub struct Target {
    /// `{base}/{version}`, or a gateway's `apiUrl`.
    pub base: String,
    /// The number (a gateway's endpoint id): what the sends are paced by.
    pub phone_number_id: String,
    pub waba_id: String,
    token: Option<SecretString>,
    key_header: KeyHeader,
    /// A tenant's own gateway: requests go through the destination-checked client.
    pub gateway: bool,
}

impl Target {
    /// The phone number itself (what a health check reads).
    pub fn phone_number_url(&self) -> String {
        format!("{}/{}", self.base, self.phone_number_id)
    }

    pub fn messages_url(&self) -> String {
        if self.gateway {
            return format!("{}/messages", self.base);
        }
        format!("{}/{}/messages", self.base, self.phone_number_id)
    }

    /// What a health check reads: the number at Meta, a gateway's `/health`.
    pub fn health_url(&self) -> String {
        if self.gateway { format!("{}/health", self.base) } else { self.phone_number_url() }
    }

    pub fn templates_url(&self) -> String {
        format!("{}/{}/message_templates", self.base, self.waba_id)
    }

    /// Adds the channel's access token (a gateway's key, in its header), if it has one.
    pub fn authorise(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match (&self.token, &self.key_header) {
            (Some(token), KeyHeader::Bearer) => request.bearer_auth(token.expose_secret()),
            (Some(token), KeyHeader::Named(name)) => {
                request.header(name.as_str(), token.expose_secret())
            }
            (None, _) => request,
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

/// Checks a channel's provider: the Graph API (or the sandbox) reads the phone number, a
/// gateway answers `GET {apiUrl}/health` (through the destination-checked client). `None`
/// for a web channel, whose health is its session's.
#[derive(Clone, Debug)]
pub struct HealthChecker {
    graph: GraphConfig,
    http: reqwest::Client,
    gateway: crate::webhook_client::WebhookClient,
}

impl HealthChecker {
    pub fn new(graph: GraphConfig) -> Result<Self, reqwest::Error> {
        let http = http_client(std::time::Duration::from_secs(5))?;
        let gateway = graph.gateway_client()?;
        Ok(Self { graph, http, gateway })
    }

    pub async fn check(&self, tenant: &TenantId, channel: &OpenChannel) -> Option<bool> {
        let target = self.graph.target(tenant, channel).ok()?;
        let request = if target.gateway {
            match self.gateway.request(reqwest::Method::GET, &target.health_url()) {
                Ok(request) => request.timeout(std::time::Duration::from_secs(5)),
                Err(refused) => {
                    tracing::warn!(tenant_id = %tenant, reason = %refused, "gateway health check refused: destination not allowed");
                    return Some(false);
                }
            }
        } else {
            self.http.get(target.health_url())
        };
        Some(match target.authorise(request).send().await {
            Ok(response) => response.status().is_success(),
            Err(e) => {
                let (error, _) = crate::webhook_client::failure(&e.without_url());
                tracing::warn!(tenant_id = %tenant, provider = channel.config.provider().as_str(), error, "channel health check failed");
                false
            }
        })
    }

    /// Whether a gateway URL is an allowed destination now (when a channel is set).
    pub async fn destination_allowed(
        &self,
        url: &str,
    ) -> Result<(), crate::webhook_client::Refused> {
        let url = crate::webhook_client::parse_url(url)?;
        self.gateway.check(&url).await
    }
}
