//! From capture bytes to SIP payloads.
//!
//! `reader` understands file formats (pcap, pcapng, gzip), `decode` turns one link-layer frame
//! into zero or more SIP payloads (IP defragmentation, UDP, TCP stream reassembly). Everything
//! that is not SIP is rejected as early and as cheaply as possible: RTP dominates real captures.

use std::net::SocketAddr;

pub use sip::Transport;

/// One SIP message worth of bytes, with where and when it was seen.
#[derive(Debug, Clone, Copy)]
pub struct SipPayload<'a> {
    /// Capture time, microseconds since the Unix epoch (UTC).
    pub ts_us: i64,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// For UDP one datagram; for TCP one message framed by Content-Length.
    pub data: &'a [u8],
}

/// Receives what the reader finds.
pub trait Sink {
    /// A SIP payload (not yet parsed).
    fn sip(&mut self, payload: &SipPayload<'_>);
    /// Bytes of the current file consumed so far (for progress bars).
    fn progress(&mut self, _bytes_done: u64) {}
}
