//! Outcome aggregates for the daily report, summed by SQLite: legs are counted in the window
//! their start falls in (half-open), grouped by final code, answered and end reason, with the
//! connect time of answered legs. Real SQLite files; expectations computed by hand, or (for
//! generated legs) by the plain GROUP BY over the legs that the materialised 15-minute buckets
//! replace.

use calls::{EndReason, Leg, Micros};
use store::{OutcomeGroup, Store, Window};

const S: Micros = 1_000_000;
const HOUR: Micros = 3600 * S;
const DAY: Micros = 24 * HOUR;
/// 2026-11-01T00:00:00Z
const D0: Micros = 1_793_491_200 * S;

struct Outcome {
    answer_after: Option<Micros>,
    code: Option<u16>,
    text: Option<&'static str>,
    reason: EndReason,
}

const ANSWERED: Outcome = Outcome {
    answer_after: Some(2 * S),
    code: Some(200),
    text: Some("OK"),
    reason: EndReason::ByeConfirmed,
};
const BUSY: Outcome = Outcome {
    answer_after: None,
    code: Some(486),
    text: Some("Busy Here"),
    reason: EndReason::NotAnswered,
};
const CANCELLED: Outcome = Outcome {
    answer_after: None,
    code: Some(487),
    text: Some("Request Terminated"),
    reason: EndReason::Cancel,
};
const ZOMBIE: Outcome = Outcome {
    answer_after: None,
    code: None,
    text: None,
    reason: EndReason::TimeoutZombie,
};

fn leg(id: &str, start: Micros, end: Micros, o: &Outcome) -> Leg {
    Leg::builder()
        .call_id(id)
        .start(start)
        .answer(o.answer_after.map(|a| start + a))
        .end(end)
        .last_response(o.code)
        .last_response_text(o.text)
        .end_reason(o.reason)
        .sip_message_count(7)
        .build()
}

fn group(
    code: Option<u16>,
    text: Option<&str>,
    answered: bool,
    reason: EndReason,
    legs: u64,
    connect_s: u64,
) -> OutcomeGroup {
    OutcomeGroup {
        last_response: code,
        reason_text: text.map(str::to_string),
        answered,
        end_reason: reason,
        legs,
        connect_us: connect_s * S as u64,
    }
}

#[tokio::test]
async fn outcomes_per_window_are_grouped_and_summed_by_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let d1 = D0 + DAY;
    store
        .insert_legs(&[
            // Day 0: two answered calls, connected 60 s and 120 s (answer 2 s after start).
            leg("a1", D0 + HOUR, D0 + HOUR + 62 * S, &ANSWERED),
            leg("a2", D0 + 2 * HOUR, D0 + 2 * HOUR + 122 * S, &ANSWERED),
            // Two busy, one worded differently: the smallest text is reported.
            leg("b1", D0 + 3 * HOUR, D0 + 3 * HOUR + 5 * S, &BUSY),
            leg(
                "b2",
                D0 + 4 * HOUR,
                D0 + 4 * HOUR + 5 * S,
                &Outcome {
                    text: Some("Busy"),
                    ..BUSY
                },
            ),
            leg("c1", D0 + 5 * HOUR, D0 + 5 * HOUR + 9 * S, &CANCELLED),
            // Starts in the last microsecond of day 0, ends on day 1: it is day 0's call.
            leg("z1", d1 - 1, d1 + 300 * S, &ZOMBIE),
            // Day 1 starts exactly at its boundary.
            leg("a3", d1, d1 + 32 * S, &ANSWERED),
            // Answered, but the stored end precedes the answer: counts, with 0 s connected.
            leg("a4", d1 + HOUR, d1 + HOUR + S, &ANSWERED),
            // Day 2: outside both windows.
            leg("late", D0 + 2 * DAY, D0 + 2 * DAY + 10 * S, &BUSY),
        ])
        .await
        .unwrap();

    let day0 = Window { start: D0, end: d1 };
    let day1 = Window {
        start: d1,
        end: d1 + DAY,
    };
    let empty = Window { start: d1, end: d1 };
    let inverted = Window {
        start: d1 + DAY,
        end: d1,
    };
    let out = store
        .leg_outcomes(&[day0, day1, empty, inverted])
        .await
        .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].window, day0);
    assert_eq!(
        out[0].groups,
        vec![
            group(None, None, false, EndReason::TimeoutZombie, 1, 0),
            group(Some(200), Some("OK"), true, EndReason::ByeConfirmed, 2, 180),
            group(Some(486), Some("Busy"), false, EndReason::NotAnswered, 2, 0),
            group(
                Some(487),
                Some("Request Terminated"),
                false,
                EndReason::Cancel,
                1,
                0
            ),
        ]
    );
    assert_eq!(
        out[1].groups,
        vec![group(
            Some(200),
            Some("OK"),
            true,
            EndReason::ByeConfirmed,
            2,
            30
        )]
    );
    assert!(out[2].groups.is_empty());
    assert!(out[3].groups.is_empty());
    assert!(store.leg_outcomes(&[]).await.unwrap().is_empty());
    store.close().await;
}

/// xorshift64: deterministic "random" legs, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }
}

const REASONS: [EndReason; 8] = [
    EndReason::NotAnswered,
    EndReason::Cancel,
    EndReason::Bye,
    EndReason::ByeConfirmed,
    EndReason::AnsweredNoBye,
    EndReason::TimeoutZombie,
    EndReason::TimeoutAbsolute,
    EndReason::EndOfInput,
];

/// A leg with random outcome fields, starting anywhere in the `days` days from D0 (to the
/// microsecond, so bucket edges are crossed and hit exactly now and then).
fn random_leg(rng: &mut Rng, n: u64, days: i64) -> Leg {
    let start = if rng.below(20) == 0 {
        // Exactly on a 15-minute edge.
        D0 + rng.below((days * 96) as u64) as i64 * 15 * 60 * S
    } else {
        D0 + rng.below((days * DAY) as u64) as i64
    };
    let answered = rng.below(3) > 0;
    let answer = answered.then(|| start + rng.below(20 * S as u64) as i64);
    // Now and then an end before the answer (clock trouble): connect time counts as 0.
    let end = start + rng.below(900 * S as u64) as i64;
    let code = rng.pick(&[None, Some(200), Some(404), Some(486), Some(487), Some(503)]);
    let text = code.and_then(|c| match c {
        200 => rng.pick(&[Some("OK"), Some("Ok"), None]),
        486 => rng.pick(&[Some("Busy Here"), Some("Busy"), None]),
        404 => Some("Not Found"),
        _ => rng.pick(&[Some("Other"), None]),
    });
    Leg {
        answer,
        last_response: code,
        last_response_text: text.map(str::to_string),
        end_reason: rng.pick(&REASONS),
        ..leg(&format!("gen-{n}"), start, end, &ANSWERED)
    }
}

/// The daily report's query before the buckets: one GROUP BY over the legs of the window.
fn group_by_over_legs(db: &rusqlite::Connection, w: Window) -> Vec<OutcomeGroup> {
    let mut stmt = db
        .prepare(
            "SELECT last_response, answer_us IS NOT NULL AS answered, end_reason, COUNT(*), \
             SUM(CASE WHEN answer_us IS NULL THEN 0 ELSE MAX(end_us - answer_us, 0) END), \
             MIN(last_response_text) \
             FROM legs WHERE start_us >= ?1 AND start_us < ?2 \
             GROUP BY last_response, answered, end_reason \
             ORDER BY last_response, answered, end_reason",
        )
        .unwrap();
    stmt.query_map((w.start, w.end), |r| {
        Ok(OutcomeGroup {
            last_response: r.get::<_, Option<i64>>(0)?.map(|c| c as u16),
            answered: r.get(1)?,
            end_reason: EndReason::parse(&r.get::<_, String>(2)?).unwrap(),
            legs: r.get::<_, i64>(3)? as u64,
            connect_us: r.get::<_, i64>(4)? as u64,
            reason_text: r.get(5)?,
        })
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// Local days of zones with every kind of offset (whole, half and quarter hours, both signs),
/// and windows that fall on no bucket edge at all (the alert engine's last N minutes).
fn windows(rng: &mut Rng, days: i64) -> Vec<Window> {
    let mut out = Vec::new();
    for offset_s in [0, 19_800, 20_700, -12_600, 45_900, -34_200] {
        let tz = jiff::tz::TimeZone::fixed(jiff::tz::Offset::from_seconds(offset_s).unwrap());
        let first = jiff::civil::date(2026, 10, 31);
        for d in 0..=days {
            let day = first.checked_add(jiff::Span::new().days(d)).unwrap();
            out.push(channels::day_bounds(day, &tz).unwrap());
        }
    }
    for _ in 0..40 {
        let start = D0 - HOUR + rng.below(((days + 1) * DAY) as u64) as i64;
        let len = rng.pick(&[1, 60 * S, 5 * 60 * S, 15 * 60 * S, 47 * 60 * S, 7 * HOUR]);
        out.push(Window {
            start,
            end: start + len + rng.below(S as u64) as i64,
        });
    }
    out.push(Window {
        start: D0 - DAY,
        end: D0 + (days + 1) * DAY,
    });
    out
}

async fn assert_buckets_match_legs(store: &Store, db: &rusqlite::Connection, ws: &[Window]) {
    let got = store.leg_outcomes(ws).await.unwrap();
    assert_eq!(got.len(), ws.len());
    for (day, w) in got.iter().zip(ws) {
        assert_eq!(day.window, *w);
        assert_eq!(day.groups, group_by_over_legs(db, *w), "window {w:?}");
    }
}

fn stale_buckets(db: &rusqlite::Connection) -> i64 {
    db.query_row("SELECT COUNT(*) FROM leg_outcome_stale", [], |r| r.get(0))
        .unwrap()
}

#[tokio::test]
async fn materialised_buckets_equal_a_group_by_over_the_legs() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let db = rusqlite::Connection::open(dir.path().join(store::SQLITE_FILE_NAME)).unwrap();
    let mut rng = Rng(0x5eed_0fb0_c4e7_5a11);
    let days = 3;
    let legs: Vec<Leg> = (0..4000).map(|n| random_leg(&mut rng, n, days)).collect();
    // Batches of uneven sizes, and a part of them sent twice: duplicates must not count.
    let mut at = 0;
    while at < legs.len() {
        let n = (1 + rng.below(700) as usize).min(legs.len() - at);
        store.insert_legs(&legs[at..at + n]).await.unwrap();
        at += n;
    }
    let again = store.insert_legs(&legs[1000..1500]).await.unwrap();
    assert_eq!(again.duplicates, 500);
    let ws = windows(&mut rng, days);
    assert_buckets_match_legs(&store, &db, &ws).await;

    // Deleting and editing legs by hand: the buckets they touch go stale, and reports still
    // equal the legs (stale buckets are read from the legs).
    let deleted = db.execute("DELETE FROM legs WHERE id % 7 = 0", []).unwrap();
    assert!(deleted > 400);
    db.execute(
        "UPDATE legs SET last_response = 404, last_response_text = 'Not Here' WHERE id % 11 = 0",
        [],
    )
    .unwrap();
    db.execute(
        "UPDATE legs SET start_us = start_us + 3600000000 WHERE id % 13 = 0",
        [],
    )
    .unwrap();
    let stale = stale_buckets(&db);
    assert!(stale > 8, "{stale} stale buckets");
    assert_buckets_match_legs(&store, &db, &ws).await;

    // Each insert transaction rebuilds a few stale buckets; until none is left.
    let mut n = 10_000;
    let mut batches = 0;
    while stale_buckets(&db) > 0 {
        let batch: Vec<Leg> = (0..50)
            .map(|_| {
                n += 1;
                random_leg(&mut rng, n, days)
            })
            .collect();
        store.insert_legs(&batch).await.unwrap();
        batches += 1;
        assert!(batches < 1000, "stale buckets are never rebuilt");
    }
    assert!(batches > 1, "the rebuild is spread over batches");
    assert_buckets_match_legs(&store, &db, &ws).await;
    store.close().await;
}

#[tokio::test]
async fn an_existing_database_is_backfilled_by_the_migration() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let mut rng = Rng(42);
    let legs: Vec<Leg> = (0..1500).map(|n| random_leg(&mut rng, n, 2)).collect();
    store.insert_legs(&legs).await.unwrap();
    store.close().await;
    // Back to the schema before the buckets (as a database of the previous release), then
    // open it again: the migration must fill the buckets from the stored legs.
    let db = rusqlite::Connection::open(dir.path().join(store::SQLITE_FILE_NAME)).unwrap();
    db.execute_batch(
        "DELETE FROM leg_outcome_buckets; \
         DROP TRIGGER legs_deleted_mark_outcomes_stale; \
         DROP TRIGGER legs_updated_mark_outcomes_stale; \
         DROP TABLE leg_outcome_stale; DROP TABLE leg_outcome_buckets; \
         DROP INDEX legs_caller_seg; DROP INDEX legs_called_seg; \
         CREATE INDEX legs_end_us ON legs (end_us); CREATE INDEX legs_caller ON legs (caller); \
         CREATE INDEX legs_called ON legs (called); \
         DELETE FROM _sqlx_migrations WHERE version IN (6, 9);",
    )
    .unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    let buckets: i64 = db
        .query_row("SELECT COUNT(*) FROM leg_outcome_buckets", [], |r| r.get(0))
        .unwrap();
    assert!(buckets > 100, "{buckets} bucket rows");
    let ws = windows(&mut rng, 2);
    assert_buckets_match_legs(&store, &db, &ws).await;
    store.close().await;
}
