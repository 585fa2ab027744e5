//! Tenants: registration (a tenant and its first admin at once), the operator account,
//! settings.

use super::*;
use crate::store::attrs::{key, n, now_secs, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, condition_failed, dynamo_err, failed_conditions};

/// Tenants.
#[derive(Clone, Copy, Debug)]
pub struct Tenants<'a> {
    pub(crate) table: &'a Table,
}

impl Tenants<'_> {
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
            self.table.put_in(tenant_item, Some("attribute_not_exists(pk)"))?,
            self.table.put_in(user_item(&scope.pk(), &tenant_id, admin, now), None)?,
            self.table.put_in(
                email_item(&admin.email, &tenant_id, &admin.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.table.transact(items).await {
            Ok(()) => {}
            Err(e) => {
                return Err(match failed_conditions(&e) {
                    Some(failed) if failed.get(2) == Some(&true) => StoreError::EmailTaken,
                    Some(failed) if failed.first() == Some(&true) => StoreError::Conflict,
                    _ => dynamo_err(e),
                });
            }
        }
        let tenant = self.get(&scope).await?;
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
        if self.table.get(email_key(email)).await?.is_some() {
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
        if self.table.get(key(scope.pk(), TENANT_SK)).await?.is_none() {
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
            self.table.put_in(user_item(&scope.pk(), scope.tenant_id(), &operator, now), None)?,
            self.table.put_in(
                email_item(email, scope.tenant_id(), &operator.id),
                Some("attribute_not_exists(pk)"),
            )?,
        ];
        match self.table.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) if failed_conditions(&e).is_some() => Ok(false),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    pub async fn get(&self, scope: &TenantScope) -> Result<TenantRecord, StoreError> {
        self.find(scope).await?.ok_or(StoreError::NotFound)
    }

    /// For queue processors: the tenant id in their work was put there by an
    /// authenticated request (or a verified webhook), not by a caller of this process.
    /// The scope of a tenant an operator names, if it exists.
    pub async fn existing(&self, tenant: &TenantId) -> Result<Option<TenantScope>, StoreError> {
        let scope = TenantScope::new(tenant.clone());
        let item = self.table.get(key(scope.pk(), TENANT_SK)).await?;
        Ok(item.map(|_| scope))
    }

    /// The tenant's record; `None` when it is gone (a queued record may outlive it).
    pub async fn find(&self, scope: &TenantScope) -> Result<Option<TenantRecord>, StoreError> {
        let item = self.table.get(key(scope.pk(), TENANT_SK)).await?;
        item.as_ref().map(tenant_from).transpose()
    }

    pub async fn update(
        &self,
        scope: &TenantScope,
        name: Option<&str>,
        branding: Option<&Branding>,
        settings: Option<&Settings>,
    ) -> Result<TenantRecord, StoreError> {
        let mut sets = vec!["updatedAt = :now".to_owned()];
        let mut update = self
            .table
            .update(key(scope.pk(), TENANT_SK))
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
}
