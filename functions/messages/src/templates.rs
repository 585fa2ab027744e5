//! Message templates: submitted to Meta (or the sandbox) for review; their status then
//! follows Meta's `message_template_status_update` webhooks through the inbound pipeline.

use crate::handler::Deps;
use adapters::graph::Target;
use adapters::store::messages::TemplateView;
use adapters::store::page::Page;
use domain::meta::graph_error;
use edge::http::{ApiError, FieldError, empty, json};
use edge::principal::Principal;
use edge::request::{DEFAULT_BODY_LIMIT, json_body, path_param};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use serde_json::{Map, Value, json};
use tracing::warn;

const CATEGORIES: [&str; 3] = ["AUTHENTICATION", "MARKETING", "UTILITY"];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

pub async fn list(deps: &Deps, principal: &Principal) -> Result<Response<Body>, ApiError> {
    let mut items = deps.messages.templates().list(principal.scope()).await?;
    items.sort_by(|a, b| (&a.name, &a.language).cmp(&(&b.name, &b.language)));
    Ok(json(StatusCode::OK, &Page { items, next_cursor: None }))
}

/// The channel's Cloud API endpoints, or a clear conflict when it has none.
async fn target(deps: &Deps, principal: &Principal) -> Result<Target, ApiError> {
    let channel = deps.channels.open(principal.tenant_id()).await?;
    let channel = channel.ok_or_else(|| ApiError::Conflict {
        code: "channel_not_configured",
        detail: "Connect a WhatsApp channel (PUT /api/whatsapp/channel) first.".into(),
    })?;
    deps.graph.target(principal.tenant_id(), &channel).map_err(|reason| ApiError::Conflict {
        code: "channel_cannot_manage_templates",
        detail: reason,
    })
}

/// What Meta answered, as our error: its refusal is the caller's to fix (422 with Meta's
/// reason); no answer is a dependency down.
async fn graph_call(request: reqwest::RequestBuilder) -> Result<Value, ApiError> {
    let response =
        request.send().await.map_err(|e| ApiError::unavailable("whatsapp", e.without_url()))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some((code, title)) = graph_error(&body) {
        return Err(ApiError::Unprocessable {
            code: "whatsapp_refused",
            detail: format!("WhatsApp refused the request ({code}): {title}"),
        });
    }
    if !status.is_success() {
        return Err(ApiError::unavailable("whatsapp", format!("HTTP {status}")));
    }
    Ok(body)
}

pub async fn create(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let body: Map<String, Value> = json_body(request, DEFAULT_BODY_LIMIT)?;
    let mut errors = Vec::new();
    let text = |k: &str| body.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let (name, language, category) = (text("name"), text("language"), text("category"));
    if !valid_name(&name) {
        errors.push(FieldError::new("name", "is lower case letters, digits and underscores"));
    }
    if !(2..=10).contains(&language.len())
        || !language.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'-')
    {
        errors.push(FieldError::new("language", "is a language code like en_US"));
    }
    if !CATEGORIES.contains(&category.as_str()) {
        errors.push(FieldError::new("category", "must be AUTHENTICATION, MARKETING or UTILITY"));
    }
    let components = match body.get("components") {
        Some(Value::Array(list))
            if !list.is_empty()
                && list.iter().all(|c| c.get("type").and_then(Value::as_str).is_some()) =>
        {
            Value::Array(list.clone())
        }
        _ => {
            errors.push(FieldError::new(
                "components",
                "is a non-empty list of components, each with a type",
            ));
            Value::Null
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let scope = principal.scope();
    if deps
        .messages
        .templates()
        .list(scope)
        .await?
        .iter()
        .any(|t| t.name == name && t.language == language)
    {
        return Err(ApiError::Conflict {
            code: "template_exists",
            detail: "A template with this name and language exists.".into(),
        });
    }
    let target = target(deps, principal).await?;
    let submitted = json!({ "name": name, "language": language, "category": category, "components": components });
    let answer =
        graph_call(target.authorise(deps.http.post(target.templates_url()).json(&submitted)))
            .await?;
    let template = TemplateView {
        name,
        language,
        category,
        status: answer["status"].as_str().unwrap_or("PENDING").to_owned(),
        reason: None,
        components,
        meta_id: answer["id"].as_str().map(str::to_owned),
        updated_at: String::new(),
    };
    if !deps.messages.templates().create(scope, &template).await? {
        // A concurrent create of the same template won; Meta has it once.
        warn!(name = template.name, "template created concurrently");
    }
    Ok(json(StatusCode::CREATED, &template))
}

pub async fn delete(
    deps: &Deps,
    request: &Request,
    principal: &Principal,
) -> Result<Response<Body>, ApiError> {
    let name = path_param(request, "name").filter(|n| valid_name(n)).ok_or(ApiError::NotFound)?;
    let scope = principal.scope();
    if !deps.messages.templates().list(scope).await?.iter().any(|t| t.name == name) {
        return Err(ApiError::NotFound);
    }
    let target = target(deps, principal).await?;
    graph_call(
        target.authorise(deps.http.delete(target.templates_url()).query(&[("name", &name)])),
    )
    .await?;
    deps.messages.templates().delete(scope, &name).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
