//! `GET /api/admin/pools`: the session host's pools, per tier, read from the pool table.

use crate::Deps;
use contract::views::PoolView;
use edge::http::{ApiError, json};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use std::collections::{BTreeMap, BTreeSet};

/// Per tier: `size` (connections made), `capacity` (connections the pool may have),
/// `users` (sessions holding a slot), `utilization` (users over `maxUsers`),
/// `usersPerConnection`, `maxUsers`, and `hosts` (hosts holding a live lease on one).
pub async fn list(deps: &Deps) -> Result<Response<Body>, ApiError> {
    let (pool, policies) =
        deps.pools.as_ref().ok_or_else(|| ApiError::internal("pools not wired"))?;
    let now_ms = domain::time::now_ms();
    let mut out: BTreeMap<&str, PoolView> = BTreeMap::new();
    for policy in policies.all() {
        let tier = policy.tier;
        let connections = pool.connections(tier).await?;
        let users: usize = connections.iter().map(|c| c.members.len()).sum();
        let hosts: BTreeSet<&str> = connections
            .iter()
            .filter(|c| c.leased(now_ms))
            .filter_map(|c| c.owner.as_deref())
            .collect();
        let max_users = policy.max_users();
        let utilization = if max_users == 0 { 0.0 } else { users as f64 / f64::from(max_users) };
        out.insert(
            tier.as_str(),
            PoolView {
                size: connections.len(),
                capacity: policy.max_connections,
                users,
                utilization: (utilization * 1000.0).round() / 1000.0,
                users_per_connection: policy.users_per_connection,
                max_users,
                hosts: hosts.len(),
            },
        );
    }
    Ok(json(StatusCode::OK, &out))
}
