//! Zero-copy view of one SIP message, built for passive capture.
//!
//! A sniffer sees whatever is on the wire: truncated datagrams, vendor quirks, binary noise on
//! port 5060. So this parser borrows every value from the input buffer (no allocation on the hot
//! path), extracts only the headers a call monitor needs, and returns an error value for anything
//! it cannot make sense of. It never panics, whatever the input.
//!
//! Entry points: [`parse`] for one message (a UDP datagram, or a frame cut by [`message_len`]),
//! [`message_len`] and [`skip_keepalive`] for framing TCP/TLS streams, [`looks_like_sip`] for
//! spotting SIP on ports not configured as SIP. Header values that stay raw slices (Refer-To,
//! Referred-By, Contact, ...) can be taken apart with [`NameAddr::parse`], [`Uri::parse`],
//! [`Replaces::parse`] and [`uri_user_host`].

mod addr;
mod bytes;
mod headers;
mod method;
mod sdp;

pub use addr::{AddrParts, Replaces, Uri, find_param, uri_user_host};

use bytes::{is_token, starts_with_ignore_case, trim, trim_end, trim_start};
use headers::{Line, Name, classify, next_line, parse_cseq, parse_via};

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
    /// Display name without quotes, if any. Backslash escapes inside a quoted name are left as
    /// on the wire (`Bob \"B\"`): unescaping would need a copy.
    pub display: Option<&'a [u8]>,
    /// User part of the URI (may be empty); for `tel:` URIs the number.
    pub user: &'a [u8],
    /// Host part of the URI, without port (IPv6 without brackets; empty for `tel:`).
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
    /// First Contact header value, raw (may hold several comma-separated contacts or `*`).
    pub contact: Option<&'a [u8]>,
    pub content_length: Option<usize>,
    pub content_type: Option<&'a [u8]>,
    pub reason: Option<&'a [u8]>,
    pub referred_by: Option<&'a [u8]>,
    /// Raw Refer-To value. A `?Replaces=` URI header inside it stays percent-encoded here; see
    /// [`Uri::header`].
    pub refer_to: Option<&'a [u8]>,
    /// The Replaces *header* (RFC 3891); see [`Replaces::parse`].
    pub replaces: Option<&'a [u8]>,
    pub user_agent: Option<&'a [u8]>,
    /// Body bytes: Content-Length bytes when present, cut short to what the buffer holds (a
    /// snap-length or UDP truncation is not an error); the rest of the buffer without it.
    pub body: &'a [u8],
    /// SDP lines when the body is SDP.
    pub sdp: Option<Sdp<'a>>,
}

/// Raw header values (Call-ID, Contact, Content-Type, Reason, Referred-By, Refer-To, Replaces,
/// User-Agent) are trimmed, and `None` when the header is absent or empty. When a header occurs
/// more than once the first occurrence wins (for Via that is the topmost one).
impl<'a> Message<'a> {
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// Request method, `None` for a response (use `cseq` for the method a response answers).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// Response status code, `None` for a request.
    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }
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

/// Longest header section [`message_len`] waits for before declaring the stream garbage, so
/// that a peer sending endless header lines cannot make the reassembler buffer without bound.
pub const MAX_HEADER_LEN: usize = 64 * 1024;

/// Largest Content-Length [`message_len`] accepts. Real SIP bodies are a few KiB; a bigger
/// claim on a stream is a desynchronised or hostile peer, and waiting for it would stall the
/// connection. [`parse`] has no such limit: it never waits, it takes what is there.
pub const MAX_CONTENT_LENGTH: usize = 16 * 1024 * 1024;

/// Longest start line [`message_len`] waits for (no LF yet) before giving up on the stream.
const MAX_START_LINE: usize = 8 * 1024;

/// Parse one SIP message from `buf`.
///
/// Leading CR/LF bytes (stream keep-alives, RFC 3261 §7.5) are skipped. Bytes after the body
/// (the next message on a stream) are ignored. Errors: [`ParseError::NotSip`] for anything whose
/// first line is not shaped like SIP (RTP, STUN, HTTP, keep-alives alone),
/// [`ParseError::BadStartLine`] for a SIP-looking but malformed first line,
/// [`ParseError::Truncated`] when the empty line ending the headers is missing, and
/// [`ParseError::BadHeader`] for an unusable Call-ID, From, To, CSeq or Content-Length.
pub fn parse(buf: &[u8]) -> Result<Message<'_>, ParseError> {
    let b = &buf[skip_keepalive(buf)..];
    match b.first() {
        Some(c) if c.is_ascii_alphabetic() => {}
        _ => return Err(ParseError::NotSip),
    }
    let Some(lf) = memchr::memchr(b'\n', b) else {
        return Err(if looks_like_sip(b) {
            ParseError::Truncated
        } else {
            ParseError::NotSip
        });
    };
    let start = parse_start_line(&b[..lf])?;

    let mut msg = Message {
        start,
        call_id: None,
        from: None,
        to: None,
        cseq: None,
        via_branch: None,
        via_transport: None,
        contact: None,
        content_length: None,
        content_type: None,
        reason: None,
        referred_by: None,
        refer_to: None,
        replaces: None,
        user_agent: None,
        body: &[],
        sdp: None,
    };
    let mut seen_via = false;
    let mut pos = lf + 1;
    let body_start = loop {
        let (name, v) = match next_line(b, &mut pos) {
            Line::Header(name, v) => (name, v),
            Line::End(end) => break end,
            Line::Truncated => return Err(ParseError::Truncated),
        };
        let raw = (!v.is_empty()).then_some(v);
        match classify(name) {
            Name::Other => {}
            Name::CallId if msg.call_id.is_none() => {
                msg.call_id = Some(raw.ok_or(ParseError::BadHeader("Call-ID"))?);
            }
            Name::From if msg.from.is_none() => {
                msg.from = Some(NameAddr::parse(v).ok_or(ParseError::BadHeader("From"))?);
            }
            Name::To if msg.to.is_none() => {
                msg.to = Some(NameAddr::parse(v).ok_or(ParseError::BadHeader("To"))?);
            }
            Name::CSeq if msg.cseq.is_none() => {
                msg.cseq = Some(parse_cseq(v).ok_or(ParseError::BadHeader("CSeq"))?);
            }
            Name::Via if !seen_via => {
                seen_via = true;
                (msg.via_transport, msg.via_branch) = parse_via(v);
            }
            Name::ContentLength if msg.content_length.is_none() => {
                msg.content_length =
                    Some(parse_content_length(v).ok_or(ParseError::BadHeader("Content-Length"))?);
            }
            Name::Contact if msg.contact.is_none() => msg.contact = raw,
            Name::ContentType if msg.content_type.is_none() => msg.content_type = raw,
            Name::Reason if msg.reason.is_none() => msg.reason = raw,
            Name::ReferredBy if msg.referred_by.is_none() => msg.referred_by = raw,
            Name::ReferTo if msg.refer_to.is_none() => msg.refer_to = raw,
            Name::Replaces if msg.replaces.is_none() => msg.replaces = raw,
            Name::UserAgent if msg.user_agent.is_none() => msg.user_agent = raw,
            _ => {} // repeated header: the first one wins
        }
    };

    let rest = b.get(body_start..).unwrap_or_default();
    msg.body = match msg.content_length {
        Some(n) => &rest[..n.min(rest.len())],
        None => rest,
    };
    if !msg.body.is_empty() {
        msg.sdp = match msg.content_type {
            Some(ct) if sdp::is_sdp_type(ct) => Some(Sdp::parse(msg.body)),
            Some(ct) if sdp::is_multipart(ct) => sdp::sdp_in_multipart(msg.body).map(Sdp::parse),
            // No Content-Type at all but an obvious SDP body: some gateways omit the header.
            None if msg.body.starts_with(b"v=0") => Some(Sdp::parse(msg.body)),
            _ => None,
        };
    }
    Ok(msg)
}

fn parse_content_length(v: &[u8]) -> Option<usize> {
    usize::try_from(bytes::parse_u64(v)?).ok()
}

/// Parse a start line (without its LF; a trailing CR is tolerated).
fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, ParseError> {
    let line = trim_end(line);
    if starts_with_ignore_case(line, b"SIP/") {
        let (version, rest) = bytes::split_once(line, b' ');
        if !version.eq_ignore_ascii_case(b"SIP/2.0") {
            return Err(ParseError::BadStartLine);
        }
        let rest = trim_start(rest.unwrap_or_default());
        let (code, reason) = match rest {
            [a, b, c, tail @ ..] if matches!(tail.first(), None | Some(b' ' | b'\t')) => {
                (bytes::parse_u64(&[*a, *b, *c]), trim(tail))
            }
            _ => (None, &[][..]),
        };
        return match code.and_then(|c| u16::try_from(c).ok()) {
            Some(code @ 100..=699) => Ok(StartLine::Response { code, reason }),
            _ => Err(ParseError::BadStartLine),
        };
    }
    let Some(sp) = memchr::memchr(b' ', line) else {
        return Err(ParseError::NotSip);
    };
    let method = &line[..sp];
    if method.is_empty() || method.len() > 32 || !method.iter().all(|&c| is_token(c)) {
        return Err(ParseError::NotSip);
    }
    let rest = &line[sp + 1..];
    let Some(vsp) = memchr::memrchr(b' ', rest) else {
        return Err(if addr::is_sip_scheme(rest) {
            ParseError::BadStartLine
        } else {
            ParseError::NotSip
        });
    };
    let version = &rest[vsp + 1..];
    let uri = trim(&rest[..vsp]);
    if !starts_with_ignore_case(version, b"SIP/") {
        return Err(ParseError::NotSip);
    }
    if !version.eq_ignore_ascii_case(b"SIP/2.0") || uri.is_empty() {
        return Err(ParseError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: Method::from_bytes(method),
        uri,
    })
}

/// Number of leading CR/LF bytes: the keep-alive pings (`CRLFCRLF`) and pongs (`CRLF`) of
/// RFC 5626 that sit between messages on a stream. A reassembler may drop them with this
/// before calling [`message_len`], but does not have to: [`message_len`] counts them into the
/// next frame and [`parse`] skips them.
pub fn skip_keepalive(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len())
}

/// Framing for stream transports: `Some(Ok(n))` when `buf` starts with a complete message of
/// `n` bytes (headers + Content-Length body), `None` when more bytes are needed, `Some(Err)` when
/// the bytes cannot be the start of a SIP message.
///
/// Keep-alives: leading CR/LF bytes are part of the returned frame (`n` counts them), and
/// [`parse`] skips them, so a caller needs no special case. A buffer holding only CR/LF bytes
/// returns `None` (more bytes needed); use [`skip_keepalive`] to drop them eagerly.
///
/// A missing Content-Length means an empty body (RFC 3261 §18.3 makes it mandatory on
/// streams). Errors tell the caller to resync (e.g. drop bytes up to the next line that
/// [`looks_like_sip`]): [`ParseError::NotSip`] or [`ParseError::BadStartLine`] for a bad first
/// line, [`ParseError::BadHeader`] for an unparseable or absurd (> [`MAX_CONTENT_LENGTH`])
/// Content-Length, [`ParseError::Truncated`] when more than [`MAX_HEADER_LEN`] bytes arrived
/// without the end of the headers. Each call rescans from the start of `buf`, which is cheap
/// because headers are bounded.
///
/// ```
/// // Two messages and a keep-alive in one TCP segment, the second one incomplete.
/// let stream = b"BYE sip:a@b SIP/2.0\r\nCall-ID: 1\r\nContent-Length: 0\r\n\r\n\
///                \r\n\r\nSIP/2.0 200 OK\r\nCall-ID: 1\r\nContent-Length: 2\r\n\r\nx";
/// let n = sip::message_len(stream).unwrap().unwrap();
/// assert_eq!(sip::parse(&stream[..n]).unwrap().method(), Some(sip::Method::Bye));
/// assert_eq!(sip::message_len(&stream[n..]), None); // wait for one more body byte
/// ```
pub fn message_len(buf: &[u8]) -> Option<Result<usize, ParseError>> {
    let k = skip_keepalive(buf);
    let b = &buf[k..];
    if !b.first()?.is_ascii_alphabetic() {
        return Some(Err(ParseError::NotSip));
    }
    let Some(lf) = memchr::memchr(b'\n', b) else {
        return if b.len() > MAX_START_LINE || !plausible_partial_start(b) {
            Some(Err(ParseError::NotSip))
        } else {
            None
        };
    };
    if let Err(e) = parse_start_line(&b[..lf]) {
        return Some(Err(e));
    }
    let mut pos = lf + 1;
    let mut content_length = None;
    let header_end = loop {
        match next_line(b, &mut pos) {
            Line::Header(name, v) => {
                if content_length.is_none() && classify(name) == Name::ContentLength {
                    match parse_content_length(v) {
                        Some(n) if n <= MAX_CONTENT_LENGTH => content_length = Some(n),
                        _ => return Some(Err(ParseError::BadHeader("Content-Length"))),
                    }
                }
            }
            Line::End(end) => break end,
            Line::Truncated if b.len() > MAX_HEADER_LEN => {
                return Some(Err(ParseError::Truncated));
            }
            Line::Truncated => return None,
        }
    };
    let total = k
        .checked_add(header_end)
        .and_then(|n| n.checked_add(content_length.unwrap_or(0)));
    match total {
        Some(n) if n <= buf.len() => Some(Ok(n)),
        Some(_) => None,
        None => Some(Err(ParseError::BadHeader("Content-Length"))),
    }
}

/// Could these bytes (no LF yet) still become a SIP start line? Lets a reassembler drop binary
/// junk without waiting for a newline that may never come.
fn plausible_partial_start(b: &[u8]) -> bool {
    let tok_end = memchr::memchr(b' ', b).unwrap_or(b.len());
    let tok = &b[..tok_end];
    tok.len() <= 32
        && tok.iter().all(|&c| is_token(c) || c == b'/')
        && b[tok_end..]
            .iter()
            .all(|&c| c >= 0x20 && c != 0x7f || c == b'\t' || c == b'\r')
}

/// Cheap content check used for SIP detection on any port: does `buf` start like a SIP
/// request or response line?
///
/// True for `SIP/2.0 ` or a known method, one space and a `sip:`, `sips:` or `tel:` URI. The
/// first-byte test rejects RTP (0x80..), STUN, TLS and most binary in one comparison, which is
/// what matters: this runs on every packet of every non-SIP port.
#[inline]
pub fn looks_like_sip(buf: &[u8]) -> bool {
    match buf.first() {
        Some(b'A'..=b'Z') => {}
        _ => return false,
    }
    if buf.starts_with(b"SIP/2.0 ") {
        return true;
    }
    // Longest known method is SUBSCRIBE (9 bytes).
    let head = &buf[..buf.len().min(10)];
    let Some(sp) = memchr::memchr(b' ', head) else {
        return false;
    };
    !matches!(Method::from_bytes(&buf[..sp]), Method::Other(_))
        && addr::is_sip_scheme(&buf[sp + 1..])
}
