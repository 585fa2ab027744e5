//! A WhatsApp Web session's key material (what a driver such as whatsapp-rust keeps:
//! identities, sessions, pre-keys, sender keys, app-state keys, …) in the pool table, as
//! named values in namespaces, each sealed under the session's own data key.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | the session's data key | `TENANT#<tid>` | `SESSION#DATAKEY` | KMS-wrapped (tenant as encryption context), made once |
//! | a value | `TENANT#<tid>` | `WA#<namespace>#<key>` | `v`: AES-256-GCM under the data key, the tenant, namespace and key bound as associated data; `epoch` of the write; `at`, a time in clear when the value has one (what expiry sweeps select on) |
//!
//! Every write is fenced like the session's other writes (`PoolStore`): a transaction whose
//! first item checks the connection's lease and epoch, so a host that lost the lease writes
//! nothing. Writes of several values are one transaction per 99 values (DynamoDB's limit is
//! 100 items with the fence); a batch larger than that is several transactions.
//!
//! The data key is unwrapped once (one KMS call) and then seals and opens locally, so a
//! value costs no KMS request.

use super::attrs::{Item, key, n, opt_s};
use super::pool::{Fence, Fenced};
use super::table::Table;
use super::{StoreError, TenantScope};
use crate::aws::envelope::{DataKey, EnvelopeError, Envelopes};
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use std::collections::BTreeMap;

const DATA_KEY_SK: &str = "SESSION#DATAKEY";
const VALUE_PREFIX: &str = "WA#";
/// Values per transaction, beside the fence.
const PER_TRANSACTION: usize = 99;

#[derive(Debug, thiserror::Error)]
pub enum KeysError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Envelope(#[from] EnvelopeError),
}

/// A namespace and key: what a value is.
fn label(namespace: &str, name: &str) -> String {
    format!("{namespace}#{name}")
}

fn value_key(scope: &TenantScope, namespace: &str, name: &str) -> Item {
    key(scope.pk(), format!("{VALUE_PREFIX}{}", label(namespace, name)))
}

/// One change of a write: a value set, or removed (`None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub namespace: String,
    pub name: String,
    pub value: Option<Vec<u8>>,
    /// A time kept in clear beside the value (epoch seconds), for [`SessionKeys::names_at_most`].
    pub at: Option<i64>,
}

impl Change {
    pub fn set(namespace: impl Into<String>, name: impl Into<String>, value: Vec<u8>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), value: Some(value), at: None }
    }

    pub fn remove(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self { namespace: namespace.into(), name: name.into(), value: None, at: None }
    }

    /// The value's time, in clear.
    pub fn at(mut self, at: i64) -> Self {
        self.at = Some(at);
        self
    }
}

/// The changes with each value's last change only, in order: a transaction may not name
/// an item twice.
pub fn distinct(changes: &[Change]) -> std::borrow::Cow<'_, [Change]> {
    let mut last = std::collections::HashMap::new();
    for (i, change) in changes.iter().enumerate() {
        last.insert((change.namespace.as_str(), change.name.as_str()), i);
    }
    if last.len() == changes.len() {
        return std::borrow::Cow::Borrowed(changes);
    }
    changes
        .iter()
        .enumerate()
        .filter(|(i, c)| last.get(&(c.namespace.as_str(), c.name.as_str())) == Some(i))
        .map(|(_, c)| c.clone())
        .collect()
}

#[derive(Clone, Debug)]
pub struct SessionKeys {
    table: Table,
    envelopes: Envelopes,
    pool: super::pool::PoolStore,
}

/// A session's opened key ring: its data key, for its tenant.
pub struct KeyRing {
    scope: TenantScope,
    key: DataKey,
}

impl SessionKeys {
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self {
            table: Table::new(clients.dynamodb.clone(), resources.pool_table.clone()),
            envelopes: Envelopes::new(clients.kms.clone(), resources.kms_key_id.clone()),
            pool: super::pool::PoolStore::of(clients, resources),
        }
    }

    /// The session's key ring: its data key unwrapped, or made (and stored) the first time.
    pub async fn open(&self, scope: &TenantScope) -> Result<KeyRing, KeysError> {
        let tenant = scope.tenant_id();
        let stored = |item: &Item| match item.get("wrapped") {
            Some(AttributeValue::B(blob)) => Some(blob.as_ref().to_vec()),
            _ => None,
        };
        if let Some(wrapped) =
            self.table.get(key(scope.pk(), DATA_KEY_SK)).await?.as_ref().and_then(stored)
        {
            let key = self.envelopes.data_key(tenant, &wrapped).await?;
            return Ok(KeyRing { scope: scope.clone(), key });
        }
        let (made, wrapped) = self.envelopes.new_data_key(tenant).await?;
        let mut item = key_item(scope);
        item.insert("wrapped".into(), AttributeValue::B(Blob::new(wrapped)));
        if self.table.put_if_absent(item).await? {
            return Ok(KeyRing { scope: scope.clone(), key: made });
        }
        // Another host made it first: that one is the session's.
        let wrapped = self
            .table
            .get(key(scope.pk(), DATA_KEY_SK))
            .await?
            .as_ref()
            .and_then(stored)
            .ok_or_else(|| StoreError::Corrupt("session data key vanished".into()))?;
        Ok(KeyRing { scope: scope.clone(), key: self.envelopes.data_key(tenant, &wrapped).await? })
    }

    /// One value, opened.
    pub async fn get(
        &self,
        ring: &KeyRing,
        namespace: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>, KeysError> {
        let item = self.table.get(value_key(&ring.scope, namespace, name)).await?;
        match item.as_ref().and_then(|i| i.get("v")) {
            Some(AttributeValue::B(sealed)) => {
                Ok(Some(ring.key.open(&label(namespace, name), sealed.as_ref())?))
            }
            _ => Ok(None),
        }
    }

    /// Several values of a namespace (those that exist), 100 keys a request.
    pub async fn get_many(
        &self,
        ring: &KeyRing,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<u8>>, KeysError> {
        let keys = names.iter().map(|name| value_key(&ring.scope, namespace, name)).collect();
        let mut out = BTreeMap::new();
        for item in self.table.batch_get(keys).await? {
            self.collect(ring, namespace, &item, &mut out)?;
        }
        Ok(out)
    }

    /// Every value of a namespace, by name.
    pub async fn list(
        &self,
        ring: &KeyRing,
        namespace: &str,
    ) -> Result<BTreeMap<String, Vec<u8>>, KeysError> {
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .expression_attribute_values(":pk", AttributeValue::S(ring.scope.pk()))
            .expression_attribute_values(
                ":prefix",
                AttributeValue::S(format!("{VALUE_PREFIX}{namespace}#")),
            )
            .consistent_read(true);
        let mut out = BTreeMap::new();
        for item in self.table.query_all(query).await? {
            self.collect(ring, namespace, &item, &mut out)?;
        }
        Ok(out)
    }

    fn collect(
        &self,
        ring: &KeyRing,
        namespace: &str,
        item: &Item,
        out: &mut BTreeMap<String, Vec<u8>>,
    ) -> Result<(), KeysError> {
        let prefix = format!("{VALUE_PREFIX}{namespace}#");
        let Some(name) = opt_s(item, "sk").and_then(|sk| sk.strip_prefix(&prefix)) else {
            return Ok(());
        };
        if let Some(AttributeValue::B(sealed)) = item.get("v") {
            out.insert(name.to_owned(), ring.key.open(&label(namespace, name), sealed.as_ref())?);
        }
        Ok(())
    }

    /// Writes the changes under the fence: nothing is written once the lease is lost. A
    /// value named twice is written once, as its last change says ([`distinct`]).
    pub async fn write(
        &self,
        fence: &Fence,
        ring: &KeyRing,
        changes: &[Change],
    ) -> Result<Fenced, KeysError> {
        for chunk in distinct(changes).chunks(PER_TRANSACTION) {
            let mut items = vec![self.pool.fence_check(fence)?];
            for change in chunk {
                let at = value_key(&ring.scope, &change.namespace, &change.name);
                items.push(match &change.value {
                    Some(value) => {
                        let sealed =
                            ring.key.seal(&label(&change.namespace, &change.name), value)?;
                        let mut item = at;
                        item.insert("v".into(), AttributeValue::B(Blob::new(sealed)));
                        item.insert("epoch".into(), n(fence.epoch));
                        if let Some(at) = change.at {
                            item.insert("at".into(), n(at));
                        }
                        self.table.put_in(item, None)?
                    }
                    None => self.table.delete_in(at, None)?,
                });
            }
            match self.pool.fenced(items).await? {
                Fenced::Written => {}
                other => return Ok(other),
            }
        }
        Ok(Fenced::Written)
    }

    /// The names of a namespace's values whose time (`Change::at`) is set and at most
    /// `max_at`: what an expiry sweep deletes. Reads keys and times only.
    pub async fn names_at_most(
        &self,
        ring: &KeyRing,
        namespace: &str,
        max_at: i64,
    ) -> Result<Vec<String>, KeysError> {
        let prefix = format!("{VALUE_PREFIX}{namespace}#");
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .filter_expression("#at <= :max")
            .projection_expression("sk")
            .expression_attribute_names("#at", "at")
            .expression_attribute_values(":pk", AttributeValue::S(ring.scope.pk()))
            .expression_attribute_values(":prefix", AttributeValue::S(prefix.clone()))
            .expression_attribute_values(":max", n(max_at))
            .consistent_read(true);
        Ok(self
            .table
            .query_all(query)
            .await?
            .iter()
            .filter_map(|item| opt_s(item, "sk")?.strip_prefix(&prefix).map(str::to_owned))
            .collect())
    }

    /// Deletes every value of the session (the device was unlinked), under the fence.
    pub async fn forget(&self, fence: &Fence, scope: &TenantScope) -> Result<Fenced, KeysError> {
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :prefix)")
            .projection_expression("pk, sk")
            .expression_attribute_values(":pk", AttributeValue::S(scope.pk()))
            .expression_attribute_values(":prefix", AttributeValue::S(VALUE_PREFIX.into()))
            .consistent_read(true);
        let keys = self.table.query_all(query).await?;
        for chunk in keys.chunks(PER_TRANSACTION) {
            let mut items = vec![self.pool.fence_check(fence)?];
            for item in chunk {
                items.push(self.table.delete_in(item.clone(), None)?);
            }
            match self.pool.fenced(items).await? {
                Fenced::Written => {}
                other => return Ok(other),
            }
        }
        Ok(Fenced::Written)
    }
}

fn key_item(scope: &TenantScope) -> Item {
    key(scope.pk(), DATA_KEY_SK)
}
