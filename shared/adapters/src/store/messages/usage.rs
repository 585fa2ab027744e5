//! The day's usage, read by adding up its counters in every shard of the tenant.

use crate::store::attrs::opt_s;
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope};

/// Daily usage counters.
#[derive(Clone, Copy, Debug)]
pub struct Usage<'a> {
    pub(crate) table: &'a Table,
}

impl Usage<'_> {
    /// Daily usage counters from `from` to `to` (`yyyy-mm-dd`, inclusive), each day's
    /// shards added up (one query per shard, a few at a time).
    pub async fn days(
        &self,
        scope: &TenantScope,
        from: &str,
        to: &str,
    ) -> Result<
        std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>>,
        StoreError,
    > {
        let mut days: std::collections::BTreeMap<String, std::collections::BTreeMap<String, i64>> =
            std::collections::BTreeMap::new();
        let (first, last) = (format!("USAGE#{from}"), format!("USAGE#{to}"));
        let queries = scope.shard_pks().map(|pk| self.table.sk_between(&pk, &first, &last));
        for item in self.table.query_all_of(queries).await? {
            let Some(date) = opt_s(&item, "sk")
                .and_then(|sk| sk.strip_prefix("USAGE#"))
                .map(|d| d.chars().take(10).collect::<String>())
            else {
                continue;
            };
            let counters = days.entry(date).or_default();
            for (name, value) in &item {
                if let Some(v) = value.as_n().ok().and_then(|v| v.parse::<i64>().ok()) {
                    *counters.entry(name.clone()).or_default() += v;
                }
            }
        }
        Ok(days)
    }
}
