//! Users, their roles, and the rules their credentials must meet.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// An operator of Switchboard itself; belongs to no customer tenant.
    SystemAdmin,
    TenantAdmin,
    Agent,
    BillingAdmin,
}

impl Role {
    pub const ALL: [Role; 4] =
        [Role::SystemAdmin, Role::TenantAdmin, Role::Agent, Role::BillingAdmin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::SystemAdmin => "SYSTEM_ADMIN",
            Role::TenantAdmin => "TENANT_ADMIN",
            Role::Agent => "AGENT",
            Role::BillingAdmin => "BILLING_ADMIN",
        }
    }

    pub fn parse(raw: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == raw)
    }

    /// Roles a tenant admin may give; SYSTEM_ADMIN is never granted through the API.
    pub fn assignable(self) -> bool {
        !matches!(self, Role::SystemAdmin)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Characters that change how text looks or reads without being seen: zero-width ones,
/// joiners, bidirectional controls and overrides, the soft hyphen, the byte-order mark.
/// An address containing one could look identical to another account's.
fn invisible(c: char) -> bool {
    matches!(c,
        '\u{00AD}' | '\u{061C}' | '\u{180E}'
        | '\u{200B}'..='\u{200F}'
        | '\u{202A}'..='\u{202E}'
        | '\u{2060}'..='\u{2064}'
        | '\u{2066}'..='\u{206F}'
        | '\u{FEFF}'
        | '\u{FFF9}'..='\u{FFFB}')
}

/// An email address, trimmed and lower-cased, so that one mailbox is one account.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Email, &'static str> {
        let email = raw.trim().to_lowercase();
        let Some((local, domain)) = email.split_once('@') else {
            return Err("must be an email address");
        };
        let valid = !local.is_empty()
            && email.len() <= 254
            && local.len() <= 64
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !email.chars().any(|c| c.is_whitespace() || c.is_control() || invisible(c));
        if valid { Ok(Email(email)) } else { Err("must be an email address") }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// For logs: the domain and the first character only (`j…@example.com`).
    pub fn redacted(&self) -> String {
        match self.0.split_once('@') {
            Some((local, domain)) => {
                format!("{}…@{domain}", local.chars().next().unwrap_or('?'))
            }
            None => "…".into(),
        }
    }
}

/// Passwords are at least this long (API.md), and at most this long, so that hashing
/// cost stays bounded whatever a client sends.
pub const PASSWORD_MIN_CHARS: usize = 12;
pub const PASSWORD_MAX_CHARS: usize = 256;

pub fn check_password(password: &str) -> Result<(), &'static str> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        Err("must be at least 12 characters")
    } else if chars > PASSWORD_MAX_CHARS {
        Err("must be at most 256 characters")
    } else {
        Ok(())
    }
}

/// A display name: 1 to 200 characters once trimmed.
pub fn check_name(name: &str) -> Result<String, &'static str> {
    let name = name.trim();
    match name.chars().count() {
        0 => Err("must not be empty"),
        1..=200 => Ok(name.to_owned()),
        _ => Err("must be at most 200 characters"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(Email::parse("  Ana@Example.COM ").map(|e| e.0), Ok("ana@example.com".into()));
        for bad in ["", "ana", "ana@", "@example.com", "ana@example", "a b@example.com", "ana@.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn emails_with_invisible_or_bidi_characters_are_refused() {
        for bad in [
            "ana\u{200B}@example.com",
            "an\u{200D}a@example.com",
            "ana@exa\u{202E}elpm.com",
            "\u{2066}ana@example.com",
            "ana\u{00AD}@example.com",
            "\u{FEFF}ana@example.com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse("jos\u{e9}@example.com").is_ok(), "visible non-ASCII stays allowed");
    }

    #[test]
    fn redacted_emails_hide_the_mailbox() {
        let email = Email::parse("jane.doe@example.com").expect("valid");
        assert_eq!(email.redacted(), "j…@example.com");
    }

    #[test]
    fn passwords_need_twelve_characters_counted_as_characters() {
        assert!(check_password("short").is_err());
        assert!(check_password("exactly12chr").is_ok());
        assert!(check_password("ééééééééééé").is_err(), "11 characters, 22 bytes");
        assert!(check_password(&"x".repeat(257)).is_err());
    }

    #[test]
    fn roles_round_trip_and_system_admin_is_not_assignable() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("tenant_admin"), None);
        assert!(!Role::SystemAdmin.assignable());
        assert!(Role::Agent.assignable());
    }
}
