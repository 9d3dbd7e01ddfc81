//! The CDR CSV export streams the whole filtered list: more rows than one store page (and more
//! than the old in-memory cap's page count), in the list's order, over real HTTP from a real
//! server on a real SQLite file.

use calls::Micros;
use reqwest::StatusCode;
use server::FakeClock;

mod common;
use common::{World, get_csv, get_json, get_status, logged_in, us};

/// More legs than a dozen store pages.
const LEGS: usize = 12_345;

/// `LEGS` legs one second apart from `base`; every seventh has a caller starting `4477`.
fn legs(base: Micros) -> Vec<calls::Leg> {
    let day = license::day_of(base, &jiff::tz::TimeZone::UTC);
    let template = common::busy_days(&[day], 1).remove(0);
    (0..LEGS)
        .map(|i| {
            let start = base + i as Micros * 1_000_000;
            let caller = if i % 7 == 0 { "4477" } else { "4410" };
            calls::Leg {
                call_id: format!("csv-{i:05}"),
                caller: format!("{caller}{i:06}"),
                called: format!("4420{i:06}"),
                start,
                answer: Some(start + 500_000),
                end: start + 30_000_000,
                ..template.clone()
            }
        })
        .collect()
}

/// The `call_id` column of a CSV export, header checked.
fn exported_ids(body: &str) -> Vec<String> {
    let mut lines = body.split("\r\n");
    let header = lines.next().unwrap();
    assert_eq!(header, server::CSV_COLUMNS.join(","));
    let col = server::CSV_COLUMNS
        .iter()
        .position(|c| *c == "call_id")
        .unwrap();
    lines
        .filter(|l| !l.is_empty())
        .map(|l| l.split(',').nth(col).unwrap().to_string())
        .collect()
}

async fn export(c: &reqwest::Client, addr: std::net::SocketAddr, query: &str) -> Vec<String> {
    let r = get_csv(c, addr, &format!("/api/v1/cdrs.csv{query}")).await;
    // Streamed: the length is not known up front.
    assert!(r.headers().get("content-length").is_none());
    exported_ids(&r.text().await.unwrap())
}

#[tokio::test]
async fn export_streams_every_row_in_list_order_and_honours_filters() {
    let w = World::new();
    let now = us("2026-11-28T18:00:00Z");
    w.install_key(&w.license(50, now));
    let base = now - 86_400_000_000;
    let all = legs(base);
    let mut store = store::Store::open_sqlite(w.data()).await.unwrap();
    store.insert_legs(&all).await.unwrap();
    store.close().await;

    let mut config = w.config();
    config.pcap_dir = None;
    let clock = FakeClock::new(now);
    let s = common::start(config, &clock).await;
    let c = logged_in(s.addr).await;

    // Default order: newest start first, like the list.
    let ids = export(&c, s.addr, "").await;
    let newest_first: Vec<String> = all.iter().rev().map(|l| l.call_id.clone()).collect();
    assert_eq!(ids.len(), LEGS);
    assert_eq!(ids, newest_first);

    // The same order as paging through the JSON list with its cursor.
    let mut listed = Vec::new();
    let mut next = Some(String::new());
    while let Some(after) = next {
        let q = if after.is_empty() {
            "/api/v1/cdrs?limit=1000&sort=caller&dir=asc".to_string()
        } else {
            format!("/api/v1/cdrs?limit=1000&sort=caller&dir=asc&after={after}")
        };
        let v: serde_json::Value = get_json(&c, s.addr, &q).await;
        for l in v["legs"].as_array().unwrap() {
            listed.push(l["call_id"].as_str().unwrap().to_string());
        }
        next = v["next"].as_str().map(str::to_string);
    }
    let by_caller = export(&c, s.addr, "?sort=caller&dir=asc").await;
    assert_eq!(listed.len(), LEGS);
    assert_eq!(by_caller, listed);

    // Filtered: exactly the legs whose caller starts 4477, newest first.
    let wanted: Vec<String> = all
        .iter()
        .rev()
        .filter(|l| l.caller.starts_with("4477"))
        .map(|l| l.call_id.clone())
        .collect();
    assert_eq!(wanted.len(), LEGS.div_ceil(7));
    assert_eq!(export(&c, s.addr, "?caller=4477").await, wanted);

    // A time range cuts on the start time: the last 1 000 seconds of legs.
    let from = jiff::Timestamp::from_microsecond(base + (LEGS as Micros - 1000) * 1_000_000)
        .unwrap()
        .to_string();
    let recent = export(&c, s.addr, &format!("?from={from}")).await;
    assert_eq!(recent, newest_first[..1000].to_vec());

    // Bad filters are still refused before anything is streamed.
    assert_eq!(
        get_status(&c, s.addr, "/api/v1/cdrs.csv?answered=maybe").await,
        StatusCode::BAD_REQUEST
    );
    s.stop().await.unwrap();
}
