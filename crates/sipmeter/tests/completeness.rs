//! `sipmeter read` says what it could not read: the old `--sip-any-port` flag is still
//! accepted, `--sip-ports-only` restricts, and a capture that gives no legs gets a warning
//! naming the likely cause.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn read(args: &[&str], path: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .arg("read")
        .args(args)
        .arg(path)
        .output()
        .expect("run sipmeter")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn leg_count(out: &Output) -> usize {
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// A pcap (Ethernet, µs) of IPv4 packets `(protocol, transport header + payload)`.
fn pcap(packets: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    out.extend_from_slice(&262_144u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for (i, (proto, l4)) in packets.iter().enumerate() {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend_from_slice(&[0x45, 0]);
        f.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, *proto, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        f.extend_from_slice(l4);
        out.extend_from_slice(&(1_764_000_000u32 + i as u32).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&f);
    }
    out
}

fn udp(sport: u16, dport: u16, payload: &[u8]) -> (u8, Vec<u8>) {
    let mut u = sport.to_be_bytes().to_vec();
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    (17, u)
}

fn tcp(sport: u16, dport: u16, seq: u32, payload: &[u8]) -> (u8, Vec<u8>) {
    let mut t = sport.to_be_bytes().to_vec();
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&seq.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    (6, t)
}

#[test]
fn the_old_any_port_flag_is_accepted_and_ports_only_restricts() {
    let cap = data("basic_concurrent.pcap");
    let plain = read(&["--format", "jsonl"], &cap);
    assert!(plain.status.success(), "{}", stderr(&plain));
    let n = leg_count(&plain);
    assert!(n > 0);
    let old = read(&["--format", "jsonl", "--sip-any-port"], &cap);
    assert!(old.status.success(), "{}", stderr(&old));
    assert_eq!(old.stdout, plain.stdout);
    // Ports only, on a port the capture does not use: nothing, and the warning says why.
    let only = read(&["--sip-ports-only", "--sip-ports", "5999"], &cap);
    assert!(only.status.success());
    assert_eq!(leg_count(&only), 0);
    let err = stderr(&only);
    assert!(
        err.contains("warning: no legs")
            && err.contains("--sip-ports-only")
            && err.contains("5999"),
        "{err}"
    );
    // The same port, without --sip-ports-only: found by content.
    let hint = read(&["--sip-ports", "5999"], &cap);
    assert_eq!(leg_count(&hint), n, "{}", stderr(&hint));
    assert!(!stderr(&hint).contains("warning"));
}

#[test]
fn a_capture_without_legs_says_why() {
    let dir = tempfile::tempdir().unwrap();
    type Packets = Vec<(u8, Vec<u8>)>;
    let cases: Vec<(&str, Packets, &str)> = vec![
        (
            "rtp",
            (0..20)
                .map(|i| udp(20000, 30000, &[0x80, 0, 0, i, 0, 0, 0, 0, 0, 0, 0, 1]))
                .collect(),
            "none of its 20 packets carries SIP",
        ),
        (
            "tls",
            vec![
                tcp(
                    40000,
                    5061,
                    1,
                    &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0],
                ),
                tcp(5061, 40000, 9, &[0x17, 0x03, 0x03, 0x00, 0x02, 0xaa, 0xbb]),
            ],
            "SIP over TLS cannot be read without keys",
        ),
        (
            "options",
            vec![udp(
                5080,
                5080,
                b"OPTIONS sip:a@b SIP/2.0\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\n\
                  From: <sip:x@y>;tag=1\r\nTo: <sip:a@b>\r\nContent-Length: 0\r\n\r\n",
            )],
            "no INVITE dialog",
        ),
        (
            "gre-v1",
            vec![(47, vec![0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 0, 0, 0, 0, 0])],
            "tunnels sipmeter does not open",
        ),
    ];
    for (name, packets, expected) in cases {
        let path = dir.path().join(format!("{name}.pcap"));
        std::fs::write(&path, pcap(&packets)).unwrap();
        let out = read(&[], &path);
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains("warning: no legs") && err.contains(expected),
            "{name}: {err}"
        );
    }
}

#[test]
fn the_summary_counts_what_was_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mixed.pcap");
    std::fs::write(
        &path,
        pcap(&[
            tcp(
                40000,
                5061,
                1,
                &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 0, 0, 1, 0],
            ),
            (47, vec![0x30, 0x01, 0x88, 0x0b, 0, 4, 0, 0, 0, 0, 0, 0]),
        ]),
    )
    .unwrap();
    let err = stderr(&read(&[], &path));
    assert!(
        err.contains("not read: 1 TLS records (SIP over TLS cannot be read without keys)")
            && err.contains("1 packets in tunnels sipmeter does not open"),
        "{err}"
    );
}
