//! Who may do what: the one permission table every route consults.
//!
//! A request acts as a [`Caller`]: a user with a role, or a tenant API key. Each route
//! names the [`Action`] it performs (see `edge::routes`), and [`allows`] answers from
//! [`PERMISSIONS`] alone.

use super::user::Role;
use serde::Serialize;

/// The kinds of caller the table distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Caller {
    User(Role),
    /// A tenant API key (`/api/api-keys`): for integrations that send and read messages.
    ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `/api/auth/me`, logout: any signed-in user.
    ReadOwnProfile,
    ReadTenant,
    UpdateTenant,
    ManageUsers,
    ManageApiKeys,
    ManageChannel,
    SendMessages,
    ReadConversations,
    UpdateConversations,
    ManageTemplates,
    ReadAnalytics,
    ManageWebhooks,
    /// Operator routes (`/api/admin/*`).
    Operate,
}

use Caller::{ApiKey, User};
use Role::{Agent, BillingAdmin, SystemAdmin, TenantAdmin};

/// The permission table. Anything not listed is refused.
pub const PERMISSIONS: &[(Action, &[Caller])] = &[
    (
        Action::ReadOwnProfile,
        &[User(SystemAdmin), User(TenantAdmin), User(Agent), User(BillingAdmin)],
    ),
    (Action::ReadTenant, &[User(TenantAdmin)]),
    (Action::UpdateTenant, &[User(TenantAdmin)]),
    (Action::ManageUsers, &[User(TenantAdmin)]),
    (Action::ManageApiKeys, &[User(TenantAdmin)]),
    (Action::ManageChannel, &[User(TenantAdmin)]),
    (Action::SendMessages, &[User(TenantAdmin), User(Agent), ApiKey]),
    (Action::ReadConversations, &[User(TenantAdmin), User(Agent), ApiKey]),
    (Action::UpdateConversations, &[User(TenantAdmin), User(Agent)]),
    (Action::ManageTemplates, &[User(TenantAdmin)]),
    (Action::ReadAnalytics, &[User(TenantAdmin), User(BillingAdmin)]),
    (Action::ManageWebhooks, &[User(TenantAdmin), ApiKey]),
    (Action::Operate, &[User(SystemAdmin)]),
];

pub fn allows(caller: Caller, action: Action) -> bool {
    PERMISSIONS.iter().any(|(a, callers)| *a == action && callers.contains(&caller))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_appears_once_in_the_table() {
        let mut seen = std::collections::HashSet::new();
        for (action, _) in PERMISSIONS {
            assert!(seen.insert(*action), "{action:?} listed twice");
        }
    }

    #[test]
    fn operators_do_not_act_inside_tenants_and_keys_do_not_administer() {
        assert!(allows(User(SystemAdmin), Action::Operate));
        assert!(!allows(User(SystemAdmin), Action::ManageUsers));
        assert!(!allows(ApiKey, Action::ManageApiKeys));
        assert!(!allows(ApiKey, Action::ReadOwnProfile));
        assert!(allows(ApiKey, Action::SendMessages));
        assert!(!allows(User(BillingAdmin), Action::SendMessages));
        assert!(allows(User(BillingAdmin), Action::ReadAnalytics));
    }
}
