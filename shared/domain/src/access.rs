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
    /// A partner platform's key, on its own behalf: its users, its own webhooks.
    Platform,
    /// A partner platform's key acting for one of its users (`X-Tenant-Id`, or a
    /// `/api/b2b/users/{userId}/…` path): a tenant admin's rights inside that user.
    PlatformForUser,
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
    /// A platform's B2B users (`/api/b2b/…`).
    ManagePlatformUsers,
    /// Everything stored for the tenant (GDPR access).
    ExportTenantData,
    /// Operator routes (`/api/admin/*`).
    Operate,
}

use Caller::{ApiKey, Platform, PlatformForUser, User};
use Role::{Agent, BillingAdmin, SystemAdmin, TenantAdmin};

/// The permission table. Anything not listed is refused.
pub const PERMISSIONS: &[(Action, &[Caller])] = &[
    (
        Action::ReadOwnProfile,
        &[User(SystemAdmin), User(TenantAdmin), User(Agent), User(BillingAdmin)],
    ),
    (Action::ReadTenant, &[User(TenantAdmin), PlatformForUser]),
    (Action::UpdateTenant, &[User(TenantAdmin), PlatformForUser]),
    (Action::ManageUsers, &[User(TenantAdmin), PlatformForUser]),
    (Action::ManageApiKeys, &[User(TenantAdmin), PlatformForUser]),
    (Action::ManageChannel, &[User(TenantAdmin), PlatformForUser]),
    (Action::SendMessages, &[User(TenantAdmin), User(Agent), ApiKey, PlatformForUser]),
    (Action::ReadConversations, &[User(TenantAdmin), User(Agent), ApiKey, PlatformForUser]),
    (Action::UpdateConversations, &[User(TenantAdmin), User(Agent), PlatformForUser]),
    (Action::ManageTemplates, &[User(TenantAdmin), PlatformForUser]),
    (Action::ReadAnalytics, &[User(TenantAdmin), User(BillingAdmin), PlatformForUser]),
    (Action::ManageWebhooks, &[User(TenantAdmin), ApiKey, Platform, PlatformForUser]),
    (Action::ManagePlatformUsers, &[Platform]),
    (Action::ExportTenantData, &[User(TenantAdmin), PlatformForUser]),
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

    #[test]
    fn a_platform_manages_its_users_and_acts_for_one_as_its_admin() {
        let admin: Vec<Action> = PERMISSIONS
            .iter()
            .filter(|(_, callers)| callers.contains(&User(TenantAdmin)))
            .map(|(a, _)| *a)
            .filter(|a| *a != Action::ReadOwnProfile)
            .collect();
        for action in admin {
            assert!(allows(PlatformForUser, action), "{action:?}");
        }
        assert!(!allows(PlatformForUser, Action::ReadOwnProfile), "a key has no profile");
        assert!(allows(Platform, Action::ManagePlatformUsers));
        assert!(allows(Platform, Action::ManageWebhooks), "its own subscriptions");
        for action in [Action::SendMessages, Action::ReadConversations, Action::ManageChannel] {
            assert!(!allows(Platform, action), "{action:?} needs a user to act for");
        }
        assert!(!allows(PlatformForUser, Action::ManagePlatformUsers));
        assert!(!allows(Platform, Action::Operate));
        assert!(!allows(User(TenantAdmin), Action::ManagePlatformUsers));
    }
}
