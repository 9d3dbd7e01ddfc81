//! The server's time source. Everything that depends on the date (the license state, today's
//! peak, the lockdown countdown) asks a [`Clock`] instead of the system, so the tests can walk
//! through a 15-day over-limit streak in milliseconds. One definition serves the server and
//! the portal (they share a fake clock in the end-to-end tests).

pub use calls::clock::{Clock, FakeClock, SystemClock};
