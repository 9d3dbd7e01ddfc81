//! The sensor → server batch encoding: legs in a compact binary form, zstd-compressed.
//!
//! Why not JSON: a leg with its SIP messages is mostly raw bytes, which JSON would escape
//! and the server would unescape; a length-prefixed form costs one copy each way. Decoding
//! takes bytes from the network, so every read is bounds-checked and a bad batch is an error
//! naming what was wrong, never a panic.
//!
//! Version 2 carries each leg's messages already compressed in the store's blob form
//! (`msgblob`), so the server stores them as they come: compressing every sensor's messages on
//! the central server cost it more than inserting the legs. Version 1 batches (raw messages,
//! still in the spool of a sensor updated mid-outage) are decoded too.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use calls::{EndReason, Leg, LegMessage, Side};
use sip::Transport;

/// First bytes of an uncompressed batch; the digit is the format version.
const MAGIC: &[u8; 4] = b"SMB2";
/// Version 1: raw messages in the batch.
const MAGIC_V1: &[u8; 4] = b"SMB1";
/// zstd level of a batch: level 1 compresses SIP text ~5x at several hundred MB/s.
const LEVEL: i32 = 1;
/// Largest batch the server accepts after decompression (a bound on memory per request).
pub const MAX_BATCH_BYTES: usize = 256 << 20;

/// Why a batch could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("batch is not zstd-compressed or is damaged")]
    Compression,
    #[error("batch is larger than {MAX_BATCH_BYTES} bytes decompressed")]
    TooLarge,
    #[error("batch does not start with the sipmeter batch marker (wrong format version?)")]
    Magic,
    #[error("batch ends inside {0}")]
    Truncated(&'static str),
    #[error("batch has an invalid {0}")]
    Invalid(&'static str),
    #[error("batch has {0} trailing bytes")]
    Trailing(usize),
}

/// A decoded batch.
#[derive(Debug, Default, PartialEq)]
pub struct Batch {
    /// The legs; their `messages` are empty in a version 2 batch.
    pub legs: Vec<Leg>,
    /// Version 2: each leg's messages in stored form (`None`: none kept), one per leg.
    /// Version 1: empty, the messages are in the legs.
    pub messages: Vec<Option<msgblob::Encoded>>,
}

/// Legs → compressed batch (version 2). Fails only if zstd cannot start or a message is
/// larger than 4 GiB.
pub fn encode(legs: &[Leg]) -> std::io::Result<Vec<u8>> {
    zstd::bulk::compress(&uncompressed(legs)?, LEVEL)
}

fn uncompressed(legs: &[Leg]) -> std::io::Result<Vec<u8>> {
    let mut encoder = msgblob::Encoder::new()?;
    let mut w = Vec::with_capacity(legs.len() * 512 + 8);
    w.extend_from_slice(MAGIC);
    put_u32(&mut w, legs.len() as u32);
    for leg in legs {
        put_leg(&mut w, leg);
        if leg.messages.is_empty() {
            put_u32(&mut w, 0);
        } else {
            put_u32(&mut w, leg.messages.len() as u32);
            put_bytes(&mut w, &encoder.encode(&leg.messages)?);
        }
    }
    Ok(w)
}

/// Compressed batch → legs and their messages.
pub fn decode(data: &[u8]) -> Result<Batch, WireError> {
    let size = zstd::zstd_safe::get_frame_content_size(data)
        .ok()
        .flatten()
        .ok_or(WireError::Compression)?;
    if size > MAX_BATCH_BYTES as u64 {
        return Err(WireError::TooLarge);
    }
    let raw = zstd::bulk::decompress(data, size as usize).map_err(|_| WireError::Compression)?;
    let mut r = Reader { b: &raw };
    let v1 = match r.take(4, "marker")? {
        m if m == MAGIC => false,
        m if m == MAGIC_V1 => true,
        _ => return Err(WireError::Magic),
    };
    let n = r.u32("leg count")? as usize;
    // Each leg takes well over 32 bytes, so a count that cannot fit is refused up front.
    if n > raw.len() / 32 {
        return Err(WireError::Invalid("leg count"));
    }
    let mut batch = Batch {
        legs: Vec::with_capacity(n),
        messages: Vec::with_capacity(if v1 { 0 } else { n }),
    };
    for _ in 0..n {
        let mut leg = r.leg()?;
        if v1 {
            leg.messages = r.raw_messages()?;
        } else {
            batch.messages.push(r.encoded_messages()?);
        }
        batch.legs.push(leg);
    }
    if !r.b.is_empty() {
        return Err(WireError::Trailing(r.b.len()));
    }
    Ok(batch)
}

fn put_u32(w: &mut Vec<u8>, v: u32) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_i64(w: &mut Vec<u8>, v: i64) {
    w.extend_from_slice(&v.to_le_bytes());
}

fn put_bytes(w: &mut Vec<u8>, b: &[u8]) {
    put_u32(w, b.len() as u32);
    w.extend_from_slice(b);
}

fn put_opt_str(w: &mut Vec<u8>, s: &Option<String>) {
    match s {
        Some(s) => {
            w.push(1);
            put_bytes(w, s.as_bytes());
        }
        None => w.push(0),
    }
}

fn put_opt_i64(w: &mut Vec<u8>, v: Option<i64>) {
    match v {
        Some(v) => {
            w.push(1);
            put_i64(w, v);
        }
        None => w.push(0),
    }
}

fn put_ip(w: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            w.push(4);
            w.extend_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            w.push(6);
            w.extend_from_slice(&a.octets());
        }
    }
}

const TRANSPORTS: [Transport; 5] = [
    Transport::Udp,
    Transport::Tcp,
    Transport::Tls,
    Transport::Sctp,
    Transport::Ws,
];
const END_REASONS: [EndReason; 8] = [
    EndReason::NotAnswered,
    EndReason::Cancel,
    EndReason::Bye,
    EndReason::ByeConfirmed,
    EndReason::AnsweredNoBye,
    EndReason::TimeoutZombie,
    EndReason::TimeoutAbsolute,
    EndReason::EndOfInput,
];

fn transport_code(t: Transport) -> u8 {
    TRANSPORTS.iter().position(|x| *x == t).unwrap_or(0) as u8
}

fn put_leg(w: &mut Vec<u8>, l: &Leg) {
    put_bytes(w, l.call_id.as_bytes());
    put_u32(w, l.sensor_id);
    put_bytes(w, l.caller.as_bytes());
    put_bytes(w, l.caller_domain.as_bytes());
    put_opt_str(w, &l.caller_name);
    put_bytes(w, l.called.as_bytes());
    put_bytes(w, l.called_domain.as_bytes());
    put_opt_str(w, &l.called_name);
    put_opt_str(w, &l.from_tag);
    put_opt_str(w, &l.to_tag);
    put_i64(w, l.start);
    put_opt_i64(w, l.answer);
    put_i64(w, l.end);
    put_opt_i64(w, l.last_response.map(i64::from));
    put_opt_str(w, &l.last_response_text);
    w.push(
        END_REASONS
            .iter()
            .position(|x| *x == l.end_reason)
            .unwrap_or(0) as u8,
    );
    w.push(match l.hangup_by {
        None => 0,
        Some(Side::Caller) => 1,
        Some(Side::Callee) => 2,
    });
    w.push(transport_code(l.transport));
    put_ip(w, l.src_ip);
    w.extend_from_slice(&l.src_port.to_le_bytes());
    put_ip(w, l.dst_ip);
    w.extend_from_slice(&l.dst_port.to_le_bytes());
    w.push(u8::from(l.partial));
    put_opt_str(w, &l.referred_by);
    put_opt_str(w, &l.refer_to);
    put_opt_str(w, &l.replaces);
    put_opt_str(w, &l.user_agent);
    put_u32(w, l.sip_message_count);
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        if self.b.len() < n {
            return Err(WireError::Truncated(what));
        }
        let (head, rest) = self.b.split_at(n);
        self.b = rest;
        Ok(head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn i64(&mut self, what: &'static str) -> Result<i64, WireError> {
        let b = self.take(8, what)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(i64::from_le_bytes(a))
    }

    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], WireError> {
        let n = self.u32(what)? as usize;
        self.take(n, what)
    }

    fn string(&mut self, what: &'static str) -> Result<String, WireError> {
        let b = self.bytes(what)?;
        String::from_utf8(b.to_vec()).map_err(|_| WireError::Invalid(what))
    }

    fn flag(&mut self, what: &'static str) -> Result<bool, WireError> {
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(WireError::Invalid(what)),
        }
    }

    fn opt_string(&mut self, what: &'static str) -> Result<Option<String>, WireError> {
        if self.flag(what)? {
            self.string(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn opt_i64(&mut self, what: &'static str) -> Result<Option<i64>, WireError> {
        if self.flag(what)? {
            self.i64(what).map(Some)
        } else {
            Ok(None)
        }
    }

    fn ip(&mut self, what: &'static str) -> Result<IpAddr, WireError> {
        match self.u8(what)? {
            4 => {
                let b = self.take(4, what)?;
                Ok(IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3])))
            }
            6 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(self.take(16, what)?);
                Ok(IpAddr::V6(Ipv6Addr::from(a)))
            }
            _ => Err(WireError::Invalid(what)),
        }
    }

    fn transport(&mut self, what: &'static str) -> Result<Transport, WireError> {
        TRANSPORTS
            .get(self.u8(what)? as usize)
            .copied()
            .ok_or(WireError::Invalid(what))
    }

    fn leg(&mut self) -> Result<Leg, WireError> {
        let call_id = self.string("call-id")?;
        let sensor_id = self.u32("sensor id")?;
        let caller = self.string("caller")?;
        let caller_domain = self.string("caller domain")?;
        let caller_name = self.opt_string("caller name")?;
        let called = self.string("called")?;
        let called_domain = self.string("called domain")?;
        let called_name = self.opt_string("called name")?;
        let from_tag = self.opt_string("from tag")?;
        let to_tag = self.opt_string("to tag")?;
        let start = self.i64("start")?;
        let answer = self.opt_i64("answer")?;
        let end = self.i64("end")?;
        let last_response = match self.opt_i64("last response")? {
            Some(c) => Some(u16::try_from(c).map_err(|_| WireError::Invalid("last response"))?),
            None => None,
        };
        let last_response_text = self.opt_string("last response text")?;
        let end_reason = *END_REASONS
            .get(self.u8("end reason")? as usize)
            .ok_or(WireError::Invalid("end reason"))?;
        let hangup_by = match self.u8("hangup side")? {
            0 => None,
            1 => Some(Side::Caller),
            2 => Some(Side::Callee),
            _ => return Err(WireError::Invalid("hangup side")),
        };
        let transport = self.transport("transport")?;
        let src_ip = self.ip("source address")?;
        let src_port = self.u16("source port")?;
        let dst_ip = self.ip("destination address")?;
        let dst_port = self.u16("destination port")?;
        let partial = self.flag("partial flag")?;
        let referred_by = self.opt_string("referred-by")?;
        let refer_to = self.opt_string("refer-to")?;
        let replaces = self.opt_string("replaces")?;
        let user_agent = self.opt_string("user agent")?;
        let sip_message_count = self.u32("message count")?;
        Ok(Leg {
            call_id,
            sensor_id,
            caller,
            caller_domain,
            caller_name,
            called,
            called_domain,
            called_name,
            from_tag,
            to_tag,
            start,
            answer,
            end,
            last_response,
            last_response_text,
            end_reason,
            hangup_by,
            transport,
            src_ip,
            src_port,
            dst_ip,
            dst_port,
            partial,
            referred_by,
            refer_to,
            replaces,
            user_agent,
            sip_message_count,
            messages: Vec::new(),
        })
    }

    /// Version 2: a leg's kept messages as the count and the stored-form blob.
    fn encoded_messages(&mut self) -> Result<Option<msgblob::Encoded>, WireError> {
        let count = self.u32("kept message count")?;
        if count == 0 {
            return Ok(None);
        }
        let blob = self.bytes("message blob")?;
        msgblob::check(blob).map_err(|_| WireError::Invalid("message blob"))?;
        Ok(Some(msgblob::Encoded {
            count,
            blob: blob.to_vec(),
        }))
    }

    /// Version 1: a leg's kept messages, raw.
    fn raw_messages(&mut self) -> Result<Vec<LegMessage>, WireError> {
        let n = self.u32("kept message count")? as usize;
        if n > self.b.len() / 16 {
            return Err(WireError::Invalid("kept message count"));
        }
        let mut messages = Vec::with_capacity(n);
        for _ in 0..n {
            let ts = self.i64("message time")?;
            let sip = self.ip("message source")?;
            let spt = self.u16("message source port")?;
            let dip = self.ip("message destination")?;
            let dpt = self.u16("message destination port")?;
            let transport = self.transport("message transport")?;
            let raw = self.bytes("message")?.to_vec();
            messages.push(LegMessage {
                ts,
                src: SocketAddr::new(sip, spt),
                dst: SocketAddr::new(dip, dpt),
                transport,
                raw,
            });
        }
        Ok(messages)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leg(i: u32) -> Leg {
        Leg::builder()
            .call_id(format!("call-{i}@example"))
            .sensor_id(3)
            .caller("+4930123")
            .domains("a.example", "b.example")
            .caller_name(Some("Älice"))
            .called("+4940999")
            .from_tag(Some("ft"))
            .start(1_700_000_000_000_000 + i64::from(i))
            .answer(Some(1_700_000_001_000_000))
            .end(1_700_000_060_000_000)
            .response(200, "OK")
            .hangup_by(Some(Side::Callee))
            .transport(Transport::Tcp)
            .src_ip("10.0.0.1".parse().unwrap())
            .dst_ip("2001:db8::1".parse().unwrap())
            .dst_port(5061)
            .refer_to(Some("sip:x@y"))
            .user_agent(Some("ua"))
            .sip_message_count(7)
            .messages(vec![LegMessage {
                ts: 1_700_000_000_000_001,
                src: "10.0.0.1:5060".parse().unwrap(),
                dst: "[2001:db8::1]:5061".parse().unwrap(),
                transport: Transport::Udp,
                raw: b"INVITE sip:x SIP/2.0\r\n\r\n".to_vec(),
            }])
            .build()
    }

    #[test]
    fn a_batch_round_trips_every_field() {
        let legs: Vec<Leg> = (0..50).map(leg).collect();
        let batch = decode(&encode(&legs).unwrap()).unwrap();
        assert_eq!(batch.messages.len(), legs.len());
        for ((got, encoded), sent) in batch.legs.iter().zip(&batch.messages).zip(&legs) {
            let encoded = encoded.as_ref().expect("messages kept");
            assert_eq!(encoded.count, 1);
            assert_eq!(msgblob::decode(&encoded.blob).unwrap(), sent.messages);
            assert_eq!(
                got,
                &Leg {
                    messages: Vec::new(),
                    ..sent.clone()
                }
            );
        }
        let mut bare = leg(1);
        bare.messages.clear();
        let batch = decode(&encode(std::slice::from_ref(&bare)).unwrap()).unwrap();
        assert_eq!(batch.legs, vec![bare]);
        assert_eq!(batch.messages, vec![None]);
        assert_eq!(decode(&encode(&[]).unwrap()).unwrap(), Batch::default());
    }

    /// A batch as a version 1 sensor spooled it: raw messages after each leg.
    fn version_1(legs: &[Leg]) -> Vec<u8> {
        let mut w = MAGIC_V1.to_vec();
        put_u32(&mut w, legs.len() as u32);
        for l in legs {
            put_leg(&mut w, l);
            put_u32(&mut w, l.messages.len() as u32);
            for m in &l.messages {
                put_i64(&mut w, m.ts);
                put_ip(&mut w, m.src.ip());
                w.extend_from_slice(&m.src.port().to_le_bytes());
                put_ip(&mut w, m.dst.ip());
                w.extend_from_slice(&m.dst.port().to_le_bytes());
                w.push(transport_code(m.transport));
                put_bytes(&mut w, &m.raw);
            }
        }
        zstd::bulk::compress(&w, 1).unwrap()
    }

    #[test]
    fn version_1_batches_left_in_a_spool_still_decode() {
        let legs: Vec<Leg> = (0..5).map(leg).collect();
        let batch = decode(&version_1(&legs)).unwrap();
        assert_eq!(batch.legs, legs);
        assert!(batch.messages.is_empty());
    }

    #[test]
    fn damaged_batches_are_errors_not_panics() {
        let legs: Vec<Leg> = (0..3).map(leg).collect();
        assert_eq!(decode(b"not zstd"), Err(WireError::Compression));
        let mut raw = MAGIC.to_vec();
        raw.extend_from_slice(&1u32.to_le_bytes());
        raw.extend_from_slice(&[0xff; 40]);
        assert!(decode(&zstd::bulk::compress(&raw, 1).unwrap()).is_err());
        // Every truncation of a valid uncompressed batch is refused.
        let full = uncompressed(&legs).unwrap();
        for cut in 0..full.len() {
            let z = zstd::bulk::compress(&full[..cut], 1).unwrap();
            assert!(decode(&z).is_err(), "cut at {cut}");
        }
        let mut long = full.clone();
        long.push(0);
        let z = zstd::bulk::compress(&long, 1).unwrap();
        assert_eq!(decode(&z), Err(WireError::Trailing(1)));
        // A message blob that is not in the stored form.
        let mut bare = leg(0);
        bare.messages.clear();
        let mut w = MAGIC.to_vec();
        put_u32(&mut w, 1);
        put_leg(&mut w, &bare);
        put_u32(&mut w, 2);
        put_bytes(&mut w, b"\x07junk");
        let z = zstd::bulk::compress(&w, 1).unwrap();
        assert_eq!(decode(&z), Err(WireError::Invalid("message blob")));
    }
}
