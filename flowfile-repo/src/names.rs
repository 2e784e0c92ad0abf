//! File names in a repository directory: `wal-<seq>.log`,
//! `checkpoint-<generation>.ckpt` (and `.tmp` while written) and
//! `content-<seq>.dat`, numbers as 20 zero-padded digits so names sort.

/// File name of WAL segment `seq`.
#[must_use]
pub fn wal_file_name(seq: u64) -> String {
    format!("wal-{seq:020}.log")
}

/// File name of checkpoint generation `generation`.
#[must_use]
pub fn checkpoint_file_name(generation: u64) -> String {
    format!("checkpoint-{generation:020}.ckpt")
}

/// File name of checkpoint `generation` while it is being written.
#[must_use]
pub fn checkpoint_temp_name(generation: u64) -> String {
    format!("checkpoint-{generation:020}.tmp")
}

/// File name of content segment `seq`.
#[must_use]
pub fn content_file_name(seq: u64) -> String {
    format!("content-{seq:020}.dat")
}

/// A repository file, by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepoFile {
    /// WAL segment.
    Wal(u64),
    /// Checkpoint.
    Checkpoint(u64),
    /// Checkpoint being written.
    CheckpointTemp(u64),
    /// Content segment.
    Content(u64),
}

/// What `name` is, if it is a repository file.
#[must_use]
pub fn parse_file_name(name: &str) -> Option<RepoFile> {
    fn seq(name: &str, prefix: &str, suffix: &str) -> Option<u64> {
        let digits = name.strip_prefix(prefix)?.strip_suffix(suffix)?;
        if digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()) {
            digits.parse().ok()
        } else {
            None
        }
    }
    seq(name, "wal-", ".log")
        .map(RepoFile::Wal)
        .or_else(|| seq(name, "checkpoint-", ".ckpt").map(RepoFile::Checkpoint))
        .or_else(|| seq(name, "checkpoint-", ".tmp").map(RepoFile::CheckpointTemp))
        .or_else(|| seq(name, "content-", ".dat").map(RepoFile::Content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(parse_file_name(&wal_file_name(7)), Some(RepoFile::Wal(7)));
        assert_eq!(
            parse_file_name(&checkpoint_file_name(3)),
            Some(RepoFile::Checkpoint(3))
        );
        assert_eq!(
            parse_file_name(&checkpoint_temp_name(3)),
            Some(RepoFile::CheckpointTemp(3))
        );
        assert_eq!(
            parse_file_name(&content_file_name(u64::MAX)),
            Some(RepoFile::Content(u64::MAX))
        );
        assert_eq!(parse_file_name("wal-1.log"), None);
        assert_eq!(parse_file_name("LOCK"), None);
    }
}
