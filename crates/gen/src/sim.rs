//! The call simulator: a time-ordered event queue of per-call next steps, streamed to pcap.
//!
//! Every active call has at most three pending events: its next SIP step and, once answered,
//! the next RTP packet of each direction. Popping the earliest event, writing its packet and
//! pushing the call's following event yields a capture in non-decreasing time order while
//! memory stays proportional to the number of concurrent calls, never to the file size.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt::Write as _;
use std::io::{self, Write};

use crate::args::Config;
use crate::pcap::{
    ETH_LEN, Endpoint, IPPROTO_UDP, IPV4_LEN, PcapWriter, RECORD_HEADER_LEN, TCP_ACK, TCP_FIN,
    TCP_PSH, TCP_SYN, TOS_SIGNALLING, TOS_VOICE, UDP_LEN, build_tcp_record, build_udp_record,
    patch_record_time, push_eth_ipv4, push_record_header,
};
use crate::rng::Rng;
use crate::time::{MILLI, Micros, SECOND, format_rfc3339};

/// 20 ms of G.711 at 8 kHz.
const PTIME: Micros = 20 * MILLI;
const SAMPLES_PER_PACKET: u32 = 160;
const RTP_HEADER_LEN: usize = 12;
/// RTP header + 160 bytes of audio = the 172-byte UDP payload of a G.711/20 ms stream.
pub const RTP_PAYLOAD_LEN: usize = RTP_HEADER_LEN + SAMPLES_PER_PACKET as usize;
const RTP_OFFSET: usize = RECORD_HEADER_LEN + ETH_LEN + IPV4_LEN + UDP_LEN;
const RTP_RECORD_LEN: usize = RTP_OFFSET + RTP_PAYLOAD_LEN;

/// The first calls start within this window so the capture reaches the target concurrency at
/// once instead of ramping up over a mean call time (talk times are exponential, hence
/// memoryless, so this burst is statistically the same as joining a busy hour in progress).
const RAMP: Micros = 2 * SECOND;

// Signalling delays, uniform in [lo, hi] microseconds. Named so the expected call occupancy
// (which sets the arrival rate) is computed from the very numbers the simulator uses.
const D_TRYING: (u64, u64) = (2 * MILLI, 30 * MILLI);
const D_RINGING: (u64, u64) = (50 * MILLI, 800 * MILLI);
const D_ANSWER: (u64, u64) = (SECOND, 12 * SECOND);
const D_ACK: (u64, u64) = (5 * MILLI, 60 * MILLI);
const D_BYE_OK: (u64, u64) = (5 * MILLI, 80 * MILLI);
const D_404: (u64, u64) = (30 * MILLI, 300 * MILLI);
const D_503: (u64, u64) = (50 * MILLI, 500 * MILLI);
const D_486: (u64, u64) = (500 * MILLI, 5 * SECOND);
const D_CANCEL: (u64, u64) = (2 * SECOND, 30 * SECOND);
const D_CANCEL_OK: (u64, u64) = (2 * MILLI, 30 * MILLI);
const D_487: (u64, u64) = (0, 5 * MILLI);
const D_ACK_FINAL: (u64, u64) = (2 * MILLI, 40 * MILLI);
/// The Linux default ephemeral port range.
const EPHEMERAL: (u64, u64) = (32_768, 60_999);
const D_TCP_HS: (u64, u64) = (200, 2 * MILLI);
const D_TCP_CLOSE: (u64, u64) = (10 * MILLI, 200 * MILLI);
const D_RTP_START: (u64, u64) = (MILLI, 20 * MILLI);
/// Capture-time jitter added to each RTP packet's nominal 20 ms slot (network + scheduling).
const RTP_JITTER_MAX: u64 = 2 * MILLI;

/// Shares of the failed calls: CANCEL (caller gave up), busy, not found, unavailable.
const FAIL_CANCEL: f64 = 0.40;
const FAIL_486: f64 = 0.25;
const FAIL_404: f64 = 0.20;

const CARRIER_IPS: [[u8; 4]; 4] = [
    [203, 0, 113, 10],
    [203, 0, 113, 11],
    [203, 0, 113, 12],
    [203, 0, 113, 13],
];
const PBX_IPS: [[u8; 4]; 4] = [
    [198, 51, 100, 20],
    [198, 51, 100, 21],
    [198, 51, 100, 22],
    [198, 51, 100, 23],
];
const CARRIER_DOMAINS: [&str; 4] = [
    "sip.carrier-a.example.net",
    "sip.carrier-b.example.net",
    "voice.carrier-c.example.org",
    "trunk.carrier-d.example.org",
];
const PBX_DOMAINS: [&str; 4] = [
    "pbx1.example.com",
    "pbx2.example.com",
    "pbx.branch.example.com",
    "sbc.example.com",
];
const CARRIER_UA: [&str; 3] = ["ExampleSBC/4.2.1", "CarrierSwitch 11.0.7", "Edge-Proxy/2.9"];
const PBX_UA: [&str; 3] = ["ExamplePBX 18.3.2", "OfficeVoice/7.1", "BranchGateway 3.4"];
const NAMES: [&str; 8] = [
    "Anna Schmidt",
    "Jean Dupont",
    "Maria Rossi",
    "John Smith",
    "Eva Novak",
    "Lars Berg",
    "Ana Silva",
    "Front Desk",
];
const COUNTRY_CODES: [&str; 6] = ["+49", "+33", "+44", "+1", "+41", "+43"];
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY";

fn uniform(rng: &mut Rng, (lo, hi): (u64, u64)) -> u64 {
    rng.range(lo, hi)
}

fn mean((lo, hi): (u64, u64)) -> f64 {
    (lo + hi) as f64 / 2.0
}

/// What will happen to a call, decided when it starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Answered { callee_hangs_up: bool },
    Reject(u16),
    Cancel,
}

/// The next SIP action of a call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Syn,
    SynAck,
    HandshakeAck,
    Fin,
    FinAck,
    LastAck,
    Invite,
    Trying,
    Ringing,
    Ok,
    Ack,
    Bye,
    ByeOk,
    Final(u16),
    AckFinal,
    Cancel,
    CancelOk,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EndReason {
    ByeConfirmed,
    NotAnswered,
    Cancel,
}

impl EndReason {
    fn as_str(self) -> &'static str {
        match self {
            EndReason::ByeConfirmed => "bye_confirmed",
            EndReason::NotAnswered => "not_answered",
            EndReason::Cancel => "cancel",
        }
    }
}

/// Sequence state of a call's own TCP connection (caller ephemeral port -> callee 5060).
struct Tcp {
    seq_a: u32,
    seq_b: u32,
}

/// One direction of RTP: a complete pcap record, patched in place for each packet.
struct RtpStream {
    rec: [u8; RTP_RECORD_LEN],
    nominal: Micros,
    seq: u16,
    ts: u32,
}

impl RtpStream {
    fn new(rng: &mut Rng, src: Endpoint, dst: Endpoint, first: Micros) -> Self {
        let mut v = Vec::with_capacity(RTP_RECORD_LEN);
        let l4_len = UDP_LEN + RTP_PAYLOAD_LEN;
        push_record_header(&mut v, 0, ETH_LEN + IPV4_LEN + l4_len);
        // IP id 0 and UDP checksum 0 (legal with DF over IPv4) keep every header byte constant
        // per stream, so only the record time and the RTP seq/timestamp change per packet.
        push_eth_ipv4(&mut v, src.ip, dst.ip, IPPROTO_UDP, TOS_VOICE, 0, l4_len);
        v.extend_from_slice(&src.port.to_be_bytes());
        v.extend_from_slice(&dst.port.to_be_bytes());
        v.extend_from_slice(&(l4_len as u16).to_be_bytes());
        v.extend_from_slice(&[0, 0]);
        let seq = rng.next_u64() as u16;
        let ts = rng.next_u64() as u32;
        let ssrc = rng.next_u64() as u32;
        v.extend_from_slice(&[0x80, 0x80]); // V=2, marker on the first packet, PT 0 (PCMU)
        v.extend_from_slice(&seq.to_be_bytes());
        v.extend_from_slice(&ts.to_be_bytes());
        v.extend_from_slice(&ssrc.to_be_bytes());
        // Low-level comfort-noise-like u-law bytes (0xff is digital silence).
        for _ in 0..SAMPLES_PER_PACKET {
            v.push(0xf0 | (rng.next_u64() as u8 & 0x0f));
        }
        let mut rec = [0u8; RTP_RECORD_LEN];
        rec.copy_from_slice(&v);
        Self {
            rec,
            nominal: first,
            seq,
            ts,
        }
    }

    /// Patches this packet's time, sequence number and timestamp; returns the record.
    #[inline]
    fn packet(&mut self, at: Micros) -> &[u8] {
        patch_record_time(&mut self.rec, at);
        self.rec[RTP_OFFSET + 2..RTP_OFFSET + 4].copy_from_slice(&self.seq.to_be_bytes());
        self.rec[RTP_OFFSET + 4..RTP_OFFSET + 8].copy_from_slice(&self.ts.to_be_bytes());
        &self.rec
    }

    #[inline]
    fn advance(&mut self) {
        self.rec[RTP_OFFSET + 1] &= 0x7f; // marker only on the first packet of the talk spurt
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(SAMPLES_PER_PACKET);
        self.nominal += PTIME;
    }
}

struct Call {
    gen_: u32,
    /// Queue order of the pending SIP event; an event with another order is stale (rescheduled).
    sig_order: u64,
    step: Step,
    outcome: Outcome,
    tcp: Option<Tcp>,
    a: Endpoint,
    b: Endpoint,
    a_media: Endpoint,
    b_media: Endpoint,
    caller: String,
    called: String,
    call_id: String,
    /// `From` header value of the caller, tag included.
    from_a: String,
    /// `To` header value without and with the callee's tag.
    to_b: String,
    to_b_tag: String,
    invite_branch: String,
    contact_a: String,
    contact_b: String,
    ua_a: &'static str,
    ua_b: &'static str,
    sdp_id: u64,
    bye_cseq: u32,
    start: Micros,
    answer: Option<Micros>,
    end: Option<Micros>,
    last_response: u16,
    rtp: Option<Box<[RtpStream; 2]>>,
    rtp_end: Micros,
}

impl Call {
    fn transport(&self) -> &'static str {
        if self.tcp.is_some() { "TCP" } else { "UDP" }
    }
}

/// Counters reported in the summary.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub calls: u64,
    pub answered: u64,
    pub rejected: u64,
    pub cancelled: u64,
    pub tcp_calls: u64,
    pub sip_messages: u64,
    pub rtp_packets: u64,
    pub packets: u64,
    pub bytes: u64,
    pub first: Micros,
    pub last: Micros,
    pub peak_concurrency: u64,
    /// Time-weighted mean of concurrent calls over the capture.
    pub mean_concurrency: f64,
}

const KIND_SIP: u8 = 0;
const KIND_RTP_AB: u8 = 1;
const KIND_RTP_BA: u8 = 2;
const KIND_ARRIVAL: u8 = 3;

/// (time, insertion order, slot, slot generation, kind); the order makes ties deterministic.
type Event = Reverse<(Micros, u64, u32, u32, u8)>;

pub struct Sim<W: Write, T: Write> {
    cfg: Config,
    rng: Rng,
    w: PcapWriter<W>,
    truth: Option<T>,
    queue: BinaryHeap<Event>,
    order: u64,
    slots: Vec<Option<Call>>,
    gens: Vec<u32>,
    free: Vec<u32>,
    msg: String,
    rec: Vec<u8>,
    line: String,
    ip_id: u16,
    /// Next ephemeral TCP port per carrier IP, handed out in sequence as a kernel does, so two
    /// calls never share a connection 4-tuple (ports wrap only after ~28000 connections).
    next_port: [u16; CARRIER_IPS.len()],
    started: u64,
    stopping: bool,
    /// Mean gap between call arrivals in steady state (Little's law: rate = concurrency / occupancy).
    arrival_gap_mean: f64,
    active: u64,
    area: f64,
    area_since: Micros,
    stats: Stats,
}

/// Expected time from INVITE to CDR end of one call under `cfg`, in microseconds.
fn expected_occupancy(cfg: &Config) -> f64 {
    let talk = cfg.duration_s * SECOND as f64;
    let setup = mean(D_TRYING) + mean(D_RINGING);
    let answered = setup + mean(D_ANSWER) + mean(D_ACK) + talk + mean(D_BYE_OK);
    let cancel = setup + mean(D_CANCEL);
    let busy = setup + mean(D_486);
    let not_found = mean(D_TRYING) + mean(D_404);
    let unavailable = mean(D_TRYING) + mean(D_503);
    let fail_503 = 1.0 - FAIL_CANCEL - FAIL_486 - FAIL_404;
    let failed =
        FAIL_CANCEL * cancel + FAIL_486 * busy + FAIL_404 * not_found + fail_503 * unavailable;
    (1.0 - cfg.failure_ratio) * answered + cfg.failure_ratio * failed
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn e164(rng: &mut Rng) -> String {
    let cc = rng.pick(&COUNTRY_CODES);
    let mut s = String::with_capacity(14);
    s.push_str(cc);
    let digits = 12 - (cc.len() - 1);
    s.push(char::from(b'1' + rng.range(0, 8) as u8)); // no leading zero after the country code
    for _ in 1..digits {
        s.push(char::from(b'0' + rng.range(0, 9) as u8));
    }
    s
}

impl<W: Write, T: Write> Sim<W, T> {
    pub fn new(cfg: Config, out: W, truth: Option<T>) -> io::Result<Self> {
        let arrival_gap_mean = expected_occupancy(&cfg) / f64::from(cfg.concurrency);
        let cap = cfg.concurrency as usize * 2;
        let start = cfg.start;
        let mut rng = Rng::new(cfg.seed);
        let next_port = std::array::from_fn(|_| rng.range(EPHEMERAL.0, EPHEMERAL.1) as u16);
        Ok(Self {
            rng,
            next_port,
            w: PcapWriter::new(out)?,
            truth,
            queue: BinaryHeap::with_capacity(cap * 3),
            order: 0,
            slots: Vec::with_capacity(cap),
            gens: Vec::with_capacity(cap),
            free: Vec::new(),
            msg: String::with_capacity(2048),
            rec: Vec::with_capacity(2048),
            line: String::with_capacity(512),
            ip_id: 1,
            started: 0,
            stopping: false,
            arrival_gap_mean,
            active: 0,
            area: 0.0,
            area_since: start,
            stats: Stats {
                first: start,
                last: start,
                ..Stats::default()
            },
            cfg,
        })
    }

    fn push(&mut self, at: Micros, slot: u32, gen_: u32, kind: u8) -> u64 {
        self.order += 1;
        self.queue.push(Reverse((at, self.order, slot, gen_, kind)));
        self.order
    }

    /// Schedules the call's next SIP step, superseding any pending one.
    fn schedule(&mut self, slot: u32, at: Micros, step: Step) {
        let gen_ = self.gens[slot as usize];
        let order = self.push(at, slot, gen_, KIND_SIP);
        let call = self.slots[slot as usize].as_mut().expect("live slot");
        call.step = step;
        call.sig_order = order;
    }

    fn may_start_more(&self) -> bool {
        !self.stopping && self.cfg.calls.is_none_or(|n| self.started < n)
    }

    fn concurrency_change(&mut self, now: Micros, up: bool) {
        self.area += self.active as f64 * now.saturating_sub(self.area_since) as f64;
        self.area_since = now;
        if up {
            self.active += 1;
            self.stats.peak_concurrency = self.stats.peak_concurrency.max(self.active);
        } else {
            self.active -= 1;
        }
    }

    /// Runs to completion and returns the counters.
    pub fn run(mut self) -> io::Result<(Stats, W, Option<T>)> {
        let t0 = self.cfg.start;
        let burst = self.cfg.calls.map_or(u64::from(self.cfg.concurrency), |n| {
            n.min(u64::from(self.cfg.concurrency))
        });
        let mut burst_times: Vec<Micros> =
            (0..burst).map(|_| t0 + self.rng.range(0, RAMP)).collect();
        burst_times.sort_unstable();
        for t in burst_times {
            self.push(t, u32::MAX, 0, KIND_ARRIVAL);
        }
        // The burst calls all spend their (not memoryless) setup time at once; starting the
        // steady arrivals one mean setup time later keeps the early concurrency near the target
        // instead of overshooting by arrival_rate * setup.
        let setup = expected_occupancy(&Config {
            duration_s: 0.0,
            ..self.cfg.clone()
        });
        self.push(t0 + RAMP.max(setup as Micros), u32::MAX, 1, KIND_ARRIVAL);

        while let Some(Reverse((now, order, slot, gen_, kind))) = self.queue.pop() {
            if !self.stopping && self.cfg.size.is_some_and(|s| self.w.bytes() >= s) {
                self.wind_down(now);
            }
            match kind {
                KIND_ARRIVAL => {
                    if !self.may_start_more() {
                        continue;
                    }
                    self.start_call(now);
                    // gen_ 1 marks the Poisson chain (burst arrivals do not re-arm it).
                    if gen_ == 1 {
                        let gap = self.rng.exp(self.arrival_gap_mean).max(1.0) as Micros;
                        self.push(now + gap, u32::MAX, 1, KIND_ARRIVAL);
                    }
                }
                KIND_SIP => {
                    let live = self.gens[slot as usize] == gen_
                        && self.slots[slot as usize]
                            .as_ref()
                            .is_some_and(|c| c.sig_order == order);
                    if live {
                        self.sip_step(now, slot)?;
                    }
                }
                _ => self.rtp_step(now, slot, gen_, (kind - KIND_RTP_AB) as usize)?,
            }
        }
        let last = self.stats.last;
        self.area += self.active as f64 * last.saturating_sub(self.area_since) as f64;
        let span = last.saturating_sub(self.stats.first);
        self.stats.mean_concurrency = if span > 0 {
            self.area / span as f64
        } else {
            0.0
        };
        self.stats.packets = self.w.packets();
        self.stats.bytes = self.w.bytes();
        let mut out = self.w.into_inner();
        out.flush()?;
        if let Some(t) = self.truth.as_mut() {
            t.flush()?;
        }
        Ok((self.stats, out, self.truth))
    }

    /// The size target was reached: start no more calls and hang up the answered ones soon,
    /// so every generated call still ends properly (and the truth stays exact).
    fn wind_down(&mut self, now: Micros) {
        self.stopping = true;
        for slot in 0..self.slots.len() {
            let bye = match &self.slots[slot] {
                Some(c) if c.step == Step::Bye => now + self.rng.range(10 * MILLI, SECOND),
                _ => continue,
            };
            if let Some(c) = self.slots[slot].as_mut() {
                c.rtp_end = c.rtp_end.min(bye);
            }
            self.schedule(slot as u32, bye, Step::Bye);
        }
    }

    fn start_call(&mut self, now: Micros) {
        self.started += 1;
        let rng = &mut self.rng;
        let ci = rng.range(0, CARRIER_IPS.len() as u64 - 1) as usize;
        let pi = rng.range(0, PBX_IPS.len() as u64 - 1) as usize;
        let tcp = rng.chance(self.cfg.tcp_ratio);
        let outcome = if rng.chance(self.cfg.failure_ratio) {
            let r = rng.f64();
            if r < FAIL_CANCEL {
                Outcome::Cancel
            } else if r < FAIL_CANCEL + FAIL_486 {
                Outcome::Reject(486)
            } else if r < FAIL_CANCEL + FAIL_486 + FAIL_404 {
                Outcome::Reject(404)
            } else {
                Outcome::Reject(503)
            }
        } else {
            Outcome::Answered {
                callee_hangs_up: rng.chance(0.45),
            }
        };
        let a_port = if tcp {
            let port = self.next_port[ci];
            self.next_port[ci] = if u64::from(port) >= EPHEMERAL.1 {
                EPHEMERAL.0 as u16
            } else {
                port + 1
            };
            port
        } else {
            5060
        };
        let a = Endpoint::new(CARRIER_IPS[ci], a_port);
        let b = Endpoint::new(PBX_IPS[pi], 5060);
        let media_port = |rng: &mut Rng| (10_000 + 2 * rng.range(0, 24_999)) as u16;
        let a_media = Endpoint::new([203, 0, 113, 100 + rng.range(0, 7) as u8], media_port(rng));
        let b_media = Endpoint::new([198, 51, 100, 100 + rng.range(0, 7) as u8], media_port(rng));
        let caller = e164(rng);
        let called = e164(rng);
        let a_dom = CARRIER_DOMAINS[ci];
        let b_dom = PBX_DOMAINS[pi];
        let uri_param = if tcp { ";transport=tcp" } else { "" };

        let mut call_id = String::with_capacity(48);
        rng.hex_into(&mut call_id, 32);
        let _ = write!(call_id, "@{}", ip(a.ip));
        let mut from_a = String::with_capacity(96);
        if rng.chance(0.5) {
            let _ = write!(from_a, "\"{}\" ", rng.pick(&NAMES));
        }
        let _ = write!(from_a, "<sip:{caller}@{a_dom}>;tag=");
        rng.hex_into(&mut from_a, 12);
        let to_b = format!("<sip:{called}@{b_dom}>");
        let mut to_b_tag = format!("{to_b};tag=");
        rng.hex_into(&mut to_b_tag, 10);
        let mut invite_branch = String::from("z9hG4bK");
        rng.hex_into(&mut invite_branch, 20);
        let contact_a = format!("<sip:{caller}@{}:5060{uri_param}>", ip(a.ip));
        let contact_b = format!("<sip:{called}@{}:5060{uri_param}>", ip(b.ip));
        let call = Call {
            gen_: 0,
            sig_order: 0,
            step: Step::Invite,
            outcome,
            tcp: tcp.then(|| Tcp {
                seq_a: rng.next_u64() as u32,
                seq_b: rng.next_u64() as u32,
            }),
            a,
            b,
            a_media,
            b_media,
            caller,
            called,
            call_id,
            from_a,
            to_b,
            to_b_tag,
            invite_branch,
            contact_a,
            contact_b,
            ua_a: rng.pick(&CARRIER_UA),
            ua_b: rng.pick(&PBX_UA),
            sdp_id: rng.range(1_000_000, 9_999_999_999),
            bye_cseq: rng.range(1, 9000) as u32,
            start: now,
            answer: None,
            end: None,
            last_response: 0,
            rtp: None,
            rtp_end: Micros::MAX,
        };
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                self.gens.push(0);
                (self.slots.len() - 1) as u32
            }
        };
        self.gens[slot as usize] = self.gens[slot as usize].wrapping_add(1);
        let mut call = call;
        call.gen_ = self.gens[slot as usize];
        self.slots[slot as usize] = Some(call);
        self.stats.calls += 1;
        if tcp {
            self.stats.tcp_calls += 1;
            self.schedule(slot, now, Step::Syn);
        } else {
            self.schedule(slot, now, Step::Invite);
        }
    }

    fn rtp_step(&mut self, now: Micros, slot: u32, gen_: u32, dir: usize) -> io::Result<()> {
        if self.gens[slot as usize] != gen_ {
            return Ok(());
        }
        let Some(call) = self.slots[slot as usize].as_mut() else {
            return Ok(());
        };
        if now >= call.rtp_end {
            return Ok(());
        }
        let Some(streams) = call.rtp.as_mut() else {
            return Ok(());
        };
        let s = &mut streams[dir];
        self.w.write_record(s.packet(now))?;
        s.advance();
        let next = s.nominal + self.rng.range(0, RTP_JITTER_MAX);
        self.stats.rtp_packets += 1;
        self.stats.last = now;
        self.push(next, slot, gen_, KIND_RTP_AB + dir as u8);
        Ok(())
    }

    /// Sends `self.msg` as one SIP message from the caller side (`from_a`) or the callee side.
    /// Over TCP an INVITE is sometimes split over two segments, as a real stack does with
    /// large messages, so readers' stream reassembly is exercised.
    fn send_sip(&mut self, now: Micros, slot: u32, from_a: bool, count: u64) -> io::Result<()> {
        let call = self.slots[slot as usize].as_mut().expect("live slot");
        let (src, dst) = if from_a {
            (call.a, call.b)
        } else {
            (call.b, call.a)
        };
        self.ip_id = self.ip_id.wrapping_add(1);
        match call.tcp.as_mut() {
            None => build_udp_record(
                &mut self.rec,
                now,
                src,
                dst,
                TOS_SIGNALLING,
                self.ip_id,
                self.msg.as_bytes(),
                true,
            ),
            Some(tcp) => {
                let body = self.msg.as_bytes();
                let split = if body.len() > 600 && self.rng.chance(0.25) {
                    self.rng.range(100, body.len() as u64 - 100) as usize
                } else {
                    body.len()
                };
                for part in [&body[..split], &body[split..]] {
                    if part.is_empty() {
                        continue;
                    }
                    let (seq, ack) = if from_a {
                        (&mut tcp.seq_a, tcp.seq_b)
                    } else {
                        (&mut tcp.seq_b, tcp.seq_a)
                    };
                    build_tcp_record(
                        &mut self.rec,
                        now,
                        src,
                        dst,
                        self.ip_id,
                        *seq,
                        ack,
                        TCP_ACK | TCP_PSH,
                        part,
                    );
                    *seq = seq.wrapping_add(part.len() as u32);
                    self.w.write_record(&self.rec)?;
                }
                self.stats.sip_messages += count;
                self.stats.last = now;
                return Ok(());
            }
        }
        self.w.write_record(&self.rec)?;
        self.stats.sip_messages += count;
        self.stats.last = now;
        Ok(())
    }

    fn send_tcp_control(
        &mut self,
        now: Micros,
        slot: u32,
        from_a: bool,
        flags: u8,
    ) -> io::Result<()> {
        let call = self.slots[slot as usize].as_mut().expect("live slot");
        let (src, dst) = if from_a {
            (call.a, call.b)
        } else {
            (call.b, call.a)
        };
        let tcp = call.tcp.as_mut().expect("tcp call");
        let (seq, ack) = if from_a {
            (&mut tcp.seq_a, tcp.seq_b)
        } else {
            (&mut tcp.seq_b, tcp.seq_a)
        };
        // SYN and FIN each consume one sequence number; the ACK field is only set with the
        // ACK flag (the very first SYN carries none).
        let ack_no = if flags & TCP_ACK != 0 { ack } else { 0 };
        self.ip_id = self.ip_id.wrapping_add(1);
        build_tcp_record(
            &mut self.rec,
            now,
            src,
            dst,
            self.ip_id,
            *seq,
            ack_no,
            flags,
            &[],
        );
        if flags & (TCP_SYN | TCP_FIN) != 0 {
            *seq = seq.wrapping_add(1);
        }
        self.w.write_record(&self.rec)?;
        self.stats.last = now;
        Ok(())
    }

    fn sip_step(&mut self, now: Micros, slot: u32) -> io::Result<()> {
        let call = self.slots[slot as usize].as_ref().expect("live slot");
        let step = call.step;
        let outcome = call.outcome;
        let d = |rng: &mut Rng, r| now + uniform(rng, r);
        match step {
            Step::Syn => {
                self.send_tcp_control(now, slot, true, TCP_SYN)?;
                let t = d(&mut self.rng, D_TCP_HS);
                self.schedule(slot, t, Step::SynAck);
            }
            Step::SynAck => {
                self.send_tcp_control(now, slot, false, TCP_SYN | TCP_ACK)?;
                let t = d(&mut self.rng, D_TCP_HS);
                self.schedule(slot, t, Step::HandshakeAck);
            }
            Step::HandshakeAck => {
                self.send_tcp_control(now, slot, true, TCP_ACK)?;
                let t = d(&mut self.rng, D_TCP_HS);
                self.schedule(slot, t, Step::Invite);
            }
            Step::Fin => {
                self.send_tcp_control(now, slot, true, TCP_FIN | TCP_ACK)?;
                let t = d(&mut self.rng, D_TCP_HS);
                self.schedule(slot, t, Step::FinAck);
            }
            Step::FinAck => {
                self.send_tcp_control(now, slot, false, TCP_FIN | TCP_ACK)?;
                let t = d(&mut self.rng, D_TCP_HS);
                self.schedule(slot, t, Step::LastAck);
            }
            Step::LastAck => {
                self.send_tcp_control(now, slot, true, TCP_ACK)?;
                self.release(slot);
            }
            Step::Invite => {
                self.slots[slot as usize].as_mut().expect("live").start = now;
                self.concurrency_change(now, true);
                self.build_invite(slot);
                self.send_sip(now, slot, true, 1)?;
                let t = d(&mut self.rng, D_TRYING);
                self.schedule(slot, t, Step::Trying);
            }
            Step::Trying => {
                self.build_response(slot, 100, "Trying", "INVITE", 1, false);
                self.send_sip(now, slot, false, 1)?;
                let (t, s) = match outcome {
                    Outcome::Reject(404) => (d(&mut self.rng, D_404), Step::Final(404)),
                    Outcome::Reject(503) => (d(&mut self.rng, D_503), Step::Final(503)),
                    _ => (d(&mut self.rng, D_RINGING), Step::Ringing),
                };
                self.schedule(slot, t, s);
            }
            Step::Ringing => {
                self.build_response(slot, 180, "Ringing", "INVITE", 1, true);
                self.send_sip(now, slot, false, 1)?;
                let (t, s) = match outcome {
                    Outcome::Answered { .. } => (d(&mut self.rng, D_ANSWER), Step::Ok),
                    Outcome::Reject(code) => (d(&mut self.rng, D_486), Step::Final(code)),
                    Outcome::Cancel => (d(&mut self.rng, D_CANCEL), Step::Cancel),
                };
                self.schedule(slot, t, s);
            }
            Step::Ok => {
                self.build_response(slot, 200, "OK", "INVITE", 1, true);
                self.send_sip(now, slot, false, 1)?;
                let rtp_b = d(&mut self.rng, D_RTP_START);
                let rtp_a =
                    rtp_b + uniform(&mut self.rng, D_ACK) + uniform(&mut self.rng, D_RTP_START);
                let call = self.slots[slot as usize].as_mut().expect("live");
                call.answer = Some(now);
                call.last_response = 200;
                if self.cfg.rtp {
                    let (am, bm) = (call.a_media, call.b_media);
                    let gen_ = call.gen_;
                    call.rtp = Some(Box::new([
                        RtpStream::new(&mut self.rng, am, bm, rtp_a),
                        RtpStream::new(&mut self.rng, bm, am, rtp_b),
                    ]));
                    self.push(rtp_a, slot, gen_, KIND_RTP_AB);
                    self.push(rtp_b, slot, gen_, KIND_RTP_BA);
                }
                let t = d(&mut self.rng, D_ACK);
                self.schedule(slot, t, Step::Ack);
            }
            Step::Ack => {
                self.build_ack_2xx(slot);
                self.send_sip(now, slot, true, 1)?;
                let mut talk = (self.rng.exp(self.cfg.duration_s) * SECOND as f64) as Micros;
                let cap = (self.cfg.duration_s * 20.0 * SECOND as f64) as Micros;
                talk = talk.clamp(SECOND / 2, cap.max(SECOND));
                if self.stopping {
                    talk = talk.min(SECOND);
                }
                let call = self.slots[slot as usize].as_mut().expect("live");
                let bye = (call.answer.unwrap_or(now) + talk).max(now + 100 * MILLI);
                call.rtp_end = bye;
                self.schedule(slot, bye, Step::Bye);
            }
            Step::Bye => {
                let by_callee = matches!(
                    outcome,
                    Outcome::Answered {
                        callee_hangs_up: true
                    }
                );
                self.build_bye(slot, by_callee);
                self.send_sip(now, slot, !by_callee, 1)?;
                let t = d(&mut self.rng, D_BYE_OK);
                self.schedule(slot, t, Step::ByeOk);
            }
            Step::ByeOk => {
                let by_callee = matches!(
                    outcome,
                    Outcome::Answered {
                        callee_hangs_up: true
                    }
                );
                self.build_bye_ok(slot, by_callee);
                self.send_sip(now, slot, by_callee, 1)?;
                self.stats.answered += 1;
                self.concurrency_change(now, false);
                self.finish(slot, now, now, EndReason::ByeConfirmed)?;
            }
            Step::Final(code) => {
                let reason = match code {
                    404 => "Not Found",
                    486 => "Busy Here",
                    487 => "Request Terminated",
                    _ => "Service Unavailable",
                };
                self.build_response(slot, code, reason, "INVITE", 1, true);
                self.send_sip(now, slot, false, 1)?;
                let call = self.slots[slot as usize].as_mut().expect("live");
                call.last_response = code;
                if call.end.is_none() {
                    call.end = Some(now);
                    self.concurrency_change(now, false);
                }
                let t = d(&mut self.rng, D_ACK_FINAL);
                self.schedule(slot, t, Step::AckFinal);
            }
            Step::AckFinal => {
                self.build_ack_final(slot);
                self.send_sip(now, slot, true, 1)?;
                let reason = if outcome == Outcome::Cancel {
                    self.stats.cancelled += 1;
                    EndReason::Cancel
                } else {
                    self.stats.rejected += 1;
                    EndReason::NotAnswered
                };
                let end = self.slots[slot as usize]
                    .as_ref()
                    .and_then(|c| c.end)
                    .unwrap_or(now);
                self.finish(slot, now, end, reason)?;
            }
            Step::Cancel => {
                self.build_cancel(slot);
                self.send_sip(now, slot, true, 1)?;
                self.slots[slot as usize].as_mut().expect("live").end = Some(now);
                self.concurrency_change(now, false);
                let t = d(&mut self.rng, D_CANCEL_OK);
                self.schedule(slot, t, Step::CancelOk);
            }
            Step::CancelOk => {
                self.build_response(slot, 200, "OK", "CANCEL", 1, true);
                let tcp = self.slots[slot as usize]
                    .as_ref()
                    .is_some_and(|c| c.tcp.is_some());
                if tcp {
                    // A TCP stack flushes both answers in one segment: two messages, one packet,
                    // which readers must frame by Content-Length.
                    let first = std::mem::take(&mut self.msg);
                    self.build_response(slot, 487, "Request Terminated", "INVITE", 1, true);
                    self.msg.insert_str(0, &first);
                    self.send_sip(now, slot, false, 2)?;
                    self.slots[slot as usize]
                        .as_mut()
                        .expect("live")
                        .last_response = 487;
                    let t = d(&mut self.rng, D_ACK_FINAL);
                    self.schedule(slot, t, Step::AckFinal);
                } else {
                    self.send_sip(now, slot, false, 1)?;
                    let t = d(&mut self.rng, D_487);
                    self.schedule(slot, t, Step::Final(487));
                }
            }
        }
        Ok(())
    }

    /// The call's SIP is over: writes its truth line, then frees the slot, or for TCP first
    /// closes the connection (caller side closes, as the UA that opened it).
    fn finish(&mut self, slot: u32, now: Micros, end: Micros, reason: EndReason) -> io::Result<()> {
        self.write_truth(slot, end, reason)?;
        let call = self.slots[slot as usize].as_mut().expect("live slot");
        if call.tcp.is_some() {
            call.rtp_end = 0;
            let t = now + uniform(&mut self.rng, D_TCP_CLOSE);
            self.schedule(slot, t, Step::Fin);
        } else {
            self.release(slot);
        }
        Ok(())
    }

    /// Frees the slot; pending RTP events of the call die on the generation check.
    fn release(&mut self, slot: u32) {
        self.slots[slot as usize] = None;
        self.free.push(slot);
        self.gens[slot as usize] = self.gens[slot as usize].wrapping_add(1);
    }

    fn write_truth(&mut self, slot: u32, end: Micros, reason: EndReason) -> io::Result<()> {
        let call = self.slots[slot as usize].as_ref().expect("live slot");
        let Some(truth) = self.truth.as_mut() else {
            return Ok(());
        };
        let l = &mut self.line;
        l.clear();
        l.push_str("{\"call_id\":");
        json_str(l, &call.call_id);
        l.push_str(",\"caller\":");
        json_str(l, &call.caller);
        l.push_str(",\"called\":");
        json_str(l, &call.called);
        let _ = write!(l, ",\"start\":\"{}\"", format_rfc3339(call.start));
        match call.answer {
            Some(a) => {
                let _ = write!(l, ",\"answer\":\"{}\"", format_rfc3339(a));
            }
            None => l.push_str(",\"answer\":null"),
        }
        let _ = write!(
            l,
            ",\"end\":\"{}\",\"last_response\":{},\"end_reason\":\"{}\",\"transport\":\"{}\"",
            format_rfc3339(end),
            call.last_response,
            reason.as_str(),
            call.transport().to_ascii_lowercase()
        );
        match call.outcome {
            Outcome::Answered { callee_hangs_up } => {
                let who = if callee_hangs_up { "callee" } else { "caller" };
                let _ = write!(l, ",\"hangup_by\":\"{who}\"");
            }
            // The caller abandons a call by cancelling it; a rejection is nobody's hang-up.
            Outcome::Cancel => l.push_str(",\"hangup_by\":\"caller\""),
            Outcome::Reject(_) => l.push_str(",\"hangup_by\":null"),
        }
        l.push_str("}\n");
        truth.write_all(l.as_bytes())
    }

    // ---- SIP message text. Built with `write!` into one reused buffer: a call has only a
    // handful of SIP messages, so formatting here is not on the hot path (RTP is).

    fn via(m: &mut String, call: &Call, from_a: bool, branch: &str) {
        let host = if from_a { call.a.ip } else { call.b.ip };
        let _ = write!(
            m,
            "Via: SIP/2.0/{} {}:5060;branch={branch};rport\r\n",
            call.transport(),
            ip(host)
        );
    }

    fn sdp(body: &mut String, id: u64, media: Endpoint, sig: [u8; 4]) {
        let _ = write!(
            body,
            "v=0\r\no=- {id} {id} IN IP4 {}\r\ns=-\r\nc=IN IP4 {}\r\nt=0 0\r\n\
             m=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n\
             a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=ptime:20\r\na=sendrecv\r\n",
            ip(sig),
            ip(media.ip),
            media.port
        );
    }

    fn build_invite(&mut self, slot: u32) {
        let call = self.slots[slot as usize].as_ref().expect("live");
        let mut body = String::with_capacity(320);
        Self::sdp(&mut body, call.sdp_id, call.a_media, call.a.ip);
        let m = &mut self.msg;
        m.clear();
        let _ = write!(m, "INVITE {} SIP/2.0\r\n", strip_angle(&call.contact_b));
        Self::via(m, call, true, &call.invite_branch);
        let _ = write!(
            m,
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\n\
             Contact: {}\r\nAllow: {ALLOW}\r\nSupported: replaces, timer\r\nUser-Agent: {}\r\n\
             Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
            call.from_a,
            call.to_b,
            call.call_id,
            call.contact_a,
            call.ua_a,
            body.len()
        );
    }

    /// A response from the callee side to the caller's INVITE or CANCEL (same Via branch).
    fn build_response(
        &mut self,
        slot: u32,
        code: u16,
        reason: &str,
        method: &str,
        cseq: u32,
        tag: bool,
    ) {
        let call = self.slots[slot as usize].as_ref().expect("live");
        let mut body = String::new();
        if code == 200 && method == "INVITE" {
            Self::sdp(&mut body, call.sdp_id + 1, call.b_media, call.b.ip);
        }
        let m = &mut self.msg;
        m.clear();
        let _ = write!(m, "SIP/2.0 {code} {reason}\r\n");
        Self::via(m, call, true, &call.invite_branch);
        let to = if tag { &call.to_b_tag } else { &call.to_b };
        let _ = write!(
            m,
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} {method}\r\n",
            call.from_a, call.call_id
        );
        if method == "INVITE" && (code == 180 || code == 200) {
            let _ = write!(m, "Contact: {}\r\nAllow: {ALLOW}\r\n", call.contact_b);
        }
        let _ = write!(m, "Server: {}\r\n", call.ua_b);
        if body.is_empty() {
            m.push_str("Content-Length: 0\r\n\r\n");
        } else {
            let _ = write!(
                m,
                "Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    }

    /// ACK of a 2xx: a new transaction, so a fresh branch.
    fn build_ack_2xx(&mut self, slot: u32) {
        let mut branch = String::from("z9hG4bK");
        self.rng.hex_into(&mut branch, 20);
        self.build_ack(slot, Some(&branch));
    }

    /// ACK of a non-2xx final response: same branch as the INVITE (RFC 3261 17.1.1.3).
    fn build_ack_final(&mut self, slot: u32) {
        self.build_ack(slot, None);
    }

    /// `branch` `None` reuses the INVITE's.
    fn build_ack(&mut self, slot: u32, branch: Option<&str>) {
        let call = self.slots[slot as usize].as_ref().expect("live");
        let m = &mut self.msg;
        m.clear();
        let _ = write!(m, "ACK {} SIP/2.0\r\n", strip_angle(&call.contact_b));
        Self::via(m, call, true, branch.unwrap_or(&call.invite_branch));
        let _ = write!(
            m,
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 ACK\r\n\
             User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
            call.from_a, call.to_b_tag, call.call_id, call.ua_a
        );
    }

    fn build_cancel(&mut self, slot: u32) {
        let call = self.slots[slot as usize].as_ref().expect("live");
        let m = &mut self.msg;
        m.clear();
        let _ = write!(m, "CANCEL {} SIP/2.0\r\n", strip_angle(&call.contact_b));
        Self::via(m, call, true, &call.invite_branch);
        let _ = write!(
            m,
            "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 CANCEL\r\n\
             User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
            call.from_a, call.to_b, call.call_id, call.ua_a
        );
    }

    fn bye_branch(&mut self) -> String {
        // Derived from the PRNG at BYE time and kept in the message only: the 200 repeats it.
        let mut branch = String::from("z9hG4bK");
        self.rng.hex_into(&mut branch, 20);
        branch
    }

    fn build_bye(&mut self, slot: u32, by_callee: bool) {
        let branch = self.bye_branch();
        let call = self.slots[slot as usize].as_mut().expect("live");
        let m = &mut self.msg;
        m.clear();
        if by_callee {
            let _ = write!(m, "BYE {} SIP/2.0\r\n", strip_angle(&call.contact_a));
            Self::via(m, call, false, &branch);
            let _ = write!(
                m,
                "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} BYE\r\n\
                 User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
                call.to_b_tag, call.from_a, call.call_id, call.bye_cseq, call.ua_b
            );
        } else {
            let _ = write!(m, "BYE {} SIP/2.0\r\n", strip_angle(&call.contact_b));
            Self::via(m, call, true, &branch);
            let _ = write!(
                m,
                "Max-Forwards: 70\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 2 BYE\r\n\
                 User-Agent: {}\r\nContent-Length: 0\r\n\r\n",
                call.from_a, call.to_b_tag, call.call_id, call.ua_a
            );
        }
        // Remember the branch for the 200 by keeping it in the invite_branch slot of the
        // dialog: the INVITE transaction is over by now.
        call.invite_branch = branch;
    }

    fn build_bye_ok(&mut self, slot: u32, by_callee: bool) {
        let call = self.slots[slot as usize].as_ref().expect("live");
        let m = &mut self.msg;
        m.clear();
        m.push_str("SIP/2.0 200 OK\r\n");
        Self::via(m, call, !by_callee, &call.invite_branch);
        let (from, to, cseq, ua) = if by_callee {
            (&call.to_b_tag, &call.from_a, call.bye_cseq, call.ua_a)
        } else {
            (&call.from_a, &call.to_b_tag, 2, call.ua_b)
        };
        let _ = write!(
            m,
            "From: {from}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {cseq} BYE\r\nServer: {ua}\r\n\
             Content-Length: 0\r\n\r\n",
            call.call_id
        );
    }
}

/// `<sip:...>` to `sip:...` for a Request-URI.
fn strip_angle(s: &str) -> &str {
    s.trim_start_matches('<').trim_end_matches('>')
}

/// Dotted-quad text of an IPv4 address.
fn ip(a: [u8; 4]) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(a)
}
