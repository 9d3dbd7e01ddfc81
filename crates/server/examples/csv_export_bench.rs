//! CDR CSV export throughput and memory: fills a fresh SQLite database with LEGS (default
//! 1,000,000) synthetic legs, starts the server on 127.0.0.1 with a license for them, downloads
//! `GET /api/v1/cdrs.csv` (HTTP Basic) in full, and prints rows/s, MB/s and the process's peak
//! RSS during the export (VmHWM reset after the database is filled, so it measures the server
//! streaming plus this client reading chunk by chunk). A filtered export (`caller=` prefix,
//! a seventh of the legs) follows. The first export warms SQLite's page cache (64 MiB per
//! connection), which is most of the RSS rise; the second one of everything shows whether the
//! export itself holds memory per row (it should not: same peak).
//!
//! `cargo run --release -p server --example csv_export_bench -- [LEGS]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use calls::{Leg, Micros};
use server::{Running, ServerConfig, SystemClock};

// The tests' fixtures: the same answered leg the integration tests store.
#[path = "../tests/common/mod.rs"]
mod common;
use common::{World, answered_leg};

const DAY: Micros = 86_400_000_000;
const PASSWORD: &str = "bench password";

fn leg(i: u64, start: Micros) -> Leg {
    let caller = if i.is_multiple_of(7) { "4477" } else { "4410" };
    answered_leg(
        format!("bench-{i:08}@sipmeter.test"),
        format!("{caller}{i:08}"),
        format!("4420{i:08}"),
        start,
        start + 60_000_000,
    )
}

/// A status line of /proc/self/status in kB.
fn proc_kb(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn download(addr: std::net::SocketAddr, query: &str) -> (u64, u64, Duration) {
    let started = Instant::now();
    let mut r = reqwest::Client::new()
        .get(format!("http://{addr}/api/v1/cdrs.csv{query}"))
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), reqwest::StatusCode::OK);
    let (mut bytes, mut lines) = (0u64, 0u64);
    while let Some(chunk) = r.chunk().await.expect("body") {
        bytes += chunk.len() as u64;
        lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
    }
    // Less the header line.
    (lines - 1, bytes, started.elapsed())
}

#[tokio::main]
async fn main() {
    let count: u64 = std::env::args()
        .nth(1)
        .map(|s| s.parse().expect("LEGS must be a number"))
        .unwrap_or(1_000_000);
    let w = World::new();
    let data = w.data();
    let now = jiff::Timestamp::now().as_microsecond();

    let filled = Instant::now();
    let mut store = store::Store::open_sqlite(&data).await.expect("open");
    let base = now - 20 * DAY;
    let mut batch = Vec::with_capacity(10_000);
    for i in 0..count {
        batch.push(leg(i, base + i as Micros * 1_000_000));
        if batch.len() == 10_000 {
            store.insert_legs(&batch).await.expect("insert");
            batch.clear();
        }
    }
    store.insert_legs(&batch).await.expect("insert");
    store.close().await;
    println!(
        "{count} legs stored in {:.1} s",
        filled.elapsed().as_secs_f64()
    );

    w.install_key(&w.license(10_000, now));
    let config = ServerConfig {
        pcap_dir: None,
        admin_password: Some(PASSWORD.into()),
        pipeline: sensor::PipelineConfig::default(),
        pcap_poll: Duration::from_secs(1),
        pcap_settle: Duration::from_secs(2),
        ..w.config()
    };
    let s = Running::start(config, Arc::new(SystemClock))
        .await
        .expect("server");

    // Where the time goes: the store's keyset pages alone, then with the CSV lines made.
    for make_lines in [false, true] {
        let started = Instant::now();
        let mut q = store::CdrQuery {
            filter: store::CdrFilter::default(),
            sort: store::CdrSort::Start,
            descending: true,
            page: store::PageAt::First,
            limit: store::MAX_PAGE,
            count: false,
        };
        let (mut rows, mut bytes) = (0u64, 0usize);
        loop {
            let page = s.state.store.cdr_page(&q).await.expect("page");
            rows += page.legs.len() as u64;
            if make_lines {
                for l in &page.legs {
                    bytes += server::csv_line(&l.leg, true).len() + 2;
                }
            }
            match page.next {
                Some(c) => q.page = store::PageAt::After(c),
                None => break,
            }
        }
        let secs = started.elapsed().as_secs_f64();
        println!(
            "{:<18} {rows:>8} rows in {secs:>6.2} s = {:>8.0} rows/s (in process, no HTTP){}",
            if make_lines {
                "store + csv_line"
            } else {
                "store pages only"
            },
            rows as f64 / secs,
            if make_lines {
                format!(", {:.1} MB", bytes as f64 / 1e6)
            } else {
                String::new()
            },
        );
    }

    for (label, query, expected) in [
        ("all legs", "", count),
        ("all legs again", "", count),
        ("caller=4477 (1/7)", "?caller=4477", count.div_ceil(7)),
    ] {
        // Peak RSS from here on: the export, not the fill.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        let before = proc_kb("VmRSS:");
        let (rows, bytes, took) = download(s.addr, query).await;
        assert_eq!(rows, expected, "{label}: rows exported");
        let secs = took.as_secs_f64();
        println!(
            "{label:<18} {rows:>8} rows, {:>6.1} MB in {secs:>6.2} s = {:>8.0} rows/s, {:>5.1} MB/s; RSS before {} MB, peak during export {} MB (anon {} MB, file {} MB now)",
            bytes as f64 / 1e6,
            rows as f64 / secs,
            bytes as f64 / 1e6 / secs,
            before / 1024,
            proc_kb("VmHWM:") / 1024,
            proc_kb("RssAnon:") / 1024,
            proc_kb("RssFile:") / 1024,
        );
    }
    s.stop().await.expect("stop");
}
