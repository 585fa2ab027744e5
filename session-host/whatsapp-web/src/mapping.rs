//! whatsapp-rust's events and messages in the host's terms: session events, and the
//! records the Cloud API path produces (`domain::sessions::WebInbound`, `WebReceipt`).

use domain::sessions::{WebContent, WebInbound, WebReceipt};
use session_driver::{DriverEvent, Outgoing};
use whatsapp_rust::Jid;
use whatsapp_rust::types::events::{ConnectFailureReason, Event};
use whatsapp_rust::types::message::MessageInfo;
use whatsapp_rust::types::presence::ReceiptType;
use whatsapp_rust::wacore::proto_helpers::MessageExt;
use whatsapp_rust::wacore_binary::JidExt;
use whatsapp_rust::waproto::whatsapp as wa;

/// What the driver remembers between events: the QR and the pairing code are announced
/// together, though whatsapp-rust sends them apart.
#[derive(Debug, Default)]
pub struct Pairing {
    pub qr: Option<String>,
    pub code: Option<String>,
}

fn expires_in(timeout: std::time::Duration) -> i64 {
    domain::time::now_secs() + i64::try_from(timeout.as_secs()).unwrap_or(60)
}

/// A digits-only number from a JID on the phone-number server, or the JID itself (a LID:
/// WhatsApp hides the number).
pub fn party(jid: &Jid) -> String {
    if jid.is_pn() { jid.user.to_string() } else { jid.to_non_ad().to_string() }
}

/// The session event an event of the client is, if it is one. Messages are not here: they
/// arrive through the durability hook.
pub fn session_event(
    event: &Event,
    pairing: &mut Pairing,
    marker: impl Fn(&Jid) -> Vec<u8>,
) -> Vec<DriverEvent> {
    match event {
        Event::PairingQrCode(qr) => {
            pairing.qr = Some(qr.code.clone());
            vec![DriverEvent::Qr {
                qr: qr.code.clone(),
                pairing_code: pairing.code.clone(),
                expires_at: expires_in(qr.timeout),
            }]
        }
        Event::PairingCode(code) => {
            pairing.code = Some(code.code.clone());
            vec![DriverEvent::Qr {
                qr: pairing.qr.clone().unwrap_or_default(),
                pairing_code: Some(code.code.clone()),
                expires_at: expires_in(code.timeout),
            }]
        }
        Event::PairingQrCodesExhausted(_) => vec![DriverEvent::PairingExpired],
        Event::PairSuccess(paired) => vec![DriverEvent::Paired {
            phone_number: format!("+{}", paired.id.user),
            device_id: paired.id.device.to_string(),
            credentials: marker(&paired.id),
        }],
        Event::PairError(failed) => {
            vec![DriverEvent::Disconnected { reason: format!("pairing failed: {}", failed.error) }]
        }
        Event::Connected(_) => vec![DriverEvent::Connected],
        Event::LoggedOut(_) => vec![DriverEvent::LoggedOut],
        Event::StreamReplaced(_) => vec![DriverEvent::StreamReplaced],
        Event::TemporaryBan(ban) => {
            vec![DriverEvent::TemporaryBan { reason: format!("{:?} for {}", ban.code, ban.expire) }]
        }
        Event::ClientOutdated(_) => vec![DriverEvent::ClientOutdated],
        Event::ConnectFailure(failure) => vec![match &failure.reason {
            reason if reason.is_logged_out() => DriverEvent::LoggedOut,
            ConnectFailureReason::TempBanned => DriverEvent::TemporaryBan {
                reason: failure.message.clone().unwrap_or_else(|| "temporarily banned".into()),
            },
            ConnectFailureReason::ClientOutdated => DriverEvent::ClientOutdated,
            other => DriverEvent::Disconnected { reason: format!("connect failure: {other:?}") },
        }],
        Event::Receipt(receipt) => {
            let status = match receipt.r#type {
                ReceiptType::Delivered => "delivered",
                ReceiptType::Read | ReceiptType::Played => "read",
                _ => return Vec::new(),
            };
            if receipt.source.is_group {
                return Vec::new();
            }
            let recipient = party(&receipt.source.chat);
            receipt
                .message_ids
                .iter()
                .map(|id| {
                    DriverEvent::Receipt(WebReceipt {
                        message_id: id.to_string(),
                        recipient: recipient.clone(),
                        status: status.into(),
                        timestamp: receipt.timestamp.timestamp(),
                    })
                })
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Whether a received message is one the platform takes: a person's 1:1 message, not the
/// account's own (sent from the phone), a group's or a status.
pub fn taken(info: &MessageInfo) -> bool {
    !info.source.is_from_me && !info.source.is_group && !info.source.chat.is_status_broadcast()
}

/// A received message as the Cloud API path records it.
pub fn inbound(message: &wa::Message, info: &MessageInfo) -> WebInbound {
    let from = info
        .source
        .sender_alt
        .as_ref()
        .filter(|alt| alt.is_pn())
        .map_or_else(|| party(&info.source.sender), |pn| pn.user.to_string());
    let (content, reply_to) = content(message.get_base_message());
    WebInbound {
        id: info.id.to_string(),
        from,
        push_name: Some(info.push_name.clone()).filter(|n| !n.is_empty()),
        timestamp: info.timestamp.timestamp(),
        content,
        reply_to,
    }
}

fn media(
    kind: &str,
    mime_type: Option<&String>,
    sha256: Option<&Vec<u8>>,
    caption: Option<&String>,
    filename: Option<&String>,
) -> WebContent {
    use base64::Engine;
    WebContent::Media {
        kind: kind.into(),
        mime_type: mime_type.cloned(),
        sha256: sha256.map(|s| base64::engine::general_purpose::STANDARD.encode(s)),
        caption: caption.cloned(),
        filename: filename.cloned(),
    }
}

/// The message's content and the message it replies to.
fn content(message: &wa::Message) -> (WebContent, Option<String>) {
    let replied = |context: Option<&wa::ContextInfo>| context.and_then(|c| c.stanza_id.clone());
    if let Some(text) = &message.conversation {
        return (WebContent::Text(text.clone()), None);
    }
    if let Some(extended) = message.extended_text_message.as_option() {
        return (
            WebContent::Text(extended.text.clone().unwrap_or_default()),
            replied(extended.context_info.as_option()),
        );
    }
    if let Some(reaction) = message.reaction_message.as_option() {
        let message_id = reaction.key.as_option().and_then(|k| k.id.clone()).unwrap_or_default();
        return (
            WebContent::Reaction { message_id, emoji: reaction.text.clone().unwrap_or_default() },
            None,
        );
    }
    if let Some(m) = message.image_message.as_option() {
        return (
            media("image", m.mimetype.as_ref(), m.file_sha256.as_ref(), m.caption.as_ref(), None),
            replied(m.context_info.as_option()),
        );
    }
    if let Some(m) = message.video_message.as_option() {
        return (
            media("video", m.mimetype.as_ref(), m.file_sha256.as_ref(), m.caption.as_ref(), None),
            replied(m.context_info.as_option()),
        );
    }
    if let Some(m) = message.audio_message.as_option() {
        return (
            media("audio", m.mimetype.as_ref(), m.file_sha256.as_ref(), None, None),
            replied(m.context_info.as_option()),
        );
    }
    if let Some(m) = message.document_message.as_option() {
        return (
            media(
                "document",
                m.mimetype.as_ref(),
                m.file_sha256.as_ref(),
                m.caption.as_ref(),
                m.file_name.as_ref(),
            ),
            replied(m.context_info.as_option()),
        );
    }
    if let Some(m) = message.sticker_message.as_option() {
        return (
            media("sticker", m.mimetype.as_ref(), m.file_sha256.as_ref(), None, None),
            replied(m.context_info.as_option()),
        );
    }
    let kind = if message.location_message.is_set() {
        "location"
    } else if message.contact_message.is_set() {
        "contacts"
    } else {
        "unsupported"
    };
    (WebContent::Other(kind.into()), None)
}

/// The recipient: digits are a phone number; a JID (a LID a message came from) as it is.
pub fn recipient(to: &str) -> Result<Jid, String> {
    if to.contains('@') {
        return to.parse::<Jid>().map_err(|e| format!("not a WhatsApp address: {e}"));
    }
    if to.is_empty() || !to.bytes().all(|b| b.is_ascii_digit()) {
        return Err("the recipient is not a phone number".into());
    }
    Ok(Jid::pn(to))
}

/// What the client sends for an outbound message.
pub fn outgoing(to: &Jid, message: &Outgoing) -> wa::Message {
    match message {
        Outgoing::Text { body, reply_to: None } => {
            wa::Message { conversation: Some(body.clone()), ..Default::default() }
        }
        Outgoing::Text { body, reply_to: Some(id) } => wa::Message {
            extended_text_message: wa::message::ExtendedTextMessage {
                text: Some(body.clone()),
                context_info: wa::ContextInfo {
                    stanza_id: Some(id.clone()),
                    participant: Some(to.to_string()),
                    ..Default::default()
                }
                .into(),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
        Outgoing::Reaction { message_id, emoji } => wa::Message {
            reaction_message: wa::message::ReactionMessage {
                key: wa::MessageKey {
                    remote_jid: Some(to.to_string()),
                    // NOTE: a reaction answers the customer's message (the API's use); one
                    // to the account's own message would need from_me = true.
                    from_me: Some(false),
                    id: Some(message_id.clone()),
                    participant: None,
                }
                .into(),
                text: Some(emoji.clone()),
                sender_timestamp_ms: Some(domain::time::now_ms()),
                ..Default::default()
            }
            .into(),
            ..Default::default()
        },
    }
}

#[cfg(test)]
mod tests;
