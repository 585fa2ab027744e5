//! A tenant's audit trail.

use super::*;
use crate::store::attrs::{key, n, now_secs, rfc3339, s};
use crate::store::table::Table;
use crate::store::{StoreError, TenantScope};

/// A tenant's audit trail (kept 400 days).
#[derive(Clone, Copy, Debug)]
pub struct AuditLog<'a> {
    pub(crate) table: &'a Table,
}

impl AuditLog<'_> {
    pub async fn write(&self, scope: &TenantScope, entry: AuditEntry) -> Result<(), StoreError> {
        let now = now_secs();
        let id = uuid::Uuid::new_v4().simple().to_string();
        let mut item = with(
            key(scope.pk(), format!("{AUDIT_PREFIX}{}#{id}", rfc3339(now))),
            [
                ("type", s("audit")),
                ("action", s(entry.action)),
                ("detail", s(entry.detail.to_string())),
                ("at", n(now)),
                ("expiresAt", n(now + AUDIT_TTL_SECS)),
            ],
        );
        if let Some(actor) = entry.actor_id {
            item.insert("actorId".into(), s(actor));
        }
        if let Some(target) = entry.target_id {
            item.insert("targetId".into(), s(target));
        }
        self.table.put(item).await?;
        Ok(())
    }
}
