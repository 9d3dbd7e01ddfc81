//! The CDR leg: what one SIP dialog (one Call-ID created by an INVITE) became.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};
use sip::Transport;

/// Microseconds since the Unix epoch, UTC. Packet time, never wall-clock time.
pub type Micros = i64;

/// Why a leg ended. Stored and printed as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// A final non-2xx response to the INVITE (busy, not found, unavailable...).
    NotAnswered,
    /// The caller cancelled before an answer.
    Cancel,
    /// A BYE was seen but never its 200.
    Bye,
    /// A BYE and its 200 were both seen.
    ByeConfirmed,
    /// Answered, and no BYE came before the absolute timeout closed it.
    AnsweredNoBye,
    /// An unanswered leg with no packet for the zombie timeout.
    TimeoutZombie,
    /// An unanswered leg still getting packets (retransmissions) at the absolute timeout.
    TimeoutAbsolute,
    /// Still open when the input ended.
    EndOfInput,
}

impl EndReason {
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::NotAnswered => "not_answered",
            EndReason::Cancel => "cancel",
            EndReason::Bye => "bye",
            EndReason::ByeConfirmed => "bye_confirmed",
            EndReason::AnsweredNoBye => "answered_no_bye",
            EndReason::TimeoutZombie => "timeout_zombie",
            EndReason::TimeoutAbsolute => "timeout_absolute",
            EndReason::EndOfInput => "end_of_input",
        }
    }

    pub fn parse(s: &str) -> Option<EndReason> {
        Some(match s {
            "not_answered" => EndReason::NotAnswered,
            "cancel" => EndReason::Cancel,
            "bye" => EndReason::Bye,
            "bye_confirmed" => EndReason::ByeConfirmed,
            "answered_no_bye" => EndReason::AnsweredNoBye,
            "timeout_zombie" => EndReason::TimeoutZombie,
            "timeout_absolute" => EndReason::TimeoutAbsolute,
            "end_of_input" => EndReason::EndOfInput,
            _ => return None,
        })
    }
}

/// Which side ended the call (sent the BYE or CANCEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    Caller,
    Callee,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

/// One SIP message of a leg, kept for the message ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegMessage {
    pub ts: Micros,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    pub raw: Vec<u8>,
}

/// One CDR leg.
#[derive(Debug, Clone, PartialEq)]
pub struct Leg {
    pub call_id: String,
    /// Set by whoever runs the tracker (the sensor); 1 by default.
    pub sensor_id: u32,
    pub caller: String,
    pub caller_domain: String,
    pub caller_name: Option<String>,
    pub called: String,
    pub called_domain: String,
    pub called_name: Option<String>,
    pub from_tag: Option<String>,
    /// The To-tag of the fork that answered (or the last one seen).
    pub to_tag: Option<String>,
    /// First packet of the leg.
    pub start: Micros,
    /// First 2xx to the INVITE.
    pub answer: Option<Micros>,
    pub end: Micros,
    pub last_response: Option<u16>,
    pub last_response_text: Option<String>,
    pub end_reason: EndReason,
    pub hangup_by: Option<Side>,
    pub transport: Transport,
    /// Signalling source (the caller side of the first packet seen).
    pub src_ip: IpAddr,
    pub src_port: u16,
    pub dst_ip: IpAddr,
    pub dst_port: u16,
    /// The INVITE was not captured: the leg was opened by a response.
    pub partial: bool,
    pub referred_by: Option<String>,
    pub refer_to: Option<String>,
    pub replaces: Option<String>,
    pub user_agent: Option<String>,
    /// Count of SIP messages seen in this leg (also when `messages` is not kept).
    pub sip_message_count: u32,
    /// The messages themselves, when the tracker keeps them.
    pub messages: Vec<LegMessage>,
}

impl Leg {
    /// `end - start`, seconds.
    pub fn duration(&self) -> f64 {
        (self.end - self.start) as f64 / 1e6
    }

    /// `end - answer`, seconds; 0 when unanswered.
    pub fn connect_duration(&self) -> f64 {
        match self.answer {
            Some(a) => (self.end - a).max(0) as f64 / 1e6,
            None => 0.0,
        }
    }
}
