//! The dialog state machine: SIP messages in packet-time order in, closed legs out.

use std::collections::HashMap;
use std::net::SocketAddr;

use sip::{Message, Method, NameAddr, StartLine, Transport};

use crate::leg::{EndReason, Leg, LegMessage, Micros, Side};

const SECOND: Micros = 1_000_000;

/// Timers and limits of the tracker. Defaults are those of a mature sniffer (SPEC §1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Linger after a final non-2xx (to catch its ACK and a late fork's 2xx).
    pub close_after_final: Micros,
    /// Linger after a BYE confirmed by its 200.
    pub close_after_bye_confirmed: Micros,
    /// Wait for the 200 to a BYE before closing it unconfirmed.
    pub close_after_bye_unconfirmed: Micros,
    /// Linger after a CANCEL (200 CANCEL, 487, ACK, or a 200 INVITE that won the race).
    pub close_after_cancel: Micros,
    /// An unanswered leg with no packet for this long is a zombie.
    pub zombie_timeout: Micros,
    /// No leg lives longer than this from its start.
    pub absolute_timeout: Micros,
    /// Keep each leg's raw SIP messages (for the message ladder).
    pub keep_messages: bool,
    /// Per-leg cap on kept messages, so one runaway dialog cannot eat memory.
    pub max_messages_per_leg: usize,
    /// Sensor id written into every leg.
    pub sensor_id: u32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            close_after_final: 5 * SECOND,
            close_after_bye_confirmed: 5 * SECOND,
            close_after_bye_unconfirmed: 20 * SECOND,
            close_after_cancel: 10 * SECOND,
            zombie_timeout: 300 * SECOND,
            absolute_timeout: 4 * 3600 * SECOND,
            keep_messages: false,
            max_messages_per_leg: 1000,
            sensor_id: 1,
        }
    }
}

/// Where and when a message was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub ts: Micros,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
}

/// Counters of what the tracker did with the messages it was given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackerStats {
    pub messages: u64,
    /// Messages without a Call-ID or CSeq: unusable for dialog tracking.
    pub unusable: u64,
    /// Messages whose Call-ID belongs to no leg and cannot open one (REGISTER, OPTIONS...).
    pub outside_calls: u64,
    pub legs_opened: u64,
    pub legs_closed: u64,
}

/// How far a leg has come. The `ending` states carry the instant the leg's end was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE seen (or a provisional response), no final answer yet.
    Setup,
    /// A 2xx to the INVITE was seen.
    Answered,
    /// Ended by a final non-2xx; lingers to catch the ACK or a late fork's 2xx.
    Failed,
    /// Cancelled; lingers for 487 / 200 CANCEL, or a 2xx that won the race.
    Cancelled,
    /// A BYE was seen, its 200 not yet.
    ByeSent,
    /// The BYE's 200 was seen.
    ByeConfirmed,
}

struct OpenLeg {
    leg: Leg,
    phase: Phase,
    /// CSeq number of the current out-of-dialog INVITE: its responses decide answer/failure.
    invite_cseq: u32,
    /// To-tags of early dialogs (forks) that have not sent a final response.
    pending_forks: Vec<Vec<u8>>,
    last_packet: Micros,
    /// When this leg closes unless something revives it.
    deadline: Micros,
}

/// Tracks SIP dialogs and turns them into CDR legs.
///
/// Feed messages in capture order with [`Tracker::message`]; closed legs accumulate and are
/// taken with [`Tracker::take_closed`]. Time only advances with the messages (and with
/// [`Tracker::advance`]), never with the wall clock.
pub struct Tracker {
    config: TrackerConfig,
    open: HashMap<Vec<u8>, OpenLeg>,
    closed: Vec<Leg>,
    now: Micros,
    next_sweep: Micros,
    stats: TrackerStats,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Tracker {
        Tracker {
            config,
            open: HashMap::new(),
            closed: Vec::new(),
            now: Micros::MIN,
            next_sweep: Micros::MIN,
            stats: TrackerStats::default(),
        }
    }

    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    pub fn stats(&self) -> TrackerStats {
        self.stats
    }

    /// Number of legs not yet closed.
    pub fn open_legs(&self) -> usize {
        self.open.len()
    }

    /// Legs that are live now: answered or being set up, not yet ended. What "active
    /// channels now" counts.
    pub fn live_legs(&self) -> impl Iterator<Item = &Leg> {
        self.open
            .values()
            .filter(|o| matches!(o.phase, Phase::Setup | Phase::Answered))
            .map(|o| &o.leg)
    }

    /// Closed legs waiting to be taken.
    pub fn closed_count(&self) -> usize {
        self.closed.len()
    }

    /// Closed legs since the last call, in closing order.
    pub fn take_closed(&mut self) -> Vec<Leg> {
        std::mem::take(&mut self.closed)
    }

    /// Move packet time forward (e.g. from non-SIP packets or a live clock tick), closing legs
    /// whose timers expired. Expired legs are swept at most once per second of packet time, so
    /// a leg is emitted up to a second after its deadline; what it contains does not depend on
    /// that, because a message for an expired leg closes it before being considered.
    pub fn advance(&mut self, now: Micros) {
        if now > self.now {
            self.now = now;
        }
        if self.now >= self.next_sweep {
            self.sweep();
            self.next_sweep = self.now.saturating_add(SECOND);
        }
    }

    /// End of input: every leg still open is closed. Legs whose deadline has already passed
    /// close as their timer says (swept here, because the once-a-second sweep may not have
    /// run since: otherwise the reason would depend on how often time was advanced); legs
    /// whose end was already decided keep their reason; the others end at their last packet
    /// with `end_of_input`.
    pub fn finish(&mut self) {
        self.sweep();
        let mut keys: Vec<Vec<u8>> = self.open.keys().cloned().collect();
        // Deterministic order: by start time, then Call-ID.
        keys.sort_by(|a, b| {
            let (la, lb) = (&self.open[a].leg, &self.open[b].leg);
            (la.start, &la.call_id).cmp(&(lb.start, &lb.call_id))
        });
        for key in keys {
            if let Some(open) = self.open.remove(&key) {
                let reason = match open.phase {
                    Phase::Setup | Phase::Answered => Some(EndReason::EndOfInput),
                    _ => None,
                };
                self.close(open, reason);
            }
        }
    }

    /// Account one SIP message. `raw` is kept when the config asks for messages.
    pub fn message(&mut self, origin: &Origin, msg: &Message<'_>, raw: &[u8]) {
        self.stats.messages += 1;
        self.advance(origin.ts);
        let (Some(call_id), Some(cseq)) = (msg.call_id, msg.cseq) else {
            self.stats.unusable += 1;
            return;
        };
        // A leg whose deadline passed closes before this message is considered, so the result
        // does not depend on how often the sweep runs.
        if self
            .open
            .get(call_id)
            .is_some_and(|o| o.deadline <= origin.ts)
            && let Some(open) = self.open.remove(call_id)
        {
            let reason = timeout_reason(&self.config, &open);
            self.close(open, reason);
        }

        if let Some(open) = self.open.get_mut(call_id) {
            open.last_packet = open.last_packet.max(origin.ts);
            record(&self.config, &mut open.leg, origin, raw);
            apply(open, origin.ts, msg, cseq.seq, cseq.method);
            open.deadline = deadline(&self.config, open);
            return;
        }

        let Some(mut open) = self.open_leg(call_id, origin, msg) else {
            self.stats.outside_calls += 1;
            return;
        };
        record(&self.config, &mut open.leg, origin, raw);
        apply(&mut open, origin.ts, msg, cseq.seq, cseq.method);
        open.deadline = deadline(&self.config, &open);
        self.stats.legs_opened += 1;
        self.open.insert(call_id.to_vec(), open);
    }

    /// A leg starts with an INVITE, or (partial) with a 18x/2xx to an INVITE whose request was
    /// not captured, or with an in-dialog INVITE of a dialog that began before the capture.
    fn open_leg(&self, call_id: &[u8], origin: &Origin, msg: &Message<'_>) -> Option<OpenLeg> {
        let cseq = msg.cseq?;
        let (partial, caller_side) = match msg.start {
            StartLine::Request {
                method: Method::Invite,
                ..
            } => (msg.to.is_some_and(|t| t.tag.is_some()), true),
            StartLine::Response { code, .. }
                if cseq.method == Method::Invite && (180..300).contains(&code) =>
            {
                (true, false)
            }
            _ => return None,
        };
        let (src, dst) = if caller_side {
            (origin.src, origin.dst)
        } else {
            (origin.dst, origin.src)
        };
        let from = msg.from.unwrap_or_default();
        let to = msg.to.unwrap_or_default();
        let leg = Leg {
            call_id: text(call_id),
            sensor_id: self.config.sensor_id,
            caller: text(from.user),
            caller_domain: text(from.domain),
            caller_name: from.display.map(text),
            called: text(to.user),
            called_domain: text(to.domain),
            called_name: to.display.map(text),
            from_tag: from.tag.map(text),
            to_tag: None,
            start: origin.ts,
            answer: None,
            end: origin.ts,
            last_response: None,
            last_response_text: None,
            end_reason: EndReason::EndOfInput,
            hangup_by: None,
            transport: origin.transport,
            src_ip: src.ip(),
            src_port: src.port(),
            dst_ip: dst.ip(),
            dst_port: dst.port(),
            partial,
            referred_by: msg.referred_by.map(text),
            refer_to: None,
            replaces: msg.replaces.map(text),
            user_agent: msg.user_agent.map(text),
            sip_message_count: 0,
            messages: Vec::new(),
        };
        Some(OpenLeg {
            leg,
            phase: Phase::Setup,
            invite_cseq: cseq.seq,
            pending_forks: Vec::new(),
            last_packet: origin.ts,
            deadline: Micros::MAX,
        })
    }

    fn sweep(&mut self) {
        let now = self.now;
        let expired: Vec<Vec<u8>> = self
            .open
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(k, _)| k.clone())
            .collect();
        let mut legs: Vec<OpenLeg> = expired.iter().filter_map(|k| self.open.remove(k)).collect();
        legs.sort_by(|a, b| (a.deadline, &a.leg.call_id).cmp(&(b.deadline, &b.leg.call_id)));
        for open in legs {
            let reason = timeout_reason(&self.config, &open);
            self.close(open, reason);
        }
    }

    /// Emit a leg. `reason` is given for timeouts and end of input, which end a leg at its last
    /// packet; otherwise the phase decided both the reason and the end.
    fn close(&mut self, mut open: OpenLeg, reason: Option<EndReason>) {
        match reason {
            Some(r) => {
                open.leg.end_reason = r;
                open.leg.end = open.last_packet;
            }
            None => {
                open.leg.end_reason = match open.phase {
                    Phase::Failed => EndReason::NotAnswered,
                    Phase::Cancelled => EndReason::Cancel,
                    Phase::ByeSent => EndReason::Bye,
                    Phase::ByeConfirmed => EndReason::ByeConfirmed,
                    Phase::Setup | Phase::Answered => EndReason::EndOfInput,
                };
            }
        }
        self.stats.legs_closed += 1;
        self.closed.push(open.leg);
    }
}

/// The reason a leg closes when its deadline passes: `None` keeps the reason its phase decided.
fn timeout_reason(config: &TrackerConfig, open: &OpenLeg) -> Option<EndReason> {
    let absolute = open.leg.start.saturating_add(config.absolute_timeout);
    match open.phase {
        Phase::Setup if open.deadline >= absolute => Some(EndReason::TimeoutAbsolute),
        Phase::Setup => Some(EndReason::TimeoutZombie),
        Phase::Answered => Some(EndReason::AnsweredNoBye),
        _ => None,
    }
}

/// Did the leg's INVITE fail with an authentication challenge (401/407)?
fn challenged(open: &OpenLeg) -> bool {
    matches!(open.leg.last_response, Some(401 | 407))
}

/// When the leg closes if nothing else happens.
fn deadline(config: &TrackerConfig, open: &OpenLeg) -> Micros {
    let absolute = open.leg.start.saturating_add(config.absolute_timeout);
    let by_phase = match open.phase {
        Phase::Setup => open.last_packet.saturating_add(config.zombie_timeout),
        Phase::Answered => Micros::MAX,
        // A challenge (401/407) is answered by a new INVITE on the same Call-ID, however long
        // the caller takes to find its credentials: the leg waits as long as an unanswered one.
        Phase::Failed if challenged(open) => open
            .leg
            .end
            .saturating_add(config.close_after_final)
            .max(open.last_packet.saturating_add(config.zombie_timeout)),
        Phase::Failed => open.leg.end.saturating_add(config.close_after_final),
        Phase::Cancelled => open.leg.end.saturating_add(config.close_after_cancel),
        Phase::ByeSent => open
            .leg
            .end
            .saturating_add(config.close_after_bye_unconfirmed),
        Phase::ByeConfirmed => open
            .leg
            .end
            .saturating_add(config.close_after_bye_confirmed),
    };
    by_phase.min(absolute)
}

fn record(config: &TrackerConfig, leg: &mut Leg, origin: &Origin, raw: &[u8]) {
    leg.sip_message_count = leg.sip_message_count.saturating_add(1);
    if config.keep_messages && leg.messages.len() < config.max_messages_per_leg {
        leg.messages.push(LegMessage {
            ts: origin.ts,
            src: origin.src,
            dst: origin.dst,
            transport: origin.transport,
            raw: raw.to_vec(),
        });
    }
}

/// Apply one message to an open leg.
fn apply(open: &mut OpenLeg, ts: Micros, msg: &Message<'_>, cseq: u32, cseq_method: Method<'_>) {
    match msg.start {
        StartLine::Request { method, .. } => match method {
            Method::Invite => {
                let out_of_dialog = msg.to.is_some_and(|t| t.tag.is_none());
                if out_of_dialog && cseq != open.invite_cseq && open.leg.answer.is_none() {
                    // A new attempt on the same Call-ID (after 401/407, or a late fork race):
                    // the leg goes on with this INVITE's responses.
                    open.invite_cseq = cseq;
                    open.pending_forks.clear();
                    if matches!(open.phase, Phase::Failed) {
                        // The failed attempt's response and To-tag were that transaction's;
                        // this attempt's responses tell how the leg goes on.
                        open.phase = Phase::Setup;
                        open.leg.last_response = None;
                        open.leg.last_response_text = None;
                        open.leg.to_tag = None;
                    }
                }
                if open.leg.referred_by.is_none() {
                    open.leg.referred_by = msg.referred_by.map(text);
                }
                if open.leg.replaces.is_none() {
                    open.leg.replaces = msg.replaces.map(text);
                }
            }
            Method::Cancel => {
                if matches!(open.phase, Phase::Setup) {
                    open.phase = Phase::Cancelled;
                    open.leg.end = ts;
                    open.leg.hangup_by = Some(Side::Caller);
                }
            }
            Method::Bye => {
                if matches!(open.phase, Phase::Setup | Phase::Answered) {
                    open.phase = Phase::ByeSent;
                    open.leg.end = ts;
                    open.leg.hangup_by = Some(side_of(open, msg.from));
                }
            }
            // The REFER's own Referred-By names the transferor, who is a party of this leg
            // anyway; `referred_by` stays reserved for "this leg was created by a referral".
            Method::Refer => {
                if let Some(refer_to) = msg.refer_to {
                    open.leg.refer_to = Some(text(refer_to));
                }
            }
            _ => {}
        },
        StartLine::Response { code, reason } => {
            if cseq_method == Method::Invite && cseq == open.invite_cseq {
                invite_response(open, ts, code, reason, msg.to);
            } else if cseq_method == Method::Bye
                && (200..300).contains(&code)
                && matches!(open.phase, Phase::ByeSent)
            {
                open.phase = Phase::ByeConfirmed;
                open.leg.end = ts;
            }
        }
    }
}

fn invite_response(
    open: &mut OpenLeg,
    ts: Micros,
    code: u16,
    reason: &[u8],
    to: Option<NameAddr<'_>>,
) {
    let tag = to.and_then(|t| t.tag);
    // The last response to the INVITE, but a late provisional never hides a final one.
    let final_seen = open.leg.last_response.is_some_and(|c| c >= 200);
    if code >= 100 && open.leg.answer.is_none() && (code >= 200 || !final_seen) {
        open.leg.last_response = Some(code);
        open.leg.last_response_text = Some(text(reason));
    }
    match code {
        101..=199 => {
            if let Some(tag) = tag
                && !open.pending_forks.iter().any(|t| t == tag)
            {
                open.pending_forks.push(tag.to_vec());
            }
            if open.leg.to_tag.is_none() {
                open.leg.to_tag = tag.map(text);
            }
        }
        200..=299 if open.leg.answer.is_none() => {
            open.leg.answer = Some(ts);
            open.leg.to_tag = tag.map(text);
            // A 2xx revives a leg a failing fork or a racing CANCEL had ended.
            if matches!(open.phase, Phase::Setup | Phase::Failed | Phase::Cancelled) {
                open.phase = Phase::Answered;
                open.leg.end = ts;
                open.leg.hangup_by = None;
            }
        }
        300..=699 => {
            if let Some(tag) = tag {
                open.pending_forks.retain(|t| t != tag);
            }
            if tag.is_some() && !open.pending_forks.is_empty() {
                // Another fork may still answer: this failure does not end the leg.
                return;
            }
            if matches!(open.phase, Phase::Setup) {
                open.phase = Phase::Failed;
                open.leg.end = ts;
                if tag.is_some() {
                    open.leg.to_tag = tag.map(text);
                }
            }
        }
        _ => {}
    }
}

/// Who sent an in-dialog request: the caller keeps the From-tag of the INVITE.
fn side_of(open: &OpenLeg, from: Option<NameAddr<'_>>) -> Side {
    match (from.and_then(|f| f.tag), open.leg.from_tag.as_deref()) {
        (Some(tag), Some(leg_tag)) if tag == leg_tag.as_bytes() => Side::Caller,
        (Some(_), Some(_)) => Side::Callee,
        _ => Side::Caller,
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
