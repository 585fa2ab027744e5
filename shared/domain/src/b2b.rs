//! Partner platforms' users: what a create or update may say, checked before anything is
//! stored.

use crate::Violation;
use crate::ids::B2bUserId;
use crate::tenant::Tier;
use serde_json::{Map, Value};

/// Rows a bulk create takes at most.
pub const MAX_BULK_USERS: usize = 1_000;
/// The longest `platformUserId` and `platformName`.
const MAX_TEXT: usize = 128;

/// A user to create, as a platform asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRequest {
    pub user_id: B2bUserId,
    pub platform_user_id: String,
    pub platform_name: Option<String>,
    /// `enterprise_b2b` unless asked otherwise.
    pub tier: Tier,
    /// The platform the body names, which must be the caller's (checked by the caller).
    pub platform_id: Option<String>,
}

/// What an update may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub platform_user_id: Option<String>,
    pub tier: Option<Tier>,
}

fn text(body: &Map<String, Value>, field: &str, errors: &mut Vec<Violation>) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => {
            errors.push(Violation::new(field, "must not be empty"));
            None
        }
        Some(Value::String(s)) if s.chars().count() > MAX_TEXT => {
            errors.push(Violation::new(field, format!("must be at most {MAX_TEXT} characters")));
            None
        }
        Some(Value::String(s)) if s.chars().any(char::is_control) => {
            errors.push(Violation::new(field, "must not contain control characters"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(Violation::new(field, "must be a string"));
            None
        }
    }
}

fn tier(body: &Map<String, Value>, errors: &mut Vec<Violation>) -> Option<Tier> {
    match body.get("tier") {
        None | Some(Value::Null) => None,
        Some(value) => {
            let parsed = value.as_str().and_then(Tier::parse);
            if parsed.is_none() {
                errors.push(Violation::new(
                    "tier",
                    "must be standard, professional, enterprise or enterprise_b2b",
                ));
            }
            parsed
        }
    }
}

fn unknown_fields(body: &Map<String, Value>, known: &[&str], errors: &mut Vec<Violation>) {
    for field in body.keys().filter(|f| !known.contains(&f.as_str())) {
        errors.push(Violation::new(field.as_str(), "is not a field of a B2B user"));
    }
}

/// Not a user id: `/api/b2b/users/bulk` is the bulk create, so such a user could not be
/// read at its own path.
pub const RESERVED_USER_ID: &str = "bulk";

/// A create's body (`fields` names the fields it may carry: a bulk row takes fewer).
pub fn user_request(body: &Value, fields: &[&str]) -> Result<UserRequest, Vec<Violation>> {
    let Some(body) = body.as_object() else {
        return Err(vec![Violation::new("", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    unknown_fields(body, fields, &mut errors);
    let user_id = match body.get("userId") {
        Some(Value::String(raw)) => {
            let parsed = B2bUserId::parse(raw);
            if parsed.is_none() {
                errors.push(Violation::new("userId", "must be 1 to 64 of A-Z a-z 0-9 . _ -"));
            } else if raw == RESERVED_USER_ID {
                errors.push(Violation::new("userId", "is reserved (/api/b2b/users/bulk)"));
            }
            parsed.filter(|_| raw != RESERVED_USER_ID)
        }
        Some(_) => {
            errors.push(Violation::new("userId", "must be a string"));
            None
        }
        None => {
            errors.push(Violation::new("userId", "is required"));
            None
        }
    };
    let platform_user_id = text(body, "platformUserId", &mut errors);
    if platform_user_id.is_none() && !errors.iter().any(|e| e.field == "platformUserId") {
        errors.push(Violation::new("platformUserId", "is required"));
    }
    let platform_name = text(body, "platformName", &mut errors);
    let tier = tier(body, &mut errors);
    let platform_id = text(body, "platformId", &mut errors);
    match (user_id, platform_user_id) {
        (Some(user_id), Some(platform_user_id)) if errors.is_empty() => Ok(UserRequest {
            user_id,
            platform_user_id,
            platform_name,
            tier: tier.unwrap_or(Tier::EnterpriseB2b),
            platform_id,
        }),
        _ => Err(errors),
    }
}

/// An update's body.
pub fn user_changes(body: &Value) -> Result<UserChanges, Vec<Violation>> {
    let Some(body) = body.as_object() else {
        return Err(vec![Violation::new("", "must be a JSON object")]);
    };
    let mut errors = Vec::new();
    unknown_fields(body, &["platformUserId", "tier"], &mut errors);
    let changes = UserChanges {
        platform_user_id: text(body, "platformUserId", &mut errors),
        tier: tier(body, &mut errors),
    };
    if errors.is_empty() { Ok(changes) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CREATE: &[&str] = &["userId", "platformUserId", "platformName", "tier", "platformId"];

    #[test]
    fn a_create_names_a_plausible_user_and_defaults_to_the_b2b_tier() {
        let ok = user_request(&json!({"userId": "u-1.a_b", "platformUserId": "cust 9"}), CREATE)
            .expect("valid");
        assert_eq!(ok.tier, Tier::EnterpriseB2b);
        assert_eq!(ok.user_id.as_str(), "u-1.a_b");
        let tiered = user_request(
            &json!({"userId": "u", "platformUserId": "p", "tier": "standard"}),
            CREATE,
        );
        assert_eq!(tiered.map(|r| r.tier), Ok(Tier::Standard));
    }

    #[test]
    fn every_broken_rule_is_named() {
        let long = "x".repeat(65);
        for (body, field) in [
            (json!({"platformUserId": "p"}), "userId"),
            (json!({"userId": long, "platformUserId": "p"}), "userId"),
            (json!({"userId": "bulk", "platformUserId": "p"}), "userId"),
            (json!({"userId": "a b", "platformUserId": "p"}), "userId"),
            (json!({"userId": 7, "platformUserId": "p"}), "userId"),
            (json!({"userId": "u"}), "platformUserId"),
            (json!({"userId": "u", "platformUserId": " "}), "platformUserId"),
            (json!({"userId": "u", "platformUserId": "p", "tier": "gold"}), "tier"),
            (json!({"userId": "u", "platformUserId": "p", "color": "red"}), "color"),
            (json!({"userId": "u", "platformUserId": "p\u{7}"}), "platformUserId"),
        ] {
            let errors = user_request(&body, CREATE).expect_err("invalid");
            assert!(errors.iter().any(|e| e.field == field), "{body}: {errors:?}");
        }
        let row_only = user_request(
            &json!({"userId": "u", "platformUserId": "p", "platformName": "n"}),
            &["userId", "platformUserId", "tier"],
        );
        assert!(row_only.is_err(), "a bulk row takes no platformName");
        assert!(user_request(&json!([1]), CREATE).is_err());
    }

    #[test]
    fn an_update_changes_only_what_it_names() {
        assert_eq!(user_changes(&json!({})), Ok(UserChanges::default()));
        let changes = user_changes(&json!({"tier": "professional"})).expect("valid");
        assert_eq!(changes.tier, Some(Tier::Professional));
        assert!(user_changes(&json!({"userId": "x"})).is_err());
        assert!(user_changes(&json!({"tier": 3})).is_err());
    }
}
