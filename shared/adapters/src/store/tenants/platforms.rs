//! Partner platforms (B2B): the platform, its key, and its users.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | platform | `PLATFORM#<pid>` | `PLATFORM` | name, its own tenant, its key's lookup id |
//! | directory entry | `PLATFORMS` | `PLATFORM#<pid>` | the operator's list of platforms |
//! | user counter | `PLATFORM#<pid>` | `COUNT#<00-15>` | `users`; one of 16, so concurrent creates do not collide |
//! | B2B user | `PLATFORM#<pid>` | `USER#<userId>` | its tenant, `platformUserId`, tier, session state |
//! | key lookup | `PLATKEYLOOKUP#<lookup>` | `PLATKEYLOOKUP` | digest, platform, own tenant; `validUntil` once rotated away |
//! | user counters | `PLATFORM#<pid>` | `COUNT#<00-15>` | also `state_<session state>`: users by session state |
//! | active users | `PLATFORM#<pid>` | `ACTIVE#<yyyy-mm-dd>` | `users`: those whose last active day it is |
//! | message counters | `PLATSTATS#<pid>#<00-15>` | `COUNT` | `messages`, inbound and sent, in the shard of the message |
//!
//! A platform has a tenant of its own (`TENANT#<tid>`, `platformId` set): what a platform
//! key does on its own behalf (its webhook subscriptions, its audit trail) lives there,
//! through the same repositories as any tenant's. A B2B user is a tenant too, created with
//! its directory entry and a `web` channel in one transaction; the directory entry is the
//! only way from a platform to a user, so a platform reaches nothing else.

use super::*;
use crate::store::attrs::{key, n, now_secs, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope, dynamo_err, failed_conditions};
use aws_sdk_dynamodb::types::Delete;
use domain::ids::{B2bUserId, PlatformId};
use futures_util::stream::{self, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;

const PLATFORM_SK: &str = "PLATFORM";
const DIRECTORY_PK: &str = "PLATFORMS";
const B2B_USER_PREFIX: &str = "USER#";
const COUNT_PREFIX: &str = "COUNT#";
/// User counters per platform.
const COUNT_SHARDS: usize = 16;
/// Users written per transaction: three items each and one counter (DynamoDB takes 100).
const USERS_PER_TRANSACTION: usize = 25;
/// Transactions of one bulk create in flight at once.
const TRANSACTIONS_IN_FLIGHT: usize = 8;
/// A new user's session state (until the session host connects it).
const NEW_SESSION_STATE: &str = "disconnected";
/// Message counter partitions per platform.
const MESSAGE_SHARDS: u32 = 16;
/// Days a user counts as active after a message.
pub const ACTIVE_DAYS: i64 = 7;

fn state_counter(state: &str) -> String {
    format!("state_{state}")
}

fn active_key(platform: &PlatformId, day: &str) -> Item {
    key(platform_pk(platform), format!("ACTIVE#{day}"))
}

fn message_count_key(platform: &PlatformId, shard: u32) -> Item {
    key(format!("PLATSTATS#{platform}#{shard:02}"), "COUNT")
}

/// A platform's figures, read from its counters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlatformStats {
    pub users: i64,
    /// Users with a message in the last [`ACTIVE_DAYS`] days (today included).
    pub active_users: i64,
    pub messages: i64,
    /// Users by session state.
    pub sessions: std::collections::BTreeMap<String, i64>,
}

/// How long a rotated-away platform key keeps working.
pub const ROTATED_KEY_VALID_SECS: i64 = 24 * 3600;

fn platform_pk(id: &PlatformId) -> String {
    format!("PLATFORM#{id}")
}

fn platform_lookup_key(lookup_id: &str) -> Item {
    key(format!("PLATKEYLOOKUP#{lookup_id}"), "PLATKEYLOOKUP")
}

fn b2b_user_key(platform: &PlatformId, user: &B2bUserId) -> Item {
    key(platform_pk(platform), format!("{B2B_USER_PREFIX}{user}"))
}

fn count_key(platform: &PlatformId, shard: usize) -> Item {
    key(platform_pk(platform), format!("{COUNT_PREFIX}{shard:02}"))
}

/// A platform as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    pub platform_id: PlatformId,
    pub name: String,
    /// The platform's own tenant: its subscriptions and audit trail.
    pub tenant_id: TenantId,
    /// The current key's lookup id (its public start is `sbp_<lookup id>`).
    pub key_lookup_id: String,
    /// The key rotated away last, which works until its `validUntil`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_key_lookup_id: Option<String>,
    pub created_at: i64,
}

/// A B2B user as its platform's directory holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct B2bUser {
    pub user_id: B2bUserId,
    pub platform_id: PlatformId,
    /// The tenant that holds the user's data.
    pub tenant_id: TenantId,
    pub platform_user_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_name: Option<String>,
    pub tier: Tier,
    /// The WhatsApp Web session's state, as the session host last wrote it.
    pub session_state: String,
    /// The last day (`yyyy-mm-dd`) a message was received or sent for the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_active_day: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl B2bUser {
    /// The user's tenant: where a platform acting for it reads and writes.
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

impl Platform {
    /// The platform's own tenant: its webhook subscriptions and audit trail.
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

impl PlatformKey {
    /// The platform's own tenant.
    pub fn scope(&self) -> TenantScope {
        TenantScope::new(self.tenant_id.clone())
    }
}

/// What a create asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewB2bUser {
    pub user_id: B2bUserId,
    pub platform_user_id: String,
    pub platform_name: Option<String>,
    pub tier: Tier,
}

impl NewB2bUser {
    /// Whether `stored` is this user as asked for (a repeat), rather than a conflict.
    pub fn same_as(&self, stored: &B2bUser) -> bool {
        stored.platform_user_id == self.platform_user_id
            && stored.tier == self.tier
            && (self.platform_name.is_none() || stored.platform_name == self.platform_name)
    }
}

/// What became of one row of a create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    Created(B2bUser),
    /// It was there already, as asked.
    Existing(B2bUser),
    /// It was there already, with other fields.
    Conflict(B2bUser),
}

/// What a platform key's lookup id resolves to.
#[derive(Debug, Clone)]
pub struct PlatformKey {
    pub platform_id: PlatformId,
    pub tenant_id: TenantId,
    pub digest: String,
}

fn to_item<T: Serialize>(key: Item, value: &T) -> Result<Item, StoreError> {
    let attrs: Item =
        serde_dynamo::to_item(value).map_err(|e| StoreError::Corrupt(format!("platform: {e}")))?;
    let mut item = key;
    item.extend(attrs);
    Ok(item)
}

fn from_item<T: for<'de> Deserialize<'de>>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(|e| StoreError::Corrupt(format!("platform: {e}")))
}

/// Platforms and their users.
#[derive(Clone, Copy, Debug)]
pub struct Platforms<'a> {
    pub(crate) table: &'a Table,
}

impl Platforms<'_> {
    /// Creates a platform, its own tenant and its key (`digest` of the key whose lookup id
    /// is `lookup_id`), in one transaction.
    pub async fn create(
        &self,
        name: &str,
        lookup_id: &str,
        digest: &str,
    ) -> Result<Platform, StoreError> {
        let now = now_secs();
        let platform = Platform {
            platform_id: PlatformId::generate(),
            name: name.to_owned(),
            tenant_id: TenantId::generate(),
            key_lookup_id: lookup_id.to_owned(),
            previous_key_lookup_id: None,
            created_at: now,
        };
        let id = &platform.platform_id;
        let own_tenant = with(
            key(TenantScope::new(platform.tenant_id.clone()).pk(), TENANT_SK),
            [
                ("type", s("tenant")),
                ("tenantId", s(platform.tenant_id.as_str())),
                ("name", s(name)),
                ("tier", s(Tier::EnterpriseB2b.as_str())),
                ("platformId", s(id.as_str())),
                ("kind", s("platform")),
                ("userCount", n(0)),
                ("adminCount", n(0)),
                ("apiKeyCount", n(0)),
                ("createdAt", n(now)),
                ("updatedAt", n(now)),
            ],
        );
        let lookup = with(
            platform_lookup_key(lookup_id),
            [
                ("platformId", s(id.as_str())),
                ("tenantId", s(platform.tenant_id.as_str())),
                ("digest", s(digest)),
            ],
        );
        let directory = with(
            key(DIRECTORY_PK, format!("PLATFORM#{id}")),
            [("platformId", s(id.as_str())), ("name", s(name)), ("createdAt", n(now))],
        );
        let exists_not = Some("attribute_not_exists(pk)");
        let items = vec![
            self.table
                .put_in(to_item(key(platform_pk(id), PLATFORM_SK), &platform)?, exists_not)?,
            self.table.put_in(own_tenant, exists_not)?,
            self.table.put_in(lookup, exists_not)?,
            self.table.put_in(directory, exists_not)?,
        ];
        match self.table.transact(items).await {
            Ok(()) => Ok(platform),
            Err(e) => Err(match failed_conditions(&e) {
                Some(_) => StoreError::Conflict,
                None => dynamo_err(e),
            }),
        }
    }

    pub async fn get(&self, id: &PlatformId) -> Result<Option<Platform>, StoreError> {
        self.table.get(key(platform_pk(id), PLATFORM_SK)).await?.map(from_item).transpose()
    }

    /// The operator's list of platforms, oldest first.
    pub async fn list(
        &self,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<PlatformId>, StoreError> {
        self.table
            .page(DIRECTORY_PK, "PLATFORM#", limit, cursor, |item| {
                PlatformId::parse(get_s(item, "platformId")?)
                    .ok_or_else(|| StoreError::Corrupt("platformId".into()))
            })
            .await
    }

    /// How many users the platform has (its counters added up: one query).
    pub async fn user_count(&self, id: &PlatformId) -> Result<i64, StoreError> {
        Ok(self.counters(id).await?.iter().filter_map(|c| opt_n(c, "users")).sum())
    }

    /// The platform's user counters (`COUNT#<nn>`): one query.
    async fn counters(&self, id: &PlatformId) -> Result<Vec<Item>, StoreError> {
        self.table
            .query_all(
                self.table
                    .query()
                    .key_condition_expression("pk = :pk AND begins_with(sk, :count)")
                    .expression_attribute_values(":pk", s(platform_pk(id)))
                    .expression_attribute_values(":count", s(COUNT_PREFIX)),
            )
            .await
    }

    /// Replaces the platform's key: the new one works at once, the current one until
    /// [`ROTATED_KEY_VALID_SECS`] from now, and one rotated away before that stops now.
    pub async fn rotate_key(
        &self,
        platform: &Platform,
        lookup_id: &str,
        digest: &str,
    ) -> Result<i64, StoreError> {
        let until = now_secs() + ROTATED_KEY_VALID_SECS;
        let lookup = with(
            platform_lookup_key(lookup_id),
            [
                ("platformId", s(platform.platform_id.as_str())),
                ("tenantId", s(platform.tenant_id.as_str())),
                ("digest", s(digest)),
            ],
        );
        let expire = self
            .table
            .update_of(platform_lookup_key(&platform.key_lookup_id))
            .update_expression("SET validUntil = :until, expiresAt = :until")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":until", n(until))
            .build()
            .map_err(dynamo_err)?;
        let moved = self
            .table
            .update_of(key(platform_pk(&platform.platform_id), PLATFORM_SK))
            .update_expression("SET keyLookupId = :new, previousKeyLookupId = :old")
            .condition_expression("keyLookupId = :old")
            .expression_attribute_values(":new", s(lookup_id))
            .expression_attribute_values(":old", s(&platform.key_lookup_id))
            .build()
            .map_err(dynamo_err)?;
        let mut items = vec![
            self.table.put_in(lookup, Some("attribute_not_exists(pk)"))?,
            TransactWriteItem::builder().update(expire).build(),
            TransactWriteItem::builder().update(moved).build(),
        ];
        if let Some(older) = &platform.previous_key_lookup_id {
            items.push(self.table.delete_in(platform_lookup_key(older), None)?);
        }
        match self.table.transact(items).await {
            Ok(()) => Ok(until),
            Err(e) => Err(match failed_conditions(&e) {
                Some(_) => StoreError::Conflict,
                None => dynamo_err(e),
            }),
        }
    }

    /// The platform key whose lookup id is `lookup_id`, if it exists and still works.
    pub async fn key(&self, lookup_id: &str) -> Result<Option<PlatformKey>, StoreError> {
        let Some(item) = self.table.get(platform_lookup_key(lookup_id)).await? else {
            return Ok(None);
        };
        if opt_n(&item, "validUntil").is_some_and(|until| until <= now_secs()) {
            return Ok(None);
        }
        let corrupt = |what: &str| StoreError::Corrupt(format!("platform key: {what}"));
        Ok(Some(PlatformKey {
            platform_id: PlatformId::parse(get_s(&item, "platformId")?)
                .ok_or_else(|| corrupt("platformId"))?,
            tenant_id: TenantId::parse(get_s(&item, "tenantId")?)
                .ok_or_else(|| corrupt("tenantId"))?,
            digest: get_s(&item, "digest")?.to_owned(),
        }))
    }

    /// One of the platform's users; `None` for an id it does not have (another platform's
    /// included).
    pub async fn user(
        &self,
        platform: &PlatformId,
        user: &B2bUserId,
    ) -> Result<Option<B2bUser>, StoreError> {
        self.table.get(b2b_user_key(platform, user)).await?.map(from_item).transpose()
    }

    /// The platform's users in `userId` order.
    pub async fn users(
        &self,
        platform: &PlatformId,
        limit: i32,
        cursor: Option<&str>,
    ) -> Result<Page<B2bUser>, StoreError> {
        self.table
            .page(&platform_pk(platform), B2B_USER_PREFIX, limit, cursor, |item| {
                from_item(item.clone())
            })
            .await
    }

    /// Changes a user's `platformUserId` and tier (its tenant's tier too, so its limits
    /// follow at once); `None` when the platform has no such user.
    pub async fn update_user(
        &self,
        platform: &PlatformId,
        user: &B2bUser,
        platform_user_id: Option<&str>,
        tier: Option<Tier>,
    ) -> Result<Option<B2bUser>, StoreError> {
        let mut next = user.clone();
        if let Some(id) = platform_user_id {
            next.platform_user_id = id.to_owned();
        }
        if let Some(tier) = tier {
            next.tier = tier;
        }
        next.updated_at = now_secs();
        // Only the fields changed (the session state and activity are others' to write),
        // the same on the directory entry and on the user's tenant.
        let set = |item: Item| {
            self.table.update_in(
                self.table
                    .update_of(item)
                    .update_expression("SET tier = :tier, platformUserId = :puid, updatedAt = :now")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":tier", s(next.tier.as_str()))
                    .expression_attribute_values(":puid", s(&next.platform_user_id))
                    .expression_attribute_values(":now", n(next.updated_at)),
            )
        };
        let entry = set(b2b_user_key(platform, &user.user_id))?;
        let tenant = set(key(user.scope().pk(), TENANT_SK))?;
        let items = vec![entry, tenant];
        match self.table.transact(items).await {
            Ok(()) => Ok(Some(next)),
            Err(e) => match failed_conditions(&e) {
                Some(_) => Err(StoreError::Conflict),
                None => Err(dynamo_err(e)),
            },
        }
    }

    /// Counts `by` messages of one of the platform's users (in the shard of `spread_by`).
    pub async fn count_messages(
        &self,
        platform: &PlatformId,
        spread_by: &str,
        by: i64,
    ) -> Result<(), StoreError> {
        let shard = crate::store::shard_of(spread_by, MESSAGE_SHARDS);
        self.table
            .update(message_count_key(platform, shard))
            .update_expression("ADD messages :by")
            .expression_attribute_values(":by", n(by))
            .send()
            .await
            .map(|_| ())
            .map_err(dynamo_err)
    }

    /// Marks the user active on `day` (`yyyy-mm-dd`): the user moves from the count of its
    /// last active day to that of `day`, in one transaction with its directory entry.
    /// `false` when it was marked already (or is gone).
    pub async fn mark_active(&self, link: &B2bLink, day: &str) -> Result<bool, StoreError> {
        let Some(user) = self.user(&link.platform_id, &link.user_id).await? else {
            return Ok(false);
        };
        let old = user.last_active_day.as_deref();
        if old.is_some_and(|old| old >= day) {
            return Ok(false);
        }
        let mut entry = self
            .table
            .update_of(b2b_user_key(&link.platform_id, &link.user_id))
            .update_expression("SET lastActiveDay = :day")
            .expression_attribute_values(":day", s(day));
        entry = match old {
            Some(old) => entry
                .condition_expression("lastActiveDay = :old")
                .expression_attribute_values(":old", s(old)),
            None => entry.condition_expression(
                "attribute_exists(pk) AND attribute_not_exists(lastActiveDay)",
            ),
        };
        let bump = |day: &str, by: i64| {
            self.table
                .update_of(active_key(&link.platform_id, day))
                .update_expression("ADD #users :by")
                .expression_attribute_names("#users", "users")
                .expression_attribute_values(":by", n(by))
        };
        let mut items = vec![self.table.update_in(entry)?, self.table.update_in(bump(day, 1))?];
        if let Some(old) = old {
            items.push(self.table.update_in(bump(old, -1))?);
        }
        self.table.transact_if_first(items).await
    }

    /// The platform's figures: its user counters (one query), and the last
    /// [`ACTIVE_DAYS`] days' active users with its message counters (one BatchGetItem).
    pub async fn stats(
        &self,
        platform: &PlatformId,
        today: i64,
    ) -> Result<PlatformStats, StoreError> {
        let counters = self.counters(platform).await?;
        let mut stats = PlatformStats::default();
        for counter in &counters {
            for (name, value) in counter {
                let count = value.as_n().ok().and_then(|v| v.parse::<i64>().ok()).unwrap_or(0);
                if name == "users" {
                    stats.users += count;
                } else if let Some(state) = name.strip_prefix("state_") {
                    *stats.sessions.entry(state.to_owned()).or_default() += count;
                }
            }
        }
        stats.sessions.retain(|_, n| *n != 0);
        let days = (0..ACTIVE_DAYS).map(|back| {
            domain::time::rfc3339(today - back * 86_400).chars().take(10).collect::<String>()
        });
        let mut keys: Vec<Item> = days.map(|d| active_key(platform, &d)).collect();
        keys.extend((0..MESSAGE_SHARDS).map(|shard| message_count_key(platform, shard)));
        for item in self.table.batch_get(keys).await? {
            let count = opt_n(&item, "users").unwrap_or(0);
            if opt_s(&item, "sk").is_some_and(|sk| sk.starts_with("ACTIVE#")) {
                stats.active_users += count;
            }
            stats.messages += opt_n(&item, "messages").unwrap_or(0);
        }
        Ok(stats)
    }

    /// Takes a user from its platform: its directory entry and its tenant item go (so that
    /// nothing reaches it any more), and the user count drops, in one transaction; the rest
    /// of its data is the erasure's (`store::tenant_data`). `false` when it was gone already,
    /// or its session state moved since it was read (read it again).
    pub async fn remove_user(&self, user: &B2bUser) -> Result<bool, StoreError> {
        let shard = usize::try_from(crate::store::shard_of(user.user_id.as_str(), 16)).unwrap_or(0)
            % COUNT_SHARDS;
        let count = self
            .table
            .update_of(count_key(&user.platform_id, shard))
            .update_expression("ADD #users :minus, #state :minus")
            .expression_attribute_names("#users", "users")
            .expression_attribute_names("#state", state_counter(&user.session_state))
            .expression_attribute_values(":minus", n(-1))
            .build()
            .map_err(dynamo_err)?;
        // NOTE: conditional on the session state read, so that the state counted out is the
        // one the entry has (the session host may have moved it since).
        let entry = Delete::builder()
            .table_name(self.table.name())
            .set_key(Some(b2b_user_key(&user.platform_id, &user.user_id)))
            .condition_expression("attribute_exists(pk) AND sessionState = :state")
            .expression_attribute_values(":state", s(&user.session_state))
            .build()
            .map_err(dynamo_err)?;
        let mut items = vec![
            TransactWriteItem::builder().delete(entry).build(),
            self.table.delete_in(key(user.scope().pk(), TENANT_SK), None)?,
            TransactWriteItem::builder().update(count).build(),
        ];
        // No longer one of the active users of its last active day.
        if let Some(day) = &user.last_active_day {
            let active = self
                .table
                .update_of(active_key(&user.platform_id, day))
                .update_expression("ADD #users :minus")
                .expression_attribute_names("#users", "users")
                .expression_attribute_values(":minus", n(-1));
            items.push(self.table.update_in(active)?);
        }
        self.table.transact_if_first(items).await
    }

    /// Creates users, each a tenant with its directory entry and a `web` channel, up to
    /// [`USERS_PER_TRANSACTION`] per transaction and [`TRANSACTIONS_IN_FLIGHT`] at once.
    /// What became of each, in the order asked; a user that exists already is `Existing`
    /// when it is as asked and `Conflict` otherwise. `rows` must not repeat a `userId`.
    pub async fn create_users(
        &self,
        platform: &PlatformId,
        rows: &[NewB2bUser],
    ) -> Result<Vec<Created>, StoreError> {
        let existing = self.users_by_id(platform, rows.iter().map(|r| &r.user_id)).await?;
        let mut outcomes: Vec<Option<Created>> = rows
            .iter()
            .map(|row| existing.get(&row.user_id).map(|stored| classify(row, stored)))
            .collect();
        let missing: Vec<usize> = (0..rows.len()).filter(|&i| outcomes[i].is_none()).collect();
        let chunks: Vec<Vec<usize>> =
            missing.chunks(USERS_PER_TRANSACTION).map(<[usize]>::to_vec).collect();
        let written: Vec<Result<Vec<(usize, Created)>, StoreError>> =
            stream::iter(chunks.into_iter().enumerate())
                .map(|(n, chunk)| self.create_chunk(platform, rows, chunk, n % COUNT_SHARDS))
                .buffer_unordered(TRANSACTIONS_IN_FLIGHT)
                .collect()
                .await;
        for chunk in written {
            for (index, outcome) in chunk? {
                outcomes[index] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Corrupt("a bulk row without an outcome".into())))
            .collect()
    }

    /// One transaction of users (`rows[i]` for each `i` of `chunk`); users that turn out to
    /// exist (a concurrent create won) are read and classified, and the rest written again.
    async fn create_chunk(
        &self,
        platform: &PlatformId,
        rows: &[NewB2bUser],
        mut chunk: Vec<usize>,
        shard: usize,
    ) -> Result<Vec<(usize, Created)>, StoreError> {
        let mut done = Vec::new();
        for _ in 0..3 {
            if chunk.is_empty() {
                return Ok(done);
            }
            let now = now_secs();
            let users: Vec<B2bUser> =
                chunk.iter().map(|&i| new_user(platform, &rows[i], now)).collect();
            let mut items = Vec::with_capacity(users.len() * 3 + 1);
            for user in &users {
                items.extend(self.user_items(user)?);
            }
            let count = self
                .table
                .update_of(count_key(platform, shard))
                .update_expression("ADD #users :n, #state :n")
                .expression_attribute_names("#users", "users")
                .expression_attribute_names("#state", state_counter(NEW_SESSION_STATE))
                .expression_attribute_values(":n", n(i64::try_from(users.len()).unwrap_or(0)))
                .build()
                .map_err(dynamo_err)?;
            items.push(TransactWriteItem::builder().update(count).build());
            match self.table.transact(items).await {
                Ok(()) => {
                    done.extend(chunk.iter().copied().zip(users.into_iter().map(Created::Created)));
                    return Ok(done);
                }
                Err(e) => {
                    let Some(failed) = failed_conditions(&e) else {
                        return Err(dynamo_err(e));
                    };
                    // Every user's first item is its directory entry.
                    let taken: Vec<usize> = chunk
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| failed.get(j * 3) == Some(&true))
                        .map(|(_, &i)| i)
                        .collect();
                    if taken.is_empty() {
                        // Cancelled for another reason (a conflict with a concurrent
                        // transaction): try again.
                        continue;
                    }
                    let stored =
                        self.users_by_id(platform, taken.iter().map(|&i| &rows[i].user_id)).await?;
                    for &i in &taken {
                        if let Some(user) = stored.get(&rows[i].user_id) {
                            done.push((i, classify(&rows[i], user)));
                        }
                    }
                    chunk.retain(|i| !taken.contains(i));
                }
            }
        }
        if chunk.is_empty() { Ok(done) } else { Err(StoreError::Conflict) }
    }

    /// A user's three items: its directory entry, its tenant and its `web` channel.
    fn user_items(&self, user: &B2bUser) -> Result<Vec<TransactWriteItem>, StoreError> {
        let scope = TenantScope::new(user.tenant_id.clone());
        let tenant = with(
            key(scope.pk(), TENANT_SK),
            [
                ("type", s("tenant")),
                ("tenantId", s(user.tenant_id.as_str())),
                ("name", s(user.platform_name.as_deref().unwrap_or(&user.platform_user_id))),
                ("tier", s(user.tier.as_str())),
                ("platformId", s(user.platform_id.as_str())),
                ("b2bUserId", s(user.user_id.as_str())),
                ("platformUserId", s(&user.platform_user_id)),
                ("userCount", n(0)),
                ("adminCount", n(0)),
                ("apiKeyCount", n(0)),
                ("createdAt", n(user.created_at)),
                ("updatedAt", n(user.created_at)),
            ],
        );
        let channel = with(
            key(scope.pk(), "CHANNEL"),
            [
                ("provider", s(domain::channel::Provider::Web.as_str())),
                ("settings", s("{}")),
                ("secretHints", s("{}")),
                ("healthStatus", s("unknown")),
                ("updatedAt", n(user.created_at)),
            ],
        );
        let entry = to_item(b2b_user_key(&user.platform_id, &user.user_id), user)?;
        let absent = Some("attribute_not_exists(pk)");
        Ok(vec![
            self.table.put_in(entry, absent)?,
            self.table.put_in(tenant, absent)?,
            self.table.put_in(channel, absent)?,
        ])
    }

    /// The stored users among `ids`, by id (BatchGetItem, 100 keys a request).
    async fn users_by_id<'a>(
        &self,
        platform: &PlatformId,
        ids: impl Iterator<Item = &'a B2bUserId>,
    ) -> Result<HashMap<B2bUserId, B2bUser>, StoreError> {
        let keys: Vec<Item> = ids.map(|id| b2b_user_key(platform, id)).collect();
        let mut found = HashMap::new();
        for item in self.table.batch_get(keys).await? {
            let user: B2bUser = from_item(item)?;
            found.insert(user.user_id.clone(), user);
        }
        Ok(found)
    }
}

fn new_user(platform: &PlatformId, row: &NewB2bUser, now: i64) -> B2bUser {
    B2bUser {
        user_id: row.user_id.clone(),
        platform_id: platform.clone(),
        tenant_id: TenantId::generate(),
        platform_user_id: row.platform_user_id.clone(),
        platform_name: row.platform_name.clone(),
        tier: row.tier,
        session_state: NEW_SESSION_STATE.into(),
        last_active_day: None,
        created_at: now,
        updated_at: now,
    }
}

fn classify(row: &NewB2bUser, stored: &B2bUser) -> Created {
    if row.same_as(stored) {
        Created::Existing(stored.clone())
    } else {
        Created::Conflict(stored.clone())
    }
}

/// Whose B2B user each tenant is, read at most once a minute per tenant (per process): what
/// the processors use to count a platform's messages. A `platformUserId` changed by its
/// platform shows within a minute.
#[derive(Default, Debug)]
pub struct B2bLinks {
    links: std::sync::Mutex<HashMap<TenantId, (std::time::Instant, Option<B2bLink>)>>,
    /// The day each tenant was last marked active by this process (to mark it once a day).
    marked: std::sync::Mutex<HashMap<TenantId, String>>,
}

const LINK_TTL: std::time::Duration = std::time::Duration::from_secs(60);
/// Tenants kept at most; the cache starts over beyond it.
const MAX_CACHED_LINKS: usize = 10_000;

impl B2bLinks {
    /// The tenant's link to its platform, if it is a B2B user.
    pub async fn of(
        &self,
        store: &TenantStore,
        scope: &TenantScope,
    ) -> Result<Option<B2bLink>, StoreError> {
        if let Ok(cache) = self.links.lock()
            && let Some((at, link)) = cache.get(scope.tenant_id())
            && at.elapsed() < LINK_TTL
        {
            return Ok(link.clone());
        }
        let link = store.tenants().find(scope).await?.and_then(|t| t.b2b);
        if let Ok(mut cache) = self.links.lock() {
            if cache.len() >= MAX_CACHED_LINKS {
                cache.clear();
            }
            cache.insert(scope.tenant_id().clone(), (std::time::Instant::now(), link.clone()));
        }
        Ok(link)
    }

    /// Counts `by` messages (received or sent at `at`, epoch seconds) of the tenant for its
    /// platform, if it is a B2B user: the platform's message counter, and the user marked
    /// active that day (once a day per process; the store keeps it once a day in all).
    pub async fn count_messages(
        &self,
        store: &TenantStore,
        scope: &TenantScope,
        spread_by: &str,
        by: i64,
        at: i64,
    ) -> Result<(), StoreError> {
        let Some(link) = self.of(store, scope).await? else {
            return Ok(());
        };
        let platforms = store.platforms();
        platforms.count_messages(&link.platform_id, spread_by, by).await?;
        let day: String = domain::time::rfc3339(at).chars().take(10).collect();
        let seen = self.marked.lock().ok().and_then(|m| m.get(scope.tenant_id()).cloned());
        if seen.as_deref() != Some(day.as_str()) {
            platforms.mark_active(&link, &day).await?;
            if let Ok(mut marked) = self.marked.lock() {
                if marked.len() >= MAX_CACHED_LINKS {
                    marked.clear();
                }
                marked.insert(scope.tenant_id().clone(), day);
            }
        }
        Ok(())
    }
}

/// The writes that move a B2B user's session state from `old` to `new`: its directory
/// entry's `sessionState` (conditional on `old`, so a move is counted once) and its
/// platform's `state_<state>` counters. For the pool store, which writes them in the same
/// transaction as the session itself.
pub(crate) fn session_state_move(
    table: &Table,
    link: &B2bLink,
    old: &str,
    new: &str,
) -> Result<Vec<TransactWriteItem>, StoreError> {
    let entry = table.update_in(
        table
            .update_of(b2b_user_key(&link.platform_id, &link.user_id))
            .update_expression("SET sessionState = :new")
            .condition_expression("sessionState = :old")
            .expression_attribute_values(":new", s(new))
            .expression_attribute_values(":old", s(old)),
    )?;
    let shard = usize::try_from(crate::store::shard_of(link.user_id.as_str(), 16)).unwrap_or(0)
        % COUNT_SHARDS;
    let counters = table.update_in(
        table
            .update_of(count_key(&link.platform_id, shard))
            .update_expression("ADD #old :minus, #new :plus")
            .expression_attribute_names("#old", state_counter(old))
            .expression_attribute_names("#new", state_counter(new))
            .expression_attribute_values(":minus", n(-1))
            .expression_attribute_values(":plus", n(1)),
    )?;
    Ok(vec![entry, counters])
}
