//! Insert throughput of the store into PostgreSQL (or SQLite, for comparison):
//! `cargo run --release -p store --example pg_insert_bench -- [--database URL] [--messages N]
//! [--writers W] [LEGS [BATCH]]`.
//!
//! Writes LEGS (default 1,000,000) synthetic legs, BATCH (default 10,000) per `insert_legs`
//! call, then sends every batch again (the duplicate path: a sensor retrying), then writes N
//! (default 100,000) more legs with 8 SIP messages each. Without `--database` a fresh
//! database is created on the local test server (`SIPMETER_TEST_PG`, default
//! `postgres://postgres@127.0.0.1:5432/test`) and dropped at the end; with a URL that
//! database is used as it is (it should be empty for comparable figures), and a data
//! directory benchmarks SQLite. Legs are built before the clock starts, spread over three
//! days (three partitions), with random-looking numbers and Call-IDs as real ones are.
//! `--writers W` (default 1) writes the batches through W store handles at once, as a central
//! server does with batches of several sensors: PostgreSQL, unlike SQLite, runs concurrent
//! writers in parallel. The database server runs on the same two cores, so the wall-clock figure is the one that
//! counts; the client's own CPU share is printed beside it.

mod common;

use std::net::SocketAddr;
use std::time::Instant;

use calls::{EndReason, Leg, LegMessage, Side};
use common::{D0, DAY, Rng, cpu_seconds, plain_leg};
use sip::Transport;
use sqlx::Connection;
use store::Store;

fn legs(from: u64, n: u64, total: u64, messages: bool) -> Vec<Leg> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ from);
    (from..from + n)
        .map(|i| {
            let h = rng.next();
            let start = D0 + (i as i64) * (3 * DAY / total.max(1) as i64);
            let answered = !h.is_multiple_of(3);
            let mut leg = Leg {
                caller_name: h.is_multiple_of(2).then(|| format!("Agent {}", h % 500)),
                from_tag: Some(format!("{:x}", h >> 3)),
                to_tag: answered.then(|| format!("as{:x}", h >> 5)),
                answer: answered.then_some(start + 4_000_000),
                end: start + 4_000_000 + (h % 600_000_000) as i64,
                last_response: Some(if answered { 200 } else { 486 }),
                last_response_text: Some(if answered { "OK" } else { "Busy Here" }.into()),
                end_reason: if answered {
                    EndReason::ByeConfirmed
                } else {
                    EndReason::NotAnswered
                },
                hangup_by: answered.then_some(Side::Caller),
                user_agent: Some("Asterisk PBX 20.5.0".into()),
                sip_message_count: 8,
                ..plain_leg(
                    format!("{h:016x}-{i:08x}@pbx{}.example.net", h % 7),
                    1 + (h % 3) as u32,
                    format!("+49301{:07}", h % 10_000_000),
                    format!("0{:09}", (h >> 24) % 1_000_000_000),
                    start,
                )
            };
            if messages {
                leg.messages = (0..8)
                    .map(|m| LegMessage {
                        ts: start + m * 1000,
                        src: SocketAddr::from(([10, 0, (h >> 8) as u8, 1], 5060)),
                        dst: SocketAddr::from(([192, 0, 2, 7], 5060)),
                        transport: Transport::Udp,
                        raw: format!(
                            "INVITE sip:{}@carrier.example.com SIP/2.0\r\nVia: SIP/2.0/UDP \
                             10.0.0.1:5060;branch=z9hG4bK{h:x}{m}\r\nCall-ID: {}\r\nCSeq: {m} \
                             INVITE\r\nContent-Length: 0\r\n\r\n",
                            leg.called, leg.call_id
                        )
                        .into_bytes(),
                    })
                    .collect();
            }
            leg
        })
        .collect()
}

/// CPU seconds used so far by the `postgres` processes of this machine, in total and by the
/// backends serving database `db` alone: the database's share of the work, which the wall
/// clock of a shared machine hides. The total includes the WAL writer and checkpointer but also
/// every other client of the server; the backends' figure is this benchmark's alone (a backend
/// names its database in its process title).
fn postgres_cpu_seconds(db: &str) -> (f64, f64) {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return (0.0, 0.0);
    };
    let ours = format!(" {db} ");
    dir.filter_map(|e| {
        let path = e.ok()?.path();
        let comm = std::fs::read_to_string(path.join("comm")).ok()?;
        (comm.trim() == "postgres").then_some(())?;
        let stat = std::fs::read_to_string(path.join("stat")).ok()?;
        let (_, rest) = stat.rsplit_once(')')?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let secs = (f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?) / 100.0;
        let title = std::fs::read_to_string(path.join("cmdline")).unwrap_or_default();
        Some((secs, if title.contains(&ours) { secs } else { 0.0 }))
    })
    .fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y))
}

async fn run(stores: &mut Vec<Store>, db: &str, what: &str, batches: &[Vec<Leg>]) -> (u64, u64) {
    let n: usize = batches.iter().map(Vec::len).sum();
    let (t0, c0, p0) = (
        Instant::now(),
        cpu_seconds().unwrap_or(0.0),
        postgres_cpu_seconds(db),
    );
    let writers = stores.len();
    let mut tasks = Vec::new();
    for (w, mut store) in stores.drain(..).enumerate() {
        // Writer w takes every W-th batch.
        let mine: Vec<Vec<Leg>> = batches.iter().skip(w).step_by(writers).cloned().collect();
        tasks.push(tokio::spawn(async move {
            let (mut inserted, mut duplicates) = (0, 0);
            for b in &mine {
                let r = store.insert_legs(b).await.expect("insert");
                inserted += r.inserted;
                duplicates += r.duplicates;
            }
            (store, inserted, duplicates)
        }));
    }
    let (mut inserted, mut duplicates) = (0, 0);
    for t in tasks {
        let (store, i, d) = t.await.expect("writer");
        stores.push(store);
        inserted += i;
        duplicates += d;
    }
    let secs = t0.elapsed().as_secs_f64();
    let p1 = postgres_cpu_seconds(db);
    let (server_cpu, backend_cpu) = (p1.0 - p0.0, p1.1 - p0.1);
    println!(
        "{what}: {n} legs in {secs:.2} s = {:.0} legs/s (client CPU {:.0} %), inserted {inserted}, \
         duplicates {duplicates}; postgres CPU {server_cpu:.2} s = {:.1} µs/leg, \
         of it our backends {backend_cpu:.2} s = {:.1} µs/leg",
        n as f64 / secs,
        100.0 * (cpu_seconds().unwrap_or(0.0) - c0) / secs,
        1e6 * server_cpu / n as f64,
        1e6 * backend_cpu / n as f64
    );
    (inserted, duplicates)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut take = |flag: &str| {
        let i = args.iter().position(|a| a == flag)?;
        let v = args.get(i + 1).cloned();
        args.drain(i..(i + 2).min(args.len()));
        v
    };
    let database = take("--database");
    let with_messages: u64 =
        take("--messages").map_or(100_000, |v| v.parse().expect("--messages N"));
    let writers: usize = take("--writers").map_or(1, |v| v.parse().expect("--writers W"));
    let total: u64 = args.first().map_or(1_000_000, |v| v.parse().expect("LEGS"));
    let batch: u64 = args.get(1).map_or(10_000, |v| v.parse().expect("BATCH"));

    let admin = std::env::var("SIPMETER_TEST_PG")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let scratch = format!("sipmeter_bench_{}", std::process::id());
    let (location, fresh) = match database {
        Some(d) => (d, false),
        None => {
            let mut c = sqlx::PgConnection::connect(&admin)
                .await
                .expect("PostgreSQL");
            sqlx::query(&format!("CREATE DATABASE {scratch}"))
                .execute(&mut c)
                .await
                .unwrap();
            let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
            (format!("{base}/{scratch}"), true)
        }
    };
    let db = location
        .rsplit_once('/')
        .map_or("", |(_, d)| d.split('?').next().unwrap_or(d))
        .to_owned();
    let mut stores = Vec::new();
    for _ in 0..writers.max(1) {
        stores.push(Store::open(location.as_str()).await.expect("open"));
    }
    println!(
        "backend {}, {total} legs in batches of {batch} through {} writer(s), then \
         {with_messages} with 8 messages",
        stores[0].backend_name(),
        stores.len()
    );
    let plain: Vec<Vec<Leg>> = (0..total.div_ceil(batch))
        .map(|b| legs(b * batch, batch.min(total - b * batch), total, false))
        .collect();
    run(&mut stores, &db, "new legs", &plain).await;
    run(&mut stores, &db, "same legs again (duplicates)", &plain).await;
    drop(plain);
    if with_messages > 0 {
        let msgs: Vec<Vec<Leg>> = (0..with_messages.div_ceil(batch))
            .map(|b| {
                let from = total + b * batch;
                legs(from, batch.min(with_messages - b * batch), total, true)
            })
            .collect();
        run(&mut stores, &db, "new legs with 8 messages", &msgs).await;
    }
    let mut store = stores.pop().expect("a writer");
    for other in stores {
        other.close().await;
    }
    let t0 = Instant::now();
    let up = store
        .update_channel_stats(store::ActiveMode::Signalling)
        .await
        .expect("channels");
    println!(
        "channel stats: {} days, {} legs scanned in {:.2} s",
        up.days,
        up.legs,
        t0.elapsed().as_secs_f64()
    );
    store.close().await;
    if fresh {
        let mut c = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL");
        sqlx::query(&format!("DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"))
            .execute(&mut c)
            .await
            .unwrap();
    }
}
