//! The Cloud API's side of the sandbox: what `POST /{version}/{phone-number-id}/messages`
//! and the template endpoints accept and answer, in Meta's shapes.

use axum::http::StatusCode;
use serde_json::{Value, json};

/// A Graph API error body as Meta sends it, with the HTTP status Meta's error table gives
/// the code.
pub fn error(code: i64, details: Option<&str>) -> (StatusCode, Value) {
    let (status, title, default_details) = match code {
        190 => (
            401,
            "Error validating access token: Session has expired.",
            "Your access token has expired.",
        ),
        130429 => (400, "Rate limit hit", "Cloud API message throughput has been reached."),
        131056 => (
            400,
            "(Business Account, Consumer Account) pair rate limit hit",
            "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
        ),
        131057 => (500, "Account in maintenance mode", "Business Account is in maintenance mode"),
        131000 => (500, "Something went wrong", "Message failed to send due to an unknown error."),
        131016 => (500, "Service unavailable", "A service is temporarily unavailable."),
        131026 => (400, "Message undeliverable", "Unable to deliver message."),
        131047 => (
            400,
            "Re-engagement message",
            "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
        ),
        131049 => (
            400,
            "This message was not delivered to maintain healthy ecosystem engagement.",
            "In order to maintain a healthy ecosystem engagement, the message failed to be delivered.",
        ),
        132000 => (
            400,
            "Number of parameters does not match the expected number of params",
            "body: number of localizable_params (0) does not match the expected number of params (1)",
        ),
        132001 => (
            404,
            "Template name does not exist in the translation",
            "template name does not exist in en_US",
        ),
        131009 => (400, "Parameter value is not valid", "Parameter value is not valid"),
        100 => (400, "Invalid parameter", "Invalid parameter"),
        _ => (400, "Generic user error", "An error occurred."),
    };
    let body = json!({
        "error": {
            "message": format!("(#{code}) {title}"),
            "type": "OAuthException",
            "code": code,
            "error_data": {"messaging_product": "whatsapp", "details": details.unwrap_or(default_details)},
            "fbtrace_id": format!("Sandbox{}", &uuid::Uuid::new_v4().simple().to_string()[..12]),
        }
    });
    (StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST), body)
}

fn invalid(details: impl Into<String>) -> (StatusCode, Value) {
    let details = details.into();
    error(100, Some(&details))
}

const TYPES: [&str; 11] = [
    "text",
    "image",
    "document",
    "audio",
    "video",
    "sticker",
    "template",
    "interactive",
    "reaction",
    "location",
    "contacts",
];

/// Checks a send request as the Cloud API does; returns the recipient's digits.
pub fn validate_send(body: &Value) -> Result<String, (StatusCode, Value)> {
    if body.get("messaging_product").and_then(Value::as_str) != Some("whatsapp") {
        return Err(invalid(
            "The parameter messaging_product is required and must be \"whatsapp\".",
        ));
    }
    let to = body.get("to").and_then(Value::as_str).unwrap_or_default();
    let digits = to.trim_start_matches('+');
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("Param to must be a phone number."));
    }
    let kind = body.get("type").and_then(Value::as_str).unwrap_or("text");
    if !TYPES.contains(&kind) {
        return Err(invalid(format!("Param type must be one of {{{}}}.", TYPES.join(", "))));
    }
    let Some(object) = body.get(kind).filter(|o| o.is_object()) else {
        return Err(invalid(format!("Param {kind} is required.")));
    };
    fn text(v: Option<&Value>) -> Option<&str> {
        v.and_then(Value::as_str).filter(|s| !s.is_empty())
    }
    let number = |k: &str| object.get(k).and_then(Value::as_f64);
    let problem = match kind {
        "text" => match text(object.get("body")) {
            Some(b) if b.chars().count() <= 4096 => None,
            Some(_) => Some("Param text['body'] must be at most 4096 characters long.".to_owned()),
            None => Some("Param text['body'] is required.".to_owned()),
        },
        "image" | "document" | "audio" | "video" | "sticker" => (object.get("id").is_some()
            == object.get("link").is_some())
        .then(|| format!("Param {kind} must have exactly one of id or link.")),
        "template" if text(object.get("name")).is_none() => {
            Some("Param template['name'] is required.".to_owned())
        }
        "template" if text(object.pointer("/language/code")).is_none() => {
            Some("Param template['language']['code'] is required.".to_owned())
        }
        "reaction" if text(object.get("message_id")).is_none() => {
            Some("Param reaction['message_id'] is required.".to_owned())
        }
        "interactive" if text(object.get("type")).is_none() || object.get("action").is_none() => {
            Some("Param interactive['type'] and interactive['action'] are required.".to_owned())
        }
        "location" if number("latitude").is_none() || number("longitude").is_none() => {
            Some("Param location['latitude'] and location['longitude'] are required.".to_owned())
        }
        _ => None,
    };
    if let Some(problem) = problem {
        return Err(invalid(problem));
    }
    Ok(digits.to_owned())
}

/// The answer to an accepted send.
pub fn sent(to: &str, digits: &str, wamid: &str, template: bool) -> Value {
    let mut message = json!({ "id": wamid });
    if template {
        message["message_status"] = json!("accepted");
    }
    json!({
        "messaging_product": "whatsapp",
        "contacts": [{ "input": to, "wa_id": digits }],
        "messages": [message],
    })
}

/// A `messages` webhook of one phone number: `value` holds what happened (`messages` and
/// `contacts`, or `statuses`), beside the product and the number's metadata.
fn messages_webhook(phone_number_id: &str, mut value: Value) -> Value {
    value["messaging_product"] = json!("whatsapp");
    value["metadata"] =
        json!({ "display_phone_number": "15550000000", "phone_number_id": phone_number_id });
    json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": phone_number_id, "changes": [{ "field": "messages", "value": value }] }]
    })
}

/// The webhook Meta sends when a customer writes a text message.
pub fn text_message_payload(
    phone_number_id: &str,
    from_digits: &str,
    name: &str,
    wamid: &str,
    text: &str,
    timestamp: u64,
) -> Value {
    messages_webhook(
        phone_number_id,
        json!({
            "contacts": [{"profile": {"name": name}, "wa_id": from_digits}],
            "messages": [{"from": from_digits, "id": wamid, "timestamp": timestamp.to_string(), "type": "text", "text": {"body": text}}]
        }),
    )
}

/// A status webhook (`sent`, `delivered`, `read`) for a message the sandbox accepted.
pub fn status_payload(
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    recipient: &str,
    timestamp: u64,
) -> Value {
    let mut entry = json!({ "id": wamid, "status": status, "timestamp": timestamp.to_string(), "recipient_id": recipient });
    if status != "read" {
        entry["pricing"] = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "service"});
    }
    messages_webhook(phone_number_id, json!({ "statuses": [entry] }))
}

/// A template's review outcome, as Meta announces it.
pub fn template_status_payload(
    waba_id: &str,
    id: u64,
    name: &str,
    language: &str,
    category: &str,
    event: &str,
) -> Value {
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": waba_id,
            "time": 0,
            "changes": [{
                "field": "message_template_status_update",
                "value": {
                    "event": event,
                    "message_template_id": id,
                    "message_template_name": name,
                    "message_template_language": language,
                    "reason": "NONE",
                    "message_template_category": category
                }
            }]
        }]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_meta_shape_and_status() {
        let (status, body) = error(131056, None);
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"]["code"], 131056);
        assert!(body["error"]["message"].as_str().is_some_and(|m| m.starts_with("(#131056) ")));
        assert!(body["error"]["error_data"]["details"].as_str().is_some_and(|d| !d.is_empty()));
        assert_eq!(error(190, None).0, StatusCode::UNAUTHORIZED);
        assert_eq!(error(132001, None).0, StatusCode::NOT_FOUND);
    }

    #[test]
    fn sends_are_checked_like_meta() {
        let ok = json!({"messaging_product": "whatsapp", "to": "+15551234567", "type": "text", "text": {"body": "hi"}});
        assert_eq!(validate_send(&ok).ok().as_deref(), Some("15551234567"));
        for bad in [
            json!({"to": "+15551234567", "type": "text", "text": {"body": "hi"}}),
            json!({"messaging_product": "whatsapp", "to": "x", "type": "text", "text": {"body": "hi"}}),
            json!({"messaging_product": "whatsapp", "to": "+15551234567", "type": "text", "text": {}}),
            json!({"messaging_product": "whatsapp", "to": "+15551234567", "type": "image", "image": {"id": "1", "link": "https://x"}}),
            json!({"messaging_product": "whatsapp", "to": "+15551234567", "type": "fax", "fax": {}}),
        ] {
            let (status, body) = validate_send(&bad).expect_err("refused");
            assert_eq!(
                (status, body["error"]["code"].as_i64()),
                (StatusCode::BAD_REQUEST, Some(100)),
                "{bad}"
            );
        }
    }
}
