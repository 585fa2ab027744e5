//! Logins: refresh-token families (rotated on every use, revoked whole on reuse) and the
//! lockouts that slow password guessing.

use super::*;
use crate::store::attrs::{Item, get_s, n, now_secs, opt_bool, opt_n, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions};

/// Logins and lockouts.
#[derive(Clone, Copy, Debug)]
pub struct Logins<'a> {
    pub(crate) table: &'a Table,
}

impl Logins<'_> {
    /// Starts a login (token family) with its first refresh token.
    pub async fn start(
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
            self.table.put_in(family, Some("attribute_not_exists(pk)"))?,
            self.table.put_in(
                self.refresh_item(grant, digest, expires_at),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        self.table.transact(items).await.map_err(dynamo_err)
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
    pub async fn rotate(
        &self,
        old_digest: &str,
        new_digest: &str,
        expires_at: i64,
    ) -> Result<RotateOutcome, StoreError> {
        let now = now_secs();
        let Some(item) = self.table.get(refresh_key(old_digest)).await? else {
            return Ok(RotateOutcome::Invalid);
        };
        let grant = RefreshGrant {
            user_id: UserId::parse(get_s(&item, "userId")?).ok_or(StoreError::NotFound)?,
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?).ok_or(StoreError::NotFound)?,
            family_id: get_s(&item, "familyId")?.to_owned(),
        };
        if get_s(&item, "status")? != "active" {
            self.revoke(&grant.family_id).await?;
            return Ok(RotateOutcome::Reused);
        }
        if opt_n(&item, "expiresAt").is_some_and(|exp| exp <= now) {
            return Ok(RotateOutcome::Invalid);
        }
        let spend = self
            .table
            .update_of(refresh_key(old_digest))
            .update_expression("SET #status = :spent, spentAt = :now")
            .condition_expression("#status = :active")
            .expression_attribute_names("#status", "status")
            .expression_attribute_values(":spent", s("spent"))
            .expression_attribute_values(":active", s("active"))
            .expression_attribute_values(":now", n(now))
            .build()
            .map_err(dynamo_err)?;
        let family_live = ConditionCheck::builder()
            .table_name(self.table.name())
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
            self.table.put_in(
                self.refresh_item(&grant, new_digest, expires_at),
                Some("attribute_not_exists(pk)"),
            )?,
            TransactWriteItem::builder().condition_check(family_live).build(),
        ];
        match self.table.transact(items).await {
            Ok(()) => {
                let scope = TenantScope::new(grant.tenant_id.clone());
                Ok(RotateOutcome::Rotated(grant, scope))
            }
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => {
                    self.revoke(&grant.family_id).await?;
                    Ok(RotateOutcome::Reused)
                }
                Some(_) => Ok(RotateOutcome::Invalid),
                None => Err(dynamo_err(e)),
            },
        }
    }

    /// The login a refresh token belongs to, if the token is known.
    /// The stored grant of a refresh token, with its tenant's scope.
    pub async fn grant(
        &self,
        digest: &str,
    ) -> Result<Option<(RefreshGrant, TenantScope)>, StoreError> {
        let Some(item) = self.table.get(refresh_key(digest)).await? else { return Ok(None) };
        let grant = RefreshGrant {
            user_id: UserId::parse(get_s(&item, "userId")?).ok_or(StoreError::NotFound)?,
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?).ok_or(StoreError::NotFound)?,
            family_id: get_s(&item, "familyId")?.to_owned(),
        };
        let scope = TenantScope::new(grant.tenant_id.clone());
        Ok(Some((grant, scope)))
    }

    pub async fn revoke(&self, family_id: &str) -> Result<(), StoreError> {
        self.table
            .update(family_key(family_id))
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

    pub async fn revoked(&self, family_id: &str) -> Result<bool, StoreError> {
        let item = self.table.get(family_key(family_id)).await?;
        Ok(item.as_ref().and_then(|i| opt_bool(i, "revoked")).unwrap_or(true))
    }

    /// Seconds left on a lock of `scope`, if it is locked.
    pub async fn locked_for(&self, scope: &str) -> Result<Option<i64>, StoreError> {
        let now = now_secs();
        let item = self.table.get(lockout_key(scope)).await?;
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
            .table
            .update(lockout_key(scope))
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
                self.table.put(window).await?;
                1
            }
            Err(e) => return Err(dynamo_err(e)),
        };
        if failures < threshold {
            return Ok(false);
        }
        self.table.update(lockout_key(scope))
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
        self.table
            .client()
            .delete_item()
            .table_name(self.table.name())
            .set_key(Some(lockout_key(scope)))
            .condition_expression("attribute_not_exists(lockedUntil) OR lockedUntil < :now")
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }
}
