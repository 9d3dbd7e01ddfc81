//! A real HEPv3 sender: Kamailio (Debian package `kamailio`) proxies SIPp calls (package
//! `sip-tester`) and mirrors every SIP message it receives and sends with `siptrace` as HEPv3
//! to our listener, while tcpdump records the same calls on loopback. The legs from HEP must be
//! the legs read from the pcap (times within a few milliseconds: Kamailio stamps a message
//! when it handles it, tcpdump when the kernel sees it).
//!
//! Skipped (with a note) when kamailio, sipp or tcpdump is missing, or without the root rights
//! tcpdump needs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use calls::Leg;
use sensor::hep_listen::{HepListenConfig, HepSource};
use sensor::{Pipeline, PipelineConfig};

const PROXY: u16 = 25_460;
const UAC: u16 = 25_471;
const UAS: u16 = 25_472;
const HEP: u16 = 25_490;

fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn kamailio_cfg(modules: &str) -> String {
    format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=1
listen=udp:127.0.0.1:{PROXY}
mpath="{modules}"
loadmodule "pv.so"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "siptrace.so"
modparam("siptrace", "duplicate_uri", "sip:127.0.0.1:{HEP}")
modparam("siptrace", "hep_mode_on", 1)
modparam("siptrace", "hep_version", 3)
modparam("siptrace", "hep_capture_id", 2001)
modparam("siptrace", "trace_to_database", 0)
modparam("siptrace", "trace_on", 1)
modparam("siptrace", "trace_mode", 1)
request_route {{
    $du = "sip:127.0.0.1:{UAS}";
    t_relay();
}}
"#
    )
}

/// Stops (SIGINT, then kill) and reaps a child we started.
struct Reap(Child);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.0.id().to_string()])
            .status();
        for _ in 0..40 {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sorted(mut legs: Vec<Leg>) -> Vec<Leg> {
    legs.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    legs
}

#[test]
fn kamailio_siptrace_hep_gives_the_legs_of_a_pcap_of_the_same_calls() {
    let modules = "/usr/lib/x86_64-linux-gnu/kamailio/modules/";
    if !(have("kamailio") && have("sipp") && have("tcpdump") && Path::new(modules).is_dir()) {
        eprintln!("kamailio, sipp or tcpdump not installed: skipped");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("calls.pcap");
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "lo", "-U", "-n", "-w"])
        .arg(&pcap)
        // Not the HEP packets Kamailio sends from the same socket: sipmeter would read
        // those too (HEP in a capture), and each message would count twice.
        .arg(format!("udp port {PROXY} and not port {HEP}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on lo" once capturing; without root it fails at once.
    std::thread::sleep(Duration::from_millis(1500));
    if let Ok(Some(st)) = tcpdump.try_wait() {
        eprintln!("tcpdump cannot capture on lo ({st}): skipped");
        return;
    }
    let tcpdump = Reap(tcpdump);

    let mut cfg = HepListenConfig::new(format!("127.0.0.1:{HEP}").parse().unwrap());
    cfg.poll = Duration::from_millis(50);
    let source = HepSource::open(&cfg).unwrap();

    let cfg_path = dir.path().join("kamailio.cfg");
    std::fs::write(&cfg_path, kamailio_cfg(modules)).unwrap();
    let kamailio = Reap(
        Command::new("kamailio")
            .arg("-f")
            .arg(&cfg_path)
            .args(["-DD", "-E", "-Y"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(800));

    let stop = Arc::new(AtomicBool::new(false));
    let calls = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let sipp = |args: &[&str]| {
                Command::new("sipp")
                    .args(args)
                    .args(["-i", "127.0.0.1", "-nostdin", "-timeout", "20s"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap()
            };
            let mut uas = sipp(&["-sn", "uas", "-p", &UAS.to_string(), "-m", "3"]);
            std::thread::sleep(Duration::from_millis(300));
            let target = format!("127.0.0.1:{PROXY}");
            let mut uac = sipp(&[
                "-sn",
                "uac",
                &target,
                "-p",
                &UAC.to_string(),
                "-m",
                "3",
                "-d",
                "300",
                "-cid_str",
                "kam-%u@sipmeter.test",
            ]);
            let ok = uac.wait().unwrap().success() && uas.wait().unwrap().success();
            std::thread::sleep(Duration::from_millis(1000));
            stop.store(true, Ordering::SeqCst);
            ok
        })
    };
    let mut pipeline = Pipeline::new(PipelineConfig::default());
    let mut hep_legs = Vec::new();
    pipeline.run_hep(&source, &stop, &mut |mut l| hep_legs.append(&mut l));
    assert!(
        calls.join().unwrap(),
        "the SIPp calls through Kamailio succeeded"
    );
    hep_legs.extend(pipeline.finish());
    let hep_totals = pipeline.totals().clone();
    drop(kamailio);
    drop(tcpdump);

    let mut p = Pipeline::new(PipelineConfig::default());
    let mut pcap_legs = Vec::new();
    let rep = p.read_file(&pcap, &mut |mut l| pcap_legs.append(&mut l), &mut |_| {});
    assert!(rep.error.is_none(), "{:?}", rep.error);
    pcap_legs.extend(p.finish());

    let (hep_legs, pcap_legs) = (sorted(hep_legs), sorted(pcap_legs));
    assert_eq!(hep_legs.len(), 3, "{hep_totals:?}\n{hep_legs:#?}");
    assert_eq!(pcap_legs.len(), 3, "{pcap_legs:#?}");
    assert_eq!(hep_totals.capture.hep_packets, hep_totals.sip_messages);
    for (h, c) in hep_legs.iter().zip(&pcap_legs) {
        let close = |a: i64, b: i64| (a - b).abs() < 50_000;
        assert!(
            close(h.start, c.start) && close(h.end, c.end),
            "{h:#?}\n{c:#?}"
        );
        assert!(h.answer.zip(c.answer).is_some_and(|(a, b)| close(a, b)));
        // Everything but the times is the same.
        let mut h2 = h.clone();
        h2.start = c.start;
        h2.end = c.end;
        h2.answer = c.answer;
        assert_eq!(&h2, c);
    }
}
