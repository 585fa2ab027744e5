use super::*;
use std::time::Duration;
use whatsapp_rust::types::events::{
    ClientOutdated, ConnectFailure, Connected, LoggedOut, PairSuccess, PairingCode, PairingQrCode,
    PairingQrCodesExhausted, Receipt, StreamReplaced, TempBanReason, TemporaryBan,
};
use whatsapp_rust::types::message::MessageSource;
use whatsapp_rust::wacore::chrono::{TimeZone, Utc};

fn jid(text: &str) -> Jid {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn map(event: Event) -> Vec<DriverEvent> {
    session_event(&event, &mut Pairing::default(), |_| b"marker".to_vec())
}

#[test]
fn pairing_events_carry_the_qr_and_the_code_together() {
    let mut pairing = Pairing::default();
    let qr = Event::PairingQrCode(
        PairingQrCode::builder().code("2@qr-one".into()).timeout(Duration::from_secs(60)).build(),
    );
    let code = Event::PairingCode(
        PairingCode::builder().code("ABCD-EFGH".into()).timeout(Duration::from_secs(180)).build(),
    );
    let first = session_event(&qr, &mut pairing, |_| Vec::new());
    let now = domain::time::now_secs();
    match first.as_slice() {
        [DriverEvent::Qr { qr, pairing_code: None, expires_at }] => {
            assert_eq!(qr, "2@qr-one");
            assert!((now + 59..=now + 61).contains(expires_at), "{expires_at}");
        }
        other => panic!("{other:?}"),
    }
    let second = session_event(&code, &mut pairing, |_| Vec::new());
    assert!(
        matches!(second.as_slice(), [DriverEvent::Qr { qr, pairing_code: Some(c), .. }] if qr == "2@qr-one" && c == "ABCD-EFGH"),
        "{second:?}"
    );
    let exhausted = map(Event::PairingQrCodesExhausted(
        PairingQrCodesExhausted::builder().disconnected(true).build(),
    ));
    assert!(matches!(exhausted.as_slice(), [DriverEvent::PairingExpired]), "{exhausted:?}");
}

#[test]
fn a_pairing_gives_the_number_and_device_and_the_driver_marker() {
    let paired = map(Event::PairSuccess(
        PairSuccess::builder()
            .id(jid("15551230001:12@s.whatsapp.net"))
            .lid(jid("100000012345678:12@lid"))
            .business_name(String::new())
            .platform("smba".into())
            .build(),
    ));
    match paired.as_slice() {
        [DriverEvent::Paired { phone_number, device_id, credentials }] => {
            assert_eq!(phone_number, "+15551230001", "E.164, as the API shows it");
            assert_eq!(device_id, "12");
            assert_eq!(credentials, b"marker");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn connection_events_become_session_states() {
    assert!(matches!(
        map(Event::Connected(Connected::builder().build())).as_slice(),
        [DriverEvent::Connected]
    ));
    assert!(matches!(
        map(Event::StreamReplaced(StreamReplaced::builder().build())).as_slice(),
        [DriverEvent::StreamReplaced]
    ));
    assert!(matches!(
        map(Event::ClientOutdated(ClientOutdated::builder().build())).as_slice(),
        [DriverEvent::ClientOutdated]
    ));
    let logged_out =
        LoggedOut::builder().on_connect(true).reason(ConnectFailureReason::LoggedOut).build();
    assert!(matches!(map(Event::LoggedOut(logged_out)).as_slice(), [DriverEvent::LoggedOut]));
    let ban = TemporaryBan::builder()
        .code(TempBanReason::SentToTooManyPeople)
        .expire(whatsapp_rust::wacore::chrono::Duration::hours(1))
        .build();
    assert!(matches!(
        map(Event::TemporaryBan(ban)).as_slice(),
        [DriverEvent::TemporaryBan { reason }] if reason.contains("SentToTooManyPeople")
    ));
    let failure = |reason| Event::ConnectFailure(ConnectFailure::builder().reason(reason).build());
    assert!(matches!(
        map(failure(ConnectFailureReason::UnknownLogout)).as_slice(),
        [DriverEvent::LoggedOut]
    ));
    assert!(matches!(
        map(failure(ConnectFailureReason::TempBanned)).as_slice(),
        [DriverEvent::TemporaryBan { .. }]
    ));
    assert!(matches!(
        map(failure(ConnectFailureReason::ClientOutdated)).as_slice(),
        [DriverEvent::ClientOutdated]
    ));
    assert!(matches!(
        map(failure(ConnectFailureReason::ServiceUnavailable)).as_slice(),
        [DriverEvent::Disconnected { .. }]
    ));
}

fn source(chat: &str, sender: &str) -> MessageSource {
    MessageSource { chat: jid(chat), sender: jid(sender), ..Default::default() }
}

#[test]
fn receipts_of_one_to_one_chats_become_delivered_and_read() {
    let receipt = |kind, source: MessageSource| {
        Event::Receipt(
            Receipt::builder()
                .source(source)
                .message_ids(vec!["3EB0A1".into(), "3EB0A2".into()])
                .timestamp(Utc.timestamp_opt(1_700_000_000, 0).single().unwrap_or_default())
                .r#type(kind)
                .offline(false)
                .build(),
        )
    };
    let direct = || source("15551230001@s.whatsapp.net", "15551230001@s.whatsapp.net");
    let read = map(receipt(ReceiptType::Read, direct()));
    assert_eq!(read.len(), 2, "one per message id");
    match &read[1] {
        DriverEvent::Receipt(r) => {
            assert_eq!(r.message_id, "3EB0A2");
            assert_eq!(r.recipient, "15551230001");
            assert_eq!(r.status, "read");
            assert_eq!(r.timestamp, 1_700_000_000);
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        map(receipt(ReceiptType::Delivered, direct())).first(),
        Some(DriverEvent::Receipt(r)) if r.status == "delivered"
    ));
    assert!(map(receipt(ReceiptType::Retry, direct())).is_empty(), "a retry is not a status");
    let mut group = source("120363021033254949@g.us", "15551230001@s.whatsapp.net");
    group.is_group = true;
    assert!(map(receipt(ReceiptType::Read, group)).is_empty(), "groups are not the API's");
}

fn info(sender: &str) -> MessageInfo {
    MessageInfo {
        source: source(sender, sender),
        id: "3EB0INBOUND".into(),
        push_name: "Ana".into(),
        timestamp: Utc.timestamp_opt(1_700_000_100, 0).single().unwrap_or_default(),
        ..Default::default()
    }
}

#[test]
fn received_text_replies_and_reactions_become_cloud_api_records() {
    let text = wa::Message { conversation: Some("hello".into()), ..Default::default() };
    let got = inbound(&text, &info("15551230001@s.whatsapp.net"));
    assert_eq!(got.id, "3EB0INBOUND");
    assert_eq!(got.from, "15551230001");
    assert_eq!(got.push_name.as_deref(), Some("Ana"));
    assert_eq!(got.timestamp, 1_700_000_100);
    assert_eq!(got.content, WebContent::Text("hello".into()));
    assert_eq!(got.reply_to, None);

    let reply = outgoing(
        &jid("15551230001@s.whatsapp.net"),
        &Outgoing::Text { body: "answer".into(), reply_to: Some("3EB0Q".into()) },
    );
    let got = inbound(&reply, &info("15551230001@s.whatsapp.net"));
    assert_eq!(got.content, WebContent::Text("answer".into()));
    assert_eq!(got.reply_to.as_deref(), Some("3EB0Q"), "a reply names what it answers");

    let reaction = outgoing(
        &jid("15551230001@s.whatsapp.net"),
        &Outgoing::Reaction { message_id: "3EB0R".into(), emoji: "👍".into() },
    );
    let got = inbound(&reaction, &info("15551230001@s.whatsapp.net"));
    assert_eq!(
        got.content,
        WebContent::Reaction { message_id: "3EB0R".into(), emoji: "👍".into() }
    );
}

#[test]
fn received_media_is_described_not_downloaded() {
    let image = wa::Message {
        image_message: wa::message::ImageMessage {
            mimetype: Some("image/jpeg".into()),
            caption: Some("the receipt".into()),
            file_sha256: Some(vec![1, 2, 3]),
            url: Some("https://mmg.whatsapp.net/secret-path".into()),
            media_key: Some(vec![9; 32]),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    let got = inbound(&image, &info("15551230001@s.whatsapp.net"));
    assert_eq!(
        got.content,
        WebContent::Media {
            kind: "image".into(),
            mime_type: Some("image/jpeg".into()),
            sha256: Some("AQID".into()),
            caption: Some("the receipt".into()),
            filename: None,
        },
        "no URL and no media key leave the host"
    );
    let document = wa::Message {
        document_message: wa::message::DocumentMessage {
            mimetype: Some("application/pdf".into()),
            file_name: Some("invoice.pdf".into()),
            ..Default::default()
        }
        .into(),
        ..Default::default()
    };
    assert!(matches!(
        inbound(&document, &info("15551230001@s.whatsapp.net")).content,
        WebContent::Media { kind, filename: Some(f), .. } if kind == "document" && f == "invoice.pdf"
    ));
    let location = wa::Message {
        location_message: wa::message::LocationMessage::default().into(),
        ..Default::default()
    };
    assert_eq!(
        inbound(&location, &info("15551230001@s.whatsapp.net")).content,
        WebContent::Other("location".into())
    );
}

#[test]
fn a_hidden_number_is_the_lid_unless_whatsapp_gives_the_number_too() {
    let text = wa::Message { conversation: Some("hi".into()), ..Default::default() };
    let mut hidden = info("100000012345678@lid");
    assert_eq!(inbound(&text, &hidden).from, "100000012345678@lid");
    hidden.source.sender_alt = Some(jid("15551230009@s.whatsapp.net"));
    assert_eq!(inbound(&text, &hidden).from, "15551230009");
    // And an answer to the LID goes to the LID.
    assert_eq!(
        recipient("100000012345678@lid").map(|j| j.to_string()).as_deref(),
        Ok("100000012345678@lid")
    );
}

#[test]
fn only_a_persons_direct_messages_are_taken() {
    let direct = info("15551230001@s.whatsapp.net");
    assert!(taken(&direct));
    let mut own = direct.clone();
    own.source.is_from_me = true;
    assert!(!taken(&own), "sent from the phone itself");
    let mut group = direct.clone();
    group.source.is_group = true;
    assert!(!taken(&group));
    let status =
        MessageInfo { source: source("status@broadcast", "15551230001@s.whatsapp.net"), ..direct };
    assert!(!taken(&status));
}

#[test]
fn recipients_are_numbers_or_whatsapp_addresses() {
    assert_eq!(
        recipient("15551230001").map(|j| j.to_string()).as_deref(),
        Ok("15551230001@s.whatsapp.net")
    );
    assert!(recipient("").is_err());
    assert!(recipient("+1 555").is_err());
}

#[test]
fn outgoing_messages_have_whatsapps_shapes() {
    let to = jid("15551230001@s.whatsapp.net");
    let plain = outgoing(&to, &Outgoing::Text { body: "hi".into(), reply_to: None });
    assert_eq!(plain.conversation.as_deref(), Some("hi"));
    let reply = outgoing(&to, &Outgoing::Text { body: "re".into(), reply_to: Some("Q1".into()) });
    let context = reply
        .extended_text_message
        .as_option()
        .and_then(|m| m.context_info.as_option())
        .cloned()
        .unwrap_or_default();
    assert_eq!(context.stanza_id.as_deref(), Some("Q1"));
    assert_eq!(context.participant.as_deref(), Some("15551230001@s.whatsapp.net"));
    let reaction =
        outgoing(&to, &Outgoing::Reaction { message_id: "M9".into(), emoji: "🎉".into() });
    let r = reaction.reaction_message.as_option().cloned().unwrap_or_default();
    assert_eq!(r.text.as_deref(), Some("🎉"));
    let key = r.key.as_option().cloned().unwrap_or_default();
    assert_eq!(key.id.as_deref(), Some("M9"));
    assert_eq!(key.remote_jid.as_deref(), Some("15551230001@s.whatsapp.net"));
    assert_eq!(key.from_me, Some(false));
}
