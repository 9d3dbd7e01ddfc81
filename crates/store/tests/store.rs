//! Behaviour of the store against real SQLite files in temporary directories.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use calls::{EndReason, Leg, LegMessage, Side};
use sip::Transport;
use store::{InsertReport, LegQuery, Store, StoreError};

const ALL_END_REASONS: [EndReason; 8] = [
    EndReason::NotAnswered,
    EndReason::Cancel,
    EndReason::Bye,
    EndReason::ByeConfirmed,
    EndReason::AnsweredNoBye,
    EndReason::TimeoutZombie,
    EndReason::TimeoutAbsolute,
    EndReason::EndOfInput,
];

/// Fails to compile when `EndReason` gains a variant, so `ALL_END_REASONS` cannot go stale.
#[allow(dead_code)]
fn all_end_reasons_listed(r: EndReason) {
    match r {
        EndReason::NotAnswered
        | EndReason::Cancel
        | EndReason::Bye
        | EndReason::ByeConfirmed
        | EndReason::AnsweredNoBye
        | EndReason::TimeoutZombie
        | EndReason::TimeoutAbsolute
        | EndReason::EndOfInput => {}
    }
}

const ALL_TRANSPORTS: [Transport; 5] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Tls,
    Transport::Sctp,
    Transport::Ws,
];

/// A leg with every optional field set, varied by `n`.
fn full_leg(n: u32) -> Leg {
    let src_ip: IpAddr = if n.is_multiple_of(2) {
        "2001:db8::a:1".parse().unwrap()
    } else {
        "198.51.100.23".parse().unwrap()
    };
    let dst_ip: IpAddr = if n.is_multiple_of(3) {
        "::ffff:192.0.2.1".parse().unwrap()
    } else {
        "fe80::1".parse().unwrap()
    };
    Leg::builder()
        .call_id(format!("call-{n}@host.example"))
        .caller(format!("+4930{n:06}"))
        .domains("a.example", "b.example")
        .caller_name(Some(format!("Caller \"{n}\" Ünïcode")))
        .called(format!("{n:04}"))
        .called_name(Some("Callee"))
        .from_tag(Some(format!("ft{n}")))
        .to_tag(Some(format!("tt{n}")))
        .start(1_700_000_000_000_000 + i64::from(n) * 1_000_000)
        .answer(Some(1_700_000_000_500_000 + i64::from(n) * 1_000_000))
        .end(1_700_000_060_000_000 + i64::from(n) * 1_000_000)
        .response(200, "OK")
        .end_reason(ALL_END_REASONS[n as usize % ALL_END_REASONS.len()])
        .hangup_by(Some(if n.is_multiple_of(2) {
            Side::Caller
        } else {
            Side::Callee
        }))
        .transport(ALL_TRANSPORTS[n as usize % ALL_TRANSPORTS.len()])
        .src_ip(src_ip)
        .dst_ip(dst_ip)
        .dst_port(u16::MAX)
        .partial(n % 2 == 1)
        .referred_by(Some("<sip:x@a.example>"))
        .refer_to(Some("<sip:y@b.example?Replaces=abc>"))
        .replaces(Some("abc;to-tag=1;from-tag=2"))
        .user_agent(Some("SIPp/3.7"))
        .sip_message_count(7 + n)
        .build()
}

/// A leg with every optional field empty.
fn bare_leg(n: u32) -> Leg {
    Leg {
        caller_name: None,
        called_name: None,
        from_tag: None,
        to_tag: None,
        answer: None,
        last_response: None,
        last_response_text: None,
        hangup_by: None,
        referred_by: None,
        refer_to: None,
        replaces: None,
        user_agent: None,
        caller: String::new(),
        ..full_leg(n)
    }
}

fn message(ts: i64, raw: &[u8]) -> LegMessage {
    LegMessage {
        ts,
        src: "[2001:db8::1]:5061".parse().unwrap(),
        dst: SocketAddr::new("203.0.113.9".parse().unwrap(), 5060),
        transport: Transport::Tcp,
        raw: raw.to_vec(),
    }
}

async fn open(dir: &tempfile::TempDir) -> Store {
    Store::open_sqlite(dir.path().join("data")).await.unwrap()
}

fn strip_messages(legs: &[Leg]) -> Vec<Leg> {
    legs.iter()
        .cloned()
        .map(|mut l| {
            l.messages.clear();
            l
        })
        .collect()
}

#[tokio::test]
async fn every_field_round_trips() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    // Enough legs to cover every end reason and transport, both with and without options.
    let mut legs: Vec<Leg> = (0..16).map(full_leg).collect();
    legs.extend((16..32).map(bare_leg));
    legs[3].last_response = Some(487);
    legs[3].start = i64::MIN / 2; // negative instants are valid micros too
    legs[4].sip_message_count = u32::MAX;
    legs[5].sensor_id = u32::MAX;

    let report = store.insert_legs(&legs).await.unwrap();
    assert_eq!(
        report,
        InsertReport {
            inserted: 32,
            duplicates: 0,
            legs_with_messages: 0
        }
    );

    let mut back = store.legs(&LegQuery::default()).await.unwrap();
    let mut expected = legs.clone();
    expected.sort_by_key(|l| l.start);
    back.sort_by_key(|l| l.start);
    assert_eq!(back, expected);
    let reasons: std::collections::HashSet<_> = back.iter().map(|l| l.end_reason).collect();
    assert_eq!(reasons.len(), ALL_END_REASONS.len());
    assert!(back.iter().any(|l| l.src_ip.is_ipv6()));
    assert!(
        back.iter()
            .any(|l| l.dst_ip == "::ffff:192.0.2.1".parse::<IpAddr>().unwrap())
    );
}

#[tokio::test]
async fn same_batch_twice_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let mut legs: Vec<Leg> = (0..50).map(full_leg).collect();
    for (i, leg) in legs.iter_mut().enumerate().filter(|(i, _)| i % 2 == 0) {
        leg.messages = vec![
            message(1, b"INVITE"),
            message(2, format!("leg {i}").as_bytes()),
        ];
    }

    let first = store.insert_legs(&legs).await.unwrap();
    assert_eq!(first.inserted, 50);
    assert_eq!(first.duplicates, 0);
    assert_eq!(first.legs_with_messages, 25);

    // A changed leg with the same identity is still a duplicate: the first write wins.
    legs[0].caller = "changed".into();
    legs[0].messages.push(message(3, b"BYE"));
    let second = store.insert_legs(&legs).await.unwrap();
    assert_eq!(
        second,
        InsertReport {
            inserted: 0,
            duplicates: 50,
            legs_with_messages: 0
        }
    );
    assert_eq!(store.count_legs().await.unwrap(), 50);

    let stored = store.legs_with_ids(&LegQuery::default()).await.unwrap();
    let first_leg = stored
        .iter()
        .find(|s| s.leg.call_id == legs[0].call_id)
        .unwrap();
    assert_ne!(first_leg.leg.caller, "changed");
    assert_eq!(store.leg_messages(first_leg.id).await.unwrap().len(), 2);
}

#[tokio::test]
async fn duplicates_inside_one_batch_keep_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let mut a = full_leg(1);
    a.messages = vec![message(1, b"first")];
    let mut b = a.clone();
    b.caller = "second".into();
    b.messages = vec![message(1, b"second"), message(2, b"x")];
    let report = store.insert_legs(&[a.clone(), b]).await.unwrap();
    assert_eq!((report.inserted, report.duplicates), (1, 1));
    let stored = store.legs_with_ids(&LegQuery::default()).await.unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].leg.caller, a.caller);
    assert_eq!(store.leg_messages(stored[0].id).await.unwrap(), a.messages);
}

#[tokio::test]
async fn same_call_seen_by_two_sensors_is_two_legs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let a = full_leg(9);
    let mut b = a.clone();
    b.sensor_id = 2; // not registered yet: stored anyway
    let report = store.insert_legs(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(report.inserted, 2);
    assert_eq!(store.count_legs().await.unwrap(), 2);

    let only_2 = store
        .legs(&LegQuery {
            sensor_id: Some(2),
            ..LegQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(only_2, vec![b]);
}

/// The version a fresh database must reach: the highest numbered migration file.
fn latest_migration() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse::<i64>().ok()
        })
        .max()
        .unwrap()
}

#[tokio::test]
async fn fresh_database_is_migrated_and_reopens_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested").join("data");
    let mut store = Store::open_sqlite(&data).await.unwrap();
    assert!(data.join(store::SQLITE_FILE_NAME).is_file());
    assert_eq!(store.schema_version().await.unwrap(), latest_migration());
    assert_eq!(store.count_legs().await.unwrap(), 0);
    store
        .insert_legs(&[full_leg(1), full_leg(2)])
        .await
        .unwrap();
    store.close().await;

    let mut store = Store::open_sqlite(&data).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), latest_migration());
    assert_eq!(store.count_legs().await.unwrap(), 2);
    assert_eq!(store.insert_legs(&[full_leg(1)]).await.unwrap().inserted, 0);
    store.close().await;
}

#[tokio::test]
async fn database_from_a_newer_version_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Store::open_sqlite(&data).await.unwrap().close().await;

    // Pretend a newer sipmeter applied a migration this build does not know.
    use sqlx::Connection;
    let url = format!("sqlite://{}", data.join(store::SQLITE_FILE_NAME).display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (9999, 'future', TRUE, x'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();

    match Store::open_sqlite(&data).await {
        Err(StoreError::Migrate(_)) => {}
        Err(other) => panic!("expected a migration error, got {other:?}"),
        Ok(_) => panic!("a database from the future must not be opened"),
    }
}

#[tokio::test]
async fn unusable_data_dir_is_an_open_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    match Store::open_sqlite(&file).await {
        Err(StoreError::CreateDir { path, .. }) => assert_eq!(path, file),
        Err(other) => panic!("expected CreateDir, got {other:?}"),
        Ok(_) => panic!("opened a file as data directory"),
    }
}

#[tokio::test]
async fn messages_round_trip_byte_exact() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let garbage: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let big: Vec<u8> = (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect();
    let mut leg = full_leg(1);
    leg.messages = vec![
        message(
            10,
            b"INVITE sip:b@b.example SIP/2.0\r\nVia: SIP/2.0/TCP x\r\n\r\nv=0\r\n",
        ),
        message(11, &garbage),
        message(12, b""),
        LegMessage {
            ts: -1,
            src: "192.0.2.1:1".parse().unwrap(),
            dst: "[::1]:65535".parse().unwrap(),
            transport: Transport::Ws,
            raw: big,
        },
    ];
    let without = full_leg(2);
    let report = store.insert_legs(&[leg.clone(), without]).await.unwrap();
    assert_eq!(report.legs_with_messages, 1);

    let stored = store.legs_with_ids(&LegQuery::default()).await.unwrap();
    let with_id = stored
        .iter()
        .find(|s| s.leg.call_id == leg.call_id)
        .unwrap();
    let without_id = stored
        .iter()
        .find(|s| s.leg.call_id != leg.call_id)
        .unwrap();
    // Listing legs does not load messages.
    assert!(with_id.leg.messages.is_empty());
    assert_eq!(store.leg_messages(with_id.id).await.unwrap(), leg.messages);
    assert!(store.leg_messages(without_id.id).await.unwrap().is_empty());
    assert!(store.leg_messages(123_456).await.unwrap().is_empty());
}

#[tokio::test]
async fn batch_larger_than_one_statement() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    // 2500 legs span three statements (the limit allows about 1170 per statement), with
    // messages on some legs in every chunk, including the short last one.
    let legs: Vec<Leg> = (0..2500)
        .map(|n| {
            let mut l = bare_leg(n);
            if n % 100 == 0 {
                l.messages = vec![message(i64::from(n), &n.to_le_bytes())];
            }
            l
        })
        .collect();
    let report = store.insert_legs(&legs).await.unwrap();
    assert_eq!(report.inserted, 2500);
    assert_eq!(report.legs_with_messages, 25);
    assert_eq!(store.count_legs().await.unwrap(), 2500);

    let stored = store.legs_with_ids(&LegQuery::default()).await.unwrap();
    assert_eq!(
        strip_messages(&legs),
        stored.iter().map(|s| s.leg.clone()).collect::<Vec<_>>()
    );
    for (s, l) in stored.iter().zip(&legs) {
        assert_eq!(store.leg_messages(s.id).await.unwrap(), l.messages);
    }

    // Appending a batch that overlaps half of the first one.
    let more: Vec<Leg> = (1250..3750).map(bare_leg).collect();
    let report = store.insert_legs(&more).await.unwrap();
    assert_eq!((report.inserted, report.duplicates), (1250, 1250));
    assert_eq!(store.count_legs().await.unwrap(), 3750);
}

#[tokio::test]
async fn query_filters_and_pages_by_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let mut legs: Vec<Leg> = (0..20).map(full_leg).collect();
    for l in legs.iter_mut().skip(10) {
        l.sensor_id = 3;
    }
    // Insert out of order: results must still come back ordered by start.
    legs.reverse();
    store.insert_legs(&legs).await.unwrap();
    legs.reverse();

    let all = store.legs(&LegQuery::default()).await.unwrap();
    assert_eq!(all, legs);

    let window = store
        .legs(&LegQuery {
            start_from: Some(legs[5].start),
            start_before: Some(legs[15].start),
            ..LegQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(window, legs[5..15]);

    let page = store
        .legs(&LegQuery {
            start_from: Some(legs[5].start),
            sensor_id: Some(3),
            limit: Some(4),
            offset: 2,
            ..LegQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page, legs[12..16]);

    let past_end = store
        .legs(&LegQuery {
            offset: 100,
            ..LegQuery::default()
        })
        .await
        .unwrap();
    assert!(past_end.is_empty());
}

#[tokio::test]
async fn corrupt_message_blob_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut store = Store::open_sqlite(&data).await.unwrap();
    let mut legs: Vec<Leg> = (0..4).map(full_leg).collect();
    for l in &mut legs {
        l.messages = vec![
            message(1, b"INVITE sip:x SIP/2.0\r\n\r\n"),
            message(2, b"ACK"),
        ];
    }
    store.insert_legs(&legs).await.unwrap();
    let ids: Vec<i64> = store
        .legs_with_ids(&LegQuery::default())
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();

    // Damage the blobs the way a disk or a bad tool might, behind the store's back.
    use sqlx::Connection;
    let url = format!("sqlite://{}", data.join(store::SQLITE_FILE_NAME).display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    let damage = [
        "UPDATE leg_messages SET data = substr(data, 1, length(data) - 5) WHERE leg_id = ?",
        "UPDATE leg_messages SET data = x'01deadbeef' WHERE leg_id = ?",
        "UPDATE leg_messages SET data = x'' WHERE leg_id = ?",
        "UPDATE leg_messages SET message_count = 3 WHERE leg_id = ?",
    ];
    for (sql, id) in damage.iter().zip(&ids) {
        let n = sqlx::query(sql).bind(id).execute(&mut conn).await.unwrap();
        assert_eq!(n.rows_affected(), 1);
    }
    conn.close().await.unwrap();

    for id in ids {
        match store.leg_messages(id).await {
            Err(StoreError::CorruptMessages { leg_id, .. }) => assert_eq!(leg_id, id),
            other => panic!("leg {id}: expected CorruptMessages, got {other:?}"),
        }
    }
    // The legs themselves stay readable.
    assert_eq!(store.legs(&LegQuery::default()).await.unwrap().len(), 4);
}

#[tokio::test]
async fn corrupt_leg_row_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut store = Store::open_sqlite(&data).await.unwrap();
    store.insert_legs(&[full_leg(1)]).await.unwrap();

    use sqlx::Connection;
    let url = format!("sqlite://{}", data.join(store::SQLITE_FILE_NAME).display());
    let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
    sqlx::query("UPDATE legs SET end_reason = 'bogus'")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();

    match store.legs(&LegQuery::default()).await {
        Err(StoreError::CorruptLeg { column, .. }) => assert_eq!(column, "end_reason"),
        other => panic!("expected CorruptLeg, got {other:?}"),
    }
}

#[tokio::test]
async fn empty_batch_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    assert_eq!(
        store.insert_legs(&[]).await.unwrap(),
        InsertReport::default()
    );
    assert_eq!(store.count_legs().await.unwrap(), 0);
}

/// The server keeps the store in shared state and calls it from axum handlers and spawned
/// tasks, which requires `Store` and the futures of its methods to be `Send`.
#[allow(dead_code)]
fn futures_are_send(store: &mut Store, legs: &[Leg]) {
    fn send<T: Send>(_: T) {}
    send(store.insert_legs(legs));
    send(store.legs(&LegQuery::default()));
    send(store.legs_with_ids(&LegQuery::default()));
    send(store.leg_messages(1));
    send(store.count_legs());
}

#[test]
fn store_is_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Store>();
    send_sync::<StoreError>();
}

#[tokio::test]
async fn users_are_unique_by_name_and_keep_role_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    assert_eq!(store.count_users().await.unwrap(), 0);
    assert!(store.user_by_name("admin").await.unwrap().is_none());
    assert!(
        store
            .create_user("admin", store::Role::Admin, "$argon2id$x", 7)
            .await
            .unwrap()
    );
    // A second create with the same name changes nothing (first-start creation is repeatable).
    assert!(
        !store
            .create_user("admin", store::Role::Viewer, "$other", 8)
            .await
            .unwrap()
    );
    let u = store.user_by_name("admin").await.unwrap().unwrap();
    assert_eq!(
        (u.role, u.password_hash.as_str(), u.created),
        (store::Role::Admin, "$argon2id$x", 7)
    );
    assert!(store.set_password("admin", "$new").await.unwrap());
    assert!(!store.set_password("nobody", "$new").await.unwrap());
    assert_eq!(
        store
            .user_by_name("admin")
            .await
            .unwrap()
            .unwrap()
            .password_hash,
        "$new"
    );
    assert!(store.user_by_name("Admin").await.unwrap().is_none());
    assert_eq!(store.count_users().await.unwrap(), 1);
    store
        .create_user("bob", store::Role::Viewer, "$b", 9)
        .await
        .unwrap();
    let names: Vec<(String, store::Role)> = store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| (u.name, u.role))
        .collect();
    assert_eq!(
        names,
        vec![
            ("admin".to_string(), store::Role::Admin),
            ("bob".to_string(), store::Role::Viewer)
        ]
    );
    store.close().await;
}

/// No connection checkpoints inside its own commit any more (the leg writer lost a quarter of
/// its time to that): a thread copies the log into the database file while the store is open,
/// and closing leaves no log behind.
#[tokio::test]
async fn log_reaches_the_database_file_while_open_and_is_gone_after_close() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let file = dir.path().join("data").join(store::SQLITE_FILE_NAME);
    let wal = file.with_extension("db-wal");
    let before = std::fs::metadata(&file).unwrap().len();
    let legs: Vec<Leg> = (0..20_000).map(full_leg).collect();
    for batch in legs.chunks(5_000) {
        assert_eq!(store.insert_legs(batch).await.unwrap().inserted, 5_000);
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut size = before;
    while size < before + (1 << 20) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        size = std::fs::metadata(&file).unwrap().len();
    }
    assert!(
        size >= before + (1 << 20),
        "database file {before} -> {size} bytes: the log was not checkpointed while open"
    );
    assert!(wal.exists(), "the log exists while the store is open");
    store.close().await;
    assert!(!wal.exists(), "closing the store leaves its log behind");
    let store = open(&dir).await;
    assert_eq!(store.count_legs().await.unwrap(), 20_000);
    store.close().await;
}

/// Under a steady stream of batches the checkpoint thread alone never copies the whole log, and
/// SQLite only starts the log afresh when all of it was copied: the log must still stay
/// bounded (a bulk load once left gigabytes of it).
#[tokio::test]
async fn log_stays_bounded_under_a_steady_stream_of_batches() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = open(&dir).await;
    let wal = dir
        .path()
        .join("data")
        .join(store::SQLITE_FILE_NAME)
        .with_extension("db-wal");
    // Built first, so that the batches follow each other without a pause.
    let legs: Vec<Leg> = (0..400_000).map(full_leg).collect();
    let mut largest = 0;
    for batch in legs.chunks(10_000) {
        store.insert_legs(batch).await.unwrap();
        largest = largest.max(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0));
    }
    eprintln!("largest log: {largest} bytes");
    assert!(largest < 150 << 20, "the log grew to {largest} bytes");
    store.close().await;
}
