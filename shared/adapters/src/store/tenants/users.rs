//! Users of a tenant: their records, the email index that makes an email one account,
//! and their presence (for auto-assignment).

use super::*;
use crate::store::attrs::{get_s, key, n, now_secs, opt_n, opt_s, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions};

/// A tenant's users.
#[derive(Clone, Copy, Debug)]
pub struct Users<'a> {
    pub(crate) table: &'a Table,
}

impl Users<'_> {
    /// The user an email belongs to, across tenants: only login uses this.
    pub async fn find_by_email(&self, email: &Email) -> Result<Option<UserRecord>, StoreError> {
        let pointer = self.table.get(email_key(email)).await?;
        // NOTE: an unknown email still makes the second read (of a key that cannot exist),
        // so that login costs the same whether or not the account exists.
        let user_key = match &pointer {
            Some(p) => key(
                format!("TENANT#{}", get_s(p, "tenantId")?),
                format!("{USER_PREFIX}{}", get_s(p, "userId")?),
            ),
            None => key("TENANT#-", format!("{USER_PREFIX}-")),
        };
        let item = self.table.get(user_key).await?;
        match pointer {
            Some(_) => item.as_ref().map(user_from).transpose(),
            None => Ok(None),
        }
    }

    pub async fn get(
        &self,
        scope: &TenantScope,
        user: &UserId,
    ) -> Result<Option<UserRecord>, StoreError> {
        let item = self.table.get(key(scope.pk(), format!("{USER_PREFIX}{user}"))).await?;
        item.as_ref().map(user_from).transpose()
    }

    pub async fn create(
        &self,
        scope: &TenantScope,
        user: &NewUser,
    ) -> Result<UserRecord, StoreError> {
        let now = now_secs();
        let max_users = Tenants { table: self.table }.get(scope).await?.tier.limits().max_users;
        let count = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
            .update_expression("ADD userCount :one, adminCount :admin")
            .condition_expression("attribute_exists(pk) AND userCount < :max")
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":admin", n(i64::from(user.role == Role::TenantAdmin)))
            .expression_attribute_values(":max", n(max_users))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            TransactWriteItem::builder().update(count).build(),
            self.table.put_in(
                user_item(&scope.pk(), scope.tenant_id(), user, now),
                Some("attribute_not_exists(pk)"),
            )?,
            self.table.put_in(
                email_item(&user.email, scope.tenant_id(), &user.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.table.transact(items).await {
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
        self.get(scope, &user.id).await?.ok_or(StoreError::Conflict)
    }

    pub async fn list(
        &self,
        scope: &TenantScope,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<UserRecord>, StoreError> {
        self.table.page(&scope.pk(), USER_PREFIX, limit, cursor, user_from).await
    }

    /// Removes a user and frees their email. Removing the last TENANT_ADMIN fails.
    pub async fn delete(&self, scope: &TenantScope, user: &UserRecord) -> Result<(), StoreError> {
        let is_admin = i64::from(user.role == Role::TenantAdmin);
        let counts = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
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
            self.table.delete_in(
                key(scope.pk(), format!("{USER_PREFIX}{}", user.id)),
                Some("attribute_exists(pk)"),
            )?,
            self.table.delete_in(email_key(&email), None)?,
        ];
        match self.table.transact(items).await {
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
    pub async fn update(
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
            .table
            .update_of(key(scope.pk(), format!("{USER_PREFIX}{}", user.id)))
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
            .table
            .update_of(key(scope.pk(), TENANT_SK))
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
        match self.table.transact(items).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match failed_conditions(&e) {
                    Some(failed) if failed.get(1) == Some(&true) => StoreError::LastAdmin,
                    Some(_) => StoreError::Conflict,
                    None => dynamo_err(e),
                });
            }
        }
        self.get(scope, &user.id).await?.ok_or(StoreError::NotFound)
    }

    /// Notes that a user has a live session (login, token refresh) or ended it (logout).
    /// An agent seen within [`ONLINE_FOR_SECS`] is online for auto-assignment.
    pub async fn mark_seen(
        &self,
        scope: &TenantScope,
        user: &UserId,
        online: bool,
    ) -> Result<(), StoreError> {
        self.table
            .update(key(scope.pk(), format!("{USER_PREFIX}{user}")))
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
        let pk = scope.pk();
        let since = now_secs() - ONLINE_FOR_SECS;
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .filter_expression("#role = :agent AND lastSeenAt >= :since")
            .expression_attribute_names("#role", "role")
            .expression_attribute_values(":pk", s(&pk))
            .expression_attribute_values(":prefix", s(USER_PREFIX))
            .expression_attribute_values(":agent", s(Role::Agent.as_str()))
            .expression_attribute_values(":since", n(since));
        let mut online: Vec<UserId> = self
            .table
            .query_all(query)
            .await?
            .iter()
            .filter_map(|i| UserId::parse(opt_s(i, "userId")?))
            .collect();
        if online.is_empty() {
            return Ok(None);
        }
        online.sort_by(|a, b| a.as_str().cmp(b.as_str()));
        let turn = self
            .table
            .update(key(&pk, TENANT_SK))
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
}
