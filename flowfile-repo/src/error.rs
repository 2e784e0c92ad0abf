//! The repository's errors and damage reports.

use std::fmt;

use crate::format::FormatError;

/// Damage found in a repository file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// File name in the repository directory.
    pub file: String,
    /// Byte offset of the first bad byte range (a record or header start).
    pub offset: u64,
    /// What is wrong there.
    pub error: FormatError,
    /// Bytes from `offset` to the end of the file that were (or would be) cut.
    pub bytes_cut: u64,
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: {} ({} bytes from there to the end)",
            self.file, self.offset, self.error, self.bytes_cut
        )
    }
}

/// Errors of the repository.
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// An I/O call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file is damaged where recovery may not cut it (not the tail of the
    /// last WAL segment, or a checkpoint).
    #[error(
        "repository damaged: {0}; run `sluice repo check` to see every damaged file, \
         then start with recovery mode `skip-damaged` to cut it and keep the rest"
    )]
    Damaged(Damage),
    /// A WAL segment is missing between others.
    #[error("WAL segment {missing} is missing (found {before} and {after})")]
    MissingSegment {
        /// The missing sequence number.
        missing: u64,
        /// The segment before the gap.
        before: u64,
        /// The segment after the gap.
        after: u64,
    },
    /// Content above the disk cap: back-pressure, retry later.
    #[error(
        "content repository full: {used} bytes used of the {cap}-byte cap; \
         waiting for downstream processors to release content"
    )]
    ContentFull {
        /// Bytes in content segments now.
        used: u64,
        /// The cap.
        cap: u64,
    },
    /// Content of a claim could not be read back.
    #[error("content of claim (segment {segment}, offset {offset}, length {length}): {reason}")]
    Content {
        /// Segment.
        segment: u64,
        /// Offset.
        offset: u64,
        /// Length.
        length: u64,
        /// What is wrong.
        reason: String,
    },
    /// An earlier write or fsync failed; the repository accepts nothing more.
    #[error("repository stopped after a failed write or fsync: {0}")]
    Stopped(String),
    /// A configuration value is wrong.
    #[error("{0}")]
    Config(String),
}

impl RepoError {
    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        RepoError::Io {
            what: what.into(),
            source,
        }
    }
}
