//! The portal's time source. Every date rule (trial ends, renewals, which grants are in
//! force, live check-in windows) asks a [`Clock`], so tests can stand on a grant's last day
//! and the day after without waiting. Only code in the same process can move a fake clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use license::Micros;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Micros;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Micros {
        jiff::Timestamp::now().as_microsecond()
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
