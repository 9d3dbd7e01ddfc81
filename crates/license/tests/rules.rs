//! The rules of SPEC §3 as tables: the over-limit timeline, subscription dates, the
//! effective limit and the combined status, plus property tests that the outcome depends on
//! the inputs only.

mod common;

use common::*;
use license::jiff::ToSpan;
use license::jiff::civil::{Date, date};
use license::{
    Binding, DailyPeak, DatePhase, Grant, HwidSource, LicenseFile, LicenseTerms, LockReason, Mode,
    OverLimit, ResolvedHwid, State, Status, StatusInput, date_status, effective_limit,
    over_limit_timeline, status,
};
use proptest::prelude::*;

const TODAY: Date = date(2026, 3, 20);

fn day(offset: i64) -> Date {
    TODAY.checked_add(offset.days()).unwrap()
}

/// Peaks from a pattern, one character per day, the last one being today:
/// `X` over the limit of 100 (150), `.` within (50), `=` exactly at the limit, `?` no data.
fn pattern(p: &str) -> Vec<DailyPeak> {
    let n = p.chars().count() as i64;
    p.chars()
        .enumerate()
        .filter_map(|(i, c)| {
            let peak = match c {
                'X' => 150,
                '.' => 50,
                '=' => 100,
                _ => return None,
            };
            Some(DailyPeak {
                date: day(i as i64 - (n - 1)),
                peak,
            })
        })
        .collect()
}

#[test]
fn timeline_boundaries() {
    let x = |n: usize| "X".repeat(n);
    // (pattern ending today, N, state, lock date as an offset from today)
    let cases: Vec<(String, u32, OverLimit, Option<i64>)> = vec![
        ("".into(), 0, OverLimit::Ok, None),
        (".".into(), 0, OverLimit::Ok, None),
        ("X.".into(), 1, OverLimit::Grace, Some(13)),
        ("X?".into(), 1, OverLimit::Grace, Some(13)),
        (".X".into(), 1, OverLimit::Grace, Some(14)),
        ("XX".into(), 2, OverLimit::Grace, Some(13)),
        (format!("{}.", x(3)), 3, OverLimit::Grace, Some(11)),
        (x(3), 3, OverLimit::Grace, Some(12)),
        // Day 3 -> 4: lockdown starts.
        (format!("{}.", x(4)), 4, OverLimit::Lockdown, Some(10)),
        (x(4), 4, OverLimit::Lockdown, Some(11)),
        // Day 14 -> 15: locked.
        (format!("{}.", x(14)), 14, OverLimit::Lockdown, Some(0)),
        (x(14), 14, OverLimit::Lockdown, Some(1)),
        (x(15), 15, OverLimit::Locked, Some(0)),
        (format!("{}.", x(15)), 15, OverLimit::Locked, Some(-1)),
        (format!("{}.", x(20)), 20, OverLimit::Locked, Some(-6)),
        // A good day resets the streak; so does a day without data; a peak equal to the
        // limit is not over it.
        (
            format!("{}.{}.", x(10), x(3)),
            3,
            OverLimit::Grace,
            Some(11),
        ),
        (
            format!("{}?{}.", x(10), x(3)),
            3,
            OverLimit::Grace,
            Some(11),
        ),
        (
            format!("{}={}.", x(10), x(3)),
            3,
            OverLimit::Grace,
            Some(11),
        ),
        (format!("{}.X", x(19)), 1, OverLimit::Grace, Some(14)),
        (format!("{}.", x(19)) + ".", 0, OverLimit::Ok, None),
    ];
    for (p, n, state, lock) in cases {
        let t = over_limit_timeline(&pattern(&p), 100, TODAY);
        assert_eq!(
            (t.days_over, t.state),
            (n, state),
            "pattern {p:?}: {}",
            t.reason
        );
        assert_eq!(t.lock_date, lock.map(day), "pattern {p:?}");
        assert_eq!(t.days_until_lock, lock, "pattern {p:?}");
        assert_eq!(t.offending_days.len() as u32, n);
        assert!(t.offending_days.iter().all(|d| d.peak > 100));
        assert!(
            t.offending_days
                .windows(2)
                .all(|w| w[1].date == w[0].date.tomorrow().unwrap())
        );
        if n > 0 {
            assert!(
                t.reason.contains(&format!("{n} consecutive day")),
                "{}",
                t.reason
            );
        }
    }
}

#[test]
fn timeline_reason_names_days_countdown_and_lock_date() {
    let t = over_limit_timeline(&pattern("XXXXX."), 100, TODAY);
    assert_eq!(t.state, OverLimit::Lockdown);
    assert!(
        t.reason.contains("2026-03-15 to 2026-03-19"),
        "{}",
        t.reason
    );
    assert!(t.reason.contains("locks on 2026-03-29"), "{}", t.reason);
    assert!(t.reason.contains("highest 150"), "{}", t.reason);
    let ok = over_limit_timeline(&pattern("...."), 100, TODAY);
    assert!(ok.reason.contains("within the limit of 100"));
}

#[test]
fn a_bigger_limit_unlocks_at_once_and_the_same_days_relock_at_a_lower_one() {
    let peaks = pattern(&"X".repeat(30));
    assert_eq!(
        over_limit_timeline(&peaks, 100, TODAY).state,
        OverLimit::Locked
    );
    assert_eq!(over_limit_timeline(&peaks, 150, TODAY).state, OverLimit::Ok);
    assert_eq!(
        over_limit_timeline(&peaks, 149, TODAY).state,
        OverLimit::Locked
    );
    // Deleted/recomputed CDRs: the same days with lower peaks are re-evaluated.
    let recomputed: Vec<DailyPeak> = peaks.iter().map(|p| DailyPeak { peak: 90, ..*p }).collect();
    assert_eq!(
        over_limit_timeline(&recomputed, 100, TODAY).state,
        OverLimit::Ok
    );
}

fn with_dates(formal_end: Date, cancelled: bool, trial: bool, emergency: bool) -> LicenseTerms {
    LicenseTerms {
        formal_end,
        grace_end: license::grace_end_for(formal_end, cancelled || trial || emergency),
        cancelled,
        trial,
        emergency,
        ..terms()
    }
}

#[test]
fn date_boundaries() {
    let normal = with_dates(date(2026, 12, 31), false, false, false);
    assert_eq!(normal.grace_end, date(2027, 1, 20));
    let cancelled = with_dates(date(2026, 12, 31), true, false, false);
    let trial = with_dates(date(2026, 3, 31), false, true, false);
    let emergency = with_dates(date(2026, 3, 31), false, false, true);
    use DatePhase::*;
    let cases = [
        (&normal, date(2026, 11, 30), Active),
        (&normal, date(2026, 12, 1), ExpiringSoon),
        (&normal, date(2026, 12, 31), ExpiringSoon),
        (&normal, date(2027, 1, 1), RenewalPending),
        (&normal, date(2027, 1, 20), RenewalPending),
        (&normal, date(2027, 1, 21), Expired),
        // A cancelled subscription ends at the formal end: no grace.
        (&cancelled, date(2026, 12, 31), ExpiringSoon),
        (&cancelled, date(2027, 1, 1), Expired),
        // Trials and emergency trials expire the same way.
        (&trial, date(2026, 3, 1), ExpiringSoon),
        (&trial, date(2026, 3, 31), ExpiringSoon),
        (&trial, date(2026, 4, 1), Expired),
        (&emergency, date(2026, 3, 31), ExpiringSoon),
        (&emergency, date(2026, 4, 1), Expired),
    ];
    for (t, today, phase) in cases {
        let d = date_status(t, today);
        assert_eq!(
            d.phase, phase,
            "{today} cancelled={} trial={}",
            t.cancelled, t.trial
        );
        assert_eq!(d.warning.is_some(), phase != Active);
    }
    let d = date_status(&normal, date(2027, 1, 5));
    assert_eq!(d.days_to_access_end, 15);
    assert!(d.warning.unwrap().contains("renewal pending"));
    let d = date_status(&emergency, date(2026, 3, 30));
    assert!(
        d.warning
            .unwrap()
            .starts_with("emergency trial ends after 2026-03-31 (1 day left)")
    );
}

#[test]
fn effective_limit_table() {
    let mut t = terms();
    t.grants = vec![
        Grant::Increase {
            channels: 200,
            start: date(2026, 3, 10),
            end: date(2026, 3, 20),
        },
        Grant::Increase {
            channels: 50,
            start: date(2026, 3, 1),
            end: date(2026, 3, 31),
        },
    ];
    let cases = [
        (None, date(2026, 3, 15), None, 10),
        (None, date(2026, 3, 15), Some(5), 5),
        (Some(&t), date(2026, 3, 9), None, 100),
        (Some(&t), date(2026, 3, 10), None, 200),
        (Some(&t), date(2026, 3, 20), None, 200),
        (Some(&t), date(2026, 3, 21), None, 100),
        (Some(&t), date(2026, 3, 21), Some(80), 80),
        (Some(&t), date(2026, 3, 15), Some(150), 150),
        (Some(&t), date(2026, 3, 15), Some(300), 200),
    ];
    for (terms, today, op, want) in cases {
        assert_eq!(
            effective_limit(terms, today, op).effective,
            want,
            "{today} op={op:?}"
        );
    }
}

fn hwid() -> ResolvedHwid {
    ResolvedHwid {
        hwid: this_hwid(),
        source: HwidSource::MachineId,
    }
}

fn run(file: Option<&str>, peaks: &[DailyPeak], operator: Option<u32>, today: Date) -> Status {
    let ring = keyring();
    status(&StatusInput {
        license: file.map(|text| LicenseFile { name: FILE, text }),
        keyring: &ring,
        hwid: hwid(),
        domain: None,
        now: noon(today),
        time_zone: &UTC,
        high_water: None,
        operator_limit: operator,
        daily_peaks: peaks,
        superseded: None,
    })
}

#[test]
fn status_evaluation_mode() {
    let s = run(None, &[], None, TODAY);
    assert_eq!(
        (s.mode, s.state, s.limit.effective),
        (Mode::Evaluation, State::Ok, 10)
    );
    assert!(s.warnings[0].contains("evaluation mode"));
    assert!(s.features.gui && s.features.reports && s.features.ingest);

    let busy: Vec<DailyPeak> = (0..20)
        .map(|i| DailyPeak {
            date: day(-i),
            peak: 11,
        })
        .collect();
    let s = run(None, &busy, None, TODAY);
    assert_eq!(
        (s.state, s.lock_reason.clone()),
        (State::Locked, Some(LockReason::OverLimit))
    );
    let f = s.features;
    assert!(!f.gui && !f.alerts && !f.reports && !f.csv_export && !f.data_api);
    assert!(f.ingest, "ingest never stops");
}

#[test]
fn status_over_limit_unlocks_with_a_bigger_key_or_a_temporary_increase() {
    // Over 150 every day from 20 days ago to 8 days ahead (future days count once reached).
    let peaks: Vec<DailyPeak> = (-20..=8)
        .map(|i| DailyPeak {
            date: day(i),
            peak: 150,
        })
        .collect();
    let file = signed(&terms());
    let s = run(Some(&file), &peaks, None, TODAY);
    assert_eq!((s.mode, s.state), (Mode::Licensed, State::Locked));
    assert_eq!(s.timeline.days_over, 21);
    assert!(s.warnings.iter().any(|w| w.contains("locked since")));

    let mut bigger = terms();
    bigger.channels = 200;
    let s = run(Some(&signed(&bigger)), &peaks, None, TODAY);
    assert_eq!(s.state, State::Ok);
    assert!(s.features.gui);

    let mut increased = terms();
    increased.grants = vec![Grant::Increase {
        channels: 160,
        start: TODAY,
        end: day(7),
    }];
    let s = run(Some(&signed(&increased)), &peaks, None, TODAY);
    assert_eq!(
        (s.state, s.limit.effective, s.limit.temporary_increase),
        (State::Ok, 160, Some(160))
    );
    assert_eq!(s.active_grants.len(), 1);
    // When the increase runs out, the same history locks again.
    let s = run(Some(&signed(&increased)), &peaks, None, day(8));
    assert_eq!(s.state, State::Locked);

    // The operator's lower limit: lockdown; raising it to the entitlement unlocks.
    let mut big = terms();
    big.channels = 500;
    let recent: Vec<DailyPeak> = (1..=5)
        .map(|i| DailyPeak {
            date: day(-i),
            peak: 150,
        })
        .collect();
    let s = run(Some(&signed(&big)), &recent, Some(120), TODAY);
    assert_eq!((s.state, s.limit.effective), (State::Lockdown, 120));
    assert!(s.warnings.iter().any(|w| w.contains("channel_limit 120")));
    assert_eq!(
        run(Some(&signed(&big)), &recent, Some(500), TODAY).state,
        State::Ok
    );
}

#[test]
fn status_expiry_renewal_and_invalid_files() {
    let normal = with_dates(date(2026, 12, 31), false, false, false);
    let file = signed(&normal);
    let s = run(Some(&file), &[], None, date(2027, 1, 10));
    assert_eq!((s.state, s.lock_reason.clone()), (State::Ok, None));
    assert!(s.warnings.iter().any(|w| w.contains("renewal pending")));
    assert!(s.features.reports);

    let s = run(Some(&file), &[], None, date(2027, 1, 21));
    assert_eq!(
        (s.state, s.lock_reason.clone()),
        (State::Locked, Some(LockReason::Expired))
    );
    assert_eq!(s.mode, Mode::Licensed);
    assert_eq!(s.errors[0].code, "expired");
    assert!(
        s.errors[0]
            .message
            .starts_with("FAILED license file license.key expired")
    );
    assert!(
        s.license.is_some() && s.dates.is_some(),
        "expired still shows its terms"
    );

    let cancelled = signed(&with_dates(date(2026, 12, 31), true, false, false));
    assert_eq!(
        run(Some(&cancelled), &[], None, date(2026, 12, 31)).state,
        State::Ok
    );
    let s = run(Some(&cancelled), &[], None, date(2027, 1, 1));
    assert_eq!(s.lock_reason, Some(LockReason::Expired));

    let mut moved = terms();
    moved.binding = Binding::Hwid(other_hwid());
    let s = run(Some(&signed(&moved)), &[], None, TODAY);
    assert_eq!((s.mode, s.state), (Mode::Invalid, State::Locked));
    assert_eq!(
        s.lock_reason,
        Some(LockReason::Invalid {
            code: "another_hwid".into()
        })
    );
    assert!(
        s.errors[0]
            .message
            .starts_with("license file license.key is for another hwid")
    );
    assert!(s.license.is_none());
    assert!(s.features.ingest && !s.features.gui);
}

#[test]
fn status_concurrent_grant_refresh_and_high_water() {
    let mut t = terms();
    t.grants = vec![Grant::Concurrent {
        systems: 2,
        until: day(3),
    }];
    t.refresh_by = Some(ts(day(-1)));
    let file = signed(&t);
    let s = run(Some(&file), &[], None, TODAY);
    assert_eq!(s.concurrent_systems, 2);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("refreshed from the portal"))
    );
    assert_eq!(run(Some(&file), &[], None, day(4)).concurrent_systems, 1);

    let ring = keyring();
    let input = |hw: Option<i64>| StatusInput {
        license: Some(LicenseFile {
            name: FILE,
            text: &file,
        }),
        keyring: &ring,
        hwid: hwid(),
        domain: None,
        now: noon(TODAY),
        time_zone: &UTC,
        high_water: hw,
        operator_limit: None,
        daily_peaks: &[],
        superseded: None,
    };
    assert_eq!(status(&input(None)).high_water, noon(TODAY));
    assert_eq!(
        status(&input(Some(noon(TODAY) + 1000))).high_water,
        noon(TODAY) + 1000
    );
    let set_back = status(&input(Some(noon(day(2)))));
    assert_eq!(set_back.errors[0].code, "clock_set_back");
    assert_eq!(set_back.state, State::Locked);
    assert_eq!(
        set_back.high_water,
        noon(day(2)),
        "the mark never goes down"
    );
}

#[test]
fn the_license_time_zone_decides_which_day_it_is() {
    // 2026-12-31T23:30Z is already 2027-01-01 in Tokyo: a cancelled license is expired there.
    let cancelled = signed(&with_dates(date(2026, 12, 31), true, false, false));
    let ring = keyring();
    let tokyo = license::jiff::tz::TimeZone::fixed(license::jiff::tz::offset(9));
    let now = noon(date(2026, 12, 31)) + 11 * 3_600_000_000 + 1_800_000_000;
    let mk = |tz| {
        status(&StatusInput {
            license: Some(LicenseFile {
                name: FILE,
                text: &cancelled,
            }),
            keyring: &ring,
            hwid: hwid(),
            domain: None,
            now,
            time_zone: tz,
            high_water: None,
            operator_limit: None,
            daily_peaks: &[],
            superseded: None,
        })
    };
    assert_eq!(mk(&UTC).state, State::Ok);
    assert_eq!(mk(&tokyo).lock_reason, Some(LockReason::Expired));
}

/// Reference N: the rule of SPEC §3 written the slow, obvious way.
fn reference_n(over: &[bool]) -> u32 {
    // over[last] is today.
    let (today, past) = over.split_last().unwrap();
    let streak = past.iter().rev().take_while(|&&o| o).count() as u32;
    streak + u32::from(*today)
}

proptest! {
    #[test]
    fn timeline_matches_the_reference_and_ignores_order_duplicates_and_future(
        peaks in proptest::collection::vec(0u32..200, 1..40),
        limit in 1u32..200,
        seed in any::<u64>(),
    ) {
        let n = peaks.len() as i64;
        let days: Vec<DailyPeak> = peaks.iter().enumerate()
            .map(|(i, &p)| DailyPeak { date: day(i as i64 - (n - 1)), peak: p })
            .collect();
        let t = over_limit_timeline(&days, limit, TODAY);
        let over: Vec<bool> = peaks.iter().map(|&p| p > limit).collect();
        prop_assert_eq!(t.days_over, reference_n(&over));

        // Shuffled, with lower duplicates and future days added: the same answer.
        let mut noisy = days.clone();
        noisy.extend(days.iter().map(|d| DailyPeak { peak: d.peak / 2, ..*d }));
        noisy.push(DailyPeak { date: day(1), peak: 10_000 });
        let mut state = seed;
        for i in (1..noisy.len()).rev() {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            noisy.swap(i, (state >> 33) as usize % (i + 1));
        }
        prop_assert_eq!(&over_limit_timeline(&noisy, limit, TODAY), &t);

        // A higher limit never makes things worse.
        let higher = over_limit_timeline(&days, limit + 1, TODAY);
        prop_assert!(higher.state <= t.state);
    }

    #[test]
    fn status_is_a_function_of_its_inputs(
        peaks in proptest::collection::vec(0u32..300, 0..30),
        operator in proptest::option::of(1u32..300),
        offset in -400i64..400,
    ) {
        let file = signed(&terms());
        let n = peaks.len() as i64;
        let days: Vec<DailyPeak> = peaks.iter().enumerate()
            .map(|(i, &p)| DailyPeak { date: day(i as i64 - n + 1), peak: p })
            .collect();
        let today = day(offset);
        let a = run(Some(&file), &days, operator, today);
        let b = run(Some(&file), &days, operator, today);
        prop_assert_eq!(&a, &b);
        let mut reversed = days.clone();
        reversed.reverse();
        prop_assert_eq!(&run(Some(&file), &reversed, operator, today), &a);
        // Locked exactly when the timeline says so, the license expired, or (before its
        // issue date) the file is not accepted.
        let expired = a.lock_reason == Some(LockReason::Expired);
        let invalid = a.mode == Mode::Invalid;
        prop_assert_eq!(invalid, today < date(2026, 1, 10));
        prop_assert_eq!(
            a.state == State::Locked,
            expired || invalid || a.timeline.state == OverLimit::Locked
        );
        prop_assert!(a.features.ingest);
        prop_assert_eq!(a.features.gui, a.state != State::Locked);
    }
}

/// Status of `file` at `now` with the portal's `superseded` word.
fn run_at(file: &str, now: i64, superseded: Option<&license::Superseded>) -> Status {
    let ring = keyring();
    status(&StatusInput {
        license: Some(LicenseFile {
            name: FILE,
            text: file,
        }),
        keyring: &ring,
        hwid: hwid(),
        domain: None,
        now,
        time_zone: &UTC,
        high_water: None,
        operator_limit: None,
        daily_peaks: &[],
        superseded,
    })
}

const HOUR: i64 = 3_600_000_000;

#[test]
fn a_moved_license_counts_down_then_locks_and_only_its_own_id_counts() {
    let file = signed(&terms());
    let since = noon(TODAY);
    let moved = license::Superseded {
        license_id: terms().license_id,
        since,
    };
    let s = run_at(&file, since + HOUR, Some(&moved));
    assert_eq!(s.state, State::Ok);
    let p = s.pending_lock.clone().unwrap();
    assert_eq!(p.reason, LockReason::Moved);
    assert_eq!(p.lock_at, since + license::MOVED_LICENSE_DAYS * 24 * HOUR);
    assert_eq!(p.days_left, 7);
    assert!(
        s.warnings
            .iter()
            .any(|w| w.contains("was moved to another system"))
    );
    let s = run_at(&file, since + 6 * 24 * HOUR + HOUR, Some(&moved));
    assert_eq!((s.state, s.pending_lock.unwrap().days_left), (State::Ok, 1));
    let s = run_at(&file, since + 7 * 24 * HOUR, Some(&moved));
    assert_eq!(
        (s.state, s.lock_reason.clone()),
        (State::Locked, Some(LockReason::Moved))
    );
    assert!(
        !s.features.gui && s.features.ingest,
        "a lock never stops ingest"
    );
    // The word about another license (one installed since) changes nothing.
    let other = license::Superseded {
        license_id: "L-other".into(),
        since,
    };
    let s = run_at(&file, since + 30 * 24 * HOUR, Some(&other));
    assert_eq!((s.state, s.pending_lock), (State::Ok, None));
}

#[test]
fn a_missed_refresh_locks_seven_days_after_refresh_by_and_offline_files_never() {
    let mut t = terms();
    let refresh_by = noon(TODAY);
    t.refresh_by = license::timestamp(refresh_by);
    let file = signed(&t);
    assert_eq!(run_at(&file, refresh_by - HOUR, None).pending_lock, None);
    let s = run_at(&file, refresh_by + HOUR, None);
    assert_eq!(s.state, State::Ok);
    assert_eq!(s.pending_lock.unwrap().reason, LockReason::RefreshOverdue);
    let s = run_at(&file, refresh_by + 7 * 24 * HOUR + 1, None);
    assert_eq!(s.lock_reason, Some(LockReason::RefreshOverdue));

    // The earlier of the two locks wins.
    let moved = license::Superseded {
        license_id: t.license_id.clone(),
        since: refresh_by - 3 * 24 * HOUR,
    };
    let s = run_at(&file, refresh_by + HOUR, Some(&moved));
    assert_eq!(s.pending_lock.unwrap().reason, LockReason::Moved);

    t.refresh_by = None;
    let offline = signed(&t);
    assert!(!offline.is_empty());
    let s = run_at(&offline, refresh_by + 300 * 24 * HOUR, None);
    assert_eq!((s.state, s.pending_lock), (State::Ok, None));
}
