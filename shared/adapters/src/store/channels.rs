//! The tenant's WhatsApp channel (one per tenant), in the tenants table.
//!
//! | item | pk | sk |
//! |---|---|---|
//! | channel | `TENANT#<tid>` | `CHANNEL` |
//! | phone number id → tenant | `PHONE#<phone number id>` | `PHONE` |
//! | a gateway channel, for its scheduled health checks | `GATEWAYS` | `<tid>` |
//!
//! Secrets are one KMS envelope (see `aws::envelope`); only a hint (the last four
//! characters of a long secret, see `domain::channel::secret_hint`) is kept in clear.

use super::attrs::{Item, get_s, key, n, now_secs, opt_n, opt_s, rfc3339, s};
use super::table::Table;
use super::{StoreError, TenantScope, condition_failed, dynamo_err};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{Delete, Put, TransactWriteItem};
use domain::channel::{ChannelConfig, Provider};
use domain::ids::TenantId;
use std::collections::BTreeMap;

const CHANNEL_SK: &str = "CHANNEL";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelRecord {
    /// The provider and its non-secret settings.
    pub config: ChannelConfig,
    /// The secrets' envelope, opened only where they are used.
    pub sealed_secrets: Option<String>,
    /// A hint of each secret (empty for short ones).
    pub secret_hints: BTreeMap<String, String>,
    pub health_status: String,
    pub last_health_check: Option<String>,
    pub updated_at: String,
}

#[derive(Clone, Debug)]
pub struct ChannelStore {
    pub(super) table: Table,
}

const GATEWAYS_PK: &str = "GATEWAYS";

fn gateway_key(tenant: &str) -> Item {
    key(GATEWAYS_PK, tenant)
}

fn phone_key(phone_number_id: &str) -> Item {
    key(format!("PHONE#{phone_number_id}"), "PHONE")
}

fn channel_from(item: &Item) -> Result<ChannelRecord, StoreError> {
    let map = |name: &str| -> BTreeMap<String, String> {
        opt_s(item, name).and_then(|v| serde_json::from_str(v).ok()).unwrap_or_default()
    };
    let provider = get_s(item, "provider")?;
    let provider = Provider::parse(provider)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown channel provider {provider}")))?;
    let config = ChannelConfig::from_settings(provider, &map("settings"))
        .map_err(|name| StoreError::Corrupt(format!("channel without {name}")))?;
    Ok(ChannelRecord {
        config,
        sealed_secrets: opt_s(item, "secrets").map(str::to_owned),
        secret_hints: map("secretHints"),
        health_status: opt_s(item, "healthStatus").unwrap_or("unknown").to_owned(),
        last_health_check: opt_n(item, "lastHealthCheck").map(rfc3339),
        updated_at: rfc3339(opt_n(item, "updatedAt").unwrap_or_default()),
    })
}

impl ChannelStore {
    pub fn new(db: Client, table: impl Into<String>) -> Self {
        Self { table: Table::new(db, table) }
    }

    pub async fn get(&self, scope: &TenantScope) -> Result<Option<ChannelRecord>, StoreError> {
        self.get_for(scope.tenant_id()).await
    }

    /// The channel of a tenant named in a webhook URL. Webhooks carry no bearer token:
    /// their signature, checked with this channel's secret, is what authenticates them.
    pub async fn get_for(&self, tenant: &TenantId) -> Result<Option<ChannelRecord>, StoreError> {
        let item = self.table.get(key(TenantScope::new(tenant.clone()).pk(), CHANNEL_SK)).await?;
        item.as_ref().map(channel_from).transpose()
    }

    /// The tenant whose cloud channel uses `phone_number_id` (a platform webhook names the
    /// number; the number's owner is the tenant it is for).
    pub async fn tenant_of_phone(
        &self,
        phone_number_id: &str,
    ) -> Result<Option<TenantScope>, StoreError> {
        let item = self.table.get(phone_key(phone_number_id)).await?;
        let tenant = item.as_ref().and_then(|i| opt_s(i, "tenantId")).and_then(TenantId::parse);
        Ok(tenant.map(TenantScope::new))
    }

    /// Replaces the tenant's channel. A phone number id already used by another tenant's
    /// channel is a conflict.
    pub async fn put(
        &self,
        scope: &TenantScope,
        channel: &ChannelRecord,
    ) -> Result<(), StoreError> {
        let previous = self.get(scope).await?;
        let tenant = scope.tenant_id().as_str();
        let settings = serde_json::to_string(&channel.config.settings())
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let hints = serde_json::to_string(&channel.secret_hints)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut item = key(scope.pk(), CHANNEL_SK);
        item.insert("provider".into(), s(channel.config.provider().as_str()));
        item.insert("settings".into(), s(settings));
        item.insert("secretHints".into(), s(hints));
        item.insert("healthStatus".into(), s("unknown"));
        item.insert("updatedAt".into(), n(now_secs()));
        if let Some(sealed) = &channel.sealed_secrets {
            item.insert("secrets".into(), s(sealed));
        }
        let put = |item: Item, condition: Option<&str>| -> Result<TransactWriteItem, StoreError> {
            let mut builder = Put::builder().table_name(self.table.name()).set_item(Some(item));
            if let Some(condition) = condition {
                builder = builder
                    .condition_expression(condition)
                    .expression_attribute_values(":tenant", s(tenant));
            }
            Ok(TransactWriteItem::builder().put(builder.build().map_err(dynamo_err)?).build())
        };
        let mut items = vec![put(item, None)?];
        let new_phone = channel.config.phone_number_id();
        if let Some(phone) = new_phone {
            let mut lookup = phone_key(phone);
            lookup.insert("tenantId".into(), s(tenant));
            items.push(put(lookup, Some("attribute_not_exists(pk) OR tenantId = :tenant"))?);
        }
        // Gateways are listed for their scheduled health checks.
        if let ChannelConfig::Gateway { health_check_interval, .. } = &channel.config {
            let mut listed = gateway_key(tenant);
            listed.insert("interval".into(), n(*health_check_interval));
            items.push(put(listed, None)?);
        } else if previous.as_ref().is_some_and(|p| p.config.provider() == Provider::Gateway) {
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(gateway_key(tenant)))
                .build()
                .map_err(dynamo_err)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        if let Some(old) = previous.as_ref().and_then(|p| p.config.phone_number_id())
            && Some(old) != new_phone
        {
            let delete = Delete::builder()
                .table_name(self.table.name())
                .set_key(Some(phone_key(old)))
                .build()
                .map_err(dynamo_err)?;
            items.push(TransactWriteItem::builder().delete(delete).build());
        }
        match self.table.transact(items).await {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(_)) => {
                    Err(StoreError::Conflict)
                }
                _ => Err(dynamo_err(e)),
            },
        }
    }

    pub async fn delete(&self, scope: &TenantScope) -> Result<bool, StoreError> {
        let Some(previous) = self.get(scope).await? else { return Ok(false) };
        let mut items = vec![
            TransactWriteItem::builder()
                .delete(
                    Delete::builder()
                        .table_name(self.table.name())
                        .set_key(Some(key(scope.pk(), CHANNEL_SK)))
                        .build()
                        .map_err(dynamo_err)?,
                )
                .build(),
        ];
        if previous.config.provider() == Provider::Gateway {
            items.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.table.name())
                            .set_key(Some(gateway_key(scope.tenant_id().as_str())))
                            .build()
                            .map_err(dynamo_err)?,
                    )
                    .build(),
            );
        }
        if let Some(phone) = previous.config.phone_number_id() {
            items.push(
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.table.name())
                            .set_key(Some(phone_key(phone)))
                            .build()
                            .map_err(dynamo_err)?,
                    )
                    .build(),
            );
        }
        self.table.transact(items).await.map_err(dynamo_err)?;
        Ok(true)
    }

    /// The tenants with a gateway channel whose health check is due at `now` (its last
    /// check is older than its interval, or it has had none).
    pub async fn gateways_due(&self, now: i64) -> Result<Vec<TenantScope>, StoreError> {
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk")
            .expression_attribute_values(":pk", s(GATEWAYS_PK));
        let items = self.table.query_all(query).await?;
        Ok(items
            .iter()
            .filter(|item| {
                let interval = opt_n(item, "interval").unwrap_or(60);
                opt_n(item, "checkedAt").is_none_or(|at| at + interval <= now)
            })
            .filter_map(|item| opt_s(item, "sk").and_then(TenantId::parse))
            .map(TenantScope::new)
            .collect())
    }

    /// A gateway's scheduled check was made at `now`.
    pub async fn gateway_checked(&self, tenant: &TenantId, now: i64) -> Result<(), StoreError> {
        self.table
            .update(gateway_key(tenant.as_str()))
            .update_expression("SET checkedAt = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":now", n(now))
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    /// After a health check, or when the sender learns from Meta that a token no longer
    /// works.
    pub async fn record_health(
        &self,
        scope: &TenantScope,
        healthy: Option<bool>,
    ) -> Result<(), StoreError> {
        let status = match healthy {
            Some(true) => "healthy",
            Some(false) => "unhealthy",
            None => "unknown",
        };
        self.table
            .update(key(scope.pk(), CHANNEL_SK))
            .update_expression("SET healthStatus = :status, lastHealthCheck = :now")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":status", s(status))
            .expression_attribute_values(":now", n(now_secs()))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| if condition_failed(&e) { StoreError::NotFound } else { dynamo_err(e) })
    }
}
