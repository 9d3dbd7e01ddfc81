//! "Now" as a parameter. The rules never read the system clock themselves: the edges (the
//! central server, the vendor portal) hold a [`Clock`] and pass its instant in, so tests can
//! walk through a 15-day over-limit streak or stand on a grant's last day in milliseconds.
//! A fake clock is moved only by code in the same process; nothing on the network can move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::Micros;

/// A source of "now", in workspace microseconds.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Micros;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        let since_epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        i64::try_from(since_epoch.as_micros()).unwrap_or(i64::MAX)
    }
}

/// A clock that stands still until told otherwise; clones share the same instant.
#[derive(Debug, Clone)]
pub struct FakeClock(Arc<AtomicI64>);

impl FakeClock {
    pub fn new(now: Micros) -> FakeClock {
        FakeClock(Arc::new(AtomicI64::new(now)))
    }

    pub fn set(&self, now: Micros) {
        self.0.store(now, Ordering::SeqCst);
    }

    pub fn advance(&self, by: Micros) {
        self.0.fetch_add(by, Ordering::SeqCst);
    }
}

impl Clock for FakeClock {
    fn now(&self) -> Micros {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fake_clock_clones_share_one_instant_and_system_clock_is_after_2020() {
        let a = FakeClock::new(5);
        let b = a.clone();
        a.advance(10);
        assert_eq!(b.now(), 15);
        b.set(-3);
        assert_eq!(a.now(), -3);
        assert!(SystemClock.now() > 1_577_836_800_000_000);
    }
}
