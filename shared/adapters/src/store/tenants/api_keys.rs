//! A tenant's API keys: stored as digests, found by a public lookup id.

use super::*;
use crate::store::attrs::{get_s, key, n, now_secs, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, dynamo_err, failed_conditions, written};

/// A tenant's API keys.
#[derive(Clone, Copy, Debug)]
pub struct ApiKeys<'a> {
    pub(crate) table: &'a Table,
}

impl ApiKeys<'_> {
    pub async fn create(
        &self,
        scope: &TenantScope,
        id: &ApiKeyId,
        name: &str,
        lookup_id: &str,
        digest: &str,
    ) -> Result<ApiKeyRecord, StoreError> {
        let now = now_secs();
        let max_keys = Tenants { table: self.table }.get(scope).await?.tier.limits().max_api_keys;
        let count = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
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
            self.table.put_in(record.clone(), Some("attribute_not_exists(pk)"))?,
            self.table.put_in(lookup, Some("attribute_not_exists(pk)"))?,
        ];
        match self.table.transact(items).await {
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

    pub async fn list(
        &self,
        scope: &TenantScope,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<ApiKeyRecord>, StoreError> {
        self.table.page(&scope.pk(), APIKEY_PREFIX, limit, cursor, api_key_from).await
    }

    pub async fn get(
        &self,
        scope: &TenantScope,
        id: &ApiKeyId,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let item = self.table.get(key(scope.pk(), format!("{APIKEY_PREFIX}{id}"))).await?;
        item.as_ref().map(api_key_from).transpose()
    }

    /// Revokes a key: both its record and its lookup entry go, in one transaction.
    pub async fn revoke(
        &self,
        scope: &TenantScope,
        key_record: &ApiKeyRecord,
    ) -> Result<(), StoreError> {
        let lookup_id = key_record
            .prefix
            .strip_prefix(domain::secrets::API_KEY_PREFIX)
            .ok_or_else(|| StoreError::Corrupt("key prefix".into()))?;
        let count = self
            .table
            .update_of(key(scope.pk(), TENANT_SK))
            .update_expression("ADD apiKeyCount :minus")
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(dynamo_err)?;
        let items = vec![
            self.table.delete_in(
                key(scope.pk(), format!("{APIKEY_PREFIX}{}", key_record.id)),
                Some("attribute_exists(pk)"),
            )?,
            self.table.delete_in(lookup_key(lookup_id), None)?,
            TransactWriteItem::builder().update(count).build(),
        ];
        match self.table.transact(items).await {
            Ok(()) => Ok(()),
            Err(e) if failed_conditions(&e).is_some() => Err(StoreError::NotFound),
            Err(e) => Err(dynamo_err(e)),
        }
    }

    async fn find(&self, lookup_id: &str) -> Result<Option<ApiKeyLookup>, StoreError> {
        let Some(item) = self.table.get(lookup_key(lookup_id)).await? else { return Ok(None) };
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
    pub async fn authenticate(
        &self,
        lookup_id: &str,
        presented_digest: &str,
    ) -> Result<Option<(TenantScope, ApiKeyId)>, StoreError> {
        let Some(found) = self.find(lookup_id).await? else { return Ok(None) };
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
        Ok(Users { table: self.table }.get(&scope, user).await?.map(|record| (scope, record)))
    }

    /// Records use, at most once a minute per key, so that a busy integration does not
    /// turn every request into a write.
    pub async fn touch(&self, scope: &TenantScope, id: &ApiKeyId) -> Result<(), StoreError> {
        let now = now_secs();
        let result = self.table.update(key(scope.pk(), format!("{APIKEY_PREFIX}{id}")))
            .update_expression("SET lastUsedAt = :now")
            .condition_expression("attribute_exists(pk) AND (attribute_not_exists(lastUsedAt) OR lastUsedAt < :stale)")
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":stale", n(now - 60))
            .send()
            .await;
        written(result).map(|_| ())
    }
}
