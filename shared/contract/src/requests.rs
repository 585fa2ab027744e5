//! What each route takes in its body. Handlers read these types (or check the same fields
//! one by one, where every failing field must be named at once); the document shows them.

use domain::tenant::{Branding, Settings, Tier};
use serde::Deserialize;
use serde_json::Value;
use utoipa::ToSchema;

/// `POST /api/auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"tenantName": "Acme", "email": "ana@acme.example", "password": "correct horse battery", "name": "Ana"}))]
pub struct RegisterRequest {
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1)]
    pub tenant_name: String,
    #[schema(pattern = "@")]
    pub email: String,
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1)]
    pub name: String,
}

/// `POST /api/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "ana@acme.example", "password": "correct horse battery"}))]
pub struct LoginRequest {
    #[schema(pattern = "@")]
    pub email: String,
    pub password: String,
}

/// `POST /api/auth/refresh` and `POST /api/auth/logout`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// `PATCH /api/tenant`: each field given replaces the stored one (`tier` and `limits`
/// follow the plan and are read-only).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantUpdate {
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1)]
    pub name: Option<String>,
    pub branding: Option<Branding>,
    pub settings: Option<Settings>,
}

/// A role a tenant admin may give.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AssignableRole {
    TenantAdmin,
    Agent,
    BillingAdmin,
}

/// `POST /api/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"email": "bo@acme.example", "name": "Bo", "role": "AGENT", "password": "initial password 1"}))]
pub struct NewUser {
    #[schema(pattern = "@")]
    pub email: String,
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1)]
    pub name: String,
    /// Checked by the handler, which names the roles in its error.
    #[schema(value_type = AssignableRole)]
    pub role: String,
    /// The initial password.
    #[schema(min_length = 12, max_length = 256)]
    pub password: String,
}

/// `PATCH /api/users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct UserUpdate {
    #[schema(min_length = 1)]
    pub name: Option<String>,
    #[schema(value_type = Option<AssignableRole>)]
    pub role: Option<String>,
}

/// `POST /api/api-keys`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "CRM integration"}))]
pub struct NewApiKey {
    /// 1 to 200 characters once trimmed.
    #[schema(min_length = 1)]
    pub name: String,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Cloud,
    Gateway,
    Web,
    Sandbox,
}

/// `PUT /api/whatsapp/channel`: the fields each provider takes (see API.md).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"provider": "web"}))]
pub struct ChannelRequest {
    pub provider: Provider,
    /// cloud.
    pub phone_number_id: Option<String>,
    /// cloud.
    pub waba_id: Option<String>,
    /// cloud.
    pub access_token: Option<String>,
    /// cloud.
    pub app_secret: Option<String>,
    /// cloud.
    pub verify_token: Option<String>,
    /// gateway: an https URL that resolves to a public address.
    pub api_url: Option<String>,
    /// gateway.
    pub api_key: Option<String>,
    /// gateway.
    pub api_key_header: Option<String>,
    /// gateway.
    pub webhook_secret: Option<String>,
    /// gateway, seconds (10–86400).
    pub health_check_interval: Option<u32>,
    /// cloud, sandbox and gateway (1–1000).
    pub messages_per_second: Option<u32>,
}

/// `POST …/connect`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectRequest {
    /// E.164: also ask for a pairing code for this number.
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MessageType {
    Text,
    Image,
    Document,
    Audio,
    Video,
    Sticker,
    Template,
    Interactive,
    Reaction,
    Location,
}

/// `POST /api/messages`: `to`, `type` and the object named by `type`, as the Cloud API
/// takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(example = json!({"to": "+15551234567", "type": "text", "text": {"body": "Hello"}, "clientMessageId": "order-1001"}))]
pub struct SendMessage {
    /// E.164.
    #[schema(pattern = "^\\+[1-9][0-9]{7,14}$")]
    pub to: String,
    #[serde(rename = "type")]
    pub kind: MessageType,
    /// The caller's id for this message: a repeat with the same message is answered 200.
    #[schema(pattern = "^[!-~]{1,128}$")]
    pub client_message_id: String,
    /// `{"messageId"}`: a reply.
    pub context: Option<Value>,
    pub text: Option<Value>,
    pub image: Option<Value>,
    pub document: Option<Value>,
    pub audio: Option<Value>,
    pub video: Option<Value>,
    pub sticker: Option<Value>,
    pub template: Option<Value>,
    pub interactive: Option<Value>,
    pub reaction: Option<Value>,
    pub location: Option<Value>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ConversationStatus {
    Open,
    Closed,
}

/// `PATCH /api/conversations/{id}`: either or both.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConversationUpdate {
    pub status: Option<ConversationStatus>,
    /// An AGENT or TENANT_ADMIN of the tenant; null unassigns.
    pub assigned_agent_id: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TemplateCategory {
    Authentication,
    Marketing,
    Utility,
}

/// `POST /api/templates`: submitted to Meta.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"name": "order_update", "language": "en_US", "category": "UTILITY", "components": [{"type": "BODY", "text": "Your order {{1}} has shipped."}]}))]
pub struct NewTemplate {
    #[schema(pattern = "^[a-z0-9_]{1,512}$")]
    pub name: String,
    /// A language code like `en_US`.
    #[schema(pattern = "^[A-Za-z_-]{2,10}$")]
    pub language: String,
    pub category: TemplateCategory,
    #[schema(min_items = 1)]
    pub components: Vec<TemplateComponent>,
}

/// One of Meta's template components (`HEADER`, `BODY`, `FOOTER`, `BUTTONS`), as Meta
/// takes it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct TemplateComponent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(flatten)]
    #[schema(additional_properties)]
    pub rest: serde_json::Map<String, Value>,
}

/// An event a subscription receives; `*` is every event.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
pub enum EventName {
    #[serde(rename = "message.received")]
    MessageReceived,
    #[serde(rename = "message.status")]
    MessageStatus,
    #[serde(rename = "conversation.created")]
    ConversationCreated,
    #[serde(rename = "conversation.updated")]
    ConversationUpdated,
    #[serde(rename = "session.status")]
    SessionStatus,
    #[serde(rename = "template.status")]
    TemplateStatus,
    #[serde(rename = "*")]
    All,
}

/// `POST /api/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[schema(example = json!({"url": "https://partner.example/hooks", "events": ["message.received"], "description": "CRM"}))]
pub struct NewSubscription {
    /// http(s); its host must resolve to a public address.
    pub url: String,
    #[schema(min_items = 1, max_items = 20)]
    pub events: Vec<EventName>,
    pub description: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    Active,
    Disabled,
}

/// `PATCH /api/webhooks/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubscriptionUpdate {
    pub url: Option<String>,
    #[schema(min_items = 1, max_items = 20)]
    pub events: Option<Vec<EventName>>,
    pub description: Option<String>,
    pub status: Option<SubscriptionStatus>,
}

/// `POST /api/webhooks/{id}/recover`: RFC 3339 times; `since` within the last 30 days.
#[derive(Debug, Deserialize, ToSchema)]
pub struct RecoverRequest {
    #[schema(format = DateTime)]
    pub since: String,
    #[schema(format = DateTime)]
    pub until: Option<String>,
}

/// `POST /api/admin/tenants/{tenantId}/webhook-events/replay`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ReplayRequest {
    /// RFC 3339: replay what was received from then on.
    #[schema(format = DateTime)]
    pub since: String,
}

/// `POST /api/admin/platforms`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewPlatform {
    /// 1 to 100 characters once trimmed.
    #[schema(min_length = 1)]
    pub name: String,
}

/// `POST /api/b2b/users`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[schema(example = json!({"userId": "shop-42", "platformUserId": "acct_42", "tier": "enterprise_b2b"}))]
pub struct NewB2bUser {
    /// 1–64 of `[A-Za-z0-9._-]`, not `bulk`.
    #[schema(pattern = "^(?!bulk$)[A-Za-z0-9._-]{1,64}$")]
    pub user_id: String,
    pub platform_user_id: String,
    pub platform_name: Option<String>,
    /// `enterprise_b2b` unless given.
    pub tier: Option<Tier>,
    /// When given, the caller's own platform id.
    pub platform_id: Option<String>,
}

/// One row of `POST /api/b2b/users/bulk`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkUserRow {
    #[schema(pattern = "^(?!bulk$)[A-Za-z0-9._-]{1,64}$")]
    pub user_id: String,
    pub platform_user_id: String,
    pub tier: Option<Tier>,
}

/// `POST /api/b2b/users/bulk`: 1 to 1,000 rows, each a [`BulkUserRow`]. A row that is not
/// one fails alone (its result says why); more than 1,000 rows is 413.
#[derive(Debug, Deserialize, ToSchema)]
pub struct BulkUsers {
    #[schema(min_items = 1, max_items = 1000)]
    pub users: Vec<Value>,
}

/// `PUT /api/b2b/users/{userId}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct B2bUserUpdate {
    pub platform_user_id: Option<String>,
    pub tier: Option<Tier>,
}
