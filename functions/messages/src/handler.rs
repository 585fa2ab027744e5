use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::principal::Authenticator;
use shared::http::{ApiError, FieldError, into_response, json};
use shared::request::{path_param, query_param, route_key};
use shared::store::channels::ChannelStore;
use shared::store::messages::MessageStore;
use shared::store::page;
use shared::store::tenants::TenantStore;
use tracing::instrument;

pub struct Deps {
    pub(crate) messages: MessageStore,
    pub(crate) tenants: TenantStore,
    pub(crate) channels: ChannelStore,
    pub(crate) sqs: aws_sdk_sqs::Client,
    pub(crate) queues: OutboundQueues,
    authenticator: Authenticator,
}

/// The two outbound queues: enterprise tiers' and everyone else's.
#[derive(Clone, Debug)]
pub struct OutboundQueues {
    pub high: String,
    pub standard: String,
}

impl Deps {
    pub fn new(
        messages: MessageStore,
        tenants: TenantStore,
        channels: ChannelStore,
        sqs: aws_sdk_sqs::Client,
        queues: OutboundQueues,
        authenticator: Authenticator,
    ) -> Self {
        Self { messages, tenants, channels, sqs, queues, authenticator }
    }
}

#[instrument(skip_all, fields(request_id = %shared::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

/// Ids are ours (`conv_…`, `msg_…`): anything else cannot exist, for any tenant.
fn id(request: &Request, prefix: &str) -> Result<String, ApiError> {
    path_param(request, "id")
        .filter(|id| {
            id.starts_with(prefix)
                && id.len() <= 64
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        })
        .ok_or(ApiError::NotFound)
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let (principal, route, action) = deps.authenticator.for_route(request).await?;
    principal.require(action)?;
    let scope = principal.scope();
    let limit = || page::limit(query_param(request, "limit").as_deref());
    let cursor = query_param(request, "cursor");
    match (route.method, route.path) {
        ("GET", "/api/conversations") => {
            let status = query_param(request, "status");
            if let Some(s) = &status
                && !matches!(s.as_str(), "open" | "closed")
            {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "status",
                    "must be open or closed",
                )]));
            }
            let agent = query_param(request, "assignedAgentId");
            let page = deps
                .messages
                .conversations(
                    scope,
                    status.as_deref(),
                    agent.as_deref(),
                    limit()?,
                    cursor.as_deref(),
                )
                .await?;
            Ok(json(StatusCode::OK, &page))
        }
        ("GET", "/api/conversations/{id}") => {
            let conversation = deps
                .messages
                .conversation(scope, &id(request, "conv_")?)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &conversation))
        }
        ("GET", "/api/conversations/{id}/messages") => {
            let conversation = id(request, "conv_")?;
            deps.messages.conversation(scope, &conversation).await?.ok_or(ApiError::NotFound)?;
            let page = deps
                .messages
                .conversation_messages(scope, &conversation, limit()?, cursor.as_deref())
                .await?;
            Ok(json(StatusCode::OK, &page))
        }
        ("POST", "/api/messages") => crate::send::send(deps, request, &principal).await,
        ("GET", "/api/messages/{id}") => {
            let message = deps
                .messages
                .message(scope, &id(request, "msg_")?)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &message))
        }
        _ => Err(ApiError::NotFound),
    }
}
