//! The deployed functions, wired once like their `main`s do, and invoked by name.

use crate::poller::Poller;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::aws::AwsClients;
use shared::config::Resources;
use shared::routes::{FunctionName, HEALTH};

pub struct Functions {
    health: health::Deps,
}

impl Functions {
    pub fn new(clients: &AwsClients, resources: &Resources) -> Self {
        Self { health: health::Deps::new(clients.clone(), resources.clone()) }
    }

    /// Invokes an HTTP function as Lambda would. A function error is what API Gateway
    /// turns into a bare 500 `{"message":"Internal Server Error"}`.
    pub async fn invoke(&self, function: FunctionName, request: Request) -> Response<Body> {
        let result = match function {
            HEALTH => health::handle(&self.health, request).await,
            other => Err(format!("the local stack does not host function {other}").into()),
        };
        result.unwrap_or_else(|err| {
            tracing::error!(function, error = %err, "function failed");
            let mut response = Response::new(Body::from(r#"{"message":"Internal Server Error"}"#));
            *response.status_mut() = StatusCode::INTERNAL_SERVER_ERROR;
            response
        })
    }

    /// Whether `invoke` knows the function; the gateway test holds every route to it.
    pub fn hosts(function: FunctionName) -> bool {
        matches!(function, HEALTH)
    }
}

/// One poller per queue that has a processor. The processors arrive with the inbound and
/// outbound pipelines; until then no queue is consumed.
pub fn processors(_clients: &AwsClients, _resources: &Resources) -> Vec<Poller> {
    Vec::new()
}
