use adapters::queues::{Erasure, Queue};
use adapters::store::tenants::{B2bUser, Created, NewB2bUser, TenantStore};
use contract::views::{B2bUserPage, B2bUserView, BulkResult, BulkRowResult, PlatformStats};
use domain::b2b::{MAX_BULK_USERS, UserRequest, user_changes, user_request};
use domain::ids::{B2bUserId, PlatformId};
use domain::time::rfc3339;
use edge::http::{ApiError, FieldError, empty, into_response, json};
use edge::principal::{Authenticator, Principal};
use edge::request::{
    DEFAULT_BODY_LIMIT, json_body, page_limit, path_param, query_param, route_key,
};
use edge::routes::B2bRoute;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use tracing::{info, instrument, warn};

pub struct Deps {
    pub(crate) tenants: TenantStore,
    /// Where a deleted user's data goes to be erased.
    pub(crate) erasures: Queue<Erasure>,
    pub(crate) authenticator: Authenticator,
    /// A user whose tier changes moves to the new tier's session pool.
    pub(crate) sessions: Option<adapters::sessions::Sessions>,
    pub(crate) pools: domain::sessions::PoolPolicies,
}

/// The fields of a single create, and of a bulk row.
const CREATE_FIELDS: &[&str] = &["userId", "platformUserId", "platformName", "tier", "platformId"];
const ROW_FIELDS: &[&str] = &["userId", "platformUserId", "tier"];
/// A thousand rows of a few hundred bytes each, with room to spare.
const BULK_BODY_LIMIT: usize = 1024 * 1024;
/// The deepest `page` a list serves (each page before it is read to get there).
const MAX_PAGE: u32 = 100;

#[instrument(skip_all, fields(request_id = %edge::request::request_id(&request), route = route_key(&request).unwrap_or_default()))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    Ok(into_response(dispatch(deps, &request).await))
}

async fn dispatch(deps: &Deps, request: &Request) -> Result<Response<Body>, ApiError> {
    let admitted = deps.authenticator.admit::<B2bRoute>(request).await?;
    let principal = admitted.principal()?;
    let platform = principal.platform_id().ok_or(ApiError::Forbidden)?.clone();
    match admitted.route {
        B2bRoute::CreateUser => create(deps, request, principal, &platform).await,
        B2bRoute::BulkCreateUsers => bulk(deps, request, principal, &platform).await,
        B2bRoute::GetUser => {
            let user = find(deps, request, &platform).await?;
            Ok(json(StatusCode::OK, &view(&user)))
        }
        B2bRoute::UpdateUser => update(deps, request, principal, &platform).await,
        B2bRoute::DeleteUser => delete(deps, request, principal, &platform).await,
        B2bRoute::ListUsers => list(deps, request, &platform).await,
        B2bRoute::Stats => stats(deps, request, &platform).await,
    }
}

/// A user as the API shows it.
fn view(user: &B2bUser) -> B2bUserView {
    B2bUserView {
        user_id: user.user_id.to_string(),
        tenant_id: user.tenant_id.to_string(),
        platform_id: user.platform_id.to_string(),
        platform_user_id: user.platform_user_id.clone(),
        platform_name: user.platform_name.clone(),
        tier: user.tier,
        state: user.session_state.clone(),
        created_at: rfc3339(user.created_at),
        updated_at: rfc3339(user.updated_at),
    }
}

fn outcome(user_id: String, status: &'static str) -> BulkRowResult {
    BulkRowResult { user_id: Some(user_id), status, tenant_id: None, error: None }
}

fn new_user(request: UserRequest) -> NewB2bUser {
    NewB2bUser {
        user_id: request.user_id,
        platform_user_id: request.platform_user_id,
        platform_name: request.platform_name,
        tier: request.tier,
    }
}

/// The platform's user the path names; 404 for any other.
async fn find(deps: &Deps, request: &Request, platform: &PlatformId) -> Result<B2bUser, ApiError> {
    let id = path_param(request, "userId").and_then(|raw| B2bUserId::parse(&raw));
    let id = id.ok_or(ApiError::NotFound)?;
    deps.tenants.platforms().user(platform, &id).await?.ok_or(ApiError::NotFound)
}

/// 404 unless the path's `{platformId}` is the caller's.
fn own_platform(request: &Request, platform: &PlatformId) -> Result<(), ApiError> {
    let named = path_param(request, "platformId");
    if named.as_deref() == Some(platform.as_str()) { Ok(()) } else { Err(ApiError::NotFound) }
}

async fn create(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    let body: Value = json_body(request, DEFAULT_BODY_LIMIT)?;
    let asked = user_request(&body, CREATE_FIELDS).map_err(ApiError::Validation)?;
    if asked.platform_id.as_deref().is_some_and(|named| named != platform.as_str()) {
        return Err(ApiError::Forbidden);
    }
    let row = new_user(asked);
    let created =
        deps.tenants.platforms().create_users(platform, std::slice::from_ref(&row)).await?;
    match created.into_iter().next() {
        Some(Created::Created(user)) => {
            principal
                .audit(&deps.tenants, "b2b.user_created", Some(user.user_id.as_str()), json!({}))
                .await;
            info!(platform_id = %platform, tenant_id = %user.tenant_id, "B2B user created");
            Ok(json(StatusCode::CREATED, &view(&user)))
        }
        Some(Created::Existing(user)) => Ok(json(StatusCode::OK, &view(&user))),
        Some(Created::Conflict(_)) => Err(ApiError::Conflict {
            code: "user_exists",
            detail: format!(
                "User {} exists with other fields; PUT /api/b2b/users/{} changes them.",
                row.user_id, row.user_id
            ),
        }),
        None => Err(ApiError::internal("a create without an outcome")),
    }
}

/// What became of one bulk row.
enum Row {
    Valid(NewB2bUser),
    Failed { user_id: Option<String>, error: String },
}

async fn bulk(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    let body: Value = json_body(request, BULK_BODY_LIMIT)?;
    let rows = match body.get("users") {
        Some(Value::Array(rows)) if rows.is_empty() => {
            return Err(ApiError::Validation(vec![FieldError::new("users", "must not be empty")]));
        }
        Some(Value::Array(rows)) if rows.len() > MAX_BULK_USERS => {
            return Err(ApiError::PayloadTooLarge { limit: BULK_BODY_LIMIT });
        }
        Some(Value::Array(rows)) => rows,
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "users",
                "is required: an array of 1 to 1,000 users",
            )]));
        }
    };
    // Each row checked alone; a userId that appears twice is refused the second time.
    let mut seen: HashMap<B2bUserId, usize> = HashMap::new();
    let checked: Vec<Row> = rows
        .iter()
        .enumerate()
        .map(|(index, raw)| {
            let named = raw.get("userId").and_then(Value::as_str).map(str::to_owned);
            match user_request(raw, ROW_FIELDS) {
                Ok(asked) => match seen.insert(asked.user_id.clone(), index) {
                    None => Row::Valid(new_user(asked)),
                    Some(first) => Row::Failed {
                        user_id: named,
                        error: format!("userId appears already in row {first}"),
                    },
                },
                Err(errors) => Row::Failed {
                    user_id: named,
                    error: errors
                        .iter()
                        .map(|e| match e.field.as_str() {
                            "" => format!("row {}", e.message),
                            field => format!("{field} {}", e.message),
                        })
                        .collect::<Vec<_>>()
                        .join("; "),
                },
            }
        })
        .collect();
    let valid: Vec<NewB2bUser> = checked
        .iter()
        .filter_map(|row| match row {
            Row::Valid(user) => Some(user.clone()),
            Row::Failed { .. } => None,
        })
        .collect();
    let mut outcomes = deps.tenants.platforms().create_users(platform, &valid).await?.into_iter();

    let (mut created, mut existing, mut failed) = (0, 0, 0);
    let mut results = Vec::with_capacity(checked.len());
    for row in &checked {
        let result = match row {
            Row::Failed { user_id, error } => {
                failed += 1;
                BulkRowResult {
                    user_id: user_id.clone(),
                    status: "failed",
                    tenant_id: None,
                    error: Some(error.clone()),
                }
            }
            Row::Valid(asked) => match outcomes.next() {
                Some(Created::Created(user)) => {
                    created += 1;
                    let tenant_id = Some(user.tenant_id.to_string());
                    BulkRowResult { tenant_id, ..outcome(user.user_id.to_string(), "created") }
                }
                Some(Created::Existing(user)) => {
                    existing += 1;
                    let tenant_id = Some(user.tenant_id.to_string());
                    BulkRowResult { tenant_id, ..outcome(user.user_id.to_string(), "existing") }
                }
                Some(Created::Conflict(_)) => {
                    failed += 1;
                    let error = "the user exists with other fields (409 user_exists)";
                    BulkRowResult {
                        error: Some(error.to_owned()),
                        ..outcome(asked.user_id.to_string(), "failed")
                    }
                }
                None => return Err(ApiError::internal("a bulk row without an outcome")),
            },
        };
        results.push(result);
    }
    if created > 0 {
        let detail = json!({"created": created, "existing": existing, "failed": failed});
        principal.audit(&deps.tenants, "b2b.users_created", Some("bulk"), detail).await;
    }
    info!(platform_id = %platform, created, existing, failed, "B2B users created in bulk");
    Ok(json(StatusCode::OK, &BulkResult { created, existing, failed, results }))
}

async fn update(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    let body: Value = json_body(request, DEFAULT_BODY_LIMIT)?;
    let changes = user_changes(&body).map_err(ApiError::Validation)?;
    let user = find(deps, request, platform).await?;
    let updated = deps
        .tenants
        .platforms()
        .update_user(platform, &user, changes.platform_user_id.as_deref(), changes.tier)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let (Some(tier), Some(sessions)) = (changes.tier, &deps.sessions)
        && tier != user.tier
    {
        let link = adapters::store::tenants::B2bLink {
            platform_id: platform.clone(),
            user_id: user.user_id.clone(),
            platform_user_id: updated.platform_user_id.clone(),
        };
        let moved = sessions.move_to(&user.scope(), &deps.pools.of(tier), Some(&link)).await?;
        if !moved {
            warn!(tenant_id = %user.tenant_id, tier = tier.as_str(), "the new tier's pool is full: the session stays in its old pool until it has room");
        }
    }
    let fields: Vec<&String> = body.as_object().map(|b| b.keys().collect()).unwrap_or_default();
    principal
        .audit(
            &deps.tenants,
            "b2b.user_updated",
            Some(user.user_id.as_str()),
            json!({"fields": fields}),
        )
        .await;
    Ok(json(StatusCode::OK, &view(&updated)))
}

/// Erases a user: its erasure is queued first (it waits until the user's tenant item is
/// gone, and erases nothing while it is there), then the user is taken from the platform
/// in one transaction, so that nothing reaches it any more. 204 once both are done.
async fn delete(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    let mut user = find(deps, request, platform).await?;
    let erasure = Erasure { tenant_id: user.tenant_id.clone(), sweep: 0, waits: 0 };
    deps.erasures.send_delayed(&[(&erasure, ERASE_AFTER)]).await?;
    // The session host may move the user's session state between the read and the
    // delete (which counts that state out): then it is read again.
    let mut attempts = 0;
    while !deps.tenants.platforms().remove_user(&user).await? {
        attempts += 1;
        user = find(deps, request, platform).await?;
        if attempts >= 5 {
            return Err(ApiError::from(adapters::store::StoreError::Conflict));
        }
    }
    let detail = json!({"platformUserId": user.platform_user_id});
    principal.audit(&deps.tenants, "b2b.user_erased", Some(user.user_id.as_str()), detail).await;
    info!(platform_id = %platform, tenant_id = %user.tenant_id, "B2B user deleted; erasure queued");
    Ok(empty(StatusCode::NO_CONTENT))
}

/// How long after a delete its erasure starts (the user is gone by then).
const ERASE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);

/// The platform's figures, from its counters (never a scan of its users).
async fn stats(
    deps: &Deps,
    request: &Request,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    own_platform(request, platform)?;
    let now = adapters::store::attrs::now_secs();
    let stats = deps.tenants.platforms().stats(platform, now).await?;
    let average = if stats.users > 0 { stats.messages as f64 / stats.users as f64 } else { 0.0 };
    Ok(json(
        StatusCode::OK,
        &PlatformStats {
            total_users: stats.users,
            active_users: stats.active_users,
            total_messages: stats.messages,
            average_messages_per_user: (average * 100.0).round() / 100.0,
            sessions: stats.sessions,
        },
    ))
}

/// The platform's users: `limit` + `cursor`, or `page` (1-based) + `limit` as the seed API
/// had them.
async fn list(
    deps: &Deps,
    request: &Request,
    platform: &PlatformId,
) -> Result<Response<Body>, ApiError> {
    own_platform(request, platform)?;
    let limit = page_limit(query_param(request, "limit").as_deref())?;
    let mut cursor = query_param(request, "cursor");
    let page = match query_param(request, "page") {
        None => None,
        Some(raw) => match raw.parse::<u32>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) && cursor.is_none() => Some(n),
            _ => {
                return Err(ApiError::Validation(vec![FieldError::new(
                    "page",
                    format!("must be 1 to {MAX_PAGE}, and not given with cursor"),
                )]));
            }
        },
    };
    let platforms = deps.tenants.platforms();
    for _ in 1..page.unwrap_or(1) {
        let skipped = platforms.users(platform, limit, cursor.as_deref()).await?;
        cursor = skipped.next_cursor;
        if cursor.is_none() {
            let past_the_end = B2bUserPage { items: Vec::new(), next_cursor: None, page };
            return Ok(json(StatusCode::OK, &past_the_end));
        }
    }
    let found = platforms.users(platform, limit, cursor.as_deref()).await?;
    let items = found.items.iter().map(view).collect();
    Ok(json(StatusCode::OK, &B2bUserPage { items, next_cursor: found.next_cursor, page }))
}
