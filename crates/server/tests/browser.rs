//! The GUI in a real browser: headless Chromium driven through chromedriver (WebDriver), against
//! a real server on 127.0.0.1 with real SQLite, the embedded sensor on a real capture directory
//! and a fake clock for the dates.
//!
//! The HTTP tests (`http.rs`) already check every answer byte by byte; these tests check what only
//! a browser shows: that the forms, links, file upload and cookies work together as an operator
//! uses them (no JavaScript on the pages, so a form or link that is wrong is a dead end).
//!
//! They need Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them
//! the tests fail, naming the packages, because a browser test that silently passes proves
//! nothing; `SIPMETER_SKIP_BROWSER=1` turns that into a loud skip on machines that cannot have
//! a browser. `SIPMETER_BROWSER_SHOTS=DIR` keeps the screenshots (else they die with the temp
//! dir).

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator, elements::Element};
use server::{FakeClock, Running};

mod common;
use common::{
    ADMIN_PW, DAY, World, an_instant_with_five_calls, days_before, metric, pcap_until, repo_file,
    url, us,
};

/// How long any one thing may take to appear. Generous because two browsers and the build of
/// other crates may share two cores; a wait ends as soon as its condition holds, so a healthy
/// run never spends it.
const PATIENCE: Duration = Duration::from_secs(20);

/// The flags known to work on the project's machines: without the background-networking ones
/// Chromium keeps dialling Google on a closed network; `--no-sandbox` because CI runs as root.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

// ---------------------------------------------------------------------------------------------
// The browser: chromedriver as a child process, one WebDriver session.
// ---------------------------------------------------------------------------------------------

/// The first of `names` in a `PATH` directory or in `/usr/bin` (where Debian puts them, and
/// which a minimal test environment may leave off `PATH`).
fn find_program(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .flat_map(|dir| names.iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file())
}

/// chromedriver and the browser binary, or `None` when the developer asked to skip. Missing
/// tools are a failure, not a pass: CI installs them, so there they must run.
fn browser_tools(test: &str) -> Option<(PathBuf, PathBuf)> {
    let driver = find_program(&["chromedriver"]);
    let browser = find_program(&["chromium", "chromium-browser"]);
    if let (Some(d), Some(b)) = (&driver, &browser) {
        return Some((d.clone(), b.clone()));
    }
    let missing = [("chromedriver", &driver), ("chromium", &browser)]
        .iter()
        .filter(|(_, p)| p.is_none())
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(" and ");
    if std::env::var("SIPMETER_SKIP_BROWSER").as_deref() == Ok("1") {
        // Straight to stderr: the test harness captures `eprintln!` of passing tests, and a
        // skip nobody sees is a silent pass.
        let _ = writeln!(
            std::io::stderr(),
            "\n!!!!!!!! SKIPPED browser test {test}: {missing} not found and \
             SIPMETER_SKIP_BROWSER=1 !!!!!!!!\n"
        );
        return None;
    }
    panic!(
        "browser test {test}: {missing} not found on PATH or in /usr/bin. Install the Debian \
         packages: apt-get install chromium chromium-driver (or set SIPMETER_SKIP_BROWSER=1 to \
         skip the browser tests on this machine)"
    );
}

/// A running chromedriver. Dropping it kills its whole process group, so that neither the
/// driver nor a Chromium it started outlives a failed test.
struct Driver {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Driver {
    async fn start(program: &Path, dir: &Path) -> Driver {
        use std::os::unix::process::CommandExt;
        let log = dir.join("chromedriver.log");
        // A free port: bound by us, released, then taken by chromedriver. Another process could
        // take it in between; then chromedriver exits and the wait below says so.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so Drop can end Chromium with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let mut driver = Driver { child, port, log };
        driver.wait_ready().await;
        driver
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Until `/status` says ready; chromedriver takes a few hundred ms to listen.
    async fn wait_ready(&mut self) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "chromedriver exited at start ({status}); its log:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if let Ok(r) = http.get(format!("{}/status", self.url())).send().await
                && let Ok(v) = r.json::<serde_json::Value>().await
                && v["value"]["ready"] == true
            {
                return;
            }
            assert!(Instant::now() < deadline, "chromedriver not ready in time");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        // The group id is the driver's pid (process_group(0)); `kill` the program because the
        // standard library only signals single processes.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebDriver session in headless Chromium, with a fresh profile in the test's temp dir.
struct Browser {
    c: Client,
    shots: PathBuf,
    // Declared last: dropped after the session handle.
    _driver: Driver,
}

impl Browser {
    /// `None` when browser tests are skipped on this machine.
    async fn start(test: &str, dir: &Path) -> Option<Browser> {
        let (driver_bin, browser_bin) = browser_tools(test)?;
        let driver = Driver::start(&driver_bin, dir).await;
        let profile = dir.join("chromium-profile");
        std::fs::create_dir_all(&profile).unwrap();
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| s.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        let caps = serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": browser_bin,
                "args": args,
            },
        });
        let serde_json::Value::Object(caps) = caps else {
            unreachable!()
        };
        let c = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&driver.url())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "no WebDriver session: {e}; chromedriver log:\n{}",
                    std::fs::read_to_string(&driver.log).unwrap_or_default()
                )
            });
        Some(Browser {
            c,
            shots: dir.to_path_buf(),
            _driver: driver,
        })
    }

    /// Ends the session (Chromium quits); the driver goes with `self`.
    async fn close(self) {
        self.c.clone().close().await.unwrap();
    }

    /// The first element matching `css`, waiting for it to appear.
    async fn find(&self, css: &str) -> Element {
        match self
            .c
            .wait()
            .at_most(PATIENCE)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("no {css} on {}: {e}", self.where_am_i().await),
        }
    }

    /// The text of `css` once it satisfies `ok` (pages are replaced by navigation, so the text
    /// is read again until it fits or time runs out).
    async fn text_when(&self, css: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + PATIENCE;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(e) = self.c.find(Locator::Css(css)).await
                && let Ok(t) = e.text().await
            {
                if ok(&t) {
                    return t;
                }
                last = t;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "{css} never right on {}; last text {last:?}",
            self.where_am_i().await
        )
    }

    async fn text_is(&self, css: &str, want: &str) {
        self.text_when(css, |t| t == want).await;
    }

    /// Reloads the page until `css` reads `want`: for figures the server updates behind the
    /// page (a capture just read), where one reload could come a moment early.
    async fn reload_until(&self, css: &str, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            self.c.refresh().await.unwrap();
            let now = match self.c.find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if now == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} still {now:?}, not {want:?}, on {}",
                self.where_am_i().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Until the browser shows `path` (a click's navigation has landed).
    async fn path_is(&self, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        while self.path().await != want {
            assert!(
                Instant::now() < deadline,
                "still on {}, not {want}",
                self.where_am_i().await
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn heading_is(&self, want: &str) {
        self.text_is("main h1", want).await;
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    /// The HTTP status of the page now shown, from the browser's own navigation timing (WebDriver
    /// has no status codes; the lock must be a 423, not a 200 that looks locked).
    async fn status(&self) -> u64 {
        self.c
            .execute(
                "return performance.getEntriesByType('navigation')[0].responseStatus;",
                vec![],
            )
            .await
            .unwrap()
            .as_u64()
            .expect("a navigation status")
    }

    async fn where_am_i(&self) -> String {
        self.c
            .current_url()
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no url: {e})"))
    }

    /// The path of the page now shown.
    async fn path(&self) -> String {
        self.c.current_url().await.unwrap().path().to_string()
    }

    /// A PNG of the viewport into the temp dir (and `SIPMETER_BROWSER_SHOTS` if set); checked
    /// to be a real, non-trivial image.
    async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.c.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
        assert!(png.len() > 10_000, "{name}: a blank page is tiny");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, &png).unwrap();
        if let Some(keep) = std::env::var_os("SIPMETER_BROWSER_SHOTS") {
            std::fs::create_dir_all(&keep).unwrap();
            std::fs::write(Path::new(&keep).join(format!("{name}.png")), &png).unwrap();
        }
        path
    }

    /// `GET href` outside the browser with the browser's cookies (the session cookie is
    /// HttpOnly, so WebDriver is the way to read it): what the browser would download.
    async fn fetch_as_browser(&self, href: &str) -> reqwest::Response {
        let cookies = self
            .c
            .get_all_cookies()
            .await
            .unwrap()
            .iter()
            .map(|c| format!("{}={}", c.name(), c.value()))
            .collect::<Vec<_>>()
            .join("; ");
        reqwest::Client::new()
            .get(href)
            .header("cookie", cookies)
            .send()
            .await
            .unwrap()
    }

    /// Logs in through the login form, starting from the dashboard's redirect to it.
    async fn log_in(&self, addr: SocketAddr) {
        self.c.goto(&url(addr, "/")).await.unwrap();
        assert_eq!(
            self.path().await,
            "/login",
            "anonymous users are sent to log in"
        );
        self.find("input[name=user]")
            .await
            .send_keys("admin")
            .await
            .unwrap();
        self.find("input[name=password]")
            .await
            .send_keys(ADMIN_PW)
            .await
            .unwrap();
        self.click("form[action='/login'] button[type=submit]")
            .await;
        self.heading_is("Dashboard").await;
        assert_eq!(self.path().await, "/");
    }
}

// ---------------------------------------------------------------------------------------------
// The server: the shared setup of tests/common (test signing key, fixed hardware id, fake clock).
// ---------------------------------------------------------------------------------------------

/// The server of these tests: SIP messages not kept (the pages shown do not need them).
async fn start(w: &World, clock: &FakeClock) -> Running {
    let mut config = w.config();
    config.pipeline = sensor::PipelineConfig::default();
    common::start(config, clock).await
}

async fn wait_for_captures(addr: SocketAddr, n: f64) {
    common::wait_for_captures(addr, n, Duration::from_secs(30)).await;
}

// ---------------------------------------------------------------------------------------------
// The tests. The server runs on the test's own runtime; two workers keep it answering Chromium
// while the test blocks briefly (files, `kill`), so a page load never waits on the test.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_logs_in_reads_the_footer_opens_the_stats_and_exports_csv() {
    let w = World::new();
    let Some(b) = Browser::start("footer_stats_csv", w.dir.path()).await else {
        return;
    };
    let clock = FakeClock::new(us("2026-11-28T18:00:00Z"));
    let s = start(&w, &clock).await;
    b.log_in(s.addr).await;
    b.text_is("#footer-channels", "Active channels 0 / License limit 10")
        .await;

    // The capture up to its peak: the 5 calls up at its end are the channels now.
    let src = repo_file("tests/data/basic_concurrent.pcap");
    let part = w.dir.path().join("part.pcap");
    std::fs::write(&part, pcap_until(&src, an_instant_with_five_calls())).unwrap();
    // Moved in whole: the sensor must never see a half-written file.
    std::fs::rename(&part, w.pcaps().join("a-part.pcap")).unwrap();
    wait_for_captures(s.addr, 1.0).await;
    b.reload_until("#footer-channels", "Active channels 5 / License limit 10")
        .await;
    assert!(
        b.text_when("#license-state", |t| !t.is_empty())
            .await
            .to_lowercase()
            .contains("evaluation"),
        "no key installed: the evaluation limit"
    );

    // The whole capture: every call ended, today's peak stays 5.
    std::fs::copy(&src, w.pcaps().join("b-full.pcap")).unwrap();
    wait_for_captures(s.addr, 2.0).await;
    b.reload_until("#footer-channels", "Active channels 0 / License limit 10")
        .await;
    b.text_is("#today-peak", "5").await;
    let chart = b.find("#chart-24h svg").await;
    assert!(chart.is_displayed().await.unwrap(), "the 24 h chart shows");
    let shot = b.screenshot("dashboard").await;
    eprintln!("dashboard screenshot: {}", shot.display());

    // Tools › Concurrent Calls Stats through the navigation.
    b.click("nav a[href='/tools/concurrent-calls']").await;
    b.heading_is("Tools › Concurrent Calls Stats").await;
    assert_eq!(b.status().await, 200);
    b.text_is("#ccs-peak", "5").await;
    let chart = b.find("#chart-ccs svg").await;
    let (_, _, width, height) = chart.rectangle().await.unwrap();
    assert!(
        width > 300.0 && height > 100.0,
        "a visible chart: {width}x{height}"
    );
    assert!(
        !b.c.find_all(Locator::Css("#chart-ccs svg g.limit line"))
            .await
            .unwrap()
            .is_empty(),
        "the limit is drawn on the chart"
    );
    let rows =
        b.c.find_all(Locator::Css("#ccs-days tbody tr"))
            .await
            .unwrap();
    assert_eq!(rows.len(), 14, "the last 14 days");
    b.text_when("#ccs-today", |t| t.contains("(today)")).await;
    let today = rows.last().unwrap();
    assert_eq!(
        today
            .find(Locator::Css("td:nth-child(2)"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "5"
    );
    // The day's peak links to its explanation: the 5 legs up then.
    today
        .find(Locator::Css("a"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    b.text_is("#explain-channels", "5").await;
    b.screenshot("concurrent-calls").await;

    // Reports and their CSV: the link the page offers, fetched as the browser would.
    b.click("nav a[href='/reports']").await;
    b.heading_is("Reports › Daily report").await;
    let href = b
        .find("a[href^='/reports/daily.csv']")
        .await
        .prop("href")
        .await
        .unwrap()
        .expect("an absolute href");
    let r = b.fetch_as_browser(&href).await;
    assert_eq!(r.status(), 200, "{href}");
    let ctype = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ctype.starts_with("text/csv"), "{ctype}");
    let csv = r.text().await.unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("day,calls,answered"), "{csv}");
    let today: Vec<&str> = lines
        .iter()
        .find(|l| l.starts_with("2026-11-28,"))
        .unwrap_or_else(|| panic!("today in the report: {csv}"))
        .split(',')
        .collect();
    assert_eq!(
        today[1].parse::<f64>().unwrap(),
        metric(s.addr, "sipmeter_legs_stored").await,
        "every stored leg is a call of the day"
    );
    assert_eq!(today[7], "5", "the day's channel peak");
    // Without the browser's cookies the same link is refused: the cookies are what worked.
    let anonymous = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&href)
        .send()
        .await
        .unwrap();
    assert_ne!(anonymous.status(), 200);

    // The CDR list filtered through its form, and its CSV export as filtered.
    b.click("nav a[href='/cdrs']").await;
    b.path_is("/cdrs").await;
    b.heading_is("CDRs").await;
    let caller = "442070010003";
    b.find("#cdr-filters input[name=caller]")
        .await
        .send_keys(caller)
        .await
        .unwrap();
    b.click("#cdr-filters button[type=submit]").await;
    let shown = b
        .text_when("#cdr-count", |t| t.ends_with(" legs") && t != "0 legs")
        .await;
    assert!(b.where_am_i().await.contains(&format!("caller={caller}")));
    let rows =
        b.c.find_all(Locator::Css("#cdr-list tbody tr"))
            .await
            .unwrap();
    assert_eq!(shown, format!("{} legs", rows.len()), "one page holds them");
    let href = b
        .find("#cdr-csv")
        .await
        .prop("href")
        .await
        .unwrap()
        .unwrap();
    assert!(href.contains(&format!("caller={caller}")), "{href}");
    let r = b.fetch_as_browser(&href).await;
    assert_eq!(r.status(), 200, "{href}");
    let csv = r.text().await.unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "caller")
        .unwrap_or_else(|| panic!("a caller column: {csv}"));
    let callers: Vec<&str> = lines.map(|l| l.split(',').nth(at).unwrap()).collect();
    assert_eq!(
        callers.len(),
        rows.len(),
        "the CSV has the legs shown: {csv}"
    );
    assert!(
        callers.iter().all(|c| *c == caller),
        "only the filtered: {csv}"
    );

    b.close().await;
    s.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lock_page_after_fifteen_days_over_and_a_bigger_key_uploaded_unlocks() {
    let w = World::new();
    let Some(b) = Browser::start("lock_unlock", w.dir.path()).await else {
        return;
    };
    let now = us("2026-11-28T12:00:00Z");
    let today = license::day_of(now, &jiff::tz::TimeZone::UTC);
    // 5 channels on each of the 15 days before today, against a 4-channel license.
    w.seed_busy_days(&days_before(today, 15), 5).await;
    w.install_key(&w.license(4, now));

    // Two days earlier the streak was 14 days long: lockdown, usable, with the countdown.
    let clock = FakeClock::new(now - 2 * DAY);
    let s = start(&w, &clock).await;
    b.log_in(s.addr).await;
    b.text_when(".banner", |t| {
        t.contains("License lockdown: the GUI locks in 1 day, on ")
    })
    .await;
    b.text_is("#footer-channels", "Active channels 0 / License limit 4")
        .await;
    b.screenshot("lockdown").await;

    // Today the streak is 15 days: the dashboard is the lock page, with the reason, as a 423.
    clock.set(now);
    b.c.refresh().await.unwrap();
    b.heading_is("The GUI is locked by the license").await;
    assert_eq!(b.status().await, 423);
    b.text_when("#lock-reason", |t| t.contains("15 consecutive days"))
        .await;
    let page = b.find("body").await.text().await.unwrap();
    assert_eq!(
        page.matches("15 consecutive days").count(),
        1,
        "the reason once, not again in a banner or the footer: {page}"
    );
    let shot = b.screenshot("locked").await;
    eprintln!("lock page screenshot: {}", shot.display());
    // Every other locked page too, reached through the navigation.
    b.click("nav a[href='/tools/concurrent-calls']").await;
    b.path_is("/tools/concurrent-calls").await;
    b.heading_is("The GUI is locked by the license").await;
    assert_eq!(b.status().await, 423);

    // Unlock as the lock page says: Settings › License, upload a bigger key file.
    b.click("main a[href='/settings/license']").await;
    b.heading_is("Settings › License").await;
    assert_eq!(b.status().await, 200, "Settings › License stays usable");
    let key = w.dir.path().join("L-TEST-10.key");
    std::fs::write(&key, w.license(10, now)).unwrap();
    // WebDriver fills a file input with a local path; the browser uploads the file itself.
    b.find("form[action='/settings/license/upload'] input[type=file]")
        .await
        .send_keys(key.to_str().unwrap())
        .await
        .unwrap();
    b.click("form[action='/settings/license/upload'] button[type=submit]")
        .await;
    b.text_when("#settings-message", |t| {
        t.contains("License L-TEST-10 installed")
    })
    .await;

    // Usable again at once, no restart.
    b.click("nav a[href='/']").await;
    b.path_is("/").await;
    b.heading_is("Dashboard").await;
    assert_eq!(b.status().await, 200);
    for banner in b.c.find_all(Locator::Css(".banner")).await.unwrap() {
        let text = banner.text().await.unwrap();
        assert!(!text.contains("locked"), "no lock banner left: {text}");
    }
    b.text_is("#footer-channels", "Active channels 0 / License limit 10")
        .await;
    b.click("nav a[href='/tools/concurrent-calls']").await;
    b.heading_is("Tools › Concurrent Calls Stats").await;
    b.screenshot("unlocked-stats").await;

    b.close().await;
    s.stop().await.unwrap();
}
