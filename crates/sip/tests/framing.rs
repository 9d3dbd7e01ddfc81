//! Stream framing (`message_len`, `skip_keepalive`) and SIP detection (`looks_like_sip`).

use sip::{MAX_HEADER_LEN, ParseError, looks_like_sip, message_len, parse, skip_keepalive};

const BYE: &[u8] =
    b"BYE sip:a@192.0.2.1 SIP/2.0\r\nCall-ID: b1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
const MSG_WITH_BODY: &[u8] =
    b"MESSAGE sip:a@b SIP/2.0\r\nCall-ID: m1\r\nl: 5\r\nContent-Type: text/plain\r\n\r\nhello";

#[test]
fn complete_messages_back_to_back() {
    let mut stream = BYE.to_vec();
    stream.extend_from_slice(MSG_WITH_BODY);
    stream.extend_from_slice(b"SIP/2.0 200 OK\r\nCall-ID: b1\r\n");
    let n = message_len(&stream).unwrap().unwrap();
    assert_eq!(n, BYE.len());
    assert_eq!(parse(&stream[..n]).unwrap().call_id, Some(&b"b1"[..]));
    let rest = &stream[n..];
    let m = message_len(rest).unwrap().unwrap();
    assert_eq!(m, MSG_WITH_BODY.len());
    assert_eq!(parse(&rest[..m]).unwrap().body, b"hello");
    // Third message has no end of headers yet.
    assert_eq!(message_len(&rest[m..]), None);
}

#[test]
fn every_prefix_needs_more_bytes() {
    for cut in 0..MSG_WITH_BODY.len() {
        assert_eq!(message_len(&MSG_WITH_BODY[..cut]), None, "cut at {cut}");
    }
    assert_eq!(message_len(MSG_WITH_BODY), Some(Ok(MSG_WITH_BODY.len())));
}

#[test]
fn lf_only_and_missing_content_length() {
    let buf = b"ACK sip:a@b SIP/2.0\nCall-ID: x\n\nNEXT";
    assert_eq!(message_len(buf), Some(Ok(buf.len() - 4)));
    // Mixed endings: LF then CRLF.
    let buf = b"ACK sip:a@b SIP/2.0\r\nCall-ID: x\n\r\n";
    assert_eq!(message_len(buf), Some(Ok(buf.len())));
}

#[test]
fn keepalives_belong_to_the_next_frame() {
    assert_eq!(skip_keepalive(b"\r\n\r\nBYE"), 4);
    assert_eq!(skip_keepalive(b"\r\n"), 2);
    assert_eq!(skip_keepalive(b"BYE"), 0);
    assert_eq!(message_len(b"\r\n\r\n"), None);
    assert_eq!(message_len(b""), None);
    let mut buf = b"\r\n\r\n\r\n".to_vec();
    buf.extend_from_slice(BYE);
    assert_eq!(message_len(&buf), Some(Ok(buf.len())));
    assert!(parse(&buf).is_ok());
}

#[test]
fn garbage_is_rejected_for_resync() {
    assert_eq!(
        message_len(&[0x80, 0x08, 0, 1]),
        Some(Err(ParseError::NotSip))
    );
    assert_eq!(message_len(b"\x16\x03\x01"), Some(Err(ParseError::NotSip)));
    assert_eq!(
        message_len(b"GET / HTTP/1.1\r\n\r\n"),
        Some(Err(ParseError::NotSip))
    );
    // No newline yet, but already impossible.
    assert_eq!(message_len(b"INV\x00ITE"), Some(Err(ParseError::NotSip)));
    assert_eq!(
        message_len(b"INVITE sip:\x01"),
        Some(Err(ParseError::NotSip))
    );
    assert_eq!(message_len(b"INVITE sip:a@b SIP/2.0"), None);
    assert_eq!(
        message_len(b"SIP/2.0 abc\r\n\r\n"),
        Some(Err(ParseError::BadStartLine))
    );
    assert_eq!(
        message_len(b"BYE sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n"),
        Some(Err(ParseError::BadHeader("Content-Length")))
    );
    assert_eq!(
        message_len(b"BYE sip:a SIP/2.0\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
        Some(Err(ParseError::BadHeader("Content-Length")))
    );
    assert_eq!(
        message_len(b"BYE sip:a SIP/2.0\r\nContent-Length: 1000000000\r\n\r\n"),
        Some(Err(ParseError::BadHeader("Content-Length")))
    );
}

#[test]
fn endless_headers_are_bounded() {
    let mut buf = b"BYE sip:a SIP/2.0\r\n".to_vec();
    while buf.len() <= MAX_HEADER_LEN {
        buf.extend_from_slice(b"X-Filler: 0123456789abcdef\r\n");
    }
    assert_eq!(message_len(&buf), Some(Err(ParseError::Truncated)));
}

#[test]
fn detection() {
    assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
    assert!(looks_like_sip(b"INVITE sip:bob@b SIP/2.0\r\n"));
    assert!(looks_like_sip(b"SUBSCRIBE sips:bob@b SIP/2.0\r\n"));
    assert!(looks_like_sip(b"REGISTER SIP:reg.example SIP/2.0\r\n"));
    assert!(looks_like_sip(b"MESSAGE tel:+1555 SIP/2.0"));
    assert!(!looks_like_sip(b""));
    assert!(!looks_like_sip(&[0x80, 0x00, 0x01, 0x02]));
    assert!(!looks_like_sip(&[0x90, 0x60, 0x01, 0x02]));
    assert!(!looks_like_sip(b"GET / HTTP/1.1\r\n"));
    assert!(!looks_like_sip(b"INVITE http://x SIP/2.0"));
    assert!(!looks_like_sip(b"FOO sip:x SIP/2.0"));
    assert!(!looks_like_sip(b"SIP/2.0"));
    assert!(!looks_like_sip(b"invite sip:x SIP/2.0"));
    assert!(!looks_like_sip(b"INVITE"));
}
