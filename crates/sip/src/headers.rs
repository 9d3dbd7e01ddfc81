//! Header-section scanning: line framing with folding, header-name classification, and the
//! structured headers (Via, CSeq) whose values are more than an opaque slice.

use crate::bytes::{is_token, is_ws, parse_u64, position_or_len, split_once, trim, trim_end};
use crate::{CSeq, Method, Transport, addr::find_param};

/// One step of the header scanner.
pub(crate) enum Line<'a> {
    /// `name` (trailing whitespace trimmed; empty for a line without a colon) and raw `value`
    /// (leading/trailing whitespace trimmed; may contain CRLF+WSP when folded).
    Header(&'a [u8], &'a [u8]),
    /// The empty line; the body starts at this offset.
    End(usize),
    /// The buffer ends before the empty line.
    Truncated,
}

/// Read the header line starting at `*pos`, including its continuation lines, and advance.
///
/// A continuation is only known once the next line's first byte is visible, so a header line
/// that ends exactly at the end of the buffer is reported as `Truncated` (there is no empty
/// line after it anyway).
#[inline]
pub(crate) fn next_line<'a>(buf: &'a [u8], pos: &mut usize) -> Line<'a> {
    let start = *pos;
    match buf.get(start..) {
        None | Some([]) => return Line::Truncated,
        Some([b'\n', ..]) => return Line::End(start + 1),
        Some([b'\r', b'\n', ..]) => return Line::End(start + 2),
        Some([b'\r']) => return Line::Truncated,
        Some(_) => {}
    }
    let mut from = start;
    let end = loop {
        let Some(rel) = buf.get(from..).and_then(|s| memchr::memchr(b'\n', s)) else {
            return Line::Truncated;
        };
        let lf = from + rel;
        match buf.get(lf + 1) {
            None => return Line::Truncated,
            Some(b' ' | b'\t') => from = lf + 1,
            Some(_) => break lf,
        }
    };
    *pos = end + 1;
    let line = &buf[start..end];
    // Header names are short, so a scalar scan for the colon beats memchr here.
    match crate::bytes::find_byte(line, b':') {
        Some(c) => Line::Header(trim_end(&line[..c]), trim(&line[c + 1..])),
        None => Line::Header(&[], line),
    }
}

/// The headers `parse` extracts. Compact forms we do not store (k, s, e, o, x, u) still map to
/// `Other` explicitly so they can never be mistaken for a header we do store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Name {
    CallId,
    From,
    To,
    CSeq,
    Via,
    Contact,
    ContentLength,
    ContentType,
    Reason,
    ReferredBy,
    ReferTo,
    Replaces,
    UserAgent,
    Other,
}

/// Classify a header name by length and first byte before one case-insensitive compare: most
/// headers in a message (Max-Forwards, Allow, Supported, ...) are rejected by the length or
/// first-byte test alone.
#[inline]
pub(crate) fn classify(name: &[u8]) -> Name {
    let Some(&first) = name.first() else {
        return Name::Other;
    };
    let f = first | 0x20;
    let is = |lit: &[u8]| name.eq_ignore_ascii_case(lit);
    match name.len() {
        1 => match f {
            b'i' => Name::CallId,
            b'f' => Name::From,
            b't' => Name::To,
            b'v' => Name::Via,
            b'm' => Name::Contact,
            b'l' => Name::ContentLength,
            b'c' => Name::ContentType,
            b'r' => Name::ReferTo,
            b'b' => Name::ReferredBy,
            // k Supported, s Subject, e Content-Encoding, o Event, x Session-Expires,
            // u Allow-Events: recognised, not stored.
            _ => Name::Other,
        },
        2 if f == b't' && is(b"to") => Name::To,
        3 if f == b'v' && is(b"via") => Name::Via,
        4 if f == b'f' && is(b"from") => Name::From,
        4 if f == b'c' && is(b"cseq") => Name::CSeq,
        6 if f == b'r' && is(b"reason") => Name::Reason,
        7 if f == b'c' => {
            if is(b"call-id") {
                Name::CallId
            } else if is(b"contact") {
                Name::Contact
            } else {
                Name::Other
            }
        }
        8 if f == b'r' => {
            if is(b"refer-to") {
                Name::ReferTo
            } else if is(b"replaces") {
                Name::Replaces
            } else {
                Name::Other
            }
        }
        10 if f == b'u' && is(b"user-agent") => Name::UserAgent,
        11 if f == b'r' && is(b"referred-by") => Name::ReferredBy,
        12 if f == b'c' && is(b"content-type") => Name::ContentType,
        14 if f == b'c' && is(b"content-length") => Name::ContentLength,
        _ => Name::Other,
    }
}

/// Parse `CSeq: 4711 INVITE`. `None` for a missing/overflowing number or a missing method.
pub(crate) fn parse_cseq(v: &[u8]) -> Option<CSeq<'_>> {
    let n = position_or_len(v, |b| !b.is_ascii_digit());
    let seq = u32::try_from(parse_u64(&v[..n])?).ok()?;
    let rest = crate::bytes::trim_start(&v[n..]);
    let m = position_or_len(rest, |b| !is_token(b));
    if m == 0 {
        return None;
    }
    Some(CSeq {
        seq,
        method: Method::from_bytes(&rest[..m]),
    })
}

/// Transport and branch of the first via-parm of a Via value (`SIP/2.0/UDP h:5060;branch=z9..`).
/// LWS is allowed around the slashes by RFC 3261, and some stacks use it.
pub(crate) fn parse_via(v: &[u8]) -> (Option<Transport>, Option<&[u8]>) {
    let first = split_once(v, b',').0;
    let (proto_and_host, params) = split_once(first, b';');
    let mut transport = None;
    let (_, after1) = split_once(proto_and_host, b'/');
    if let Some(after1) = after1
        && let (_, Some(after2)) = split_once(after1, b'/')
    {
        let t = crate::bytes::trim_start(after2);
        let t = &t[..position_or_len(t, is_ws)];
        transport = transport_from(t);
    }
    let branch = params.and_then(|p| find_param(p, b"branch"));
    (transport, branch)
}

fn transport_from(t: &[u8]) -> Option<Transport> {
    let is = |lit: &[u8]| t.eq_ignore_ascii_case(lit);
    if is(b"UDP") {
        Some(Transport::Udp)
    } else if is(b"TCP") {
        Some(Transport::Tcp)
    } else if is(b"TLS") {
        Some(Transport::Tls)
    } else if is(b"SCTP") || is(b"TLS-SCTP") {
        Some(Transport::Sctp)
    } else if is(b"WS") || is(b"WSS") {
        // Secure WebSocket is reported as Ws: the enum predates it and its users match on it
        // exhaustively; the carrier (WebSocket) is what matters for a CDR.
        Some(Transport::Ws)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Pair = (Vec<u8>, Vec<u8>);

    fn lines(buf: &[u8]) -> (Vec<Pair>, Option<usize>) {
        let mut pos = 0;
        let mut out = Vec::new();
        loop {
            match next_line(buf, &mut pos) {
                Line::Header(n, v) => out.push((n.to_vec(), v.to_vec())),
                Line::End(e) => return (out, Some(e)),
                Line::Truncated => return (out, None),
            }
        }
    }

    #[test]
    fn folding_joins_continuation_lines() {
        let buf = b"Subject: I know\r\n you're there,\r\n\tpick up\r\nTo : x\r\n\r\nbody";
        let (h, end) = lines(buf);
        assert_eq!(end, Some(buf.len() - 4));
        assert_eq!(h[0].0, b"Subject");
        assert_eq!(h[0].1, b"I know\r\n you're there,\r\n\tpick up");
        assert_eq!(h[1], (b"To".to_vec(), b"x".to_vec()));
    }

    #[test]
    fn bare_lf_and_garbage_lines() {
        let buf = b"A: 1\nno colon here\nB:2\n\n";
        let (h, end) = lines(buf);
        assert_eq!(end, Some(buf.len()));
        assert_eq!(h.len(), 3);
        assert_eq!(h[1].0, b"");
        assert_eq!(h[2], (b"B".to_vec(), b"2".to_vec()));
    }

    #[test]
    fn truncation_is_reported() {
        assert_eq!(lines(b"A: 1\r\n").1, None);
        assert_eq!(lines(b"A: 1\r\n\r").1, None);
        assert_eq!(lines(b"A: 1").1, None);
        assert_eq!(lines(b"").1, None);
    }

    #[test]
    fn classify_full_and_compact() {
        for (n, k) in [
            (&b"Call-ID"[..], Name::CallId),
            (b"call-id", Name::CallId),
            (b"I", Name::CallId),
            (b"FROM", Name::From),
            (b"f", Name::From),
            (b"To", Name::To),
            (b"t", Name::To),
            (b"cseq", Name::CSeq),
            (b"VIA", Name::Via),
            (b"v", Name::Via),
            (b"Contact", Name::Contact),
            (b"m", Name::Contact),
            (b"content-length", Name::ContentLength),
            (b"L", Name::ContentLength),
            (b"Content-Type", Name::ContentType),
            (b"c", Name::ContentType),
            (b"Reason", Name::Reason),
            (b"Referred-By", Name::ReferredBy),
            (b"b", Name::ReferredBy),
            (b"Refer-To", Name::ReferTo),
            (b"r", Name::ReferTo),
            (b"Replaces", Name::Replaces),
            (b"User-Agent", Name::UserAgent),
            (b"k", Name::Other),
            (b"s", Name::Other),
            (b"e", Name::Other),
            (b"o", Name::Other),
            (b"x", Name::Other),
            (b"u", Name::Other),
            (b"Max-Forwards", Name::Other),
            (b"Call-IDs", Name::Other),
            (b"", Name::Other),
        ] {
            assert_eq!(classify(n), k, "{}", String::from_utf8_lossy(n));
        }
    }

    #[test]
    fn cseq_forms() {
        let c = parse_cseq(b"314159 INVITE").unwrap();
        assert_eq!(c.seq, 314159);
        assert_eq!(c.method, Method::Invite);
        let c = parse_cseq(b"1\r\n ACK").unwrap();
        assert_eq!(c.method, Method::Ack);
        assert_eq!(parse_cseq(b"4294967295 BYE").unwrap().seq, u32::MAX);
        assert_eq!(parse_cseq(b"4294967296 BYE"), None);
        assert_eq!(parse_cseq(b"INVITE"), None);
        assert_eq!(parse_cseq(b"12"), None);
    }

    #[test]
    fn via_forms() {
        assert_eq!(
            parse_via(b"SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bK776asdhds"),
            (Some(Transport::Udp), Some(&b"z9hG4bK776asdhds"[..]))
        );
        assert_eq!(
            parse_via(b"SIP / 2.0 / tcp [::1]:5060;rport;Branch=z9hG4bKa, SIP/2.0/UDP b;branch=2"),
            (Some(Transport::Tcp), Some(&b"z9hG4bKa"[..]))
        );
        assert_eq!(
            parse_via(b"SIP/2.0/WSS x.invalid;branch=z9"),
            (Some(Transport::Ws), Some(&b"z9"[..]))
        );
        assert_eq!(parse_via(b"SIP/2.0/TLS h"), (Some(Transport::Tls), None));
        assert_eq!(parse_via(b"SIP/2.0/QUIC h;branch=1").0, None);
        assert_eq!(parse_via(b"garbage"), (None, None));
    }
}
