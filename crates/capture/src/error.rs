//! Errors of the capture layer.
//!
//! Every variant names the file (as the user gave it) and, where it makes sense, the byte offset,
//! because the person reading the message usually has a multi-gigabyte capture and needs to know
//! where to look (or where to cut with `editcap`). For gzip files the offset counts decompressed
//! bytes: that is the offset in the capture that `zcat` would produce.

use std::io;

/// Why reading a capture file stopped (or never started).
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The OS refused to open or read the file, or a directory listing failed.
    #[error("{file}: {source}")]
    Io {
        file: String,
        #[source]
        source: io::Error,
    },
    /// Reading failed part-way through (typically a corrupt or truncated gzip stream).
    #[error("{file}: read error at offset {offset}: {source}")]
    ReadAt {
        file: String,
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// Zero bytes: nothing to read, which is almost always a mistake worth telling about.
    #[error("{file}: empty file")]
    Empty { file: String },
    /// The magic number is neither pcap nor pcapng.
    #[error("{file}: not a pcap or pcapng file (first bytes {first})")]
    NotCapture { file: String, first: String },
    /// The file ends inside its file header (pcap global header or first pcapng section header).
    #[error("{file}: truncated file header ({needed} bytes needed, {present} present)")]
    TruncatedHeader {
        file: String,
        needed: usize,
        present: usize,
    },
    /// The file ends inside a record header: the capture was cut while being written.
    #[error(
        "{file}: truncated record header at offset {offset} ({needed} bytes needed, {left} left)"
    )]
    TruncatedRecordHeader {
        file: String,
        offset: u64,
        needed: usize,
        left: usize,
    },
    /// The file ends inside a record's data.
    #[error(
        "{file}: truncated record at offset {offset} (header says {wanted} bytes, {left} left)"
    )]
    TruncatedRecord {
        file: String,
        offset: u64,
        wanted: u64,
        left: u64,
    },
    /// A record header that cannot be right (absurd length, inconsistent pcapng block).
    #[error("{file}: corrupt record at offset {offset}: {reason}")]
    Corrupt {
        file: String,
        offset: u64,
        reason: String,
    },
}

impl CaptureError {
    /// The file the error is about.
    pub fn file(&self) -> &str {
        match self {
            CaptureError::Io { file, .. }
            | CaptureError::ReadAt { file, .. }
            | CaptureError::Empty { file }
            | CaptureError::NotCapture { file, .. }
            | CaptureError::TruncatedHeader { file, .. }
            | CaptureError::TruncatedRecordHeader { file, .. }
            | CaptureError::TruncatedRecord { file, .. }
            | CaptureError::Corrupt { file, .. } => file,
        }
    }

    /// Byte offset (in the decompressed capture) where reading stopped, when known.
    pub fn offset(&self) -> Option<u64> {
        match self {
            CaptureError::ReadAt { offset, .. }
            | CaptureError::TruncatedRecordHeader { offset, .. }
            | CaptureError::TruncatedRecord { offset, .. }
            | CaptureError::Corrupt { offset, .. } => Some(*offset),
            _ => None,
        }
    }
}
