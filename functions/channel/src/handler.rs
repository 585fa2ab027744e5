use adapters::channel::Channels;
use adapters::graph::{GraphConfig, HealthChecker};
use adapters::sessions::Sessions;
use adapters::store::channels::ChannelRecord;
use adapters::store::tenants::TenantStore;
use contract::views::ChannelView;
use domain::Violation;
use domain::channel::{
    API_KEY_HEADER, API_URL, ChannelConfig, DEFAULT_HEALTH_CHECK_INTERVAL, HEALTH_CHECK_INTERVAL,
    HEALTH_CHECK_INTERVALS, KeyHeader, MESSAGES_PER_SECOND, PHONE_NUMBER_ID, Provider, WABA_ID,
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
use tracing::instrument;

pub struct Deps {
    pub(crate) channels: Channels,
    pub(crate) tenants: TenantStore,
    pub(crate) sessions: Sessions,
    /// The session pools, as configured at start-up.
    pub(crate) pools: domain::sessions::PoolPolicies,
    authenticator: Authenticator,
    pub(crate) health: HealthChecker,
}

impl Deps {
    pub fn new(
        channels: Channels,
        tenants: TenantStore,
        (sessions, pools): (Sessions, domain::sessions::PoolPolicies),
        authenticator: Authenticator,
        graph: GraphConfig,
    ) -> Result<Self, reqwest::Error> {
        let health = HealthChecker::new(graph)?;
        Ok(Self { channels, tenants, sessions, pools, authenticator, health })
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

fn view(channel: &ChannelRecord) -> ChannelView {
    let mut out = BTreeMap::new();
    for (k, v) in channel.config.settings() {
        out.insert(k.to_owned(), json!(v));
    }
    if let Some(rate) = channel.config.messages_per_second() {
        out.insert(MESSAGES_PER_SECOND.into(), json!(rate));
    }
    if let ChannelConfig::Gateway { health_check_interval, .. } = &channel.config {
        out.insert(HEALTH_CHECK_INTERVAL.into(), json!(health_check_interval));
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
    ChannelView {
        provider: channel.config.provider().as_str().to_owned(),
        health_status: channel.health_status.clone(),
        last_health_check: channel.last_health_check.clone(),
        updated_at: channel.updated_at.clone(),
        settings: out,
    }
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
    // A gateway's optional settings: the header its key goes in, how often it is checked.
    let key_header = match body.get(API_KEY_HEADER) {
        None | Some(Value::Null) => KeyHeader::Bearer,
        Some(Value::String(name)) if KeyHeader::parse(name).is_some() => {
            KeyHeader::parse(name).unwrap_or(KeyHeader::Bearer)
        }
        Some(_) => {
            errors
                .push(Violation::new(API_KEY_HEADER, "must be a header name (letters, digits, -)"));
            KeyHeader::Bearer
        }
    };
    let interval = match body.get(HEALTH_CHECK_INTERVAL) {
        None | Some(Value::Null) => DEFAULT_HEALTH_CHECK_INTERVAL,
        Some(v) => match v.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) if HEALTH_CHECK_INTERVALS.contains(&n) => n,
            _ => {
                errors.push(Violation::new(
                    HEALTH_CHECK_INTERVAL,
                    "must be a whole number of seconds from 10 to 86400",
                ));
                DEFAULT_HEALTH_CHECK_INTERVAL
            }
        },
    };
    for known in body.keys() {
        if (known == MESSAGES_PER_SECOND && provider.paced())
            || provider.optional_setting_names().contains(&known.as_str())
        {
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
        && let Err(e) = adapters::webhook_client::parse_url(url)
    {
        errors.push(Violation::new(API_URL, e.to_string()));
    }
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // A gateway may not be a private, loopback or cloud metadata address (unless the
    // deployment exempts it): checked now, and again at every connection.
    if let Some(url) = settings.get(API_URL)
        && let Err(refused) = deps.health.destination_allowed(url).await
    {
        return Err(ApiError::Unprocessable {
            code: "destination_not_allowed",
            detail: format!("apiUrl: {refused}"),
        });
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
                api_url: setting(API_URL).trim_end_matches('/').to_owned(),
                endpoint_id: format!("gw_{}", id.replace(['-', '_'], "x")),
                key_header,
                health_check_interval: interval,
                messages_per_second: throughput,
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
    let healthy = deps.health.check(principal.tenant_id(), &channel).await;
    deps.channels.store().record_health(principal.scope(), healthy).await?;
    let stored = deps.channels.store().get(principal.scope()).await?.ok_or(ApiError::NotFound)?;
    Ok(json(StatusCode::OK, &view(&stored)))
}
