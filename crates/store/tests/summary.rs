//! Outcome aggregates for the daily report, summed by SQLite: legs are counted in the window
//! their start falls in (half-open), grouped by final code, answered and end reason, with the
//! connect time of answered legs. Real SQLite files; expectations computed by hand.

use std::net::{IpAddr, Ipv4Addr};

use calls::{EndReason, Leg, Micros};
use sip::Transport;
use store::{OutcomeGroup, Store, Window};

const S: Micros = 1_000_000;
const HOUR: Micros = 3600 * S;
const DAY: Micros = 24 * HOUR;
/// 2026-11-01T00:00:00Z
const D0: Micros = 1_793_491_200 * S;

struct Outcome {
    answer_after: Option<Micros>,
    code: Option<u16>,
    text: Option<&'static str>,
    reason: EndReason,
}

const ANSWERED: Outcome = Outcome {
    answer_after: Some(2 * S),
    code: Some(200),
    text: Some("OK"),
    reason: EndReason::ByeConfirmed,
};
const BUSY: Outcome = Outcome {
    answer_after: None,
    code: Some(486),
    text: Some("Busy Here"),
    reason: EndReason::NotAnswered,
};
const CANCELLED: Outcome = Outcome {
    answer_after: None,
    code: Some(487),
    text: Some("Request Terminated"),
    reason: EndReason::Cancel,
};
const ZOMBIE: Outcome = Outcome {
    answer_after: None,
    code: None,
    text: None,
    reason: EndReason::TimeoutZombie,
};

fn leg(id: &str, start: Micros, end: Micros, o: &Outcome) -> Leg {
    Leg {
        call_id: id.to_string(),
        sensor_id: 1,
        caller: "1001".into(),
        caller_domain: "example.com".into(),
        caller_name: None,
        called: "2002".into(),
        called_domain: "example.com".into(),
        called_name: None,
        from_tag: None,
        to_tag: None,
        start,
        answer: o.answer_after.map(|a| start + a),
        end,
        last_response: o.code,
        last_response_text: o.text.map(str::to_string),
        end_reason: o.reason,
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

fn group(
    code: Option<u16>,
    text: Option<&str>,
    answered: bool,
    reason: EndReason,
    legs: u64,
    connect_s: u64,
) -> OutcomeGroup {
    OutcomeGroup {
        last_response: code,
        reason_text: text.map(str::to_string),
        answered,
        end_reason: reason,
        legs,
        connect_us: connect_s * S as u64,
    }
}

#[tokio::test]
async fn outcomes_per_window_are_grouped_and_summed_by_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open_sqlite(dir.path()).await.unwrap();
    let d1 = D0 + DAY;
    store
        .insert_legs(&[
            // Day 0: two answered calls, connected 60 s and 120 s (answer 2 s after start).
            leg("a1", D0 + HOUR, D0 + HOUR + 62 * S, &ANSWERED),
            leg("a2", D0 + 2 * HOUR, D0 + 2 * HOUR + 122 * S, &ANSWERED),
            // Two busy, one worded differently: the smallest text is reported.
            leg("b1", D0 + 3 * HOUR, D0 + 3 * HOUR + 5 * S, &BUSY),
            leg(
                "b2",
                D0 + 4 * HOUR,
                D0 + 4 * HOUR + 5 * S,
                &Outcome {
                    text: Some("Busy"),
                    ..BUSY
                },
            ),
            leg("c1", D0 + 5 * HOUR, D0 + 5 * HOUR + 9 * S, &CANCELLED),
            // Starts in the last microsecond of day 0, ends on day 1: it is day 0's call.
            leg("z1", d1 - 1, d1 + 300 * S, &ZOMBIE),
            // Day 1 starts exactly at its boundary.
            leg("a3", d1, d1 + 32 * S, &ANSWERED),
            // Answered, but the stored end precedes the answer: counts, with 0 s connected.
            leg("a4", d1 + HOUR, d1 + HOUR + S, &ANSWERED),
            // Day 2: outside both windows.
            leg("late", D0 + 2 * DAY, D0 + 2 * DAY + 10 * S, &BUSY),
        ])
        .await
        .unwrap();

    let day0 = Window { start: D0, end: d1 };
    let day1 = Window {
        start: d1,
        end: d1 + DAY,
    };
    let empty = Window { start: d1, end: d1 };
    let inverted = Window {
        start: d1 + DAY,
        end: d1,
    };
    let out = store
        .leg_outcomes(&[day0, day1, empty, inverted])
        .await
        .unwrap();
    assert_eq!(out.len(), 4);
    assert_eq!(out[0].window, day0);
    assert_eq!(
        out[0].groups,
        vec![
            group(None, None, false, EndReason::TimeoutZombie, 1, 0),
            group(Some(200), Some("OK"), true, EndReason::ByeConfirmed, 2, 180),
            group(Some(486), Some("Busy"), false, EndReason::NotAnswered, 2, 0),
            group(
                Some(487),
                Some("Request Terminated"),
                false,
                EndReason::Cancel,
                1,
                0
            ),
        ]
    );
    assert_eq!(
        out[1].groups,
        vec![group(
            Some(200),
            Some("OK"),
            true,
            EndReason::ByeConfirmed,
            2,
            30
        )]
    );
    assert!(out[2].groups.is_empty());
    assert!(out[3].groups.is_empty());
    assert!(store.leg_outcomes(&[]).await.unwrap().is_empty());
    store.close().await;
}
