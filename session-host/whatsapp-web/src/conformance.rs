//! One suite of what whatsapp-rust expects of a storage backend, run on its own in-memory
//! backend (the reference, in this crate's tests) and on [`crate::store::DynamoStore`]
//! (the system tests, against the emulator): the same cases must pass on both.
//!
//! Each case gets a fresh, empty backend from `make`. A failure is an `Err` naming the
//! case and what differed.

use std::future::Future;
use std::sync::Arc;
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust::wacore::appstate::processor::AppStateMutationMAC;
use whatsapp_rust::wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};

type Outcome = Result<(), String>;

macro_rules! check {
    ($cond:expr, $($what:tt)+) => {
        if !$cond {
            return Err(format!($($what)+));
        }
    };
}

fn e(error: impl std::fmt::Display) -> String {
    error.to_string()
}

/// The cases, by name.
pub const CASES: &[&str] = &[
    "identities",
    "sessions",
    "pre_keys",
    "signed_pre_keys",
    "sender_keys",
    "app_state",
    "mutation_macs",
    "sender_key_devices",
    "lid_mappings",
    "base_keys",
    "device_lists",
    "group_metadata",
    "tc_tokens",
    "sent_messages",
    "pending_inbound",
    "message_secrets",
    "device",
];

/// Runs every case on fresh backends from `make`; the names of the cases that failed, with
/// why, or nothing.
pub async fn run<B, F, Fut>(make: F) -> Vec<String>
where
    B: Backend + ?Sized,
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<B>>,
{
    let mut failures = Vec::new();
    for case in CASES {
        let backend = make().await;
        if let Err(why) = run_case(case, backend.as_ref()).await {
            failures.push(format!("{case}: {why}"));
        }
    }
    failures
}

async fn run_case<B: Backend + ?Sized>(case: &str, b: &B) -> Outcome {
    match case {
        "identities" => identities(b).await,
        "sessions" => sessions(b).await,
        "pre_keys" => pre_keys(b).await,
        "signed_pre_keys" => signed_pre_keys(b).await,
        "sender_keys" => sender_keys(b).await,
        "app_state" => app_state(b).await,
        "mutation_macs" => mutation_macs(b).await,
        "sender_key_devices" => sender_key_devices(b).await,
        "lid_mappings" => lid_mappings(b).await,
        "base_keys" => base_keys(b).await,
        "device_lists" => device_lists(b).await,
        "group_metadata" => group_metadata(b).await,
        "tc_tokens" => tc_tokens(b).await,
        "sent_messages" => sent_messages(b).await,
        "pending_inbound" => pending_inbound(b).await,
        "message_secrets" => message_secrets(b).await,
        "device" => device(b).await,
        other => Err(format!("no case {other}")),
    }
}

const ALICE: &str = "15551230001@s.whatsapp.net";
const ALICE_2: &str = "15551230001:2@s.whatsapp.net";
const BOB: &str = "100000012345678@lid";

async fn identities<B: Backend + ?Sized>(b: &B) -> Outcome {
    check!(b.load_identity(ALICE).await.map_err(e)?.is_none(), "an empty store has an identity");
    b.put_identity(ALICE, [1; 32]).await.map_err(e)?;
    check!(b.load_identity(ALICE).await.map_err(e)? == Some([1; 32]), "identity not read back");
    b.put_identity(ALICE, [2; 32]).await.map_err(e)?;
    check!(b.load_identity(ALICE).await.map_err(e)? == Some([2; 32]), "identity not replaced");
    b.put_identities_batch(&[(Arc::from(BOB), [3; 32]), (Arc::from(ALICE_2), [4; 32])])
        .await
        .map_err(e)?;
    check!(b.load_identity(BOB).await.map_err(e)? == Some([3; 32]), "batch identity missing");
    check!(b.load_identity(ALICE_2).await.map_err(e)? == Some([4; 32]), "batch identity missing");
    b.delete_identity(ALICE).await.map_err(e)?;
    check!(b.load_identity(ALICE).await.map_err(e)?.is_none(), "identity not deleted");
    check!(b.load_identity(BOB).await.map_err(e)?.is_some(), "delete removed another identity");
    Ok(())
}

async fn sessions<B: Backend + ?Sized>(b: &B) -> Outcome {
    check!(!b.has_session(ALICE).await.map_err(e)?, "an empty store has a session");
    check!(
        !b.has_signal_state_for_user("15551230001").await.map_err(e)?,
        "an empty store has signal state"
    );
    b.put_session(ALICE, b"one").await.map_err(e)?;
    check!(b.get_session(ALICE).await.map_err(e)?.as_deref() == Some(&b"one"[..]), "session");
    check!(b.has_session(ALICE).await.map_err(e)?, "has_session after put");
    b.put_sessions_batch(&[
        (Arc::from(ALICE), Bytes::from_static(b"two")),
        (Arc::from(ALICE_2), Bytes::from_static(b"three")),
    ])
    .await
    .map_err(e)?;
    check!(b.get_session(ALICE).await.map_err(e)?.as_deref() == Some(&b"two"[..]), "batch update");
    check!(
        b.get_session(ALICE_2).await.map_err(e)?.as_deref() == Some(&b"three"[..]),
        "batch insert"
    );
    // A batch that names one address twice: the last one stands.
    b.put_sessions_batch(&[
        (Arc::from(BOB), Bytes::from_static(b"first")),
        (Arc::from(BOB), Bytes::from_static(b"last")),
    ])
    .await
    .map_err(e)?;
    check!(b.get_session(BOB).await.map_err(e)?.as_deref() == Some(&b"last"[..]), "last wins");
    check!(b.has_signal_state_for_user("15551230001").await.map_err(e)?, "user with sessions");
    check!(
        !b.has_signal_state_for_user("1555123000").await.map_err(e)?,
        "a prefix of a user matched"
    );
    b.delete_session(ALICE).await.map_err(e)?;
    check!(b.get_session(ALICE).await.map_err(e)?.is_none(), "session not deleted");
    check!(b.has_session(ALICE_2).await.map_err(e)?, "delete removed another device's session");
    Ok(())
}

async fn pre_keys<B: Backend + ?Sized>(b: &B) -> Outcome {
    check!(b.get_max_prekey_id().await.map_err(e)? == 0, "max id of an empty store");
    b.store_prekey(7, b"seven", false).await.map_err(e)?;
    let batch: Vec<(u32, Bytes)> =
        (100..110).map(|i| (i, Bytes::from(format!("key {i}").into_bytes()))).collect();
    b.store_prekeys_batch(&batch, true).await.map_err(e)?;
    check!(b.load_prekey(7).await.map_err(e)?.as_deref() == Some(&b"seven"[..]), "pre-key");
    check!(b.get_max_prekey_id().await.map_err(e)? == 109, "max id");
    let loaded = b.load_prekeys_batch(&[7, 105, 999]).await.map_err(e)?;
    check!(loaded.len() == 2, "batch load returned {} keys, not the 2 that exist", loaded.len());
    check!(
        loaded.iter().any(|(id, r)| *id == 105 && r.as_ref() == b"key 105"),
        "batch load lost key 105"
    );
    b.remove_prekey(105).await.map_err(e)?;
    // Marking a consumed key uploaded must not bring it back.
    b.mark_prekeys_uploaded(&[105, 106]).await.map_err(e)?;
    check!(b.load_prekey(105).await.map_err(e)?.is_none(), "a removed pre-key came back");
    check!(b.load_prekey(106).await.map_err(e)?.is_some(), "marking removed a pre-key");
    Ok(())
}

async fn signed_pre_keys<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.store_signed_prekey(1, b"first").await.map_err(e)?;
    b.store_signed_prekey(2, b"second").await.map_err(e)?;
    check!(b.load_signed_prekey(2).await.map_err(e)? == Some(b"second".to_vec()), "signed");
    let mut all = b.load_all_signed_prekeys().await.map_err(e)?;
    all.sort();
    check!(all == vec![(1, b"first".to_vec()), (2, b"second".to_vec())], "all signed: {all:?}");
    b.remove_signed_prekey(1).await.map_err(e)?;
    check!(b.load_signed_prekey(1).await.map_err(e)?.is_none(), "signed pre-key not removed");
    Ok(())
}

async fn sender_keys<B: Backend + ?Sized>(b: &B) -> Outcome {
    let group = "120363021033254949@g.us::15551230001::0";
    b.put_sender_key(group, b"k1").await.map_err(e)?;
    check!(b.get_sender_key(group).await.map_err(e)? == Some(b"k1".to_vec()), "sender key");
    b.put_sender_keys_batch(&[(Arc::from(group), Bytes::from_static(b"k2"))]).await.map_err(e)?;
    check!(b.get_sender_key(group).await.map_err(e)? == Some(b"k2".to_vec()), "batch overwrite");
    b.delete_sender_key(group).await.map_err(e)?;
    check!(b.get_sender_key(group).await.map_err(e)?.is_none(), "sender key not deleted");
    Ok(())
}

async fn app_state<B: Backend + ?Sized>(b: &B) -> Outcome {
    check!(b.get_latest_sync_key_id().await.map_err(e)?.is_none(), "latest key of an empty store");
    let key =
        |n: u8| AppStateSyncKey { key_data: vec![n; 32], fingerprint: vec![n], timestamp: 10 };
    b.set_sync_key(b"key-a", key(1)).await.map_err(e)?;
    b.set_sync_key(b"key-b", key(2)).await.map_err(e)?;
    let read = b.get_sync_key(b"key-a").await.map_err(e)?;
    check!(read.is_some_and(|k| k.key_data == vec![1; 32]), "sync key not read back");
    check!(
        b.get_latest_sync_key_id().await.map_err(e)? == Some(b"key-b".to_vec()),
        "the latest sync key is the last set"
    );
    let fresh = b.get_version("regular").await.map_err(e)?;
    check!(fresh.version == 0, "an unknown collection is at version {}", fresh.version);
    let mut state = fresh.clone();
    state.version = 42;
    state.hash = [9; 128];
    state.index_value_map.insert("idx".into(), vec![5, 6]);
    b.set_version("regular", state).await.map_err(e)?;
    let read = b.get_version("regular").await.map_err(e)?;
    check!(read.version == 42 && read.hash == [9; 128], "version not read back");
    check!(read.index_value_map.get("idx") == Some(&vec![5, 6]), "index values lost");
    Ok(())
}

async fn mutation_macs<B: Backend + ?Sized>(b: &B) -> Outcome {
    let mac = |i: u8| AppStateMutationMAC { index_mac: vec![i; 32], value_mac: vec![i + 100; 32] };
    b.put_mutation_macs("regular", 1, &[mac(1), mac(2), mac(3)]).await.map_err(e)?;
    b.put_mutation_macs("critical_block", 1, &[mac(1)]).await.map_err(e)?;
    check!(
        b.get_mutation_mac("regular", &[2; 32]).await.map_err(e)? == Some(vec![102; 32]),
        "mutation MAC not read back"
    );
    let many = b.get_mutation_macs("regular", &[[1; 32], [3; 32], [9; 32]]).await.map_err(e)?;
    check!(many.len() == 2 && many.get(&[3; 32]) == Some(&vec![103; 32]), "batch MACs: {many:?}");
    b.delete_mutation_macs("regular", &[vec![1; 32]]).await.map_err(e)?;
    check!(b.get_mutation_mac("regular", &[1; 32]).await.map_err(e)?.is_none(), "MAC not deleted");
    b.clear_mutation_macs("regular").await.map_err(e)?;
    check!(b.get_mutation_mac("regular", &[3; 32]).await.map_err(e)?.is_none(), "not cleared");
    check!(
        b.get_mutation_mac("critical_block", &[1; 32]).await.map_err(e)?.is_some(),
        "clearing one collection cleared another"
    );
    Ok(())
}

async fn sender_key_devices<B: Backend + ?Sized>(b: &B) -> Outcome {
    let (g1, g2) = ("1@g.us", "2@g.us");
    b.set_sender_key_status(g1, &[("a:1@lid", true), ("b:2@lid", false)]).await.map_err(e)?;
    b.set_sender_key_status(g1, &[("b:2@lid", true)]).await.map_err(e)?;
    b.set_sender_key_status(g2, &[("a:1@lid", true), ("c:3@lid", true)]).await.map_err(e)?;
    let mut devices = b.get_sender_key_devices(g1).await.map_err(e)?;
    devices.sort();
    check!(
        devices == vec![("a:1@lid".to_string(), true), ("b:2@lid".to_string(), true)],
        "devices of g1: {devices:?}"
    );
    b.delete_sender_key_device_rows(&["a:1@lid"]).await.map_err(e)?;
    check!(b.get_sender_key_devices(g1).await.map_err(e)?.len() == 1, "row not deleted in g1");
    check!(b.get_sender_key_devices(g2).await.map_err(e)?.len() == 1, "row not deleted in g2");
    b.clear_sender_key_devices(g1).await.map_err(e)?;
    check!(b.get_sender_key_devices(g1).await.map_err(e)?.is_empty(), "g1 not cleared");
    check!(!b.get_sender_key_devices(g2).await.map_err(e)?.is_empty(), "g2 cleared with g1");
    b.clear_all_sender_key_devices().await.map_err(e)?;
    check!(b.get_sender_key_devices(g2).await.map_err(e)?.is_empty(), "not all cleared");
    Ok(())
}

fn mapping(lid: &str, phone: &str, at: i64) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: lid.into(),
        phone_number: phone.into(),
        created_at: at,
        updated_at: at,
        learning_source: "usync".into(),
    }
}

async fn lid_mappings<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.put_lid_mapping(&mapping("100", "15550000001", 1)).await.map_err(e)?;
    let by_lid = b.get_lid_mapping("100").await.map_err(e)?;
    check!(by_lid.is_some_and(|m| m.phone_number == "15550000001"), "mapping by LID");
    let by_pn = b.get_pn_mapping("15550000001").await.map_err(e)?;
    check!(by_pn.is_some_and(|m| m.lid == "100"), "mapping by phone");
    // The LID moves to another number: the old number no longer answers.
    b.put_lid_mapping(&mapping("100", "15550000002", 2)).await.map_err(e)?;
    check!(b.get_pn_mapping("15550000001").await.map_err(e)?.is_none(), "stale reverse mapping");
    check!(b.get_pn_mapping("15550000002").await.map_err(e)?.is_some(), "new reverse mapping");
    b.put_lid_mappings(&[mapping("200", "15550000003", 3), mapping("300", "15550000004", 3)])
        .await
        .map_err(e)?;
    let mut all: Vec<String> =
        b.get_all_lid_mappings().await.map_err(e)?.into_iter().map(|m| m.lid).collect();
    all.sort();
    check!(all == ["100", "200", "300"], "all mappings: {all:?}");
    Ok(())
}

async fn base_keys<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.save_base_key(ALICE, "M1", b"base").await.map_err(e)?;
    check!(b.has_same_base_key(ALICE, "M1", b"base").await.map_err(e)?, "same base key");
    check!(!b.has_same_base_key(ALICE, "M1", b"other").await.map_err(e)?, "different base key");
    check!(!b.has_same_base_key(ALICE, "M2", b"base").await.map_err(e)?, "another message");
    b.delete_base_key(ALICE, "M1").await.map_err(e)?;
    check!(!b.has_same_base_key(ALICE, "M1", b"base").await.map_err(e)?, "base key not deleted");
    Ok(())
}

fn devices(user: &str, ids: &[u32]) -> DeviceListRecord {
    DeviceListRecord {
        user: user.into(),
        devices: ids.iter().map(|id| DeviceInfo::new(*id, Some(*id))).collect(),
        timestamp: 5,
        phash: Some("2:abc".into()),
        raw_id: Some(7),
    }
}

async fn device_lists<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.update_device_list(devices("15551230001", &[0, 2])).await.map_err(e)?;
    let read = b.get_devices("15551230001").await.map_err(e)?;
    check!(
        read.is_some_and(|r| r.devices.len() == 2 && r.raw_id == Some(7)),
        "device list not read back"
    );
    b.update_device_lists(vec![devices("15551230001", &[0]), devices("15551230002", &[0, 1, 3])])
        .await
        .map_err(e)?;
    let read = b.get_devices("15551230001").await.map_err(e)?;
    check!(read.is_some_and(|r| r.devices.len() == 1), "device list not replaced");
    b.delete_devices("15551230002").await.map_err(e)?;
    check!(b.get_devices("15551230002").await.map_err(e)?.is_none(), "device list not deleted");
    Ok(())
}

async fn group_metadata<B: Backend + ?Sized>(b: &B) -> Outcome {
    // A backend may keep no group metadata (the trait's default); one that keeps it must
    // give back what it was given and forget it on delete.
    b.put_group_metadata("1@g.us", b"blob").await.map_err(e)?;
    let read = b.get_group_metadata("1@g.us").await.map_err(e)?;
    check!(read.as_deref().is_none_or(|r| r == b"blob"), "metadata changed: {read:?}");
    b.delete_group_metadata("1@g.us").await.map_err(e)?;
    check!(b.get_group_metadata("1@g.us").await.map_err(e)?.is_none(), "metadata not deleted");
    Ok(())
}

async fn tc_tokens<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.touch_tc_token_sender_timestamp(BOB, 100).await.map_err(e)?;
    let placeholder = b.get_tc_token(BOB).await.map_err(e)?.ok_or("no placeholder")?;
    check!(
        placeholder.token.is_empty() && placeholder.sender_timestamp == Some(100),
        "placeholder"
    );
    b.touch_tc_token_sender_timestamp(BOB, 50).await.map_err(e)?;
    let kept = b.get_tc_token(BOB).await.map_err(e)?.ok_or("token gone")?;
    check!(kept.sender_timestamp == Some(100), "the sender time went back");
    b.store_received_tc_token(BOB, b"real", 200).await.map_err(e)?;
    b.store_received_tc_token(BOB, b"stale", 150).await.map_err(e)?;
    let token = b.get_tc_token(BOB).await.map_err(e)?.ok_or("token gone")?;
    check!(token.token == b"real" && token.token_timestamp == 200, "newer token must win");
    check!(token.sender_timestamp == Some(100), "the sender time was lost");
    b.put_tc_token(
        ALICE,
        &TcTokenEntry { token: b"old".to_vec(), token_timestamp: 10, sender_timestamp: None },
    )
    .await
    .map_err(e)?;
    let mut jids = b.get_all_tc_token_jids().await.map_err(e)?;
    jids.sort();
    check!(jids == [BOB, ALICE], "token jids: {jids:?}");
    let deleted = b.delete_expired_tc_tokens(100, 100).await.map_err(e)?;
    check!(deleted == 1, "{deleted} tokens expired, not 1");
    check!(b.get_tc_token(ALICE).await.map_err(e)?.is_none(), "the expired token stayed");
    b.delete_tc_token(BOB).await.map_err(e)?;
    check!(b.get_tc_token(BOB).await.map_err(e)?.is_none(), "token not deleted");
    Ok(())
}

fn now() -> i64 {
    domain::time::now_secs()
}

async fn sent_messages<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.store_sent_message(ALICE, "M1", b"payload").await.map_err(e)?;
    b.store_sent_message(ALICE, "M2", b"second").await.map_err(e)?;
    check!(
        b.take_sent_message(ALICE, "M1").await.map_err(e)? == Some(b"payload".to_vec()),
        "sent message not taken"
    );
    check!(b.take_sent_message(ALICE, "M1").await.map_err(e)?.is_none(), "taken twice");
    check!(b.delete_expired_sent_messages(now() - 3600).await.map_err(e)? == 0, "fresh deleted");
    check!(b.delete_expired_sent_messages(now() + 3600).await.map_err(e)? == 1, "old kept");
    check!(b.take_sent_message(ALICE, "M2").await.map_err(e)?.is_none(), "expired still there");
    Ok(())
}

async fn pending_inbound<B: Backend + ?Sized>(b: &B) -> Outcome {
    b.store_pending_inbound(ALICE, ALICE, "M1", b"hello").await.map_err(e)?;
    b.store_pending_inbound_batch(&[
        PendingInboundRow { chat: ALICE, sender: ALICE, id: "M2", message: b"two" },
        PendingInboundRow { chat: BOB, sender: BOB, id: "M1", message: b"bob's" },
    ])
    .await
    .map_err(e)?;
    check!(
        b.get_pending_inbound(ALICE, ALICE, "M1").await.map_err(e)? == Some(b"hello".to_vec()),
        "pending message not read back"
    );
    check!(
        b.get_pending_inbound(BOB, BOB, "M1").await.map_err(e)? == Some(b"bob's".to_vec()),
        "ids are per chat and sender"
    );
    b.delete_pending_inbound(ALICE, ALICE, "M1").await.map_err(e)?;
    check!(b.get_pending_inbound(ALICE, ALICE, "M1").await.map_err(e)?.is_none(), "not deleted");
    check!(b.get_pending_inbound(BOB, BOB, "M1").await.map_err(e)?.is_some(), "deleted another");
    b.delete_pending_inbound_batch(&[PendingInboundKey { chat: BOB, sender: BOB, id: "M1" }])
        .await
        .map_err(e)?;
    check!(b.get_pending_inbound(BOB, BOB, "M1").await.map_err(e)?.is_none(), "batch delete");
    check!(b.delete_expired_pending_inbound(now() - 3600).await.map_err(e)? == 0, "fresh expired");
    check!(b.delete_expired_pending_inbound(now() + 3600).await.map_err(e)? == 1, "old kept");
    Ok(())
}

fn secret(id: &str, byte: u8, expires_at: i64, message_ts: i64) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(ALICE),
        sender: Arc::from(ALICE),
        msg_id: Arc::from(id),
        secret: [byte; 32],
        expires_at,
        message_ts,
    }
}

async fn message_secrets<B: Backend + ?Sized>(b: &B) -> Outcome {
    let soon = now() + 3600;
    b.put_msg_secrets(vec![secret("M1", 1, soon, 100), secret("M2", 2, 0, 0)]).await.map_err(e)?;
    check!(
        b.get_msg_secret(ALICE, ALICE, "M1").await.map_err(e)? == Some(vec![1; 32]),
        "secret not read back"
    );
    check!(b.get_msg_secret(ALICE, BOB, "M1").await.map_err(e)?.is_none(), "keyed by sender");
    // A later write: the later deadline and the known parent time win.
    b.put_msg_secrets(vec![secret("M1", 3, soon - 100, 0)]).await.map_err(e)?;
    let (bytes, ts) =
        b.get_msg_secret_with_ts(ALICE, ALICE, "M1").await.map_err(e)?.ok_or("gone")?;
    check!(bytes == vec![3; 32], "the secret was not replaced");
    check!(ts == 100, "a zero parent time replaced a known one ({ts})");
    check!(b.delete_expired_msg_secrets(soon - 50).await.map_err(e)? == 0, "deadline shortened");
    check!(b.delete_expired_msg_secrets(soon).await.map_err(e)? == 1, "expired secret kept");
    check!(b.get_msg_secret(ALICE, ALICE, "M2").await.map_err(e)?.is_some(), "0 means never");
    Ok(())
}

async fn device<B: Backend + ?Sized>(b: &B) -> Outcome {
    check!(!b.exists().await.map_err(e)?, "an empty store has a device");
    check!(b.load().await.map_err(e)?.is_none(), "an empty store loads a device");
    b.create().await.map_err(e)?;
    check!(b.exists().await.map_err(e)?, "no device after create");
    let mut device = b.load().await.map_err(e)?.ok_or("create made no device")?;
    device.push_name = "Switchboard test".into();
    device.next_pre_key_id = 813;
    b.save(&device).await.map_err(e)?;
    let read = b.load().await.map_err(e)?.ok_or("device gone")?;
    check!(read.push_name == "Switchboard test", "device not saved");
    check!(read.next_pre_key_id == 813, "device counters not saved");
    check!(
        read.identity_key.public_key.public_key_bytes()
            == device.identity_key.public_key.public_key_bytes(),
        "device keys changed on the way"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use whatsapp_rust::wacore::store::InMemoryBackend;

    /// The reference: whatsapp-rust's own in-memory backend passes every case.
    #[tokio::test]
    async fn the_in_memory_reference_passes_every_case() {
        let failures = super::run(|| async { std::sync::Arc::new(InMemoryBackend::new()) }).await;
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
