//! The dialog tracker: SIP messages in packet-time order in, closed CDR legs out.
//!
//! Pure: no I/O, no clock. Time is the capture timestamp of each message, so reading a capture
//! gives the same legs however fast it is read.

mod leg;

pub use leg::{EndReason, Leg, LegMessage, Micros, Side};
mod tracker;

pub use tracker::{Origin, Tracker, TrackerConfig, TrackerStats};
pub mod clock;
#[cfg(feature = "test-util")]
pub mod test_util;
pub mod time;
