//! The stored form of a leg's SIP messages: one zstd-compressed blob per leg.
//!
//! Its own crate because two sides make it: the store when legs come with their messages (an
//! import, the embedded sensor), and a remote sensor, which compresses its legs' messages
//! itself so that the central server stores the blobs as they come instead of spending a
//! core on compression for every sensor it serves.
//!
//! Layout: one format byte, then a zstd frame whose content is, per message,
//! `ts_us: i64 LE`, `src: addr`, `dst: addr`, `transport: u8`, `len: u32 LE`, `raw: [u8; len]`,
//! where `addr` is `family: u8 (4 | 6)`, the address bytes and `port: u16 LE`.
//!
//! The format byte sits outside the compressed frame so that a future layout (or another
//! compressor) can be recognised without guessing. Fixed-width fields are deliberate: zstd
//! squeezes out their redundancy, and they keep the decoder short enough to audit for the
//! property that matters most here: a damaged blob yields an error, never a panic or an
//! unbounded allocation.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use calls::LegMessage;
use sip::Transport;

const FORMAT_V1: u8 = 1;

/// zstd level: 1 is the fastest and on SIP text compresses within a few percent of level 3;
/// the write path must keep up with pcap import, the blob is read rarely.
const ZSTD_LEVEL: i32 = 1;

/// Upper bound on one leg's decompressed messages. A genuine 4-hour leg with keep-alive
/// re-INVITEs stays far below this; the bound exists so a corrupt or hostile blob cannot make
/// the reader allocate without limit.
const MAX_DECODED_BYTES: u64 = 256 * 1024 * 1024;

/// Reuses one zstd context and one scratch buffer across the legs of a batch; creating a zstd
/// context per leg costs more than compressing a typical leg.
pub struct Encoder {
    compressor: zstd::bulk::Compressor<'static>,
    scratch: Vec<u8>,
}

impl Encoder {
    pub fn new() -> std::io::Result<Self> {
        Ok(Encoder {
            compressor: zstd::bulk::Compressor::new(ZSTD_LEVEL)?,
            scratch: Vec::new(),
        })
    }

    /// Encodes and compresses `messages` into the stored blob.
    pub fn encode(&mut self, messages: &[calls::LegMessage]) -> std::io::Result<Vec<u8>> {
        let buf = &mut self.scratch;
        buf.clear();
        for m in messages {
            buf.extend_from_slice(&m.ts.to_le_bytes());
            put_addr(buf, m.src);
            put_addr(buf, m.dst);
            buf.push(transport_code(m.transport));
            let len = u32::try_from(m.raw.len()).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "SIP message larger than 4 GiB",
                )
            })?;
            buf.extend_from_slice(&len.to_le_bytes());
            buf.extend_from_slice(&m.raw);
        }
        let compressed = self.compressor.compress(buf)?;
        let mut out = Vec::with_capacity(compressed.len() + 1);
        out.push(FORMAT_V1);
        out.extend_from_slice(&compressed);
        Ok(out)
    }
}

/// Why a blob could not be decoded; kept as a static string because the caller only reports it.
/// What is wrong with a blob, for an error message.
pub type DecodeError = &'static str;

/// A leg's messages in stored form, with how many there are (kept beside the blob so that a
/// page can show the count without decompressing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    pub count: u32,
    pub blob: Vec<u8>,
}

/// The cheap checks of a blob received from elsewhere (a sensor): its format byte. The rest
/// is checked when it is read, where a damaged blob is an error, never a panic.
pub fn check(blob: &[u8]) -> Result<(), DecodeError> {
    match blob.first() {
        Some(&FORMAT_V1) if blob.len() > 1 => Ok(()),
        Some(&FORMAT_V1) => Err("empty zstd frame"),
        Some(_) => Err("unknown format byte"),
        None => Err("empty blob"),
    }
}

/// A `leg_messages` row (stored count, blob) as both backends read it: no row means a leg
/// stored without messages, and a count that disagrees with the blob means corruption.
/// Decompresses and decodes a blob.
pub fn decode(blob: &[u8]) -> Result<Vec<LegMessage>, DecodeError> {
    let (&format, frame) = blob.split_first().ok_or("empty blob")?;
    if format != FORMAT_V1 {
        return Err("unknown format byte");
    }
    let decoder = zstd::stream::read::Decoder::new(frame).map_err(|_| "zstd init failed")?;
    let mut body = Vec::new();
    decoder
        .take(MAX_DECODED_BYTES + 1)
        .read_to_end(&mut body)
        .map_err(|_| "zstd frame damaged")?;
    if body.len() as u64 > MAX_DECODED_BYTES {
        return Err("decompressed size over limit");
    }

    let mut r = Reader { buf: &body };
    let mut out = Vec::new();
    while !r.buf.is_empty() {
        let ts = i64::from_le_bytes(r.array()?);
        let src = r.addr()?;
        let dst = r.addr()?;
        let transport = transport_from_code(r.u8()?).ok_or("unknown transport code")?;
        let len = u32::from_le_bytes(r.array()?) as usize;
        let raw = r.take(len)?.to_vec();
        out.push(LegMessage {
            ts,
            src,
            dst,
            transport,
            raw,
        });
    }
    Ok(out)
}

fn put_addr(buf: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            buf.push(4);
            buf.extend_from_slice(&ip.octets());
        }
        IpAddr::V6(ip) => {
            buf.push(6);
            buf.extend_from_slice(&ip.octets());
        }
    }
    buf.extend_from_slice(&addr.port().to_le_bytes());
}

/// Bounds-checked cursor: every read returns an error instead of slicing past the end.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err("truncated message record");
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn addr(&mut self) -> Result<SocketAddr, DecodeError> {
        let ip = match self.u8()? {
            4 => IpAddr::V4(Ipv4Addr::from(self.array::<4>()?)),
            6 => IpAddr::V6(Ipv6Addr::from(self.array::<16>()?)),
            _ => return Err("unknown address family"),
        };
        let port = u16::from_le_bytes(self.array()?);
        Ok(SocketAddr::new(ip, port))
    }
}

/// Stable on-disk codes; never renumber, only append.
fn transport_code(t: Transport) -> u8 {
    match t {
        Transport::Udp => 0,
        Transport::Tcp => 1,
        Transport::Tls => 2,
        Transport::Sctp => 3,
        Transport::Ws => 4,
    }
}

fn transport_from_code(c: u8) -> Option<Transport> {
    Some(match c {
        0 => Transport::Udp,
        1 => Transport::Tcp,
        2 => Transport::Tls,
        3 => Transport::Sctp,
        4 => Transport::Ws,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ts: i64, raw: &[u8]) -> LegMessage {
        LegMessage {
            ts,
            src: "[2001:db8::1]:5060".parse().unwrap(),
            dst: "192.0.2.7:5080".parse().unwrap(),
            transport: Transport::Tls,
            raw: raw.to_vec(),
        }
    }

    #[test]
    fn round_trip_including_empty_and_binary() {
        let messages = vec![
            msg(-5, b""),
            msg(i64::MAX, &[0, 255, 13, 10, 0xC3, 0x28]),
            msg(1, b"INVITE sip:a@b SIP/2.0\r\n\r\n"),
        ];
        let blob = Encoder::new().unwrap().encode(&messages).unwrap();
        assert_eq!(decode(&blob).unwrap(), messages);
        let empty = Encoder::new().unwrap().encode(&[]).unwrap();
        assert_eq!(decode(&empty).unwrap(), vec![]);
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let messages = vec![msg(7, b"SIP/2.0 200 OK\r\n\r\n"), msg(8, b"ACK")];
        let mut enc = Encoder::new().unwrap();
        // Corrupt the uncompressed body at every length, then recompress it: this exercises
        // the record decoder rather than only zstd's checks.
        let full = enc.encode(&messages).unwrap();
        let body = zstd::stream::decode_all(&full[1..]).unwrap();
        for cut in 0..body.len() {
            let mut blob = vec![FORMAT_V1];
            blob.extend(zstd::bulk::compress(&body[..cut], 1).unwrap());
            let decoded = decode(&blob);
            // A cut exactly at a record boundary is a valid shorter list; any other is an error.
            if let Ok(list) = decoded {
                assert!(list.len() < messages.len());
                assert_eq!(list[..], messages[..list.len()]);
            }
        }
        for cut in 0..full.len() {
            let _ = decode(&full[..cut]);
        }
        assert!(decode(&[]).is_err());
        assert!(decode(&[9, 1, 2, 3]).is_err());
        assert!(decode(&[FORMAT_V1, 1, 2, 3]).is_err());
    }

    #[test]
    fn unknown_codes_are_rejected() {
        let mut body = Vec::new();
        body.extend_from_slice(&0i64.to_le_bytes());
        body.push(5); // bad family
        let mut blob = vec![FORMAT_V1];
        blob.extend(zstd::bulk::compress(&body, 1).unwrap());
        assert_eq!(decode(&blob), Err("unknown address family"));
    }
}
