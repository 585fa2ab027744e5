//! The deployed functions, wired once like their `main`s do, and invoked by name.

use crate::poller::Poller;
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use shared::auth::passwords::{HashError, Passwords};
use shared::auth::principal::Authenticator;
use shared::auth::tokens::TokenKeys;
use shared::aws::AwsClients;
use shared::config::Resources;
use shared::routes::{AUTH, FunctionName, HEALTH, TENANTS};
use shared::store::tenants::TenantStore;
use std::sync::Arc;

/// What the functions read from their environment in AWS, given directly.
#[derive(Clone)]
pub struct Settings {
    pub token_keys: Arc<TokenKeys>,
    pub lockout: auth::LockoutPolicy,
}

pub struct Functions {
    health: health::Deps,
    auth: auth::Deps,
    tenants: tenants::Deps,
}

impl Functions {
    pub fn new(
        clients: &AwsClients,
        resources: &Resources,
        settings: &Settings,
    ) -> Result<Self, HashError> {
        let store = TenantStore::new(clients.dynamodb.clone(), resources.tenants_table.clone());
        let passwords = Passwords::new()?;
        let authenticator = Authenticator::new(settings.token_keys.clone(), store.clone());
        Ok(Self {
            health: health::Deps::new(clients.clone(), resources.clone()),
            auth: auth::Deps::new(
                store.clone(),
                settings.token_keys.clone(),
                passwords.clone(),
                settings.lockout,
            ),
            tenants: tenants::Deps::new(store, authenticator, passwords),
        })
    }

    /// Invokes an HTTP function as Lambda would. A function error is what API Gateway
    /// turns into a bare 500 `{"message":"Internal Server Error"}`.
    pub async fn invoke(&self, function: FunctionName, request: Request) -> Response<Body> {
        let result = match function {
            HEALTH => health::handle(&self.health, request).await,
            AUTH => auth::handle(&self.auth, request).await,
            TENANTS => tenants::handle(&self.tenants, request).await,
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
        matches!(function, HEALTH | AUTH | TENANTS)
    }
}

/// One poller per queue that has a processor. The processors arrive with the inbound and
/// outbound pipelines; until then no queue is consumed.
pub fn processors(_clients: &AwsClients, _resources: &Resources) -> Vec<Poller> {
    Vec::new()
}
