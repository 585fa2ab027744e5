//! What the API side does to a tenant's WhatsApp Web session: it never talks to a host,
//! it changes the pool table and queues work on the session's connection queue, for the
//! host that holds the connection (see the session host's docs).

use crate::queues::QueueError;
use crate::session_queues::SessionQueues;
use crate::store::pool::{Joined, PoolStore};
use crate::store::tenants::B2bLink;
use crate::store::{StoreError, TenantScope};
use domain::sessions::{PoolPolicy, SessionWork};

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Queue(#[from] QueueError),
}

#[derive(Clone, Debug)]
pub struct Sessions {
    pub pool: PoolStore,
    pub queues: SessionQueues,
}

impl Sessions {
    pub fn of(clients: &crate::aws::AwsClients, resources: &crate::config::Resources) -> Self {
        Self {
            pool: PoolStore::of(clients, resources),
            queues: SessionQueues::of(clients, resources),
        }
    }

    /// Takes the session out of its connection (the slot is free at once) and tells the
    /// host that holds it to stop it. `false` when it was in none.
    pub async fn stop(&self, scope: &TenantScope) -> Result<bool, SessionError> {
        let Some(connection) = self.pool.session(scope).await?.and_then(|s| s.connection_id) else {
            return Ok(false);
        };
        self.pool.leave(scope, &connection).await?;
        let leave = SessionWork::Leave { tenant_id: scope.tenant_id().clone() };
        self.queues.send(&connection, &leave).await?;
        Ok(true)
    }

    /// A session whose tier changed moves to the new tier's pool: it leaves its connection
    /// (its host stops it) and joins one of the new pool, whose host resumes it with the
    /// same linked device. When the new pool is full it stays where it is (`Ok(false)`).
    pub async fn move_to(
        &self,
        scope: &TenantScope,
        policy: &PoolPolicy,
        b2b: Option<&B2bLink>,
    ) -> Result<bool, SessionError> {
        let Some(session) = self.pool.session(scope).await? else { return Ok(true) };
        let Some(old) = session.connection_id.clone() else { return Ok(true) };
        if session.tier == Some(policy.tier) {
            return Ok(true);
        }
        if !self.pool.has_room(policy).await? {
            return Ok(false);
        }
        self.stop(scope).await?;
        match self.pool.join(scope, policy, b2b).await? {
            Joined::Member(connection) => {
                let resume = SessionWork::Connect {
                    tenant_id: scope.tenant_id().clone(),
                    phone_number: None,
                };
                self.queues.send(&connection, &resume).await?;
                tracing::info!(tenant_id = %scope, from = old, to = connection, "session moved to its tier's pool");
                Ok(true)
            }
            // Filled up in between: the session is out of both; the next connect rejoins.
            Joined::Full => Ok(false),
        }
    }
}
