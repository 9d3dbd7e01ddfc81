//! Insert throughput of the store:
//! `cargo run --release -p store --example insert_bench [--plain-only] [--no-number-indexes]
//! [LEGS [BATCH]]`.
//!
//! Writes LEGS (default 200,000) synthetic legs, BATCH (default 10,000) per `insert_legs`
//! call, into a fresh SQLite database in a temporary directory: first without messages, then
//! with 8 SIP messages per leg; each import is repeated to measure the duplicate path (a
//! re-imported capture); `--plain-only` skips the second part. `--no-number-indexes` drops the
//! caller/called indexes of the throw-away database first, to show what they cost: keys in
//! random order are the dearest part of an insert. Legs are built before the
//! clock starts, so the figures are the store's cost only, as a pcap import would see it.
//! Besides wall-clock legs/s it prints legs per CPU-second, which stays comparable on a
//! machine shared with other work.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use calls::{EndReason, Leg, LegMessage, Side};
use sip::Transport;
use store::Store;

mod common;
use common::cpu_seconds;

/// Legs per `insert_legs` call by default, about what a sensor or an import flushes at once.
const DEFAULT_BATCH: usize = 10_000;

/// Cheap deterministic mixing so Call-IDs and numbers look random to the B-tree indexes,
/// as real ones do (sequential keys would flatter the benchmark).
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn leg(n: u64, with_messages: bool) -> Leg {
    let h = mix(n);
    let caller = format!("+49301{:07}", h % 10_000_000);
    let called = format!("0{:09}", (h >> 24) % 1_000_000_000);
    let call_id = format!("{:016x}-{:08x}@pbx{}.example.net", h, n, h % 7);
    let start = 1_700_000_000_000_000 + n as i64 * 5_000 + (h % 5_000) as i64;
    let src_ip = IpAddr::V4(Ipv4Addr::from(0x0A00_0000 | (h as u32 & 0xFFFF)));
    let dst_ip = if n.is_multiple_of(4) {
        IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, (h >> 8) as u16))
    } else {
        IpAddr::V4(Ipv4Addr::new(192, 0, 2, (h >> 8) as u8))
    };
    let answered = !h.is_multiple_of(3);
    let mut leg = Leg::builder()
        .call_id(call_id)
        .caller(caller)
        .domains("pbx.example.net", "carrier.example.com")
        .caller_name(h.is_multiple_of(2).then(|| format!("Agent {}", h % 500)))
        .called(called)
        .from_tag(Some(format!("{:x}", h >> 3)))
        .to_tag(answered.then(|| format!("as{:x}", h >> 5)))
        .start(start)
        .answer(answered.then_some(start + 4_000_000))
        .end(start + 4_000_000 + (h % 600_000_000) as i64)
        .response(
            if answered { 200 } else { 486 },
            if answered { "OK" } else { "Busy Here" },
        )
        .end_reason(if answered {
            EndReason::ByeConfirmed
        } else {
            EndReason::NotAnswered
        })
        .hangup_by(answered.then_some(Side::Caller))
        .src_ip(src_ip)
        .dst_ip(dst_ip)
        .user_agent(Some("Asterisk PBX 20.5.0"))
        .sip_message_count(8)
        .build();
    if with_messages {
        leg.messages = messages(&leg);
    }
    leg
}

/// Eight plausible messages (INVITE, 100, 180, 200, ACK, BYE, 200, plus a re-INVITE),
/// carrying the leg's own identifiers so compression sees realistic variety.
fn messages(leg: &Leg) -> Vec<LegMessage> {
    let a = SocketAddr::new(leg.src_ip, leg.src_port);
    let b = SocketAddr::new(leg.dst_ip, leg.dst_port);
    let lines = [
        "INVITE sip:{called}@carrier.example.com SIP/2.0",
        "SIP/2.0 100 Trying",
        "SIP/2.0 180 Ringing",
        "SIP/2.0 200 OK",
        "ACK sip:{called}@carrier.example.com SIP/2.0",
        "INVITE sip:{called}@carrier.example.com SIP/2.0",
        "BYE sip:{called}@carrier.example.com SIP/2.0",
        "SIP/2.0 200 OK",
    ];
    lines
        .iter()
        .enumerate()
        .map(|(i, first)| {
            let first = first.replace("{called}", &leg.called);
            let sdp = if i == 0 || i == 3 || i == 5 {
                "v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n\
                 m=audio 10000 RTP/AVP 8 0 101\r\na=rtpmap:8 PCMA/8000\r\n\
                 a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
            } else {
                ""
            };
            let raw = format!(
                "{first}\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bK{br:x}\r\nMax-Forwards: 70\r\n\
                 From: <sip:{caller}@pbx.example.net>;tag={ft}\r\n\
                 To: <sip:{called}@carrier.example.com>{tt}\r\nCall-ID: {cid}\r\n\
                 CSeq: {cseq} INVITE\r\nContact: <sip:{caller}@{a}>\r\n\
                 User-Agent: Asterisk PBX 20.5.0\r\nContent-Type: application/sdp\r\n\
                 Content-Length: {len}\r\n\r\n{sdp}",
                br = mix(leg.start as u64 + i as u64),
                caller = leg.caller,
                called = leg.called,
                ft = leg.from_tag.as_deref().unwrap_or(""),
                tt = leg
                    .to_tag
                    .as_deref()
                    .map(|t| format!(";tag={t}"))
                    .unwrap_or_default(),
                cid = leg.call_id,
                cseq = 101 + i / 4,
                len = sdp.len(),
            );
            let (src, dst) = if first.starts_with("SIP/2.0") {
                (b, a)
            } else {
                (a, b)
            };
            LegMessage {
                ts: leg.start + i as i64 * 500_000,
                src,
                dst,
                transport: Transport::Udp,
                raw: raw.into_bytes(),
            }
        })
        .collect()
}

async fn run(store: &mut Store, legs: &[Leg], batch: usize, label: &str) -> u64 {
    let started = Instant::now();
    let cpu_started = cpu_seconds();
    let mut inserted = 0;
    for batch in legs.chunks(batch) {
        inserted += store.insert_legs(batch).await.expect("insert").inserted;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = cpu_seconds().map(|c| c - cpu_started.unwrap_or(0.0));
    println!(
        "{label:<34} {:>7} legs in {secs:>6.2} s = {:>7.0} legs/s wall, {} ({inserted} new)",
        legs.len(),
        legs.len() as f64 / secs,
        cpu.map_or("cpu n/a".into(), |c| format!(
            "{:>7.0} legs per cpu-s",
            legs.len() as f64 / c
        )),
    );
    inserted
}

fn dir_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::main]
async fn main() {
    let plain_only = std::env::args().any(|a| a == "--plain-only");
    let no_number_indexes = std::env::args().any(|a| a == "--no-number-indexes");
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let count: u64 = args
        .next()
        .map(|s| s.parse().expect("LEGS must be a number"))
        .unwrap_or(200_000);
    let batch: usize = args
        .next()
        .map(|s| s.parse().expect("BATCH must be a number"))
        .unwrap_or(DEFAULT_BATCH);
    println!("{count} legs, batches of {batch}, fresh SQLite database each run");
    let open = |dir: std::path::PathBuf| async move {
        let store = Store::open_sqlite(&dir).await.expect("open");
        if no_number_indexes {
            let db = rusqlite::Connection::open(dir.join(store::SQLITE_FILE_NAME)).expect("db");
            db.execute_batch("DROP INDEX legs_caller_seg; DROP INDEX legs_called_seg")
                .expect("drop indexes");
            println!("(caller/called indexes dropped)");
        }
        store
    };

    let plain: Vec<Leg> = (0..count).map(|n| leg(n, false)).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = open(dir.path().to_owned()).await;
    run(&mut store, &plain, batch, "without messages").await;
    run(
        &mut store,
        &plain,
        batch,
        "without messages, all duplicates",
    )
    .await;
    store.close().await;
    println!(
        "{:>36} {:.1} MiB",
        "database size",
        dir_size(dir.path()) as f64 / 1048576.0
    );
    drop(plain);
    if plain_only {
        return;
    }

    let full: Vec<Leg> = (0..count).map(|n| leg(n, true)).collect();
    let raw_bytes: usize = full
        .iter()
        .flat_map(|l| &l.messages)
        .map(|m| m.raw.len())
        .sum();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = open(dir.path().to_owned()).await;
    run(&mut store, &full, batch, "with 8 messages each").await;
    run(&mut store, &full, batch, "with 8 messages, all duplicates").await;
    store.close().await;
    println!(
        "{:>36} {:.1} MiB (raw SIP {:.1} MiB)",
        "database size",
        dir_size(dir.path()) as f64 / 1048576.0,
        raw_bytes as f64 / 1048576.0
    );
}
