//! HTTP responses: JSON bodies and the one mapping from errors to RFC 9457 problem details.
//!
//! Handlers return `Result<Response<Body>, ApiError>`; [`into_response`] turns either side
//! into what API Gateway gets. Every 4xx/5xx body is `application/problem+json` with
//! `type`, `title`, `status`, `detail` and `code` (plus `errors` for validation), and never
//! carries an SDK message, a stack trace or a secret: internal causes go to the log only.

use adapters::aws::envelope::EnvelopeError;
use adapters::channel::ChannelError;
use adapters::queues::QueueError;
use adapters::store::StoreError;
use adapters::telemetry::error_chain;
use lambda_http::Body;
use lambda_http::http::header::{ALLOW, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use lambda_http::http::{Response, StatusCode};
use serde::Serialize;

pub const JSON: &str = "application/json";
pub const PROBLEM_JSON: &str = "application/problem+json";

/// One invalid input field, as reported in a 422's `errors`.
pub use domain::Violation as FieldError;

type Source = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON (or not UTF-8).
    #[error("malformed request body: {0}")]
    MalformedBody(String),
    /// Well-formed input that fails validation.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// Valid input that a business rule refuses (e.g. `outside_service_window`).
    #[error("{detail}")]
    Unprocessable { code: &'static str, detail: String },
    #[error("authentication required")]
    Unauthorized,
    #[error("not allowed")]
    Forbidden,
    /// Missing, or owned by another tenant: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    /// A known path called with a method it does not serve.
    #[error("method not allowed")]
    MethodNotAllowed { allow: Vec<&'static str> },
    #[error("{detail}")]
    Conflict { code: &'static str, detail: String },
    #[error("request body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("rate limited")]
    RateLimited { retry_after_secs: u64 },
    /// Out of capacity for now (a full session pool): 503 with `Retry-After`.
    #[error("{detail}")]
    Full { code: &'static str, detail: String, retry_after_secs: u64 },
    /// A dependency (DynamoDB, SQS, KMS, Meta) did not answer; the name is safe to show.
    #[error("{dependency} unavailable")]
    Unavailable { dependency: &'static str, source: Source },
    /// A bug or an unexpected dependency answer. The cause is logged, never returned.
    #[error("internal error")]
    Internal(#[source] Source),
}

impl ApiError {
    pub fn internal(err: impl Into<Source>) -> Self {
        Self::Internal(err.into())
    }

    pub fn unavailable(dependency: &'static str, err: impl Into<Source>) -> Self {
        Self::Unavailable { dependency, source: err.into() }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            Self::MalformedBody(_) => StatusCode::BAD_REQUEST,
            Self::Validation(_) | Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable { .. } | Self::Full { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable, machine-readable code partners can branch on.
    pub fn code(&self) -> &'static str {
        match self {
            Self::MalformedBody(_) => "malformed_body",
            Self::Validation(_) => "validation_failed",
            Self::Unprocessable { code, .. }
            | Self::Conflict { code, .. }
            | Self::Full { code, .. } => code,
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "dependency_unavailable",
            Self::Internal(_) => "internal_error",
        }
    }

    fn title(&self) -> &'static str {
        match self {
            Self::MalformedBody(_) => "Malformed request body",
            Self::Validation(_) => "Validation failed",
            Self::Unprocessable { .. } => "Request cannot be processed",
            Self::Unauthorized => "Unauthorized",
            Self::Forbidden => "Forbidden",
            Self::NotFound => "Not found",
            Self::MethodNotAllowed { .. } => "Method not allowed",
            Self::Conflict { .. } => "Conflict",
            Self::PayloadTooLarge { .. } => "Payload too large",
            Self::RateLimited { .. } => "Too many requests",
            Self::Unavailable { .. } => "Service unavailable",
            Self::Full { .. } => "Out of capacity",
            Self::Internal(_) => "Internal server error",
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Validation(errors) if errors.len() == 1 => {
                format!("{}: {}", errors[0].field, errors[0].message)
            }
            Self::Validation(errors) => format!("{} fields are invalid", errors.len()),
            Self::Unauthorized => "Missing or invalid credentials.".into(),
            Self::Forbidden => "Your role does not allow this action.".into(),
            Self::NotFound => "The resource does not exist.".into(),
            Self::MethodNotAllowed { allow } => {
                format!("This path accepts {} only.", allow.join(", "))
            }
            Self::RateLimited { retry_after_secs } => {
                format!("Too many requests; retry after {retry_after_secs} seconds.")
            }
            Self::Unavailable { dependency, .. } => {
                format!("A dependency ({dependency}) is not answering; try again shortly.")
            }
            Self::Internal(_) => "Something went wrong on our side.".into(),
            other => other.to_string(),
        }
    }

    /// The problem+json response. Server-side failures are logged here, with their cause,
    /// so that no handler needs to remember to.
    pub fn into_response(self) -> Response<Body> {
        match &self {
            Self::Internal(source) => {
                tracing::error!(error = %error_chain(source.as_ref()), "internal error")
            }
            Self::Unavailable { dependency, source } => {
                tracing::warn!(dependency, error = %error_chain(source.as_ref()), "dependency unavailable")
            }
            _ => {}
        }
        let status = self.status();
        let body = Problem {
            kind: format!("/problems/{}", self.code()),
            title: self.title().to_owned(),
            status: status.as_u16(),
            detail: self.detail(),
            code: self.code().to_owned(),
            errors: match &self {
                Self::Validation(errors) => Some(errors.clone()),
                _ => None,
            },
        };
        let text = serde_json::to_string(&body).unwrap_or_default();
        let mut response = with_body(status, PROBLEM_JSON, text.into());
        match self {
            Self::RateLimited { retry_after_secs } | Self::Full { retry_after_secs, .. } => {
                response.headers_mut().insert(RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            Self::MethodNotAllowed { allow } => {
                if let Ok(value) = HeaderValue::from_str(&allow.join(", ")) {
                    response.headers_mut().insert(ALLOW, value);
                }
            }
            _ => {}
        }
        response
    }
}

/// RFC 9457 problem details (`application/problem+json`): every error answer.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `/problems/<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// A stable, machine-readable reason, e.g. `validation_failed`, `not_found`.
    pub code: String,
    /// Every failing field, for 422.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<FieldError>>,
}

// The one mapping from the adapters' errors to HTTP: the adapters know nothing of it.

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::NotFound => ApiError::NotFound,
            StoreError::EmailTaken => ApiError::Conflict {
                code: "email_taken",
                detail: "An account with this email already exists.".into(),
            },
            StoreError::LastAdmin => ApiError::Conflict {
                code: "last_tenant_admin",
                detail: "A tenant keeps at least one TENANT_ADMIN.".into(),
            },
            StoreError::LimitReached(what) => ApiError::Conflict {
                code: "plan_limit_reached",
                detail: format!("The plan's limit of {what} is reached."),
            },
            StoreError::InvalidCursor => ApiError::Validation(vec![FieldError::new(
                "cursor",
                "is not a cursor from this list",
            )]),
            StoreError::Conflict => ApiError::Conflict {
                code: "concurrent_change",
                detail: "The resource changed meanwhile; retry.".into(),
            },
            StoreError::Unavailable(e) => ApiError::unavailable("dynamodb", e),
            StoreError::Rejected(e) => ApiError::internal(e),
            StoreError::Corrupt(e) => ApiError::internal(e),
        }
    }
}

impl From<ChannelError> for ApiError {
    fn from(e: ChannelError) -> Self {
        match e {
            ChannelError::Store(e) => e.into(),
            ChannelError::Envelope(e) => e.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<EnvelopeError> for ApiError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::Kms(k) => ApiError::unavailable("kms", k),
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<adapters::sessions::SessionError> for ApiError {
    fn from(err: adapters::sessions::SessionError) -> Self {
        match err {
            adapters::sessions::SessionError::Store(e) => e.into(),
            adapters::sessions::SessionError::Queue(e) => e.into(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(err: QueueError) -> Self {
        ApiError::unavailable("sqs", err)
    }
}

fn with_body(status: StatusCode, content_type: &'static str, body: Body) -> Response<Body> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

/// A JSON response. Serialising our own response types cannot fail in practice; if it ever
/// does, the client gets a 500 problem rather than a panic.
pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => with_body(status, JSON, text.into()),
        Err(e) => ApiError::internal(e).into_response(),
    }
}

/// A body of another type (an HTML page, a document served as it is).
pub fn typed(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    with_body(status, content_type, body.into())
}

/// A `text/csv` download.
pub fn csv(text: String) -> Response<Body> {
    with_body(StatusCode::OK, "text/csv; charset=utf-8", text.into())
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = status;
    response
}

/// Collapses a handler's result into the response API Gateway receives.
pub fn into_response(result: Result<Response<Body>, ApiError>) -> Response<Body> {
    result.unwrap_or_else(ApiError::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body_json(response: &Response<Body>) -> serde_json::Value {
        serde_json::from_slice(response.body().as_ref()).expect("json body")
    }

    #[test]
    fn validation_errors_are_422_problem_json_with_field_list() {
        let err = ApiError::Validation(vec![FieldError::new(
            "password",
            "must be at least 12 characters",
        )]);
        let response = err.into_response();
        assert_eq!(response.status(), 422);
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        let body = body_json(&response);
        assert_eq!(body["status"], 422);
        assert_eq!(body["code"], "validation_failed");
        assert_eq!(body["errors"][0]["field"], "password");
        assert_eq!(body["detail"], "password: must be at least 12 characters");
        assert_eq!(body["type"], "/problems/validation_failed");
    }

    #[test]
    fn internal_errors_never_reveal_their_cause() {
        let response = ApiError::internal("secret table name and token abc123").into_response();
        assert_eq!(response.status(), 500);
        let text = String::from_utf8_lossy(response.body().as_ref()).into_owned();
        assert!(!text.contains("abc123"), "{text}");
        assert_eq!(body_json(&response)["code"], "internal_error");
    }

    #[test]
    fn rate_limits_carry_retry_after() {
        let response = ApiError::RateLimited { retry_after_secs: 30 }.into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()[RETRY_AFTER], "30");
    }

    #[test]
    fn a_wrong_method_is_405_with_allow() {
        let response = ApiError::MethodNotAllowed { allow: vec!["GET", "POST"] }.into_response();
        assert_eq!(response.status(), 405);
        assert_eq!(response.headers()[ALLOW], "GET, POST");
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(body_json(&response)["code"], "method_not_allowed");
    }

    #[test]
    fn json_sets_status_and_content_type() {
        let response = json(StatusCode::CREATED, &serde_json::json!({"id": "x"}));
        assert_eq!(response.status(), 201);
        assert_eq!(response.headers()[CONTENT_TYPE], JSON);
        assert_eq!(body_json(&response)["id"], "x");
    }
}
