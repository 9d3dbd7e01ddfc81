//! The server's time source. Everything that depends on the date (the license state, today's
//! peak, the lockdown countdown) asks a [`Clock`] instead of the system, so the tests can walk
//! through a 15-day over-limit streak in milliseconds. The fake clock is set only by code in
//! the same process (tests); nothing on the network can move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use calls::Micros;

/// A source of "now", in workspace microseconds.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Micros;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        jiff::Timestamp::now().as_microsecond()
    }
}

/// A clock that stands still until told otherwise; cloning shares the same instant.
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
