//! AWS adapters: the SDK clients every deployable builds once at start-up, and the
//! bootstrap that creates Switchboard's resources in an emulator.

pub mod bootstrap;
pub mod envelope;
pub mod secrets;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;

/// The region used against an emulator when none is configured.
pub const LOCAL_REGION: &str = "us-east-1";

/// One client per service, cheap to clone (they share connection pools).
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub kms: aws_sdk_kms::Client,
    pub secrets: aws_sdk_secretsmanager::Client,
}

impl AwsClients {
    pub fn new(config: &SdkConfig) -> Self {
        Self {
            dynamodb: aws_sdk_dynamodb::Client::new(config),
            sqs: aws_sdk_sqs::Client::new(config),
            kms: aws_sdk_kms::Client::new(config),
            secrets: aws_sdk_secretsmanager::Client::new(config),
        }
    }

    /// The standard chain: credentials, region and `AWS_ENDPOINT_URL` (or the per-service
    /// `AWS_ENDPOINT_URL_DYNAMODB`, ...) from the environment. This is what every function
    /// uses, in AWS and locally.
    pub async fn from_env() -> Self {
        Self::new(&aws_config::load_defaults(BehaviorVersion::latest()).await)
    }

    /// Clients for an emulator at `endpoint`, with throw-away static credentials, whatever
    /// the environment says. For tests and tools that start their own emulator.
    pub async fn for_emulator(endpoint: &str) -> Self {
        Self::new(&emulator_config(endpoint).await)
    }
}

/// The service's own error code and message (e.g. `ResourceInUseException`), without the
/// SDK's wrapping; for logs and for telling "already exists" from real failures.
pub fn error_code<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> Option<&str>
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code())
}

/// SDK configuration for an emulator at `endpoint`, with throw-away static credentials.
pub async fn emulator_config(endpoint: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new(LOCAL_REGION))
        .credentials_provider(Credentials::new("test", "test", None, None, "emulator"))
        .load()
        .await
}
