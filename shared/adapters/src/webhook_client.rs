//! The HTTP client of partner webhook deliveries: it connects only to addresses that
//! `domain::webhooks::refused_address` lets through, checked on the address it connects to
//! (its own DNS resolver drops refused answers, so a name that resolves to a public address
//! when the subscription is made and to a private one later is refused then too), follows
//! no redirect, uses no proxy, gives up after 15 s and reads at most 4 KB of an answer.

use crate::config::ConfigError;
use domain::webhooks::{ATTEMPT_TIMEOUT, Cidr, RESPONSE_BODY_BYTES, refused_address};
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue, RETRY_AFTER};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why a destination is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("{0}")]
    Url(String),
    #[error("{host} resolves to {address}, a {reason} address")]
    Address { host: String, address: IpAddr, reason: &'static str },
    #[error("{host} does not resolve: {error}")]
    Unresolved { host: String, error: String },
}

/// A subscription URL, checked for its form: http or https, a host, no credentials.
pub fn parse_url(text: &str) -> Result<reqwest::Url, Refused> {
    if text.len() > domain::webhooks::MAX_URL_BYTES {
        return Err(Refused::Url("is longer than 2048 bytes".into()));
    }
    let url = reqwest::Url::parse(text).map_err(|e| Refused::Url(format!("is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Refused::Url("must be http or https".into()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(Refused::Url("has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Refused::Url("must not carry credentials".into()));
    }
    Ok(url)
}

/// What one attempt got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// `None` when no HTTP answer came (refused, timed out, connection failed).
    pub status: Option<u16>,
    pub duration: Duration,
    /// Why it failed, when it did.
    pub error: Option<String>,
    /// Up to 4 KB of the answer's body (lossy UTF-8).
    pub body: Option<String>,
    /// `Retry-After` of a 429 or 503, in seconds.
    pub retry_after: Option<Duration>,
    /// The destination was refused: nothing was sent.
    pub refused: bool,
}

impl Answer {
    pub fn delivered(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }

    fn failed(started: Instant, error: String, refused: bool) -> Self {
        Self {
            status: None,
            duration: started.elapsed(),
            error: Some(error),
            body: None,
            retry_after: None,
            refused,
        }
    }
}

/// The delivery client.
#[derive(Clone, Debug)]
pub struct WebhookClient {
    http: reqwest::Client,
    allowed: Arc<Vec<Cidr>>,
}

impl WebhookClient {
    /// `allowed`: the ranges exempt from the refusal (`WEBHOOK_ALLOWED_CIDRS`).
    pub fn new(allowed: Vec<Cidr>) -> Result<Self, reqwest::Error> {
        let allowed = Arc::new(allowed);
        let http = reqwest::Client::builder()
            .timeout(ATTEMPT_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(CheckedResolver { allowed: allowed.clone() })
            .user_agent("Switchboard-Webhooks/1")
            .pool_max_idle_per_host(16)
            .build()?;
        Ok(Self { http, allowed })
    }

    /// `WEBHOOK_ALLOWED_CIDRS` from the environment (unset: none).
    pub fn from_env() -> Result<Self, crate::config::StartError> {
        let text = std::env::var("WEBHOOK_ALLOWED_CIDRS").unwrap_or_default();
        let allowed = Cidr::parse_list(&text).map_err(|reason| ConfigError::Invalid {
            name: "WEBHOOK_ALLOWED_CIDRS".into(),
            reason,
        })?;
        Ok(Self::new(allowed)?)
    }

    /// Whether `url`'s host is an allowed destination now: a literal address is checked as
    /// it is, a name is resolved and every address it resolves to must be allowed.
    pub async fn check(&self, url: &reqwest::Url) -> Result<(), Refused> {
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']).to_owned();
        if let Ok(address) = host.parse::<IpAddr>() {
            return match refused_address(address, &self.allowed) {
                Some(reason) => Err(Refused::Address { host, address, reason }),
                None => Ok(()),
            };
        }
        let port = url.port_or_known_default().unwrap_or(443);
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| Refused::Unresolved { host: host.clone(), error: e.to_string() })?
            .collect();
        let mut any = false;
        for address in addresses {
            any = true;
            if let Some(reason) = refused_address(address.ip(), &self.allowed) {
                return Err(Refused::Address { host, address: address.ip(), reason });
            }
        }
        if any { Ok(()) } else { Err(Refused::Unresolved { host, error: "no address".into() }) }
    }

    /// A request to `url` through this client (its resolver drops refused addresses, no
    /// redirect, no proxy), for a tenant's own endpoint such as a gateway: a refused literal
    /// address is refused here, before any connection.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, Refused> {
        let url = parse_url(url)?;
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        if let Ok(address) = host.parse::<IpAddr>()
            && let Some(reason) = refused_address(address, &self.allowed)
        {
            return Err(Refused::Address { host: host.to_owned(), address, reason });
        }
        Ok(self.http.request(method, url))
    }

    /// Posts `body` to `url` with the Standard Webhooks headers. Never panics, never
    /// follows a redirect (a 3xx is a failed attempt).
    pub async fn post(
        &self,
        url: &str,
        webhook_id: &str,
        timestamp: i64,
        signature: &str,
        body: String,
    ) -> Answer {
        let started = Instant::now();
        let url = match parse_url(url) {
            Ok(url) => url,
            Err(e) => return Answer::failed(started, e.to_string(), true),
        };
        // A literal address never reaches the resolver: it is checked here.
        let host = url.host_str().unwrap_or_default().trim_matches(['[', ']']);
        if let Ok(address) = host.parse::<IpAddr>()
            && let Some(reason) = refused_address(address, &self.allowed)
        {
            let refused = Refused::Address { host: host.to_owned(), address, reason };
            return Answer::failed(started, refused.to_string(), true);
        }
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in [
            ("webhook-id", webhook_id),
            ("webhook-timestamp", &timestamp.to_string()),
            ("webhook-signature", signature),
        ] {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.insert(name, value);
            }
        }
        let response = match self.http.post(url).headers(headers).body(body).send().await {
            Ok(response) => response,
            Err(e) => {
                let refused = is_refusal(&e);
                return Answer::failed(started, describe(&e), refused);
            }
        };
        let status = response.status().as_u16();
        let retry_after = matches!(status, 429 | 503)
            .then(|| response.headers().get(RETRY_AFTER)?.to_str().ok()?.trim().parse::<u64>().ok())
            .flatten()
            .map(Duration::from_secs);
        let body = read_some(response).await;
        let error = match status {
            200..=299 => None,
            300..=399 => Some(format!("redirect ({status}); redirects are not followed")),
            _ => Some(format!("HTTP {status}")),
        };
        Answer {
            status: Some(status),
            duration: started.elapsed(),
            error,
            body: Some(body),
            retry_after,
            refused: false,
        }
    }
}

/// At most [`RESPONSE_BODY_BYTES`] of the answer: the rest is never read.
async fn read_some(mut response: reqwest::Response) -> String {
    let mut kept = Vec::new();
    while kept.len() < RESPONSE_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = RESPONSE_BODY_BYTES - kept.len();
                kept.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            _ => break,
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

const REFUSED_MARK: &str = "destination refused";

fn is_refusal(e: &reqwest::Error) -> bool {
    describe(e).contains(REFUSED_MARK)
}

/// What a failed request through this client says: its error and causes, and whether
/// the destination was refused (by the resolver).
pub fn failure(e: &reqwest::Error) -> (String, bool) {
    (describe(e), is_refusal(e))
}

/// The error and its causes, which is where the resolver's refusal is.
fn describe(e: &reqwest::Error) -> String {
    let mut text = if e.is_timeout() { "timed out after 15 s".to_owned() } else { e.to_string() };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Resolves names as the system does, then drops every refused address; a name left with
/// none fails to resolve, so no connection is made to it.
#[derive(Debug, Clone)]
struct CheckedResolver {
    allowed: Arc<Vec<Cidr>>,
}

impl Resolve for CheckedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allowed = self.allowed.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let kept = allowed_addresses(&found, &allowed);
            if kept.is_empty() {
                let reasons: Vec<String> = found
                    .iter()
                    .filter_map(|a| {
                        Some(format!("{} ({})", a.ip(), refused_address(a.ip(), &allowed)?))
                    })
                    .collect();
                return Err(
                    format!("{REFUSED_MARK}: {host} resolves to {}", reasons.join(", ")).into()
                );
            }
            let addrs: Addrs = Box::new(kept.into_iter());
            Ok(addrs)
        })
    }
}

/// The addresses a connection may use.
fn allowed_addresses(found: &[SocketAddr], allowed: &[Cidr]) -> Vec<SocketAddr> {
    found.iter().copied().filter(|a| refused_address(a.ip(), allowed).is_none()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(text: &str) -> SocketAddr {
        text.parse().expect("literal socket address")
    }

    /// Literal addresses: what the resolver keeps from an answer (no lookup, no connection).
    #[test]
    fn the_resolver_keeps_only_allowed_answers() {
        let answer = [addr("93.184.216.34:0"), addr("10.0.0.5:0"), addr("[fd00:ec2::254]:0")];
        assert_eq!(allowed_addresses(&answer, &[]), vec![addr("93.184.216.34:0")]);
        let rebound = [addr("169.254.169.254:0")];
        assert!(allowed_addresses(&rebound, &[]).is_empty());
        let local = Cidr::parse_list("127.0.0.1/32").expect("range");
        let both = [addr("127.0.0.1:0"), addr("127.0.0.2:0")];
        assert_eq!(allowed_addresses(&both, &local), vec![addr("127.0.0.1:0")]);
    }

    #[test]
    fn urls_are_http_with_a_host_and_no_credentials() {
        assert!(parse_url("https://hooks.example.com/a?b=c").is_ok());
        assert!(parse_url("http://127.0.0.1:3001/_sandbox/receiver/x").is_ok());
        for bad in [
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "not a url",
            "file:///etc/passwd",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
        assert!(parse_url(&format!("https://example.com/{}", "a".repeat(2100))).is_err());
    }

    /// A refused literal address is refused before any connection is attempted.
    #[tokio::test]
    async fn a_refused_literal_address_is_not_connected_to() {
        let client =
            WebhookClient::new(Cidr::parse_list("127.0.0.1/32").expect("range")).expect("client");
        let answer = client.post("http://127.0.0.2:9/hook", "msg_1", 1, "v1,x", "{}".into()).await;
        assert!(answer.refused && answer.status.is_none(), "{answer:?}");
        assert!(answer.duration < Duration::from_secs(1));
        let url = parse_url("http://[::1]:9/").expect("url");
        assert!(matches!(
            client.check(&url).await,
            Err(Refused::Address { reason: "loopback", .. })
        ));
        let url = parse_url("http://127.0.0.1:9/").expect("url");
        assert_eq!(client.check(&url).await, Ok(()));
        // The same for a tenant's gateway: cloud metadata and other tenants' networks are
        // refused before a connection.
        for refused in
            ["http://169.254.169.254/latest", "http://10.0.0.5/messages", "http://127.0.0.2:9/"]
        {
            let request = client.request(reqwest::Method::GET, refused);
            assert!(matches!(request, Err(Refused::Address { .. })), "{refused}");
        }
        assert!(client.request(reqwest::Method::POST, "http://127.0.0.1:9/messages").is_ok());
    }
}
