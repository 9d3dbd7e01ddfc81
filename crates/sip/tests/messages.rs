//! Whole, realistic messages through `parse`, one per call-flow step a call monitor cares about.

use sip::{
    Method, NameAddr, ParseError, Replaces, StartLine, Transport, Uri, message_len, parse,
    uri_user_host,
};

/// Build a wire message from lines joined by CRLF, with a correct Content-Length appended.
fn msg(lines: &[&str], body: &str) -> Vec<u8> {
    let mut s = lines.join("\r\n");
    s.push_str(&format!(
        "\r\nContent-Length: {}\r\n\r\n{}",
        body.len(),
        body
    ));
    s.into_bytes()
}

const SDP_A: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 192.0.2.10\r\ns=-\r\n\
c=IN IP4 192.0.2.10\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\n";
const SDP_B: &str = "v=0\r\no=bob 1 1 IN IP6 2001:db8::20\r\ns=-\r\nt=0 0\r\n\
m=audio 3456 RTP/AVP 0\r\nc=IN IP6 2001:db8::20\r\nm=video 0 RTP/AVP 31\r\n";

fn invite() -> Vec<u8> {
    msg(
        &[
            "INVITE sip:+4930123456@pbx.example.com;user=phone SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;rport",
            "Via: SIP/2.0/TCP 10.0.0.1:5060;branch=z9hG4bKold",
            "Max-Forwards: 70",
            "From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=9fxced76sl",
            "To: <sip:+4930123456@pbx.example.com;user=phone>",
            "Call-ID: 3848276298220188511@atlanta.example.com",
            "CSeq: 31862 INVITE",
            "Contact: <sip:alice@192.0.2.10:5060;transport=udp>",
            "User-Agent: Grandstream GXP2170 1.0.11.3",
            "Allow: INVITE, ACK, CANCEL, BYE, REFER, OPTIONS",
            "Content-Type: application/sdp",
        ],
        SDP_A,
    )
}

#[test]
fn invite_with_sdp() {
    let buf = invite();
    let m = parse(&buf).unwrap();
    assert_eq!(
        m.start,
        StartLine::Request {
            method: Method::Invite,
            uri: b"sip:+4930123456@pbx.example.com;user=phone"
        }
    );
    assert!(m.is_request());
    assert_eq!(m.method(), Some(Method::Invite));
    assert_eq!(m.status(), None);
    assert_eq!(
        m.call_id,
        Some(&b"3848276298220188511@atlanta.example.com"[..])
    );
    assert_eq!(
        m.from,
        Some(NameAddr {
            display: Some(b"Alice A."),
            user: b"alice",
            domain: b"atlanta.example.com",
            tag: Some(b"9fxced76sl"),
        })
    );
    let to = m.to.unwrap();
    assert_eq!(to.user, b"+4930123456");
    assert_eq!(to.domain, b"pbx.example.com");
    assert_eq!(to.tag, None);
    assert_eq!(to.display, None);
    let cseq = m.cseq.unwrap();
    assert_eq!((cseq.seq, cseq.method), (31862, Method::Invite));
    assert_eq!(m.via_branch, Some(&b"z9hG4bK74bf9"[..]));
    assert_eq!(m.via_transport, Some(Transport::Udp));
    assert_eq!(
        m.contact,
        Some(&b"<sip:alice@192.0.2.10:5060;transport=udp>"[..])
    );
    assert_eq!(m.user_agent, Some(&b"Grandstream GXP2170 1.0.11.3"[..]));
    assert_eq!(m.content_type, Some(&b"application/sdp"[..]));
    assert_eq!(m.content_length, Some(SDP_A.len()));
    assert_eq!(m.body, SDP_A.as_bytes());
    let sdp = m.sdp.unwrap();
    assert_eq!(sdp.connection, Some(&b"192.0.2.10"[..]));
    assert_eq!(sdp.media, Some((&b"audio"[..], 49170)));
    assert_eq!(sdp.media_count, 1);
    assert_eq!(m.reason, None);
    assert_eq!(m.refer_to, None);
    assert_eq!(message_len(&buf), Some(Ok(buf.len())));
}

#[test]
fn ringing_180() {
    let buf = msg(
        &[
            "SIP/2.0 180 Ringing",
            "Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK74bf9;received=192.0.2.10",
            "From: \"Alice A.\" <sip:alice@atlanta.example.com>;tag=9fxced76sl",
            "To: <sip:+4930123456@pbx.example.com;user=phone>;tag=8321234356",
            "Call-ID: 3848276298220188511@atlanta.example.com",
            "CSeq: 31862 INVITE",
            "Contact: <sip:+4930123456@198.51.100.7>",
        ],
        "",
    );
    let m = parse(&buf).unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 180,
            reason: b"Ringing"
        }
    );
    assert_eq!(m.status(), Some(180));
    assert_eq!(m.to.unwrap().tag, Some(&b"8321234356"[..]));
    assert_eq!(m.cseq.unwrap().method, Method::Invite);
    assert_eq!(m.body, b"");
    assert_eq!(m.sdp, None);
    assert_eq!(m.content_length, Some(0));
}

#[test]
fn ok_200_with_sdp_ipv6_media_level_connection() {
    let buf = msg(
        &[
            "SIP/2.0 200 OK",
            "v: SIP/2.0/TLS [2001:db8::10]:5061;branch=z9hG4bKx1",
            "f: <sip:alice@atlanta.example.com>;tag=1",
            "t: \"Bob\" <sip:bob@[2001:db8::20]:5062>;tag=2",
            "i: abc@[2001:db8::10]",
            "CSeq: 1 INVITE",
            "m: <sip:bob@[2001:db8::20]:5062;transport=tls>",
            "c: application/sdp",
        ],
        SDP_B,
    );
    let m = parse(&buf).unwrap();
    assert_eq!(m.status(), Some(200));
    assert_eq!(m.via_transport, Some(Transport::Tls));
    assert_eq!(m.call_id, Some(&b"abc@[2001:db8::10]"[..]));
    let to = m.to.unwrap();
    assert_eq!(to.display, Some(&b"Bob"[..]));
    assert_eq!(to.domain, b"2001:db8::20");
    let sdp = m.sdp.unwrap();
    assert_eq!(sdp.connection, Some(&b"2001:db8::20"[..]));
    assert_eq!(sdp.media, Some((&b"audio"[..], 3456)));
    assert_eq!(sdp.media_count, 2);
}

#[test]
fn ack_bye_cancel_and_486() {
    let ack = msg(
        &[
            "ACK sip:bob@198.51.100.7 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKack",
            "From: <sip:alice@a.example>;tag=1",
            "To: <sip:bob@b.example>;tag=2",
            "Call-ID: c1",
            "CSeq: 31862 ACK",
        ],
        "",
    );
    let m = parse(&ack).unwrap();
    assert_eq!(m.method(), Some(Method::Ack));
    assert_eq!(m.cseq.unwrap().method, Method::Ack);

    let bye = msg(
        &[
            "BYE sip:alice@192.0.2.10 SIP/2.0",
            "Via: SIP/2.0/TCP 198.51.100.7;branch=z9hG4bKbye",
            "From: <sip:bob@b.example>;tag=2",
            "To: <sip:alice@a.example>;tag=1",
            "Call-ID: c1",
            "CSeq: 2 BYE",
            "Reason: Q.850;cause=16;text=\"Normal call clearing\"",
        ],
        "",
    );
    let m = parse(&bye).unwrap();
    assert_eq!(m.method(), Some(Method::Bye));
    assert_eq!(m.via_transport, Some(Transport::Tcp));
    assert_eq!(
        m.reason,
        Some(&b"Q.850;cause=16;text=\"Normal call clearing\""[..])
    );
    // Who hung up: From of the BYE.
    assert_eq!(m.from.unwrap().user, b"bob");

    let cancel = msg(
        &[
            "CANCEL sip:bob@b.example SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK74bf9",
            "From: <sip:alice@a.example>;tag=1",
            "To: <sip:bob@b.example>",
            "Call-ID: c1",
            "CSeq: 31862 CANCEL",
        ],
        "",
    );
    let m = parse(&cancel).unwrap();
    assert_eq!(m.method(), Some(Method::Cancel));
    assert_eq!(m.to.unwrap().tag, None);

    let busy = msg(
        &[
            "SIP/2.0 486 Busy Here",
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK74bf9",
            "From: <sip:alice@a.example>;tag=1",
            "To: <sip:bob@b.example>;tag=3",
            "Call-ID: c1",
            "CSeq: 31862 INVITE",
        ],
        "",
    );
    let m = parse(&busy).unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 486,
            reason: b"Busy Here"
        }
    );
}

#[test]
fn refer_with_refer_to_and_referred_by() {
    let buf = msg(
        &[
            "REFER sip:bob@198.51.100.7 SIP/2.0",
            "Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bKref",
            "From: <sip:alice@a.example>;tag=1",
            "To: <sip:bob@b.example>;tag=2",
            "Call-ID: c1",
            "CSeq: 3 REFER",
            "Refer-To: <sip:carol@c.example?Replaces=12345%40c.example%3Bto-tag%3D7%3Bfrom-tag%3D8>",
            "Referred-By: \"Alice\" <sip:alice@a.example>",
        ],
        "",
    );
    let m = parse(&buf).unwrap();
    assert_eq!(m.method(), Some(Method::Refer));
    let refer_to = m.refer_to.unwrap();
    assert_eq!(
        refer_to,
        b"<sip:carol@c.example?Replaces=12345%40c.example%3Bto-tag%3D7%3Bfrom-tag%3D8>"
    );
    assert_eq!(
        m.replaces, None,
        "Replaces inside Refer-To stays in refer_to"
    );
    assert_eq!(uri_user_host(refer_to), (&b"carol"[..], &b"c.example"[..]));
    let uri = Uri::parse(sip::AddrParts::parse(refer_to).unwrap().uri);
    assert_eq!(
        uri.header(b"Replaces"),
        Some(&b"12345%40c.example%3Bto-tag%3D7%3Bfrom-tag%3D8"[..])
    );
    let rb = NameAddr::parse(m.referred_by.unwrap()).unwrap();
    assert_eq!((rb.user, rb.domain), (&b"alice"[..], &b"a.example"[..]));

    // Compact forms r and b.
    let buf = msg(
        &[
            "REFER sip:bob@b.example SIP/2.0",
            "r: sip:dave@d.example",
            "b: <sip:alice@a.example>",
            "i: c2",
        ],
        "",
    );
    let m = parse(&buf).unwrap();
    assert_eq!(m.refer_to, Some(&b"sip:dave@d.example"[..]));
    assert_eq!(m.referred_by, Some(&b"<sip:alice@a.example>"[..]));
}

#[test]
fn invite_with_replaces() {
    let buf = msg(
        &[
            "INVITE sip:bob@b.example SIP/2.0",
            "Via: SIP/2.0/UDP 10.0.0.3;branch=z9hG4bKr",
            "From: <sip:carol@c.example>;tag=c1",
            "To: <sip:bob@b.example>",
            "Call-ID: new-call@c.example",
            "CSeq: 1 INVITE",
            "Replaces: 12345@c.example;to-tag=7;from-tag=8",
            "Referred-By: <sip:alice@a.example>",
        ],
        "",
    );
    let m = parse(&buf).unwrap();
    let r = Replaces::parse(m.replaces.unwrap()).unwrap();
    assert_eq!(r.call_id, b"12345@c.example");
    assert_eq!(r.to_tag, Some(&b"7"[..]));
    assert_eq!(r.from_tag, Some(&b"8"[..]));
    assert!(!r.early_only);
    assert_eq!(m.referred_by, Some(&b"<sip:alice@a.example>"[..]));
}

#[test]
fn compact_forms_case_and_folding_with_bare_lf() {
    let buf = b"INVITE tel:+15551234 SIP/2.0\n\
V: SIP/2.0/udp h;branch=z9hG4bKc\n\
F: Anonymous <sip:anonymous@anonymous.invalid>\n ;tag=ff\n\
T:tel:+15551234\n\
I:  folded-call-id \n\
cseq:\t7\n INVITE\n\
K: replaces\n\
S: subject\n\
E: gzip\n\
O: refer\n\
X: 1800\n\
U: talk\n\
L: 4\n\
C: text/plain\n\
\n\
bodyEXTRA";
    let m = parse(buf).unwrap();
    assert_eq!(
        m.start,
        StartLine::Request {
            method: Method::Invite,
            uri: b"tel:+15551234"
        }
    );
    assert_eq!(m.via_transport, Some(Transport::Udp));
    let from = m.from.unwrap();
    assert_eq!(from.display, Some(&b"Anonymous"[..]));
    assert_eq!(from.user, b"anonymous");
    assert_eq!(from.tag, Some(&b"ff"[..]));
    assert_eq!(m.to.unwrap().user, b"+15551234");
    assert_eq!(m.call_id, Some(&b"folded-call-id"[..]));
    assert_eq!(m.cseq.unwrap().seq, 7);
    assert_eq!(m.cseq.unwrap().method, Method::Invite);
    assert_eq!(m.content_type, Some(&b"text/plain"[..]));
    assert_eq!(m.body, b"body");
    assert_eq!(m.sdp, None);
}

#[test]
fn truncated_body_is_what_is_there() {
    let full = invite();
    let cut = &full[..full.len() - 20];
    let m = parse(cut).unwrap();
    assert_eq!(m.content_length, Some(SDP_A.len()));
    assert_eq!(m.body, &SDP_A.as_bytes()[..SDP_A.len() - 20]);
    assert_eq!(m.sdp.unwrap().connection, Some(&b"192.0.2.10"[..]));
    assert_eq!(message_len(cut), None);
}

#[test]
fn missing_content_length_takes_rest_of_datagram() {
    let buf = b"OPTIONS sip:x@y SIP/2.0\r\nCall-ID: o1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 5 RTP/AVP 0\r\n";
    let m = parse(buf).unwrap();
    assert_eq!(m.method(), Some(Method::Options));
    assert_eq!(m.content_length, None);
    assert_eq!(m.body, b"v=0\r\nm=audio 5 RTP/AVP 0\r\n");
    assert_eq!(m.sdp.unwrap().media, Some((&b"audio"[..], 5)));
}

#[test]
fn first_header_occurrence_wins() {
    let buf = b"SIP/2.0 200 OK\r\nCall-ID: first\r\ni: second\r\nContact: <sip:a@1>\r\nContact: <sip:b@2>\r\n\r\n";
    let m = parse(buf).unwrap();
    assert_eq!(m.call_id, Some(&b"first"[..]));
    assert_eq!(m.contact, Some(&b"<sip:a@1>"[..]));
}

#[test]
fn leading_keepalive_crlf_is_skipped() {
    let mut buf = b"\r\n\r\n".to_vec();
    buf.extend_from_slice(&invite());
    let m = parse(&buf).unwrap();
    assert_eq!(m.method(), Some(Method::Invite));
}

#[test]
fn errors_are_typed() {
    assert_eq!(parse(b""), Err(ParseError::NotSip));
    assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::NotSip));
    assert_eq!(
        parse(&[0x80, 0x00, 0x12, 0x34, 0, 0, 0, 0]),
        Err(ParseError::NotSip)
    );
    assert_eq!(
        parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
        Err(ParseError::NotSip)
    );
    assert_eq!(parse(b"hello world\r\n\r\n"), Err(ParseError::NotSip));
    assert_eq!(
        parse(b"SIP/2.0 2000 OK\r\n\r\n"),
        Err(ParseError::BadStartLine)
    );
    assert_eq!(
        parse(b"SIP/2.0 099 X\r\n\r\n"),
        Err(ParseError::BadStartLine)
    );
    assert_eq!(
        parse(b"SIP/3.0 200 OK\r\n\r\n"),
        Err(ParseError::BadStartLine)
    );
    assert_eq!(parse(b"SIP/2.0\r\n\r\n"), Err(ParseError::BadStartLine));
    assert_eq!(
        parse(b"INVITE  SIP/2.0\r\n\r\n"),
        Err(ParseError::BadStartLine)
    );
    assert_eq!(
        parse(b"INVITE sip:a@b\r\n\r\n"),
        Err(ParseError::BadStartLine)
    );
    assert_eq!(
        parse(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n"),
        Err(ParseError::Truncated)
    );
    assert_eq!(parse(b"INVITE sip:a@b SIP/2.0"), Err(ParseError::Truncated));
    assert_eq!(
        parse(b"BYE sip:a@b SIP/2.0\r\nCSeq: x BYE\r\n\r\n"),
        Err(ParseError::BadHeader("CSeq"))
    );
    assert_eq!(
        parse(b"BYE sip:a@b SIP/2.0\r\nContent-Length: -1\r\n\r\n"),
        Err(ParseError::BadHeader("Content-Length"))
    );
    assert_eq!(
        parse(b"BYE sip:a@b SIP/2.0\r\nCall-ID:\r\n\r\n"),
        Err(ParseError::BadHeader("Call-ID"))
    );
    assert_eq!(
        parse(b"BYE sip:a@b SIP/2.0\r\nFrom: \"open\r\n\r\n"),
        Err(ParseError::BadHeader("From"))
    );
    assert_eq!(
        parse(b"BYE sip:a@b SIP/2.0\r\nTo: \r\n\r\n"),
        Err(ParseError::BadHeader("To"))
    );
    assert_eq!(
        ParseError::BadHeader("CSeq").to_string(),
        "malformed CSeq header"
    );
}

#[test]
fn response_without_reason_and_unknown_method() {
    let m = parse(b"SIP/2.0 200\r\n\r\n").unwrap();
    assert_eq!(
        m.start,
        StartLine::Response {
            code: 200,
            reason: b""
        }
    );
    let m = parse(b"FOO-BAR sip:x SIP/2.0\r\nCSeq: 1 FOO-BAR\r\n\r\n").unwrap();
    assert_eq!(m.method(), Some(Method::Other(b"FOO-BAR")));
    assert_eq!(m.cseq.unwrap().method, Method::Other(b"FOO-BAR"));
}

#[test]
fn multipart_body_with_sdp() {
    let body = "--unique\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nc=IN IP4 203.0.113.5\r\nm=audio 20000 RTP/AVP 8\r\n\r\n--unique\r\nContent-Type: application/isup;version=itu-t92+\r\n\r\n\x01\x02\r\n--unique--\r\n";
    let buf = msg(
        &[
            "INVITE sip:1@gw SIP/2.0",
            "Content-Type: multipart/mixed;boundary=unique",
        ],
        body,
    );
    let sdp = parse(&buf).unwrap().sdp.unwrap();
    assert_eq!(sdp.connection, Some(&b"203.0.113.5"[..]));
    assert_eq!(sdp.media, Some((&b"audio"[..], 20000)));
}
