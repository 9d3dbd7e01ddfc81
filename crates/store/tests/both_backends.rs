//! The store's behaviour, proven on both backends: every scenario runs on a fresh SQLite data
//! directory and on a fresh PostgreSQL database (see `common/backends.rs`), and must give the
//! same answers. Expected values come from the legs the test wrote (brute force in Rust), not
//! from either database.

#[path = "common/backends.rs"]
mod backends;
#[path = "common/cdr.rs"]
mod cdr;
mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use backends::{Kind, TestDb};
use calls::{EndReason, Leg, LegMessage, Micros};
use cdr::{brute, sort_key};
use common::{D0, S, leg};
use sip::Transport;
use store::{
    ActiveMode, AlertKind, AlertOutcome, AlertRuleSpec, AlertRuleState, CdrFilter, CdrQuery,
    CdrSort, LegQuery, Match, MatchCount, PageAt, Relation, Role, SensorReport, StoredLeg, Window,
};

const MIN: Micros = 60 * S;
const DAY: Micros = 86_400 * S;

on_both_backends!(
    same_batch_twice_is_stored_once,
    duplicate_inside_a_batch_keeps_the_first_and_the_rest,
    awkward_text_round_trips,
    messages_round_trip_byte_exact,
    encoded_messages_are_stored_as_they_came,
    legs_of_many_days_land_in_day_partitions,
    concurrent_writers_create_the_same_day_once,
    keyset_paging_visits_every_leg_once_in_every_sort,
    filters_match_brute_force_and_count,
    leg_by_id_and_related_legs,
    channel_stats_follow_late_batches_and_deletes,
    outcome_buckets_equal_a_group_by_over_the_legs,
    alerts_round_trip,
    users_round_trip,
    sensors_round_trip,
    schema_is_current_and_reopens,
);

/// Legs of sensor 1 numbered by `ids`, one a second from `D0`, each a minute long.
fn second_apart(ids: std::ops::Range<i64>) -> Vec<Leg> {
    ids.map(|i| {
        leg(
            1,
            &format!("c{i}"),
            "100",
            "200",
            D0 + i * S,
            D0 + i * S + MIN,
        )
    })
    .collect()
}

async fn all_legs(db: &TestDb) -> Vec<Leg> {
    db.store.legs(&LegQuery::default()).await.unwrap()
}

async fn same_batch_twice_is_stored_once(mut db: TestDb) {
    let legs = second_apart(0..50);
    let first = db.store.insert_legs(&legs).await.unwrap();
    assert_eq!((first.inserted, first.duplicates), (50, 0));
    let again = db.store.insert_legs(&legs).await.unwrap();
    assert_eq!((again.inserted, again.duplicates), (0, 50));
    assert_eq!(db.store.count_legs().await.unwrap(), 50);
    assert_eq!(all_legs(&db).await, legs);
    // A batch half known, half new keeps the new half.
    let more = second_apart(25..75);
    let r = db.store.insert_legs(&more).await.unwrap();
    assert_eq!((r.inserted, r.duplicates), (25, 25));
    assert_eq!(db.store.count_legs().await.unwrap(), 75);
}

async fn duplicate_inside_a_batch_keeps_the_first_and_the_rest(mut db: TestDb) {
    let a = leg(1, "a", "100", "200", D0, D0 + MIN);
    let mut a_again = a.clone();
    a_again.caller_name = Some("second copy".into());
    let b = leg(1, "b", "100", "200", D0 + S, D0 + MIN);
    let r = db
        .store
        .insert_legs(&[a.clone(), a_again, b.clone()])
        .await
        .unwrap();
    assert_eq!((r.inserted, r.duplicates), (2, 1));
    assert_eq!(all_legs(&db).await, vec![a, b]);
    // The same Call-ID and start from another sensor is another leg.
    let other = leg(2, "a", "100", "200", D0, D0 + MIN);
    assert_eq!(db.store.insert_legs(&[other]).await.unwrap().inserted, 1);
}

async fn awkward_text_round_trips(mut db: TestDb) {
    let mut l = leg(
        7,
        "id\twith\ttabs\\and\nnewlines\r@x",
        "+49 30\\1",
        "",
        D0,
        D0 + S,
    );
    l.caller_name = Some("Ünïcode \"quoted\" \\N".into());
    l.called_name = Some(String::new());
    l.user_agent = Some("\\N".into());
    l.answer = None;
    l.last_response = None;
    l.last_response_text = None;
    l.end_reason = EndReason::Cancel;
    l.hangup_by = Some(calls::Side::Callee);
    l.transport = Transport::Tls;
    l.src_ip = "2001:db8::1".parse().unwrap();
    l.dst_port = u16::MAX;
    l.partial = true;
    l.refer_to = Some("<sip:y@b?Replaces=abc%40x>".into());
    db.store
        .insert_legs(std::slice::from_ref(&l))
        .await
        .unwrap();
    assert_eq!(all_legs(&db).await, vec![l]);
}

fn message(ts: Micros, raw: &[u8]) -> LegMessage {
    LegMessage {
        ts,
        src: "[2001:db8::1]:5061".parse().unwrap(),
        dst: SocketAddr::new("203.0.113.9".parse().unwrap(), 5060),
        transport: Transport::Tcp,
        raw: raw.to_vec(),
    }
}

/// Each stored leg's messages, in leg order.
async fn stored_messages(db: &TestDb) -> Vec<Vec<calls::LegMessage>> {
    let mut out = Vec::new();
    for l in db.store.legs_with_ids(&LegQuery::default()).await.unwrap() {
        out.push(db.store.leg_messages(l.id).await.unwrap());
    }
    out
}

async fn messages_round_trip_byte_exact(mut db: TestDb) {
    let binary: Vec<u8> = (0..=255u8).cycle().take(3000).collect();
    let mut with = leg(1, "m1", "100", "200", D0, D0 + MIN);
    with.messages = vec![
        message(D0, b"INVITE sip:200@x SIP/2.0\r\nVia: a\tb\\c\r\n\r\n"),
        message(D0 + 1, &binary),
        message(D0 + 2, b""),
    ];
    let without = leg(1, "m2", "100", "200", D0 + S, D0 + MIN);
    let r = db
        .store
        .insert_legs(&[with.clone(), without.clone()])
        .await
        .unwrap();
    assert_eq!((r.inserted, r.legs_with_messages), (2, 1));
    let stored = db.store.legs_with_ids(&LegQuery::default()).await.unwrap();
    assert_eq!(stored_messages(&db).await, [with.messages.clone(), vec![]]);
    // Re-sent: neither the leg nor its messages are written twice.
    let again = db.store.insert_legs(&[with.clone()]).await.unwrap();
    assert_eq!((again.inserted, again.legs_with_messages), (0, 0));
    assert_eq!(
        db.store.leg_messages(stored[0].id).await.unwrap(),
        with.messages
    );
    // Deleting a leg takes its messages with it.
    db.execute(&format!("DELETE FROM legs WHERE id = {}", stored[0].id))
        .await;
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM leg_messages").await, 0);
}

/// A remote sensor's batch: messages already compressed beside the legs, stored as they are,
/// once, and read back like any others; a batch whose blobs do not match its legs is refused.
async fn encoded_messages_are_stored_as_they_came(mut db: TestDb) {
    let messages = vec![
        message(D0, b"INVITE sip:200@x SIP/2.0\r\n\r\n"),
        message(D0 + 5, b"SIP/2.0 200 OK\r\n\r\n"),
    ];
    let blob = msgblob::Encoder::new().unwrap().encode(&messages).unwrap();
    let legs = vec![
        leg(1, "e1", "100", "200", D0, D0 + MIN),
        leg(1, "e2", "100", "200", D0 + S, D0 + MIN),
    ];
    let encoded = vec![
        Some(msgblob::Encoded {
            count: 2,
            blob: blob.clone(),
        }),
        None,
    ];
    let r = db.store.insert_encoded(&legs, &encoded).await.unwrap();
    assert_eq!((r.inserted, r.legs_with_messages), (2, 1));
    assert_eq!(stored_messages(&db).await, [messages, vec![]]);
    let stored = db.store.legs_with_ids(&LegQuery::default()).await.unwrap();
    let stored_blob = db
        .query_i64(&format!(
            "SELECT CAST(length(data) AS BIGINT) FROM leg_messages WHERE leg_id = {}",
            stored[0].id
        ))
        .await;
    assert_eq!(stored_blob, blob.len() as i64, "stored byte for byte");
    let again = db.store.insert_encoded(&legs, &encoded).await.unwrap();
    assert_eq!((again.inserted, again.legs_with_messages), (0, 0));
    assert_eq!(db.query_i64("SELECT COUNT(*) FROM leg_messages").await, 1);
    let err = db
        .store
        .insert_encoded(&legs, &encoded[..1])
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("2 legs came with 1 message blobs"),
        "{err}"
    );
}

async fn legs_of_many_days_land_in_day_partitions(mut db: TestDb) {
    // Around midnight on both sides, far apart, and one before 1970.
    let starts = [D0 - 1, D0, D0 + DAY - 1, D0 + DAY, D0 + 40 * DAY, -DAY / 2];
    let legs: Vec<Leg> = starts
        .iter()
        .enumerate()
        .map(|(i, &t)| leg(1, &format!("p{i}"), "1", "2", t, t + S))
        .collect();
    assert_eq!(db.store.insert_legs(&legs).await.unwrap().inserted, 6);
    let mut expect = legs.clone();
    expect.sort_by_key(|l| l.start);
    assert_eq!(all_legs(&db).await, expect);
    let in_window = db
        .store
        .legs(&LegQuery {
            start_from: Some(D0),
            start_before: Some(D0 + DAY),
            ..LegQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(in_window.len(), 2);
    if db.kind == Kind::Postgres {
        let parts = db
            .query_i64("SELECT COUNT(*) FROM pg_inherits WHERE inhparent = 'legs'::regclass")
            .await;
        assert_eq!(parts, 5, "one partition per UTC day touched");
        let in_day = db.query_i64("SELECT COUNT(*) FROM legs_20261101").await;
        assert_eq!(in_day, 2);
        // A second handle (another process) finds the partitions there and reuses them.
        let mut other = db.open_again().await;
        let l = leg(1, "p-late", "1", "2", D0 + 5, D0 + S);
        assert_eq!(other.insert_legs(&[l]).await.unwrap().inserted, 1);
        other.close().await;
    }
}

async fn concurrent_writers_create_the_same_day_once(db: TestDb) {
    let mut handles = Vec::new();
    for w in 0..4u32 {
        let mut store = db.open_again().await;
        handles.push(tokio::spawn(async move {
            let legs: Vec<Leg> = (0..200)
                .map(|i| {
                    let t = D0 + (i % 3) * DAY + i * S;
                    leg(w + 1, &format!("w{w}-{i}"), "1", "2", t, t + S)
                })
                .collect();
            // Every writer sends its batch twice: the second must be all duplicates.
            let a = store.insert_legs(&legs).await.unwrap();
            let b = store.insert_legs(&legs).await.unwrap();
            store.close().await;
            (a.inserted, b.inserted)
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), (200, 0));
    }
    assert_eq!(db.store.count_legs().await.unwrap(), 800);
}

/// Legs with repeating starts, numbers and codes, so that sorts have ties.
fn sample() -> Vec<Leg> {
    (0..120)
        .map(|i: i64| {
            let mut l = leg(
                1 + (i % 3) as u32,
                &format!("s{i}"),
                &format!("+49{}", 100 + i % 7),
                &format!("{}", 500 + i % 11),
                D0 + (i / 2) * 10 * S,
                D0 + (i / 2) * 10 * S + (i % 5) * MIN,
            );
            if i % 4 == 0 {
                l.answer = None;
                l.last_response = Some(486);
            }
            if i % 9 == 0 {
                l.last_response = None;
            }
            l
        })
        .collect()
}

async fn keyset_paging_visits_every_leg_once_in_every_sort(mut db: TestDb) {
    let legs = sample();
    db.store.insert_legs(&legs).await.unwrap();
    for sort in [
        CdrSort::Start,
        CdrSort::Duration,
        CdrSort::Caller,
        CdrSort::Called,
        CdrSort::Code,
    ] {
        for descending in [true, false] {
            let mut q = CdrQuery {
                sort,
                descending,
                limit: 7,
                ..CdrQuery::default()
            };
            let mut seen: Vec<StoredLeg> = Vec::new();
            let mut pages = Vec::new();
            loop {
                let page = db.store.cdr_page(&q).await.unwrap();
                seen.extend(page.legs.iter().cloned());
                pages.push(page.legs.clone());
                match page.next {
                    Some(c) => q.page = PageAt::After(c),
                    None => break,
                }
            }
            let ids: HashSet<i64> = seen.iter().map(|l| l.id).collect();
            assert_eq!(
                ids.len(),
                legs.len(),
                "{sort:?} desc={descending}: each leg once"
            );
            assert_eq!(seen.len(), legs.len());
            let keys: Vec<((i64, String), i64)> =
                seen.iter().map(|l| (sort_key(l, sort), l.id)).collect();
            let mut sorted = keys.clone();
            sorted.sort();
            if descending {
                sorted.reverse();
            }
            assert_eq!(keys, sorted, "{sort:?} desc={descending}: in order");
            // Walking back from the last page gives the pages before it, in order.
            let last = pages.len() - 1;
            let before = db
                .store
                .cdr_page(&CdrQuery {
                    page: PageAt::Before(
                        store::Cursor::parse(&cursor_token(&pages[last][0], sort), sort).unwrap(),
                    ),
                    ..q.clone()
                })
                .await
                .unwrap();
            assert_eq!(before.legs, pages[last - 1], "{sort:?}: previous page");
        }
    }
}

fn cursor_token(l: &StoredLeg, sort: CdrSort) -> String {
    let (i, s) = sort_key(l, sort);
    match sort {
        CdrSort::Caller | CdrSort::Called => format!("{}.{s}", l.id),
        _ => format!("{}.{i}", l.id),
    }
}

async fn filters_match_brute_force_and_count(mut db: TestDb) {
    let legs = sample();
    db.store.insert_legs(&legs).await.unwrap();
    let filters = [
        CdrFilter::default(),
        CdrFilter {
            start_from: Some(D0 + 100 * S),
            start_before: Some(D0 + 400 * S),
            ..CdrFilter::default()
        },
        CdrFilter {
            caller: Some("+49103".into()),
            ..CdrFilter::default()
        },
        CdrFilter {
            called: Some("51".into()),
            ..CdrFilter::default()
        },
        CdrFilter {
            called: Some("0".into()),
            number_match: Match::Contains,
            ..CdrFilter::default()
        },
        CdrFilter {
            caller: Some("+491".into()),
            called: Some("50".into()),
            sensor_id: Some(2),
            ..CdrFilter::default()
        },
        CdrFilter {
            code: Some(486),
            ..CdrFilter::default()
        },
        CdrFilter {
            answered: Some(false),
            start_from: Some(D0 + 50 * S),
            ..CdrFilter::default()
        },
        CdrFilter {
            answered: Some(true),
            code: Some(200),
            ..CdrFilter::default()
        },
    ];
    for f in filters {
        let expect = brute(&legs, &f);
        let page = db
            .store
            .cdr_page(&CdrQuery {
                filter: f.clone(),
                limit: 1000,
                count: true,
                ..CdrQuery::default()
            })
            .await
            .unwrap();
        let got: HashSet<String> = page.legs.iter().map(|l| l.leg.call_id.clone()).collect();
        assert_eq!(got, expect, "{f:?}");
        assert_eq!(
            page.count,
            Some(MatchCount::Exact(expect.len() as u64)),
            "{f:?}"
        );
    }
}

async fn leg_by_id_and_related_legs(mut db: TestDb) {
    let t = D0 + 3600 * S;
    let a = leg(1, "a", "+420123456001", "123456002", t, t + MIN);
    // The same call seen by another sensor: same dedup key.
    let copy = leg(
        2,
        "a-copy",
        "00420123456001",
        "123456002",
        t + 20_000,
        t + MIN,
    );
    let mut forked = leg(1, "a", "+420123456001", "999000111", t + S, t + MIN);
    forked.from_tag = None;
    let unrelated = leg(1, "z", "555", "666", t, t + MIN);
    db.store
        .insert_legs(&[a, copy, forked, unrelated])
        .await
        .unwrap();
    let all = db.store.legs_with_ids(&LegQuery::default()).await.unwrap();
    let first = all
        .iter()
        .find(|l| l.leg.call_id == "a" && l.leg.called == "123456002")
        .unwrap();
    assert_eq!(db.store.leg(first.id).await.unwrap().as_ref(), Some(first));
    assert_eq!(db.store.leg(-5).await.unwrap(), None);
    let related = db.store.related_legs(first).await.unwrap();
    let names: Vec<(&str, bool)> = related
        .iter()
        .map(|r| {
            (
                r.leg.leg.call_id.as_str(),
                r.relations.contains(&Relation::SameDedupKey),
            )
        })
        .collect();
    assert_eq!(names, vec![("a-copy", true), ("a", false)]);
}

async fn minutes(db: &TestDb) -> Vec<store::MinuteRow> {
    db.store
        .channel_minutes(D0 - DAY, D0 + 10 * DAY)
        .await
        .unwrap()
}

async fn channel_stats_follow_late_batches_and_deletes(mut db: TestDb) {
    let mut legs = Vec::new();
    for day in 0..4 {
        for i in 0..20 {
            let t = D0 + day * DAY + 12 * 60 * MIN + i * 7 * S;
            legs.push(leg(
                1,
                &format!("d{day}-{i}"),
                &format!("{}", 100 + i),
                "200",
                t,
                t + (i + 1) * MIN,
            ));
        }
    }
    db.store.insert_legs(&legs).await.unwrap();
    let first = db
        .store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!((first.days, first.legs), (4, 80));
    // A late sensor's batch for day 2 recomputes that day only.
    let late: Vec<Leg> = (0..10)
        .map(|i| {
            let t = D0 + 2 * DAY + 12 * 60 * MIN + i * S;
            leg(
                2,
                &format!("late{i}"),
                &format!("9{i}"),
                "300",
                t,
                t + 30 * MIN,
            )
        })
        .collect();
    db.store.insert_legs(&late).await.unwrap();
    let up = db
        .store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!((up.days, up.legs), (1, 30));
    let incremental = minutes(&db).await;
    let full = db
        .store
        .recompute_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(full.days, 4);
    assert_eq!(
        minutes(&db).await,
        incremental,
        "incremental = full recompute"
    );
    let day2_peak = |rows: &[store::MinuteRow]| {
        rows.iter()
            .filter(|r| r.start >= D0 + 2 * DAY && r.start < D0 + 3 * DAY)
            .map(|r| r.peak)
            .max()
            .unwrap_or(0)
    };
    // Every leg here has its own caller, so channels(t) is the legs active at t; its peak
    // in a day is reached at some leg's start.
    let truth = |legs: &[Leg]| {
        let day2: Vec<&Leg> = legs
            .iter()
            .filter(|l| l.start >= D0 + 2 * DAY && l.start < D0 + 3 * DAY)
            .collect();
        day2.iter()
            .map(|s| {
                day2.iter()
                    .filter(|l| l.start <= s.start && s.start < l.end)
                    .count() as u32
            })
            .max()
            .unwrap_or(0)
    };
    let mut everything = legs.clone();
    everything.extend(late.iter().cloned());
    assert_eq!(day2_peak(&incremental), truth(&everything));
    assert!(truth(&everything) > truth(&legs));
    // Deleting the late legs by hand makes day 2 stale; the update brings the figures back.
    let deleted = db.execute("DELETE FROM legs WHERE sensor_id = 2").await;
    assert_eq!(deleted, 10);
    let after = db
        .store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(after.days, 1);
    assert_eq!(day2_peak(&minutes(&db).await), truth(&legs));
    // Answered mode counts from the answer on.
    db.store
        .update_channel_stats(ActiveMode::Answered)
        .await
        .unwrap();
    let answered = minutes(&db).await;
    assert!(answered.iter().all(|r| r.peak <= truth(&legs)));
    assert!(!answered.is_empty());
    assert_eq!(
        db.store
            .channel_extent()
            .await
            .unwrap()
            .map(|(a, _)| a / DAY),
        Some(D0 / DAY)
    );
    let t = D0 + 12 * 60 * MIN + 30 * S;
    let active = db.store.legs_active_at(t).await.unwrap();
    let expect = legs.iter().filter(|l| l.start <= t && l.end > t).count();
    assert_eq!(active.len(), expect);
}

/// A small deterministic generator (no dependency for a test).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

type Group = (Option<u16>, bool, &'static str, u64, u64, Option<String>);
type GroupKey = (Option<u16>, bool, &'static str);

/// The truth: GROUP BY (code, answered, end reason) over the legs, in Rust.
fn group_by(legs: &[Leg], w: Window) -> Vec<Group> {
    let mut groups: BTreeMap<GroupKey, (u64, u64, Option<String>)> = BTreeMap::new();
    for l in legs
        .iter()
        .filter(|l| l.start >= w.start && l.start < w.end)
    {
        let g = groups
            .entry((l.last_response, l.answer.is_some(), l.end_reason.as_str()))
            .or_default();
        g.0 += 1;
        g.1 += l.answer.map_or(0, |a| (l.end - a).max(0) as u64);
        g.2 = match (g.2.take(), l.last_response_text.clone()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
    }
    groups
        .into_iter()
        .map(|((c, a, r), (n, s, t))| (c, a, r, n, s, t))
        .collect()
}

async fn outcome_buckets_equal_a_group_by_over_the_legs(mut db: TestDb) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let reasons = [
        EndReason::ByeConfirmed,
        EndReason::Cancel,
        EndReason::NotAnswered,
    ];
    let texts = [
        None,
        Some("OK"),
        Some("Busy Here"),
        Some("busy"),
        Some("Ünavailable"),
    ];
    let mut legs: Vec<Leg> = (0..600)
        .map(|i| {
            let start = D0 + (rng.next() % (3 * DAY as u64)) as i64;
            let mut l = leg(
                1,
                &format!("o{i}"),
                "1",
                "2",
                start,
                start + (rng.next() % 600) as i64 * S,
            );
            l.end_reason = reasons[(rng.next() % 3) as usize];
            l.last_response = [None, Some(200), Some(486), Some(503)][(rng.next() % 4) as usize];
            l.last_response_text = texts[(rng.next() % 5) as usize].map(str::to_string);
            if rng.next().is_multiple_of(3) {
                l.answer = None;
            } else if rng.next().is_multiple_of(5) {
                l.answer = Some(l.end + S); // answered after the end: counts as 0
            }
            l
        })
        .collect();
    for chunk in legs.chunks(97) {
        db.store.insert_legs(chunk).await.unwrap();
    }
    let windows = [
        Window {
            start: D0,
            end: D0 + DAY,
        },
        Window {
            start: D0 + DAY,
            end: D0 + 2 * DAY,
        },
        // Ragged ends (the alert engine's last N minutes), and an empty window.
        Window {
            start: D0 + 7 * MIN + 3,
            end: D0 + 5 * 60 * MIN + 11,
        },
        Window {
            start: D0 + 3 * 60 * MIN,
            end: D0 + 3 * 60 * MIN + 9 * MIN,
        },
        Window {
            start: D0 + 5 * DAY,
            end: D0 + 5 * DAY,
        },
    ];
    let check = |legs: Vec<Leg>, got: Vec<store::DayOutcomes>| {
        for (w, day) in windows.iter().zip(got) {
            assert_eq!(day.window, *w);
            let got: Vec<Group> = day
                .groups
                .iter()
                .map(|g| {
                    (
                        g.last_response,
                        g.answered,
                        g.end_reason.as_str(),
                        g.legs,
                        g.connect_us,
                        g.reason_text.clone(),
                    )
                })
                .collect();
            assert_eq!(got, group_by(&legs, *w), "{w:?}");
        }
    };
    check(legs.clone(), db.store.leg_outcomes(&windows).await.unwrap());
    // Legs deleted by hand: the stale buckets are read from the legs until rebuilt.
    let cut = D0 + DAY / 2;
    db.execute(&format!(
        "DELETE FROM legs WHERE start_us >= {} AND start_us < {}",
        cut,
        cut + 3 * 60 * MIN
    ))
    .await;
    legs.retain(|l| !(l.start >= cut && l.start < cut + 3 * 60 * MIN));
    check(legs.clone(), db.store.leg_outcomes(&windows).await.unwrap());
    // Later batches rebuild them; the answers stay the same.
    for i in 0..3 {
        let extra = leg(
            1,
            &format!("x{i}"),
            "1",
            "2",
            D0 + 4 * DAY + i,
            D0 + 4 * DAY + S,
        );
        db.store
            .insert_legs(std::slice::from_ref(&extra))
            .await
            .unwrap();
        legs.push(extra);
    }
    assert_eq!(
        db.query_i64("SELECT COUNT(*) FROM leg_outcome_stale").await,
        0
    );
    check(legs, db.store.leg_outcomes(&windows).await.unwrap());
}

async fn alerts_round_trip(db: TestDb) {
    let spec = AlertRuleSpec {
        name: "busy".into(),
        kind: AlertKind::FailedRatio,
        enabled: true,
        threshold_percent: 12.5,
        window_minutes: 15,
        min_calls: 20,
        webhook_url: Some("http://127.0.0.1:1/hook".into()),
        email: None,
        renotify_minutes: 0,
    };
    let id = db.store.create_alert_rule(&spec, D0).await.unwrap();
    let other = db
        .store
        .create_alert_rule(
            &AlertRuleSpec {
                name: "ch".into(),
                kind: AlertKind::Channels,
                ..spec.clone()
            },
            D0,
        )
        .await
        .unwrap();
    assert_ne!(id, other);
    let rule = db.store.alert_rule(id).await.unwrap().unwrap();
    assert_eq!(
        (rule.spec.clone(), rule.created, rule.firing),
        (spec.clone(), D0, false)
    );
    let state = AlertRuleState {
        firing: true,
        last_sent: Some(D0 + S),
        last_value: Some("locked".into()),
    };
    db.store.set_alert_rule_state(id, &state).await.unwrap();
    let rule = db.store.alert_rule(id).await.unwrap().unwrap();
    assert_eq!(
        (rule.firing, rule.last_sent, rule.last_value),
        (true, Some(D0 + S), Some("locked".into()))
    );
    assert!(db.store.set_alert_rule_enabled(id, false).await.unwrap());
    assert!(!db.store.alert_rule(id).await.unwrap().unwrap().spec.enabled);
    let changed = AlertRuleSpec {
        threshold_percent: 50.0,
        ..spec.clone()
    };
    assert!(db.store.update_alert_rule(id, &changed).await.unwrap());
    let rule = db.store.alert_rule(id).await.unwrap().unwrap();
    assert_eq!(
        (rule.spec.threshold_percent, rule.firing, rule.last_sent),
        (50.0, false, None)
    );
    assert!(!db.store.update_alert_rule(9999, &changed).await.unwrap());
    for i in 0..5 {
        db.store
            .log_alert(
                D0 + i,
                Some(id),
                "busy",
                "webhook",
                &format!("w{i}"),
                AlertOutcome::Failed,
                Some("refused"),
            )
            .await
            .unwrap();
    }
    db.store
        .log_alert(
            D0 + 9,
            None,
            "gone",
            "-",
            "w9",
            AlertOutcome::Suppressed,
            None,
        )
        .await
        .unwrap();
    assert_eq!(db.store.count_alert_log().await.unwrap(), 6);
    let page = db.store.alert_log(3, 1).await.unwrap();
    let whats: Vec<&str> = page.iter().map(|e| e.what.as_str()).collect();
    assert_eq!(whats, vec!["w4", "w3", "w2"], "newest first, paged");
    assert!(db.store.delete_alert_rule(id).await.unwrap());
    assert!(!db.store.delete_alert_rule(id).await.unwrap());
    assert_eq!(db.store.alert_rules().await.unwrap().len(), 1);
    assert_eq!(
        db.store.count_alert_log().await.unwrap(),
        6,
        "the log outlives the rule"
    );
}

async fn users_round_trip(db: TestDb) {
    assert!(
        db.store
            .create_user("zoe", Role::Viewer, "$argon2id$a", D0)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .create_user("admin", Role::Admin, "$argon2id$b", D0)
            .await
            .unwrap()
    );
    assert!(
        !db.store
            .create_user("admin", Role::Viewer, "x", D0)
            .await
            .unwrap()
    );
    assert!(
        db.store
            .create_user("Admin", Role::Viewer, "y", D0)
            .await
            .unwrap(),
        "case-sensitive"
    );
    let names: Vec<String> = db
        .store
        .list_users()
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name)
        .collect();
    assert_eq!(names, vec!["Admin", "admin", "zoe"]);
    assert!(db.store.set_password("zoe", "$argon2id$c").await.unwrap());
    assert!(!db.store.set_password("nobody", "x").await.unwrap());
    let zoe = db.store.user_by_name("zoe").await.unwrap().unwrap();
    assert_eq!(
        (zoe.role, zoe.password_hash.as_str(), zoe.created),
        (Role::Viewer, "$argon2id$c", D0)
    );
    assert_eq!(db.store.count_users().await.unwrap(), 3);
}

async fn sensors_round_trip(mut db: TestDb) {
    // Legs of an unregistered sensor register it on the fly, without a token.
    db.store
        .insert_legs(&[leg(5, "x", "1", "2", D0, D0 + S)])
        .await
        .unwrap();
    let hash = store::token_hash("secret-a");
    let a = db
        .store
        .create_sensor("site-a", &hash, D0)
        .await
        .unwrap()
        .unwrap();
    assert!(a > 5, "a new sensor never takes an id legs already use");
    assert_eq!(
        db.store.create_sensor("site-a", "other", D0).await.unwrap(),
        None
    );
    let b = db
        .store
        .create_sensor("site-b", &store::token_hash("secret-b"), D0)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(a, b);
    assert_eq!(
        db.store.sensor_by_token(&hash).await.unwrap().unwrap().id,
        a
    );
    let report = SensorReport {
        version: "1.2.3".into(),
        spool_bytes: 4096,
        spool_batches: 2,
        spool_full: true,
    };
    db.store
        .sensor_seen(a, D0 + S, Some(&report), 10)
        .await
        .unwrap();
    db.store.sensor_seen(a, D0 + 2 * S, None, 5).await.unwrap();
    let s = db.store.sensor_by_token(&hash).await.unwrap().unwrap();
    assert_eq!(
        (
            s.last_seen,
            s.legs_received,
            s.version.as_deref(),
            s.spool_bytes,
            s.spool_batches,
            s.spool_full
        ),
        (Some(D0 + 2 * S), 15, Some("1.2.3"), 4096, 2, true)
    );
    let names: Vec<String> = db
        .store
        .list_sensors()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, vec!["site-a", "site-b"], "only sensors with a token");
    assert!(db.store.revoke_sensor(a, D0 + 3 * S).await.unwrap());
    assert!(!db.store.revoke_sensor(a, D0 + 3 * S).await.unwrap());
    assert_eq!(db.store.sensor_by_token(&hash).await.unwrap(), None);
    assert!(db.store.revoke_sensor_by_name("site-b", D0).await.unwrap());
    assert_eq!(
        db.store.list_sensors().await.unwrap().len(),
        2,
        "revoked rows stay"
    );
}

fn latest_migration() -> i64 {
    std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.split('_').next()?.parse().ok()
        })
        .max()
        .unwrap()
}

async fn schema_is_current_and_reopens(mut db: TestDb) {
    assert_eq!(db.store.schema_version().await.unwrap(), latest_migration());
    db.store
        .insert_legs(&[leg(1, "r", "1", "2", D0, D0 + S)])
        .await
        .unwrap();
    let again = db.open_again().await;
    assert_eq!(again.schema_version().await.unwrap(), latest_migration());
    assert_eq!(again.count_legs().await.unwrap(), 1);
    assert_eq!(
        again.backend_name(),
        match db.kind {
            Kind::Sqlite => "sqlite",
            Kind::Postgres => "postgres",
        }
    );
    again.close().await;
}

#[test]
fn both_migration_sets_have_the_same_numbers() {
    let names = |dir: &str| -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(format!("{}/migrations/{dir}", env!("CARGO_MANIFEST_DIR")))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
        v.sort();
        v
    };
    assert_eq!(names("sqlite"), names("postgres"));
}
