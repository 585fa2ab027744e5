//! whatsapp-rust's storage traits (signal, app state, protocol, message secrets, device)
//! over the session's key store in the pool table (`adapters::store::session_keys`).
//!
//! - Every value is an item `TENANT#<tid>` / `WA#<namespace>#<name>`, sealed under the
//!   session's own data key (KMS-wrapped with the tenant as context).
//! - Every write is one transaction whose first item checks the connection's lease and
//!   epoch, so a host that lost its lease writes nothing: its write fails, and the
//!   library does not acknowledge what depended on it. A method that writes several
//!   values writes them in one transaction (up to 99; a larger batch, such as a history
//!   sync's, is several).
//! - Nothing is cached here: every read is a strongly consistent read of DynamoDB, so a
//!   store never hands back, or writes back, an older snapshot than the table holds (the
//!   library keeps its own caches above the store, and its sender-key reservations rely
//!   on reads being current).
//!
//! | namespace | name | value |
//! |---|---|---|
//! | `id` | address | identity key (32 bytes) |
//! | `ss` | address | Signal session |
//! | `pk` | pre-key id | pre-key record |
//! | `spk` | signed pre-key id | signed pre-key record |
//! | `sk` | sender-key address | sender key record |
//! | `sync` | hex key id | app-state sync key (JSON) |
//! | `meta` | `latest-sync-key` | the latest sync key's id |
//! | `ver` | collection | app-state version (JSON) |
//! | `mac.<collection>` | hex index MAC | value MAC |
//! | `skd` | group | its devices' sender-key status (JSON) |
//! | `lid` / `pn` | LID / phone | mapping (JSON) / the phone's LID |
//! | `bk` | `address#message` | base key |
//! | `dl` | user | device list (JSON) |
//! | `gm` | group | group metadata |
//! | `tc` | JID | trusted-contact token (JSON) |
//! | `sent` | `chat#message` | sent message (for retries), `at` = when |
//! | `pin` | `chat#sender#message` | a received message not yet committed, `at` = when |
//! | `msec` | `chat#sender#message` | message secret (JSON), `at` = expiry |
//! | `dev` | `device` | the device (JSON) |

use adapters::store::TenantScope;
use adapters::store::pool::{Fence, Fenced};
use adapters::store::session_keys::{Change, KeyRing, KeysError, SessionKeys, distinct};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use whatsapp_rust::async_trait;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::hash::HashState;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::Device;
use whatsapp_rust::wacore::store::error::{Result, StoreError};
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry,
    MsgSecretEntry, MsgSecretStore, ProtocolStore, SignalStore, TcTokenEntry,
    merge_msg_secret_expiry, merge_msg_secret_message_ts,
};

/// Why a write was refused: the host no longer holds the session's lease.
#[derive(Debug, thiserror::Error)]
#[error("the session's lease is no longer held by this host; nothing was written")]
pub struct LeaseLost;

/// One session's store: its tenant's key ring, written under its lease.
pub struct DynamoStore {
    keys: SessionKeys,
    ring: KeyRing,
    fence: Fence,
    /// Set once a write is refused by the fence: the driver stops the client.
    lost: Arc<AtomicBool>,
    counts: Arc<Counts>,
}

/// Requests this store made (for the benchmark of store operations per message).
#[derive(Debug, Default)]
pub struct Counts {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

impl Counts {
    pub fn snapshot(&self) -> (u64, u64) {
        (self.reads.load(Ordering::Relaxed), self.writes.load(Ordering::Relaxed))
    }
}

fn failed(e: KeysError) -> StoreError {
    StoreError::Database(Box::new(e))
}

fn json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| StoreError::Serialization(Box::new(e)))
}

fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Serialization(Box::new(e)))
}

/// A value stored with the time it was stored: 8 bytes, big-endian, then the value.
fn stamped(at: i64, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + value.len());
    out.extend_from_slice(&at.to_be_bytes());
    out.extend_from_slice(value);
    out
}

fn unstamped(mut value: Vec<u8>) -> Vec<u8> {
    value.drain(..8.min(value.len()));
    value
}

fn three(a: &str, b: &str, c: &str) -> String {
    format!("{a}#{b}#{c}")
}

const DEVICE: &str = "device";
const LATEST_SYNC_KEY: &str = "latest-sync-key";

#[derive(serde::Serialize, serde::Deserialize)]
struct SecretRow {
    secret: Vec<u8>,
    expires_at: i64,
    message_ts: i64,
}

impl DynamoStore {
    /// Opens the session's key ring (one KMS call, or two the first time).
    pub async fn open(
        keys: SessionKeys,
        scope: &TenantScope,
        fence: Fence,
    ) -> std::result::Result<Self, KeysError> {
        let ring = keys.open(scope).await?;
        Ok(Self {
            keys,
            ring,
            fence,
            lost: Arc::new(AtomicBool::new(false)),
            counts: Arc::new(Counts::default()),
        })
    }

    /// Whether a write was refused because the lease is gone.
    pub fn lease_lost(&self) -> Arc<AtomicBool> {
        self.lost.clone()
    }

    pub fn counts(&self) -> Arc<Counts> {
        self.counts.clone()
    }

    fn read(&self) {
        self.counts.reads.fetch_add(1, Ordering::Relaxed);
    }

    async fn get(&self, namespace: &str, name: &str) -> Result<Option<Vec<u8>>> {
        self.read();
        self.keys.get(&self.ring, namespace, name).await.map_err(failed)
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<Option<T>> {
        self.get(namespace, name).await?.map(|v| parse(&v)).transpose()
    }

    async fn get_many(
        &self,
        namespace: &str,
        names: &[String],
    ) -> Result<BTreeMap<String, Vec<u8>>> {
        if names.is_empty() {
            return Ok(BTreeMap::new());
        }
        self.read();
        self.keys.get_many(&self.ring, namespace, names).await.map_err(failed)
    }

    async fn list(&self, namespace: &str) -> Result<BTreeMap<String, Vec<u8>>> {
        self.read();
        self.keys.list(&self.ring, namespace).await.map_err(failed)
    }

    /// Writes the changes under the lease: one transaction (per 99 values; a value named
    /// twice is written once).
    async fn write(&self, changes: &[Change]) -> Result<()> {
        let distinct = distinct(changes).len();
        if distinct == 0 {
            return Ok(());
        }
        self.counts.writes.fetch_add(distinct.div_ceil(99) as u64, Ordering::Relaxed);
        match self.keys.write(&self.fence, &self.ring, changes).await.map_err(failed)? {
            Fenced::Written => Ok(()),
            Fenced::LeaseLost | Fenced::NotMember => {
                self.lost.store(true, Ordering::Relaxed);
                Err(StoreError::Database(Box::new(LeaseLost)))
            }
        }
    }

    async fn set(&self, namespace: &str, name: &str, value: Vec<u8>) -> Result<()> {
        self.write(&[Change::set(namespace, name, value)]).await
    }

    /// Sets several values of a namespace in one write.
    async fn set_each<'a>(
        &self,
        namespace: &str,
        values: impl Iterator<Item = (String, &'a [u8])> + Send,
    ) -> Result<()> {
        let changes: Vec<Change> =
            values.map(|(name, value)| Change::set(namespace, name, value.to_vec())).collect();
        self.write(&changes).await
    }

    async fn remove(&self, namespace: &str, name: &str) -> Result<()> {
        self.write(&[Change::remove(namespace, name)]).await
    }

    /// Deletes the namespace's values whose time is at most `max_at`; how many.
    async fn sweep(&self, namespace: &str, max_at: i64) -> Result<u32> {
        self.read();
        let names = self.keys.names_at_most(&self.ring, namespace, max_at).await.map_err(failed)?;
        let changes: Vec<Change> = names.iter().map(|n| Change::remove(namespace, n)).collect();
        self.write(&changes).await?;
        Ok(u32::try_from(changes.len()).unwrap_or(u32::MAX))
    }
}

fn address_of_user(address: &str, user: &str) -> bool {
    address.strip_prefix(user).is_some_and(|rest| rest.starts_with('@') || rest.starts_with(':'))
}

#[async_trait]
impl SignalStore for DynamoStore {
    async fn put_identity(&self, address: &str, key: [u8; 32]) -> Result<()> {
        self.set("id", address, key.to_vec()).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        self.set_each("id", identities.iter().map(|(a, k)| (a.to_string(), &k[..]))).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        match self.get("id", address).await? {
            Some(v) => <[u8; 32]>::try_from(v.as_slice())
                .map(Some)
                .map_err(|_| StoreError::Validation(format!("identity of {} bytes", v.len()))),
            None => Ok(None),
        }
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.remove("id", address).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self.get("ss", address).await?.map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.set("ss", address, session.to_vec()).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.set_each("ss", sessions.iter().map(|(a, s)| (a.to_string(), &s[..]))).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.remove("ss", address).await
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        // Only the names are needed, but a namespace is read whole: this runs once per user
        // on a migration, not per message.
        for namespace in ["ss", "id"] {
            if self.list(namespace).await?.keys().any(|a| address_of_user(a, user)) {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], _uploaded: bool) -> Result<()> {
        self.set("pk", &id.to_string(), record.to_vec()).await
    }

    async fn store_prekeys_batch(&self, keys: &[(u32, Bytes)], _uploaded: bool) -> Result<()> {
        self.set_each("pk", keys.iter().map(|(id, r)| (id.to_string(), &r[..]))).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        Ok(self.get("pk", &id.to_string()).await?.map(Bytes::from))
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        let names: Vec<String> = ids.iter().map(u32::to_string).collect();
        let found = self.get_many("pk", &names).await?;
        Ok(ids
            .iter()
            .filter_map(|id| found.get(&id.to_string()).map(|r| (*id, Bytes::from(r.clone()))))
            .collect())
    }

    async fn mark_prekeys_uploaded(&self, _ids: &[u32]) -> Result<()> {
        // The uploaded flag is not read back through the traits (the reference in-memory
        // backend keeps none either); what matters is not resurrecting a consumed key,
        // which writing nothing guarantees.
        Ok(())
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        self.remove("pk", &id.to_string()).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        Ok(self.list("pk").await?.keys().filter_map(|k| k.parse::<u32>().ok()).max().unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.set("spk", &id.to_string(), record.to_vec()).await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get("spk", &id.to_string()).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        Ok(self
            .list("spk")
            .await?
            .into_iter()
            .filter_map(|(k, v)| k.parse::<u32>().ok().map(|id| (id, v)))
            .collect())
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.remove("spk", &id.to_string()).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.set("sk", address, record.to_vec()).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        self.set_each("sk", sender_keys.iter().map(|(a, r)| (a.to_string(), &r[..]))).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get("sk", address).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.remove("sk", address).await
    }
}

#[async_trait]
impl AppSyncStore for DynamoStore {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.get_json("sync", &hex::encode(key_id)).await
    }

    async fn set_sync_key(&self, key_id: &[u8], key: AppStateSyncKey) -> Result<()> {
        self.write(&[
            Change::set("sync", hex::encode(key_id), json(&key)?),
            Change::set("meta", LATEST_SYNC_KEY, key_id.to_vec()),
        ])
        .await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self.get_json("ver", name).await?.unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.set("ver", name, json(&state)?).await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let namespace = format!("mac.{name}");
        let changes: Vec<Change> = mutations
            .iter()
            .map(|m| Change::set(&namespace, hex::encode(&m.index_mac), m.value_mac.clone()))
            .collect();
        self.write(&changes).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(&format!("mac.{name}"), &hex::encode(index_mac)).await
    }

    async fn get_mutation_macs(
        &self,
        name: &str,
        index_macs: &[[u8; 32]],
    ) -> Result<HashMap<[u8; 32], Vec<u8>>> {
        let names: Vec<String> = index_macs.iter().map(hex::encode).collect();
        let found = self.get_many(&format!("mac.{name}"), &names).await?;
        Ok(index_macs
            .iter()
            .filter_map(|m| found.get(&hex::encode(m)).map(|v| (*m, v.clone())))
            .collect())
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let namespace = format!("mac.{name}");
        let changes: Vec<Change> =
            index_macs.iter().map(|m| Change::remove(&namespace, hex::encode(m))).collect();
        self.write(&changes).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        let namespace = format!("mac.{name}");
        let changes: Vec<Change> =
            self.list(&namespace).await?.keys().map(|k| Change::remove(&namespace, k)).collect();
        self.write(&changes).await
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get("meta", LATEST_SYNC_KEY).await
    }
}

type DeviceStatus = BTreeMap<String, bool>;

#[async_trait]
impl ProtocolStore for DynamoStore {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let status: DeviceStatus = self.get_json("skd", group_jid).await?.unwrap_or_default();
        Ok(status.into_iter().collect())
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let mut status: DeviceStatus = self.get_json("skd", group_jid).await?.unwrap_or_default();
        for (device, has_key) in entries {
            status.insert((*device).to_owned(), *has_key);
        }
        self.set("skd", group_jid, json(&status)?).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        self.remove("skd", group_jid).await
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        let mut changes = Vec::new();
        for (group, value) in self.list("skd").await? {
            let mut status: DeviceStatus = parse(&value)?;
            let before = status.len();
            status.retain(|device, _| !device_jids.contains(&device.as_str()));
            if status.len() != before {
                changes.push(if status.is_empty() {
                    Change::remove("skd", group)
                } else {
                    Change::set("skd", group, json(&status)?)
                });
            }
        }
        self.write(&changes).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        let changes: Vec<Change> =
            self.list("skd").await?.keys().map(|g| Change::remove("skd", g)).collect();
        self.write(&changes).await
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.get_json("lid", lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        match self.get("pn", phone).await? {
            Some(lid) => {
                let lid =
                    String::from_utf8(lid).map_err(|e| StoreError::Serialization(Box::new(e)))?;
                self.get_lid_mapping(&lid).await
            }
            None => Ok(None),
        }
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        self.put_lid_mappings(std::slice::from_ref(entry)).await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let lids: Vec<String> = entries.iter().map(|e| e.lid.clone()).collect();
        let existing = self.get_many("lid", &lids).await?;
        let mut changes = Vec::new();
        for entry in entries {
            // A LID that moved to another number no longer answers for the old one.
            if let Some(old) = existing.get(&entry.lid) {
                let old: LidPnMappingEntry = parse(old)?;
                if old.phone_number != entry.phone_number
                    && !entries.iter().any(|e| e.phone_number == old.phone_number)
                {
                    changes.push(Change::remove("pn", old.phone_number));
                }
            }
            changes.push(Change::set("pn", &entry.phone_number, entry.lid.as_bytes().to_vec()));
            changes.push(Change::set("lid", &entry.lid, json(entry)?));
        }
        self.write(&changes).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        self.list("lid").await?.values().map(|v| parse(v)).collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.set("bk", &format!("{address}#{message_id}"), base_key.to_vec()).await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        let stored = self.get("bk", &format!("{address}#{message_id}")).await?;
        Ok(stored.is_some_and(|s| s == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.remove("bk", &format!("{address}#{message_id}")).await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.set("dl", &record.user, json(&record)?).await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let changes = records
            .iter()
            .map(|r| Ok(Change::set("dl", &r.user, json(r)?)))
            .collect::<Result<Vec<_>>>()?;
        self.write(&changes).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get_json("dl", user).await
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.remove("dl", user).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get("gm", group_jid).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.set("gm", group_jid, blob.to_vec()).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.remove("gm", group_jid).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        self.get_json("tc", jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        self.set("tc", jid, json(entry)?).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        self.remove("tc", jid).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        Ok(self.list("tc").await?.into_keys().collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let mut changes = Vec::new();
        for (jid, value) in self.list("tc").await? {
            let entry: TcTokenEntry = parse(&value)?;
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !token_live && !sender_live {
                changes.push(Change::remove("tc", jid));
            }
        }
        self.write(&changes).await?;
        Ok(u32::try_from(changes.len()).unwrap_or(u32::MAX))
    }

    // NOTE: the two token writers below read, then write. The lease makes this host the
    // session's only writer, and the library serialises them per contact.
    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let entry = match self.get_tc_token(jid).await? {
            Some(existing) => TcTokenEntry {
                sender_timestamp: Some(
                    existing.sender_timestamp.map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                ),
                ..existing
            },
            None => TcTokenEntry {
                token: Vec::new(),
                token_timestamp: sender_timestamp,
                sender_timestamp: Some(sender_timestamp),
            },
        };
        self.put_tc_token(jid, &entry).await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let existing = self.get_tc_token(jid).await?;
        if let Some(existing) = &existing
            && !existing.token.is_empty()
            && token_timestamp < existing.token_timestamp
        {
            return Ok(());
        }
        let sender_timestamp = existing.and_then(|e| e.sender_timestamp);
        self.put_tc_token(
            jid,
            &TcTokenEntry { token: token.to_vec(), token_timestamp, sender_timestamp },
        )
        .await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let now = domain::time::now_secs();
        let change = Change::set("sent", format!("{chat_jid}#{message_id}"), stamped(now, payload));
        self.write(&[change.at(now)]).await
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let name = format!("{chat_jid}#{message_id}");
        match self.get("sent", &name).await? {
            Some(value) => {
                self.remove("sent", &name).await?;
                Ok(Some(unstamped(value)))
            }
            None => Ok(None),
        }
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.sweep("sent", cutoff_timestamp - 1).await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        let now = domain::time::now_secs();
        self.write(&[Change::set("pin", three(chat, sender, id), stamped(now, message)).at(now)])
            .await
    }

    async fn store_pending_inbound_batch(
        &self,
        rows: &[whatsapp_rust::wacore::store::traits::PendingInboundRow<'_>],
    ) -> Result<()> {
        let now = domain::time::now_secs();
        let changes: Vec<Change> = rows
            .iter()
            .map(|r| {
                Change::set("pin", three(r.chat, r.sender, r.id), stamped(now, r.message)).at(now)
            })
            .collect();
        self.write(&changes).await
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.get("pin", &three(chat, sender, id)).await?.map(unstamped))
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.remove("pin", &three(chat, sender, id)).await
    }

    async fn delete_pending_inbound_batch(
        &self,
        keys: &[whatsapp_rust::wacore::store::traits::PendingInboundKey<'_>],
    ) -> Result<()> {
        let changes: Vec<Change> =
            keys.iter().map(|k| Change::remove("pin", three(k.chat, k.sender, k.id))).collect();
        self.write(&changes).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.sweep("pin", cutoff_timestamp - 1).await
    }
}

#[async_trait]
impl MsgSecretStore for DynamoStore {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let names: Vec<String> =
            entries.iter().map(|e| three(&e.chat, &e.sender, &e.msg_id)).collect();
        let existing = self.get_many("msec", &names).await?;
        // Later rows of the same batch merge with earlier ones, as a table would.
        let mut rows: BTreeMap<String, SecretRow> = BTreeMap::new();
        for (name, entry) in names.into_iter().zip(entries) {
            let previous = match rows.remove(&name) {
                Some(row) => Some(row),
                None => existing.get(&name).map(|v| parse::<SecretRow>(v)).transpose()?,
            };
            let row = match previous {
                Some(old) => SecretRow {
                    secret: entry.secret.to_vec(),
                    expires_at: merge_msg_secret_expiry(old.expires_at, entry.expires_at),
                    message_ts: merge_msg_secret_message_ts(old.message_ts, entry.message_ts),
                },
                None => SecretRow {
                    secret: entry.secret.to_vec(),
                    expires_at: entry.expires_at,
                    message_ts: entry.message_ts,
                },
            };
            rows.insert(name, row);
        }
        let mut changes = Vec::with_capacity(rows.len());
        for (name, row) in &rows {
            let change = Change::set("msec", name, json(row)?);
            // Kept forever (0) has no time: the sweep never selects it.
            changes.push(if row.expires_at > 0 { change.at(row.expires_at) } else { change });
        }
        self.write(&changes).await?;
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.get_msg_secret_with_ts(chat, sender, msg_id).await?.map(|(s, _)| s))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        let row: Option<SecretRow> = self.get_json("msec", &three(chat, sender, msg_id)).await?;
        Ok(row.map(|r| (r.secret, r.message_ts)))
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        self.sweep("msec", cutoff_timestamp).await
    }
}

#[async_trait]
impl DeviceStore for DynamoStore {
    async fn save(&self, device: &Device) -> Result<()> {
        self.set("dev", DEVICE, json(device)?).await
    }

    async fn load(&self) -> Result<Option<Device>> {
        self.get_json("dev", DEVICE).await
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.get("dev", DEVICE).await?.is_some())
    }

    async fn create(&self) -> Result<i32> {
        // One device per session (the session is the store's scope).
        if !self.exists().await? {
            self.save(&Device::new()).await?;
        }
        Ok(1)
    }

    async fn resource_report(&self) -> whatsapp_rust::wacore::stats::StorageResourceReport {
        // The data is in DynamoDB, not in this process.
        whatsapp_rust::wacore::stats::StorageResourceReport {
            memory_bytes: Some(0),
            ..Default::default()
        }
    }
}
