use adapters::channel::Channels;
use adapters::graph::GraphConfig;
use adapters::store::channels::ChannelRecord;
use adapters::store::tenants::{AuditEntry, TenantStore};
use domain::Violation;
use domain::channel::secret_hint;
use domain::pacing::MAX_MESSAGES_PER_SECOND;
use edge::http::{ApiError, empty, into_response, json};
use edge::principal::{Authenticator, Principal};
use edge::request::{DEFAULT_BODY_LIMIT, json_body, route_key};
use edge::routes::ChannelRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tracing::{instrument, warn};

pub struct Deps {
    channels: Channels,
    tenants: TenantStore,
    authenticator: Authenticator,
    http: reqwest::Client,
    graph: GraphConfig,
}

impl Deps {
    pub fn new(
        channels: Channels,
        tenants: TenantStore,
        authenticator: Authenticator,
        graph: GraphConfig,
    ) -> Result<Self, reqwest::Error> {
        let http = adapters::graph::http_client(Duration::from_secs(5))?;
        Ok(Self { channels, tenants, authenticator, http, graph })
    }
}

/// Per provider: its settings (shown as they are) and its secrets (sealed, shown masked).
fn fields(provider: &str) -> Option<(&'static [&'static str], &'static [&'static str])> {
    match provider {
        "cloud" => {
            Some((&["phoneNumberId", "wabaId"], &["accessToken", "appSecret", "verifyToken"]))
        }
        "gateway" => Some((&["apiUrl"], &["apiKey", "webhookSecret"])),
        "web" | "sandbox" => Some((&[], &[])),
        _ => None,
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<ChannelRoute>(request).await?;
    let principal = admitted.principal()?;
    match admitted.route {
        ChannelRoute::Put => put(deps, request, principal).await,
        ChannelRoute::Get => {
            let channel =
                deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &view(&channel)))
        }
        ChannelRoute::Delete => {
            if !deps.channels.store().delete(principal.scope()).await? {
                return Err(ApiError::NotFound);
            }
            deps.channels.forget(principal.tenant_id());
            audit(deps, principal, "channel.deleted", json!({})).await;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ChannelRoute::HealthCheck => health_check(deps, principal).await,
    }
}

fn view(channel: &ChannelRecord) -> Value {
    let mut out = Map::new();
    out.insert("provider".into(), json!(channel.provider));
    for (k, v) in &channel.settings {
        let value = match v.parse::<u64>() {
            Ok(n) if k == "messagesPerSecond" => json!(n),
            _ => json!(v),
        };
        out.insert(k.clone(), value);
    }
    if let Some(endpoint) = channel.settings.get("endpointId") {
        out.insert(
            "webhookPath".into(),
            json!(format!("/api/whatsapp/webhook/{{tenantId}}/{endpoint}")),
        );
    }
    for (k, last4) in &channel.secret_hints {
        // NOTE: an empty hint (a short secret) still shows that the secret is set.
        out.insert(k.clone(), json!(format!("••••{last4}")));
    }
    out.insert("healthStatus".into(), json!(channel.health_status));
    out.insert("lastHealthCheck".into(), json!(channel.last_health_check));
    out.insert("updatedAt".into(), json!(channel.updated_at));
    Value::Object(out)
}

async fn put(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
    let provider = body.get("provider").and_then(Value::as_str).unwrap_or_default().to_owned();
    let Some((setting_names, secret_names)) = fields(&provider) else {
        return Err(ApiError::Validation(vec![Violation::new(
            "provider",
            "must be cloud, gateway, web or sandbox",
        )]));
    };
    let mut errors = Vec::new();
    let mut take = |name: &str| match body.get(name) {
        Some(Value::String(v)) if !v.trim().is_empty() && v.len() <= 4096 => {
            Some(v.trim().to_owned())
        }
        _ => {
            errors.push(Violation::new(name, "is required (a non-empty string)"));
            None
        }
    };
    let settings: BTreeMap<String, String> =
        setting_names.iter().filter_map(|n| take(n).map(|v| ((*n).to_owned(), v))).collect();
    let secrets: BTreeMap<String, String> =
        secret_names.iter().filter_map(|n| take(n).map(|v| ((*n).to_owned(), v))).collect();
    // Meta's throughput for the number: 80 by default, up to 1,000 once Meta raised it.
    let throughput = match body.get("messagesPerSecond") {
        None | Some(Value::Null) => None,
        Some(v) if provider == "cloud" || provider == "sandbox" => {
            match v.as_u64().filter(|n| (1..=u64::from(MAX_MESSAGES_PER_SECOND)).contains(n)) {
                Some(n) => Some(n),
                None => {
                    errors.push(Violation::new(
                        "messagesPerSecond",
                        "must be a whole number from 1 to 1000",
                    ));
                    None
                }
            }
        }
        Some(_) => None,
    };
    for known in body.keys() {
        if (known == "messagesPerSecond") && (provider == "cloud" || provider == "sandbox") {
            continue;
        }
        if known != "provider"
            && !setting_names.contains(&known.as_str())
            && !secret_names.contains(&known.as_str())
        {
            errors.push(Violation::new(
                known.as_str(),
                format!("is not a field of a {provider} channel"),
            ));
        }
    }
    if let Some(id) = settings.get("phoneNumberId")
        && !id.bytes().all(|b| b.is_ascii_digit())
    {
        errors.push(Violation::new("phoneNumberId", "must be Meta's numeric phone number id"));
    }
    if let Some(url) = settings.get("apiUrl")
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        errors.push(Violation::new("apiUrl", "must be an http(s) URL"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let mut settings = settings;
    if let Some(n) = throughput {
        settings.insert("messagesPerSecond".into(), n.to_string());
    }
    if provider == "gateway" {
        // Where the gateway sends its events: /api/whatsapp/webhook/{tenantId}/{endpointId}.
        let id = domain::secrets::random_token(12).map_err(ApiError::internal)?;
        settings.insert("endpointId".into(), format!("gw_{}", id.replace(['-', '_'], "x")));
    }

    let hints = secrets.iter().map(|(k, v)| (k.clone(), secret_hint(v))).collect();
    let sealed = if secrets.is_empty() {
        None
    } else {
        let plain = serde_json::to_vec(&secrets).map_err(ApiError::internal)?;
        let sealed = deps.channels.envelopes().seal(principal.tenant_id(), &plain).await.map_err(
            |e| match e {
                adapters::aws::envelope::EnvelopeError::Kms(k) => ApiError::unavailable("kms", k),
                other => ApiError::internal(other.to_string()),
            },
        )?;
        Some(sealed)
    };
    let record = ChannelRecord {
        provider: provider.clone(),
        settings,
        sealed_secrets: sealed,
        secret_hints: hints,
        health_status: "unknown".into(),
        last_health_check: None,
        updated_at: String::new(),
    };
    deps.channels.store().put(principal.scope(), &record).await.map_err(|e| match e {
        adapters::store::StoreError::Conflict => ApiError::Conflict {
            code: "phone_number_in_use",
            detail: "This phone number id is connected to another tenant.".into(),
        },
        other => other.into(),
    })?;
    deps.channels.forget(principal.tenant_id());
    audit(deps, principal, "channel.replaced", json!({ "provider": provider })).await;
    let stored = deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &view(&stored)))
}

/// Asks the provider now: the Graph API (or sandbox) for the phone number, the gateway's
/// health endpoint. The web provider's sessions live in the session host: unknown here.
async fn health_check(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    let channel = deps.channels.open(principal.tenant_id()).await?.ok_or(ApiError::NotFound)?;
    // The Graph API (or the sandbox standing in for it) reads the phone number; a gateway
    // answers its health endpoint.
    let request = match channel.provider.as_str() {
        "cloud" | "sandbox" => deps
            .graph
            .target(principal.tenant_id(), &channel)
            .ok()
            .map(|target| target.authorise(deps.http.get(target.phone_number_url()))),
        "gateway" => channel.settings.get("apiUrl").map(|url| {
            deps.http
                .get(format!("{}/health", url.trim_end_matches('/')))
                .header("x-api-key", channel.secret("apiKey").unwrap_or_default())
        }),
        _ => None,
    };
    let healthy = match request {
        Some(request) => Some(match request.send().await {
            Ok(response) => response.status().is_success(),
            Err(e) => {
                warn!(provider = channel.provider, error = %e.without_url(), "channel health check failed");
                false
            }
        }),
        None => None,
    };
    deps.channels.store().record_health(principal.scope(), healthy).await?;
    let stored = deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &view(&stored)))
}

async fn audit(deps: &Deps, principal: &Principal, action: &'static str, detail: Value) {
    let entry =
        AuditEntry { action, actor_id: Some(principal.actor_id()), target_id: None, detail };
    if let Err(e) = deps.tenants.audit(principal.tenant_id(), entry).await {
        warn!(error = %e, action, "audit entry not written");
    }
}
