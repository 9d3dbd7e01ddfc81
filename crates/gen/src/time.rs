//! Packet times as `u64` microseconds since the epoch: what a classic pcap record stores and
//! what the event queue orders by. Calendar text goes through `calls::time`, the one RFC 3339
//! implementation of the workspace, so the truth file is formatted exactly like CDR output.

/// Microseconds since 1970-01-01T00:00:00Z.
pub type Micros = u64;

pub const SECOND: Micros = 1_000_000;
pub const MILLI: Micros = 1_000;

/// Parses an RFC 3339 time. Dates before 1970 are refused because a pcap record cannot hold
/// them.
pub fn parse_rfc3339(s: &str) -> Result<Micros, String> {
    let t = calls::time::parse_rfc3339(s).ok_or_else(|| {
        format!("invalid RFC 3339 time {s:?} (expected e.g. 2026-11-01T08:00:00Z)")
    })?;
    Micros::try_from(t)
        .map_err(|_| format!("time {s:?} is outside what a pcap can hold (before 1970)"))
}

/// `2026-11-01T08:00:00.000000Z`.
pub fn format_rfc3339(t: Micros) -> String {
    calls::time::format_rfc3339(i64::try_from(t).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_offsets() {
        let t = parse_rfc3339("2026-11-01T08:00:00Z").unwrap();
        assert_eq!(format_rfc3339(t), "2026-11-01T08:00:00.000000Z");
        let a = parse_rfc3339("2026-11-01T09:30:00+01:30").unwrap();
        assert_eq!(a, t);
    }

    #[test]
    fn garbage_is_rejected_with_a_message() {
        for bad in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-01T08:00:00",
            "1960-01-01T00:00:00Z",
        ] {
            let e = parse_rfc3339(bad).unwrap_err();
            assert!(e.contains(bad) || e.contains("before 1970"), "{bad}: {e}");
        }
    }
}
