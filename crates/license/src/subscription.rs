//! The vendor portal's subscription rules (SPEC §4), pure so the portal, its CLI and the tests
//! all get the same dates and verdicts: renewal dates, trial ends, the limit after upgrades,
//! and the concurrent-use verdict of check-ins.

use jiff::civil::Date;

use crate::dates::TRIAL_DAYS;
use crate::terms::Grant;
use crate::{Micros, add_days};

/// How often a server checks in with the portal.
pub const CHECKIN_INTERVAL_US: Micros = 10 * 60 * 1_000_000;
/// A boot id counts as a live system while its last check-in is at most this old: three
/// missed check-ins before a stopped server stops counting.
pub const LIVE_WINDOW_US: Micros = 3 * CHECKIN_INTERVAL_US;

/// The formal end after a renewal paying for `months` months.
///
/// The paid period starts the day after the previous formal end, whenever the renewal was
/// paid (early, on time, in the grace period or later): the customer pays for consecutive
/// periods, so the new formal end never depends on the renewal date. Counting from the day
/// after and stepping back one day keeps month ends stable (Jan 31 + 1 month = Feb 28, then
/// + 1 month = Mar 31, not Mar 28).
pub fn renewed_formal_end(previous_formal_end: Date, months: u32) -> Date {
    let start = add_days(previous_formal_end, 1);
    let end_exclusive = start
        .checked_add(jiff::Span::new().months(i64::from(months)))
        .unwrap_or(Date::MAX);
    add_days(end_exclusive, -1)
}

/// Last day of a trial or emergency trial that starts on `start_day`.
pub fn trial_formal_end(start_day: Date) -> Date {
    add_days(start_day, TRIAL_DAYS)
}

/// An upgrade order as the limit rule sees it: the channel limit it buys and when its order
/// was completed (`None` while pending or processing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    pub channels: u32,
    pub completed_at: Option<Micros>,
}

/// The license's channel limit at `now`: the limit of the upgrade completed last at or before
/// `now`, else the limit the license was issued with. Pending and processing orders change
/// nothing; an upgrade is what was paid for, so it may also lower the limit (a downgrade).
pub fn limit_at(base: u32, upgrades: &[Upgrade], now: Micros) -> u32 {
    upgrades
        .iter()
        .filter_map(|u| {
            u.completed_at
                .filter(|&t| t <= now)
                .map(|t| (t, u.channels))
        })
        .max_by_key(|&(t, _)| t)
        .map_or(base, |(_, channels)| channels)
}

/// The grants a freshly issued file carries on `today`: everything not yet over (an increase
/// that starts later is carried too, so a file issued today is right on that day).
pub fn grants_to_carry(grants: &[Grant], today: Date) -> Vec<Grant> {
    grants
        .iter()
        .filter(|g| match **g {
            Grant::Increase { end, .. } => today <= end,
            Grant::Concurrent { until, .. } => today <= until,
        })
        .cloned()
        .collect()
}

/// Systems allowed to use a license at once on `today`: 1, or the most systems of a
/// concurrent-use grant in force.
pub fn allowed_systems(grants: &[Grant], today: Date) -> u32 {
    grants
        .iter()
        .filter(|g| g.active_on(today))
        .filter_map(|g| match *g {
            Grant::Concurrent { systems, .. } => Some(systems),
            Grant::Increase { .. } => None,
        })
        .fold(1, u32::max)
}

/// One boot of one installation, as the portal remembers its check-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootSeen<'a> {
    pub hwid: &'a str,
    pub install_id: &'a str,
    pub boot_id: &'a str,
    pub first_seen: Micros,
    pub last_seen: Micros,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConcurrentUse {
    /// Live systems now.
    pub systems: u32,
    pub allowed: u32,
    pub concurrent: bool,
}

impl ConcurrentUse {
    /// What a server shows its users when flagged.
    pub fn message(&self) -> Option<String> {
        self.concurrent
            .then(|| format!("license used concurrently by {} systems", self.systems))
    }
}

/// The concurrent-use verdict at `now`.
///
/// A system is a boot id whose last check-in is within `live_window` of `now`. Boots of the
/// same installation (hardware id + install id) are one system when one's check-ins all came
/// before the other's first (a restart or reboot), and separate systems when their check-in
/// spans overlap (identical clones running at once). For one installation that is the
/// largest number of spans overlapping at one instant; installations add up.
pub fn concurrent_use(
    boots: &[BootSeen<'_>],
    now: Micros,
    live_window: Micros,
    allowed: u32,
) -> ConcurrentUse {
    let live: Vec<&BootSeen<'_>> = boots
        .iter()
        .filter(|b| b.last_seen >= now.saturating_sub(live_window) && b.first_seen <= b.last_seen)
        .collect();
    let mut installs: Vec<(&str, &str)> = live.iter().map(|b| (b.hwid, b.install_id)).collect();
    installs.sort_unstable();
    installs.dedup();
    let mut systems = 0u32;
    for (hwid, install) in installs {
        // Sweep over span starts and ends; at equal instants starts come first, so spans that
        // touch (one's first check-in at the other's last) overlap: a restarted server's first
        // check-in is always strictly after its predecessor's last.
        let mut events: Vec<(Micros, i32)> = live
            .iter()
            .filter(|b| b.hwid == hwid && b.install_id == install)
            .flat_map(|b| [(b.first_seen, -1), (b.last_seen, 1)])
            .collect();
        events.sort_unstable();
        let (mut open, mut most) = (0i32, 0i32);
        for (_, e) in events {
            open -= e;
            most = most.max(open);
        }
        systems = systems.saturating_add(u32::try_from(most).unwrap_or(0));
    }
    ConcurrentUse {
        systems,
        allowed,
        concurrent: systems > allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::date;
    use proptest::prelude::*;

    #[test]
    fn renewal_counts_from_the_previous_formal_end() {
        // (previous formal end, months, new formal end)
        let table = [
            (date(2026, 3, 31), 12, date(2027, 3, 31)),
            (date(2026, 3, 31), 1, date(2026, 4, 30)),
            (date(2026, 1, 31), 1, date(2026, 2, 28)),
            (date(2026, 2, 28), 1, date(2026, 3, 31)),
            (date(2027, 2, 28), 12, date(2028, 2, 29)),
            (date(2028, 2, 29), 12, date(2029, 2, 28)),
            (date(2026, 6, 15), 12, date(2027, 6, 15)),
            (date(2026, 6, 15), 3, date(2026, 9, 15)),
            (date(2026, 12, 31), 1, date(2027, 1, 31)),
            (date(2026, 12, 31), 0, date(2026, 12, 31)),
        ];
        for (prev, months, want) in table {
            assert_eq!(renewed_formal_end(prev, months), want, "{prev} + {months}");
        }
    }

    #[test]
    fn trial_lasts_thirty_days() {
        assert_eq!(trial_formal_end(date(2026, 11, 28)), date(2026, 12, 28));
        assert_eq!(trial_formal_end(date(2028, 2, 1)), date(2028, 3, 2));
    }

    #[test]
    fn upgrade_limit_from_completion_only() {
        let ups = [
            Upgrade {
                channels: 100,
                completed_at: Some(1_000),
            },
            Upgrade {
                channels: 500,
                completed_at: None,
            },
            Upgrade {
                channels: 200,
                completed_at: Some(2_000),
            },
        ];
        assert_eq!(limit_at(50, &ups, 999), 50);
        assert_eq!(limit_at(50, &ups, 1_000), 100);
        assert_eq!(limit_at(50, &ups, 1_999), 100);
        assert_eq!(limit_at(50, &ups, 2_000), 200);
        assert_eq!(limit_at(50, &ups, i64::MAX), 200);
        assert_eq!(limit_at(50, &[], 5), 50);
    }

    #[test]
    fn allowed_systems_until_the_grant_day_inclusive() {
        let g = [
            Grant::Concurrent {
                systems: 2,
                until: date(2026, 12, 10),
            },
            Grant::Increase {
                channels: 9,
                start: date(2026, 1, 1),
                end: date(2027, 1, 1),
            },
        ];
        assert_eq!(allowed_systems(&g, date(2026, 12, 10)), 2);
        assert_eq!(allowed_systems(&g, date(2026, 12, 11)), 1);
        assert_eq!(allowed_systems(&[], date(2026, 12, 11)), 1);
        assert_eq!(grants_to_carry(&g, date(2026, 12, 11)).len(), 1);
        assert_eq!(grants_to_carry(&g, date(2026, 12, 10)).len(), 2);
    }

    fn boot<'a>(install: &'a str, boot: &'a str, first: Micros, last: Micros) -> BootSeen<'a> {
        BootSeen {
            hwid: "AAAA-BBBB-CCCC-DDDD",
            install_id: install,
            boot_id: boot,
            first_seen: first,
            last_seen: last,
        }
    }

    const MIN: Micros = 60_000_000;

    #[test]
    fn verdicts() {
        let now = 100 * MIN;
        // (boots, systems)
        let table: Vec<(Vec<BootSeen<'_>>, u32)> = vec![
            (vec![boot("i", "a", 0, now)], 1),
            // clones: interleaved check-ins
            (
                vec![
                    boot("i", "a", 60 * MIN, now),
                    boot("i", "b", 61 * MIN, now - MIN),
                ],
                2,
            ),
            // reboot: the new boot starts after the old one's last check-in
            (
                vec![
                    boot("i", "a", 0, 90 * MIN),
                    boot("i", "b", 90 * MIN + 1, now),
                ],
                1,
            ),
            // touching spans count as overlapping
            (
                vec![boot("i", "a", 0, 90 * MIN), boot("i", "b", 90 * MIN, now)],
                2,
            ),
            // the old boot is out of the live window
            (
                vec![
                    boot("i", "a", 0, now - 30 * MIN - 1),
                    boot("i", "b", 20 * MIN, now),
                ],
                1,
            ),
            (
                vec![
                    boot("i", "a", 0, now - 30 * MIN),
                    boot("i", "b", 20 * MIN, now),
                ],
                2,
            ),
            // different installations on the same hardware are separate systems
            (
                vec![boot("i", "a", 0, 50 * MIN), boot("j", "b", 90 * MIN, now)],
                1,
            ),
            (
                vec![boot("i", "a", 0, 80 * MIN), boot("j", "b", 90 * MIN, now)],
                2,
            ),
            (vec![], 0),
        ];
        for (i, (boots, want)) in table.iter().enumerate() {
            let v = concurrent_use(boots, now, LIVE_WINDOW_US, 1);
            assert_eq!(v.systems, *want, "row {i}");
            assert_eq!(v.concurrent, *want > 1, "row {i}");
            assert!(!concurrent_use(boots, now, LIVE_WINDOW_US, 2).concurrent);
        }
        let v = concurrent_use(&table[1].0, now, LIVE_WINDOW_US, 1);
        assert_eq!(
            v.message().as_deref(),
            Some("license used concurrently by 2 systems")
        );
    }

    proptest! {
        #[test]
        fn renewal_never_depends_on_anything_but_the_previous_end(
            y in 2000i16..2100, m in 1i8..=12, d in 1i8..=27, months in 1u32..=36
        ) {
            let prev = date(y, m, d);
            let end = renewed_formal_end(prev, months);
            prop_assert!(end > prev);
            // consecutive renewals add up (for periods starting on days every month has)
            let twice = renewed_formal_end(renewed_formal_end(prev, months), months);
            prop_assert_eq!(twice, renewed_formal_end(prev, months * 2));
        }

        #[test]
        fn sequential_boots_are_one_system(n in 1usize..10, gap in 1i64..1000) {
            let ids: Vec<String> = (0..n).map(|i| i.to_string()).collect();
            let boots: Vec<BootSeen<'_>> = ids.iter().enumerate().map(|(i, id)| {
                let first = i as i64 * (gap * 2);
                boot("i", id, first, first + gap)
            }).collect();
            let now = boots.last().map_or(0, |b| b.last_seen);
            let v = concurrent_use(&boots, now, i64::MAX / 2, 1);
            prop_assert_eq!(v.systems, 1);
        }
    }
}
