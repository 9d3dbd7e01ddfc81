//! UTC timestamps in microseconds since the Unix epoch, with RFC 3339 parsing and formatting.
//!
//! Packet times are plain `u64` microseconds because that is what a classic pcap record stores
//! and what the event queue orders by; only the truth file and `--start` need calendar dates,
//! so a small civil-date conversion here avoids a date-time dependency.

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = u64;

pub const SECOND: Micros = 1_000_000;
pub const MILLI: Micros = 1_000;

/// Days since the epoch for a proleptic Gregorian date (Hinnant's days-from-civil algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp as i64 + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.ffffff](Z|±HH:MM)`. Dates before 1970 are refused because a pcap
/// record cannot hold them.
pub fn parse_rfc3339(s: &str) -> Result<Micros, String> {
    let err = || format!("invalid RFC 3339 time {s:?} (expected e.g. 2026-11-01T08:00:00Z)");
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return Err(err());
    }
    if b[13] != b':' || b[16] != b':' {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| -> Result<u32, String> {
        let part = &s[r];
        if part.bytes().all(|c| c.is_ascii_digit()) {
            part.parse().map_err(|_| err())
        } else {
            Err(err())
        }
    };
    let (y, mo, d) = (num(0..4)? as i64, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || d == 0 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 60
    {
        return Err(err());
    }
    let mut i = 19;
    let mut micros: u64 = 0;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 6 {
                micros = micros * 10 + u64::from(b[i] - b'0');
            }
            i += 1;
        }
        let digits = i - start;
        if digits == 0 {
            return Err(err());
        }
        for _ in digits..6 {
            micros *= 10;
        }
    }
    let offset_s: i64 = match &s[i..] {
        "Z" | "z" => 0,
        tz if tz.len() == 6 && (tz.starts_with('+') || tz.starts_with('-')) && &tz[3..4] == ":" => {
            let oh = num(i + 1..i + 3)? as i64;
            let om = num(i + 4..i + 6)? as i64;
            let sign = if tz.starts_with('-') { -1 } else { 1 };
            sign * (oh * 3600 + om * 60)
        }
        _ => return Err(err()),
    };
    let secs = days_from_civil(y, mo, d) * 86_400
        + i64::from(h) * 3600
        + i64::from(mi) * 60
        + i64::from(se)
        - offset_s;
    if secs < 0 || secs > i64::from(u32::MAX) {
        return Err(format!(
            "time {s:?} is outside what a pcap file can store (1970..2106)"
        ));
    }
    Ok(secs as u64 * SECOND + micros)
}

/// Formats as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (always six fractional digits, always UTC).
pub fn format_rfc3339(t: Micros) -> String {
    let secs = (t / SECOND) as i64;
    let micros = t % SECOND;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        sod / 3600,
        sod / 60 % 60,
        sod % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants_round_trip() {
        let t = parse_rfc3339("2026-11-01T08:00:00Z").unwrap();
        assert_eq!(t, 1_793_520_000 * SECOND);
        assert_eq!(format_rfc3339(t), "2026-11-01T08:00:00.000000Z");
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000000Z");
        let leap = parse_rfc3339("2024-02-29T23:59:59.5Z").unwrap();
        assert_eq!(format_rfc3339(leap), "2024-02-29T23:59:59.500000Z");
        assert_eq!(
            format_rfc3339(leap + SECOND / 2),
            "2024-03-01T00:00:00.000000Z"
        );
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let a = parse_rfc3339("2026-11-01T09:30:00+01:30").unwrap();
        let b = parse_rfc3339("2026-11-01T08:00:00Z").unwrap();
        assert_eq!(a, b);
        let c = parse_rfc3339("2026-11-01T07:00:00-01:00").unwrap();
        assert_eq!(c, b);
    }

    #[test]
    fn every_day_of_a_few_years_round_trips() {
        for day in 19_000..21_000i64 {
            let (y, m, d) = civil_from_days(day);
            assert_eq!(days_from_civil(y, m, d), day);
        }
    }

    #[test]
    fn garbage_is_rejected_with_a_message() {
        for bad in [
            "",
            "2026-11-01",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-01T24:00:00Z",
            "2026-11-01T08:00:00",
            "1960-01-01T00:00:00Z",
            "2026-11-01T08:00:00.Z",
            "20x6-11-01T08:00:00Z",
        ] {
            let e = parse_rfc3339(bad).unwrap_err();
            assert!(e.contains(bad) || e.contains("outside"), "{bad}: {e}");
        }
    }
}
