//! The CDR browser and its API over real HTTP: a real server on 127.0.0.1 whose embedded
//! sensor reads the sample captures of `tests/data`, real SQLite, a real HTTP client.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use calls::Micros;
use reqwest::StatusCode;
use server::{FakeClock, Running};

mod common;
use common::get_text as get;
use common::{ADMIN_PW, DAY, World, client, get_csv, logged_in, repo_file, url, us};

/// Installs a license for the world's hardware id whose formal end is `end_in_days` from `now`
/// (negative: in the past).
fn install_license(w: &World, now: Micros, end_in_days: i64) {
    let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
    let formal_end = today
        .checked_add(jiff::Span::new().days(end_in_days))
        .unwrap();
    let mut terms = w.terms(50, now);
    terms.license_id = "L-CDRS".into();
    terms.issued_at = license::timestamp(now - 400 * DAY).unwrap();
    terms.formal_end = formal_end;
    terms.grace_end = license::grace_end_for(formal_end, false);
    w.install_key(&w.issue(&terms));
}

/// The server of these tests: captures read once their size has held for 100 ms.
async fn start(w: &World, clock: &FakeClock) -> Running {
    let mut config = w.config();
    config.pcap_settle = Duration::from_millis(100);
    common::start(config, clock).await
}

async fn json(c: &reqwest::Client, addr: SocketAddr, path: &str) -> serde_json::Value {
    let (code, body) = get(c, addr, path).await;
    assert_eq!(code, StatusCode::OK, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Copies every sample capture into the capture directory; how many.
fn copy_samples(w: &World) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir(repo_file("tests/data")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pcap") {
            std::fs::copy(&p, w.pcaps().join(p.file_name().unwrap())).unwrap();
            n += 1;
        }
    }
    n
}

async fn wait_for_legs(addr: SocketAddr, c: &reqwest::Client, captures: usize) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let text = c
            .get(url(addr, "/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let done = text
            .lines()
            .find_map(|l| l.strip_prefix("sipmeter_captures_processed_total "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if done >= captures as f64 {
            return;
        }
        assert!(Instant::now() < deadline, "captures not processed in time");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Every leg of a filter through the API, following `next` cursors.
async fn api_all(c: &reqwest::Client, addr: SocketAddr, qs: &str) -> Vec<serde_json::Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut path = format!("/api/v1/cdrs?limit=3&{qs}");
        if let Some(a) = &after {
            path.push_str("&after=");
            path.push_str(&serde_urlencoded::to_string([("x", a)]).unwrap()[2..]);
        }
        let page = json(c, addr, &path).await;
        let legs = page["legs"].as_array().unwrap();
        assert!(legs.len() <= 3);
        out.extend(legs.iter().cloned());
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
}

fn call_ids(legs: &[serde_json::Value]) -> Vec<String> {
    legs.iter()
        .map(|l| l["call_id"].as_str().unwrap().to_string())
        .collect()
}

/// Undoes HTML escaping (askama writes numeric entities).
fn unescape(s: &str) -> String {
    s.replace("&#38;", "&")
        .replace("&amp;", "&")
        .replace("&#39;", "'")
        .replace("&#34;", "\"")
        .replace("&#60;", "<")
        .replace("&#62;", ">")
}

/// The `href` of the element with this id, HTML entities undone.
fn link(html: &str, id: &str) -> Option<String> {
    let key = format!("id=\"{id}\"");
    let at = html.find(&key)?;
    let rest = &html[at..];
    let h = rest.find("href=\"")? + 6;
    let v = &rest[h..h + rest[h..].find('"')?];
    Some(unescape(v))
}

#[tokio::test]
async fn browse_filter_sort_page_detail_and_csv() {
    let w = World::new();
    let now = us("2026-11-28T18:00:00Z");
    install_license(&w, now, 300);
    let captures = copy_samples(&w);
    let clock = FakeClock::new(now);
    let s = start(&w, &clock).await;
    let c = logged_in(s.addr).await;
    wait_for_legs(s.addr, &c, captures).await;

    // Keyset paging through the API visits every leg exactly once, newest first.
    let all = api_all(&c, s.addr, "").await;
    let total = s.state.store.count_legs().await.unwrap() as usize;
    assert!(total > 10, "the samples give many legs: {total}");
    assert_eq!(all.len(), total);
    let ids: HashSet<i64> = all.iter().map(|l| l["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), total, "no leg twice");
    let starts: Vec<&str> = all.iter().map(|l| l["start"].as_str().unwrap()).collect();
    assert!(starts.windows(2).all(|p| p[0] >= p[1]), "newest first");

    // Sort by caller ascending.
    let by_caller = api_all(&c, s.addr, "sort=caller&dir=asc").await;
    assert_eq!(by_caller.len(), total);
    let callers: Vec<&str> = by_caller
        .iter()
        .map(|l| l["caller"].as_str().unwrap())
        .collect();
    assert!(callers.windows(2).all(|p| p[0] <= p[1]), "{callers:?}");

    // Filters against the same filter applied to the full list.
    let expect = |f: &dyn Fn(&serde_json::Value) -> bool| -> HashSet<String> {
        call_ids(&all.iter().filter(|l| f(l)).cloned().collect::<Vec<_>>())
            .into_iter()
            .collect()
    };
    let got = |v: Vec<serde_json::Value>| -> HashSet<String> { call_ids(&v).into_iter().collect() };
    let xfer = got(api_all(&c, s.addr, "caller=44207111000").await);
    assert_eq!(
        xfer,
        expect(&|l| l["caller"].as_str().unwrap().starts_with("44207111000"))
    );
    assert!(xfer.contains("xfer-a-c-1@sipmeter.test"));
    let contains = got(api_all(&c, s.addr, "called=1110003&match=contains").await);
    assert_eq!(
        contains,
        expect(&|l| l["called"].as_str().unwrap().contains("1110003"))
    );
    assert!(!contains.is_empty());
    let unanswered = got(api_all(&c, s.addr, "answered=no").await);
    assert_eq!(unanswered, expect(&|l| l["answer"].is_null()));
    assert!(!unanswered.is_empty() && unanswered.len() < total);
    let code = all
        .iter()
        .find_map(|l| l["last_response"].as_u64().filter(|c| *c != 200))
        .expect("a failed call in the samples");
    let by_code = got(api_all(&c, s.addr, &format!("code={code}")).await);
    assert_eq!(
        by_code,
        expect(&|l| l["last_response"].as_u64() == Some(code))
    );
    let since = &starts[total / 2];
    let recent = got(api_all(
        &c,
        s.addr,
        &serde_urlencoded::to_string([("from", since)]).unwrap(),
    )
    .await);
    assert_eq!(recent, expect(&|l| l["start"].as_str().unwrap() >= *since));
    let (bad, _) = get(&c, s.addr, "/api/v1/cdrs?sort=bogus").await;
    assert_eq!(bad, StatusCode::BAD_REQUEST);

    // The GUI: next/previous links (plain GET links) walk every leg once, two per page.
    let mut seen = Vec::new();
    let mut path = "/cdrs?limit=2&sort=called&dir=asc".to_string();
    let mut pages = 0;
    loop {
        let (code, html) = get(&c, s.addr, &path).await;
        assert_eq!(code, StatusCode::OK);
        assert!(html.contains(&format!("{total} legs")), "count shown");
        for part in html.split("<a href=\"/cdrs/").skip(1) {
            seen.push(part[..part.find('"').unwrap()].parse::<i64>().unwrap());
        }
        pages += 1;
        if pages == 2 {
            // Previous of page 2 is page 1.
            let prev = link(&html, "cdr-prev")
                .unwrap_or_else(|| panic!("page 2 has a previous link: {html}"));
            let (_, back) = get(&c, s.addr, &prev).await;
            let first: Vec<&str> = back.split("<a href=\"/cdrs/").skip(1).collect();
            assert_eq!(first.len(), 2);
            assert!(first[0].starts_with(&format!("{}\"", seen[0])));
        }
        match link(&html, "cdr-next") {
            Some(n) => path = n,
            None => break,
        }
    }
    assert_eq!(seen.len(), total);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), total);
    let (_, html) = get(&c, s.addr, "/cdrs?caller=4420711").await;
    assert!(unescape(&html).contains("href=\"/cdrs?caller=4420711&sort=caller&dir=asc\""));
    assert_eq!(
        link(&html, "cdr-csv").unwrap(),
        "/api/v1/cdrs.csv?caller=4420711"
    );

    // Detail of the transferred leg: every field, the related legs with the reason, the ladder.
    let leg = all
        .iter()
        .find(|l| l["call_id"] == "xfer-a-c-1@sipmeter.test")
        .unwrap();
    let (code, html) = get(&c, s.addr, &format!("/cdrs/{}", leg["id"])).await;
    assert_eq!(code, StatusCode::OK);
    for f in ["referred_by", "user_agent", "end_reason", "sip_messages"] {
        assert!(html.contains(&format!("<dt>{f}</dt>")), "{f}");
    }
    assert!(
        !html.contains("<sip:442071110002@sipmeter.test>"),
        "escaped"
    );
    assert!(unescape(&html).contains("<sip:442071110002@sipmeter.test>"));
    let related = &html[html.find("id=\"cdr-related\"").expect("related legs")..];
    let related = &related[..related.find("</table>").unwrap()];
    assert!(related.contains("xfer-a-b-1@sipmeter.test"), "{related}");
    assert!(related.contains("Referred-By"), "{related}");
    let ladder = &html[html.find("id=\"cdr-ladder\"").expect("ladder")..];
    assert!(ladder.contains("INVITE sip:442071110003@"), "{ladder}");
    assert!(ladder.contains("SIP/2.0 200 OK"));
    assert!(ladder.contains("<details>") && ladder.contains("Call-ID: xfer-a-c-1@sipmeter.test"));
    assert!(
        ladder.contains("<th>127.0.0.1:5078</th>"),
        "endpoint columns"
    );
    let (code, _) = get(&c, s.addr, "/cdrs/999999").await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _) = get(&c, s.addr, "/cdrs/abc").await;
    assert_eq!(code, StatusCode::NOT_FOUND);

    // CSV: the CLI's columns, one row per filtered leg.
    let r = get_csv(&c, s.addr, "/api/v1/cdrs.csv?caller=44207111000").await;
    let body = r.text().await.unwrap();
    let lines: Vec<&str> = body.lines().collect();
    assert_eq!(lines[0], server::CSV_COLUMNS.join(","));
    assert_eq!(lines.len() - 1, xfer.len());
    assert!(xfer.iter().all(|id| body.contains(id.as_str())));

    // Anonymous: a redirect to the login page, 401 on the API.
    let anon = client();
    for path in ["/cdrs", "/cdrs/1"] {
        let r = anon.get(url(s.addr, path)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER, "{path}");
        assert!(
            r.headers()["location"]
                .to_str()
                .unwrap()
                .starts_with("/login")
        );
    }
    for path in ["/api/v1/cdrs", "/api/v1/cdrs.csv"] {
        let (code, _) = get(&anon, s.addr, path).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{path}");
    }
    // Scripts use HTTP Basic.
    let r = anon
        .get(url(s.addr, "/api/v1/cdrs?limit=1"))
        .basic_auth("admin", Some(ADMIN_PW))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    s.stop().await.unwrap();
}

#[tokio::test]
async fn locked_license_answers_423_on_the_list_api_and_csv() {
    let w = World::new();
    let now = us("2026-11-28T18:00:00Z");
    // Formal end 60 days ago: past the 20-day grace, expired, which locks.
    install_license(&w, now, -60);
    let clock = FakeClock::new(now);
    let s = start(&w, &clock).await;
    let c = logged_in(s.addr).await;
    for path in ["/api/v1/cdrs", "/api/v1/cdrs.csv"] {
        let (code, body) = get(&c, s.addr, path).await;
        assert_eq!(code, StatusCode::LOCKED, "{path}: {body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["error"], "locked");
    }
    for path in ["/cdrs", "/cdrs/1"] {
        let (code, _) = get(&c, s.addr, path).await;
        assert_eq!(code, StatusCode::LOCKED, "{path}");
    }
    s.stop().await.unwrap();
}
