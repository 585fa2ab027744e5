use adapters::channel::Channels;
use adapters::graph::GraphConfig;
use adapters::sessions::Sessions;
use adapters::store::channels::ChannelRecord;
use adapters::store::tenants::TenantStore;
use domain::Violation;
use domain::channel::{
    API_URL, ChannelConfig, MESSAGES_PER_SECOND, PHONE_NUMBER_ID, Provider, SecretName, WABA_ID,
    secret_hint,
};
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
    pub(crate) channels: Channels,
    pub(crate) tenants: TenantStore,
    pub(crate) sessions: Sessions,
    authenticator: Authenticator,
    http: reqwest::Client,
    graph: GraphConfig,
}

impl Deps {
    pub fn new(
        channels: Channels,
        tenants: TenantStore,
        sessions: Sessions,
        authenticator: Authenticator,
        graph: GraphConfig,
    ) -> Result<Self, reqwest::Error> {
        let http = adapters::graph::http_client(Duration::from_secs(5))?;
        Ok(Self { channels, tenants, sessions, authenticator, http, graph })
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
            principal.audit(&deps.tenants, "channel.deleted", None, json!({})).await;
            Ok(empty(StatusCode::NO_CONTENT))
        }
        ChannelRoute::HealthCheck => health_check(deps, principal).await,
        ChannelRoute::Connect | ChannelRoute::ConnectForUser => {
            crate::sessions::connect(deps, request, principal).await
        }
        ChannelRoute::Session | ChannelRoute::StatusForUser => {
            crate::sessions::status(deps, principal).await
        }
        ChannelRoute::Logout => crate::sessions::logout(deps, principal).await,
    }
}

fn view(channel: &ChannelRecord) -> Value {
    let mut out = Map::new();
    out.insert("provider".into(), json!(channel.config.provider().as_str()));
    for (k, v) in channel.config.settings() {
        out.insert(k.to_owned(), json!(v));
    }
    if let Some(rate) = channel.config.messages_per_second() {
        out.insert(MESSAGES_PER_SECOND.into(), json!(rate));
    }
    if let ChannelConfig::Gateway { endpoint_id, .. } = &channel.config {
        out.insert(
            "webhookPath".into(),
            json!(format!("/api/whatsapp/webhook/{{tenantId}}/{endpoint_id}")),
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
    let provider = body.get("provider").and_then(Value::as_str).and_then(Provider::parse);
    let Some(provider) = provider else {
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
    let settings: BTreeMap<&str, String> =
        provider.setting_names().iter().filter_map(|n| take(n).map(|v| (*n, v))).collect();
    let secrets: BTreeMap<&str, String> = provider
        .secret_names()
        .iter()
        .filter_map(|n| take(n.as_str()).map(|v| (n.as_str(), v)))
        .collect();
    // Meta's throughput for the number: 80 by default, up to 1,000 once Meta raised it.
    let throughput = match body.get(MESSAGES_PER_SECOND) {
        None | Some(Value::Null) => None,
        Some(v) if provider.paced() => {
            match v.as_u64().filter(|n| (1..=u64::from(MAX_MESSAGES_PER_SECOND)).contains(n)) {
                Some(n) => u32::try_from(n).ok(),
                None => {
                    errors.push(Violation::new(
                        MESSAGES_PER_SECOND,
                        "must be a whole number from 1 to 1000",
                    ));
                    None
                }
            }
        }
        Some(_) => None,
    };
    for known in body.keys() {
        if known == MESSAGES_PER_SECOND && provider.paced() {
            continue;
        }
        if known != "provider"
            && !provider.setting_names().contains(&known.as_str())
            && !provider.secret_names().iter().any(|n| n.as_str() == known)
        {
            errors.push(Violation::new(
                known.as_str(),
                format!("is not a field of a {} channel", provider.as_str()),
            ));
        }
    }
    if let Some(id) = settings.get(PHONE_NUMBER_ID)
        && !id.bytes().all(|b| b.is_ascii_digit())
    {
        errors.push(Violation::new(PHONE_NUMBER_ID, "must be Meta's numeric phone number id"));
    }
    if let Some(url) = settings.get(API_URL)
        && !(url.starts_with("https://") || url.starts_with("http://"))
    {
        errors.push(Violation::new(API_URL, "must be an http(s) URL"));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let setting = |name: &str| settings.get(name).cloned().unwrap_or_default();
    let config = match provider {
        Provider::Cloud => ChannelConfig::Cloud {
            phone_number_id: setting(PHONE_NUMBER_ID),
            waba_id: setting(WABA_ID),
            messages_per_second: throughput,
        },
        Provider::Gateway => {
            // Where the gateway sends its events: /api/whatsapp/webhook/{tenantId}/{endpointId}.
            let id = domain::secrets::random_token(12).map_err(ApiError::internal)?;
            ChannelConfig::Gateway {
                api_url: setting(API_URL),
                endpoint_id: format!("gw_{}", id.replace(['-', '_'], "x")),
            }
        }
        Provider::Web => ChannelConfig::Web,
        Provider::Sandbox => ChannelConfig::Sandbox { messages_per_second: throughput },
    };

    let hints = secrets.iter().map(|(k, v)| ((*k).to_owned(), secret_hint(v))).collect();
    let sealed = if secrets.is_empty() {
        None
    } else {
        let plain = serde_json::to_vec(&secrets).map_err(ApiError::internal)?;
        let sealed = deps.channels.envelopes().seal(principal.tenant_id(), &plain).await?;
        Some(sealed)
    };
    let record = ChannelRecord {
        config,
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
    principal
        .audit(&deps.tenants, "channel.replaced", None, json!({ "provider": provider.as_str() }))
        .await;
    let stored = deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &view(&stored)))
}

/// Asks the provider now: the Graph API (or sandbox) for the phone number, the gateway's
/// health endpoint. The web provider's sessions live in the session host: unknown here.
async fn health_check(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    let channel = deps.channels.open(principal.tenant_id()).await?.ok_or(ApiError::NotFound)?;
    // The Graph API (or the sandbox standing in for it) reads the phone number; a gateway
    // answers its health endpoint.
    let request = match &channel.config {
        ChannelConfig::Cloud { .. } | ChannelConfig::Sandbox { .. } => deps
            .graph
            .target(principal.tenant_id(), &channel)
            .ok()
            .map(|target| target.authorise(deps.http.get(target.phone_number_url()))),
        ChannelConfig::Gateway { api_url, .. } => Some(
            deps.http
                .get(format!("{}/health", api_url.trim_end_matches('/')))
                .header("x-api-key", channel.secret(SecretName::ApiKey).unwrap_or_default()),
        ),
        ChannelConfig::Web => None,
    };
    let healthy = match request {
        Some(request) => Some(match request.send().await {
            Ok(response) => response.status().is_success(),
            Err(e) => {
                warn!(provider = channel.config.provider().as_str(), error = %e.without_url(), "channel health check failed");
                false
            }
        }),
        None => None,
    };
    deps.channels.store().record_health(principal.scope(), healthy).await?;
    let stored = deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &view(&stored)))
}
