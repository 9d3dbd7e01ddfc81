//! The `sipmeter` command line end to end: bad input, partial damage, directories, gzip,
//! idempotent import and the `--config-file --readpcapdir` form.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/data")
        .join(name)
}

fn sipmeter(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sipmeter"))
        .args(args)
        .output()
        .expect("run sipmeter")
}

fn os<S: AsRef<std::ffi::OsStr> + ?Sized>(s: &S) -> &std::ffi::OsStr {
    s.as_ref()
}

fn legs(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn empty_and_non_capture_files_fail_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    let text = dir.path().join("notes.pcap");
    std::fs::write(&text, b"Hello, this is not a capture at all\n").unwrap();
    for (file, word) in [(&empty, "empty.pcap"), (&text, "notes.pcap")] {
        let out = sipmeter(&[os("read"), file.as_os_str()]);
        assert!(!out.status.success(), "{word} must fail");
        assert!(stderr(&out).contains(word), "{}", stderr(&out));
        assert!(out.stdout.is_empty());
    }
    let missing = sipmeter(&[os("read"), os("/nonexistent/x.pcap")]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("/nonexistent/x.pcap"),
        "{}",
        stderr(&missing)
    );
}

#[test]
fn one_bad_file_does_not_lose_the_good_ones() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.pcap");
    std::fs::write(&bad, b"garbage garbage garbage").unwrap();
    let good = data("basic_concurrent.pcap");
    let alone = legs(&sipmeter(&[os("read"), good.as_os_str()]));
    let out = sipmeter(&[os("read"), bad.as_os_str(), good.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("bad.pcap"), "{}", stderr(&out));
    assert_eq!(legs(&out), alone);
    assert!(!alone.is_empty());
}

#[test]
fn a_truncated_capture_keeps_every_leg_completed_before_the_cut() {
    let full_path = data("basic_concurrent.pcap");
    let full = legs(&sipmeter(&[os("read"), full_path.as_os_str()]));
    let bytes = std::fs::read(&full_path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    // Cut in the middle of a record: the file ends mid-packet.
    std::fs::write(&cut, &bytes[..bytes.len() * 7 / 10 + 3]).unwrap();
    let out = sipmeter(&[os("read"), cut.as_os_str()]);
    assert!(out.status.success(), "something was read: exit 0");
    let err = stderr(&out);
    assert!(err.contains("cut.pcap") && err.contains("offset"), "{err}");
    assert_kept_before_damage(&legs(&out), &full);
}

/// Legs read from a damaged copy: every one is a leg of the full read (same Call-ID and
/// start), and those whose dialog had fully ended before the damage are identical to it.
/// (A leg cut while waiting for its 200 to BYE or its 487 honestly says less than the full
/// read, so only confirmed endings are compared field by field.)
fn assert_kept_before_damage(partial: &[Value], full: &[Value]) {
    assert!(!partial.is_empty());
    let mut complete = 0;
    for leg in partial {
        let twin = full
            .iter()
            .find(|f| f["call_id"] == leg["call_id"] && f["start"] == leg["start"]);
        assert!(twin.is_some(), "not in the full read: {leg}");
        if leg["end_reason"] == "bye_confirmed" {
            complete += 1;
            assert_eq!(
                Some(leg),
                twin,
                "a leg completed before the damage is kept intact"
            );
        }
    }
    assert!(complete > 0, "some legs completed before the damage");
}

#[test]
fn directories_and_gzip_give_the_same_legs_as_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let src = std::fs::read(data("basic_concurrent.pcap")).unwrap();
    let gz = dir.path().join("basic.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(
        std::fs::File::create(&gz).unwrap(),
        flate2::Compression::fast(),
    );
    enc.write_all(&src).unwrap();
    enc.finish().unwrap();
    std::fs::write(dir.path().join("README.txt"), b"not a capture, not listed").unwrap();

    let plain = legs(&sipmeter(&[
        os("read"),
        data("basic_concurrent.pcap").as_os_str(),
    ]));
    let from_dir = sipmeter(&[os("read"), dir.path().as_os_str()]);
    assert!(from_dir.status.success(), "{}", stderr(&from_dir));
    assert_eq!(legs(&from_dir), plain);
    assert!(
        stderr(&from_dir).contains("1 files"),
        "{}",
        stderr(&from_dir)
    );
}

#[test]
fn csv_and_table_formats_have_one_row_per_leg() {
    let pcap = data("basic_concurrent.pcap");
    let n = legs(&sipmeter(&[os("read"), pcap.as_os_str()])).len();
    for format in ["csv", "table"] {
        let out = sipmeter(&[os("read"), os("--format"), os(format), pcap.as_os_str()]);
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert_eq!(
            text.lines().count(),
            n + 1,
            "{format}: header + one line per leg"
        );
    }
}

#[test]
fn sensor_id_is_written_into_the_legs() {
    let pcap = data("basic_concurrent.pcap");
    let out = sipmeter(&[os("read"), os("--sensor-id"), os("7"), pcap.as_os_str()]);
    assert!(legs(&out).iter().all(|l| l["sensor_id"] == 7));
}

fn count_legs(data_dir: &Path) -> u64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = store::Store::open_sqlite(data_dir).await.unwrap();
        store.count_legs().await.unwrap()
    })
}

#[test]
fn import_is_idempotent_and_keeps_sensors_apart() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("db");
    let pcap = data("basic_concurrent.pcap");
    let n = legs(&sipmeter(&[os("read"), pcap.as_os_str()])).len() as u64;
    let import = |sensor: &str| {
        let out = sipmeter(&[
            os("import"),
            os("--data-dir"),
            data_dir.as_os_str(),
            os("--sensor-id"),
            os(sensor),
            pcap.as_os_str(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    assert!(import("1").contains(&format!("stored {n} new legs")));
    let again = import("1");
    assert!(again.contains("stored 0 new legs"), "{again}");
    assert!(again.contains(&format!("({n} already present)")), "{again}");
    assert_eq!(count_legs(&data_dir), n);
    import("2");
    assert_eq!(
        count_legs(&data_dir),
        2 * n,
        "another sensor's legs are its own"
    );
}

#[test]
fn config_file_and_readpcapdir_import_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let pcaps = dir.path().join("spool");
    std::fs::create_dir(&pcaps).unwrap();
    std::fs::copy(data("basic_concurrent.pcap"), pcaps.join("a.pcap")).unwrap();
    let data_dir = dir.path().join("data");
    let config = dir.path().join("sipmeter.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = {:?}\nsensor_id = 3\n",
            data_dir.display().to_string()
        ),
    )
    .unwrap();
    let out = sipmeter(&[
        os("--config-file"),
        config.as_os_str(),
        os("--readpcapdir"),
        pcaps.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let n = legs(&sipmeter(&[os("read"), pcaps.as_os_str()])).len() as u64;
    assert!(n > 0);
    assert_eq!(count_legs(&data_dir), n);

    std::fs::write(&config, "sip_prots = \"5060\"\n").unwrap();
    let out = sipmeter(&[
        os("--config-file"),
        config.as_os_str(),
        os("--readpcapdir"),
        pcaps.as_os_str(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("sip_prots"), "{}", stderr(&out));
}

/// Offsets of the record headers of a little-endian microsecond pcap.
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    assert_eq!(
        &bytes[..4],
        &[0xd4, 0xc3, 0xb2, 0xa1],
        "test capture is LE pcap"
    );
    let mut offsets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        offsets.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + caplen;
    }
    offsets
}

#[test]
fn a_corrupt_record_in_the_middle_is_named_with_its_offset() {
    let full_path = data("basic_concurrent.pcap");
    let full = legs(&sipmeter(&[os("read"), full_path.as_os_str()]));
    let mut bytes = std::fs::read(&full_path).unwrap();
    let offsets = record_offsets(&bytes);
    let bad = offsets[offsets.len() * 3 / 4];
    // An absurd captured length: no real record is 2 GB.
    bytes[bad + 8..bad + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("corrupt.pcap");
    std::fs::write(&path, &bytes).unwrap();
    let out = sipmeter(&[os("read"), path.as_os_str()]);
    assert!(out.status.success(), "three quarters were readable");
    let err = stderr(&out);
    assert!(err.contains("corrupt.pcap"), "{err}");
    assert!(err.contains(&bad.to_string()), "offset {bad} named: {err}");
    assert_kept_before_damage(&legs(&out), &full);
}
