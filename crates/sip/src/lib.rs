//! Zero-copy view of one SIP message, built for passive capture.
//!
//! A sniffer sees whatever is on the wire: truncated datagrams, vendor quirks, binary noise on
//! port 5060. So this parser borrows every value from the input buffer (no allocation on the hot
//! path), extracts only the headers a call monitor needs, and returns an error value for anything
//! it cannot make sense of. It never panics, whatever the input.

/// The SIP transport a message travelled over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    Sctp,
    Ws,
}

impl Transport {
    /// Lower-case name as used in CDRs and Via headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
            Transport::Sctp => "sctp",
            Transport::Ws => "ws",
        }
    }
}

/// SIP request method. Unknown methods keep their bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Prack,
    Subscribe,
    Notify,
    Publish,
    Info,
    Refer,
    Message,
    Update,
    Other(&'a [u8]),
}

/// The first line of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: &'a [u8] },
    Response { code: u16, reason: &'a [u8] },
}

/// A From/To style header: `"Display" <sip:user@domain>;tag=x`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NameAddr<'a> {
    /// Display name without quotes, if any.
    pub display: Option<&'a [u8]>,
    /// User part of the URI (may be empty).
    pub user: &'a [u8],
    /// Host part of the URI, without port.
    pub domain: &'a [u8],
    /// The `tag` parameter, if any.
    pub tag: Option<&'a [u8]>,
}

/// The CSeq header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub seq: u32,
    pub method: Method<'a>,
}

/// The connection address and media lines of an SDP body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sdp<'a> {
    /// Session-level (or first) `c=` address.
    pub connection: Option<&'a [u8]>,
    /// First `m=audio` (or first `m=`) port and its media type.
    pub media: Option<(&'a [u8], u16)>,
    /// Number of `m=` lines.
    pub media_count: u16,
}

/// One parsed SIP message; every slice borrows from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    pub call_id: Option<&'a [u8]>,
    pub from: Option<NameAddr<'a>>,
    pub to: Option<NameAddr<'a>>,
    pub cseq: Option<CSeq<'a>>,
    /// `branch` of the topmost Via.
    pub via_branch: Option<&'a [u8]>,
    /// Transport of the topmost Via (`SIP/2.0/UDP`).
    pub via_transport: Option<Transport>,
    pub contact: Option<&'a [u8]>,
    pub content_length: Option<usize>,
    pub content_type: Option<&'a [u8]>,
    pub reason: Option<&'a [u8]>,
    pub referred_by: Option<&'a [u8]>,
    pub refer_to: Option<&'a [u8]>,
    pub replaces: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// Body bytes (bounded by Content-Length when present and sane).
    pub body: &'a [u8],
    /// SDP lines when the body is SDP.
    pub sdp: Option<Sdp<'a>>,
}

/// Why a buffer is not a SIP message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Not even a plausible start line.
    NotSip,
    /// The start line is malformed.
    BadStartLine,
    /// Headers never end (no empty line) within the buffer.
    Truncated,
    /// A header we rely on is malformed; names the header.
    BadHeader(&'static str),
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::NotSip => write!(f, "not a SIP message"),
            ParseError::BadStartLine => write!(f, "malformed SIP start line"),
            ParseError::Truncated => write!(f, "SIP headers truncated"),
            ParseError::BadHeader(h) => write!(f, "malformed {h} header"),
        }
    }
}

impl std::error::Error for ParseError {}

/// Parse one SIP message from `buf`.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    let _ = buf;
    Err(ParseError::NotSip)
}

/// Framing for stream transports: `Some(Ok(n))` when `buf` starts with a complete message of
/// `n` bytes (headers + Content-Length body), `None` when more bytes are needed, `Some(Err)` when
/// the bytes cannot be the start of a SIP message.
pub fn message_len(buf: &[u8]) -> Option<Result<usize, ParseError>> {
    let _ = buf;
    None
}

/// Cheap content check used for SIP detection on any port: does `buf` start like a SIP
/// request or response line?
pub fn looks_like_sip(buf: &[u8]) -> bool {
    let _ = buf;
    false
}
