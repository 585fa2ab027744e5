//! Partner webhooks: what a subscription may ask for, how a delivery is signed (the
//! Standard Webhooks specification), when it is retried, and which destinations are
//! refused. The HTTP client that connects, and the repositories, are in `adapters`.

use crate::Violation;
use crate::queues::PartnerEvent;
use crate::secrets::{RandomUnavailable, sha256_hex};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// The events a subscription can name (`"*"` names them all).
pub const EVENT_TYPES: [&str; 6] = [
    "message.received",
    "message.status",
    "conversation.created",
    "conversation.updated",
    "session.status",
    "template.status",
];

/// The event `POST /api/webhooks/{id}/test` sends: to that subscription only.
pub const TEST_EVENT: &str = "webhook.test";

/// Subscriptions a tenant may hold.
pub const MAX_SUBSCRIPTIONS: usize = 20;
pub const MAX_URL_BYTES: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 500;

/// How long one attempt may take, connection included.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How much of an answer's body is read and kept.
pub const RESPONSE_BODY_BYTES: usize = 4096;
/// How long a rotated secret keeps signing beside the new one.
pub const ROTATION_OVERLAP_SECS: i64 = 24 * 3600;
/// A subscription with no successful delivery for this long, and at least
/// [`DISABLE_AFTER_FAILED`] failed deliveries, is disabled.
pub const DISABLE_AFTER_SECS: i64 = 5 * 24 * 3600;
pub const DISABLE_AFTER_FAILED: i64 = 20;
/// Attempts kept in a delivery's log (redeliveries add to it).
pub const MAX_LOGGED_ATTEMPTS: usize = 30;

/// Which events a subscription receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventFilter(Vec<String>);

impl EventFilter {
    /// From a request: 1 to 20 known event names, or `"*"`.
    pub fn parse(value: &Value) -> Result<Self, Violation> {
        let bad = |m: &str| Violation::new("events", m);
        let list = value.as_array().ok_or_else(|| bad("must be a list of event types"))?;
        if list.is_empty() || list.len() > 20 {
            return Err(bad("must name 1 to 20 event types"));
        }
        let mut events = Vec::new();
        for item in list {
            let name = item.as_str().ok_or_else(|| bad("event types are strings"))?;
            if name != "*" && !EVENT_TYPES.contains(&name) {
                return Err(bad(&format!(
                    "unknown event type {name:?}; known: {}, or \"*\"",
                    EVENT_TYPES.join(", ")
                )));
            }
            if !events.iter().any(|e| e == name) {
                events.push(name.to_owned());
            }
        }
        Ok(Self(events))
    }

    /// As stored (names checked when they were first parsed).
    pub fn from_stored(events: Vec<String>) -> Self {
        Self(events)
    }

    pub fn names(&self) -> &[String] {
        &self.0
    }

    /// Whether an event of `kind` goes to this subscription. The test event goes only to
    /// the subscription it was made for, whatever its filter.
    pub fn matches(&self, kind: &str) -> bool {
        kind != TEST_EVENT && self.0.iter().any(|e| e == "*" || e == kind)
    }
}

/// A description, optional, up to 500 characters.
pub fn description(value: Option<&Value>) -> Result<Option<String>, Violation> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.chars().count() <= MAX_DESCRIPTION_CHARS => Ok(Some(s.clone())),
        Some(_) => Err(Violation::new("description", "must be a string of up to 500 characters")),
    }
}

/// A signing secret: `whsec_` and the base64 of 32 random bytes.
pub const SECRET_PREFIX: &str = "whsec_";

pub fn new_secret() -> Result<String, RandomUnavailable> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|_| RandomUnavailable)?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// The key a secret signs with: the bytes its base64 stands for.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok().filter(|k| !k.is_empty())
}

/// One Standard Webhooks signature: `v1,` and the base64 of HMAC-SHA256 over
/// `{id}.{timestamp}.{body}`.
pub fn sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // HMAC takes a key of any length: the error case does not happen.
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(key) else {
        return String::new();
    };
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// The `webhook-signature` header: one signature per key, space-separated (two while a
/// rotated secret overlaps the new one).
pub fn signature_header(keys: &[Vec<u8>], id: &str, timestamp: i64, body: &[u8]) -> String {
    keys.iter().map(|k| sign(k, id, timestamp, body)).collect::<Vec<_>>().join(" ")
}

/// Whether any `v1` signature in a `webhook-signature` header is `key`'s (what a receiver
/// checks; the sandbox's receiver and the tests use it).
pub fn verify(key: &[u8], id: &str, timestamp: i64, body: &[u8], header: &str) -> bool {
    let expected = sign(key, id, timestamp, body);
    header.split(' ').any(|candidate| {
        candidate.starts_with("v1,")
            && subtle::ConstantTimeEq::ct_eq(candidate.as_bytes(), expected.as_bytes()).into()
    })
}

/// The delivery of one event to one subscription: its id is the `webhook-id`, the same on
/// every attempt and redelivery, and the same when the event is fanned out again.
pub fn delivery_id(subscription_id: &str, event_id: &str) -> String {
    format!("msg_{}", &sha256_hex(&format!("{subscription_id}|{event_id}"))[..32])
}

/// Who a B2B user is to its platform: carried in the events of its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct B2bIds<'a> {
    pub user_id: &'a str,
    pub platform_user_id: &'a str,
}

/// The body partners receive: `{"type","timestamp","data"}`, `data` carrying `tenantId`,
/// and `userId` and `platformUserId` when the tenant is a B2B user.
pub fn body(event: &PartnerEvent, b2b: Option<B2bIds<'_>>) -> String {
    let mut data = match &event.data {
        Value::Object(map) => map.clone(),
        Value::Null => serde_json::Map::new(),
        other => serde_json::Map::from_iter([("value".to_owned(), other.clone())]),
    };
    data.insert("tenantId".into(), json!(event.tenant_id.as_str()));
    if let Some(ids) = b2b {
        data.insert("userId".into(), json!(ids.user_id));
        data.insert("platformUserId".into(), json!(ids.platform_user_id));
    }
    json!({ "type": event.kind, "timestamp": event.timestamp, "data": data }).to_string()
}

/// The waits between attempts: attempt n+1 follows attempt n after `delays[n-1]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetrySchedule(Vec<Duration>);

/// 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: about 33 hours in all.
pub const DEFAULT_RETRY_DELAYS: &str = "5,300,1800,7200,18000,36000,36000";

impl Default for RetrySchedule {
    fn default() -> Self {
        Self::parse(DEFAULT_RETRY_DELAYS).unwrap_or(Self(Vec::new()))
    }
}

impl RetrySchedule {
    /// `WEBHOOK_RETRY_DELAYS`: seconds, comma-separated, each 1 s to 7 days, at most 20.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut delays = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let secs: u64 =
                part.parse().map_err(|_| format!("{part:?} is not a number of seconds"))?;
            if !(1..=7 * 24 * 3600).contains(&secs) {
                return Err(format!("{secs} s is outside 1 s to 7 days"));
            }
            delays.push(Duration::from_secs(secs));
        }
        if delays.len() > 20 {
            return Err("at most 20 retries".into());
        }
        Ok(Self(delays))
    }

    /// The wait after attempt `attempt` (1-based) failed, or `None` when it was the last.
    pub fn after(&self, attempt: u32) -> Option<Duration> {
        self.0.get(usize::try_from(attempt).ok()?.checked_sub(1)?).copied()
    }

    /// All the waits added up: how long after its first attempt a delivery's last one is due.
    pub fn total(&self) -> Duration {
        self.0.iter().sum()
    }

    /// Attempts in all: the first and one per delay.
    pub fn attempts(&self) -> u32 {
        u32::try_from(self.0.len()).unwrap_or(u32::MAX).saturating_add(1)
    }

    /// The wait after attempt `attempt` failed with a `Retry-After` of `asked` (429, 503):
    /// honoured, but never more than twice the scheduled wait nor less than 1 s.
    pub fn after_with_retry_after(
        &self,
        attempt: u32,
        asked: Option<Duration>,
    ) -> Option<Duration> {
        let scheduled = self.after(attempt)?;
        Some(match asked {
            Some(asked) => asked.clamp(Duration::from_secs(1), scheduled * 2),
            None => scheduled,
        })
    }
}

/// Whether a subscription has failed for long enough to be disabled: nothing delivered
/// since `healthy_since` (its last success, creation or re-enabling), five days ago or
/// more, and at least 20 deliveries failed since.
pub fn sustained_failure(healthy_since: i64, failed_deliveries: i64, now: i64) -> bool {
    now - healthy_since >= DISABLE_AFTER_SECS && failed_deliveries >= DISABLE_AFTER_FAILED
}

/// An IP range, `a.b.c.d/n` or `x::/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = text.trim().split_once('/').unwrap_or((text.trim(), ""));
        let network: IpAddr =
            address.parse().map_err(|_| format!("{text:?} is not an address range"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = if prefix.is_empty() {
            max
        } else {
            prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {max}"))?
        };
        Ok(Self { network, prefix })
    }

    /// `WEBHOOK_ALLOWED_CIDRS`: comma-separated ranges.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(',').map(str::trim).filter(|p| !p.is_empty()).map(Self::parse).collect()
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let (whole, rest) = (usize::from(prefix / 8), prefix % 8);
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    matches!((a.get(whole), b.get(whole)), (Some(x), Some(y)) if x & mask == y & mask)
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is that IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Why a destination address is refused, or `None` for a public address. `allowed`
/// ranges (`WEBHOOK_ALLOWED_CIDRS`) are exempt.
pub fn refused_address(ip: IpAddr, allowed: &[Cidr]) -> Option<&'static str> {
    if allowed.iter().any(|c| c.contains(ip)) {
        return None;
    }
    match canonical(ip) {
        IpAddr::V4(v4) => refused_v4(v4),
        IpAddr::V6(v6) => refused_v6(v6),
    }
}

fn refused_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() || a == 0 => "reserved (this network)",
        _ if ip.is_private() => "private",
        // 169.254.169.254 is the cloud metadata service.
        _ if ip.is_link_local() => "link-local (cloud metadata)",
        (100, 64..=127, _) => "shared address space (CGNAT)",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (192, 0, 0) => "reserved (IETF protocol assignments)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "reserved (documentation)",
        (198, 18..=19, _) => "reserved (benchmarking)",
        (192, 88, 99) => "reserved (6to4 relay)",
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn refused_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    Some(match segments[0] {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "reserved (unspecified)",
        s if s & 0xfe00 == 0xfc00 => "private (unique local, incl. fd00:ec2::254 metadata)",
        s if s & 0xffc0 == 0xfe80 => "link-local",
        s if s & 0xffc0 == 0xfec0 => "reserved (site-local)",
        s if s & 0xff00 == 0xff00 => "multicast",
        // NAT64 and 6to4 embed IPv4 addresses that could be anything.
        0x0064 if segments[1] == 0xff9b => "reserved (NAT64)",
        0x2002 => "reserved (6to4)",
        0x2001 if segments[1] == 0x0db8 => "reserved (documentation)",
        0x2001 if segments[1] < 0x0200 => "reserved (IETF protocol assignments)",
        0x0100 if segments[1..4] == [0, 0, 0] => "reserved (discard)",
        // IPv4-compatible (deprecated) ::a.b.c.d
        0 if segments[1..6] == [0, 0, 0, 0, 0] => "reserved (IPv4-compatible)",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::TenantId;

    /// The example of the Standard Webhooks specification (and of its reference
    /// libraries): transcribed, not computed by this code.
    const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SPEC_TIMESTAMP: i64 = 1_614_265_330;
    const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    #[test]
    fn signs_the_standard_webhooks_example() {
        let key = secret_key(SPEC_SECRET).expect("key");
        assert_eq!(sign(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY), SPEC_SIGNATURE);
        assert!(verify(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, SPEC_SIGNATURE));
        let other = format!("v1,bm90IHRoaXM= {SPEC_SIGNATURE}");
        assert!(verify(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, &other), "any of several");
        assert!(!verify(&key, SPEC_ID, SPEC_TIMESTAMP, br#"{"test": 1}"#, SPEC_SIGNATURE));
        assert!(!verify(&key, SPEC_ID, SPEC_TIMESTAMP + 1, SPEC_BODY, SPEC_SIGNATURE));
        let v2 = SPEC_SIGNATURE.replacen("v1,", "v2,", 1);
        assert!(!verify(&key, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY, &v2), "another version");
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (old, new) = (new_secret().expect("old"), new_secret().expect("new"));
        assert!(old.starts_with("whsec_") && old != new);
        let keys = [secret_key(&new).expect("new"), secret_key(&old).expect("old")];
        assert_eq!(keys[0].len(), 32);
        let header = signature_header(&keys, "msg_1", 1_700_000_000, b"{}");
        assert_eq!(header.split(' ').count(), 2);
        for key in &keys {
            assert!(verify(key, "msg_1", 1_700_000_000, b"{}", &header));
        }
        assert_eq!(secret_key("sk_notours"), None);
        assert_eq!(secret_key("whsec_"), None);
    }

    #[test]
    fn events_are_known_names_or_everything() {
        let filter =
            EventFilter::parse(&json!(["message.received", "message.received"])).expect("valid");
        assert_eq!(filter.names(), ["message.received"]);
        assert!(filter.matches("message.received") && !filter.matches("message.status"));
        let all = EventFilter::parse(&json!(["*"])).expect("all");
        assert!(all.matches("template.status") && !all.matches(TEST_EVENT));
        for bad in [json!([]), json!(["message.sent"]), json!("message.status"), json!([1])] {
            assert!(EventFilter::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_body_carries_the_tenant_in_its_data() {
        let tenant = TenantId::generate();
        let event = PartnerEvent {
            id: "evt_1".into(),
            kind: "message.status".into(),
            tenant_id: tenant.clone(),
            timestamp: "2026-11-30T08:00:00Z".into(),
            data: json!({"messageId": "msg_1", "status": "read"}),
            subscription_id: None,
        };
        let body: Value = serde_json::from_str(&body(&event, None)).expect("json");
        assert!(body["data"].get("userId").is_none());
        let ids = B2bIds { user_id: "u1", platform_user_id: "p1" };
        let b2b: Value = serde_json::from_str(&super::body(&event, Some(ids))).expect("json");
        assert_eq!(
            (&b2b["data"]["userId"], &b2b["data"]["platformUserId"]),
            (&json!("u1"), &json!("p1"))
        );
        assert_eq!(b2b["data"]["tenantId"], tenant.as_str());
        assert_eq!(body["type"], "message.status");
        assert_eq!(body["timestamp"], "2026-11-30T08:00:00Z");
        assert_eq!(body["data"]["tenantId"], tenant.as_str());
        assert_eq!(body["data"]["status"], "read");
        assert_eq!(delivery_id("whk_1", "evt_1"), delivery_id("whk_1", "evt_1"));
        assert_ne!(delivery_id("whk_1", "evt_1"), delivery_id("whk_2", "evt_1"));
    }

    #[test]
    fn the_default_schedule_is_seven_retries_over_about_33_hours() {
        let schedule = RetrySchedule::default();
        assert_eq!(schedule.attempts(), 8);
        assert_eq!(schedule.after(1), Some(Duration::from_secs(5)));
        assert_eq!(schedule.after(7), Some(Duration::from_secs(36_000)));
        assert_eq!(schedule.after(8), None);
        assert_eq!(schedule.after(0), None);
        let total: u64 = (1..8).filter_map(|n| schedule.after(n)).map(|d| d.as_secs()).sum();
        assert_eq!(total, 99_305, "27 h 35 min of waiting, and up to 8 × 15 s of attempts");
        assert_eq!(schedule.total().as_secs(), total);
        // Retry-After: honoured up to twice the scheduled wait.
        let asked = |secs| schedule.after_with_retry_after(2, Some(Duration::from_secs(secs)));
        assert_eq!(asked(60), Some(Duration::from_secs(60)));
        assert_eq!(asked(100_000), Some(Duration::from_secs(600)));
        assert_eq!(asked(0), Some(Duration::from_secs(1)));
        assert_eq!(RetrySchedule::parse("1, 2 ,3").expect("ok").attempts(), 4);
        for bad in ["x", "0", "700000", "-1"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sustained_failure_needs_both_five_days_and_twenty_failures() {
        let day = 24 * 3600;
        assert!(sustained_failure(0, 20, 5 * day));
        assert!(!sustained_failure(0, 19, 10 * day));
        assert!(!sustained_failure(0, 500, 5 * day - 1));
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("literal address")
    }

    /// Literal addresses only: nothing here connects anywhere.
    #[test]
    fn private_reserved_and_metadata_addresses_are_refused() {
        for refused in [
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "::1",
            "::",
            "fd00:ec2::254",
            "fc00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2001:db8::1",
            "2002:a9fe:a9fe::1",
            "::127.0.0.1",
        ] {
            assert!(refused_address(ip(refused), &[]).is_some(), "{refused} must be refused");
        }
        for public in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(refused_address(ip(public), &[]), None, "{public} is public");
        }
    }

    #[test]
    fn allowed_ranges_exempt_exactly_themselves() {
        let allowed = Cidr::parse_list("127.0.0.1/32, 10.0.0.0/8").expect("ranges");
        assert_eq!(refused_address(ip("127.0.0.1"), &allowed), None);
        assert_eq!(refused_address(ip("::ffff:127.0.0.1"), &allowed), None);
        assert!(refused_address(ip("127.0.0.2"), &allowed).is_some());
        assert_eq!(refused_address(ip("10.200.1.1"), &allowed), None);
        let loopback = Cidr::parse("127.0.0.0/8").expect("range");
        assert!(loopback.contains(ip("127.255.0.1")) && !loopback.contains(ip("128.0.0.1")));
        let odd = Cidr::parse("172.16.0.0/12").expect("range");
        assert!(odd.contains(ip("172.31.0.1")) && !odd.contains(ip("172.32.0.1")));
        for bad in ["127.0.0.1/33", "nonsense", "::/129"] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }
}
