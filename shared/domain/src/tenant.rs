//! Tenants: their tier (which decides session pooling and traffic priority), plan limits,
//! branding and settings.

use super::Violation;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Standard,
    Professional,
    Enterprise,
    EnterpriseB2b,
}

impl Tier {
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Standard => "standard",
            Tier::Professional => "professional",
            Tier::Enterprise => "enterprise",
            Tier::EnterpriseB2b => "enterprise_b2b",
        }
    }

    pub fn parse(raw: &str) -> Option<Tier> {
        [Tier::Standard, Tier::Professional, Tier::Enterprise, Tier::EnterpriseB2b]
            .into_iter()
            .find(|t| t.as_str() == raw)
    }

    /// Enterprise traffic goes to the high-priority outbound queue.
    pub fn high_priority(self) -> bool {
        matches!(self, Tier::Enterprise | Tier::EnterpriseB2b)
    }

    /// What the plan allows. Read-only for tenants: tiers change through billing.
    pub fn limits(self) -> Limits {
        match self {
            Tier::Standard => Limits { max_users: 5, max_api_keys: 5, messages_per_second: 10 },
            Tier::Professional => {
                Limits { max_users: 25, max_api_keys: 20, messages_per_second: 40 }
            }
            Tier::Enterprise => {
                Limits { max_users: 500, max_api_keys: 100, messages_per_second: 500 }
            }
            // Partner platforms send for many businesses: up to Meta's highest throughput.
            Tier::EnterpriseB2b => {
                Limits { max_users: 50, max_api_keys: 20, messages_per_second: 1000 }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_users: u32,
    pub max_api_keys: u32,
    pub messages_per_second: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Branding {
    pub logo_url: Option<String>,
    pub primary_color: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpeningHours {
    /// `mon` … `sun`.
    pub day: String,
    /// `HH:MM`, 24-hour, in `BusinessHours::timezone`.
    pub open: String,
    pub close: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BusinessHours {
    /// An IANA zone name, e.g. `Europe/Berlin`.
    pub timezone: String,
    pub days: Vec<OpeningHours>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Settings {
    pub business_hours: Option<BusinessHours>,
    /// Assign new conversations round-robin to online agents.
    pub auto_assignment: bool,
}

const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn is_hh_mm(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 5
        && b[2] == b':'
        && s[..2].parse::<u8>().is_ok_and(|h| h < 24)
        && s[3..].parse::<u8>().is_ok_and(|m| m < 60)
        && b[..2].iter().chain(&b[3..]).all(u8::is_ascii_digit)
}

impl Branding {
    pub fn validate(&self, violations: &mut Vec<Violation>) {
        if let Some(url) = &self.logo_url
            && (!url.starts_with("https://")
                || url.len() > 2048
                || url.contains(char::is_whitespace))
        {
            violations.push(Violation::new("branding.logoUrl", "must be an https URL"));
        }
        if let Some(color) = &self.primary_color {
            let ok = color.len() == 7
                && color.starts_with('#')
                && color[1..].bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                violations.push(Violation::new("branding.primaryColor", "must be #RRGGBB"));
            }
        }
    }
}

impl Settings {
    pub fn validate(&self, violations: &mut Vec<Violation>) {
        let Some(hours) = &self.business_hours else { return };
        let tz = &hours.timezone;
        let tz_ok = !tz.is_empty()
            && tz.len() <= 64
            && tz
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'_' | b'-' | b'+'));
        if !tz_ok {
            violations.push(Violation::new(
                "settings.businessHours.timezone",
                "must be an IANA time zone",
            ));
        }
        if hours.days.len() > 21 {
            violations.push(Violation::new("settings.businessHours.days", "at most 21 entries"));
        }
        for (i, day) in hours.days.iter().enumerate() {
            if !DAYS.contains(&day.day.as_str()) {
                violations.push(Violation::new(
                    format!("settings.businessHours.days[{i}].day"),
                    "must be mon … sun",
                ));
            }
            if !is_hh_mm(&day.open) || !is_hh_mm(&day.close) || day.open >= day.close {
                violations.push(Violation::new(
                    format!("settings.businessHours.days[{i}]"),
                    "open and close must be HH:MM with open before close",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_round_trip_and_enterprise_tiers_are_high_priority() {
        for tier in [Tier::Standard, Tier::Professional, Tier::Enterprise, Tier::EnterpriseB2b] {
            assert_eq!(Tier::parse(tier.as_str()), Some(tier));
            assert_eq!(serde_json::to_value(tier).ok(), Some(serde_json::json!(tier.as_str())));
        }
        assert!(Tier::EnterpriseB2b.high_priority() && !Tier::Professional.high_priority());
    }

    #[test]
    fn branding_needs_https_logo_and_hex_colour() {
        let mut v = Vec::new();
        Branding { logo_url: Some("http://x".into()), primary_color: Some("red".into()) }
            .validate(&mut v);
        assert_eq!(v.len(), 2);
        let mut v = Vec::new();
        Branding {
            logo_url: Some("https://cdn.example.com/l.png".into()),
            primary_color: Some("#0a7AfF".into()),
        }
        .validate(&mut v);
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn business_hours_are_checked_per_day() {
        let hours = |open: &str, close: &str, day: &str| Settings {
            business_hours: Some(BusinessHours {
                timezone: "Europe/Berlin".into(),
                days: vec![OpeningHours {
                    day: day.into(),
                    open: open.into(),
                    close: close.into(),
                }],
            }),
            auto_assignment: false,
        };
        let mut v = Vec::new();
        hours("09:00", "17:30", "mon").validate(&mut v);
        assert!(v.is_empty(), "{v:?}");
        for (open, close, day) in [
            ("17:00", "09:00", "mon"),
            ("9:00", "17:00", "mon"),
            ("09:00", "24:00", "mon"),
            ("09:00", "17:00", "monday"),
        ] {
            let mut v = Vec::new();
            hours(open, close, day).validate(&mut v);
            assert!(!v.is_empty(), "{open}-{close} {day}");
        }
    }
}
