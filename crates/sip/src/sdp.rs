//! The two SDP lines a call monitor needs: where media goes (`c=`) and on which port (`m=`).

use crate::Sdp;
use crate::bytes::{is_ws, parse_u64, starts_with_ignore_case, trim};

impl<'a> Sdp<'a> {
    /// Scan an SDP body. Lines may end in LF or CRLF; unknown and malformed lines are skipped
    /// because a monitor would rather have a partial answer than none.
    pub fn parse(body: &'a [u8]) -> Sdp<'a> {
        let mut sdp = Sdp::default();
        let mut media_is_audio = false;
        // One SIMD pass finds every line start; only `c=` and `m=` lines are looked at.
        let starts = std::iter::once(0).chain(memchr::memchr_iter(b'\n', body).map(|i| i + 1));
        for start in starts {
            let line = match body.get(start..start.saturating_add(2)) {
                Some([b'c' | b'm', b'=']) => {
                    let rest = &body[start..];
                    &rest[..memchr::memchr(b'\n', rest).unwrap_or(rest.len())]
                }
                _ => continue,
            };
            let line = match line {
                [rest @ .., b'\r'] => rest,
                _ => line,
            };
            match line {
                [b'c', b'=', v @ ..] if sdp.connection.is_none() => {
                    // c=<nettype> <addrtype> <address>[/ttl[/n]]
                    let mut fields = v.split(|&b| is_ws(b)).filter(|f| !f.is_empty());
                    if let Some(addr) = fields.nth(2) {
                        let addr = crate::bytes::split_once(addr, b'/').0;
                        if !addr.is_empty() {
                            sdp.connection = Some(addr);
                        }
                    }
                }
                [b'm', b'=', v @ ..] => {
                    sdp.media_count = sdp.media_count.saturating_add(1);
                    if media_is_audio {
                        continue;
                    }
                    let mut fields = v.split(|&b| is_ws(b)).filter(|f| !f.is_empty());
                    let (Some(kind), Some(port)) = (fields.next(), fields.next()) else {
                        continue;
                    };
                    // <port>[/<number of ports>]
                    let port = crate::bytes::split_once(port, b'/').0;
                    let Some(port) = parse_u64(port).and_then(|p| u16::try_from(p).ok()) else {
                        continue;
                    };
                    if sdp.media.is_none() || kind == b"audio" {
                        media_is_audio = kind == b"audio";
                        sdp.media = Some((kind, port));
                    }
                }
                _ => {}
            }
        }
        sdp
    }
}

/// Is this Content-Type SDP? Compares the media type only, ignoring parameters and case.
pub(crate) fn is_sdp_type(ct: &[u8]) -> bool {
    trim(crate::bytes::split_once(ct, b';').0).eq_ignore_ascii_case(b"application/sdp")
}

/// SIP-I/SIP-T and some SBCs send SDP inside multipart/mixed next to ISUP; find the SDP part by
/// its mandatory `v=` first line and stop at the next boundary line.
pub(crate) fn sdp_in_multipart(body: &[u8]) -> Option<&[u8]> {
    let start = if body.starts_with(b"v=") {
        0
    } else {
        memchr::memmem::find(body, b"\nv=")?.checked_add(1)?
    };
    let part = body.get(start..)?;
    let end = memchr::memmem::find(part, b"\n--").unwrap_or(part.len());
    Some(&part[..end])
}

/// Multipart check for Content-Type.
pub(crate) fn is_multipart(ct: &[u8]) -> bool {
    starts_with_ignore_case(trim(ct), b"multipart/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_level_connection_and_audio_port() {
        let body = b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
m=audio 49170 RTP/AVP 0 8\r\nc=IN IP4 10.9.9.9\r\na=rtpmap:0 PCMU/8000\r\n";
        let s = Sdp::parse(body);
        assert_eq!(s.connection, Some(&b"10.0.0.1"[..]));
        assert_eq!(s.media, Some((&b"audio"[..], 49170)));
        assert_eq!(s.media_count, 1);
    }

    #[test]
    fn media_level_connection_ipv6_and_audio_preferred() {
        let body =
            b"v=0\nm=video 5000 RTP/AVP 96\nc=IN IP6 2001:db8::5\nm=audio 4000/2 RTP/AVP 0\n";
        let s = Sdp::parse(body);
        assert_eq!(s.connection, Some(&b"2001:db8::5"[..]));
        assert_eq!(s.media, Some((&b"audio"[..], 4000)));
        assert_eq!(s.media_count, 2);
    }

    #[test]
    fn multicast_ttl_stripped_and_bad_lines_skipped() {
        let s = Sdp::parse(
            b"c=IN IP4 224.2.1.1/127/3\nm=audio 70000 RTP/AVP 0\nm=audio\nm=audio 0 RTP/AVP 0",
        );
        assert_eq!(s.connection, Some(&b"224.2.1.1"[..]));
        assert_eq!(s.media, Some((&b"audio"[..], 0)));
        assert_eq!(s.media_count, 3);
        assert_eq!(Sdp::parse(b""), Sdp::default());
        assert_eq!(Sdp::parse(b"c=IN IP4").connection, None);
    }

    #[test]
    fn content_type_checks() {
        assert!(is_sdp_type(b"application/SDP"));
        assert!(is_sdp_type(b" application/sdp ; charset=x"));
        assert!(!is_sdp_type(b"application/sdpx"));
        assert!(is_multipart(b"multipart/mixed;boundary=x"));
    }

    #[test]
    fn finds_sdp_part_in_multipart() {
        let body = b"--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 1.2.3.4\r\n\r\n--b1\r\nContent-Type: application/isup\r\n\r\nxx\r\n--b1--";
        let part = sdp_in_multipart(body).unwrap();
        assert_eq!(Sdp::parse(part).connection, Some(&b"1.2.3.4"[..]));
        assert_eq!(sdp_in_multipart(b"no sdp here"), None);
    }
}
