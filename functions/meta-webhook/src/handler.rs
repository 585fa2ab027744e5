use adapters::channel::Channels;
use adapters::queues::{Queue, WebhookPointer};
use adapters::store::TenantScope;
use adapters::store::messages::MessageStore;
use contract::views::Received;
use domain::channel::{ChannelConfig, SecretName};
use domain::ids::TenantId;
use domain::meta::signature_valid;
use edge::http::{ApiError, into_response, json};
use edge::request::{path_param, query_param, route_key};
use edge::routes::{MetaWebhookRoute, of_request};
use lambda_http::http::StatusCode;
use lambda_http::http::header::{CONTENT_TYPE, HeaderValue};
use lambda_http::{Body, Request, Response};
use subtle::ConstantTimeEq;
use tracing::{info, instrument, warn};

/// API Gateway's request limit; Meta's own payloads stay under 3 MB.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The platform's own Meta app (the `/api/whatsapp/webhook` route without a tenant).
#[derive(Clone, Default)]
pub struct PlatformApp {
    pub app_secret: Option<secrecy::SecretString>,
    pub verify_token: Option<secrecy::SecretString>,
}

impl PlatformApp {
    /// `PLATFORM_META_APP_SECRET` and `PLATFORM_META_VERIFY_TOKEN`; unset, the route
    /// answers 404.
    pub fn from_env() -> Self {
        let var = |n| {
            std::env::var(n)
                .ok()
                .filter(|v: &String| !v.is_empty())
                .map(secrecy::SecretString::from)
        };
        Self {
            app_secret: var("PLATFORM_META_APP_SECRET"),
            verify_token: var("PLATFORM_META_VERIFY_TOKEN"),
        }
    }

    /// In AWS: the Secrets Manager secret named by `PLATFORM_META_SECRET_ID`, a JSON object
    /// `{"appSecret","verifyToken"}` (the template creates it empty for the operator to
    /// fill). Otherwise [`PlatformApp::from_env`].
    pub async fn load(
        clients: &adapters::aws::AwsClients,
    ) -> Result<Self, adapters::config::ConfigError> {
        match std::env::var("PLATFORM_META_SECRET_ID") {
            Ok(secret_id) => Self::load_from_secret(clients, &secret_id).await,
            Err(_) => Ok(Self::from_env()),
        }
    }

    pub async fn load_from_secret(
        clients: &adapters::aws::AwsClients,
        secret_id: &str,
    ) -> Result<Self, adapters::config::ConfigError> {
        let value =
            adapters::aws::secrets::read_secret(clients, secret_id, "PLATFORM_META_SECRET_ID")
                .await?;
        let parsed: serde_json::Value =
            serde_json::from_str(&value).map_err(|_| adapters::config::ConfigError::Invalid {
                name: "PLATFORM_META_SECRET_ID".into(),
                reason: "the secret is not a JSON object".into(),
            })?;
        let field = |name: &str| {
            parsed
                .get(name)
                .and_then(serde_json::Value::as_str)
                .filter(|v| !v.is_empty())
                .map(|v| secrecy::SecretString::from(v.to_owned()))
        };
        Ok(Self { app_secret: field("appSecret"), verify_token: field("verifyToken") })
    }
}

/// Raw platform webhooks, and the changes no tenant owns, are kept under this pseudo
/// tenant: stored and visible to operators, never dropped.
pub use adapters::store::PLATFORM_PARTITION;

pub struct Deps {
    platform: PlatformApp,
    channels: Channels,
    messages: MessageStore,
    inbound: Queue<WebhookPointer>,
    inbound_dlq: Queue<WebhookPointer>,
}

impl Deps {
    pub fn new(
        channels: Channels,
        messages: MessageStore,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        dlq_url: String,
    ) -> Self {
        Self {
            platform: PlatformApp::default(),
            channels,
            messages,
            inbound: Queue::new(sqs.clone(), queue_url),
            inbound_dlq: Queue::new(sqs, dlq_url),
        }
    }

    pub fn with_platform_app(mut self, platform: PlatformApp) -> Self {
        self.platform = platform;
        self
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    // Meta's webhooks may come through the function's URL rather than API Gateway (one
    // API Gateway request less per webhook; see BENCHMARKS.md, "Cost"): routed the same.
    let request = edge::routes::through_function_url(request, edge::routes::META_WEBHOOK);
    // Every route here is public: a webhook's signature, checked with its channel's
    // secret, is what authenticates it.
    let result = match of_request::<MetaWebhookRoute>(&request).map(|(route, _)| route) {
        Some(MetaWebhookRoute::Verify) => verify(deps, &request).await,
        Some(MetaWebhookRoute::Receive) => receive(deps, &request).await,
        Some(MetaWebhookRoute::ReceiveGateway) => receive_gateway(deps, &request).await,
        Some(MetaWebhookRoute::VerifyPlatform) => verify_platform(deps, &request),
        Some(MetaWebhookRoute::ReceivePlatform) => receive_platform(deps, &request).await,
        None => Err(ApiError::NotFound),
    };
    Ok(into_response(result))
}

fn tenant(request: &Request) -> Result<TenantId, ApiError> {
    path_param(request, "tenantId").and_then(|t| TenantId::parse(&t)).ok_or(ApiError::NotFound)
}

/// Meta's handshake: `hub.mode=subscribe` and the tenant's verify token → the challenge,
/// verbatim, as text; anything else → 403.
async fn verify(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(request)?;
    let channel = deps.channels.open(&tenant).await?.ok_or(ApiError::NotFound)?;
    let expected = channel.secret(SecretName::VerifyToken).ok_or(ApiError::NotFound)?;
    handshake(request, expected)
}

fn verify_platform(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    use secrecy::ExposeSecret;
    let expected = deps.platform.verify_token.as_ref().ok_or(ApiError::NotFound)?;
    handshake(request, expected.expose_secret())
}

fn handshake(request: &Request, expected: &str) -> Result<Response<Body>, ApiError> {
    let mode = query_param(request, "hub.mode");
    let token = query_param(request, "hub.verify_token").unwrap_or_default();
    let challenge = query_param(request, "hub.challenge");
    let token_ok: bool = token.as_bytes().ct_eq(expected.as_bytes()).into();
    match (mode.as_deref(), challenge) {
        (Some("subscribe"), Some(challenge)) if token_ok => {
            let mut response = Response::new(Body::from(challenge));
            response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            Ok(response)
        }
        _ => Err(ApiError::Forbidden),
    }
}

/// The body exactly as received; over API Gateway's limit, 413.
fn raw_body(request: &Request) -> Result<&[u8], ApiError> {
    let body: &[u8] = match request.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if body.len() > MAX_BODY_BYTES {
        return Err(ApiError::PayloadTooLarge { limit: MAX_BODY_BYTES });
    }
    Ok(body)
}

/// Verifies the signature over the bytes as received, stores them, and only then queues
/// a pointer. A body that is signed but not JSON is stored and dead-lettered with its
/// reason, so that nothing Meta sent is ever dropped.
async fn receive(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(request)?;
    let body = raw_body(request)?;
    let channel = deps.channels.open(&tenant).await?;
    let header = request.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    let verified = channel.filter(|c| {
        c.secret(SecretName::AppSecret).is_some_and(|s| signature_valid(s.as_bytes(), body, header))
    });
    let Some(channel) = verified else {
        warn!(tenant_id = %tenant, "webhook signature missing or invalid, or no channel");
        return Err(ApiError::Unauthorized);
    };
    store_and_queue(deps, &channel.scope, body, "meta").await?;
    Ok(json(StatusCode::OK, &Received { received: true }))
}

/// Persist first, queue after; a body that is not JSON goes to the DLQ with its reason.
async fn store_and_queue(
    deps: &Deps,
    scope: &TenantScope,
    body: &[u8],
    source: &str,
) -> Result<(), ApiError> {
    let tenant = scope.tenant_id();
    let event_id = deps.messages.raw_events().put(scope, body, source).await?;
    let pointer = WebhookPointer { tenant_id: tenant.clone(), event_id: event_id.clone() };
    if serde_json::from_slice::<serde_json::Value>(body).is_err() {
        deps.inbound_dlq.send_with_reason(&pointer, "malformed_json").await?;
        deps.messages.raw_events().mark(scope, &event_id, "dead_lettered:malformed_json").await?;
        warn!(tenant_id = %tenant, event_id, "signed webhook is not JSON; stored and dead-lettered");
        return Ok(());
    }
    deps.inbound.send(&pointer).await?;
    info!(tenant_id = %tenant, event_id, bytes = body.len(), "webhook stored and queued");
    Ok(())
}

/// Events from a tenant's own WhatsApp HTTP gateway: Cloud API-shaped payloads, signed
/// like Meta's (`X-Hub-Signature-256`) with the channel's `webhookSecret`, sent to the
/// endpoint id the channel was given.
async fn receive_gateway(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let tenant = tenant(request)?;
    let endpoint = path_param(request, "endpointId").unwrap_or_default();
    let body = raw_body(request)?;
    let channel = deps.channels.open(&tenant).await?;
    let header = request.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    let verified = channel.filter(|c| {
        matches!(&c.config, ChannelConfig::Gateway { endpoint_id, .. }
            if bool::from(endpoint_id.as_bytes().ct_eq(endpoint.as_bytes())))
            && c.secret(SecretName::WebhookSecret)
                .is_some_and(|s| signature_valid(s.as_bytes(), body, header))
    });
    let Some(channel) = verified else {
        warn!(tenant_id = %tenant, "gateway webhook not signed by this tenant's gateway endpoint");
        return Err(ApiError::Unauthorized);
    };
    store_and_queue(deps, &channel.scope, body, "gateway").await?;
    Ok(json(StatusCode::OK, &Received { received: true }))
}

/// The platform app's webhook: one payload may carry several tenants' numbers. Each
/// tenant gets the changes of its phone number id, stored and queued as its own event;
/// the original body is kept whole under the platform partition, and changes no tenant
/// owns stay there too (outcome `unrouted`).
async fn receive_platform(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    use secrecy::ExposeSecret;
    let body = raw_body(request)?;
    let header = request.headers().get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if header.is_none() {
        // Unsigned is 401 whether or not this deployment has a platform app.
        warn!("platform webhook without a signature");
        return Err(ApiError::Unauthorized);
    }
    let secret = deps.platform.app_secret.as_ref().ok_or(ApiError::NotFound)?;
    if !signature_valid(secret.expose_secret().as_bytes(), body, header) {
        warn!("platform webhook signature missing or invalid");
        return Err(ApiError::Unauthorized);
    }
    let platform = TenantScope::platform_webhooks();
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(body) else {
        store_and_queue(deps, &platform, body, "meta-platform").await?;
        return Ok(json(StatusCode::OK, &Received { received: true }));
    };
    let original = deps.messages.raw_events().put(&platform, body, "meta-platform").await?;

    let mut by_tenant: std::collections::BTreeMap<TenantScope, Vec<serde_json::Value>> =
        Default::default();
    let mut unrouted = 0;
    for entry in payload["entry"].as_array().into_iter().flatten() {
        for change in entry["changes"].as_array().into_iter().flatten() {
            let phone = change
                .pointer("/value/metadata/phone_number_id")
                .and_then(serde_json::Value::as_str);
            let tenant = match phone {
                Some(phone) => deps.channels.store().tenant_of_phone(phone).await?,
                None => None,
            };
            match tenant {
                Some(tenant) => by_tenant.entry(tenant).or_default().push(serde_json::json!({
                    "id": entry["id"], "time": entry["time"], "changes": [change]
                })),
                None => unrouted += 1,
            }
        }
    }
    for (tenant, entries) in by_tenant {
        let part = serde_json::json!({ "object": payload["object"], "entry": entries }).to_string();
        store_and_queue(deps, &tenant, part.as_bytes(), "meta-platform").await?;
    }
    let outcome = if unrouted == 0 {
        "routed".to_owned()
    } else {
        format!("routed; {unrouted} changes unrouted")
    };
    deps.messages.raw_events().mark(&platform, &original, &outcome).await?;
    Ok(json(StatusCode::OK, &Received { received: true }))
}
