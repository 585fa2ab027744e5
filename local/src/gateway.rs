//! API Gateway (HTTP API, payload format 2.0) on one local port.

use crate::functions::Functions;
use aws_lambda_events::apigw::{
    ApiGatewayV2httpRequest, ApiGatewayV2httpRequestContext,
    ApiGatewayV2httpRequestContextHttpDescription,
};
use axum::Router;
use axum::body::{Body as AxumBody, to_bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Request as HttpRequest, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use edge::routes;
use lambda_http::Body as LambdaBody;
use lambda_http::request::LambdaRequest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};
use tracing::info;

/// API Gateway HTTP APIs refuse request bodies over 10 MB.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

pub fn router(functions: Arc<Functions>) -> Router {
    Router::new().fallback(dispatch).with_state(functions)
}

async fn dispatch(
    State(functions): State<Arc<Functions>>,
    request: HttpRequest<AxumBody>,
) -> Response {
    let started = std::time::Instant::now();
    let (parts, body) = request.into_parts();
    let method = parts.method.as_str().to_owned();
    let path = parts.uri.path().to_owned();
    // Unmatched requests go to the `$default` route, as in the template.
    let matched = routes::find(&method, &path).unwrap_or_else(routes::Matched::default_route);
    let Ok(body) = to_bytes(body, MAX_BODY_BYTES).await else {
        return gateway_error(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    };
    let source_ip = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "127.0.0.1".into());
    let request_id = uuid::Uuid::new_v4().to_string();
    let event = api_gateway_event(&parts, &body, &matched, &request_id, &source_ip);
    let lambda_request: lambda_http::Request = LambdaRequest::ApiGatewayV2(event).into();

    let response = functions.invoke(matched.route.function, lambda_request).await;
    let status = response.status();
    info!(
        request_id,
        route = %matched.route.key(),
        status = status.as_u16(),
        ms = started.elapsed().as_millis() as u64,
        "request"
    );
    let (parts, body) = response.into_parts();
    let bytes = match body {
        LambdaBody::Empty => Vec::new(),
        LambdaBody::Text(text) => text.into_bytes(),
        LambdaBody::Binary(bytes) => bytes,
        _ => Vec::new(),
    };
    let mut out = Response::from_parts(parts, AxumBody::from(bytes));
    out.headers_mut().insert("apigw-requestid", header_value(&request_id));
    out
}

fn header_value(value: &str) -> axum::http::HeaderValue {
    axum::http::HeaderValue::from_str(value).unwrap_or(axum::http::HeaderValue::from_static(""))
}

/// API Gateway's own error bodies, for requests that never reach a function.
fn gateway_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [("content-type", "application/json")],
        serde_json::json!({ "message": message }).to_string(),
    )
        .into_response()
}

/// The event API Gateway would send: raw path and query, lower-cased headers, cookies split
/// out, the route key, decoded path parameters, and a body that is base64 unless it is
/// valid UTF-8 text.
fn api_gateway_event(
    parts: &axum::http::request::Parts,
    body: &[u8],
    matched: &routes::Matched,
    request_id: &str,
    source_ip: &str,
) -> ApiGatewayV2httpRequest {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut headers = HeaderMap::new();
    let mut cookies = Vec::new();
    for name in parts.headers.keys() {
        let values = parts.headers.get_all(name);
        if name == axum::http::header::COOKIE {
            for value in values {
                cookies.extend(value.to_str().unwrap_or_default().split("; ").map(str::to_owned));
            }
            continue;
        }
        // NOTE: API Gateway (payload 2.0) hands a function one value per header, repeated
        // headers joined with commas.
        let joined: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
        let joined = joined.join(&b","[..]);
        if let Ok(value) = axum::http::HeaderValue::from_bytes(&joined) {
            headers.insert(name.clone(), value);
        }
    }
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();

    let mut http = ApiGatewayV2httpRequestContextHttpDescription::default();
    http.method = parts.method.clone();
    http.path = Some(parts.uri.path().to_owned());
    http.protocol = Some("HTTP/1.1".into());
    http.source_ip = Some(source_ip.to_owned());
    http.user_agent = parts
        .headers
        .get(axum::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);

    let mut context = ApiGatewayV2httpRequestContext::default();
    context.route_key = Some(matched.route.key());
    context.account_id = Some("000000000000".into());
    context.apiid = Some("local".into());
    context.domain_name = Some("localhost".into());
    context.domain_prefix = Some("localhost".into());
    context.stage = Some("$default".into());
    context.request_id = Some(request_id.to_owned());
    context.time_epoch = now.as_millis() as i64;
    context.http = http;

    let (body, is_base64_encoded) = match std::str::from_utf8(body) {
        _ if body.is_empty() => (None, false),
        Ok(text) => (Some(text.to_owned()), false),
        Err(_) => (Some(BASE64.encode(body)), true),
    };

    let mut event = ApiGatewayV2httpRequest::default();
    event.version = Some("2.0".into());
    event.route_key = Some(matched.route.key());
    event.raw_path = Some(parts.uri.path().to_owned());
    event.raw_query_string = Some(raw_query);
    event.cookies = (!cookies.is_empty()).then_some(cookies);
    event.headers = headers;
    event.path_parameters = matched.path_parameters.iter().cloned().collect::<HashMap<_, _>>();
    event.request_context = context;
    event.body = body;
    event.is_base64_encoded = is_base64_encoded;
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_route_is_hosted_locally() {
        for route in routes::ROUTES {
            assert!(Functions::hosts(route.function), "{} is not hosted", route.key());
        }
    }

    #[test]
    fn events_carry_route_key_path_parameters_and_cookies() {
        let request = HttpRequest::builder()
            .method("GET")
            .uri("/api/health?x=1&y=2")
            .header("cookie", "a=1; b=2")
            .header("X-Custom", "v")
            .header("X-Twice", "1")
            .header("X-Twice", "2")
            .body(())
            .expect("request");
        let (parts, ()) = request.into_parts();
        let matched = routes::find("GET", "/api/health").expect("route");
        let event = api_gateway_event(&parts, b"{}", &matched, "rid", "127.0.0.1");
        assert_eq!(event.route_key.as_deref(), Some("GET /api/health"));
        assert_eq!(event.raw_query_string.as_deref(), Some("x=1&y=2"));
        assert_eq!(event.cookies, Some(vec!["a=1".to_owned(), "b=2".to_owned()]));
        assert_eq!(event.headers["x-custom"], "v");
        assert_eq!(event.headers["x-twice"], "1,2", "repeated headers joined, as API Gateway does");
        assert_eq!(event.headers.get_all("x-twice").iter().count(), 1);
        assert!(!event.headers.contains_key("cookie"));
        assert_eq!(event.body.as_deref(), Some("{}"));
        assert!(!event.is_base64_encoded);

        let binary = api_gateway_event(&parts, &[0xff, 0x00], &matched, "rid", "127.0.0.1");
        assert!(binary.is_base64_encoded);
        assert_eq!(binary.body.as_deref(), Some("/wA="));
    }
}
