//! Dialog tracker rules of SPEC §1, one scenario per test. Messages are built directly (the
//! parser has its own tests), so each test states exactly what was on the wire.

use std::net::SocketAddr;

use calls::{EndReason, Leg, Origin, Side, Tracker, TrackerConfig};
use proptest::prelude::*;
use sip::{CSeq, Message, Method, NameAddr, StartLine, Transport};

const S: i64 = 1_000_000;
const T0: i64 = 1_764_000_000 * S;

fn caller_addr() -> SocketAddr {
    "10.0.0.1:5070".parse().unwrap()
}
fn callee_addr() -> SocketAddr {
    "10.0.0.2:5060".parse().unwrap()
}

/// One message on the wire, described by the fields the tracker reads.
#[derive(Clone, Debug)]
struct Wire {
    ts: i64,
    from_caller: bool,
    start: StartLine<'static>,
    call_id: &'static [u8],
    from_tag: Option<&'static [u8]>,
    to_tag: Option<&'static [u8]>,
    cseq: u32,
    cseq_method: Method<'static>,
    referred_by: Option<&'static [u8]>,
    refer_to: Option<&'static [u8]>,
    replaces: Option<&'static [u8]>,
}

fn req(ts: i64, method: Method<'static>, cseq: u32) -> Wire {
    Wire {
        ts,
        from_caller: true,
        start: StartLine::Request {
            method,
            uri: b"sip:200@example.com",
        },
        call_id: b"call-1@example.com",
        from_tag: Some(b"ftag"),
        to_tag: if method == Method::Invite && cseq == 1 {
            None
        } else {
            Some(b"ttag")
        },
        cseq,
        cseq_method: method,
        referred_by: None,
        refer_to: None,
        replaces: None,
    }
}

fn resp(ts: i64, code: u16, cseq: u32, method: Method<'static>) -> Wire {
    Wire {
        ts,
        from_caller: false,
        start: StartLine::Response {
            code,
            reason: reason_text(code),
        },
        call_id: b"call-1@example.com",
        from_tag: Some(b"ftag"),
        to_tag: if code == 100 { None } else { Some(b"ttag") },
        cseq,
        cseq_method: method,
        referred_by: None,
        refer_to: None,
        replaces: None,
    }
}

fn reason_text(code: u16) -> &'static [u8] {
    match code {
        100 => b"Trying",
        180 => b"Ringing",
        200 => b"OK",
        407 => b"Proxy Authentication Required",
        486 => b"Busy Here",
        487 => b"Request Terminated",
        _ => b"Whatever",
    }
}

impl Wire {
    fn with_to_tag(mut self, tag: Option<&'static [u8]>) -> Wire {
        self.to_tag = tag;
        self
    }
    fn sent_by_callee(mut self) -> Wire {
        self.from_caller = false;
        // In a request sent by the callee, From carries the callee's tag.
        self.from_tag = Some(b"ttag");
        self.to_tag = Some(b"ftag");
        self
    }
    fn call_id(mut self, id: &'static [u8]) -> Wire {
        self.call_id = id;
        self
    }

    fn feed(&self, tracker: &mut Tracker) {
        let (src, dst) = if self.from_caller {
            (caller_addr(), callee_addr())
        } else {
            (callee_addr(), caller_addr())
        };
        let msg = Message {
            start: self.start,
            call_id: Some(self.call_id),
            from: Some(NameAddr {
                display: Some(b"Alice"),
                user: b"+442070001111",
                domain: b"example.com",
                tag: self.from_tag,
            }),
            to: Some(NameAddr {
                display: None,
                user: b"200",
                domain: b"example.com",
                tag: self.to_tag,
            }),
            cseq: Some(CSeq {
                seq: self.cseq,
                method: self.cseq_method,
            }),
            via_branch: Some(b"z9hG4bK1"),
            via_transport: Some(Transport::Udp),
            contact: None,
            content_length: Some(0),
            content_type: None,
            reason: None,
            referred_by: self.referred_by,
            refer_to: self.refer_to,
            replaces: self.replaces,
            user_agent: Some(b"test-ua"),
            body: b"",
            sdp: None,
        };
        let origin = Origin {
            ts: self.ts,
            src,
            dst,
            transport: Transport::Udp,
        };
        tracker.message(&origin, &msg, b"raw");
    }
}

fn run(wires: &[Wire]) -> Vec<Leg> {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for w in wires {
        w.feed(&mut tracker);
    }
    tracker.finish();
    tracker.take_closed()
}

fn only(legs: Vec<Leg>) -> Leg {
    assert_eq!(legs.len(), 1, "expected one leg, got {legs:#?}");
    legs.into_iter().next().unwrap()
}

fn basic_call() -> Vec<Wire> {
    vec![
        req(T0, Method::Invite, 1),
        resp(T0 + 10_000, 100, 1, Method::Invite),
        resp(T0 + S, 180, 1, Method::Invite),
        resp(T0 + 3 * S, 200, 1, Method::Invite),
        req(T0 + 3 * S + 1, Method::Ack, 1),
        req(T0 + 63 * S, Method::Bye, 2),
        resp(T0 + 63 * S + 500, 200, 2, Method::Bye),
    ]
}

#[test]
fn basic_call_times_and_fields() {
    let leg = only(run(&basic_call()));
    assert_eq!(leg.call_id, "call-1@example.com");
    assert_eq!(leg.caller, "+442070001111");
    assert_eq!(leg.caller_name.as_deref(), Some("Alice"));
    assert_eq!(leg.called, "200");
    assert_eq!(leg.start, T0);
    assert_eq!(leg.answer, Some(T0 + 3 * S));
    assert_eq!(leg.end, T0 + 63 * S + 500);
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.last_response, Some(200));
    assert_eq!(leg.hangup_by, Some(Side::Caller));
    assert_eq!(leg.to_tag.as_deref(), Some("ttag"));
    assert_eq!(leg.src_ip, caller_addr().ip());
    assert_eq!(leg.dst_port, 5060);
    assert_eq!(leg.sip_message_count, 7);
    assert!(!leg.partial);
    assert!((leg.duration() - 63.0005).abs() < 1e-9);
    assert!((leg.connect_duration() - 60.0005).abs() < 1e-9);
}

#[test]
fn confirmed_bye_closes_five_seconds_later_on_packet_time() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for w in basic_call() {
        w.feed(&mut tracker);
    }
    let bye_ok = T0 + 63 * S + 500;
    tracker.advance(bye_ok + 5 * S - 1);
    assert!(tracker.take_closed().is_empty());
    assert_eq!(tracker.open_legs(), 1);
    // Expired legs are swept once per second of packet time.
    tracker.advance(bye_ok + 6 * S);
    let legs = tracker.take_closed();
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].end_reason, EndReason::ByeConfirmed);
    assert_eq!(tracker.open_legs(), 0);
}

#[test]
fn busy_is_not_answered_and_ends_at_the_final_response() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + S, 180, 1, Method::Invite),
        resp(T0 + 2 * S, 486, 1, Method::Invite),
        req(T0 + 2 * S + 100, Method::Ack, 1),
    ]));
    assert_eq!(leg.answer, None);
    assert_eq!(leg.end, T0 + 2 * S);
    assert_eq!(leg.end_reason, EndReason::NotAnswered);
    assert_eq!(leg.last_response, Some(486));
    assert_eq!(leg.last_response_text.as_deref(), Some("Busy Here"));
    assert_eq!(leg.connect_duration(), 0.0);
}

#[test]
fn cancel_ends_at_the_cancel_and_keeps_the_487() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + S, 180, 1, Method::Invite),
        req(T0 + 4 * S, Method::Cancel, 1),
        resp(T0 + 4 * S + 10, 200, 1, Method::Cancel),
        resp(T0 + 4 * S + 20, 487, 1, Method::Invite),
        req(T0 + 4 * S + 30, Method::Ack, 1),
    ]));
    assert_eq!(leg.end, T0 + 4 * S);
    assert_eq!(leg.end_reason, EndReason::Cancel);
    assert_eq!(leg.last_response, Some(487));
    assert_eq!(leg.answer, None);
    assert_eq!(leg.hangup_by, Some(Side::Caller));
}

#[test]
fn a_2xx_that_wins_the_race_against_cancel_answers_the_call() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        req(T0 + 4 * S, Method::Cancel, 1),
        resp(T0 + 4 * S + 10, 200, 1, Method::Invite),
        req(T0 + 4 * S + 20, Method::Ack, 1),
        req(T0 + 10 * S, Method::Bye, 2),
        resp(T0 + 10 * S + 5, 200, 2, Method::Bye),
    ]));
    assert_eq!(leg.answer, Some(T0 + 4 * S + 10));
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.end, T0 + 10 * S + 5);
}

#[test]
fn reinvite_stays_in_the_leg_and_does_not_move_answer() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + S, 200, 1, Method::Invite),
        req(T0 + S + 1, Method::Ack, 1),
        req(T0 + 20 * S, Method::Invite, 2),
        resp(T0 + 20 * S + 100, 200, 2, Method::Invite),
        req(T0 + 20 * S + 200, Method::Ack, 2),
        req(T0 + 40 * S, Method::Invite, 3),
        resp(T0 + 40 * S + 100, 491, 3, Method::Invite),
        req(T0 + 60 * S, Method::Bye, 4),
        resp(T0 + 60 * S + 1, 200, 4, Method::Bye),
    ]));
    assert_eq!(leg.answer, Some(T0 + S));
    assert_eq!(leg.end, T0 + 60 * S + 1);
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.last_response, Some(200));
    assert_eq!(leg.sip_message_count, 10);
}

#[test]
fn a_failing_fork_does_not_end_the_leg_while_another_may_answer() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + S, 180, 1, Method::Invite).with_to_tag(Some(b"fork-a")),
        resp(T0 + S + 5, 180, 1, Method::Invite).with_to_tag(Some(b"fork-b")),
        resp(T0 + 2 * S, 486, 1, Method::Invite).with_to_tag(Some(b"fork-b")),
        // Far beyond the 5 s linger: only the pending fork keeps the leg open.
        resp(T0 + 30 * S, 200, 1, Method::Invite).with_to_tag(Some(b"fork-a")),
        req(T0 + 30 * S + 1, Method::Ack, 1).with_to_tag(Some(b"fork-a")),
        req(T0 + 50 * S, Method::Bye, 2).with_to_tag(Some(b"fork-a")),
        resp(T0 + 50 * S + 1, 200, 2, Method::Bye).with_to_tag(Some(b"fork-a")),
    ]));
    assert_eq!(leg.answer, Some(T0 + 30 * S));
    assert_eq!(leg.to_tag.as_deref(), Some("fork-a"));
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
}

#[test]
fn a_late_2xx_within_the_linger_revives_a_failed_leg() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + 2 * S, 486, 1, Method::Invite).with_to_tag(Some(b"fork-b")),
        resp(T0 + 3 * S, 200, 1, Method::Invite).with_to_tag(Some(b"fork-a")),
        req(T0 + 9 * S, Method::Bye, 2),
    ]));
    assert_eq!(leg.answer, Some(T0 + 3 * S));
    assert_eq!(leg.end_reason, EndReason::Bye);
    assert_eq!(leg.end, T0 + 9 * S);
}

#[test]
fn authentication_challenge_then_new_invite_is_one_leg() {
    let leg = only(run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + 100, 407, 1, Method::Invite),
        req(T0 + 200, Method::Ack, 1),
        req(T0 + 300, Method::Invite, 2).with_to_tag(None),
        resp(T0 + S, 200, 2, Method::Invite),
        req(T0 + 5 * S, Method::Bye, 3),
        resp(T0 + 5 * S + 1, 200, 3, Method::Bye),
    ]));
    assert_eq!(leg.start, T0);
    assert_eq!(leg.answer, Some(T0 + S));
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.last_response, Some(200));
}

#[test]
fn a_retry_30_s_after_a_challenge_is_the_same_leg() {
    for code in [401u16, 407] {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let wires = [
            req(T0, Method::Invite, 1),
            resp(T0 + 100, code, 1, Method::Invite),
            req(T0 + 200, Method::Ack, 1),
            // Another call's traffic moves packet time on meanwhile (timers are swept).
            req(T0 + 20 * S, Method::Options, 1).call_id(b"other@example.com"),
            req(T0 + 30 * S, Method::Invite, 2).with_to_tag(None),
            resp(T0 + 30 * S + 10, 100, 2, Method::Invite).with_to_tag(None),
            resp(T0 + 31 * S, 180, 2, Method::Invite),
            resp(T0 + 32 * S, 200, 2, Method::Invite),
            req(T0 + 40 * S, Method::Bye, 3),
            resp(T0 + 40 * S + 1, 200, 3, Method::Bye),
        ];
        for w in &wires {
            w.feed(&mut tracker);
        }
        assert_eq!(
            tracker.take_closed(),
            vec![],
            "nothing closed before the end"
        );
        tracker.finish();
        let leg = only(tracker.take_closed());
        assert_eq!(leg.start, T0, "{code}");
        assert_eq!(leg.answer, Some(T0 + 32 * S));
        assert_eq!(leg.end, T0 + 40 * S + 1);
        assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
        assert_eq!((leg.last_response, leg.sip_message_count), (Some(200), 9));
    }
}

#[test]
fn a_challenge_never_answered_keeps_its_end_and_closes_by_the_zombie_timeout() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    let wires = [
        req(T0, Method::Invite, 1),
        resp(T0 + 100, 407, 1, Method::Invite),
        req(T0 + 200, Method::Ack, 1),
    ];
    for w in &wires {
        w.feed(&mut tracker);
    }
    tracker.advance(T0 + 299 * S);
    assert_eq!(tracker.closed_count(), 0, "still waiting for the retry");
    assert_eq!(tracker.live_legs().count(), 0, "but not a live call");
    tracker.advance(T0 + 301 * S);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end, T0 + 100);
    assert_eq!(leg.end_reason, EndReason::NotAnswered);
    assert_eq!(leg.last_response, Some(407));
    // A retry after the zombie timeout is a new leg.
    let mut tracker = Tracker::new(TrackerConfig::default());
    for w in &wires {
        w.feed(&mut tracker);
    }
    req(T0 + 400 * S, Method::Invite, 2)
        .with_to_tag(None)
        .feed(&mut tracker);
    tracker.finish();
    assert_eq!(tracker.take_closed().len(), 2);
}

#[test]
fn a_final_non_challenge_still_closes_after_5_s() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for w in [
        req(T0, Method::Invite, 1),
        resp(T0 + 100, 486, 1, Method::Invite),
        req(T0 + 200, Method::Ack, 1),
    ] {
        w.feed(&mut tracker);
    }
    tracker.advance(T0 + 7 * S);
    assert_eq!(tracker.closed_count(), 1);
}

#[test]
fn a_response_without_its_invite_opens_a_partial_leg() {
    let leg = only(run(&[
        resp(T0, 180, 1, Method::Invite),
        resp(T0 + S, 200, 1, Method::Invite),
        req(T0 + 2 * S, Method::Bye, 2),
        resp(T0 + 2 * S + 1, 200, 2, Method::Bye),
    ]));
    assert!(leg.partial);
    assert_eq!(leg.start, T0);
    assert_eq!(leg.answer, Some(T0 + S));
    // Addresses are oriented caller -> callee even though the first packet went the other way.
    assert_eq!(leg.src_ip, caller_addr().ip());
    assert_eq!(leg.dst_ip, callee_addr().ip());
}

#[test]
fn bye_requests_and_options_alone_open_no_leg() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    req(T0, Method::Bye, 2).feed(&mut tracker);
    req(T0, Method::Options, 1)
        .call_id(b"options-1")
        .feed(&mut tracker);
    resp(T0, 100, 1, Method::Invite)
        .call_id(b"trying-only")
        .feed(&mut tracker);
    tracker.finish();
    assert!(tracker.take_closed().is_empty());
    assert_eq!(tracker.stats().outside_calls, 3);
}

#[test]
fn unanswered_leg_without_packets_becomes_a_zombie() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    req(T0, Method::Invite, 1).feed(&mut tracker);
    resp(T0 + S, 180, 1, Method::Invite).feed(&mut tracker);
    tracker.advance(T0 + S + 299 * S);
    assert!(tracker.take_closed().is_empty());
    tracker.advance(T0 + S + 302 * S);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end_reason, EndReason::TimeoutZombie);
    assert_eq!(leg.end, T0 + S, "a timeout ends at the last packet seen");
}

#[test]
fn answered_leg_without_bye_hits_the_absolute_timeout() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    req(T0, Method::Invite, 1).feed(&mut tracker);
    resp(T0 + S, 200, 1, Method::Invite).feed(&mut tracker);
    req(T0 + 2 * S, Method::Ack, 1).feed(&mut tracker);
    tracker.advance(T0 + 3 * 3600 * S);
    assert!(tracker.take_closed().is_empty());
    assert_eq!(tracker.live_legs().count(), 1);
    tracker.advance(T0 + 4 * 3600 * S + 2 * S);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end_reason, EndReason::AnsweredNoBye);
    assert_eq!(leg.end, T0 + 2 * S);
}

#[test]
fn end_of_input_closes_open_legs_but_keeps_decided_reasons() {
    let mut wires = vec![
        req(T0, Method::Invite, 1),
        resp(T0 + S, 200, 1, Method::Invite),
        req(T0 + 2 * S, Method::Ack, 1),
    ];
    wires.extend([
        req(T0 + 3 * S, Method::Invite, 1).call_id(b"busy"),
        resp(T0 + 4 * S, 486, 1, Method::Invite).call_id(b"busy"),
    ]);
    let mut legs = run(&wires);
    legs.sort_by_key(|l| l.start);
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[0].end_reason, EndReason::EndOfInput);
    assert_eq!(legs[0].end, T0 + 2 * S);
    assert_eq!(legs[1].end_reason, EndReason::NotAnswered);
    assert_eq!(legs[1].end, T0 + 4 * S);
}

#[test]
fn unconfirmed_bye_from_the_callee() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    for w in [
        req(T0, Method::Invite, 1),
        resp(T0 + S, 200, 1, Method::Invite),
        req(T0 + 2 * S, Method::Ack, 1),
        req(T0 + 10 * S, Method::Bye, 1).sent_by_callee(),
    ] {
        w.feed(&mut tracker);
    }
    tracker.advance(T0 + 29 * S);
    assert!(tracker.take_closed().is_empty());
    tracker.advance(T0 + 32 * S);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end_reason, EndReason::Bye);
    assert_eq!(leg.end, T0 + 10 * S);
    assert_eq!(leg.hangup_by, Some(Side::Callee));
}

#[test]
fn transfer_gives_two_legs_with_their_links() {
    let mut refer = req(T0 + 10 * S, Method::Refer, 2);
    refer.refer_to = Some(b"<sip:300@example.com>");
    refer.referred_by = Some(b"<sip:200@example.com>");
    let mut new_invite = req(T0 + 11 * S, Method::Invite, 1).call_id(b"call-2@example.com");
    new_invite.referred_by = Some(b"<sip:200@example.com>");
    new_invite.replaces = Some(b"call-1@example.com;to-tag=ttag;from-tag=ftag");
    let mut legs = run(&[
        req(T0, Method::Invite, 1),
        resp(T0 + S, 200, 1, Method::Invite),
        refer,
        resp(T0 + 10 * S + 1, 202, 2, Method::Refer),
        new_invite,
        resp(T0 + 12 * S, 200, 1, Method::Invite).call_id(b"call-2@example.com"),
    ]);
    legs.sort_by_key(|l| l.start);
    assert_eq!(legs.len(), 2);
    assert_eq!(legs[0].refer_to.as_deref(), Some("<sip:300@example.com>"));
    assert_eq!(
        legs[0].referred_by, None,
        "the leg was not created by a referral"
    );
    assert_eq!(legs[1].call_id, "call-2@example.com");
    assert_eq!(
        legs[1].referred_by.as_deref(),
        Some("<sip:200@example.com>")
    );
    assert!(legs[1].replaces.as_deref().unwrap().starts_with("call-1@"));
}

#[test]
fn a_late_message_after_the_deadline_closes_the_leg_first() {
    // No sweep between the 486 and the stray ACK 6 s later: the leg must still close with the
    // 486 as its end, and the ACK must not extend it.
    let mut tracker = Tracker::new(TrackerConfig::default());
    req(T0, Method::Invite, 1).feed(&mut tracker);
    resp(T0 + 500_000, 486, 1, Method::Invite).feed(&mut tracker);
    req(T0 + 6 * S, Method::Ack, 1).feed(&mut tracker);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end, T0 + 500_000);
    assert_eq!(leg.sip_message_count, 2);
}

#[test]
fn messages_are_kept_only_when_asked_and_capped() {
    let config = TrackerConfig {
        keep_messages: true,
        max_messages_per_leg: 3,
        ..TrackerConfig::default()
    };
    let mut tracker = Tracker::new(config);
    for w in basic_call() {
        w.feed(&mut tracker);
    }
    tracker.finish();
    let leg = only(tracker.take_closed());
    assert_eq!(leg.messages.len(), 3);
    assert_eq!(leg.sip_message_count, 7);
    assert_eq!(leg.messages[0].ts, T0);
    assert_eq!(leg.messages[1].src, callee_addr());

    assert!(only(run(&basic_call())).messages.is_empty());
}

/// Several overlapping calls with assorted outcomes, spread over `span` seconds.
fn scenario(calls: &[(u8, i64)]) -> Vec<Wire> {
    const IDS: [&[u8]; 8] = [b"c0", b"c1", b"c2", b"c3", b"c4", b"c5", b"c6", b"c7"];
    let mut wires = Vec::new();
    for (i, &(kind, start)) in calls.iter().enumerate() {
        let id = IDS[i % IDS.len()];
        let t = T0 + start * S;
        let mut w = vec![req(t, Method::Invite, 1)];
        match kind % 4 {
            0 => w.extend([
                resp(t + S, 200, 1, Method::Invite),
                req(t + 30 * S, Method::Bye, 2),
                resp(t + 30 * S + 7, 200, 2, Method::Bye),
            ]),
            1 => w.push(resp(t + 2 * S, 486, 1, Method::Invite)),
            2 => w.extend([
                req(t + 3 * S, Method::Cancel, 1),
                resp(t + 3 * S + 9, 487, 1, Method::Invite),
            ]),
            _ => w.push(resp(t + S, 180, 1, Method::Invite)),
        }
        wires.extend(w.into_iter().map(|m| m.call_id(id)));
    }
    wires.sort_by_key(|w| w.ts);
    wires
}

proptest! {
    /// Timers run on packet time: extra clock ticks between messages (as a live sensor or a
    /// fast reader would produce) never change the legs.
    #[test]
    fn legs_do_not_depend_on_how_often_time_advances(
        calls in prop::collection::vec((0u8..4, 0i64..2000), 1..8),
        ticks in prop::collection::vec(0u64..1000, 0..40),
    ) {
        // Unique Call-IDs only: a reused id would legitimately interact.
        let calls: Vec<_> = calls.into_iter().take(8).collect();
        let (plain, ticked) = plain_and_ticked(&calls, &ticks);
        prop_assert_eq!(&plain, &ticked);
        prop_assert_eq!(plain.len(), calls.len());
    }
}

/// The legs of `scenario(calls)` read straight through, and read with extra clock ticks
/// (each tick a fraction in 1/1000 of the gap before the next message), both sorted.
fn plain_and_ticked(calls: &[(u8, i64)], ticks: &[u64]) -> (Vec<Leg>, Vec<Leg>) {
    let wires = scenario(calls);
    let mut plain = run(&wires);

    let mut tracker = Tracker::new(TrackerConfig::default());
    let mut ticks = ticks.iter();
    let mut last = T0;
    for w in &wires {
        if let Some(tick) = ticks.next() {
            let span = (w.ts - last).max(0) as u64;
            tracker.advance(last + (tick * span / 1000) as i64);
        }
        w.feed(&mut tracker);
        last = w.ts;
    }
    tracker.finish();
    let mut ticked = tracker.take_closed();

    let key = |l: &Leg| (l.start, l.call_id.clone());
    plain.sort_by_key(key);
    ticked.sort_by_key(key);
    (plain, ticked)
}

/// Found by the property above: a ringing leg whose zombie deadline is exactly the last
/// packet of the input closed as `timeout_zombie` or `end_of_input` depending on whether the
/// once-a-second sweep happened to run at that instant.
#[test]
fn a_deadline_on_the_last_packet_closes_the_same_with_or_without_ticks() {
    let (plain, ticked) =
        plain_and_ticked(&[(1, 1530), (0, 0), (3, 1231)], &[0, 0, 0, 0, 0, 0, 0, 501]);
    assert_eq!(plain, ticked);
    let ringing = plain.iter().find(|l| l.call_id == "c2").unwrap();
    assert_eq!(ringing.end_reason, EndReason::TimeoutZombie);
}

#[test]
fn an_unanswered_leg_kept_alive_by_retransmissions_hits_the_absolute_timeout() {
    let mut tracker = Tracker::new(TrackerConfig::default());
    // A broken UA re-sending its INVITE every 200 s: never a zombie (packets keep coming),
    // but no leg outlives the absolute timeout.
    let mut t = T0;
    while t < T0 + 4 * 3600 * S {
        req(t, Method::Invite, 1).feed(&mut tracker);
        t += 200 * S;
    }
    tracker.advance(T0 + 4 * 3600 * S + 2 * S);
    let leg = only(tracker.take_closed());
    assert_eq!(leg.end_reason, EndReason::TimeoutAbsolute);
    assert_eq!(leg.end, t - 200 * S, "ends at its last packet");
}
