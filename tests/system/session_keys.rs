//! A WhatsApp Web session's key material in the pool table (`store::session_keys`): sealed
//! under the session's data key, read back one, many or a namespace at a time, and written
//! only under the connection's current lease.

use adapters::store::pool::{Fenced, PoolStore};
use adapters::store::session_keys::{Change, KeysError, SessionKeys};
use aws_sdk_dynamodb::types::AttributeValue;
use domain::tenant::Tier;
use switchboard_tests::{Emulator, Stack, scope_of};

fn tenant() -> domain::ids::TenantId {
    domain::ids::TenantId::generate()
}

fn set(namespace: &str, name: &str, value: &[u8]) -> Change {
    Change::set(namespace, name, value.to_vec())
}

#[tokio::test]
async fn values_round_trip_sealed_and_only_under_the_current_lease() {
    let stack = Stack::new(Emulator::shared()).await;
    let (c, r) = (&stack.clients, &stack.resources);
    let keys = SessionKeys::of(c, r);
    let pool = PoolStore::of(c, r);
    let connection = pool.ensure_connection(Tier::Standard, 0).await.expect("connection");
    let (fence, _) =
        pool.acquire(&connection, "host-a", 60_000).await.expect("acquire").expect("free");

    let owner = tenant();
    let scope = scope_of(&owner);
    let ring = keys.open(&scope).await.expect("ring");
    // 3 + 150 values: the second namespace takes two transactions.
    let mut changes = vec![
        set("session", "15551230001.0", b"signal session one"),
        set("session", "15551230002.0", b"signal session two"),
        set("identity", "15551230001.0", &[7u8; 32]),
    ];
    changes.extend((0..150u32).map(|i| set("prekey", &format!("{i:06}"), &i.to_be_bytes())));
    assert_eq!(keys.write(&fence, &ring, &changes).await.expect("write"), Fenced::Written);

    assert_eq!(
        keys.get(&ring, "session", "15551230001.0").await.expect("get").as_deref(),
        Some(&b"signal session one"[..])
    );
    assert_eq!(keys.get(&ring, "session", "nobody").await.expect("get"), None);
    let names: Vec<String> = ["000007", "000149", "999999"].map(String::from).to_vec();
    let many = keys.get_many(&ring, "prekey", &names).await.expect("many");
    assert_eq!(many.len(), 2, "the missing one is left out");
    assert_eq!(many["000149"], 149u32.to_be_bytes());
    assert_eq!(keys.list(&ring, "prekey").await.expect("list").len(), 150);
    assert_eq!(keys.list(&ring, "session").await.expect("list").len(), 2);

    // A removal.
    let removed = Change::remove("session", "15551230002.0");
    assert_eq!(keys.write(&fence, &ring, &[removed]).await.expect("write"), Fenced::Written);
    assert_eq!(keys.list(&ring, "session").await.expect("list").len(), 1);

    // Not in clear in the table.
    let raw = stack.items(&r.pool_table, &format!("TENANT#{owner}"), "WA#session#").await;
    assert_eq!(raw.len(), 1);
    assert!(!format!("{raw:?}").contains("signal session"), "{raw:?}");

    // The same process reopening (another host taking over) reads the same values.
    let again = keys.open(&scope).await.expect("ring again");
    assert_eq!(
        keys.get(&again, "identity", "15551230001.0").await.expect("get"),
        Some(vec![7u8; 32])
    );

    // Another host takes the connection (its lease ran out): the old fence writes nothing.
    let (short, _) =
        pool.acquire(&connection, "host-a", 1).await.expect("re-acquire").expect("own");
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let (newer, _) =
        pool.acquire(&connection, "host-b", 60_000).await.expect("acquire").expect("expired");
    assert!(newer.epoch > short.epoch);
    let stale = [set("session", "15551230001.0", b"written by a paused host")];
    assert_eq!(keys.write(&short, &ring, &stale).await.expect("write"), Fenced::LeaseLost);
    assert_eq!(keys.write(&fence, &ring, &stale).await.expect("write"), Fenced::LeaseLost);
    assert_eq!(
        keys.get(&ring, "session", "15551230001.0").await.expect("get").as_deref(),
        Some(&b"signal session one"[..])
    );
    assert_eq!(keys.write(&newer, &ring, &stale).await.expect("write"), Fenced::Written);

    // Times kept beside values select what an expiry sweep deletes.
    let timed = [
        set("sent", "a", b"old").at(100),
        set("sent", "b", b"edge").at(200),
        set("sent", "c", b"new").at(300),
        set("sent", "d", b"untimed"),
    ];
    assert_eq!(keys.write(&newer, &ring, &timed).await.expect("write"), Fenced::Written);
    let mut due = keys.names_at_most(&ring, "sent", 200).await.expect("due");
    due.sort();
    assert_eq!(due, ["a", "b"]);

    // A value copied into another tenant's partition does not open there.
    let other = tenant();
    let other_ring = keys.open(&scope_of(&other)).await.expect("other ring");
    let mut copied = raw[0].clone();
    copied.insert("pk".into(), AttributeValue::S(format!("TENANT#{other}")));
    stack
        .clients
        .dynamodb
        .put_item()
        .table_name(&r.pool_table)
        .set_item(Some(copied))
        .send()
        .await
        .expect("copy");
    let refused = keys.get(&other_ring, "session", "15551230001.0").await;
    assert!(matches!(refused, Err(KeysError::Envelope(_))), "{:?}", refused.map(|_| ()));

    // Unlinking forgets every value of the session, and only under the lease.
    assert_eq!(keys.forget(&short, &scope).await.expect("forget"), Fenced::LeaseLost);
    assert_eq!(keys.list(&ring, "sent").await.expect("list").len(), 4);
    assert_eq!(keys.forget(&newer, &scope).await.expect("forget"), Fenced::Written);
    for namespace in ["sent", "session", "identity", "prekey"] {
        assert!(keys.list(&ring, namespace).await.expect("list").is_empty(), "{namespace}");
    }
    let others = stack.items(&r.pool_table, &format!("TENANT#{other}"), "WA#").await;
    assert_eq!(others.len(), 1, "not the other tenant's");
    stack.remove().await;
}
