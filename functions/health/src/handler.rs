use adapters::aws::AwsClients;
use adapters::config::Resources;
use adapters::resources::{PARTITION_KEY, QUEUES, SORT_KEY, TABLES};
use adapters::telemetry::error_chain;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::types::KeyState;
use aws_sdk_sqs::types::QueueAttributeName;
use contract::views::{
    CheckState as Check, HealthChecks as Checks, HealthReport as Report, Liveness,
};
use edge::http::{ApiError, json};
use edge::request::request_id;
use edge::routes::{HealthRoute, allowed_methods, of_request};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Request, Response};
use std::time::Duration;
use tracing::{instrument, warn};

/// How long one dependency may take before it counts as down. Load balancers and
/// API Gateway give up after a few seconds, so a slow dependency is a failing one.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub struct Deps {
    clients: AwsClients,
    resources: Resources,
}

impl Deps {
    pub fn new(clients: AwsClients, resources: Resources) -> Self {
        Self { clients, resources }
    }
}

/// Routes on API Gateway's route key, so the function answers only for the routes it is
/// deployed behind.
#[instrument(skip_all, fields(request_id = %request_id(&request)))]
pub async fn handle(deps: &Deps, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    let response = match of_request::<HealthRoute>(&request).map(|(route, _)| route) {
        Some(HealthRoute::Live) => json(StatusCode::OK, &Liveness { status: "ok" }),
        Some(HealthRoute::Health | HealthRoute::Ready) => readiness(deps).await,
        Some(HealthRoute::OpenApi) => {
            edge::http::typed(StatusCode::OK, "application/json", document().to_owned())
        }
        Some(HealthRoute::Docs) => edge::http::typed(
            StatusCode::OK,
            "text/html; charset=utf-8",
            contract::DOCS_PAGE.to_owned(),
        ),
        Some(HealthRoute::Unmatched) => unmatched(&request).into_response(),
        None => ApiError::NotFound.into_response(),
    };
    Ok(response)
}

/// The OpenAPI document, built once per process.
fn document() -> &'static str {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOCUMENT.get_or_init(contract::openapi::document_json)
}

/// What API Gateway's `$default` route answers: no route has this path (404), or it has,
/// for other methods (405 with `Allow`).
fn unmatched(request: &Request) -> ApiError {
    let allow = allowed_methods(request.uri().path());
    if allow.is_empty() { ApiError::NotFound } else { ApiError::MethodNotAllowed { allow } }
}

async fn readiness(deps: &Deps) -> Response<Body> {
    let (dynamodb, sqs, kms) = tokio::join!(
        check("dynamodb", dynamodb_ok(deps)),
        check("sqs", sqs_ok(deps)),
        check("kms", kms_ok(deps)),
    );
    let checks = Checks { dynamodb, sqs, kms };
    if [dynamodb, sqs, kms].iter().all(|c| *c == Check::Ok) {
        json(StatusCode::OK, &Report { status: "ok", checks })
    } else {
        json(StatusCode::SERVICE_UNAVAILABLE, &Report { status: "unavailable", checks })
    }
}

type CheckResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

async fn check(name: &'static str, probe: impl Future<Output = CheckResult>) -> Check {
    match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
        Ok(Ok(())) => Check::Ok,
        Ok(Err(e)) => {
            warn!(check = name, error = %error_chain(e.as_ref()), "health check failed");
            Check::Error
        }
        Err(_) => {
            warn!(
                check = name,
                timeout_ms = CHECK_TIMEOUT.as_millis() as u64,
                "health check timed out"
            );
            Check::Error
        }
    }
}

/// A point read of a key that never exists, on every table: proves the table exists and is
/// readable with this role, costs half a read unit, and (unlike DescribeTable, limited to
/// 10 calls a second per account) scales with traffic.
async fn dynamodb_ok(deps: &Deps) -> CheckResult {
    for table in TABLES {
        deps.clients
            .dynamodb
            .get_item()
            .table_name(deps.resources.table_name(&table))
            .key(PARTITION_KEY, AttributeValue::S("HEALTH".into()))
            .key(SORT_KEY, AttributeValue::S("HEALTH".into()))
            .send()
            .await?;
    }
    Ok(())
}

async fn sqs_ok(deps: &Deps) -> CheckResult {
    for queue in QUEUES {
        deps.clients
            .sqs
            .get_queue_attributes()
            .queue_url(deps.resources.queue_url(&queue))
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .send()
            .await?;
    }
    Ok(())
}

/// The key must exist and be enabled: a disabled key means no credential can be read.
async fn kms_ok(deps: &Deps) -> CheckResult {
    let out = deps.clients.kms.describe_key().key_id(&deps.resources.kms_key_id).send().await?;
    match out.key_metadata().and_then(|m| m.key_state()) {
        Some(KeyState::Enabled) => Ok(()),
        state => Err(format!("key state is {state:?}").into()),
    }
}
