//! From capture bytes to SIP payloads.
//!
//! `reader` understands file formats (pcap, pcapng, gzip), `decode` turns one link-layer frame
//! into zero or more SIP payloads (IP defragmentation, UDP, TCP stream reassembly). Everything
//! that is not SIP is rejected as early and as cheaply as possible: RTP dominates real captures.
//!
//! Layers, bottom up:
//! - [`reader`]: file formats → (link type, timestamp, frame bytes);
//! - [`decode`]: [`Decoder`] turns frames into [`SipPayload`]s; it keeps the state that spans
//!   packets (fragments, TCP streams) so it works the same for files and live capture;
//! - [`ports`], [`defrag`], [`tcp`]: the pieces the decoder is made of;
//! - [`read_path`] / [`read_capture`]: the convenience loop gluing a file to a decoder and a sink.

use std::fs::File;
use std::io::{self, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use sip::Transport;

pub mod decode;
pub mod defrag;
pub mod error;
pub mod hep;
#[cfg(feature = "live")]
pub mod live;
pub mod ports;
pub mod reader;
pub mod sctp;
pub mod tcp;

pub use decode::Decoder;
pub use defrag::DefragConfig;
pub use error::CaptureError;
pub use ports::{PortSet, PortSetError};
pub use reader::{CaptureReader, FileFormat, Packet};
pub use sctp::SctpConfig;
pub use tcp::TcpConfig;

/// One SIP message worth of bytes, with where and when it was seen.
#[derive(Debug, Clone, Copy)]
pub struct SipPayload<'a> {
    /// Capture time, microseconds since the Unix epoch (UTC). For a TCP message reassembled
    /// from several segments, the time of the segment that completed it.
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// For UDP one datagram; for TCP one message framed by Content-Length; for SCTP one user
    /// message; for HEP the packet's payload (and `ts_us`, addresses, transport from its chunks).
    pub data: &'a [u8],
}

/// Receives what the reader finds.
pub trait Sink {
    /// A SIP payload (not yet parsed).
    fn sip(&mut self, payload: &SipPayload<'_>);
    /// Bytes of the current file consumed so far (for progress bars).
    fn progress(&mut self, _bytes_done: u64) {}
}

/// The two SIP functions the decoder needs, as plain function pointers so that the framing can be
/// swapped (tests, future transports) without making the decoder generic.
#[derive(Debug, Clone, Copy)]
pub struct SipHooks {
    /// Stream framing: see [`sip::message_len`].
    pub message_len: fn(&[u8]) -> Option<Result<usize, sip::ParseError>>,
    /// Content sniffing for SIP on any port: see [`sip::looks_like_sip`].
    pub looks_like_sip: fn(&[u8]) -> bool,
}

impl Default for SipHooks {
    fn default() -> Self {
        SipHooks {
            message_len: sip::message_len,
            looks_like_sip: sip::looks_like_sip,
        }
    }
}

/// Everything that tunes reading and decoding. `Default` is what a sensor should use.
#[derive(Debug, Clone)]
pub struct CaptureConfig {
    /// UDP/TCP/SCTP ports carrying SIP (default 5060, 5061): always tried first, and TCP streams
    /// on them are reassembled from their first segment.
    pub ports: PortSet,
    /// Also find SIP (and HEP) by its content on every other port (default on; off is
    /// `--sip-ports-only`). Costs one byte comparison per RTP packet; a TCP stream off the SIP
    /// ports is followed from its first segment that starts a SIP message. Tunnels are opened
    /// either way.
    pub detect_any_port: bool,
    pub defrag: DefragConfig,
    pub tcp: TcpConfig,
    pub sctp: SctpConfig,
    /// Records longer than this are corruption (default 256 KiB).
    pub max_caplen: usize,
    /// Read chunk size (default 8 MiB).
    pub buffer_size: usize,
    pub hooks: SipHooks,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            ports: PortSet::sip_default(),
            detect_any_port: true,
            defrag: DefragConfig::default(),
            tcp: TcpConfig::default(),
            sctp: SctpConfig::default(),
            max_caplen: reader::DEFAULT_MAX_CAPLEN,
            buffer_size: reader::DEFAULT_BUFFER_SIZE,
            hooks: SipHooks::default(),
        }
    }
}

macro_rules! stats {
    ($($(#[$m:meta])* $f:ident),* $(,)?) => {
        /// Counters of what was read and decoded. All are cumulative in a [`Decoder`]; a
        /// [`FileReport`] holds the part for one file.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct Stats {
            $($(#[$m])* pub $f: u64,)*
        }
        impl Stats {
            /// Counter differences `self - before` (for per-file figures).
            pub fn since(&self, before: &Stats) -> Stats {
                Stats { $($f: self.$f.wrapping_sub(before.$f),)* }
            }
        }
    };
}

stats! {
    /// Frames given to the decoder.
    packets,
    /// Captured bytes of those frames.
    bytes,
    /// Payloads delivered to the sink.
    sip_payloads,
    /// Frames that were well-formed but not SIP (RTP, other protocols, non-IP).
    non_sip_packets,
    /// Frames whose headers were malformed (counted, skipped).
    decode_errors,
    /// Frames with a link type we do not decode.
    unsupported_linktype,
    /// IP fragments seen (v4 and v6).
    ip_fragments,
    /// Datagrams rebuilt from fragments.
    ip_reassembled,
    /// Incomplete datagrams dropped (timeout, memory bound, inconsistent fragments).
    ip_fragments_dropped,
    /// UDP payloads on SIP ports made only of CR/LF (keep-alives), not delivered.
    keepalives,
    /// TCP segments looked at on tracked streams.
    tcp_segments,
    /// TCP streams (one direction each) started.
    tcp_streams,
    /// Segments entirely already seen (retransmissions).
    tcp_retransmissions,
    /// Segments that arrived ahead of a gap and were buffered.
    tcp_out_of_order,
    /// Gaps given up on (missing data never arrived, or buffers full).
    tcp_gaps,
    /// Bytes skipped while looking for the start of a SIP message.
    tcp_garbage_bytes,
    /// Encapsulation headers opened (GRE, ERSPAN, VXLAN, Geneve, IP-in-IP, TZSP, MPLS).
    tunnels,
    /// Tunnel (or HEP) headers that were malformed, or nested deeper than the decoder goes:
    /// counted, the packet skipped.
    malformed_tunnels,
    /// Encapsulations seen but not opened (GRE version 1 / source routes, other GRE, Geneve or
    /// TZSP payload types, MPLS payloads that are neither IP nor Ethernet).
    unknown_tunnels,
    /// HEPv3 packets read (any port, UDP, TCP or SCTP).
    hep_packets,
    /// SCTP DATA / I-DATA chunks seen.
    sctp_chunks,
    /// SCTP user messages that were not SIP.
    sctp_non_sip,
    /// Fragmented SCTP messages given up (lost or reordered fragment, memory bound).
    sctp_dropped,
    /// TLS records (SIP over TLS, unreadable without keys) on the SIP ports or 5061.
    tls_records,
}

/// What happened with one file.
#[derive(Debug)]
pub struct FileReport {
    pub path: PathBuf,
    /// Container format, when the header could be read.
    pub format: Option<FileFormat>,
    /// Whether the file was gzip-compressed.
    pub gzip: bool,
    pub stats: Stats,
    /// Why reading stopped early, if it did. Everything before the error was delivered.
    pub error: Option<CaptureError>,
}

/// Read one capture file (pcap, pcapng, either gzip-compressed) and feed it to `decoder`.
///
/// Never fails as a whole: errors (including the file not opening) land in
/// [`FileReport::error`] after everything readable was delivered.
pub fn read_path(
    path: &Path,
    config: &CaptureConfig,
    decoder: &mut Decoder,
    sink: &mut dyn Sink,
) -> FileReport {
    let name = path.display().to_string();
    match File::open(path) {
        Ok(f) => {
            let mut report = read_capture(&name, f, config, decoder, sink);
            report.path = path.to_path_buf();
            report
        }
        Err(source) => FileReport {
            path: path.to_path_buf(),
            format: None,
            gzip: false,
            stats: Stats::default(),
            error: Some(CaptureError::Io { file: name, source }),
        },
    }
}

/// Counts bytes pulled from the underlying source, so progress is reported in file bytes even
/// when the content is gzip-compressed.
struct Counting<R> {
    inner: R,
    count: std::rc::Rc<std::cell::Cell<u64>>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }
}

/// Like [`read_path`] for any byte source (`name` is used in messages). Gzip is detected by its
/// magic bytes, not by a file name.
pub fn read_capture(
    name: &str,
    mut src: impl Read,
    config: &CaptureConfig,
    decoder: &mut Decoder,
    sink: &mut dyn Sink,
) -> FileReport {
    let before = decoder.stats().clone();
    let mut report = FileReport {
        path: PathBuf::from(name),
        format: None,
        gzip: false,
        stats: Stats::default(),
        error: None,
    };
    // Peek two bytes for the gzip magic, then put them back in front of the stream.
    let mut head = [0u8; 2];
    let mut got = 0;
    while got < 2 {
        match src.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                report.error = Some(CaptureError::Io {
                    file: name.to_string(),
                    source,
                });
                return report;
            }
        }
    }
    let count = std::rc::Rc::new(std::cell::Cell::new(0u64));
    let joined = Counting {
        inner: io::Cursor::new(head[..got].to_vec()).chain(src),
        count: count.clone(),
    };
    let stream: Box<dyn Read> = if got == 2 && head == [0x1f, 0x8b] {
        report.gzip = true;
        Box::new(flate2::read::MultiGzDecoder::new(joined))
    } else {
        Box::new(joined)
    };
    let mut rd =
        match CaptureReader::with_options(name, stream, config.buffer_size, config.max_caplen) {
            Ok(r) => r,
            Err(e) => {
                report.error = Some(e);
                return report;
            }
        };
    report.format = Some(rd.format());
    let mut n: u32 = 0;
    loop {
        match rd.next_packet() {
            Ok(Some(p)) => {
                decoder.frame(p.linktype, p.ts_us, p.data, sink);
                n = n.wrapping_add(1);
                if n & 0xffff == 0 {
                    sink.progress(count.get());
                }
            }
            Ok(None) => break,
            Err(e) => {
                report.error = Some(e);
                break;
            }
        }
    }
    sink.progress(count.get());
    report.stats = decoder.stats().since(&before);
    report
}

/// Extensions recognised as captures in a directory (each also with `.gz`).
const CAPTURE_EXTS: [&str; 3] = [".pcap", ".pcapng", ".cap"];

fn is_capture_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let base = lower.strip_suffix(".gz").unwrap_or(&lower);
    CAPTURE_EXTS
        .iter()
        .any(|ext| base.len() > ext.len() && base.ends_with(ext))
}

/// The capture files a path stands for: a file is itself (whatever its name); a directory gives
/// every `*.pcap`, `*.pcapng`, `*.cap` (and `.gz` of each) directly inside it, sorted by name.
pub fn list_captures(path: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    let io_err = |source| CaptureError::Io {
        file: path.display().to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io_err)?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(path).map_err(io_err)? {
        let entry = entry.map_err(io_err)?;
        let p = entry.path();
        let is_file = std::fs::metadata(&p).map(|m| m.is_file()).unwrap_or(false);
        if is_file && is_capture_name(&entry.file_name().to_string_lossy()) {
            out.push(p);
        }
    }
    out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capture_names() {
        for ok in [
            "a.pcap",
            "A.PCAPNG",
            "x.cap",
            "x.pcap.gz",
            "x.pcapng.GZ",
            "y.cap.gz",
        ] {
            assert!(is_capture_name(ok), "{ok}");
        }
        for no in ["a.txt", "pcap", ".pcap", "x.gz", "x.pcap.bak", "x.pcapgz"] {
            assert!(!is_capture_name(no), "{no}");
        }
    }
}
