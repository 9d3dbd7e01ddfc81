//! The set of UDP/TCP ports treated as SIP.
//!
//! Looked up for every UDP packet of the capture, so it is a flat 65536-bit bitset (8 KiB, stays
//! in L1/L2): one shift, one load, one mask. A `HashSet` or a range list would cost more than the
//! rest of the per-packet work together.

use std::fmt;

/// Error from [`PortSet::parse`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortSetError {
    #[error("empty port list")]
    Empty,
    #[error("bad port {item:?} in port list: expected a number 1-65535 or a range like 5080-5090")]
    BadPort { item: String },
    #[error("bad port range {item:?}: the start is greater than the end")]
    ReversedRange { item: String },
}

/// A set of ports (1-65535).
#[derive(Clone, PartialEq, Eq)]
pub struct PortSet {
    bits: Box<[u64; 1024]>,
}

impl PortSet {
    /// No port at all (useful with SIP detection on any port).
    pub fn empty() -> PortSet {
        PortSet {
            bits: Box::new([0u64; 1024]),
        }
    }

    /// The SIP defaults: 5060 and 5061.
    pub fn sip_default() -> PortSet {
        let mut s = PortSet::empty();
        s.insert(5060);
        s.insert(5061);
        s
    }

    /// Parse a list like `"5060,5061,5080-5090"`. Spaces around items are ignored.
    pub fn parse(text: &str) -> Result<PortSet, PortSetError> {
        let mut set = PortSet::empty();
        let mut any = false;
        for raw in text.split(',') {
            let item = raw.trim();
            if item.is_empty() {
                if text.trim().is_empty() {
                    return Err(PortSetError::Empty);
                }
                return Err(PortSetError::BadPort {
                    item: item.to_string(),
                });
            }
            let bad = || PortSetError::BadPort {
                item: item.to_string(),
            };
            let port = |s: &str| -> Result<u16, PortSetError> {
                match s.trim().parse::<u16>() {
                    Ok(p) if p != 0 => Ok(p),
                    _ => Err(bad()),
                }
            };
            match item.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (port(a)?, port(b)?);
                    if a > b {
                        return Err(PortSetError::ReversedRange {
                            item: item.to_string(),
                        });
                    }
                    for p in a..=b {
                        set.insert(p);
                    }
                }
                None => set.insert(port(item)?),
            }
            any = true;
        }
        if !any {
            return Err(PortSetError::Empty);
        }
        Ok(set)
    }

    /// Add one port.
    pub fn insert(&mut self, port: u16) {
        self.bits[usize::from(port >> 6)] |= 1u64 << (port & 63);
    }

    /// Is `port` in the set? Branch-free, on the per-packet hot path.
    #[inline(always)]
    pub fn contains(&self, port: u16) -> bool {
        (self.bits[usize::from(port >> 6)] >> (port & 63)) & 1 != 0
    }

    /// True when no port is set.
    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|w| *w == 0)
    }

    /// The set as sorted inclusive ranges.
    pub fn ranges(&self) -> Vec<(u16, u16)> {
        let mut out: Vec<(u16, u16)> = Vec::new();
        for p in 0..=u16::MAX {
            if self.contains(p) {
                match out.last_mut() {
                    Some((_, end)) if u32::from(*end) + 1 == u32::from(p) => *end = p,
                    _ => out.push((p, p)),
                }
            }
        }
        out
    }
}

impl Default for PortSet {
    fn default() -> Self {
        PortSet::sip_default()
    }
}

/// Same syntax as [`PortSet::parse`] accepts, so a config value round-trips.
impl fmt::Display for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (a, b)) in self.ranges().into_iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if a == b {
                write!(f, "{a}")?;
            } else {
                write!(f, "{a}-{b}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for PortSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortSet({self})")
    }
}

impl std::str::FromStr for PortSet {
    type Err = PortSetError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PortSet::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lists_and_ranges() {
        let s = PortSet::parse("5060, 5061,5080-5090").unwrap();
        assert!(s.contains(5060) && s.contains(5061) && s.contains(5080) && s.contains(5090));
        assert!(!s.contains(5062) && !s.contains(5079) && !s.contains(5091) && !s.contains(0));
        assert_eq!(s.to_string(), "5060-5061,5080-5090");
        assert_eq!(PortSet::parse(&s.to_string()).unwrap(), s);
        let all = PortSet::parse("1-65535").unwrap();
        assert!(all.contains(65535) && all.contains(1) && !all.contains(0));
    }

    #[test]
    fn rejects_bad_text() {
        assert_eq!(PortSet::parse(""), Err(PortSetError::Empty));
        assert_eq!(PortSet::parse("  "), Err(PortSetError::Empty));
        for bad in [
            "50x",
            "0",
            "70000",
            "5060,",
            "5060,,5061",
            "-5",
            "5-",
            "a-b",
        ] {
            let e = PortSet::parse(bad).unwrap_err();
            assert!(matches!(e, PortSetError::BadPort { .. }), "{bad}: {e}");
        }
        let e = PortSet::parse("5090-5080").unwrap_err();
        assert_eq!(
            e.to_string(),
            "bad port range \"5090-5080\": the start is greater than the end"
        );
        assert!(
            PortSet::parse("5060,abc")
                .unwrap_err()
                .to_string()
                .contains("\"abc\"")
        );
    }

    #[test]
    fn default_is_sip() {
        let d = PortSet::default();
        assert_eq!(d.ranges(), vec![(5060, 5061)]);
        assert!(PortSet::empty().is_empty());
    }
}
