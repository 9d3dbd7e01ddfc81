//! Fixtures shared by the store's integration tests.

use calls::{Leg, Micros};

pub const S: Micros = 1_000_000;
/// 2026-11-01T00:00:00Z
pub const D0: Micros = 1_793_491_200 * S;

/// An answered leg (answer one second after start) between two numbers, with what a store
/// test does not care about filled in plainly.
pub fn leg(sensor: u32, id: &str, caller: &str, called: &str, start: Micros, end: Micros) -> Leg {
    Leg::builder()
        .call_id(id)
        .sensor_id(sensor)
        .caller(caller)
        .called(called)
        .start(start)
        .answer(Some(start + S))
        .end(end)
        .response(200, "OK")
        .sip_message_count(7)
        .build()
}
