//! Hot-path throughput of the SIP parser. Besides criterion's statistics (throughput in
//! elements/s = messages/s), each case prints a plain messages-per-second figure so the number
//! can be compared with the >1,000,000 INVITEs/s/core target at a glance.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const SDP: &str = "v=0\r\n\
o=- 3912345678 3912345678 IN IP4 192.0.2.10\r\n\
s=SIP Call\r\n\
c=IN IP4 192.0.2.10\r\n\
t=0 0\r\n\
m=audio 40000 RTP/AVP 8 0 18 101\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:18 G729/8000\r\n\
a=fmtp:18 annexb=no\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:+4930123456@pbx.example.com;user=phone SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---8a7c1b2d3e4f5a6b;rport\r\n\
Max-Forwards: 70\r\n\
Contact: <sip:alice@192.0.2.10:5060;transport=UDP>\r\n\
To: <sip:+4930123456@pbx.example.com;user=phone>\r\n\
From: \"Alice Example\" <sip:alice@atlanta.example.com;transport=UDP>;tag=3b2a1f0e\r\n\
Call-ID: NzE1ZWI4NTU0ZGZiMzQ5OGI5ZjE0YjY0ZDQ0ZDU2ZjA.\r\n\
CSeq: 1 INVITE\r\n\
Allow: INVITE, ACK, CANCEL, BYE, NOTIFY, REFER, MESSAGE, OPTIONS, INFO, SUBSCRIBE\r\n\
Content-Type: application/sdp\r\n\
Supported: replaces, norefersub, extended-refer, timer, outbound, path, X-cisco-serviceuri\r\n\
User-Agent: Z 5.6.4 v2.10.20.1\r\n\
Allow-Events: presence, kpml, talk\r\n\
Content-Length: {}\r\n\r\n{}",
        SDP.len(),
        SDP
    )
    .into_bytes()
}

fn ok_200() -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\n\
Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-524287-1---8a7c1b2d3e4f5a6b;rport=5060;received=192.0.2.10\r\n\
Record-Route: <sip:198.51.100.1;lr;ftag=3b2a1f0e>\r\n\
Contact: <sip:+4930123456@198.51.100.7:5060>\r\n\
To: <sip:+4930123456@pbx.example.com;user=phone>;tag=as5f8e2c1d\r\n\
From: \"Alice Example\" <sip:alice@atlanta.example.com;transport=UDP>;tag=3b2a1f0e\r\n\
Call-ID: NzE1ZWI4NTU0ZGZiMzQ5OGI5ZjE0YjY0ZDQ0ZDU2ZjA.\r\n\
CSeq: 1 INVITE\r\n\
Server: Asterisk PBX 18.10.0\r\n\
Allow: INVITE, ACK, CANCEL, OPTIONS, BYE, REFER, SUBSCRIBE, NOTIFY, INFO, PUBLISH, MESSAGE\r\n\
Supported: replaces, timer\r\n\
Session-Expires: 1800;refresher=uas\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\r\n{}",
        SDP.len(),
        SDP
    )
    .into_bytes()
}

/// Plain wall-clock figure, independent of criterion's report format.
fn print_rate(name: &str, buf: &[u8]) {
    let mut n: u64 = 0;
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_millis(500) {
        for _ in 0..1000 {
            black_box(sip::parse(black_box(buf)).is_ok());
        }
        n += 1000;
    }
    let rate = n as f64 / t0.elapsed().as_secs_f64();
    println!(
        "{name}: {:.0} messages/s ({} bytes each, {:.0} MB/s)",
        rate,
        buf.len(),
        rate * buf.len() as f64 / 1e6
    );
}

fn bench(c: &mut Criterion) {
    let cases = [("invite_with_sdp", invite()), ("ok_200_with_sdp", ok_200())];
    for (name, buf) in &cases {
        assert!(sip::parse(buf).unwrap().sdp.is_some());
        print_rate(name, buf);
    }
    let mut g = c.benchmark_group("parse");
    for (name, buf) in &cases {
        g.throughput(Throughput::Elements(1));
        g.bench_function(*name, |b| b.iter(|| sip::parse(black_box(buf))));
    }
    g.finish();

    let mut g = c.benchmark_group("framing");
    let inv = invite();
    g.throughput(Throughput::Elements(1));
    g.bench_function("message_len_invite", |b| {
        b.iter(|| sip::message_len(black_box(&inv)))
    });
    let rtp = [
        0x80u8, 0x08, 0x12, 0x34, 0, 0, 0, 160, 0xde, 0xad, 0xbe, 0xef,
    ];
    g.bench_function("looks_like_sip_rtp", |b| {
        b.iter(|| sip::looks_like_sip(black_box(&rtp)))
    });
    g.bench_function("looks_like_sip_invite", |b| {
        b.iter(|| sip::looks_like_sip(black_box(&inv)))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
