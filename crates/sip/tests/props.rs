//! Property tests: the parser must never panic and framing must agree with parsing.

use proptest::prelude::*;
use sip::{Method, ParseError, looks_like_sip, message_len, parse};

/// Valid messages exercising most code paths, used as seeds for mutation.
fn corpus() -> Vec<Vec<u8>> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    vec![
        format!(
            "INVITE sip:+15551234@pbx.example;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1;rport\r\n\
From: \"A \\\"q\\\" B\" <sip:alice@[2001:db8::1]:5060>;tag=abc\r\n\
To: tel:+15551234\r\nCall-ID: x@y\r\nCSeq: 1 INVITE\r\n\
Contact: <sip:alice@10.0.0.1>\r\nSubject: folded\r\n line\r\n\
Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{}",
            sdp.len(),
            sdp
        )
        .into_bytes(),
        b"SIP/2.0 200 OK\nv: SIP/2.0/TCP h;branch=z\nf: <sip:a@b>;tag=1\nt: b <sip:b@c>;tag=2\ni: c\nCSeq: 1 INVITE\nl: 0\n\n".to_vec(),
        b"REFER sip:b@c SIP/2.0\r\nr: <sip:c@d?Replaces=a%40b%3Bto-tag%3D1>\r\nb: <sip:a@b>\r\nReplaces: a@b;to-tag=1;from-tag=2\r\nReason: SIP;cause=200\r\nUser-Agent: x\r\n\r\n".to_vec(),
        b"\r\n\r\nBYE sip:a@b SIP/2.0\r\nCall-ID: q\r\nContent-Type: multipart/mixed;boundary=b\r\nContent-Length: 30\r\n\r\n--b\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n".to_vec(),
    ]
}

/// Every slice of a parsed message must point into the input: a cheap check that the parser
/// never fabricates data and that `body` is a real suffix region of the headers.
fn assert_within(buf: &[u8], part: &[u8]) {
    let start = buf.as_ptr() as usize;
    let p = part.as_ptr() as usize;
    if !part.is_empty() {
        assert!(p >= start && p + part.len() <= start + buf.len());
    }
}

fn exercise(buf: &[u8]) {
    if let Ok(m) = parse(buf) {
        assert_within(buf, m.body);
        if let Some(c) = m.call_id {
            assert_within(buf, c);
            assert!(!c.is_empty());
        }
        if let Some(n) = m.content_length {
            assert!(m.body.len() <= n);
        }
    }
    if let Some(Ok(n)) = message_len(buf) {
        assert!(n <= buf.len());
        assert!(n > 0);
    }
    let _ = looks_like_sip(buf);
}

#[test]
fn truncation_at_every_offset_never_panics() {
    for msg in corpus() {
        let full = parse(&msg).expect("corpus message parses");
        for cut in 0..=msg.len() {
            let prefix = &msg[..cut];
            exercise(prefix);
            // A prefix that ends inside the headers must be reported as truncated, never as a
            // different valid message; one that ends inside the body keeps the headers.
            match parse(prefix) {
                Ok(m) => assert_eq!(m.call_id, full.call_id),
                Err(e) => assert!(matches!(e, ParseError::Truncated | ParseError::NotSip)),
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..512)) {
        exercise(&buf);
    }

    #[test]
    fn sip_like_text_never_panics(s in "[A-Z]{2,9} [a-z:@;=<>\"\\[\\]0-9. ,?%\r\n\t/-]{0,200}") {
        exercise(s.as_bytes());
        let mut with_hdr = s.clone().into_bytes();
        with_hdr.extend_from_slice(b"\r\n\r\n");
        exercise(&with_hdr);
    }

    #[test]
    fn byte_flips_never_panic(
        idx in 0usize..4,
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut msg = corpus().swap_remove(idx);
        for (at, b) in flips {
            let i = at.index(msg.len());
            msg[i] = b;
        }
        exercise(&msg);
    }

    #[test]
    fn inserts_and_deletes_never_panic(
        idx in 0usize..4,
        at in any::<prop::sample::Index>(),
        del in 0usize..16,
        ins in proptest::collection::vec(prop::sample::select(&b"\r\n \t:;<>\"@\\,=0"[..]), 0..6),
    ) {
        let mut msg = corpus().swap_remove(idx);
        let i = at.index(msg.len());
        let end = (i + del).min(msg.len());
        msg.splice(i..end, ins);
        exercise(&msg);
    }

    /// Framing agrees with parsing for generated well-formed messages, whatever the line
    /// endings, keep-alives, folding or what follows the message on the stream.
    #[test]
    fn message_len_matches_parse(
        lf_only in any::<bool>(),
        keepalive in 0usize..3,
        body in proptest::collection::vec(any::<u8>(), 0..300),
        compact in any::<bool>(),
        fold in any::<bool>(),
        trailer in proptest::collection::vec(any::<u8>(), 0..40),
        seq in any::<u32>(),
    ) {
        let eol = if lf_only { "\n" } else { "\r\n" };
        let cl = if compact { "l" } else { "Content-Length" };
        let fold = if fold { format!("{eol} ") } else { " ".to_string() };
        let head = format!(
            "{ka}MESSAGE sip:bob@b.example SIP/2.0{eol}\
Via: SIP/2.0/UDP h;branch=z9hG4bK{seq}{eol}\
Call-ID: {seq}@h{eol}CSeq:{fold}{seq} MESSAGE{eol}\
Content-Type: text/plain{eol}{cl}: {len}{eol}{eol}",
            ka = "\r\n".repeat(keepalive),
            len = body.len(),
        );
        let mut buf = head.clone().into_bytes();
        buf.extend_from_slice(&body);
        let framed = buf.len();
        buf.extend_from_slice(&trailer);

        prop_assert_eq!(message_len(&buf), Some(Ok(framed)));
        for cut in [0, head.len() / 2, framed.saturating_sub(1)] {
            if cut < framed {
                prop_assert_eq!(message_len(&buf[..cut]), None);
            }
        }
        let m = parse(&buf[..framed]).unwrap();
        prop_assert_eq!(m.content_length, Some(body.len()));
        prop_assert_eq!(m.body, &body[..]);
        let body_off = m.body.as_ptr() as usize - buf.as_ptr() as usize;
        prop_assert_eq!(body_off + m.body.len(), framed);
        prop_assert_eq!(m.cseq.map(|c| (c.seq, c.method)), Some((seq, Method::Message)));
        // Parsing the unframed stream gives the same message: trailing bytes are ignored.
        prop_assert_eq!(parse(&buf).unwrap(), m);
    }

    /// Name-addr values built from parts come back as those parts, in every supported form.
    #[test]
    fn name_addr_round_trip(
        display in proptest::option::of("[A-Za-z][A-Za-z .]{0,12}[A-Za-z]"),
        quoted in any::<bool>(),
        user in "[a-z0-9+][a-z0-9.+-]{0,10}",
        domain in "[a-z][a-z0-9.-]{0,12}",
        port in proptest::option::of(1u16..),
        tag in proptest::option::of("[A-Za-z0-9]{1,10}"),
        angle in any::<bool>(),
        extra_param_first in any::<bool>(),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let uri = format!("sip:{user}@{domain}{port}");
        let mut params = String::new();
        if extra_param_first {
            params.push_str(";x-foo=1");
        }
        if let Some(t) = &tag {
            params.push_str(&format!(";tag={t}"));
        }
        let angle = angle || display.is_some();
        let value = match (&display, angle) {
            (Some(d), _) if quoted => format!("\"{d}\" <{uri};transport=udp>{params}"),
            (Some(d), _) => format!("{d} <{uri}>{params}"),
            (None, true) => format!("<{uri}>{params}"),
            (None, false) => format!("{uri}{params}"),
        };
        let buf = format!("ACK sip:x@y SIP/2.0\r\nFrom: {value}\r\n\r\n");
        let m = parse(buf.as_bytes()).unwrap();
        let from = m.from.unwrap();
        prop_assert_eq!(from.display, display.as_deref().map(str::as_bytes));
        prop_assert_eq!(from.user, user.as_bytes());
        prop_assert_eq!(from.domain, domain.as_bytes());
        prop_assert_eq!(from.tag, tag.as_deref().map(str::as_bytes));
    }
}
