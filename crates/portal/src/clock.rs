//! The portal's time source. Every date rule (trial ends, renewals, which grants are in
//! force, live check-in windows) asks a [`Clock`], so tests can stand on a grant's last day
//! and the day after without waiting. The same definition as the central server's.

pub use calls::clock::{Clock, FakeClock, SystemClock};
