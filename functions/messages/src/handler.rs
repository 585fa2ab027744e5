use adapters::channel::Channels;
use adapters::graph::GraphConfig;
use adapters::queues::{Queue, SendJob};
use adapters::store::TenantScope;
use adapters::store::messages::MessageStore;
use adapters::store::tenants::TenantStore;
use domain::ids::UserId;
use domain::user::Role;
use edge::http::{ApiError, FieldError, into_response, json};
use edge::principal::Authenticator;
use edge::request::{DEFAULT_BODY_LIMIT, json_body, path_param, query_param, route_key};
use edge::routes::MessagesRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value};
use tracing::instrument;

pub struct Deps {
    pub(crate) messages: MessageStore,
    pub(crate) tenants: TenantStore,
    pub(crate) channels: Channels,
    pub(crate) high: Queue<SendJob>,
    pub(crate) standard: Queue<SendJob>,
    pub(crate) graph: GraphConfig,
    pub(crate) http: reqwest::Client,
    authenticator: Authenticator,
    /// `web` channels' sessions: their pool (where each session is) and work queues.
    pub(crate) sessions: Option<adapters::sessions::Sessions>,
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
        channels: Channels,
        sqs: aws_sdk_sqs::Client,
        queues: OutboundQueues,
        graph: GraphConfig,
        authenticator: Authenticator,
    ) -> Result<Self, reqwest::Error> {
        let http = adapters::graph::http_client(std::time::Duration::from_secs(10))?;
        Ok(Self {
            messages,
            tenants,
            channels,
            high: Queue::new(sqs.clone(), queues.high),
            standard: Queue::new(sqs, queues.standard),
            graph,
            http,
            authenticator,
            sessions: None,
        })
    }

    /// With WhatsApp Web sessions: a `web` channel's messages go to its session's host.
    pub fn with_sessions(mut self, sessions: adapters::sessions::Sessions) -> Self {
        self.sessions = Some(sessions);
        self
    }
}

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
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
    let admitted = deps.authenticator.admit::<MessagesRoute>(request).await?;
    let principal = admitted.principal()?;
    let scope = principal.scope();
    let limit = || edge::request::page_limit(query_param(request, "limit").as_deref());
    let cursor = query_param(request, "cursor");
    match admitted.route {
        MessagesRoute::ListConversations => {
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
                .conversations()
                .list(scope, status.as_deref(), agent.as_deref(), limit()?, cursor.as_deref())
                .await?;
            Ok(json(StatusCode::OK, &page))
        }
        MessagesRoute::GetConversation => {
            let conversation = deps
                .messages
                .conversations()
                .get(scope, &id(request, "conv_")?)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &conversation))
        }
        MessagesRoute::ConversationMessages => {
            let conversation = id(request, "conv_")?;
            deps.messages
                .conversations()
                .get(scope, &conversation)
                .await?
                .ok_or(ApiError::NotFound)?;
            let page = deps
                .messages
                .conversations()
                .messages(scope, &conversation, limit()?, cursor.as_deref())
                .await?;
            Ok(json(StatusCode::OK, &page))
        }
        MessagesRoute::Send | MessagesRoute::SendForUser => {
            crate::send::send(deps, request, principal).await
        }
        MessagesRoute::ListTemplates => crate::templates::list(deps, principal).await,
        MessagesRoute::CreateTemplate => crate::templates::create(deps, request, principal).await,
        MessagesRoute::DeleteTemplate => crate::templates::delete(deps, request, principal).await,
        MessagesRoute::Usage => crate::usage::usage(&deps.messages, request, principal).await,
        MessagesRoute::UpdateConversation => {
            let conversation = id(request, "conv_")?;
            let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
            let (status, assignee) = conversation_change(deps, scope, &body).await?;
            let updated = deps
                .messages
                .conversations()
                .update(
                    scope,
                    &conversation,
                    status.as_deref(),
                    assignee.as_ref().map(Option::as_deref),
                )
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &updated))
        }
        MessagesRoute::GetMessage => {
            let message = deps
                .messages
                .conversations()
                .message(scope, &id(request, "msg_")?)
                .await?
                .ok_or(ApiError::NotFound)?;
            Ok(json(StatusCode::OK, &message))
        }
    }
}

/// `{"status"?, "assignedAgentId"?}`: open or closed; an agent (or admin) of this tenant,
/// or null to unassign.
async fn conversation_change(
    deps: &Deps,
    scope: &TenantScope,
    body: &Map<String, Value>,
) -> Result<(Option<String>, Option<Option<String>>), ApiError> {
    let mut errors = Vec::new();
    for key in body.keys().filter(|k| !matches!(k.as_str(), "status" | "assignedAgentId")) {
        errors.push(FieldError::new(key.as_str(), "is not a field of a conversation change"));
    }
    let status = match body.get("status") {
        None => None,
        Some(Value::String(s)) if matches!(s.as_str(), "open" | "closed") => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new("status", "must be open or closed"));
            None
        }
    };
    let assignee = match body.get("assignedAgentId") {
        None => None,
        Some(Value::Null) => Some(None),
        Some(Value::String(raw)) => {
            let user = match UserId::parse(raw) {
                Some(user_id) => deps.tenants.users().get(scope, &user_id).await?,
                None => None,
            };
            match user {
                Some(u) if matches!(u.role, Role::Agent | Role::TenantAdmin) => {
                    Some(Some(u.id.to_string()))
                }
                _ => {
                    errors
                        .push(FieldError::new("assignedAgentId", "is not an agent of this tenant"));
                    None
                }
            }
        }
        Some(_) => {
            errors.push(FieldError::new("assignedAgentId", "must be a user id or null"));
            None
        }
    };
    if errors.is_empty() && status.is_none() && assignee.is_none() {
        errors.push(FieldError::new("status", "give status, assignedAgentId or both"));
    }
    if errors.is_empty() { Ok((status, assignee)) } else { Err(ApiError::Validation(errors)) }
}
