//! Command-line parsing.
//!
//! Hand-rolled (a dozen flags) so the generator has no dependencies and builds in seconds at the
//! start of every benchmark run. Every bad value becomes an error message naming the flag; the
//! generator never panics on input.

use std::path::PathBuf;

use crate::time::{Micros, parse_rfc3339};

pub const USAGE: &str = "\
sipmeter-gen: write a large, realistic SIP (+ RTP) capture in classic pcap format

USAGE:
    sipmeter-gen --out FILE [OPTIONS]

OPTIONS:
    --out FILE             pcap file to write (required; '-' for stdout)
    --calls N              number of calls to generate (default 1000 unless --size is given)
    --size SIZE            stop starting calls once the file reaches SIZE (e.g. 200M, 1G;
                           K/M/G are powers of 1024); calls in progress are then wound down
    --concurrency C        target number of concurrent calls (default 100)
    --duration-s S         mean talk time of answered calls in seconds (default 120)
    --rtp                  add RTP: G.711 u-law, 20 ms ptime, 172-byte RTP payloads, both ways
    --signalling-only      SIP only (the default; conflicts with --rtp)
    --failure-ratio F      share of calls not answered: 486/404/503 or CANCEL (default 0.2)
    --tcp-ratio F          share of calls signalled over TCP instead of UDP (default 0)
    --seed N               PRNG seed; same seed and options give the same bytes (default 1)
    --start TIME           RFC 3339 time of the first packet (default 2026-11-01T08:00:00Z)
    --truth FILE           also write one JSON line per call with its expected CDR times
    --quiet                no summary on stderr
    -h, --help             this text
";

#[derive(Clone, Debug, PartialEq)]
pub struct Config {
    pub out: PathBuf,
    pub calls: Option<u64>,
    pub size: Option<u64>,
    pub concurrency: u32,
    pub duration_s: f64,
    pub rtp: bool,
    pub failure_ratio: f64,
    pub tcp_ratio: f64,
    pub seed: u64,
    pub start: Micros,
    pub truth: Option<PathBuf>,
    pub quiet: bool,
}

#[derive(Debug, PartialEq)]
pub enum Command {
    Run(Config),
    Help,
}

/// Parses a size such as `1G`, `200M`, `64k`, `1GiB`, `1048576`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let digits_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("invalid size {s:?} (expected e.g. 200M or 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        "t" | "tb" | "tib" => 1 << 40,
        _ => return Err(format!("invalid size unit in {s:?} (use K, M, G or T)")),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || !(1.0..=1e15).contains(&bytes) {
        return Err(format!("size {s:?} out of range"));
    }
    Ok(bytes as u64)
}

fn parse_num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("invalid value {v:?} for {flag}"))
}

fn parse_ratio(flag: &str, v: &str) -> Result<f64, String> {
    let r: f64 = parse_num(flag, v)?;
    if !(0.0..=1.0).contains(&r) {
        return Err(format!("{flag} must be between 0 and 1, got {v}"));
    }
    Ok(r)
}

/// Parses the arguments after the program name.
pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Command, String> {
    let mut out = None;
    let mut cfg = Config {
        out: PathBuf::new(),
        calls: None,
        size: None,
        concurrency: 100,
        duration_s: 120.0,
        rtp: false,
        failure_ratio: 0.2,
        tcp_ratio: 0.0,
        seed: 1,
        start: parse_rfc3339("2026-11-01T08:00:00Z").expect("valid default"),
        truth: None,
        quiet: false,
    };
    let mut signalling_only = false;
    let mut it = args.into_iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (arg.clone(), None),
        };
        let takes_value = match flag.as_str() {
            "--rtp" | "--signalling-only" | "--quiet" | "-h" | "--help" => false,
            "--out" | "--truth" | "--calls" | "--size" | "--concurrency" | "--duration-s"
            | "--failure-ratio" | "--tcp-ratio" | "--seed" | "--start" => true,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        };
        let value = if takes_value {
            match inline {
                Some(v) => v,
                None => it.next().ok_or_else(|| format!("{flag} needs a value"))?,
            }
        } else {
            if inline.is_some() {
                return Err(format!("{flag} takes no value"));
            }
            String::new()
        };
        match flag.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "--rtp" => cfg.rtp = true,
            "--signalling-only" => signalling_only = true,
            "--quiet" => cfg.quiet = true,
            "--out" => out = Some(PathBuf::from(value)),
            "--truth" => cfg.truth = Some(PathBuf::from(value)),
            "--calls" => {
                let n: u64 = parse_num(&flag, &value)?;
                if n == 0 {
                    return Err("--calls must be at least 1".into());
                }
                cfg.calls = Some(n);
            }
            "--size" => cfg.size = Some(parse_size(&value)?),
            "--concurrency" => {
                let c: u32 = parse_num(&flag, &value)?;
                if c == 0 || c > 1_000_000 {
                    return Err(format!("--concurrency must be 1..=1000000, got {value}"));
                }
                cfg.concurrency = c;
            }
            "--duration-s" => {
                let d: f64 = parse_num(&flag, &value)?;
                if !(d.is_finite() && d > 0.0 && d <= 86_400.0) {
                    return Err(format!("--duration-s must be in (0, 86400], got {value}"));
                }
                cfg.duration_s = d;
            }
            "--failure-ratio" => cfg.failure_ratio = parse_ratio(&flag, &value)?,
            "--tcp-ratio" => cfg.tcp_ratio = parse_ratio(&flag, &value)?,
            "--seed" => cfg.seed = parse_num(&flag, &value)?,
            "--start" => cfg.start = parse_rfc3339(&value)?,
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    if cfg.rtp && signalling_only {
        return Err("--rtp and --signalling-only exclude each other".into());
    }
    cfg.out = out.ok_or("--out FILE is required (see --help)")?;
    if cfg.calls.is_none() && cfg.size.is_none() {
        cfg.calls = Some(1000);
    }
    Ok(Command::Run(cfg))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Config, String> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Command::Run(c) => Ok(c),
            Command::Help => Err("help".into()),
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert_eq!(parse_size("200M").unwrap(), 200 << 20);
        assert_eq!(parse_size("64kb").unwrap(), 64 << 10);
        assert_eq!(parse_size("1.5G").unwrap(), 3 << 29);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("1X").is_err());
        assert!(parse_size("G").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn full_command_line() {
        let c = run(&[
            "--out",
            "x.pcap",
            "--calls=50",
            "--concurrency",
            "7",
            "--duration-s",
            "2.5",
            "--rtp",
            "--seed",
            "9",
            "--failure-ratio",
            "0.3",
            "--tcp-ratio",
            "0.1",
            "--start",
            "2026-01-01T00:00:00Z",
            "--truth",
            "t.jsonl",
            "--size",
            "10M",
        ])
        .unwrap();
        assert_eq!(c.out, PathBuf::from("x.pcap"));
        assert_eq!(c.calls, Some(50));
        assert_eq!(c.concurrency, 7);
        assert_eq!(c.duration_s, 2.5);
        assert!(c.rtp);
        assert_eq!(c.seed, 9);
        assert_eq!(c.failure_ratio, 0.3);
        assert_eq!(c.tcp_ratio, 0.1);
        assert_eq!(c.truth, Some(PathBuf::from("t.jsonl")));
        assert_eq!(c.size, Some(10 << 20));
    }

    #[test]
    fn defaults_give_a_bounded_run() {
        let c = run(&["--out", "x"]).unwrap();
        assert_eq!(c.calls, Some(1000));
        assert!(!c.rtp);
        let c = run(&["--out", "x", "--size", "1M"]).unwrap();
        assert_eq!(c.calls, None);
    }

    #[test]
    fn bad_arguments_are_errors_naming_the_problem() {
        let cases: &[(&[&str], &str)] = &[
            (&[], "--out"),
            (&["--out"], "needs a value"),
            (&["--out", "x", "--calls", "abc"], "--calls"),
            (&["--out", "x", "--calls", "0"], "--calls"),
            (&["--out", "x", "--concurrency", "-1"], "--concurrency"),
            (&["--out", "x", "--duration-s", "nan"], "--duration-s"),
            (&["--out", "x", "--failure-ratio", "1.5"], "--failure-ratio"),
            (&["--out", "x", "--rtp", "--signalling-only"], "exclude"),
            (&["--out", "x", "--start", "yesterday"], "RFC 3339"),
            (&["--out", "x", "--bogus"], "unknown option"),
            (&["--out", "x", "--rtp=yes"], "takes no value"),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn help_wins() {
        assert_eq!(parse(["--help".to_string()]).unwrap(), Command::Help);
    }
}
