//! The `pool` table: the session host's connections, their leases, and each tenant's
//! WhatsApp Web session.
//!
//! | item | pk | sk | notes |
//! |---|---|---|---|
//! | connection | `POOL#<tier>` | `CONN#<tier>-<nnn>` | `members` (a string set of tenant ids, at most the tier's users per connection); the lease: `owner` (a host id), `leaseUntil` (epoch ms), `epoch` (+1 on every acquisition) |
//! | session | `TENANT#<tid>` | `SESSION` | `state`, `writtenEpoch` and `writtenBy` (the fence of the last write), `tier`, `connectionId`, `phoneNumber`, `deviceId`, the current `qr` / `pairingCode` and `expiresAt`, `lastSeenAt`, `failures`, a B2B user's `platformId` and `b2bUserId` |
//! | linked device | `TENANT#<tid>` | `SESSION#DEVICE` | the device's credentials and keys, one KMS envelope (tenant context); `epoch` of the write |
//!
//! **Fencing.** Every write a host makes for a session (its state, its device) is a
//! transaction whose first item is a condition check on the session's connection: the
//! host is its `owner` with the `epoch` it acquired and its lease has not run out. A host
//! that was paused or cut off and lost its lease therefore writes nothing, whatever it
//! believes. A B2B user's directory entry and its platform's session counters move in the
//! same transaction (see `tenants::platforms`).
//!
//! **Membership.** Joining a connection is one transaction: the connection gains the
//! tenant (conditional on room and on not being a member) and the session names the
//! connection (conditional on naming none), so no tenant is ever in two connections and no
//! connection holds more than its tier allows, whatever runs concurrently.

use super::attrs::{Item, get_n, get_s, key, n, now_secs, opt_n, opt_s, s};
use super::table::Table;
use super::tenants::{B2bLink, session_state_move};
use super::{StoreError, TenantScope, dynamo_err, failed_conditions, written, written_value};
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, ReturnValue, TransactWriteItem};
use domain::ids::{B2bUserId, PlatformId, TenantId};
use domain::sessions::{PoolPolicy, SessionState, connection_id, parse_connection_id};
use domain::tenant::Tier;
use domain::time::now_ms;

const SESSION_SK: &str = "SESSION";
const DEVICE_SK: &str = "SESSION#DEVICE";
const CONN_PREFIX: &str = "CONN#";

fn pool_pk(tier: Tier) -> String {
    format!("POOL#{}", tier.as_str())
}

fn connection_key(connection: &str) -> Result<Item, StoreError> {
    let (tier, _) = parse_connection_id(connection)
        .ok_or_else(|| StoreError::Corrupt(format!("not a connection id: {connection}")))?;
    Ok(key(pool_pk(tier), format!("{CONN_PREFIX}{connection}")))
}

fn session_key(tenant: &TenantScope) -> Item {
    key(tenant.pk(), SESSION_SK)
}

fn device_key(tenant: &TenantScope) -> Item {
    key(tenant.pk(), DEVICE_SK)
}

fn string_set(value: &str) -> AttributeValue {
    AttributeValue::Ss(vec![value.to_owned()])
}

/// A connection of a pool and its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub id: String,
    pub tier: Tier,
    pub members: Vec<TenantId>,
    pub owner: Option<String>,
    pub epoch: i64,
    /// Epoch milliseconds.
    pub lease_until: i64,
}

impl Connection {
    /// Its lease is held by a host that has heartbeated in time.
    pub fn leased(&self, now_ms: i64) -> bool {
        self.owner.is_some() && self.lease_until > now_ms
    }

    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let id = get_s(item, "sk")?.trim_start_matches(CONN_PREFIX).to_owned();
        let (tier, _) = parse_connection_id(&id)
            .ok_or_else(|| StoreError::Corrupt(format!("not a connection id: {id}")))?;
        let members = match item.get("members") {
            Some(AttributeValue::Ss(members)) => {
                members.iter().filter_map(|m| TenantId::parse(m)).collect()
            }
            _ => Vec::new(),
        };
        Ok(Self {
            id,
            tier,
            members,
            owner: opt_s(item, "owner").map(str::to_owned),
            epoch: opt_n(item, "epoch").unwrap_or(0),
            lease_until: opt_n(item, "leaseUntil").unwrap_or(0),
        })
    }
}

/// What a host holds while it owns a connection: every write it makes for the connection's
/// sessions is conditional on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub connection_id: String,
    pub host: String,
    pub epoch: i64,
}

/// A tenant's session, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    pub tenant_id: TenantId,
    pub state: SessionState,
    pub tier: Option<Tier>,
    pub connection_id: Option<String>,
    pub phone_number: Option<String>,
    pub device_id: Option<String>,
    pub qr: Option<String>,
    pub pairing_code: Option<String>,
    /// When the QR (and pairing code) expire, epoch seconds.
    pub expires_at: Option<i64>,
    /// The number a pairing code was asked for.
    pub pair_phone: Option<String>,
    pub last_seen_at: Option<i64>,
    pub failures: i64,
    pub b2b: Option<B2bLink>,
}

impl SessionRecord {
    fn from_item(item: &Item) -> Result<Self, StoreError> {
        let tenant = get_s(item, "pk")?.trim_start_matches("TENANT#");
        let tenant_id = TenantId::parse(tenant)
            .ok_or_else(|| StoreError::Corrupt(format!("session of {tenant}")))?;
        let state = get_s(item, "state")?;
        let state = SessionState::parse(state)
            .ok_or_else(|| StoreError::Corrupt(format!("session state {state}")))?;
        let b2b = match (
            opt_s(item, "platformId").and_then(PlatformId::parse),
            opt_s(item, "b2bUserId").and_then(B2bUserId::parse),
        ) {
            (Some(platform_id), Some(user_id)) => {
                Some(B2bLink { platform_id, user_id, platform_user_id: String::new() })
            }
            _ => None,
        };
        let text = |name: &str| opt_s(item, name).map(str::to_owned);
        Ok(Self {
            tenant_id,
            state,
            tier: opt_s(item, "tier").and_then(Tier::parse),
            connection_id: text("connectionId"),
            phone_number: text("phoneNumber"),
            device_id: text("deviceId"),
            qr: text("qr"),
            pairing_code: text("pairingCode"),
            expires_at: opt_n(item, "qrExpiresAt"),
            pair_phone: text("pairPhone"),
            last_seen_at: opt_n(item, "lastSeenAt"),
            failures: opt_n(item, "failures").unwrap_or(0),
            b2b,
        })
    }
}

/// What a host writes about a session: its new state and what goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionChange {
    pub state: Option<SessionState>,
    /// A new QR (with its pairing code, if one was asked for) and its expiry.
    pub qr: Option<(String, Option<String>, i64)>,
    /// The linked number and device (set once paired).
    pub linked: Option<(String, String)>,
    /// Activity: `lastSeenAt` moves to now.
    pub seen: bool,
    /// Consecutive failures: `Some(0)` resets.
    pub failures: Option<i64>,
    /// Forget the linked number and device (logged out).
    pub unlink: bool,
}

/// The outcome of a fenced write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fenced {
    Written,
    /// The host no longer holds the connection's lease (or not with this epoch).
    LeaseLost,
    /// The session is no longer a member of the connection (left, erased).
    NotMember,
}

/// Joining a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Joined {
    Member(String),
    /// Every connection the tier may have is full.
    Full,
}

#[derive(Clone, Debug)]
pub struct PoolStore {
    table: Table,
    tenants: Table,
}

impl PoolStore {
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self::new(
            clients.dynamodb.clone(),
            resources.pool_table.clone(),
            resources.tenants_table.clone(),
        )
    }

    pub fn new(db: Client, table: impl Into<String>, tenants: impl Into<String>) -> Self {
        Self { table: Table::new(db.clone(), table), tenants: Table::new(db, tenants) }
    }

    pub async fn session(&self, tenant: &TenantScope) -> Result<Option<SessionRecord>, StoreError> {
        self.table
            .get(session_key(tenant))
            .await?
            .as_ref()
            .map(SessionRecord::from_item)
            .transpose()
    }

    /// The connections of a tier, in order.
    pub async fn connections(&self, tier: Tier) -> Result<Vec<Connection>, StoreError> {
        let query = self
            .table
            .query()
            .key_condition_expression("pk = :pk AND begins_with(sk, :conn)")
            .expression_attribute_values(":pk", s(pool_pk(tier)))
            .expression_attribute_values(":conn", s(CONN_PREFIX))
            .consistent_read(true);
        let items = self.table.query_all(query).await?;
        items.iter().map(Connection::from_item).collect()
    }

    pub async fn connection(&self, id: &str) -> Result<Option<Connection>, StoreError> {
        self.table.get(connection_key(id)?).await?.as_ref().map(Connection::from_item).transpose()
    }

    /// Makes sure the tier's connection `index` exists (pre-warming, growing the pool).
    pub async fn ensure_connection(&self, tier: Tier, index: u32) -> Result<String, StoreError> {
        let id = connection_id(tier, index);
        let mut item = connection_key(&id)?;
        item.insert("tier".into(), s(tier.as_str()));
        item.insert("createdAt".into(), n(now_secs()));
        self.table.put_if_absent(item).await?;
        Ok(id)
    }

    /// Whether the tier's pool can take one more user.
    pub async fn has_room(&self, policy: &PoolPolicy) -> Result<bool, StoreError> {
        let connections = self.connections(policy.tier).await?;
        Ok((connections.len() as u32) < policy.max_connections
            || connections.iter().any(|c| (c.members.len() as u32) < policy.users_per_connection))
    }

    /// Gives the tenant a slot in its tier's pool (the one it has, if it has one there):
    /// the first connection with room, or a new one while the pool may grow.
    pub async fn join(
        &self,
        tenant: &TenantScope,
        policy: &PoolPolicy,
        b2b: Option<&B2bLink>,
    ) -> Result<Joined, StoreError> {
        for _ in 0..8 {
            if let Some(session) = self.session(tenant).await?
                && let Some(connection) = &session.connection_id
            {
                return Ok(Joined::Member(connection.clone()));
            }
            let connections = self.connections(policy.tier).await?;
            let room = connections
                .iter()
                .find(|c| (c.members.len() as u32) < policy.users_per_connection)
                .map(|c| c.id.clone());
            let target = match room {
                Some(id) => id,
                None => {
                    let taken: Vec<u32> = connections
                        .iter()
                        .filter_map(|c| parse_connection_id(&c.id).map(|(_, i)| i))
                        .collect();
                    match (0..policy.max_connections).find(|i| !taken.contains(i)) {
                        Some(index) => self.ensure_connection(policy.tier, index).await?,
                        None => return Ok(Joined::Full),
                    }
                }
            };
            if self.try_join(tenant, policy, b2b, &target).await? {
                return Ok(Joined::Member(target));
            }
        }
        // Every attempt lost to a concurrent join: busy, not full.
        Err(StoreError::Conflict)
    }

    async fn try_join(
        &self,
        tenant: &TenantScope,
        policy: &PoolPolicy,
        b2b: Option<&B2bLink>,
        connection: &str,
    ) -> Result<bool, StoreError> {
        let member = tenant.tenant_id().as_str();
        let add = self.table.update_in(
            self.table
                .update_of(connection_key(connection)?)
                .update_expression("ADD members :member")
                .condition_expression(
                    "attribute_exists(pk) AND (attribute_not_exists(members) OR size(members) < :n) AND NOT contains(members, :id)",
                )
                .expression_attribute_values(":member", string_set(member))
                .expression_attribute_values(":id", s(member))
                .expression_attribute_values(":n", n(policy.users_per_connection)),
        )?;
        let mut set = "SET connectionId = :c, tier = :tier, #state = if_not_exists(#state, :new), joinedAt = :now".to_owned();
        let mut session = self
            .table
            .update_of(session_key(tenant))
            .condition_expression("attribute_not_exists(connectionId)")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":c", s(connection))
            .expression_attribute_values(":tier", s(policy.tier.as_str()))
            .expression_attribute_values(":new", s(SessionState::Disconnected.as_str()))
            .expression_attribute_values(":now", n(now_secs()));
        if let Some(link) = b2b {
            set.push_str(", platformId = :pid, b2bUserId = :uid");
            session = session
                .expression_attribute_values(":pid", s(link.platform_id.as_str()))
                .expression_attribute_values(":uid", s(link.user_id.as_str()));
        }
        let session = self.table.update_in(session.update_expression(set))?;
        self.applied(vec![add, session]).await
    }

    /// What the API asks for: pairing by code for this number (or by QR alone). Not a
    /// host's write: a host that takes the session over pairs the way it was asked.
    pub async fn want_pairing(
        &self,
        tenant: &TenantScope,
        phone: Option<&str>,
    ) -> Result<(), StoreError> {
        let update = self.table.update(session_key(tenant));
        let update = match phone {
            Some(phone) => update
                .update_expression("SET pairPhone = :phone")
                .expression_attribute_values(":phone", s(phone.trim_start_matches('+'))),
            None => update.update_expression("REMOVE pairPhone"),
        };
        update
            .condition_expression("attribute_exists(pk)")
            .send()
            .await
            .map(|_| ())
            .or_else(|e| if super::condition_failed(&e) { Ok(()) } else { Err(dynamo_err(e)) })
    }

    /// Takes the tenant out of its connection (the session keeps its state and device).
    pub async fn leave(&self, tenant: &TenantScope, connection: &str) -> Result<bool, StoreError> {
        let member = tenant.tenant_id().as_str();
        let remove = self.table.update_in(
            self.table
                .update_of(connection_key(connection)?)
                .update_expression("DELETE members :member")
                .expression_attribute_values(":member", string_set(member)),
        )?;
        let session = self.table.update_in(
            self.table
                .update_of(session_key(tenant))
                .update_expression("REMOVE connectionId")
                .condition_expression("connectionId = :c")
                .expression_attribute_values(":c", s(connection)),
        )?;
        self.applied(vec![remove, session]).await
    }

    /// Takes a connection whose lease is free or has run out (or is this host's already):
    /// the epoch goes up by one. `None` when another host holds it.
    pub async fn acquire(
        &self,
        connection: &str,
        host: &str,
        lease_ms: i64,
    ) -> Result<Option<(Fence, Connection)>, StoreError> {
        let now = now_ms();
        let out = self
            .table
            .update(connection_key(connection)?)
            .update_expression(
                "SET #owner = :host, leaseUntil = :until, epoch = if_not_exists(epoch, :zero) + :one",
            )
            .condition_expression(
                "attribute_exists(pk) AND (attribute_not_exists(#owner) OR leaseUntil < :now OR #owner = :host)",
            )
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":host", s(host))
            .expression_attribute_values(":until", n(now + lease_ms))
            .expression_attribute_values(":now", n(now))
            .expression_attribute_values(":zero", n(0))
            .expression_attribute_values(":one", n(1))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        let Some(out) = written_value(out)? else { return Ok(None) };
        let Some(item) = out.attributes else {
            return Err(StoreError::Corrupt("acquired lease returned nothing".into()));
        };
        let connection = Connection::from_item(&item)?;
        let fence = Fence {
            connection_id: connection.id.clone(),
            host: host.to_owned(),
            epoch: get_n(&item, "epoch")?,
        };
        Ok(Some((fence, connection)))
    }

    /// Extends the lease; `false` when the host no longer holds it with this epoch. Returns
    /// the connection as it is now (its members may have changed).
    pub async fn heartbeat(
        &self,
        fence: &Fence,
        lease_ms: i64,
    ) -> Result<Option<Connection>, StoreError> {
        let out = self
            .held(fence)?
            .update_expression("SET leaseUntil = :until")
            .expression_attribute_values(":until", n(now_ms() + lease_ms))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match written_value(out)? {
            Some(out) => out.attributes.as_ref().map(Connection::from_item).transpose(),
            None => Ok(None),
        }
    }

    /// An update of the fence's connection, conditional on the host still holding it with
    /// this epoch (`#owner` names the owner attribute).
    fn held(
        &self,
        fence: &Fence,
    ) -> Result<
        aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder,
        StoreError,
    > {
        Ok(self
            .table
            .update(connection_key(&fence.connection_id)?)
            .condition_expression("#owner = :host AND epoch = :epoch")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":host", s(&fence.host))
            .expression_attribute_values(":epoch", n(fence.epoch)))
    }

    /// Gives the lease up (shutdown): another host may take it at once.
    pub async fn release(&self, fence: &Fence) -> Result<bool, StoreError> {
        let out = self
            .held(fence)?
            .update_expression("REMOVE #owner SET leaseUntil = :zero")
            .expression_attribute_values(":zero", n(0))
            .send()
            .await;
        written(out)
    }

    /// Whether the fence still holds (a consistent read): checked before an action that is
    /// not itself a write of ours, such as sending.
    pub async fn holds(&self, fence: &Fence) -> Result<bool, StoreError> {
        Ok(self.connection(&fence.connection_id).await?.is_some_and(|c| {
            c.owner.as_deref() == Some(fence.host.as_str())
                && c.epoch == fence.epoch
                && c.lease_until > now_ms()
        }))
    }

    pub(crate) fn fence_check(&self, fence: &Fence) -> Result<TransactWriteItem, StoreError> {
        let check = ConditionCheck::builder()
            .table_name(self.table.name())
            .set_key(Some(connection_key(&fence.connection_id)?))
            .condition_expression("#owner = :host AND epoch = :epoch AND leaseUntil > :now")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":host", s(&fence.host))
            .expression_attribute_values(":epoch", n(fence.epoch))
            .expression_attribute_values(":now", n(now_ms()))
            .build()
            .map_err(dynamo_err)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Writes a change of the session, fenced; `from` is the state the host last read (a
    /// B2B user's counters move from it).
    pub async fn write(
        &self,
        fence: &Fence,
        session: &SessionRecord,
        change: &SessionChange,
    ) -> Result<Fenced, StoreError> {
        let tenant = TenantScope::of_record(&Member(session.tenant_id.clone()));
        let mut sets = vec!["stateAt = :now, writtenEpoch = :epoch, writtenBy = :host".to_owned()];
        let mut removes = Vec::new();
        let mut update = self
            .table
            .update_of(session_key(&tenant))
            .condition_expression("connectionId = :c AND #state = :from")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":c", s(&fence.connection_id))
            .expression_attribute_values(":from", s(session.state.as_str()))
            .expression_attribute_values(":now", n(now_secs()))
            .expression_attribute_values(":epoch", n(fence.epoch))
            .expression_attribute_values(":host", s(&fence.host));
        if let Some(state) = change.state {
            sets.push("#state = :to".into());
            update = update.expression_attribute_values(":to", s(state.as_str()));
            if state != SessionState::Pairing {
                removes.extend(["qr", "pairingCode", "qrExpiresAt"]);
            }
        }
        if let Some((qr, code, expires)) = &change.qr {
            sets.push("qr = :qr, qrExpiresAt = :qrx".into());
            update = update
                .expression_attribute_values(":qr", s(qr))
                .expression_attribute_values(":qrx", n(expires));
            match code {
                Some(code) => {
                    sets.push("pairingCode = :code".into());
                    update = update.expression_attribute_values(":code", s(code));
                }
                None => removes.push("pairingCode"),
            }
        }
        if let Some((phone, device)) = &change.linked {
            sets.push("phoneNumber = :phone, deviceId = :device".into());
            update = update
                .expression_attribute_values(":phone", s(phone))
                .expression_attribute_values(":device", s(device));
        }
        if change.unlink {
            removes.extend(["phoneNumber", "deviceId"]);
        }
        if change.seen {
            sets.push("lastSeenAt = :now".into());
        }
        if let Some(failures) = change.failures {
            sets.push("failures = :failures".into());
            update = update.expression_attribute_values(":failures", n(failures));
        }
        removes.sort_unstable();
        removes.dedup();
        let mut expression = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            expression.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let mut items = vec![
            self.fence_check(fence)?,
            self.table.update_in(update.update_expression(expression))?,
        ];
        if let (Some(link), Some(to)) = (&session.b2b, change.state)
            && to != session.state
        {
            items.extend(session_state_move(
                &self.tenants,
                link,
                session.state.as_str(),
                to.as_str(),
            )?);
        }
        self.fenced(items).await
    }

    /// The linked device's sealed credentials.
    pub async fn device(&self, tenant: &TenantScope) -> Result<Option<String>, StoreError> {
        Ok(self
            .table
            .get(device_key(tenant))
            .await?
            .and_then(|item| opt_s(&item, "sealed").map(str::to_owned)))
    }

    /// Stores the linked device's sealed credentials, fenced.
    pub async fn store_device(
        &self,
        fence: &Fence,
        tenant: &TenantScope,
        sealed: &str,
    ) -> Result<Fenced, StoreError> {
        let mut item = device_key(tenant);
        item.insert("sealed".into(), s(sealed));
        item.insert("epoch".into(), n(fence.epoch));
        item.insert("connectionId".into(), s(&fence.connection_id));
        item.insert("updatedAt".into(), n(now_secs()));
        let items = vec![self.fence_check(fence)?, self.table.put_in(item, None)?];
        self.fenced(items).await
    }

    /// Forgets the linked device (logged out), fenced.
    pub async fn forget_device(
        &self,
        fence: &Fence,
        tenant: &TenantScope,
    ) -> Result<Fenced, StoreError> {
        let items = vec![self.fence_check(fence)?, self.table.delete_in(device_key(tenant), None)?];
        self.fenced(items).await
    }

    /// Runs a transaction; `false` when one of its conditions did not hold.
    async fn applied(&self, items: Vec<TransactWriteItem>) -> Result<bool, StoreError> {
        match self.table.transact(items).await {
            Ok(()) => Ok(true),
            Err(e) => match failed_conditions(&e) {
                Some(_) => Ok(false),
                None => Err(dynamo_err(e)),
            },
        }
    }

    /// Runs a transaction whose first item is the fence.
    pub(crate) async fn fenced(&self, items: Vec<TransactWriteItem>) -> Result<Fenced, StoreError> {
        match self.table.transact(items).await {
            Ok(()) => Ok(Fenced::Written),
            Err(e) => match failed_conditions(&e) {
                Some(failed) if failed.first() == Some(&true) => Ok(Fenced::LeaseLost),
                Some(_) => Ok(Fenced::NotMember),
                None => Err(dynamo_err(e)),
            },
        }
    }
}

/// A tenant named by a pool record (a connection's member, a session item): the host acts
/// for the tenants its connections hold.
struct Member(TenantId);

impl domain::queues::Tenanted for Member {
    fn tenant_id(&self) -> &TenantId {
        &self.0
    }
}

/// The scope of a member of a connection the host holds.
pub fn member_scope(tenant: &TenantId) -> TenantScope {
    TenantScope::of_record(&Member(tenant.clone()))
}
