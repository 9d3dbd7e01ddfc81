//! The disk spool: every batch of closed legs is written here (and fsync'd) before it is
//! sent, and removed only once the server acknowledged it, so a server that is down, a cut
//! network or a killed sensor loses nothing.
//!
//! One file per batch, named by a sequence number, written to a temporary name, synced and
//! renamed into place: a batch is on disk whole or not at all, and a sensor killed between
//! two steps leaves only a temporary file, deleted on the next start. Sending in sequence
//! order keeps the server's view roughly in capture order. A batch acknowledged but not yet
//! deleted when the sensor dies is sent again after the restart; the server stores legs
//! idempotently (sensor, Call-ID, start), so that costs a little traffic, never a duplicate.
//!
//! The spool has a size cap. Full is an error the caller must see (reported in the
//! heartbeat, logged, and for finite inputs an exit status): legs are never dropped silently.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const SUFFIX: &str = ".batch";
const TMP_SUFFIX: &str = ".batch.tmp";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {dir}: {what}")]
    Io {
        dir: PathBuf,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "spool {dir} is full: {used} bytes waiting for the server, a batch of {batch} bytes would exceed the cap of {cap} bytes"
    )]
    Full {
        dir: PathBuf,
        used: u64,
        batch: u64,
        cap: u64,
    },
}

/// Batches waiting for the server's acknowledgement.
pub struct Spool {
    dir: PathBuf,
    cap: u64,
    /// Sequence number → size in bytes, of every batch on disk.
    batches: BTreeMap<u64, u64>,
    used: u64,
    next: u64,
}

/// How much is waiting, for heartbeats and the GUI.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    pub bytes: u64,
    pub batches: u64,
}

impl Spool {
    /// Opens (creating) the spool directory and takes over what an earlier run left in it.
    pub fn open(dir: &Path, cap: u64) -> Result<Spool, SpoolError> {
        let io = |what| {
            let dir = dir.to_path_buf();
            move |source| SpoolError::Io { dir, what, source }
        };
        fs::create_dir_all(dir).map_err(io("cannot create the directory"))?;
        let mut batches = BTreeMap::new();
        for entry in fs::read_dir(dir).map_err(io("cannot list the directory"))? {
            let entry = entry.map_err(io("cannot list the directory"))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.ends_with(TMP_SUFFIX) {
                // Killed before the rename: the legs were not acknowledged as spooled, so the
                // reader will produce them again.
                fs::remove_file(entry.path()).map_err(io("cannot remove a partial batch"))?;
                continue;
            }
            let Some(seq) = name
                .strip_suffix(SUFFIX)
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let size = entry
                .metadata()
                .map_err(io("cannot read a batch's size"))?
                .len();
            batches.insert(seq, size);
        }
        let used = batches.values().sum();
        let next = batches.keys().next_back().map_or(0, |s| s + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            cap,
            batches,
            used,
            next,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}{SUFFIX}"))
    }

    /// Whether a batch of `len` bytes fits under the cap now.
    pub fn fits(&self, len: u64) -> bool {
        self.used + len <= self.cap
    }

    /// Writes one encoded batch durably; its sequence number. [`SpoolError::Full`] when it
    /// does not fit (nothing written).
    pub fn push(&mut self, batch: &[u8]) -> Result<u64, SpoolError> {
        let len = batch.len() as u64;
        if !self.fits(len) {
            return Err(SpoolError::Full {
                dir: self.dir.clone(),
                used: self.used,
                batch: len,
                cap: self.cap,
            });
        }
        let seq = self.next;
        let path = self.path(seq);
        let tmp = path.with_extension("batch.tmp");
        let io = |what| {
            let dir = self.dir.clone();
            move |source| SpoolError::Io { dir, what, source }
        };
        let mut f = File::create(&tmp).map_err(io("cannot create a batch"))?;
        f.write_all(batch).map_err(io("cannot write a batch"))?;
        f.sync_all().map_err(io("cannot sync a batch"))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(io("cannot rename a batch into place"))?;
        // The rename is durable only once the directory is synced.
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("cannot sync the directory"))?;
        self.next += 1;
        self.used += len;
        self.batches.insert(seq, len);
        Ok(seq)
    }

    /// The oldest batch waiting, with its bytes.
    pub fn oldest(&self) -> Result<Option<(u64, Vec<u8>)>, SpoolError> {
        let Some((&seq, _)) = self.batches.iter().next() else {
            return Ok(None);
        };
        let data = fs::read(self.path(seq)).map_err(|source| SpoolError::Io {
            dir: self.dir.clone(),
            what: "cannot read a batch",
            source,
        })?;
        Ok(Some((seq, data)))
    }

    /// The server acknowledged batch `seq`: forget it.
    pub fn ack(&mut self, seq: u64) -> Result<(), SpoolError> {
        if let Some(len) = self.batches.remove(&seq) {
            self.used -= len;
            match fs::remove_file(self.path(seq)) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(SpoolError::Io {
                        dir: self.dir.clone(),
                        what: "cannot remove an acknowledged batch",
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    pub fn backlog(&self) -> Backlog {
        Backlog {
            bytes: self.used,
            batches: self.batches.len() as u64,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    pub fn cap(&self) -> u64 {
        self.cap
    }
}

/// Which input files were read to their end and spooled whole, so a restarted sensor skips
/// them. A file is recorded only after its last batch is in the spool; one the sensor was
/// killed in the middle of is read again from its start, and its legs already spooled are
/// sent twice, which the server's idempotent insert absorbs.
pub struct Progress {
    path: PathBuf,
    done: std::collections::HashSet<String>,
}

impl Progress {
    pub fn open(path: &Path) -> Result<Progress, SpoolError> {
        let done = match fs::read_to_string(path) {
            Ok(t) => t.lines().map(str::to_owned).collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Default::default(),
            Err(source) => {
                return Err(SpoolError::Io {
                    dir: path.to_path_buf(),
                    what: "cannot read the progress record",
                    source,
                });
            }
        };
        Ok(Progress {
            path: path.to_path_buf(),
            done,
        })
    }

    /// A file's identity: its absolute path and size (a file that grew is read again).
    pub fn key(file: &Path) -> String {
        let abs = fs::canonicalize(file).unwrap_or_else(|_| file.to_path_buf());
        let size = fs::metadata(file).map(|m| m.len()).unwrap_or(0);
        format!("{size}\t{}", abs.display())
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.done.contains(key)
    }

    pub fn mark_done(&mut self, key: String) -> Result<(), SpoolError> {
        let io = |what| {
            let dir = self.path.clone();
            move |source| SpoolError::Io { dir, what, source }
        };
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io("cannot open the progress record"))?;
        f.write_all(format!("{key}\n").as_bytes())
            .map_err(io("cannot write the progress record"))?;
        f.sync_all()
            .map_err(io("cannot sync the progress record"))?;
        self.done.insert(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_survive_a_reopen_until_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 1000).unwrap();
        let a = s.push(b"first").unwrap();
        let b = s.push(b"second").unwrap();
        assert_eq!(
            s.backlog(),
            Backlog {
                bytes: 11,
                batches: 2
            }
        );
        std::fs::write(dir.path().join("00000000000000000009.batch.tmp"), b"half").unwrap();
        drop(s);
        let mut s = Spool::open(dir.path(), 1000).unwrap();
        assert_eq!(
            s.backlog(),
            Backlog {
                bytes: 11,
                batches: 2
            }
        );
        assert!(!dir.path().join("00000000000000000009.batch.tmp").exists());
        assert_eq!(s.oldest().unwrap(), Some((a, b"first".to_vec())));
        s.ack(a).unwrap();
        assert_eq!(s.oldest().unwrap(), Some((b, b"second".to_vec())));
        let c = s.push(b"third").unwrap();
        assert!(c > b, "sequence numbers keep growing after a reopen");
        s.ack(b).unwrap();
        s.ack(c).unwrap();
        assert!(s.is_empty());
        assert_eq!(
            Spool::open(dir.path(), 1000).unwrap().backlog(),
            Backlog::default()
        );
    }

    #[test]
    fn a_full_spool_refuses_and_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(dir.path(), 10).unwrap();
        s.push(b"12345678").unwrap();
        let err = s.push(b"abc").unwrap_err();
        assert!(
            matches!(
                err,
                SpoolError::Full {
                    used: 8,
                    batch: 3,
                    cap: 10,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(s.backlog().batches, 1);
        let (seq, _) = s.oldest().unwrap().unwrap();
        s.ack(seq).unwrap();
        s.push(b"abc").unwrap();
    }

    #[test]
    fn progress_is_remembered_across_opens() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.pcap");
        std::fs::write(&file, b"x").unwrap();
        let rec = dir.path().join("progress");
        let mut p = Progress::open(&rec).unwrap();
        let key = Progress::key(&file);
        assert!(!p.is_done(&key));
        p.mark_done(key.clone()).unwrap();
        assert!(Progress::open(&rec).unwrap().is_done(&key));
        std::fs::write(&file, b"xy").unwrap();
        assert!(!Progress::open(&rec).unwrap().is_done(&Progress::key(&file)));
    }
}
