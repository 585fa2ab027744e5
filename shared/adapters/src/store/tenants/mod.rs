//! The `tenants` table: tenants, users, email index, API keys, refresh-token families,
//! login lockouts and audit entries.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | tenant | `TENANT#<tid>` | `TENANT` |
//! | user | `TENANT#<tid>` | `USER#<uid>` |
//! | API key | `TENANT#<tid>` | `APIKEY#<kid>` |
//! | audit entry | `TENANT#<tid>` | `AUDIT#<time>#<id>` |
//! | webhook subscription | `TENANT#<tid>` | `WEBHOOK#<id>` |
//! | email → user | `EMAIL#<email>` | `EMAIL` |
//! | key lookup id → key | `APIKEYLOOKUP#<lookup>` | `APIKEYLOOKUP` |
//! | refresh token | `REFRESH#<sha256>` | `REFRESH` |
//! | login (token family) | `FAMILY#<fid>` | `FAMILY` |
//! | lockout counter | `LOCKOUT#<scope>` | `LOCKOUT` |
//! | platforms, their keys and B2B users | see [`platforms`] | |
//!
//! The tenant item counts its users, admins and keys; every change to those is one
//! transaction with the count, so plan limits and "the last admin stays" hold under
//! concurrent requests.

use super::attrs::{Item, get_n, get_s, key, n, opt_n, opt_s, rfc3339, s};
use super::page::Page;
use super::table::Table;
use super::{StoreError, TenantScope};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{ConditionCheck, ReturnValue, TransactWriteItem};
use domain::ids::{ApiKeyId, TenantId, UserId};
use domain::tenant::{Branding, Settings, Tier};
use domain::user::{Email, Role};
use serde::Serialize;

mod api_keys;
mod audit;
mod logins;
mod platforms;
mod tenant;
mod users;
mod webhooks;

pub use api_keys::ApiKeys;
pub use audit::AuditLog;
pub use logins::Logins;
pub(crate) use platforms::session_state_move;
pub use platforms::{
    B2bLinks, B2bUser, Created, NewB2bUser, Platform, PlatformKey, PlatformStats, Platforms,
};
pub use tenant::Tenants;
pub use users::Users;
pub use webhooks::{Probe, Subscription, SubscriptionChanges, Webhooks};

const TENANT_SK: &str = "TENANT";
/// An agent with a session seen this recently is online: an access token lives 15
/// minutes, and a live session refreshes it before then.
pub const ONLINE_FOR_SECS: i64 = 20 * 60;
const USER_PREFIX: &str = "USER#";
const APIKEY_PREFIX: &str = "APIKEY#";
const AUDIT_PREFIX: &str = "AUDIT#";
/// Audit entries are kept for 400 days.
const AUDIT_TTL_SECS: i64 = 400 * 24 * 3600;

/// The operator tenant: SYSTEM_ADMIN accounts live here, outside every customer tenant.
pub const SYSTEM_TENANT: &str = "ten_system";

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub tier: Tier,
    pub branding: Branding,
    pub settings: Settings,
    pub created_at: String,
    pub updated_at: String,
    /// Set when the tenant is a partner platform's B2B user.
    #[serde(skip)]
    pub b2b: Option<B2bLink>,
}

/// Whose B2B user a tenant is, and by which ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct B2bLink {
    pub platform_id: domain::ids::PlatformId,
    pub user_id: domain::ids::B2bUserId,
    pub platform_user_id: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub name: String,
    pub role: Role,
    pub created_at: String,
    /// A stored user acts for its tenant (once its password or token is verified).
    #[serde(skip)]
    scope: TenantScope,
    #[serde(skip)]
    pub password_hash: String,
}

impl UserRecord {
    pub fn tenant_id(&self) -> &TenantId {
        self.scope.tenant_id()
    }

    pub fn scope(&self) -> &TenantScope {
        &self.scope
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiKeyRecord {
    pub id: ApiKeyId,
    pub name: String,
    /// The public start of the key (`sbk_<lookup id>`), to tell keys apart.
    pub prefix: String,
    pub created_at: String,
    pub last_used_at: Option<String>,
}

/// What an API key's lookup id resolves to.
#[derive(Debug, Clone)]
pub struct ApiKeyLookup {
    pub tenant_id: TenantId,
    pub key_id: ApiKeyId,
    pub digest: String,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    pub name: String,
    pub role: Role,
    pub password_hash: String,
}

/// The login a refresh token belongs to.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub user_id: UserId,
    pub tenant_id: TenantId,
    pub family_id: String,
}

#[derive(Debug)]
pub enum RotateOutcome {
    /// The login goes on, for the tenant of the scope.
    Rotated(RefreshGrant, TenantScope),
    /// A spent token was presented again: the whole login has been revoked.
    Reused,
    Invalid,
}

#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub action: &'static str,
    pub actor_id: Option<String>,
    pub target_id: Option<String>,
    pub detail: serde_json::Value,
}

#[derive(Clone, Debug)]
pub struct TenantStore {
    pub(super) table: Table,
}

fn email_key(email: &Email) -> Item {
    key(format!("EMAIL#{}", email.as_str()), "EMAIL")
}

fn lookup_key(lookup_id: &str) -> Item {
    key(format!("APIKEYLOOKUP#{lookup_id}"), "APIKEYLOOKUP")
}

fn refresh_key(digest: &str) -> Item {
    key(format!("REFRESH#{digest}"), "REFRESH")
}

fn family_key(family: &str) -> Item {
    key(format!("FAMILY#{family}"), "FAMILY")
}

fn lockout_key(scope: &str) -> Item {
    key(format!("LOCKOUT#{scope}"), "LOCKOUT")
}

fn with(
    mut item: Item,
    attrs: impl IntoIterator<Item = (&'static str, aws_sdk_dynamodb::types::AttributeValue)>,
) -> Item {
    for (k, v) in attrs {
        item.insert(k.to_owned(), v);
    }
    item
}

fn user_item(scope_pk: &str, tenant: &TenantId, user: &NewUser, now: i64) -> Item {
    with(
        key(scope_pk, format!("{USER_PREFIX}{}", user.id)),
        [
            ("type", s("user")),
            ("userId", s(user.id.as_str())),
            ("tenantId", s(tenant.as_str())),
            ("email", s(user.email.as_str())),
            ("name", s(&user.name)),
            ("role", s(user.role.as_str())),
            ("passwordHash", s(&user.password_hash)),
            ("createdAt", n(now)),
        ],
    )
}

fn email_item(email: &Email, tenant: &TenantId, user: &UserId) -> Item {
    with(email_key(email), [("tenantId", s(tenant.as_str())), ("userId", s(user.as_str()))])
}

fn user_from(item: &Item) -> Result<UserRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    Ok(UserRecord {
        id: UserId::parse(get_s(item, "userId")?).ok_or_else(|| corrupt("userId"))?,
        scope: TenantScope::new(
            TenantId::parse(get_s(item, "tenantId")?).ok_or_else(|| corrupt("tenantId"))?,
        ),
        email: get_s(item, "email")?.to_owned(),
        name: get_s(item, "name")?.to_owned(),
        role: Role::parse(get_s(item, "role")?).ok_or_else(|| corrupt("role"))?,
        password_hash: get_s(item, "passwordHash")?.to_owned(),
        created_at: rfc3339(get_n(item, "createdAt")?),
    })
}

fn tenant_from(item: &Item) -> Result<TenantRecord, StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
    let json = |name: &str| -> Result<serde_json::Value, StoreError> {
        opt_s(item, name).map_or(Ok(serde_json::Value::Null), |v| {
            serde_json::from_str(v).map_err(|_| corrupt(name))
        })
    };
    Ok(TenantRecord {
        id: TenantId::parse(get_s(item, "tenantId")?).ok_or_else(|| corrupt("tenantId"))?,
        name: get_s(item, "name")?.to_owned(),
        tier: Tier::parse(get_s(item, "tier")?).ok_or_else(|| corrupt("tier"))?,
        branding: serde_json::from_value(json("branding")?).unwrap_or_default(),
        settings: serde_json::from_value(json("settings")?).unwrap_or_default(),
        created_at: rfc3339(get_n(item, "createdAt")?),
        updated_at: rfc3339(get_n(item, "updatedAt")?),
        b2b: b2b_link_from(item),
    })
}

fn b2b_link_from(item: &Item) -> Option<B2bLink> {
    Some(B2bLink {
        platform_id: domain::ids::PlatformId::parse(opt_s(item, "platformId")?)?,
        user_id: domain::ids::B2bUserId::parse(opt_s(item, "b2bUserId")?)?,
        platform_user_id: opt_s(item, "platformUserId")?.to_owned(),
    })
}

fn api_key_from(item: &Item) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: ApiKeyId::parse(get_s(item, "keyId")?)
            .ok_or_else(|| StoreError::Corrupt("keyId".into()))?,
        name: get_s(item, "name")?.to_owned(),
        prefix: format!("{}{}", domain::secrets::API_KEY_PREFIX, get_s(item, "lookupId")?),
        created_at: rfc3339(get_n(item, "createdAt")?),
        last_used_at: opt_n(item, "lastUsedAt").map(rfc3339),
    })
}

impl TenantStore {
    /// The tenants table of a deployment.
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self::new(clients.dynamodb.clone(), resources.tenants_table.clone())
    }

    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Self { table: Table::new(db, table) }
    }

    /// The tenants themselves: registration, the operator account, settings.
    pub fn tenants(&self) -> Tenants<'_> {
        Tenants { table: &self.table }
    }

    pub fn users(&self) -> Users<'_> {
        Users { table: &self.table }
    }

    pub fn api_keys(&self) -> ApiKeys<'_> {
        ApiKeys { table: &self.table }
    }

    pub fn logins(&self) -> Logins<'_> {
        Logins { table: &self.table }
    }

    pub fn audit(&self) -> AuditLog<'_> {
        AuditLog { table: &self.table }
    }

    /// Partner platforms and their B2B users.
    pub fn platforms(&self) -> Platforms<'_> {
        Platforms { table: &self.table }
    }

    /// Partner webhook subscriptions.
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks { table: &self.table }
    }
}
