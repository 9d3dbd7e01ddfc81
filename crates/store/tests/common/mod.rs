//! Fixtures shared by the store's integration tests.

use std::net::{IpAddr, Ipv4Addr};

use calls::{EndReason, Leg, Micros};
use sip::Transport;

pub const S: Micros = 1_000_000;
/// 2026-11-01T00:00:00Z
pub const D0: Micros = 1_793_491_200 * S;

/// An answered leg (answer one second after start) between two numbers, with what a store
/// test does not care about filled in plainly.
pub fn leg(sensor: u32, id: &str, caller: &str, called: &str, start: Micros, end: Micros) -> Leg {
    Leg {
        call_id: id.to_string(),
        sensor_id: sensor,
        caller: caller.to_string(),
        caller_domain: "example.com".into(),
        caller_name: None,
        called: called.to_string(),
        called_domain: "example.com".into(),
        called_name: None,
        from_tag: None,
        to_tag: None,
        start,
        answer: Some(start + S),
        end,
        last_response: Some(200),
        last_response_text: Some("OK".into()),
        end_reason: EndReason::ByeConfirmed,
        hangup_by: None,
        transport: Transport::Udp,
        src_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        src_port: 5060,
        dst_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
        dst_port: 5060,
        partial: false,
        referred_by: None,
        refer_to: None,
        replaces: None,
        user_agent: None,
        sip_message_count: 7,
        messages: Vec::new(),
    }
}
