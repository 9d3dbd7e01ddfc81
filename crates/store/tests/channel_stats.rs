//! Channel statistics kept by the store: incremental updates after each batch equal a full
//! recompute, late legs from another sensor update the days they fall in, and the mode is
//! honoured. Real SQLite files.

mod common;

use calls::Micros;
use common::{D0, S, leg};
use store::{ActiveMode, MinuteRow, Store};

const MIN: Micros = 60 * S;
const DAY: Micros = 86_400 * S;

async fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_sqlite(dir.path()).await.unwrap();
    (dir, store)
}

fn peak_of(rows: &[MinuteRow]) -> u32 {
    rows.iter().map(|r| r.peak).max().unwrap_or(0)
}

#[tokio::test]
async fn the_same_call_on_two_sensors_is_one_channel() {
    let (_d, mut store) = open().await;
    let t = D0 + 10 * MIN;
    store
        .insert_legs(&[
            leg(1, "a", "+420123456001", "123456002", t, t + 5 * MIN),
            leg(
                2,
                "a-copy",
                "00420123456001",
                "123456002",
                t + 20_000,
                t + 5 * MIN,
            ),
            leg(1, "b", "111", "222", t + MIN, t + 2 * MIN),
        ])
        .await
        .unwrap();
    let up = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(up.days, 1);
    assert_eq!(up.legs, 3);
    let rows = store.channel_minutes(D0, D0 + DAY).await.unwrap();
    assert_eq!(
        peak_of(&rows),
        2,
        "a and its copy merge; b is another channel"
    );
    let minute_11 = rows.iter().find(|r| r.start == t + MIN).unwrap();
    assert_eq!(minute_11.peak, 2);
    assert_eq!(minute_11.peak_at, t + MIN);
    // Nothing new: nothing recomputed.
    let again = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(again.days, 0);
}

#[tokio::test]
async fn a_late_sensor_updates_only_the_days_it_falls_in() {
    let (_d, mut store) = open().await;
    let mut legs = Vec::new();
    for day in 0..5 {
        let t = D0 + day * DAY + 12 * 60 * MIN;
        legs.push(leg(1, &format!("d{day}"), "100", "200", t, t + 10 * MIN));
    }
    store.insert_legs(&legs).await.unwrap();
    let first = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(first.days, 5);
    let day2 = D0 + 2 * DAY;
    assert_eq!(
        peak_of(&store.channel_minutes(day2, day2 + DAY).await.unwrap()),
        1
    );

    // Sensor 3 was offline; its legs of day 2 arrive now, overlapping day 2's call but with
    // other numbers.
    let t = day2 + 12 * 60 * MIN + MIN;
    store
        .insert_legs(&[
            leg(3, "late-1", "300", "400", t, t + MIN),
            leg(3, "late-2", "500", "600", t, t + 2 * MIN),
        ])
        .await
        .unwrap();
    let late = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(late.days, 1, "only day 2 is recomputed");
    assert_eq!(late.legs, 3, "from all sensors' legs of that day");
    assert_eq!(
        peak_of(&store.channel_minutes(day2, day2 + DAY).await.unwrap()),
        3
    );
    let day1 = D0 + DAY;
    assert_eq!(
        peak_of(&store.channel_minutes(day1, day1 + DAY).await.unwrap()),
        1
    );
}

#[tokio::test]
async fn a_leg_over_midnight_counts_on_both_days_and_long_legs_are_found() {
    let (_d, mut store) = open().await;
    let t = D0 + DAY - 90 * MIN;
    store
        .insert_legs(&[leg(1, "long", "1", "2", t, t + 3 * 3600 * S)])
        .await
        .unwrap();
    store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    let next_day = store.channel_minutes(D0 + DAY, D0 + 2 * DAY).await.unwrap();
    assert_eq!(next_day.first().map(|r| r.start), Some(D0 + DAY));
    assert_eq!(
        next_day.len(),
        90,
        "the leg's last 90 minutes fall on the next day"
    );
    let active = store.legs_active_at(D0 + DAY + 60 * MIN).await.unwrap();
    assert_eq!(active.len(), 1);
    assert_eq!(active[0].leg.call_id, "long");
    assert!(
        store
            .legs_active_at(t + 3 * 3600 * S)
            .await
            .unwrap()
            .is_empty(),
        "half-open"
    );
}

#[tokio::test]
async fn incremental_updates_equal_a_full_recompute() {
    let (_d, mut store) = open().await;
    // Deterministic pseudo-random legs over three days, arriving in shuffled batches.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut legs = Vec::new();
    for i in 0..600 {
        let start = D0 + (next() % (3 * DAY as u64)) as i64;
        let dur = (next() % (40 * MIN as u64)) as i64;
        let a = format!("4420{}", next() % 40);
        let b = format!("4430{}", next() % 40);
        legs.push(leg(
            1 + (i % 3) as u32,
            &format!("c{i}"),
            &a,
            &b,
            start,
            start + dur,
        ));
    }
    for batch in legs.chunks(97) {
        store.insert_legs(batch).await.unwrap();
        store
            .update_channel_stats(ActiveMode::Signalling)
            .await
            .unwrap();
    }
    let incremental = store.channel_minutes(D0 - DAY, D0 + 5 * DAY).await.unwrap();
    let full = store
        .recompute_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert!(full.days >= 3);
    let recomputed = store.channel_minutes(D0 - DAY, D0 + 5 * DAY).await.unwrap();
    assert_eq!(incremental, recomputed);
    assert!(peak_of(&recomputed) > 1);
}

#[tokio::test]
async fn answered_mode_recomputes_and_ignores_ringing_time() {
    let (_d, mut store) = open().await;
    let t = D0 + 60 * MIN;
    let mut unanswered = leg(1, "u", "1", "2", t, t + 30 * S);
    unanswered.answer = None;
    store
        .insert_legs(&[unanswered, leg(1, "a", "3", "4", t, t + MIN)])
        .await
        .unwrap();
    store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    let rows = store.channel_minutes(D0, D0 + DAY).await.unwrap();
    assert_eq!(peak_of(&rows), 2);
    assert_eq!(rows[0].peak_at, t);
    let up = store
        .update_channel_stats(ActiveMode::Answered)
        .await
        .unwrap();
    assert_eq!(up.days, 1, "a mode change recomputes");
    let rows = store.channel_minutes(D0, D0 + DAY).await.unwrap();
    assert_eq!(peak_of(&rows), 1);
    assert_eq!(rows[0].peak_at, t + S, "from the answer on");
}

#[tokio::test]
async fn duplicate_batches_do_not_mark_anything_stale() {
    let (_d, mut store) = open().await;
    let batch = [leg(1, "a", "1", "2", D0, D0 + MIN)];
    store.insert_legs(&batch).await.unwrap();
    store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    store.insert_legs(&batch).await.unwrap();
    let up = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(up.days, 0);
}

#[tokio::test]
async fn deleting_legs_by_hand_is_reflected_at_the_next_update() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let t = D0 + 60 * MIN;
    store
        .insert_legs(&[
            leg(1, "a", "1", "2", t, t + MIN),
            leg(1, "b", "3", "4", t, t + MIN),
        ])
        .await
        .unwrap();
    store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(
        peak_of(&store.channel_minutes(D0, D0 + DAY).await.unwrap()),
        2
    );
    store.close().await;

    // An operator deletes CDRs with another SQLite client.
    let path = dir.path().join(store::SQLITE_FILE_NAME);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("DELETE FROM legs WHERE call_id = 'b'", [])
        .unwrap();
    drop(conn);

    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let up = store
        .update_channel_stats(ActiveMode::Signalling)
        .await
        .unwrap();
    assert_eq!(up.days, 1);
    assert_eq!(
        peak_of(&store.channel_minutes(D0, D0 + DAY).await.unwrap()),
        1
    );
}
