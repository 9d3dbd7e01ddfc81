//! Tolerant reading (issue 15 item 5): a UDP datagram whose Content-Length is larger than what
//! it holds, or missing, is still one message (counted as a content-length mismatch, not as
//! malformed); garbage before a start line in a TCP stream is skipped.

mod common;

use calls::{EndReason, Leg};
use common::wrap::{self, ETH_IPV4};
use sensor::{Pipeline, PipelineConfig, Totals};

const A: [u8; 4] = [10, 1, 0, 1];
const B: [u8; 4] = [10, 1, 0, 2];
const T0: i64 = 1_764_000_000_000_000;

fn msg(
    start: &str,
    cseq: &str,
    to_tag: bool,
    content_length: Option<usize>,
    body: &str,
) -> Vec<u8> {
    let mut m = format!(
        "{start}\r\nVia: SIP/2.0/UDP 10.1.0.1:5060;branch=z9hG4bK-1\r\n\
         From: <sip:1001@example.com>;tag=f1\r\nTo: <sip:2002@example.com>{}\r\n\
         Call-ID: tolerant-1@example.com\r\nCSeq: {cseq}\r\n",
        if to_tag { ";tag=t1" } else { "" }
    );
    if let Some(n) = content_length {
        m.push_str(&format!("Content-Length: {n}\r\n"));
    }
    m.push_str("\r\n");
    m.push_str(body);
    m.into_bytes()
}

fn call() -> Vec<(bool, Vec<u8>)> {
    let sdp = "v=0\r\no=- 1 1 IN IP4 10.1.0.1\r\ns=-\r\nc=IN IP4 10.1.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
    vec![
        // Content-Length larger than the datagram holds (a truncated body).
        (
            true,
            msg(
                "INVITE sip:2002@example.com SIP/2.0",
                "1 INVITE",
                false,
                Some(sdp.len() + 40),
                sdp,
            ),
        ),
        // No Content-Length at all.
        (false, msg("SIP/2.0 200 OK", "1 INVITE", true, None, sdp)),
        (
            true,
            msg(
                "ACK sip:2002@example.com SIP/2.0",
                "1 ACK",
                true,
                Some(0),
                "",
            ),
        ),
        (
            true,
            msg(
                "BYE sip:2002@example.com SIP/2.0",
                "2 BYE",
                true,
                Some(0),
                "",
            ),
        ),
        (false, msg("SIP/2.0 200 OK", "2 BYE", true, Some(0), "")),
    ]
}

fn read(frames: &[(i64, Vec<u8>)]) -> (Vec<Leg>, Totals) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.pcap");
    std::fs::write(&path, wrap::pcap(1, frames)).unwrap();
    let mut p = Pipeline::new(PipelineConfig::default());
    let mut legs = Vec::new();
    p.read_file(&path, &mut |mut l| legs.append(&mut l), &mut |_| {});
    legs.extend(p.finish());
    (legs, p.totals().clone())
}

#[test]
fn content_length_larger_or_missing_in_a_datagram_is_still_one_message() {
    let frames: Vec<(i64, Vec<u8>)> = call()
        .into_iter()
        .enumerate()
        .map(|(i, (from_a, m))| {
            let (s, d) = if from_a { (A, B) } else { (B, A) };
            let u = wrap::udp(5060, 5060, &m);
            (
                T0 + i as i64 * 1_000_000,
                wrap::eth(ETH_IPV4, &wrap::ipv4(17, s, d, &u)),
            )
        })
        .collect();
    let (legs, totals) = read(&frames);
    assert_eq!(totals.sip_messages, 5);
    assert_eq!(totals.malformed, 0);
    assert_eq!(totals.content_length_mismatch, 2);
    assert_eq!(legs.len(), 1);
    let leg = &legs[0];
    assert_eq!(leg.answer, Some(T0 + 1_000_000));
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.sip_message_count, 5);
}

#[test]
fn garbage_before_a_start_line_in_a_tcp_stream_is_skipped() {
    // Both directions of one connection on the SIP port, from their SYNs; each direction's
    // first data starts with junk (binary, then a text line that is not SIP).
    let mut frames = Vec::new();
    let mut seq = [1000u32, 9000u32];
    let syn = |s: [u8; 4], d: [u8; 4], sp: u16, dp: u16, isn: u32| {
        wrap::eth(
            ETH_IPV4,
            &wrap::ipv4(6, s, d, &wrap::tcp(sp, dp, isn, 0x02, &[])),
        )
    };
    frames.push((T0 - 10, syn(A, B, 40000, 5060, seq[0])));
    frames.push((T0 - 9, syn(B, A, 5060, 40000, seq[1])));
    seq[0] += 1;
    seq[1] += 1;
    let mut first = [true, true];
    for (i, (from_a, m)) in call().into_iter().enumerate() {
        // TCP framing needs a right Content-Length: give every message its true one.
        let m = fix_content_length(&m);
        let d = usize::from(!from_a);
        let mut data = Vec::new();
        if first[d] {
            data.extend_from_slice(b"\x00\x01\x02\xffjunk\r\nHELLO there\r\n");
            first[d] = false;
        }
        data.extend_from_slice(&m);
        let (s, dst, sp, dp) = if from_a {
            (A, B, 40000, 5060)
        } else {
            (B, A, 5060, 40000)
        };
        let t = wrap::tcp(sp, dp, seq[d], 0x18, &data);
        seq[d] = seq[d].wrapping_add(data.len() as u32);
        frames.push((
            T0 + i as i64 * 1_000_000,
            wrap::eth(ETH_IPV4, &wrap::ipv4(6, s, dst, &t)),
        ));
    }
    let (legs, totals) = read(&frames);
    assert_eq!(totals.sip_messages, 5, "{totals:?}");
    assert_eq!(totals.malformed, 0);
    assert_eq!(
        totals.capture.tcp_garbage_bytes,
        2 * 23,
        "{:?}",
        totals.capture
    );
    assert_eq!(legs.len(), 1);
    assert_eq!(legs[0].end_reason, EndReason::ByeConfirmed);
    assert_eq!(legs[0].transport, sip::Transport::Tcp);
}

/// The message with its Content-Length set to its body's length.
fn fix_content_length(m: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(m.to_vec()).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Content-Length"))
        .collect();
    format!(
        "{}\r\nContent-Length: {}\r\n\r\n{body}",
        head.join("\r\n"),
        body.len()
    )
    .into_bytes()
}

/// Issue 15 item 6 through the whole pipeline: an INVITE challenged with 401, retried with a
/// higher CSeq 30 s later (past the 5 s linger of a failed leg), answered and hung up, is one
/// leg from the first INVITE.
#[test]
fn an_invite_retried_30_s_after_a_401_is_one_leg() {
    let sdp = "v=0\r\nc=IN IP4 10.1.0.1\r\nm=audio 4000 RTP/AVP 0\r\n";
    let s = 1_000_000;
    let wire: Vec<(i64, bool, Vec<u8>)> = vec![
        (
            0,
            true,
            msg(
                "INVITE sip:2002@example.com SIP/2.0",
                "1 INVITE",
                false,
                Some(sdp.len()),
                sdp,
            ),
        ),
        (
            10_000,
            false,
            msg("SIP/2.0 401 Unauthorized", "1 INVITE", true, Some(0), ""),
        ),
        (
            20_000,
            true,
            msg(
                "ACK sip:2002@example.com SIP/2.0",
                "1 ACK",
                true,
                Some(0),
                "",
            ),
        ),
        (
            30 * s,
            true,
            msg(
                "INVITE sip:2002@example.com SIP/2.0",
                "2 INVITE",
                false,
                Some(sdp.len()),
                sdp,
            ),
        ),
        (
            31 * s,
            false,
            msg("SIP/2.0 180 Ringing", "2 INVITE", true, Some(0), ""),
        ),
        (
            33 * s,
            false,
            msg("SIP/2.0 200 OK", "2 INVITE", true, Some(sdp.len()), sdp),
        ),
        (
            33 * s + 5,
            true,
            msg(
                "ACK sip:2002@example.com SIP/2.0",
                "2 ACK",
                true,
                Some(0),
                "",
            ),
        ),
        (
            60 * s,
            true,
            msg(
                "BYE sip:2002@example.com SIP/2.0",
                "3 BYE",
                true,
                Some(0),
                "",
            ),
        ),
        (
            60 * s + 5,
            false,
            msg("SIP/2.0 200 OK", "3 BYE", true, Some(0), ""),
        ),
    ];
    let frames: Vec<(i64, Vec<u8>)> = wire
        .into_iter()
        .map(|(at, from_a, m)| {
            let (src, dst) = if from_a { (A, B) } else { (B, A) };
            let u = wrap::udp(5060, 5060, &m);
            (T0 + at, wrap::eth(ETH_IPV4, &wrap::ipv4(17, src, dst, &u)))
        })
        .collect();
    let (legs, totals) = read(&frames);
    assert_eq!(totals.sip_messages, 9);
    assert_eq!(legs.len(), 1, "{legs:#?}");
    let leg = &legs[0];
    assert_eq!(leg.start, T0);
    assert_eq!(leg.answer, Some(T0 + 33 * s));
    assert_eq!(leg.end, T0 + 60 * s + 5);
    assert_eq!(leg.end_reason, EndReason::ByeConfirmed);
    assert_eq!(leg.last_response, Some(200));
    assert_eq!(leg.sip_message_count, 9);
}
