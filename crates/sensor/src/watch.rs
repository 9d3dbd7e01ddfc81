//! Which captures of a watched directory are complete, so they can be read.
//!
//! A rotating capture tool (tcpdump -G, dumpcap -b) writes the newest file while older ones are
//! finished. A file still changes size or modification time while it is written; it is taken
//! once both have stayed the same for the settle time. Used by the server's embedded sensor and
//! by `sipmeter sensor --pcap-dir`, each with its own record of what it has read.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use capture::CaptureError;

/// The captures of one directory, tracked from poll to poll.
pub struct SettledCaptures {
    dir: PathBuf,
    settle: Duration,
    seen: HashMap<PathBuf, Seen>,
}

/// What a file looked like when it was first seen as it is now.
struct Seen {
    size: u64,
    modified: Option<SystemTime>,
    since: Instant,
}

impl SettledCaptures {
    /// `settle` zero takes every file at once (a directory read once, nothing being written).
    pub fn new(dir: &Path, settle: Duration) -> SettledCaptures {
        SettledCaptures {
            dir: dir.to_path_buf(),
            settle,
            seen: HashMap::new(),
        }
    }

    /// The captures in the directory now that have settled by `now`, in the directory's
    /// capture order, each with its size. `read_already(path, size)` leaves out those read
    /// before. A file returned here is forgotten: if it is not recorded as read, it settles
    /// again after another settle time.
    pub fn poll(
        &mut self,
        now: Instant,
        mut read_already: impl FnMut(&Path, u64) -> bool,
    ) -> Result<Vec<(PathBuf, u64)>, CaptureError> {
        let files = capture::list_captures(&self.dir)?;
        // A file that disappeared is forgotten, so the map does not grow with rotation.
        self.seen.retain(|p, _| files.contains(p));
        let mut settled = Vec::new();
        for path in files {
            // Gone since the listing: the next poll will not list it.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            let size = meta.len();
            if read_already(&path, size) {
                self.seen.remove(&path);
                continue;
            }
            let modified = meta.modified().ok();
            let stable = self.settle.is_zero()
                || match self.seen.get(&path) {
                    Some(s) if s.size == size && s.modified == modified => {
                        now.duration_since(s.since) >= self.settle
                    }
                    _ => {
                        let since = now;
                        self.seen.insert(
                            path.clone(),
                            Seen {
                                size,
                                modified,
                                since,
                            },
                        );
                        false
                    }
                };
            if stable {
                self.seen.remove(&path);
                settled.push((path, size));
            }
        }
        Ok(settled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(v: &[(PathBuf, u64)]) -> Vec<String> {
        v.iter()
            .map(|(p, size)| format!("{}:{size}", p.file_name().unwrap().to_string_lossy()))
            .collect()
    }

    #[test]
    fn a_file_is_taken_once_it_stopped_changing_for_the_settle_time() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.pcap");
        std::fs::write(&a, b"1234").unwrap();
        let mut w = SettledCaptures::new(dir.path(), Duration::from_secs(2));
        let t0 = Instant::now();
        assert!(w.poll(t0, |_, _| false).unwrap().is_empty(), "first sight");
        assert!(
            w.poll(t0 + Duration::from_secs(1), |_, _| false)
                .unwrap()
                .is_empty()
        );
        // It grew: the settle time starts again.
        std::fs::write(&a, b"123456").unwrap();
        assert!(
            w.poll(t0 + Duration::from_secs(2), |_, _| false)
                .unwrap()
                .is_empty()
        );
        assert!(
            w.poll(t0 + Duration::from_secs(3), |_, _| false)
                .unwrap()
                .is_empty()
        );
        let ready = w.poll(t0 + Duration::from_secs(4), |_, _| false).unwrap();
        assert_eq!(names(&ready), ["a.pcap:6"]);
    }

    #[test]
    fn files_read_already_are_left_out_and_zero_settle_takes_all_at_once() {
        let dir = tempfile::tempdir().unwrap();
        for (name, len) in [("b.pcap", 2), ("a.pcap", 1), ("notes.txt", 3)] {
            std::fs::write(dir.path().join(name), vec![0u8; len]).unwrap();
        }
        let mut w = SettledCaptures::new(dir.path(), Duration::ZERO);
        let all = w.poll(Instant::now(), |_, _| false).unwrap();
        let mut listed = names(&all);
        listed.sort();
        assert_eq!(listed, ["a.pcap:1", "b.pcap:2"]);
        let rest = w
            .poll(Instant::now(), |p, size| p.ends_with("a.pcap") && size == 1)
            .unwrap();
        assert_eq!(names(&rest), ["b.pcap:2"]);
    }

    #[test]
    fn a_missing_directory_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("captures");
        let mut w = SettledCaptures::new(&gone, Duration::ZERO);
        let e = w.poll(Instant::now(), |_, _| false).unwrap_err();
        assert!(e.to_string().contains("captures"), "{e}");
    }
}
