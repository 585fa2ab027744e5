//! Meta's WhatsApp Cloud API webhooks: their signature, and what a payload means.
//!
//! A payload batches `entry[]`, each with `changes[]`; a change of field `messages`
//! carries `messages[]`, `statuses[]` and `errors[]`. Each element becomes one
//! [`WebhookItem`] with its raw JSON kept, so that nothing Meta sends is lost, including
//! fields and types this code does not know yet.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// Checks `X-Hub-Signature-256: sha256=<hex>` against the raw body, in constant time.
pub fn signature_valid(app_secret: &[u8], raw_body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_sig) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else { return false };
    let Ok(expected) = hex::decode(hex_sig) else { return false };
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret) else { return false };
    mac.update(raw_body);
    mac.verify_slice(&expected).is_ok()
}

/// The header value Meta would send for `raw_body` (for the sandbox and tests).
pub fn signature_header(app_secret: &[u8], raw_body: &[u8]) -> String {
    let Ok(mut mac) = <Hmac<Sha256> as KeyInit>::new_from_slice(app_secret) else {
        return String::new();
    };
    mac.update(raw_body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// An outbound message's delivery state. Statuses may arrive in any order; the state only
/// moves forward (sent → delivered → read), and failed is final.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Queued,
    Sent,
    Delivered,
    Read,
    Failed,
}

impl DeliveryStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "delivered" => Some(Self::Delivered),
            "read" => Some(Self::Read),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Read => "read",
            Self::Failed => "failed",
        }
    }

    /// Ordering used for "only forward": failed outranks everything, so nothing leaves it.
    pub fn rank(self) -> u8 {
        match self {
            Self::Queued => 0,
            Self::Sent => 1,
            Self::Delivered => 2,
            Self::Read => 3,
            Self::Failed => 4,
        }
    }

    /// The state after `self` when `incoming` arrives.
    pub fn advance(self, incoming: Self) -> Self {
        if incoming.rank() > self.rank() { incoming } else { self }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InboundMessage {
    pub phone_number_id: Option<String>,
    pub wamid: String,
    /// The customer's WhatsApp id (their number, without `+`).
    pub from: String,
    pub profile_name: Option<String>,
    /// Meta's `type` (text, image, …, unsupported), kept as sent.
    pub kind: String,
    pub timestamp: i64,
    /// A short text for lists: the text body, a caption, a button title.
    pub preview: Option<String>,
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StatusUpdate {
    pub phone_number_id: Option<String>,
    pub wamid: String,
    pub status: DeliveryStatus,
    pub recipient: Option<String>,
    pub timestamp: i64,
    /// `{code, title}` of the first error, for failed statuses.
    pub error: Option<(i64, String)>,
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TemplateStatus {
    pub name: String,
    pub language: Option<String>,
    pub event: String,
    pub reason: Option<String>,
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WebhookItem {
    Message(InboundMessage),
    Status(StatusUpdate),
    Template(TemplateStatus),
    /// Quality and account updates, value-level errors, unknown fields or statuses: kept
    /// as they came, with their change field.
    Other {
        field: String,
        raw: Value,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PayloadError {
    #[error("not a WhatsApp Business Account webhook: {0}")]
    Shape(&'static str),
}

fn text(v: &Value, pointer: &str) -> Option<String> {
    v.pointer(pointer).and_then(Value::as_str).map(str::to_owned)
}

fn timestamp(v: &Value) -> i64 {
    match v.get("timestamp") {
        Some(Value::String(s)) => s.parse().unwrap_or_default(),
        Some(Value::Number(n)) => n.as_i64().unwrap_or_default(),
        _ => 0,
    }
}

fn preview(message: &Value, kind: &str) -> Option<String> {
    let candidates = [
        "/text/body",
        &format!("/{kind}/caption"),
        "/button/text",
        "/interactive/button_reply/title",
        "/interactive/list_reply/title",
        "/reaction/emoji",
        "/location/name",
        "/system/body",
        "/order/text",
    ];
    candidates.iter().find_map(|p| text(message, p)).map(|t| t.chars().take(200).collect())
}

/// Every item of a payload, in order. Fails only when the payload is not a webhook of
/// this kind at all.
pub fn parse(payload: &Value) -> Result<Vec<WebhookItem>, PayloadError> {
    let entries =
        payload.get("entry").and_then(Value::as_array).ok_or(PayloadError::Shape("no entry[]"))?;
    let mut items = Vec::new();
    for entry in entries {
        for change in entry.get("changes").and_then(Value::as_array).into_iter().flatten() {
            let field = change.get("field").and_then(Value::as_str).unwrap_or_default();
            let value = change.get("value").cloned().unwrap_or(Value::Null);
            match field {
                "messages" => parse_messages_change(&value, &mut items),
                "message_template_status_update" => match text(&value, "/message_template_name") {
                    Some(name) => items.push(WebhookItem::Template(TemplateStatus {
                        name,
                        language: text(&value, "/message_template_language"),
                        event: text(&value, "/event").unwrap_or_default(),
                        reason: text(&value, "/reason"),
                        raw: value,
                    })),
                    None => items.push(WebhookItem::Other { field: field.into(), raw: value }),
                },
                _ => items.push(WebhookItem::Other { field: field.into(), raw: value }),
            }
        }
    }
    Ok(items)
}

fn parse_messages_change(value: &Value, items: &mut Vec<WebhookItem>) {
    let phone_number_id = text(value, "/metadata/phone_number_id");
    let contacts = value.get("contacts").and_then(Value::as_array);
    let name_of = |wa_id: &str| {
        contacts?
            .iter()
            .find(|c| c.get("wa_id").and_then(Value::as_str) == Some(wa_id))
            .and_then(|c| text(c, "/profile/name"))
    };
    for message in value.get("messages").and_then(Value::as_array).into_iter().flatten() {
        let (Some(wamid), Some(from)) = (text(message, "/id"), text(message, "/from")) else {
            items.push(WebhookItem::Other { field: "messages".into(), raw: message.clone() });
            continue;
        };
        let kind = text(message, "/type").unwrap_or_else(|| "unknown".into());
        items.push(WebhookItem::Message(InboundMessage {
            phone_number_id: phone_number_id.clone(),
            profile_name: name_of(&from),
            preview: preview(message, &kind),
            timestamp: timestamp(message),
            wamid,
            from,
            kind,
            raw: message.clone(),
        }));
    }
    for status in value.get("statuses").and_then(Value::as_array).into_iter().flatten() {
        let parsed = text(status, "/status").as_deref().and_then(DeliveryStatus::parse);
        match (text(status, "/id"), parsed) {
            (Some(wamid), Some(delivery)) => items.push(WebhookItem::Status(StatusUpdate {
                phone_number_id: phone_number_id.clone(),
                wamid,
                status: delivery,
                recipient: text(status, "/recipient_id"),
                timestamp: timestamp(status),
                error: status.pointer("/errors/0").map(|e| {
                    (
                        e.get("code").and_then(Value::as_i64).unwrap_or_default(),
                        text(e, "/title").unwrap_or_default(),
                    )
                }),
                raw: status.clone(),
            })),
            _ => items.push(WebhookItem::Other { field: "statuses".into(), raw: status.clone() }),
        }
    }
    if let Some(errors) = value.get("errors") {
        items.push(WebhookItem::Other { field: "errors".into(), raw: errors.clone() });
    }
}

/// What a sender does with a Cloud API error code (whether it came back from the send, or
/// later in a failed status), as Meta's error reference says: branch on the code, never
/// on the HTTP status or the title.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Throughput or pair rate limits, maintenance: retry the same request later.
    Throttled,
    /// Meta failed on its side: retry a bounded number of times with backoff.
    Transient,
    /// The access token is expired or invalid: the channel needs a new token.
    Token,
    /// The request or the recipient is the problem: fail the message with the reason.
    Permanent,
}

pub fn classify_error(code: i64) -> ErrorClass {
    match code {
        130429 | 131056 | 131057 | 4 | 80007 => ErrorClass::Throttled,
        131000 | 131016 | 1 | 2 => ErrorClass::Transient,
        190 => ErrorClass::Token,
        _ => ErrorClass::Permanent,
    }
}

/// The `{code, title}` of a Graph API error body (`{"error": {"code", "message", …}}`).
pub fn graph_error(body: &Value) -> Option<(i64, String)> {
    let error = body.get("error")?;
    let code = error.get("code")?.as_i64()?;
    let title = error
        .get("error_data")
        .and_then(|d| d.get("details"))
        .or_else(|| error.get("message"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    Some((code, title))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    proptest! {
        #[test]
        fn any_document_is_parsed_or_refused_without_panicking(doc in crate::arbitrary::json()) {
            let _ = parse(&doc);
        }

        #[test]
        fn a_text_message_parses_to_exactly_what_was_sent(
            wamid in "wamid\\.[A-Za-z0-9=_-]{1,60}",
            from in "[1-9][0-9]{7,14}",
            body in "\\PC{0,300}",
            timestamp in 0i64..4_000_000_000,
        ) {
            let payload = json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{
                "field": "messages", "value": {"messaging_product": "whatsapp",
                    "metadata": {"display_phone_number": "15550000000", "phone_number_id": "106"},
                    "messages": [{"from": from, "id": wamid, "timestamp": timestamp.to_string(),
                                  "type": "text", "text": {"body": body}}]}}]}]});
            let items = parse(&payload).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(items.len(), 1);
            let WebhookItem::Message(message) = &items[0] else {
                return Err(TestCaseError::fail("not a message"));
            };
            prop_assert_eq!(&message.wamid, &wamid);
            prop_assert_eq!(&message.from, &from);
            prop_assert_eq!(message.timestamp, timestamp);
            prop_assert_eq!(message.kind.as_str(), "text");
            prop_assert_eq!(&message.raw["text"]["body"], &json!(body));
        }
    }

    #[test]
    fn statuses_only_move_forward_whatever_the_order() {
        use DeliveryStatus::*;
        let orders = [
            [Sent, Delivered, Read],
            [Read, Delivered, Sent],
            [Delivered, Read, Sent],
            [Read, Sent, Delivered],
        ];
        for order in orders {
            let end = order.iter().fold(Queued, |s, next| s.advance(*next));
            assert_eq!(end, Read, "{order:?}");
        }
        assert_eq!(Failed.advance(Read), Failed, "failed is final");
        assert_eq!(Delivered.advance(Failed), Failed);
    }

    #[test]
    fn signatures_are_checked_over_raw_bytes() {
        let body = br#"{"a":"\u00e4"}"#;
        let header = signature_header(b"secret", body);
        assert!(signature_valid(b"secret", body, Some(&header)));
        assert!(!signature_valid(b"other", body, Some(&header)));
        assert!(
            !signature_valid(b"secret", "{\"a\":\"ä\"}".as_bytes(), Some(&header)),
            "re-serialised body"
        );
        assert!(!signature_valid(b"secret", body, None));
        assert!(!signature_valid(b"secret", body, Some("sha256=zz")));
        assert!(!signature_valid(b"secret", body, Some(&header.replace("sha256=", "sha1="))));
    }

    #[test]
    fn batches_yield_every_message_status_and_unknown_field() {
        let payload = json!({"object": "whatsapp_business_account", "entry": [
            {"id": "1", "changes": [
                {"field": "messages", "value": {"metadata": {"phone_number_id": "P"},
                    "contacts": [{"wa_id": "491", "profile": {"name": "Kim"}}],
                    "messages": [{"id": "wamid.1", "from": "491", "timestamp": "10", "type": "text", "text": {"body": "hi"}}],
                    "statuses": [{"id": "wamid.2", "status": "read", "timestamp": "11"}, {"id": "wamid.3", "status": "deleted"}]}},
                {"field": "brand_new_field", "value": {"x": 1}}]},
            {"id": "2", "changes": [{"field": "messages", "value": {"messages": [{"id": "wamid.4", "from": "492", "type": "sticker", "sticker": {}}]}}]}
        ]});
        let items = parse(&payload).expect("valid");
        assert_eq!(items.len(), 5);
        let WebhookItem::Message(m) = &items[0] else { panic!("message first") };
        assert_eq!(
            (m.wamid.as_str(), m.profile_name.as_deref(), m.preview.as_deref(), m.timestamp),
            ("wamid.1", Some("Kim"), Some("hi"), 10)
        );
        assert!(matches!(&items[1], WebhookItem::Status(s) if s.status == DeliveryStatus::Read));
        assert!(
            matches!(&items[2], WebhookItem::Other { field, .. } if field == "statuses"),
            "unknown status kept"
        );
        assert!(
            matches!(&items[3], WebhookItem::Other { field, .. } if field == "brand_new_field")
        );
        assert!(matches!(&items[4], WebhookItem::Message(m) if m.kind == "sticker"));
        assert!(parse(&json!({"object": "page"})).is_err());
    }
}
