//! The `tenants` table: tenants, users, email index, API keys, refresh-token families,
//! login lockouts and audit entries.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | tenant | `TENANT#<tid>` | `TENANT` |
//! | user | `TENANT#<tid>` | `USER#<uid>` |
//! | API key | `TENANT#<tid>` | `APIKEY#<kid>` |
//! | audit entry | `TENANT#<tid>` | `AUDIT#<time>#<id>` |
//! | email → user | `EMAIL#<email>` | `EMAIL` |
//! | key lookup id → key | `APIKEYLOOKUP#<lookup>` | `APIKEYLOOKUP` |
//! | refresh token | `REFRESH#<sha256>` | `REFRESH` |
//! | login (token family) | `FAMILY#<fid>` | `FAMILY` |
//! | lockout counter | `LOCKOUT#<scope>` | `LOCKOUT` |
//!
//! The tenant item counts its users, admins and keys; every change to those is one
//! transaction with the count, so plan limits and "the last admin stays" hold under
//! concurrent requests.

// NOTE: over 400 lines: until the repositories are split per aggregate (issue 10, still open:
// seven aggregates live here).

use super::attrs::{Item, get_n, get_s, key, n, now_secs, opt_bool, opt_n, opt_s, rfc3339, s};
use super::page::{self, Page};
use super::{StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValue, TransactWriteItem, Update,
};
use domain::ids::{ApiKeyId, TenantId, UserId};
use domain::tenant::{Branding, Settings, Tier};
use domain::user::{Email, Role};
use serde::Serialize;

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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TenantRecord {
    pub id: TenantId,
    pub name: String,
    pub tier: Tier,
    pub branding: Branding,
    pub settings: Settings,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize)]
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

#[derive(Debug, Clone, Serialize)]
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
    db: Client,
    table: String,
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
        Self { db, table: table.into() }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>, StoreError> {
        super::read(&self.db, &self.table, key).await
    }

    async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<(), SdkError<TransactWriteItemsError>> {
        self.db.transact_write_items().set_transact_items(Some(items)).send().await.map(|_| ())
    }

    fn table(&self) -> &str {
        &self.table
    }

    fn update(&self, key: Item) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        Update::builder().table_name(self.table()).set_key(Some(key))
    }

    fn put_in(&self, item: Item, condition: Option<&str>) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(item))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn delete_in(
        &self,
        key: Item,
        condition: Option<&str>,
    ) -> Result<TransactWriteItem, StoreError> {
        let delete = Delete::builder()
            .table_name(self.table())
            .set_key(Some(key))
            .set_condition_expression(condition.map(str::to_owned))
            .build()
            .map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().delete(delete).build())
    }

    // ------------------------------------------------------------------ tenants

    /// Creates a tenant and its first user (a TENANT_ADMIN) at once.
    pub async fn register(
        &self,
        tenant_name: &str,
        tier: Tier,
        admin: &NewUser,
    ) -> Result<(TenantScope, TenantRecord), StoreError> {
        self.create_tenant_with_admin(TenantId::generate(), tenant_name, tier, admin).await
    }

    async fn create_tenant_with_admin(
        &self,
        tenant_id: TenantId,
        tenant_name: &str,
        tier: Tier,
        admin: &NewUser,
    ) -> Result<(TenantScope, TenantRecord), StoreError> {
        let now = now_secs();
        let scope = TenantScope::new(tenant_id.clone());
        let tenant_item = with(
            key(scope.pk(), TENANT_SK),
            [
                ("type", s("tenant")),
                ("tenantId", s(tenant_id.as_str())),
                ("name", s(tenant_name)),
                ("tier", s(tier.as_str())),
                ("userCount", n(1)),
                ("adminCount", n(i64::from(admin.role == Role::TenantAdmin))),
                ("apiKeyCount", n(0)),
                ("createdAt", n(now)),
                ("updatedAt", n(now)),
            ],
        );
        let items = vec![
            self.put_in(tenant_item, Some("attribute_not_exists(pk)"))?,
            self.put_in(user_item(&scope.pk(), &tenant_id, admin, now), None)?,
            self.put_in(
                email_item(&admin.email, &tenant_id, &admin.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact(items).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match failed_conditions(&e) {
                    Some(failed) if failed.get(2) == Some(&true) => StoreError::EmailTaken,
                    Some(failed) if failed.first() == Some(&true) => StoreError::Conflict,
                    _ => dynamo_err(e),
                });
            }
        }
        let tenant = self.get_tenant(&scope).await?;
        Ok((scope, tenant))
    }

    /// Creates the operator account (a SYSTEM_ADMIN in the system tenant) unless its
    /// email is already registered. Returns whether it was created.
    pub async fn ensure_operator(
        &self,
        email: &Email,
        name: &str,
        password_hash: &str,
    ) -> Result<bool, StoreError> {
        if self.get(email_key(email)).await?.is_some() {
            return Ok(false);
        }
        let tenant = TenantId::parse(SYSTEM_TENANT)
            .ok_or_else(|| StoreError::Corrupt("system tenant id".into()))?;
        let operator = NewUser {
            id: UserId::generate(),
            email: email.clone(),
            name: name.to_owned(),
            role: Role::SystemAdmin,
            password_hash: password_hash.to_owned(),
        };
        let scope = TenantScope::new(tenant.clone());
        if self.get(key(scope.pk(), TENANT_SK)).await?.is_none() {
            return match self
                .create_tenant_with_admin(
                    tenant,
                    "Switchboard operators",
                    Tier::Enterprise,
                    &operator,
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(StoreError::EmailTaken | StoreError::Conflict) => Ok(false),
                Err(e) => Err(e),
            };
        }
        let now = now_secs();
        let items = vec![
            self.put_in(user_item(&scope.pk(), scope.tenant_id(), &operator, now), None)?,
            self.put_in(
                email_item(email, scope.tenant_id(), &operator.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if failed_conditions(&e).is_some() => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    pub async fn get_tenant(&self, scope: &TenantScope) -> Result<TenantRecord, StoreError> {
        self.tenant_of(scope).await?.ok_or(StoreError::NotFound)
    }

    /// For queue processors: the tenant id in their work was put there by an
    /// authenticated request (or a verified webhook), not by a caller of this process.
    /// The scope of a tenant an operator names, if it exists.
    pub async fn existing(&self, tenant: &TenantId) -> Result<Option<TenantScope>, StoreError> {
        let scope = TenantScope::new(tenant.clone());
        let item = self.get(key(scope.pk(), TENANT_SK)).await?;
        Ok(item.map(|_| scope))
    }

    /// The tenant's record; `None` when it is gone (a queued record may outlive it).
    pub async fn tenant_of(&self, scope: &TenantScope) -> Result<Option<TenantRecord>, StoreError> {
        let item = self.get(key(scope.pk(), TENANT_SK)).await?;
        item.as_ref().map(tenant_from).transpose()
    }

    pub async fn update_tenant(
        &self,
        scope: &TenantScope,
        name: Option<&str>,
        branding: Option<&Branding>,
        settings: Option<&Settings>,
    ) -> Result<TenantRecord, StoreError> {
        let mut sets = vec!["updatedAt = :now".to_owned()];
        let mut update = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(scope.pk(), TENANT_SK)))
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now_secs()));
        if let Some(name) = name {
            sets.push("#name = :name".into());
            update = update
                .expression_attribute_names("#name", "name")
                .expression_attribute_values(":name", s(name));
        }
        let json = |v: Result<String, serde_json::Error>| {
            v.map_err(|e| StoreError::Corrupt(e.to_string()))
        };
        if let Some(branding) = branding {
            sets.push("branding = :branding".into());
            update = update.expression_attribute_values(
                ":branding",
                s(json(serde_json::to_string(branding))?),
            );
        }
        if let Some(settings) = settings {
            sets.push("settings = :settings".into());
            update = update.expression_attribute_values(
                ":settings",
                s(json(serde_json::to_string(settings))?),
            );
        }
        let out = update
            .update_expression(format!("SET {}", sets.join(", ")))
            .return_values(ReturnValue::AllNew)
            .send()
            .await
            .map_err(|e| if condition_failed(&e) { StoreError::NotFound } else { dynamo_err(e) })?;
        tenant_from(&out.attributes.unwrap_or_default())
    }

    // ------------------------------------------------------------------ users

    /// The user an email belongs to, across tenants: only login uses this.
    pub async fn find_user_by_email(
        &self,
        email: &Email,
    ) -> Result<Option<UserRecord>, StoreError> {
        let pointer = self.get(email_key(email)).await?;
        // NOTE: an unknown email still makes the second read (of a key that cannot exist),
        // so that login costs the same whether or not the account exists.
        let user_key = match &pointer {
            Some(p) => key(
                format!("TENANT#{}", get_s(p, "tenantId")?),
                format!("{USER_PREFIX}{}", get_s(p, "userId")?),
            ),
            None => key("TENANT#-", format!("{USER_PREFIX}-")),
        };
        let item = self.get(user_key).await?;
        match pointer {
            Some(_) => item.as_ref().map(user_from).transpose(),
            None => Ok(None),
        }
    }

    pub async fn get_user(
        &self,
        scope: &TenantScope,
        user: &UserId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let item = self.get(key(scope.pk(), format!("{USER_PREFIX}{user}"))).await?;
        item.as_ref().map(user_from).transpose()
    }

    pub async fn create_user(
        &self,
        scope: &TenantScope,
        user: &NewUser,
    ) -> Result<UserRecord, StoreError> {
        let now = now_secs();
        let max_users = self.get_tenant(scope).await?.tier.limits().max_users;
        let count = self
            .update(key(scope.pk(), TENANT_SK))
            .update_expression("ADD userCount :one, adminCount :admin")
            .condition_expression("attribute_exists(pk) AND userCount < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":admin", n(i64::from(user.role == Role::TenantAdmin)))
            .expression_attribute_values(":max", n(max_users))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.put_in(
                user_item(&scope.pk(), scope.tenant_id(), user, now),
                Some("attribute_not_exists(pk)"),
            )?,
            self.put_in(
                email_item(&user.email, scope.tenant_id(), &user.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.transact(items).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match failed_conditions(&e) {
                    Some(failed) if failed.get(2) == Some(&true) => StoreError::EmailTaken,
                    Some(failed) if failed.first() == Some(&true) => {
                        StoreError::LimitReached("users")
                    }
                    Some(_) => StoreError::Conflict,
                    None => dynamo_err(e),
                });
            }
        }
        self.get_user(scope, &user.id).await?.ok_or(StoreError::Conflict)
    }

    pub async fn list_users(
        &self,
        scope: &TenantScope,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<UserRecord>, StoreError> {
        self.list(scope, USER_PREFIX, limit, cursor, user_from).await
    }

    /// Removes a user and frees their email. Removing the last TENANT_ADMIN fails.
    pub async fn delete_user(
        &self,
        scope: &TenantScope,
        user: &UserRecord,
    ) -> Result<(), StoreError> {
        let is_admin = i64::from(user.role == Role::TenantAdmin);
        let counts = self
            .update(key(scope.pk(), TENANT_SK))
            .update_expression("ADD userCount :minus, adminCount :admin")
            .condition_expression("attribute_exists(pk) AND (:admin = :zero OR adminCount > :one)")
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":admin", n(-is_admin))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(dynamo_err)?;
        let email = Email::parse(&user.email).map_err(|e| StoreError::Corrupt(e.into()))?;
        let items = vec![
            TransactWriteItem::builder().update(counts).build(),
            self.delete_in(
                key(scope.pk(), format!("{USER_PREFIX}{}", user.id)),
                Some("attribute_exists(pk)"),
            )?,
            self.delete_in(email_key(&email), None)?,
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) => Err(match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => StoreError::LastAdmin,
                Some(failed) if failed.get(1) == Some(&true) => StoreError::NotFound,
                Some(_) => StoreError::Conflict,
                None => dynamo_err(e),
            }),
        }
    }

    /// Renames a user or changes their role. Demoting the last TENANT_ADMIN fails; a
    /// concurrent role change makes this one fail rather than be lost.
    pub async fn update_user(
        &self,
        scope: &TenantScope,
        user: &UserRecord,
        name: Option<&str>,
        role: Option<Role>,
    ) -> Result<UserRecord, StoreError> {
        let new_role = role.unwrap_or(user.role);
        let delta =
            i64::from(new_role == Role::TenantAdmin) - i64::from(user.role == Role::TenantAdmin);
        let change = self
            .update(key(scope.pk(), format!("{USER_PREFIX}{}", user.id)))
            .update_expression("SET #role = :role, #name = :name")
            .condition_expression("attribute_exists(pk) AND #role = :old")
            .expression_attribute_names("#role", "role")
            .expression_attribute_names("#name", "name")
            .expression_attribute_values(":role", s(new_role.as_str()))
            .expression_attribute_values(":old", s(user.role.as_str()))
            .expression_attribute_values(":name", s(name.unwrap_or(&user.name)))
            .build()
            .map_err(dynamo_err)?;
        let counts = self
            .update(key(scope.pk(), TENANT_SK))
            .update_expression("ADD adminCount :delta")
            .condition_expression("attribute_exists(pk) AND (:delta >= :zero OR adminCount > :one)")
            .expression_attribute_values(":delta", n(delta))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            TransactWriteItem::builder().update(change).build(),
            TransactWriteItem::builder().update(counts).build(),
        ];
        match self.transact(items).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match failed_conditions(&e) {
                    Some(failed) if failed.get(1) == Some(&true) => StoreError::LastAdmin,
                    Some(_) => StoreError::Conflict,
                    None => dynamo_err(e),
                });
            }
        }
        self.get_user(scope, &user.id).await?.ok_or(StoreError::NotFound)
    }

    async fn list<T>(
        &self,
        scope: &TenantScope,
        prefix: &str,
        limit: i32,
        cursor: Option<&str>,
        parse: fn(&Item) -> Result<T, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let pk = scope.pk();
        let start = cursor.map(|c| page::decode(c, &pk, prefix)).transpose()?;
        let out = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(prefix))
            .limit(limit)
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(dynamo_err)?;
        let items = out.items().iter().map(parse).collect::<Result<Vec<_>, _>>()?;
        Ok(Page { items, next_cursor: page::encode(out.last_evaluated_key()) })
    }

    // ------------------------------------------------------------------ agent presence

    /// Notes that a user has a live session (login, token refresh) or ended it (logout).
    /// An agent seen within [`ONLINE_FOR_SECS`] is online for auto-assignment.
    pub async fn mark_seen(
        &self,
        scope: &TenantScope,
        user: &UserId,
        online: bool,
    ) -> Result<(), StoreError> {
        let tenant = scope.tenant_id();
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("TENANT#{tenant}"), format!("{USER_PREFIX}{user}"))))
            .update_expression("SET lastSeenAt = :at")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":at", n(if online { now_secs() } else { 0 }))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    /// The next online agent of the tenant, round-robin (a counter on the tenant item
    /// shared by every processor); `None` when no agent is online.
    pub async fn next_online_agent(
        &self,
        scope: &TenantScope,
    ) -> Result<Option<UserId>, StoreError> {
        let tenant = scope.tenant_id();
        let pk = format!("TENANT#{tenant}");
        let since = now_secs() - ONLINE_FOR_SECS;
        let query = self
            .db
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .filter_expression("#role = :agent AND lastSeenAt >= :since")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(USER_PREFIX))
            .expression_attribute_values(":agent", s(Role::Agent.as_str()))
            .expression_attribute_values(":since", n(since));
        let mut online: Vec<UserId> = super::query_all(query)
            .await?
            .iter()
            .filter_map(|i| UserId::parse(opt_s(i, "userId")?))
            .collect();
        if online.is_empty() {
            return Ok(None);
        }
        online.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let turn = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&pk, TENANT_SK)))
            .update_expression("ADD assignTurn :one")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew)
            .send()
            .await
            .map_err(dynamo_err)?;
        let turn = turn.attributes().and_then(|a| opt_n(a, "assignTurn")).unwrap_or(1);
        let index = usize::try_from((turn - 1).rem_euclid(online.len() as i64)).unwrap_or(0);
        Ok(online.into_iter().nth(index))
    }

    // ------------------------------------------------------------------ API keys

    pub async fn create_api_key(
        &self,
        scope: &TenantScope,
        id: &ApiKeyId,
        name: &str,
        lookup_id: &str,
        digest: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        let now = now_secs();
        let max_keys = self.get_tenant(scope).await?.tier.limits().max_api_keys;
        let count = self
            .update(key(scope.pk(), TENANT_SK))
            .update_expression("ADD apiKeyCount :one")
            .condition_expression("attribute_exists(pk) AND apiKeyCount < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":max", n(max_keys))
            .build()
            .map_err(dynamo_err)?;
        let record = with(
            key(scope.pk(), format!("{APIKEY_PREFIX}{id}")),
            [
                ("type", s("apiKey")),
                ("keyId", s(id.as_str())),
                ("name", s(name)),
                ("lookupId", s(lookup_id)),
                ("createdAt", n(now)),
            ],
        );
        let lookup = with(
            lookup_key(lookup_id),
            [
                ("tenantId", s(scope.tenant_id().as_str())),
                ("keyId", s(id.as_str())),
                ("digest", s(digest)),
            ],
        );
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.put_in(record.clone(), Some("attribute_not_exists(pk)"))?,
            self.put_in(lookup, Some("attribute_not_exists(pk)"))?,
        ];
        match self.transact(items).await {
            Ok(()) => api_key_from(&record),
            Err(e) => Err(match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => {
                    StoreError::LimitReached("API keys")
                }
                Some(_) => StoreError::Conflict,
                None => dynamo_err(e),
            }),
        }
    }

    pub async fn list_api_keys(
        &self,
        scope: &TenantScope,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKeyRecord>, StoreError> {
        self.list(scope, APIKEY_PREFIX, limit, cursor, api_key_from).await
    }

    pub async fn get_api_key(
        &self,
        scope: &TenantScope,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let item = self.get(key(scope.pk(), format!("{APIKEY_PREFIX}{id}"))).await?;
        item.as_ref().map(api_key_from).transpose()
    }

    /// Revokes a key: both its record and its lookup entry go, in one transaction.
    pub async fn revoke_api_key(
        &self,
        scope: &TenantScope,
        key_record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let lookup_id = key_record
            .prefix
            .strip_prefix(domain::secrets::API_KEY_PREFIX)
            .ok_or_else(|| StoreError::Corrupt("key prefix".into()))?;
        let count = self
            .update(key(scope.pk(), TENANT_SK))
            .update_expression("ADD apiKeyCount :minus")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            self.delete_in(
                key(scope.pk(), format!("{APIKEY_PREFIX}{}", key_record.id)),
                Some("attribute_exists(pk)"),
            )?,
            self.delete_in(lookup_key(lookup_id), None)?,
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) if failed_conditions(&e).is_some() => Err(StoreError::NotFound),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    async fn find_api_key(&self, lookup_id: &str) -> Result<Option<ApiKeyLookup>, StoreError> {
        let Some(item) = self.get(lookup_key(lookup_id)).await? else { return Ok(None) };
        let corrupt = |what: &str| StoreError::Corrupt(what.to_owned());
        Ok(Some(ApiKeyLookup {
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?)
                .ok_or_else(|| corrupt("tenantId"))?,
            key_id: ApiKeyId::parse(get_s(&item, "keyId")?).ok_or_else(|| corrupt("keyId"))?,
            digest: get_s(&item, "digest")?.to_owned(),
        }))
    }

    // NOTE: the two ways the edge turns a verified credential into a tenant scope. A scope
    // exists only for a credential whose record is stored: a forged tenant id in a token
    // signed with our key still needs its user.

    /// The key whose lookup id and secret the caller presented, with its tenant's scope;
    /// `None` for an unknown key or a wrong secret.
    pub async fn authenticate_api_key(
        &self,
        lookup_id: &str,
        presented_digest: &str,
    ) -> Result<Option<(TenantScope, ApiKeyId)>, StoreError> {
        let Some(found) = self.find_api_key(lookup_id).await? else { return Ok(None) };
        if !domain::secrets::digests_equal(presented_digest, &found.digest) {
            return Ok(None);
        }
        Ok(Some((TenantScope::new(found.tenant_id), found.key_id)))
    }

    /// The user named by a verified access token, with its tenant's scope; `None` once
    /// the user is removed.
    pub async fn authenticate_user(
        &self,
        tenant: TenantId,
        user: &UserId,
    ) -> Result<Option<(TenantScope, UserRecord)>, StoreError> {
        let scope = TenantScope::new(tenant);
        Ok(self.get_user(&scope, user).await?.map(|record| (scope, record)))
    }

    /// Records use, at most once a minute per key, so that a busy integration does not
    /// turn every request into a write.
    pub async fn touch_api_key(
        &self,
        scope: &TenantScope,
        id: &ApiKeyId,
    ) -> Result<(), StoreError> {
        let now = now_secs();
        let result = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(scope.pk(), format!("{APIKEY_PREFIX}{id}"))))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt < :stale)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":stale", n(now - 60))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    // ------------------------------------------------------------------ refresh tokens

    /// Starts a login (token family) with its first refresh token.
    pub async fn start_login(
        &self,
        grant: &RefreshGrant,
        digest: &str,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        let family = with(
            family_key(&grant.family_id),
            [
                ("userId", s(grant.user_id.as_str())),
                ("tenantId", s(grant.tenant_id.as_str())),
                ("revoked", aws_sdk_dynamodb::types::AttributeValue::Bool(false)),
                ("expiresAt", n(expires_at)),
            ],
        );
        let items = vec![
            self.put_in(family, Some("attribute_not_exists(pk)"))?,
            self.put_in(
                self.refresh_item(grant, digest, expires_at),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        self.transact(items).await.map_err(dynamo_err)
    }

    fn refresh_item(&self, grant: &RefreshGrant, digest: &str, expires_at: i64) -> Item {
        with(
            refresh_key(digest),
            [
                ("userId", s(grant.user_id.as_str())),
                ("tenantId", s(grant.tenant_id.as_str())),
                ("familyId", s(&grant.family_id)),
                ("status", s("active")),
                ("expiresAt", n(expires_at)),
            ],
        )
    }

    /// Spends `old_digest` and issues `new_digest` in the same login. A token presented
    /// after it was spent (or raced by a concurrent refresh) revokes the whole login.
    pub async fn rotate_refresh(
        &self,
        old_digest: &str,
        new_digest: &str,
        expires_at: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let now = now_secs();
        let Some(item) = self.get(refresh_key(old_digest)).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        let grant = RefreshGrant {
            user_id: UserId::parse(get_s(&item, "userId")?).ok_or(StoreError::NotFound)?,
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?).ok_or(StoreError::NotFound)?,
            family_id: get_s(&item, "familyId")?.to_owned(),
        };
        if get_s(&item, "status")? != "active" {
            self.revoke_login(&grant.family_id).await?;
            return Ok(RotateOutcome::Reused);
        }
        if opt_n(&item, "expiresAt").is_some_and(|exp| exp <= now) {
            return Ok(RotateOutcome::Invalid);
        }
        let spend = self
            .update(refresh_key(old_digest))
            .update_expression("SET #status = :spent, spentAt = :now")
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":spent", s("spent"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(dynamo_err)?;
        let family_live = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(family_key(&grant.family_id)))
            .condition_expression("revoked = :false")
            .expression_attribute_values(
                ":false",
                aws_sdk_dynamodb::types::AttributeValue::Bool(false),
            )
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            TransactWriteItem::builder().update(spend).build(),
            self.put_in(
                self.refresh_item(&grant, new_digest, expires_at),
                Some("attribute_not_exists(pk)"),
            )?,
            TransactWriteItem::builder().condition_check(family_live).build(),
        ];
        match self.transact(items).await {
            Ok(()) => {
                let scope = TenantScope::new(grant.tenant_id.clone());
                Ok(RotateOutcome::Rotated(grant, scope))
            }
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => {
                    self.revoke_login(&grant.family_id).await?;
                    Ok(RotateOutcome::Reused)
                }
                Some(_) => Ok(RotateOutcome::Invalid),
                None => Err(dynamo_err(e)),
            },
        }
    }

    /// The login a refresh token belongs to, if the token is known.
    /// The stored grant of a refresh token, with its tenant's scope.
    pub async fn refresh_grant(
        &self,
        digest: &str,
    ) -> Result<Option<(RefreshGrant, TenantScope)>, StoreError> {
        let Some(item) = self.get(refresh_key(digest)).await? else { return Ok(None) };
        let grant = RefreshGrant {
            user_id: UserId::parse(get_s(&item, "userId")?).ok_or(StoreError::NotFound)?,
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?).ok_or(StoreError::NotFound)?,
            family_id: get_s(&item, "familyId")?.to_owned(),
        };
        let scope = TenantScope::new(grant.tenant_id.clone());
        Ok(Some((grant, scope)))
    }

    pub async fn revoke_login(&self, family_id: &str) -> Result<(), StoreError> {
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(family_key(family_id)))
            .update_expression("SET revoked = :true")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(
                ":true",
                aws_sdk_dynamodb::types::AttributeValue::Bool(true),
            )
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    pub async fn login_revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        let item = self.get(family_key(family_id)).await?;
        Ok(item.as_ref().and_then(|i| opt_bool(i, "revoked")).unwrap_or(true))
    }

    // ------------------------------------------------------------------ lockouts

    /// Seconds left on a lock of `scope`, if it is locked.
    pub async fn locked_for(&self, scope: &str) -> Result<Option<i64>, StoreError> {
        let now = now_secs();
        let item = self.get(lockout_key(scope)).await?;
        Ok(item
            .and_then(|i| opt_n(&i, "lockedUntil"))
            .filter(|until| *until > now)
            .map(|until| until - now))
    }

    /// Counts a failure of `scope` within a window of `window_secs`; from `threshold`
    /// failures on, the scope is locked for `lock_secs`. Returns whether this failure
    /// locked it.
    pub async fn record_failure(
        &self,
        scope: &str,
        threshold: i64,
        window_secs: i64,
        lock_secs: i64,
    ) -> Result<bool, StoreError> {
        let now = now_secs();
        let counted = self
            .db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lockout_key(scope)))
            .update_expression("ADD failures :one")
            .condition_expression("windowStart > :cutoff")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":cutoff", n(now - window_secs))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let failures = match counted {
            Ok(out) => out.attributes.as_ref().and_then(|a| opt_n(a, "failures")).unwrap_or(1),
            Err(e) if condition_failed(&e) => {
                // No window yet, or the last one ended: start a new one.
                let window = with(
                    lockout_key(scope),
                    [
                        ("failures", n(1)),
                        ("windowStart", n(now)),
                        ("expiresAt", n(now + window_secs + lock_secs)),
                    ],
                );
                super::write(&self.db, &self.table, window).await?;
                1
            }
            Err(e) => return Err(dynamo_err(e)),
        };
        if failures < threshold {
            return Ok(false);
        }
        self.db
            .update_item()
            .table_name(&self.table)
            .set_key(Some(lockout_key(scope)))
            .update_expression("SET lockedUntil = :until, expiresAt = :expires, failures = :zero, windowStart = :now")
            .expression_attribute_values(":until", n(now + lock_secs))
            .expression_attribute_values(":expires", n(now + lock_secs + window_secs))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map_err(dynamo_err)?;
        Ok(true)
    }

    pub async fn clear_failures(&self, scope: &str) -> Result<(), StoreError> {
        self.db
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(lockout_key(scope)))
            .condition_expression("attribute_not_exists(lockedUntil) OR lockedUntil < :now")
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    // ------------------------------------------------------------------ audit

    pub async fn audit(&self, scope: &TenantScope, entry: AuditEntry) -> Result<(), StoreError> {
        let tenant = scope.tenant_id();
        let now = now_secs();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut item = with(
            key(format!("TENANT#{tenant}"), format!("{AUDIT_PREFIX}{}#{id}", rfc3339(now))),
            [
                ("type", s("audit")),
                ("action", s(entry.action)),
                ("detail", s(entry.detail.to_string())),
                ("at", n(now)),
                ("expiresAt", n(now + AUDIT_TTL_SECS)),
            ],
        );
        if let Some(actor) = entry.actor_id {
            item.insert("actorId".into(), s(actor));
        }
        if let Some(target) = entry.target_id {
            item.insert("targetId".into(), s(target));
        }
        super::write(&self.db, &self.table, item).await?;
        Ok(())
    }
}
