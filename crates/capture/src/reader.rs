//! Capture file formats: pcap (both byte orders, micro- and nanosecond) and pcapng (any number
//! of sections in either byte order, interfaces with their own link type and timestamp
//! resolution), optionally gzip-compressed.
//!
//! Hand-written rather than built on a parsing crate because the reader is the hot loop of the
//! whole sensor: it reads the file in large chunks into one buffer, parses each 16-byte record
//! header with two bounds checks, and hands out a slice of that buffer, so a packet costs a few
//! nanoseconds and no allocation. Owning the loop also gives exact byte offsets for errors.

use std::io::{self, Read};

use crate::error::CaptureError;

/// Default read chunk: big enough that syscalls and buffer compaction are noise.
pub const DEFAULT_BUFFER_SIZE: usize = 8 << 20;
/// A record longer than this is treated as corruption (snaplen is at most 262144 in practice).
pub const DEFAULT_MAX_CAPLEN: usize = 256 << 10;
/// pcapng blocks that are not packets (section headers, interface descriptions, name resolution,
/// statistics) may carry options; anything larger than this is not a real block.
const MAX_BLOCK_LEN: usize = 16 << 20;

const PCAP_US_LE: [u8; 4] = [0xd4, 0xc3, 0xb2, 0xa1];
const PCAP_US_BE: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];
const PCAP_NS_LE: [u8; 4] = [0x4d, 0x3c, 0xb2, 0xa1];
const PCAP_NS_BE: [u8; 4] = [0xa1, 0xb2, 0x3c, 0x4d];
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

/// Which container the file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    Pcap { big_endian: bool, nanosecond: bool },
    Pcapng,
}

/// One captured frame, borrowed from the reader's buffer until the next call.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    /// LINKTYPE_* value of the interface the frame was captured on.
    pub linktype: u32,
    /// Microseconds since the Unix epoch.
    pub ts_us: i64,
    /// Length of the frame on the wire (may exceed `data.len()` when a snaplen cut it).
    pub orig_len: u32,
    /// Byte offset of the record in the (decompressed) file.
    pub offset: u64,
    /// The captured bytes.
    pub data: &'a [u8],
}

/// How an interface's timestamp units convert to microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TsConv {
    Micro,
    Nano,
    /// units * mul / div (powers of ten other than 6 and 9).
    Scale {
        mul: u64,
        div: u64,
    },
    /// units * 1e6 / 2^shift (if_tsresol with the high bit set).
    Pow2(u32),
}

impl TsConv {
    fn from_tsresol(v: u8) -> TsConv {
        if v & 0x80 != 0 {
            return TsConv::Pow2(u32::from(v & 0x7f));
        }
        match v {
            6 => TsConv::Micro,
            9 => TsConv::Nano,
            k if k < 6 => TsConv::Scale {
                mul: 10u64.pow(u32::from(6 - k)),
                div: 1,
            },
            k => TsConv::Scale {
                mul: 1,
                div: 10u64.checked_pow(u32::from(k - 6)).unwrap_or(u64::MAX),
            },
        }
    }

    #[inline]
    fn to_us(self, units: u64) -> i64 {
        let us = match self {
            TsConv::Micro => units,
            TsConv::Nano => units / 1000,
            TsConv::Scale { mul, div } => {
                let v = u128::from(units) * u128::from(mul) / u128::from(div);
                u64::try_from(v).unwrap_or(u64::MAX)
            }
            TsConv::Pow2(shift) => {
                let v = (u128::from(units) * 1_000_000) >> shift;
                u64::try_from(v).unwrap_or(u64::MAX)
            }
        };
        i64::try_from(us).unwrap_or(i64::MAX)
    }
}

#[derive(Debug, Clone, Copy)]
struct Iface {
    linktype: u32,
    conv: TsConv,
    offset_us: i64,
}

#[derive(Debug)]
enum State {
    Pcap {
        swapped: bool,
        nanos: bool,
        linktype: u32,
    },
    Pcapng {
        big: bool,
        ifaces: Vec<Iface>,
        last_ts: i64,
    },
}

/// Streaming reader over any `Read`. Call [`CaptureReader::next_packet`] until `Ok(None)`.
pub struct CaptureReader<R> {
    name: String,
    src: R,
    buf: Vec<u8>,
    /// Valid unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    /// File offset of `buf[0]`.
    base: u64,
    eof: bool,
    max_caplen: usize,
    state: State,
    format: FileFormat,
}

#[inline(always)]
fn u16_at(b: &[u8], at: usize, big: bool) -> u16 {
    let a = [b[at], b[at + 1]];
    if big {
        u16::from_be_bytes(a)
    } else {
        u16::from_le_bytes(a)
    }
}

#[inline(always)]
fn u32_at(b: &[u8], at: usize, big: bool) -> u32 {
    let a = [b[at], b[at + 1], b[at + 2], b[at + 3]];
    if big {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

fn hex_bytes(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

impl<R: Read> CaptureReader<R> {
    /// Open a capture: reads and checks the file header. `name` is used in error messages.
    pub fn new(name: impl Into<String>, src: R) -> Result<Self, CaptureError> {
        Self::with_options(name, src, DEFAULT_BUFFER_SIZE, DEFAULT_MAX_CAPLEN)
    }

    /// Like [`CaptureReader::new`] with an explicit chunk size and record length limit.
    pub fn with_options(
        name: impl Into<String>,
        src: R,
        buffer_size: usize,
        max_caplen: usize,
    ) -> Result<Self, CaptureError> {
        let mut r = CaptureReader {
            name: name.into(),
            src,
            buf: vec![0; buffer_size.max(64 << 10)],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            max_caplen,
            state: State::Pcap {
                swapped: false,
                nanos: false,
                linktype: 0,
            },
            format: FileFormat::Pcapng,
        };
        r.fill(4)?;
        let head = &r.buf[r.pos..r.end];
        if head.is_empty() {
            return Err(CaptureError::Empty { file: r.name });
        }
        let magic: [u8; 4] = match head.get(..4) {
            Some(m) => [m[0], m[1], m[2], m[3]],
            None => {
                return Err(CaptureError::NotCapture {
                    first: hex_bytes(head),
                    file: r.name,
                });
            }
        };
        let pcap = match magic {
            PCAP_US_LE => Some((false, false)),
            PCAP_US_BE => Some((true, false)),
            PCAP_NS_LE => Some((false, true)),
            PCAP_NS_BE => Some((true, true)),
            _ => None,
        };
        if let Some((big, nanos)) = pcap {
            if !r.fill(24)? {
                return Err(CaptureError::TruncatedHeader {
                    file: r.name,
                    needed: 24,
                    present: r.end - r.pos,
                });
            }
            let h = &r.buf[r.pos..r.pos + 24];
            let linktype = u32_at(h, 20, big) & 0xffff;
            r.pos += 24;
            r.state = State::Pcap {
                swapped: big,
                nanos,
                linktype,
            };
            r.format = FileFormat::Pcap {
                big_endian: big,
                nanosecond: nanos,
            };
            return Ok(r);
        }
        if u32::from_le_bytes(magic) == PCAPNG_SHB {
            // The smallest section header block is 28 bytes.
            if !r.fill(28)? {
                return Err(CaptureError::TruncatedHeader {
                    file: r.name,
                    needed: 28,
                    present: r.end - r.pos,
                });
            }
            r.state = State::Pcapng {
                big: false,
                ifaces: Vec::new(),
                last_ts: 0,
            };
            return Ok(r);
        }
        Err(CaptureError::NotCapture {
            first: hex_bytes(&magic),
            file: r.name,
        })
    }

    /// The container format found in the header.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// Bytes of the (decompressed) file consumed so far.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Make at least `need` bytes available at `pos`. `Ok(false)` at end of file.
    #[inline(always)]
    fn fill(&mut self, need: usize) -> Result<bool, CaptureError> {
        if self.end - self.pos >= need {
            return Ok(true);
        }
        self.fill_slow(need)
    }

    #[cold]
    #[inline(never)]
    fn fill_slow(&mut self, need: usize) -> Result<bool, CaptureError> {
        if need > self.buf.len() - self.pos {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
            if need > self.buf.len() {
                self.buf.resize(need, 0);
            }
        }
        // Fill the whole buffer, not just `need`: big reads keep the per-packet cost flat.
        while self.end < self.buf.len() && !self.eof {
            match self.src.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(CaptureError::ReadAt {
                        file: self.name.clone(),
                        offset: self.base + self.end as u64,
                        source: e,
                    });
                }
            }
        }
        Ok(self.end - self.pos >= need)
    }

    fn corrupt(&self, offset: u64, reason: String) -> CaptureError {
        CaptureError::Corrupt {
            file: self.name.clone(),
            offset,
            reason,
        }
    }

    /// The next frame, `Ok(None)` at a clean end of file.
    #[inline]
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        match self.state {
            State::Pcap {
                swapped,
                nanos,
                linktype,
            } => self.next_pcap(swapped, nanos, linktype),
            State::Pcapng { .. } => self.next_pcapng(),
        }
    }

    #[inline(always)]
    fn next_pcap(
        &mut self,
        big: bool,
        nanos: bool,
        linktype: u32,
    ) -> Result<Option<Packet<'_>>, CaptureError> {
        let offset = self.offset();
        if !self.fill(16)? {
            let left = self.end - self.pos;
            if left == 0 {
                return Ok(None);
            }
            return Err(CaptureError::TruncatedRecordHeader {
                file: self.name.clone(),
                offset,
                needed: 16,
                left,
            });
        }
        let h = &self.buf[self.pos..self.pos + 16];
        let sec = u32_at(h, 0, big);
        let frac = u32_at(h, 4, big);
        let incl = u32_at(h, 8, big) as usize;
        let orig_len = u32_at(h, 12, big);
        if incl > self.max_caplen {
            return Err(self.corrupt(
                offset,
                format!(
                    "record length {incl} exceeds the maximum of {} bytes",
                    self.max_caplen
                ),
            ));
        }
        if !self.fill(16 + incl)? {
            return Err(CaptureError::TruncatedRecord {
                file: self.name.clone(),
                offset,
                wanted: incl as u64,
                left: (self.end - self.pos).saturating_sub(16) as u64,
            });
        }
        let frac_us = if nanos { frac / 1000 } else { frac };
        let ts_us = i64::from(sec) * 1_000_000 + i64::from(frac_us);
        let start = self.pos + 16;
        self.pos = start + incl;
        Ok(Some(Packet {
            linktype,
            ts_us,
            orig_len,
            offset,
            data: &self.buf[start..start + incl],
        }))
    }

    fn next_pcapng(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        loop {
            let offset = self.offset();
            if !self.fill(12)? {
                let left = self.end - self.pos;
                if left == 0 {
                    return Ok(None);
                }
                return Err(CaptureError::TruncatedRecordHeader {
                    file: self.name.clone(),
                    offset,
                    needed: 12,
                    left,
                });
            }
            let head = &self.buf[self.pos..self.pos + 12];
            if u32_at(head, 0, false) == PCAPNG_SHB {
                // A new section: its byte-order magic decides how everything up to the next
                // section header is read, and it forgets the previous section's interfaces.
                let big = match u32_at(head, 8, false) {
                    PCAPNG_BOM => false,
                    m if m.swap_bytes() == PCAPNG_BOM => true,
                    m => {
                        return Err(self.corrupt(
                            offset,
                            format!("section header with bad byte-order magic {m:08x}"),
                        ));
                    }
                };
                if let State::Pcapng { big: b, ifaces, .. } = &mut self.state {
                    *b = big;
                    ifaces.clear();
                }
            }
            let big = match &self.state {
                State::Pcapng { big, .. } => *big,
                State::Pcap { .. } => false,
            };
            let btype = u32_at(head, 0, big);
            let total = u32_at(head, 4, big) as usize;
            if total < 12 || !total.is_multiple_of(4) || total > MAX_BLOCK_LEN {
                return Err(self.corrupt(
                    offset,
                    format!("pcapng block of type {btype:#x} has invalid length {total}"),
                ));
            }
            if !self.fill(total)? {
                return Err(CaptureError::TruncatedRecord {
                    file: self.name.clone(),
                    offset,
                    wanted: total as u64,
                    left: (self.end - self.pos) as u64,
                });
            }
            let block_start = self.pos;
            let trailer = u32_at(&self.buf, block_start + total - 4, big) as usize;
            if trailer != total {
                return Err(self.corrupt(
                    offset,
                    format!(
                        "pcapng block length {total} does not match its trailing copy {trailer}"
                    ),
                ));
            }
            self.pos += total;
            let body = block_start + 8..block_start + total - 4;
            match btype {
                PCAPNG_SHB if body.len() < 16 => {
                    return Err(self.corrupt(offset, "section header block too short".to_string()));
                }
                1 => {
                    let b = &self.buf[body];
                    if b.len() < 8 {
                        return Err(self
                            .corrupt(offset, "interface description block too short".to_string()));
                    }
                    let iface = parse_idb(b, big);
                    if let State::Pcapng { ifaces, .. } = &mut self.state {
                        ifaces.push(iface);
                    }
                }
                6 | 2 => {
                    let b = &self.buf[body.clone()];
                    if b.len() < 20 {
                        return Err(self.corrupt(offset, "packet block too short".to_string()));
                    }
                    let iface_id = if btype == 6 {
                        u32_at(b, 0, big) as usize
                    } else {
                        usize::from(u16_at(b, 0, big))
                    };
                    let units = (u64::from(u32_at(b, 4, big)) << 32) | u64::from(u32_at(b, 8, big));
                    let caplen = u32_at(b, 12, big) as usize;
                    let orig_len = u32_at(b, 16, big);
                    if caplen > b.len() - 20 {
                        return Err(self.corrupt(
                            offset,
                            format!(
                                "captured length {caplen} is larger than the block ({} bytes of data)",
                                b.len() - 20
                            ),
                        ));
                    }
                    if caplen > self.max_caplen {
                        return Err(self.corrupt(
                            offset,
                            format!(
                                "record length {caplen} exceeds the maximum of {} bytes",
                                self.max_caplen
                            ),
                        ));
                    }
                    let State::Pcapng {
                        ifaces, last_ts, ..
                    } = &mut self.state
                    else {
                        return Ok(None);
                    };
                    let Some(iface) = ifaces.get(iface_id).copied() else {
                        return Err(self.corrupt(
                            offset,
                            format!("packet for undefined interface {iface_id}"),
                        ));
                    };
                    let ts_us = iface.conv.to_us(units).saturating_add(iface.offset_us);
                    *last_ts = ts_us;
                    let start = body.start + 20;
                    return Ok(Some(Packet {
                        linktype: iface.linktype,
                        ts_us,
                        orig_len,
                        offset,
                        data: &self.buf[start..start + caplen],
                    }));
                }
                3 => {
                    // Simple packet block: no interface id (always 0) and no timestamp; we
                    // reuse the last timestamp seen so timers on packet time do not jump.
                    let b = &self.buf[body.clone()];
                    if b.len() < 4 {
                        return Err(
                            self.corrupt(offset, "simple packet block too short".to_string())
                        );
                    }
                    let orig_len = u32_at(b, 0, big);
                    let caplen = (orig_len as usize).min(b.len() - 4);
                    let State::Pcapng {
                        ifaces, last_ts, ..
                    } = &self.state
                    else {
                        return Ok(None);
                    };
                    let Some(iface) = ifaces.first().copied() else {
                        return Err(self.corrupt(
                            offset,
                            "simple packet block before any interface description".to_string(),
                        ));
                    };
                    let start = body.start + 4;
                    return Ok(Some(Packet {
                        linktype: iface.linktype,
                        ts_us: *last_ts,
                        orig_len,
                        offset,
                        data: &self.buf[start..start + caplen],
                    }));
                }
                _ => {} // name resolution, statistics, custom, ...: not needed
            }
        }
    }
}

/// Interface description: link type plus the two options that change timestamps.
fn parse_idb(b: &[u8], big: bool) -> Iface {
    let linktype = u32::from(u16_at(b, 0, big));
    let mut iface = Iface {
        linktype,
        conv: TsConv::Micro,
        offset_us: 0,
    };
    let mut opts = b.get(8..).unwrap_or(&[]);
    while opts.len() >= 4 {
        let code = u16_at(opts, 0, big);
        let len = usize::from(u16_at(opts, 2, big));
        let padded = (len + 3) & !3;
        let Some(value) = opts.get(4..4 + len) else {
            break; // malformed options: keep what we have
        };
        match code {
            0 => break,
            9 if len >= 1 => iface.conv = TsConv::from_tsresol(value[0]),
            14 if len >= 8 => {
                let secs = if big {
                    i64::from_be_bytes(value[..8].try_into().unwrap_or([0; 8]))
                } else {
                    i64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]))
                };
                iface.offset_us = secs.saturating_mul(1_000_000);
            }
            _ => {}
        }
        opts = opts.get(4 + padded..).unwrap_or(&[]);
    }
    iface
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsresol_conversions() {
        assert_eq!(TsConv::from_tsresol(6).to_us(1_500_000), 1_500_000);
        assert_eq!(TsConv::from_tsresol(9).to_us(1_500_000_999), 1_500_000);
        assert_eq!(TsConv::from_tsresol(3).to_us(1_500), 1_500_000);
        assert_eq!(TsConv::from_tsresol(0).to_us(2), 2_000_000);
        assert_eq!(TsConv::from_tsresol(12).to_us(3_000_000_000_000), 3_000_000);
        // 2^-10 s units: 1024 units = 1 s
        assert_eq!(TsConv::from_tsresol(0x80 | 10).to_us(1024 * 5), 5_000_000);
        assert_eq!(TsConv::from_tsresol(0x80 | 20).to_us(1 << 20), 1_000_000);
        // absurd resolutions do not panic
        assert!(TsConv::from_tsresol(127).to_us(u64::MAX) <= 1);
        assert_eq!(TsConv::from_tsresol(0xff).to_us(u64::MAX), 0);
        assert_eq!(TsConv::from_tsresol(0).to_us(u64::MAX), i64::MAX);
    }
}
