//! The host's loop: heartbeat the leases it holds, give up those it lost (and stop their
//! sessions by itself when it cannot heartbeat in time), and take connections whose lease
//! ran out. Each connection it holds has a worker that runs the member sessions and does
//! the work on the connection's queue.

use crate::Deps;
use crate::driver::Driver;
use crate::session::{self, Command, Done, Ended, Handle};
use adapters::session_queues::Received;
use adapters::store::pool::{Connection, Fence, member_scope};
use domain::ids::TenantId;
use domain::sessions::{SessionWork, TIERS, parse_connection_id};
use domain::time::now_ms;
use futures_util::future::join_all;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{error, info, instrument, warn};

struct Owned {
    fence: Fence,
    stop: watch::Sender<bool>,
    members: watch::Sender<Vec<TenantId>>,
    task: JoinHandle<()>,
    last_heartbeat: Instant,
}

pub struct Host<D: Driver> {
    deps: Arc<Deps<D>>,
    owned: HashMap<String, Owned>,
}

impl<D: Driver> Host<D> {
    pub fn new(deps: Arc<Deps<D>>) -> Self {
        Self { deps, owned: HashMap::new() }
    }

    /// Runs until `stop` says so; then stops every session and gives the leases back.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        info!(host = self.deps.config.host_id, "session host running");
        self.prewarm().await;
        let mut beat = tokio::time::interval(self.deps.config.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Looking for connections to take is more frequent than heartbeats: a connection
        // the API has just made waits for a host no longer than this.
        let mut look = tokio::time::interval(self.deps.config.claim_every);
        look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut report = tokio::time::interval(Duration::from_secs(60));
        let mut healthy = true;
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = beat.tick() => healthy = self.heartbeat().await,
                _ = look.tick() => self.claim().await,
                _ = report.tick() => {
                    info!(metrics = %self.deps.metrics.report(), connections = self.owned.len(), "session host metrics");
                }
            }
            self.deps.health.ticked(healthy, self.owned.len());
        }
        self.shutdown().await;
    }

    /// Makes sure each tier's pre-warmed connections exist (they are taken like any other).
    async fn prewarm(&self) {
        for tier in TIERS {
            for index in 0..self.deps.config.policy(tier).prewarm {
                if let Err(e) = self.deps.pool.ensure_connection(tier, index).await {
                    warn!(error = %e, tier = tier.as_str(), "pre-warmed connection not made");
                }
            }
        }
    }

    /// Heartbeats every lease; `false` when one could not be extended in time.
    async fn heartbeat(&mut self) -> bool {
        let lease = self.deps.config.lease_ms();
        let beats = self.owned.iter().map(|(id, owned)| {
            let pool = &self.deps.pool;
            async move { (id.clone(), pool.heartbeat(&owned.fence, lease).await) }
        });
        let results = join_all(beats).await;
        let mut healthy = true;
        for (id, result) in results {
            let Some(owned) = self.owned.get_mut(&id) else { continue };
            match result {
                Ok(Some(connection)) => {
                    owned.last_heartbeat = Instant::now();
                    let _ = owned.members.send(connection.members);
                }
                Ok(None) => {
                    warn!(connection = id, "lease lost to another host; stopping its sessions");
                    self.drop_connection(&id);
                }
                Err(e) => {
                    healthy = false;
                    // NOTE: the lease runs out at another host's clock too; stopping a
                    // margin early means this host is never still sending when another has
                    // taken over.
                    let margin = self.deps.config.heartbeat;
                    if owned.last_heartbeat.elapsed() + margin >= self.deps.config.lease {
                        error!(connection = id, error = %e, "heartbeats failed for a whole lease; stopping its sessions");
                        self.drop_connection(&id);
                    } else {
                        warn!(connection = id, error = %e, "heartbeat failed");
                    }
                }
            }
        }
        // Workers that ended by themselves (a session found the lease lost).
        let finished: Vec<String> = self
            .owned
            .iter()
            .filter(|(_, o)| o.task.is_finished())
            .map(|(id, _)| id.clone())
            .collect();
        for id in finished {
            self.owned.remove(&id);
        }
        healthy
    }

    fn drop_connection(&mut self, id: &str) {
        if let Some(owned) = self.owned.remove(id) {
            let _ = owned.stop.send(true);
        }
    }

    /// Takes connections with members (or pre-warmed ones) whose lease ran out.
    async fn claim(&mut self) {
        let now = now_ms();
        let mut budget = self.deps.config.claims_per_tick;
        for tier in TIERS {
            let connections = match self.deps.pool.connections(tier).await {
                Ok(connections) => connections,
                Err(e) => {
                    warn!(error = %e, tier = tier.as_str(), "connections not listed");
                    continue;
                }
            };
            let prewarm = self.deps.config.policy(tier).prewarm;
            for connection in connections {
                if budget == 0 {
                    return;
                }
                let index = parse_connection_id(&connection.id).map_or(u32::MAX, |(_, i)| i);
                let wanted = !connection.members.is_empty() || index < prewarm;
                if !wanted || connection.leased(now) || self.owned.contains_key(&connection.id) {
                    continue;
                }
                budget -= 1;
                let held_before = connection.owner.is_some();
                match self
                    .deps
                    .pool
                    .acquire(&connection.id, &self.deps.config.host_id, self.deps.config.lease_ms())
                    .await
                {
                    Ok(Some((fence, connection))) => {
                        if held_before {
                            self.deps.metrics.took_over();
                        }
                        self.start_connection(fence, connection)
                    }
                    Ok(None) => {}
                    Err(e) => warn!(error = %e, connection = connection.id, "lease not acquired"),
                }
            }
        }
    }

    fn start_connection(&mut self, fence: Fence, connection: Connection) {
        info!(
            connection = connection.id,
            epoch = fence.epoch,
            members = connection.members.len(),
            "connection taken"
        );
        let (stop, stop_rx) = watch::channel(false);
        let (members, members_rx) = watch::channel(connection.members.clone());
        let worker = Worker {
            deps: self.deps.clone(),
            fence: fence.clone(),
            sessions: HashMap::new(),
            stop: stop_rx,
        };
        let task = tokio::spawn(worker.run(members_rx));
        self.owned.insert(
            connection.id.clone(),
            Owned { fence, stop, members, task, last_heartbeat: Instant::now() },
        );
    }

    async fn shutdown(&mut self) {
        info!(connections = self.owned.len(), "stopping: closing sessions and giving leases back");
        let owned: Vec<Owned> = self.owned.drain().map(|(_, o)| o).collect();
        for o in &owned {
            let _ = o.stop.send(true);
        }
        for o in owned {
            let _ = o.task.await;
            if let Err(e) = self.deps.pool.release(&o.fence).await {
                warn!(error = %e, connection = o.fence.connection_id, "lease not released; it runs out by itself");
            }
        }
    }
}

/// The sessions of one connection and the work on its queue.
struct Worker<D: Driver> {
    deps: Arc<Deps<D>>,
    fence: Fence,
    sessions: HashMap<TenantId, Handle>,
    stop: watch::Receiver<bool>,
}

impl<D: Driver> Worker<D> {
    #[instrument(skip_all, fields(connection = self.fence.connection_id, epoch = self.fence.epoch))]
    async fn run(mut self, mut members: watch::Receiver<Vec<TenantId>>) {
        let initial = members.borrow_and_update().clone();
        self.sync_members(&initial);
        let (batches_tx, mut batches) = tokio::sync::mpsc::channel::<Vec<Received>>(1);
        let (deps, connection) = (self.deps.clone(), self.fence.connection_id.clone());
        // NOTE: a long poll still open when a host dies (or is paused) can take a message
        // that arrives meanwhile, which then stays invisible for its visibility timeout. A
        // poll shorter than the lease has ended before another host can take over, so
        // work queued after a takeover is never swallowed by the host that lost it.
        let wait = (self.deps.config.lease / 3).min(Duration::from_secs(10));
        let mut receiver_stop = self.stop.clone();
        // The queue is long-polled apart, so that stopping never waits for a poll.
        let (go_tx, mut go) = tokio::sync::mpsc::channel::<()>(1);
        let receiver = tokio::spawn(async move {
            loop {
                let received = tokio::select! {
                    _ = receiver_stop.changed() => return,
                    r = deps.queues.receive(&connection, wait) => r,
                };
                match received {
                    Ok(messages) if messages.is_empty() => {}
                    Ok(messages) => {
                        if batches_tx.send(messages).await.is_err() {
                            return;
                        }
                        // The next receive only once this batch is done: a session's work
                        // stays in order.
                        if go.recv().await.is_none() {
                            return;
                        }
                    }
                    Err(e) => {
                        warn!(error = %e, "session work not received");
                        tokio::time::sleep(Duration::from_secs(2)).await;
                    }
                }
            }
        });
        loop {
            tokio::select! {
                _ = self.stop.changed() => break,
                changed = members.changed() => {
                    if changed.is_err() { break }
                    let now = members.borrow_and_update().clone();
                    self.sync_members(&now);
                }
                Some(batch) = batches.recv() => {
                    self.work(batch).await;
                    let _ = go_tx.send(()).await;
                }
            }
            if self.lease_lost() {
                warn!("a session found the lease lost; the connection is given up");
                break;
            }
        }
        receiver.abort();
        let _ = self.stop_all().await;
    }

    fn lease_lost(&mut self) -> bool {
        let mut lost = false;
        self.sessions.retain(|_, handle| {
            if !handle.task.is_finished() {
                return true;
            }
            lost |= futures_util::FutureExt::now_or_never(&mut handle.task)
                .and_then(Result::ok)
                .is_some_and(|ended| ended == Ended::LeaseLost);
            false
        });
        lost
    }

    /// Starts the sessions of new members, and stops those of tenants that are no longer
    /// members (taken out of the pool by an erasure).
    fn sync_members(&mut self, members: &[TenantId]) {
        self.sessions.retain(|tenant, _| members.contains(tenant));
        for tenant in members {
            if !self.sessions.contains_key(tenant) {
                self.spawn(tenant.clone());
            }
        }
    }

    fn spawn(&mut self, tenant: TenantId) {
        let handle = session::spawn(
            self.deps.clone(),
            self.fence.clone(),
            tenant.clone(),
            self.stop.clone(),
        );
        self.sessions.insert(tenant, handle);
    }

    async fn stop_all(&mut self) {
        let handles: Vec<Handle> = self.sessions.drain().map(|(_, h)| h).collect();
        for handle in handles {
            drop(handle.commands);
            let _ = handle.task.await;
        }
    }

    /// One received batch: each tenant's work in order, tenants side by side.
    async fn work(&mut self, batch: Vec<Received>) {
        let mut groups: BTreeMap<TenantId, Vec<(String, SessionWork)>> = BTreeMap::new();
        for received in batch {
            match received.work {
                Ok(work) => groups
                    .entry(domain::queues::Tenanted::tenant_id(&work).clone())
                    .or_default()
                    .push((received.receipt, work)),
                Err(reason) => {
                    error!(reason, "not session work; to the dead-letter queue");
                    let connection = &self.fence.connection_id;
                    if self.deps.queues.reject(&received.body, &reason).await.is_ok() {
                        let _ = self.deps.queues.delete(connection, &received.receipt).await;
                    }
                }
            }
        }
        for tenant in groups.keys() {
            if !self.sessions.contains_key(tenant) {
                self.adopt(tenant).await;
            }
        }
        let jobs = groups.into_iter().map(|(tenant, works)| {
            let commands = self.sessions.get(&tenant).map(|h| h.commands.clone());
            let deps = self.deps.clone();
            let connection = self.fence.connection_id.clone();
            async move {
                for (receipt, work) in works {
                    let done = match &commands {
                        Some(commands) => deliver(commands, work).await,
                        None => elsewhere(&deps, &connection, work).await,
                    };
                    let queues = &deps.queues;
                    let settled = match done {
                        Done::Finished => queues.delete(&connection, &receipt).await,
                        Done::Later(after) => {
                            queues.retry_after(&connection, &receipt, after).await
                        }
                    };
                    if let Err(e) = settled {
                        warn!(error = %e, "session work not settled on its queue");
                    }
                }
            }
        });
        join_all(jobs).await;
    }

    /// Work for a tenant without a session here: a member that joined since the last
    /// heartbeat gets one.
    async fn adopt(&mut self, tenant: &TenantId) {
        if let Ok(Some(connection)) = self.deps.pool.connection(&self.fence.connection_id).await
            && connection.members.contains(tenant)
        {
            self.spawn(tenant.clone());
        }
    }
}

/// Hands one piece of work to the session and waits for its outcome.
async fn deliver(commands: &tokio::sync::mpsc::Sender<Command>, work: SessionWork) -> Done {
    let (done, outcome) = oneshot::channel();
    let command = match work {
        SessionWork::Connect { phone_number, .. } => {
            let pair_phone = phone_number.map(|p| p.trim_start_matches('+').to_owned());
            if commands.send(Command::Connect { pair_phone }).await.is_err() {
                return Done::Later(Duration::from_secs(1));
            }
            return Done::Finished;
        }
        SessionWork::Send { message_id, .. } => Command::Send { message_id, done },
        SessionWork::Logout { .. } => Command::Logout { done },
        SessionWork::Leave { .. } => Command::Leave { done },
    };
    if commands.send(command).await.is_err() {
        return Done::Later(Duration::from_secs(1));
    }
    outcome.await.unwrap_or(Done::Later(Duration::from_secs(1)))
}

/// Work for a tenant that is not a member of this connection (it moved, or left): sent
/// on to its connection, or, for a send, failed when it has none.
async fn elsewhere<D: Driver>(deps: &Deps<D>, connection: &str, work: SessionWork) -> Done {
    let tenant = domain::queues::Tenanted::tenant_id(&work).clone();
    let scope = member_scope(&tenant);
    let session = match deps.pool.session(&scope).await {
        Ok(session) => session,
        Err(_) => return Done::Later(Duration::from_secs(2)),
    };
    match session.and_then(|s| s.connection_id).filter(|c| c != connection) {
        Some(other) => match deps.queues.send(&other, &work).await {
            Ok(()) => Done::Finished,
            Err(_) => Done::Later(Duration::from_secs(2)),
        },
        None => {
            if let SessionWork::Send { message_id, .. } = &work {
                let title = "The tenant has no WhatsApp Web session; connect it and send again.";
                let code = serde_json::json!("session_not_connected");
                if let Ok(true) =
                    deps.messages.outbox().record_failed(&scope, message_id, &code, title).await
                {
                    let announced =
                        adapters::events::message_failed(&tenant, message_id, &code, title);
                    let _ = deps.events.emit(std::slice::from_ref(&announced)).await;
                }
            }
            Done::Finished
        }
    }
}
