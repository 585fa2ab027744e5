//! What routes answer, where the answer is not a store's record as it is.

use adapters::store::tenants::{ApiKeyRecord, TenantRecord, UserRecord};
use domain::tenant::{Limits, Tier};
use domain::user::Role;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use utoipa::ToSchema;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckState {
    Ok,
    Error,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct HealthChecks {
    pub dynamodb: CheckState,
    pub sqs: CheckState,
    pub kms: CheckState,
}

/// `GET /api/health`, `/api/health/ready`: 200 `ok`, or 503 `unavailable` with the failing
/// check marked.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthReport {
    pub status: &'static str,
    pub checks: HealthChecks,
}

/// `GET /api/health/live`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Liveness {
    pub status: &'static str,
}

/// A user as the auth routes show it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: Role,
}

impl From<&UserRecord> for UserView {
    fn from(u: &UserRecord) -> Self {
        Self { id: u.id.to_string(), email: u.email.clone(), name: u.name.clone(), role: u.role }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TenantSummary {
    pub id: String,
    pub name: String,
    pub tier: Tier,
}

impl From<&TenantRecord> for TenantSummary {
    fn from(t: &TenantRecord) -> Self {
        Self { id: t.id.to_string(), name: t.name.clone(), tier: t.tier }
    }
}

/// A login: an access token (a JWT) and the refresh token that renews it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds the access token is valid.
    pub expires_in: u64,
    /// `Bearer`.
    pub token_type: &'static str,
}

/// `POST /api/auth/register`: 201.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registered {
    pub tenant: TenantSummary,
    pub user: UserView,
    #[serde(flatten)]
    pub tokens: Tokens,
}

/// `POST /api/auth/login` and `/api/auth/refresh`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoggedIn {
    #[serde(flatten)]
    pub tokens: Tokens,
    pub user: UserView,
}

/// `GET /api/auth/me`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Me {
    pub user: UserView,
    pub tenant: TenantSummary,
}

/// `GET`, `PATCH /api/tenant`: the tenant and its plan's limits.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantView {
    #[serde(flatten)]
    pub tenant: TenantRecord,
    pub limits: Limits,
}

impl From<TenantRecord> for TenantView {
    fn from(tenant: TenantRecord) -> Self {
        let limits = tenant.tier.limits();
        Self { tenant, limits }
    }
}

/// `POST /api/api-keys`: the key, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub record: ApiKeyRecord,
    pub key: String,
}

/// One stored item of an export.
#[derive(Debug, Serialize, ToSchema)]
pub struct ExportItem {
    pub table: String,
    /// The item as plain JSON (its `pk`, `sk` and attributes; credentials redacted).
    pub item: Value,
}

/// A page of `GET /api/tenant/export`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportPage {
    pub tenant_id: String,
    pub items: Vec<ExportItem>,
    pub next_cursor: Option<String>,
}

/// The channel: its provider's settings, secrets as `••••` and their last 4 characters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChannelView {
    pub provider: String,
    /// `healthy`, `unhealthy` or `unknown`.
    pub health_status: String,
    pub last_health_check: Option<String>,
    pub updated_at: String,
    /// The provider's other settings (`phoneNumberId`, `apiUrl`, `messagesPerSecond`, …).
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub settings: BTreeMap<String, Value>,
}

/// `POST …/connect`: 202 `pairing` with a QR (and a pairing code when asked), or 200
/// `connected`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectAnswer {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone_number: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairing_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl ConnectAnswer {
    fn state(state: &str) -> Self {
        Self {
            state: state.to_owned(),
            phone_number: None,
            qr: None,
            pairing_code: None,
            expires_at: None,
            detail: None,
        }
    }

    /// Paired: the linked number.
    pub fn connected(phone_number: Option<String>) -> Self {
        Self { phone_number: Some(phone_number), ..Self::state("connected") }
    }

    /// A QR to scan (and a code to enter, when a number was given).
    pub fn pairing(qr: Option<String>, code: Option<String>, expires_at: Option<String>) -> Self {
        Self {
            qr: Some(qr),
            pairing_code: code,
            expires_at: Some(expires_at),
            ..Self::state("pairing")
        }
    }

    /// No host has answered yet.
    pub fn waiting(state: &str, detail: &str) -> Self {
        Self {
            qr: Some(None),
            expires_at: Some(None),
            detail: Some(detail.to_owned()),
            ..Self::state(state)
        }
    }
}

/// `GET /api/whatsapp/channel/session`, `GET /api/b2b/users/{userId}/status`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatus {
    pub state: String,
    pub tier: Tier,
    pub connection_id: Option<String>,
    pub phone_number: Option<String>,
    pub last_seen_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qr: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pairing_code: Option<String>,
}

/// `POST /api/whatsapp/channel/logout`.
#[derive(Debug, Serialize, ToSchema)]
pub struct LogoutAnswer {
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// Meta's webhooks, taken.
#[derive(Debug, Serialize, ToSchema)]
pub struct Received {
    pub received: bool,
}

/// `POST /api/messages`: 202 queued, or 200 for a repeat of the same `clientMessageId`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SendAnswer {
    pub id: String,
    pub status: String,
    pub client_message_id: String,
}

/// One UTC day of `GET /api/analytics/usage`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UsageRow {
    /// `yyyy-mm-dd`.
    pub date: String,
    pub inbound: i64,
    pub outbound: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub conversations_opened: i64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub items: Vec<UsageRow>,
}

/// A partner webhook subscription (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionView {
    pub id: String,
    pub url: String,
    pub events: Vec<String>,
    pub description: Option<String>,
    /// `active` or `disabled`.
    pub status: String,
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub failing_since: Option<String>,
}

/// `POST /api/webhooks`: 201, with the signing secret shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionCreated {
    #[serde(flatten)]
    pub subscription: SubscriptionView,
    /// `whsec_` + base64 of 32 random bytes.
    pub secret: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretRotated {
    pub secret: String,
    pub previous_secret_valid_until: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestDelivery {
    pub delivery_id: String,
    pub event_id: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Redelivery {
    pub delivery_id: String,
}

/// Work queued: how many.
#[derive(Debug, Serialize, ToSchema)]
pub struct Queued {
    pub queued: usize,
}

/// A delivery in a list.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliverySummary {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: u32,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AttemptView {
    pub at: String,
    pub status_code: Option<u16>,
    pub duration_ms: u64,
    pub error: Option<String>,
    /// At most 4 KB of the answer.
    pub response_body: Option<String>,
}

/// One delivery: its attempts (the last 30) and the event as sent.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeliveryDetail {
    pub id: String,
    pub subscription_id: String,
    pub event_id: String,
    pub event_type: String,
    pub status: String,
    pub attempt_count: u32,
    pub attempts: Vec<AttemptView>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub delivered_at: Option<String>,
    pub payload: Value,
}

/// A partner platform, as its operator sees it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformView {
    pub platform_id: String,
    pub name: String,
    pub tenant_id: String,
    /// The public start of its key (`sbp_…`).
    pub key_prefix: String,
    pub user_count: i64,
    pub created_at: String,
    /// Only when the platform is made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformKeyRotated {
    pub api_key: String,
    pub previous_key_valid_until: String,
}

/// One tier's pool of WhatsApp Web connections.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PoolView {
    pub size: usize,
    pub capacity: u32,
    pub users: usize,
    pub utilization: f64,
    pub users_per_connection: u32,
    pub max_users: u32,
    pub hosts: usize,
}

/// A partner platform's user.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct B2bUserView {
    pub user_id: String,
    /// The tenant that holds the user's data.
    pub tenant_id: String,
    pub platform_id: String,
    pub platform_user_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform_name: Option<String>,
    pub tier: Tier,
    /// The WhatsApp Web session's state.
    pub state: String,
    pub created_at: String,
    pub updated_at: String,
}

/// `GET /api/b2b/platforms/{platformId}/users`.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct B2bUserPage {
    pub items: Vec<B2bUserView>,
    pub next_cursor: Option<String>,
    /// When asked by `page`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
}

/// One row's outcome of `POST /api/b2b/users/bulk`, in request order.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BulkRowResult {
    /// As the row gave it (null when it gave none).
    pub user_id: Option<String>,
    /// `created`, `existing` or `failed`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BulkResult {
    pub created: usize,
    pub existing: usize,
    pub failed: usize,
    pub results: Vec<BulkRowResult>,
}

/// `GET /api/b2b/platforms/{platformId}/stats`, from counters.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlatformStats {
    pub total_users: i64,
    pub active_users: i64,
    pub total_messages: i64,
    pub average_messages_per_user: f64,
    /// Users per session state.
    pub sessions: BTreeMap<String, i64>,
}
