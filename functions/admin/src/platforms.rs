//! Partner platforms, as the operator makes and sees them: create (the key shown once),
//! list and read with their user counts, rotate the key.

use adapters::store::page::Page;
use adapters::store::tenants::{Platform, TenantStore};
use contract::views::{PlatformKeyRotated, PlatformView};
use domain::ids::PlatformId;
use domain::secrets::{ApiKeySecret, PLATFORM_KEY_PREFIX};
use domain::time::rfc3339;
use edge::http::{ApiError, FieldError, json};
use edge::request::{DEFAULT_BODY_LIMIT, json_body, page_limit, path_param, query_param};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::Value;
use tracing::info;

const MAX_NAME: usize = 100;

fn view(platform: &Platform, users: i64) -> PlatformView {
    PlatformView {
        platform_id: platform.platform_id.to_string(),
        name: platform.name.clone(),
        tenant_id: platform.tenant_id.to_string(),
        key_prefix: format!("{PLATFORM_KEY_PREFIX}{}", platform.key_lookup_id),
        user_count: users,
        created_at: rfc3339(platform.created_at),
        api_key: None,
    }
}

fn new_key() -> Result<ApiKeySecret, ApiError> {
    ApiKeySecret::generate_platform().map_err(|_| ApiError::internal("no randomness for the key"))
}

pub(crate) async fn create(
    tenants: &TenantStore,
    request: &Request,
    operator: &str,
) -> Result<Response<Body>, ApiError> {
    let body: Value = json_body(request, DEFAULT_BODY_LIMIT)?;
    let name = match body.get("name").and_then(Value::as_str).map(str::trim) {
        Some(name) if !name.is_empty() && name.chars().count() <= MAX_NAME => name.to_owned(),
        _ => {
            return Err(ApiError::Validation(vec![FieldError::new(
                "name",
                format!("is required: 1 to {MAX_NAME} characters"),
            )]));
        }
    };
    let key = new_key()?;
    let platform = tenants.platforms().create(&name, &key.lookup_id, &key.digest()).await?;
    info!(platform_id = %platform.platform_id, operator, "platform created");
    let view = PlatformView { api_key: Some(key.key), ..view(&platform, 0) };
    Ok(json(StatusCode::CREATED, &view))
}

async fn found(tenants: &TenantStore, request: &Request) -> Result<Platform, ApiError> {
    let id = path_param(request, "platformId").and_then(|raw| PlatformId::parse(&raw));
    let id = id.ok_or(ApiError::NotFound)?;
    tenants.platforms().get(&id).await?.ok_or(ApiError::NotFound)
}

pub(crate) async fn get(
    tenants: &TenantStore,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let platform = found(tenants, request).await?;
    let users = tenants.platforms().user_count(&platform.platform_id).await?;
    Ok(json(StatusCode::OK, &view(&platform, users)))
}

pub(crate) async fn list(
    tenants: &TenantStore,
    request: &Request,
) -> Result<Response<Body>, ApiError> {
    let limit = page_limit(query_param(request, "limit").as_deref())?;
    let cursor = query_param(request, "cursor");
    let platforms = tenants.platforms();
    let page = platforms.list(limit, cursor.as_deref()).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for id in &page.items {
        if let Some(platform) = platforms.get(id).await? {
            items.push(view(&platform, platforms.user_count(id).await?));
        }
    }
    Ok(json(StatusCode::OK, &Page { items, next_cursor: page.next_cursor }))
}

pub(crate) async fn rotate_key(
    tenants: &TenantStore,
    request: &Request,
    operator: &str,
) -> Result<Response<Body>, ApiError> {
    let platform = found(tenants, request).await?;
    let key = new_key()?;
    let until = tenants.platforms().rotate_key(&platform, &key.lookup_id, &key.digest()).await?;
    info!(platform_id = %platform.platform_id, operator, "platform key rotated");
    let rotated = PlatformKeyRotated { api_key: key.key, previous_key_valid_until: rfc3339(until) };
    Ok(json(StatusCode::OK, &rotated))
}
