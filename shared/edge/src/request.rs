//! Reading what API Gateway hands a function: the route key, path and query parameters,
//! the caller's address, and JSON bodies checked at the edge.

use crate::http::{ApiError, FieldError};
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt};
use serde::de::DeserializeOwned;

/// Request bodies of the JSON API are small; anything larger is refused with 413 before
/// it is parsed.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

fn context(request: &Request) -> Option<&aws_lambda_events::apigw::ApiGatewayV2httpRequestContext> {
    match request.request_context_ref()? {
        RequestContext::ApiGatewayV2(c) => Some(c),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// API Gateway's route key (`POST /api/users`): which route of the function was called.
pub fn route_key(request: &Request) -> Option<&str> {
    context(request)?.route_key.as_deref()
}

pub fn request_id(request: &Request) -> &str {
    context(request).and_then(|c| c.request_id.as_deref()).unwrap_or_default()
}

/// The client's address as API Gateway saw it.
pub fn source_ip(request: &Request) -> &str {
    context(request).and_then(|c| c.http.source_ip.as_deref()).unwrap_or("unknown")
}

pub fn path_param(request: &Request, name: &str) -> Option<String> {
    request.path_parameters_ref().and_then(|p| p.first(name)).map(str::to_owned)
}

/// `limit` as API.md defines it: 1 to 100, 50 when absent.
pub fn page_limit(raw: Option<&str>) -> Result<i32, ApiError> {
    match raw {
        None => Ok(50),
        Some(v) => match v.parse::<i32>() {
            Ok(n) if (1..=100).contains(&n) => Ok(n),
            _ => Err(ApiError::Validation(vec![FieldError::new(
                "limit",
                "must be a whole number from 1 to 100",
            )])),
        },
    }
}

pub fn query_param(request: &Request, name: &str) -> Option<String> {
    request.query_string_parameters_ref().and_then(|p| p.first(name)).map(str::to_owned)
}

/// The body as `T`: over `limit` bytes → 413; not JSON → 400; JSON of the wrong shape
/// (missing field, wrong type) → 422 naming the field.
pub fn json_body<T: DeserializeOwned>(request: &Request, limit: usize) -> Result<T, ApiError> {
    let bytes: &[u8] = match request.body() {
        Body::Empty => b"",
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => b"",
    };
    if bytes.len() > limit {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::MalformedBody("the body is empty; send a JSON object".into()));
    }
    // Syntax first, shape second: the two are different errors for the caller.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::MalformedBody(format!("not valid JSON ({e})")))?;
    if !value.is_object() {
        return Err(ApiError::Validation(vec![FieldError::new("body", "must be a JSON object")]));
    }
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner().to_string();
        let (field, message) = match inner.strip_prefix("missing field `") {
            Some(rest) => {
                let name = rest.split('`').next().unwrap_or_default();
                let field = if path == "." { name.to_owned() } else { format!("{path}.{name}") };
                (field, "is required".to_owned())
            }
            None => (if path == "." { "body".to_owned() } else { path }, inner),
        };
        ApiError::Validation(vec![FieldError::new(field, message)])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_api_conventions() {
        assert_eq!(page_limit(None).ok(), Some(50));
        assert_eq!(page_limit(Some("100")).ok(), Some(100));
        for bad in ["0", "101", "-1", "ten", ""] {
            assert!(page_limit(Some(bad)).is_err(), "{bad}");
        }
    }
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Login {
        email: String,
        password: String,
        remember: Option<bool>,
    }

    fn request(body: &str) -> Request {
        let mut r = Request::new(Body::from(body));
        *r.method_mut() = lambda_http::http::Method::POST;
        r
    }

    fn field_of(err: ApiError) -> (u16, String) {
        let status = err.status().as_u16();
        match err {
            ApiError::Validation(v) => (status, v[0].field.clone()),
            _ => (status, String::new()),
        }
    }

    #[test]
    fn syntax_errors_are_400_and_shape_errors_are_422_with_the_field() {
        assert_eq!(json_body::<Login>(&request("{"), 100).map(|_| ()).unwrap_err().status(), 400);
        assert_eq!(json_body::<Login>(&request(""), 100).map(|_| ()).unwrap_err().status(), 400);
        let missing = json_body::<Login>(&request(r#"{"email":"a@b.co"}"#), 100).unwrap_err();
        assert_eq!(field_of(missing), (422, "password".into()));
        let wrong_type =
            json_body::<Login>(&request(r#"{"email":"a","password":5}"#), 100).unwrap_err();
        assert_eq!(field_of(wrong_type), (422, "password".into()));
        let not_object = json_body::<Login>(&request("[1]"), 100).unwrap_err();
        assert_eq!(field_of(not_object), (422, "body".into()));
    }

    #[test]
    fn bodies_over_the_limit_are_413() {
        let err = json_body::<Login>(&request(&"x".repeat(101)), 100).unwrap_err();
        assert_eq!(err.status(), 413);
    }
}
