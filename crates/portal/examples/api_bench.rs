//! Throughput and latency of the server-facing API on a real portal (SQLite in a temp dir, or
//! `--database postgres://…`): Get License (sign a fresh file) and check-in (upsert + verdict),
//! with C concurrent clients on 127.0.0.1.
//!
//! `cargo run --release -p portal --example api_bench -- [LICENSES] [REQUESTS] [CLIENTS] [DATABASE_URL]`

use std::sync::Arc;
use std::time::Instant;

use portal::{BindingState, Portal};
use serde_json::json;

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn run(
    name: &str,
    base: &str,
    bodies: Vec<(String, serde_json::Value)>,
    clients: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let http = reqwest::Client::new();
    let bodies = Arc::new(bodies);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (http, bodies, next, base) =
            (http.clone(), bodies.clone(), next.clone(), base.to_string());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some((path, body)) = bodies.get(i) else {
                    break;
                };
                let t = Instant::now();
                let r = http
                    .post(format!("{base}{path}"))
                    .json(body)
                    .send()
                    .await
                    .expect("request");
                assert!(r.status().is_success(), "{}", r.status());
                r.bytes().await.expect("body");
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let secs = start.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    println!(
        "{name}: {} requests, {clients} clients, {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms",
        lat.len(),
        lat.len() as f64 / secs,
        pct(&lat, 0.5),
        pct(&lat, 0.99)
    );
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    let requests: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5000);
    let clients: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let database = args.get(4).cloned();
    let dir = tempfile::tempdir()?;
    let portal = Portal::open(
        dir.path(),
        database.as_deref(),
        Arc::new(portal::clock::SystemClock),
    )
    .await?;
    let base = format!("http://{}", portal::spawn_local(portal.clone()).await?);
    let customer = portal.add_customer("bench", "Bench").await?;
    let end = jiff::civil::date(2030, 12, 31);
    let mut licenses = Vec::new();
    for _ in 0..n {
        let l = portal
            .add_license(
                "bench",
                &customer.id,
                100,
                Some(end),
                false,
                BindingState::Hwid(None),
            )
            .await?;
        licenses.push(l);
    }
    let hwid = |i: usize| format!("AAAA-BBBB-CCCC-{:04X}", i % 0xFFFF);
    let get: Vec<_> = (0..requests)
        .map(|i| {
            let l = &licenses[i % n];
            (
                "/api/v1/license".to_string(),
                json!({"token": l.token, "hwid": hwid(i % n)}),
            )
        })
        .collect();
    run("get license", &base, get, clients).await?;
    let checkin: Vec<_> = (0..requests)
        .map(|i| {
            let l = &licenses[i % n];
            (
                "/api/v1/checkin".to_string(),
                json!({"license_id": l.id, "hwid": hwid(i % n), "install_id": format!("inst-{}", i % n),
                       "boot_id": format!("boot-{}", i % (2 * n)), "version": "bench"}),
            )
        })
        .collect();
    run("check-in", &base, checkin, clients).await?;
    portal.close().await;
    Ok(())
}
