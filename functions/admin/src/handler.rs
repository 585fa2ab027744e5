use adapters::queues::{Queue, WebhookPointer};
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use aws_smithy_types::DateTime;
use aws_smithy_types::date_time::Format;
use contract::requests::ReplayRequest;
use contract::views::Queued;
use domain::Violation;
use domain::ids::TenantId;
use edge::http::{ApiError, into_response, json};
use edge::principal::Authenticator;
use edge::request::{DEFAULT_BODY_LIMIT, json_body, path_param, route_key};
use edge::routes::AdminRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use tracing::{info, instrument};

pub struct Deps {
    messages: MessageStore,
    tenants: TenantStore,
    pub(crate) pools: Option<(adapters::store::pool::PoolStore, domain::sessions::PoolPolicies)>,
    inbound: Queue<WebhookPointer>,
    authenticator: Authenticator,
}

impl Deps {
    pub fn new(
        messages: MessageStore,
        tenants: TenantStore,
        sqs: aws_sdk_sqs::Client,
        inbound_queue_url: String,
        authenticator: Authenticator,
    ) -> Self {
        Self {
            messages,
            tenants,
            pools: None,
            inbound: Queue::new(sqs, inbound_queue_url),
            authenticator,
        }
    }

    /// With the session pools (`GET /api/admin/pools`).
    pub fn with_pools(
        mut self,
        pool: adapters::store::pool::PoolStore,
        policies: domain::sessions::PoolPolicies,
    ) -> Self {
        self.pools = Some((pool, policies));
        self
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<AdminRoute>(request).await?;
    let operator = admitted.principal()?.actor_id();
    match admitted.route {
        AdminRoute::ReplayWebhookEvents => replay(deps, request, &operator).await,
        AdminRoute::CreatePlatform => {
            crate::platforms::create(&deps.tenants, request, &operator).await
        }
        AdminRoute::ListPlatforms => crate::platforms::list(&deps.tenants, request).await,
        AdminRoute::GetPlatform => crate::platforms::get(&deps.tenants, request).await,
        AdminRoute::RotatePlatformKey => {
            crate::platforms::rotate_key(&deps.tenants, request, &operator).await
        }
        AdminRoute::Pools => crate::pools::list(deps).await,
    }
}

/// Queues every stored raw webhook of the tenant received since `since` again. The
/// processor is idempotent, so replaying what was already applied changes nothing; what
/// failed (or was dead-lettered and has since been fixed) is applied now.
async fn replay(
    deps: &Deps,
    request: &Request,
    operator: &str,
) -> Result<Response<Body>, ApiError> {
    let tenant = path_param(request, "tenantId")
        .and_then(|t| TenantId::parse(&t))
        .ok_or(ApiError::NotFound)?;
    let body: ReplayRequest = json_body(request, DEFAULT_BODY_LIMIT)?;
    let since = DateTime::from_str(&body.since, Format::DateTime).map_err(|_| {
        ApiError::Validation(vec![Violation::new("since", "must be an RFC 3339 time")])
    })?;
    let scope = deps.tenants.tenants().existing(&tenant).await?.ok_or(ApiError::NotFound)?;
    let ids = deps.messages.raw_events().ids_since(&scope, since.secs()).await?;
    let pointers: Vec<WebhookPointer> = ids
        .iter()
        .map(|id| WebhookPointer { tenant_id: tenant.clone(), event_id: id.clone() })
        .collect();
    deps.inbound.send_batch(&pointers).await?;
    info!(tenant_id = %tenant, operator, queued = ids.len(), "webhook events replayed");
    Ok(json(StatusCode::ACCEPTED, &Queued { queued: ids.len() }))
}
