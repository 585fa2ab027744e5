//! A tenant's WhatsApp channel, as the domain sees it: which provider, its typed settings,
//! and the names of its secrets. Provider and setting names are strings only at the API
//! edge and in storage (`as_str` / `parse` here).

use std::collections::BTreeMap;

/// How a tenant's WhatsApp number is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Meta's Cloud API (Graph API).
    Cloud,
    /// The tenant's own WhatsApp HTTP gateway.
    Gateway,
    /// A WhatsApp Web session held by the session host.
    Web,
    /// The local stand-in for the Cloud API (never in production).
    Sandbox,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Self::Cloud, Self::Gateway, Self::Web, Self::Sandbox];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cloud => "cloud",
            Self::Gateway => "gateway",
            Self::Web => "web",
            Self::Sandbox => "sandbox",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == raw)
    }

    /// The settings a partner gives for a channel of this provider.
    pub fn setting_names(self) -> &'static [&'static str] {
        match self {
            Self::Cloud => &[PHONE_NUMBER_ID, WABA_ID],
            Self::Gateway => &[API_URL],
            Self::Web | Self::Sandbox => &[],
        }
    }

    /// The secrets a channel of this provider needs (sealed, shown masked).
    pub fn secret_names(self) -> &'static [SecretName] {
        match self {
            Self::Cloud => {
                &[SecretName::AccessToken, SecretName::AppSecret, SecretName::VerifyToken]
            }
            Self::Gateway => &[SecretName::ApiKey, SecretName::WebhookSecret],
            Self::Web | Self::Sandbox => &[],
        }
    }

    /// Settings a partner may give or leave out.
    pub fn optional_setting_names(self) -> &'static [&'static str] {
        match self {
            Self::Gateway => &[API_KEY_HEADER, HEALTH_CHECK_INTERVAL],
            _ => &[],
        }
    }

    /// Whether sends are paced by the number's throughput (`messagesPerSecond`): Meta's
    /// for the Cloud API, and a gateway's (which sends through the Cloud API itself).
    pub fn paced(self) -> bool {
        matches!(self, Self::Cloud | Self::Sandbox | Self::Gateway)
    }
}

pub const PHONE_NUMBER_ID: &str = "phoneNumberId";
pub const WABA_ID: &str = "wabaId";
pub const API_URL: &str = "apiUrl";
pub const ENDPOINT_ID: &str = "endpointId";
pub const MESSAGES_PER_SECOND: &str = "messagesPerSecond";
pub const API_KEY_HEADER: &str = "apiKeyHeader";
pub const HEALTH_CHECK_INTERVAL: &str = "healthCheckInterval";

/// How often a gateway's health is checked when its channel does not say (seconds).
pub const DEFAULT_HEALTH_CHECK_INTERVAL: u32 = 60;
/// The range a channel's `healthCheckInterval` may take (seconds).
pub const HEALTH_CHECK_INTERVALS: std::ops::RangeInclusive<u32> = 10..=86_400;

/// How a gateway is given its API key: `Authorization: Bearer <key>` by default, or the
/// key as the whole value of another header (360dialog's `D360-API-KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyHeader {
    Bearer,
    Named(String),
}

impl KeyHeader {
    /// A header name as given (`Authorization`, any case, is the bearer form); `None` when
    /// it is not a header name (letters, digits and `-`, up to 64).
    pub fn parse(name: &str) -> Option<Self> {
        let valid = !name.is_empty()
            && name.len() <= 64
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !valid {
            return None;
        }
        Some(if name.eq_ignore_ascii_case("authorization") {
            Self::Bearer
        } else {
            Self::Named(name.to_owned())
        })
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Bearer => "Authorization",
            Self::Named(name) => name,
        }
    }
}

/// A channel secret, by what it is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SecretName {
    /// The Cloud API access token (sending, templates, health checks).
    AccessToken,
    /// The Meta app's secret: webhook signatures.
    AppSecret,
    /// Meta's webhook verification handshake.
    VerifyToken,
    /// The tenant's gateway API key.
    ApiKey,
    /// What the tenant's gateway signs its webhooks with.
    WebhookSecret,
}

impl SecretName {
    pub const ALL: [SecretName; 5] =
        [Self::AccessToken, Self::AppSecret, Self::VerifyToken, Self::ApiKey, Self::WebhookSecret];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AccessToken => "accessToken",
            Self::AppSecret => "appSecret",
            Self::VerifyToken => "verifyToken",
            Self::ApiKey => "apiKey",
            Self::WebhookSecret => "webhookSecret",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|n| n.as_str() == raw)
    }
}

/// A channel's configuration, typed per provider (its secrets are kept apart, sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChannelConfig {
    Cloud {
        phone_number_id: String,
        waba_id: String,
        messages_per_second: Option<u32>,
    },
    /// `endpoint_id` is ours: the gateway posts its events to
    /// `/api/whatsapp/webhook/{tenantId}/{endpointId}`. Its API is the Cloud API's
    /// (`POST {apiUrl}/messages`), with the channel's key in `key_header`; its health is
    /// `GET {apiUrl}/health`, checked every `health_check_interval` seconds.
    Gateway {
        api_url: String,
        endpoint_id: String,
        key_header: KeyHeader,
        health_check_interval: u32,
        messages_per_second: Option<u32>,
    },
    Web,
    Sandbox {
        messages_per_second: Option<u32>,
    },
}

impl ChannelConfig {
    pub fn provider(&self) -> Provider {
        match self {
            Self::Cloud { .. } => Provider::Cloud,
            Self::Gateway { .. } => Provider::Gateway,
            Self::Web => Provider::Web,
            Self::Sandbox { .. } => Provider::Sandbox,
        }
    }

    /// Meta's phone number id, which routes platform webhooks to the tenant.
    pub fn phone_number_id(&self) -> Option<&str> {
        match self {
            Self::Cloud { phone_number_id, .. } => Some(phone_number_id),
            _ => None,
        }
    }

    pub fn messages_per_second(&self) -> Option<u32> {
        match self {
            Self::Cloud { messages_per_second, .. }
            | Self::Sandbox { messages_per_second }
            | Self::Gateway { messages_per_second, .. } => *messages_per_second,
            _ => None,
        }
    }

    /// The settings by their API (and storage) names.
    pub fn settings(&self) -> BTreeMap<&'static str, String> {
        let mut out = BTreeMap::new();
        match self {
            Self::Cloud { phone_number_id, waba_id, .. } => {
                out.insert(PHONE_NUMBER_ID, phone_number_id.clone());
                out.insert(WABA_ID, waba_id.clone());
            }
            Self::Gateway { api_url, endpoint_id, key_header, health_check_interval, .. } => {
                out.insert(API_URL, api_url.clone());
                out.insert(ENDPOINT_ID, endpoint_id.clone());
                out.insert(API_KEY_HEADER, key_header.name().to_owned());
                out.insert(HEALTH_CHECK_INTERVAL, health_check_interval.to_string());
            }
            Self::Web | Self::Sandbox { .. } => {}
        }
        if let Some(rate) = self.messages_per_second() {
            out.insert(MESSAGES_PER_SECOND, rate.to_string());
        }
        out
    }

    /// A configuration from settings by name (as stored); the first one missing is named.
    pub fn from_settings(
        provider: Provider,
        settings: &BTreeMap<String, String>,
    ) -> Result<Self, &'static str> {
        let get = |name: &'static str| settings.get(name).cloned().ok_or(name);
        let rate = settings.get(MESSAGES_PER_SECOND).and_then(|r| r.parse().ok());
        Ok(match provider {
            Provider::Cloud => Self::Cloud {
                phone_number_id: get(PHONE_NUMBER_ID)?,
                waba_id: get(WABA_ID)?,
                messages_per_second: rate,
            },
            Provider::Gateway => Self::Gateway {
                api_url: get(API_URL)?,
                endpoint_id: get(ENDPOINT_ID)?,
                key_header: settings
                    .get(API_KEY_HEADER)
                    .and_then(|h| KeyHeader::parse(h))
                    .unwrap_or(KeyHeader::Bearer),
                health_check_interval: settings
                    .get(HEALTH_CHECK_INTERVAL)
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(DEFAULT_HEALTH_CHECK_INTERVAL),
                messages_per_second: rate,
            },
            Provider::Web => Self::Web,
            Provider::Sandbox => Self::Sandbox { messages_per_second: rate },
        })
    }
}

/// Secrets shorter than this show no characters at all: four of them would give away too
/// much of a short secret (all of a four-character one).
pub const HINT_MIN_SECRET_CHARS: usize = 12;

/// What is kept in clear of a secret, for display: its last four characters when it is
/// long enough that they reveal little, otherwise nothing.
pub fn secret_hint(secret: &str) -> String {
    let chars = secret.chars().count();
    if chars < HINT_MIN_SECRET_CHARS {
        return String::new();
    }
    secret.chars().skip(chars - 4).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn providers_and_secret_names_round_trip_through_their_strings() {
        for provider in Provider::ALL {
            assert_eq!(Provider::parse(provider.as_str()), Some(provider));
        }
        for name in SecretName::ALL {
            assert_eq!(SecretName::parse(name.as_str()), Some(name));
        }
        assert_eq!(Provider::parse("telegram"), None);
    }

    #[test]
    fn a_configuration_round_trips_through_its_settings() {
        let configs = [
            ChannelConfig::Cloud {
                phone_number_id: "106".into(),
                waba_id: "102".into(),
                messages_per_second: Some(250),
            },
            ChannelConfig::Gateway {
                api_url: "https://gw.example".into(),
                endpoint_id: "gw_1".into(),
                key_header: KeyHeader::Named("D360-API-KEY".into()),
                health_check_interval: 300,
                messages_per_second: Some(20),
            },
            ChannelConfig::Gateway {
                api_url: "https://gw.example".into(),
                endpoint_id: "gw_2".into(),
                key_header: KeyHeader::Bearer,
                health_check_interval: DEFAULT_HEALTH_CHECK_INTERVAL,
                messages_per_second: None,
            },
            ChannelConfig::Web,
            ChannelConfig::Sandbox { messages_per_second: None },
        ];
        for config in configs {
            let settings = config.settings().into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            assert_eq!(ChannelConfig::from_settings(config.provider(), &settings), Ok(config));
        }
        let missing = ChannelConfig::from_settings(Provider::Cloud, &BTreeMap::new());
        assert_eq!(missing, Err(PHONE_NUMBER_ID));
    }

    #[test]
    fn a_gateway_key_header_is_a_header_name_and_authorization_means_bearer() {
        assert_eq!(KeyHeader::parse("authorization"), Some(KeyHeader::Bearer));
        assert_eq!(KeyHeader::parse("D360-API-KEY"), Some(KeyHeader::Named("D360-API-KEY".into())));
        for bad in ["", "x y", "a:b", "é", &"h".repeat(65)] {
            assert_eq!(KeyHeader::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_long_secrets_keep_a_hint() {
        assert_eq!(secret_hint("abcd"), "");
        assert_eq!(secret_hint("eleven-char"), "");
        assert_eq!(secret_hint("twelve-chars"), "hars");
        assert_eq!(secret_hint("EAAG-a-long-access-token-9f3k"), "9f3k");
        assert_eq!(secret_hint("éééééééé€xyz"), "€xyz", "characters, not bytes");
    }
}
