//! An outbound message, from the request partners send (`POST /api/messages`, camelCase)
//! to the body the Cloud API takes (`POST /{version}/{phone-number-id}/messages`).
//!
//! Every type is checked at the edge into typed values, with Meta's own limits, so that a
//! message Meta would refuse for its shape is refused here with a 422 naming the field.
//! Template components and interactive objects are Meta's documented JSON: checked for
//! structure and limits, then passed through unchanged.

// NOTE: over 400 lines: every outbound message type's checks and its Cloud API body, with
// their tests: one parser, read together.

use super::Violation;
use serde_json::{Map, Value, json};

/// An E.164 number: `+` then 8 to 15 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Option<Self> {
        let digits = raw.strip_prefix('+')?;
        ((8..=15).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && !digits.starts_with('0'))
        .then(|| Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Meta's `wa_id`: the digits without `+`.
    pub fn wa_id(&self) -> &str {
        &self.0[1..]
    }

    /// For logs: country code and last two digits only.
    pub fn redacted(&self) -> String {
        format!("+{}…{}", &self.0[1..3], &self.0[self.0.len() - 2..])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    Image,
    Document,
    Audio,
    Video,
    Sticker,
}

impl MediaKind {
    fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "image" => Self::Image,
            "document" => Self::Document,
            "audio" => Self::Audio,
            "video" => Self::Video,
            "sticker" => Self::Sticker,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Document => "document",
            Self::Audio => "audio",
            Self::Video => "video",
            Self::Sticker => "sticker",
        }
    }

    /// Audio and stickers take no caption (Meta refuses one).
    fn captioned(self) -> bool {
        matches!(self, Self::Image | Self::Document | Self::Video)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum MediaSource {
    Link(String),
    Id(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text {
        body: String,
        preview_url: bool,
    },
    Media {
        kind: MediaKind,
        source: MediaSource,
        caption: Option<String>,
        filename: Option<String>,
    },
    Template {
        name: String,
        language: String,
        components: Vec<Value>,
    },
    Interactive(Value),
    Reaction {
        message_id: String,
        emoji: String,
    },
    Location {
        latitude: f64,
        longitude: f64,
        name: Option<String>,
        address: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboundMessage {
    pub to: PhoneNumber,
    pub client_message_id: String,
    pub content: Content,
    /// The wamid of the message this one replies to.
    pub reply_to: Option<String>,
}

pub const TEXT_MAX: usize = 4096;
pub const CAPTION_MAX: usize = 1024;

struct Check<'a> {
    errors: &'a mut Vec<Violation>,
}

impl Check<'_> {
    fn fail(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(Violation::new(field, message));
    }

    fn string(&mut self, v: &Value, field: &str, max: usize) -> Option<String> {
        match v.get(field.rsplit('.').next().unwrap_or(field)) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= max => {
                Some(s.clone())
            }
            Some(Value::String(s)) if !s.trim().is_empty() => {
                self.fail(field, format!("must be at most {max} characters"));
                None
            }
            _ => {
                self.fail(field, "is required (a non-empty string)");
                None
            }
        }
    }

    fn optional(&mut self, v: &Value, key: &str, field: &str, max: usize) -> Option<String> {
        match v.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.chars().count() <= max => Some(s.clone()),
            Some(Value::String(_)) => {
                self.fail(field, format!("must be at most {max} characters"));
                None
            }
            Some(_) => {
                self.fail(field, "must be a string");
                None
            }
        }
    }
}

fn https_url(s: &str) -> bool {
    s.starts_with("https://") && s.len() <= 2048 && !s.contains(char::is_whitespace)
}

impl OutboundMessage {
    /// The request body of `POST /api/messages`, checked. All problems are reported at once.
    pub fn parse(body: &Value) -> Result<Self, Vec<Violation>> {
        let mut errors = Vec::new();
        let mut c = Check { errors: &mut errors };
        let to = match body.get("to").and_then(Value::as_str).and_then(PhoneNumber::parse) {
            Some(to) => Some(to),
            None => {
                c.fail("to", "must be an E.164 number like +15551234567");
                None
            }
        };
        let client_message_id = match body.get("clientMessageId").and_then(Value::as_str) {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Some(id.to_owned())
            }
            _ => {
                c.fail(
                    "clientMessageId",
                    "is required: 1 to 128 visible ASCII characters, unique per message",
                );
                None
            }
        };
        let reply_to = match body.get("context") {
            None | Some(Value::Null) => None,
            Some(ctx) => c.string(ctx, "context.messageId", 256),
        };
        let kind = body.get("type").and_then(Value::as_str).unwrap_or_default();
        let object = body.get(kind).cloned().unwrap_or(Value::Null);
        const KINDS: [&str; 10] = [
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
        ];
        if KINDS.contains(&kind) && !object.is_object() {
            c.fail(kind, format!("a {kind} message needs a \"{kind}\" object"));
        }
        // Another type's object would be silently dropped: said instead.
        for other in KINDS.iter().filter(|k| **k != kind && !body[**k].is_null()) {
            c.fail(*other, format!("is not part of a {kind} message"));
        }
        let content = match kind {
            "text" => c.string(&object, "text.body", TEXT_MAX).map(|b| Content::Text {
                body: b,
                preview_url: object.get("previewUrl").and_then(Value::as_bool).unwrap_or(false),
            }),
            "image" | "document" | "audio" | "video" | "sticker" => {
                parse_media(&mut c, kind, &object)
            }
            "template" => parse_template(&mut c, &object),
            "interactive" => parse_interactive(&mut c, &object),
            "reaction" => {
                let message_id = c.string(&object, "reaction.messageId", 256);
                // An empty emoji removes a reaction, as in the Cloud API.
                let emoji = object.get("emoji").and_then(Value::as_str).map(str::to_owned);
                if emoji.as_ref().is_none_or(|e| e.chars().count() > 8) {
                    c.fail(
                        "reaction.emoji",
                        "must be one emoji (or empty, to remove the reaction)",
                    );
                }
                message_id
                    .zip(emoji)
                    .map(|(message_id, emoji)| Content::Reaction { message_id, emoji })
            }
            "location" => {
                let coordinate = |c: &mut Check, key: &str, range: f64| match object
                    .get(key)
                    .and_then(Value::as_f64)
                {
                    Some(v) if v.abs() <= range => Some(v),
                    _ => {
                        c.fail(
                            format!("location.{key}"),
                            format!("must be a number from -{range} to {range}"),
                        );
                        None
                    }
                };
                let latitude = coordinate(&mut c, "latitude", 90.0);
                let longitude = coordinate(&mut c, "longitude", 180.0);
                let name = c.optional(&object, "name", "location.name", 1000);
                let address = c.optional(&object, "address", "location.address", 1000);
                latitude.zip(longitude).map(|(latitude, longitude)| Content::Location {
                    latitude,
                    longitude,
                    name,
                    address,
                })
            }
            _ => {
                c.fail("type", "must be text, image, document, audio, video, sticker, template, interactive, reaction or location");
                None
            }
        };
        match (to, client_message_id, content) {
            (Some(to), Some(client_message_id), Some(content)) if errors.is_empty() => {
                Ok(Self { to, client_message_id, content, reply_to })
            }
            _ => Err(errors),
        }
    }

    /// Templates may be sent outside the 24-hour customer service window; nothing else may.
    pub fn is_template(&self) -> bool {
        matches!(self.content, Content::Template { .. })
    }

    pub fn kind(&self) -> &'static str {
        match &self.content {
            Content::Text { .. } => "text",
            Content::Media { kind, .. } => kind.as_str(),
            Content::Template { .. } => "template",
            Content::Interactive(_) => "interactive",
            Content::Reaction { .. } => "reaction",
            Content::Location { .. } => "location",
        }
    }

    /// The Cloud API request body (`POST /{version}/{phone-number-id}/messages`).
    pub fn graph_request(&self) -> Value {
        let mut out = Map::new();
        out.insert("messaging_product".into(), json!("whatsapp"));
        out.insert("recipient_type".into(), json!("individual"));
        out.insert("to".into(), json!(self.to.as_str()));
        out.insert("type".into(), json!(self.kind()));
        if let Some(reply) = &self.reply_to {
            out.insert("context".into(), json!({ "message_id": reply }));
        }
        let object = match &self.content {
            Content::Text { body, preview_url } => {
                json!({ "preview_url": preview_url, "body": body })
            }
            Content::Media { source, caption, filename, .. } => {
                let mut m = Map::new();
                match source {
                    MediaSource::Link(link) => m.insert("link".into(), json!(link)),
                    MediaSource::Id(id) => m.insert("id".into(), json!(id)),
                };
                if let Some(caption) = caption {
                    m.insert("caption".into(), json!(caption));
                }
                if let Some(filename) = filename {
                    m.insert("filename".into(), json!(filename));
                }
                Value::Object(m)
            }
            Content::Template { name, language, components } => {
                let mut t = json!({ "name": name, "language": { "code": language } });
                if !components.is_empty() {
                    t["components"] = json!(components);
                }
                t
            }
            Content::Interactive(interactive) => interactive.clone(),
            Content::Reaction { message_id, emoji } => {
                json!({ "message_id": message_id, "emoji": emoji })
            }
            Content::Location { latitude, longitude, name, address } => {
                let mut l = json!({ "latitude": latitude, "longitude": longitude });
                if let Some(name) = name {
                    l["name"] = json!(name);
                }
                if let Some(address) = address {
                    l["address"] = json!(address);
                }
                l
            }
        };
        out.insert(self.kind().into(), object);
        Value::Object(out)
    }
}

fn parse_media(c: &mut Check, kind: &str, object: &Value) -> Option<Content> {
    let media = MediaKind::parse(kind)?;
    let source = match (
        object.get("link").and_then(Value::as_str),
        object.get("id").and_then(Value::as_str),
    ) {
        (Some(link), None) if https_url(link) => Some(MediaSource::Link(link.to_owned())),
        (None, Some(id)) if !id.is_empty() && id.len() <= 128 => {
            Some(MediaSource::Id(id.to_owned()))
        }
        _ => {
            c.fail(format!("{kind}.link"), "give either an https link or a media id");
            None
        }
    };
    let caption = c.optional(object, "caption", &format!("{kind}.caption"), CAPTION_MAX);
    if caption.is_some() && !media.captioned() {
        c.fail(format!("{kind}.caption"), format!("{kind} messages take no caption"));
    }
    let filename = c.optional(object, "filename", &format!("{kind}.filename"), 240);
    if filename.is_some() && media != MediaKind::Document {
        c.fail(format!("{kind}.filename"), "only documents have a filename");
    }
    source.map(|source| Content::Media { kind: media, source, caption, filename })
}

fn parse_template(c: &mut Check, object: &Value) -> Option<Content> {
    let name = c.string(object, "template.name", 512);
    if let Some(n) = &name
        && !n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        c.fail("template.name", "is lower case letters, digits and underscores");
    }
    let language = match object.get("language") {
        Some(Value::String(code)) => Some(code.clone()),
        Some(Value::Object(o)) => o.get("code").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
    .filter(|code| {
        (2..=10).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_')
    });
    if language.is_none() {
        c.fail("template.language", "is a language code like en_US (or {\"code\": \"en_US\"})");
    }
    let components = match object.get("components") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(list)) => {
            for (i, component) in list.iter().enumerate() {
                let kind = component.get("type").and_then(Value::as_str).unwrap_or_default();
                if !matches!(
                    kind,
                    "header" | "body" | "button" | "footer" | "carousel" | "limited_time_offer"
                ) {
                    c.fail(
                        format!("template.components[{i}].type"),
                        "must be header, body, button, footer, carousel or limited_time_offer",
                    );
                }
                for (j, parameter) in component
                    .get("parameters")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .enumerate()
                {
                    let ptype = parameter.get("type").and_then(Value::as_str);
                    if ptype.is_none_or(|t| parameter.get(t).is_none()) {
                        c.fail(
                            format!("template.components[{i}].parameters[{j}]"),
                            "needs a type and a value under that type's name",
                        );
                    }
                }
            }
            list.clone()
        }
        Some(_) => {
            c.fail("template.components", "must be a list");
            Vec::new()
        }
    };
    name.zip(language).map(|(name, language)| Content::Template { name, language, components })
}

fn parse_interactive(c: &mut Check, object: &Value) -> Option<Content> {
    let body = object.pointer("/body/text").and_then(Value::as_str);
    if body.is_none_or(|b| b.is_empty() || b.chars().count() > 1024) {
        c.fail("interactive.body.text", "is required, at most 1024 characters");
    }
    let title_ok =
        |t: Option<&str>, max: usize| t.is_some_and(|t| !t.is_empty() && t.chars().count() <= max);
    match object.get("type").and_then(Value::as_str) {
        Some("button") => {
            let buttons = object.pointer("/action/buttons").and_then(Value::as_array).cloned().unwrap_or_default();
            if !(1..=3).contains(&buttons.len()) {
                c.fail("interactive.action.buttons", "must hold 1 to 3 reply buttons");
            }
            for (i, b) in buttons.iter().enumerate() {
                if !title_ok(b.pointer("/reply/title").and_then(Value::as_str), 20) || !title_ok(b.pointer("/reply/id").and_then(Value::as_str), 256) {
                    c.fail(format!("interactive.action.buttons[{i}]"), "needs reply.id and a reply.title of at most 20 characters");
                }
            }
        }
        Some("list") => {
            if !title_ok(object.pointer("/action/button").and_then(Value::as_str), 20) {
                c.fail("interactive.action.button", "is required, at most 20 characters");
            }
            let sections = object.pointer("/action/sections").and_then(Value::as_array).cloned().unwrap_or_default();
            let rows: usize = sections.iter().map(|s| s.get("rows").and_then(Value::as_array).map_or(0, Vec::len)).sum();
            if !(1..=10).contains(&sections.len()) || !(1..=10).contains(&rows) {
                c.fail("interactive.action.sections", "1 to 10 sections, 1 to 10 rows in all");
            }
            for (i, row) in sections.iter().flat_map(|s| s.get("rows").and_then(Value::as_array).cloned().unwrap_or_default()).enumerate() {
                if !title_ok(row.get("title").and_then(Value::as_str), 24) || !title_ok(row.get("id").and_then(Value::as_str), 200) {
                    c.fail(format!("interactive.action.sections.rows[{i}]"), "needs an id and a title of at most 24 characters");
                }
            }
        }
        Some("cta_url" | "product" | "product_list" | "flow" | "location_request_message" | "address_message") => {}
        _ => c.fail("interactive.type", "must be button, list, cta_url, product, product_list, flow, location_request_message or address_message"),
    }
    Some(Content::Interactive(object.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_body_is_parsed_or_refused_with_fields_without_panicking(
            body in crate::arbitrary::json(),
        ) {
            if let Err(violations) = OutboundMessage::parse(&body) {
                prop_assert!(!violations.is_empty(), "a refusal names what is wrong");
            }
        }

        #[test]
        fn a_valid_text_message_becomes_the_cloud_api_body_it_describes(
            to in "\\+[1-9][0-9]{7,14}",
            client_id in "[A-Za-z0-9_-]{1,64}",
            body in "\\PC{1,1000}",
        ) {
            prop_assume!(!body.trim().is_empty());
            let parsed = OutboundMessage::parse(
                &json!({"to": to, "type": "text", "clientMessageId": client_id, "text": {"body": body}}),
            );
            let message = parsed.map_err(|v| TestCaseError::fail(format!("{v:?}")))?;
            let graph = message.graph_request();
            prop_assert_eq!(&graph["to"], &json!(to));
            prop_assert_eq!(&graph["type"], &json!("text"));
            prop_assert_eq!(&graph["text"]["body"], &json!(body));
            prop_assert_eq!(message.client_message_id, client_id);
        }
    }

    fn fields(result: Result<OutboundMessage, Vec<Violation>>) -> Vec<String> {
        result.err().unwrap_or_default().into_iter().map(|v| v.field).collect()
    }

    #[test]
    fn phone_numbers_are_e164() {
        assert!(PhoneNumber::parse("+15551234567").is_some());
        for bad in ["15551234567", "+0555123456", "+1555", "+1555123456789012", "+1555-123-4567"] {
            assert!(PhoneNumber::parse(bad).is_none(), "{bad}");
        }
        assert_eq!(PhoneNumber::parse("+15551234567").map(|p| p.redacted()), Some("+15…67".into()));
    }

    #[test]
    fn a_text_becomes_the_cloud_api_body() {
        let m = OutboundMessage::parse(
            &json!({"to": "+15551234567", "type": "text", "clientMessageId": "c1",
            "text": {"body": "hi", "previewUrl": true}, "context": {"messageId": "wamid.X"}}),
        )
        .expect("valid");
        assert_eq!(
            m.graph_request(),
            json!({"messaging_product": "whatsapp", "recipient_type": "individual", "to": "+15551234567",
            "type": "text", "context": {"message_id": "wamid.X"}, "text": {"preview_url": true, "body": "hi"}})
        );
        assert!(!m.is_template());
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let errors = fields(OutboundMessage::parse(
            &json!({"to": "555", "type": "text", "text": {"body": ""}}),
        ));
        assert_eq!(errors, vec!["to", "clientMessageId", "text.body"]);
        assert_eq!(
            fields(OutboundMessage::parse(
                &json!({"to": "+15551234567", "clientMessageId": "c", "type": "fax"})
            )),
            vec!["type"]
        );
        let media = fields(OutboundMessage::parse(
            &json!({"to": "+15551234567", "clientMessageId": "c", "type": "sticker",
            "sticker": {"link": "http://insecure", "caption": "no"}}),
        ));
        assert_eq!(media, vec!["sticker.link", "sticker.caption"]);
        let long = "x".repeat(TEXT_MAX + 1);
        assert_eq!(
            fields(OutboundMessage::parse(
                &json!({"to": "+15551234567", "clientMessageId": "c", "type": "text", "text": {"body": long}})
            )),
            vec!["text.body"]
        );
        let buttons = fields(OutboundMessage::parse(
            &json!({"to": "+15551234567", "clientMessageId": "c", "type": "interactive",
            "interactive": {"type": "button", "body": {"text": "?"}, "action": {"buttons": [
                {"type": "reply", "reply": {"id": "1", "title": "a title that is far too long"}}]}}}),
        ));
        assert_eq!(buttons, vec!["interactive.action.buttons[0]"]);
        let location = fields(OutboundMessage::parse(
            &json!({"to": "+15551234567", "clientMessageId": "c", "type": "location", "location": {"latitude": 91, "longitude": 0}}),
        ));
        assert_eq!(location, vec!["location.latitude"]);
        let mixed = fields(OutboundMessage::parse(
            &json!({"to": "+15551234567", "clientMessageId": "c", "type": "text",
            "text": {"body": "hi"}, "template": {}, "image": null}),
        ));
        assert_eq!(mixed, vec!["template"], "another type's object is refused, null is none");
    }
}
