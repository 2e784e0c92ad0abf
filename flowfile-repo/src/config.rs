//! Durability choices and tunables of a repository.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::error::RepoError;

/// When the WAL is fsynced, and so when a commit counts as durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// Every group of concurrent commits is written and fsynced once before
    /// any of them returns. Survives power loss. The default.
    #[default]
    Always,
    /// Commits are written at once but fsynced at most once per interval; a
    /// commit returns after the fsync that covers it. Survives power loss,
    /// trades latency for fewer fsyncs.
    Interval(Duration),
    /// Commits return once written to the OS, never fsynced (except at
    /// segment ends and checkpoints). Survives a process crash, not power loss.
    Never,
}

impl fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::Never => f.write_str("never"),
            FsyncPolicy::Interval(d) => {
                write!(f, "interval:{}", humantime::format_duration(*d))
            }
        }
    }
}

impl FromStr for FsyncPolicy {
    type Err = RepoError;

    /// `always`, `never`, `interval:10ms` (also `interval(10ms)`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        match t {
            "always" => return Ok(FsyncPolicy::Always),
            "never" => return Ok(FsyncPolicy::Never),
            _ => {}
        }
        let inner = t.strip_prefix("interval:").or_else(|| {
            t.strip_prefix("interval(")
                .and_then(|r| r.strip_suffix(')'))
        });
        if let Some(d) = inner {
            let d = humantime::parse_duration(d.trim())
                .map_err(|e| RepoError::Config(format!("fsync policy `{s}`: bad interval: {e}")))?;
            if d.is_zero() {
                return Ok(FsyncPolicy::Always);
            }
            return Ok(FsyncPolicy::Interval(d));
        }
        Err(RepoError::Config(format!(
            "unknown fsync policy `{s}`: use always, interval:10ms or never"
        )))
    }
}

/// What recovery does with damage that is not a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RecoveryMode {
    /// Cut and report a torn or corrupt tail of the newest WAL segment (what
    /// a crash leaves); refuse to open on damage anywhere else. The default.
    #[default]
    TolerateTail,
    /// Cut and report damage anywhere, keep every record that is intact.
    /// For a person who has read `sluice repo check` and accepts the loss.
    SkipDamaged,
}

impl FromStr for RecoveryMode {
    type Err = RepoError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "tolerate-tail" => Ok(RecoveryMode::TolerateTail),
            "skip-damaged" => Ok(RecoveryMode::SkipDamaged),
            _ => Err(RepoError::Config(format!(
                "unknown recovery mode `{s}`: use tolerate-tail or skip-damaged"
            ))),
        }
    }
}

/// What happens when a WAL write or fsync fails. Either way the repository
/// never retries and carries on: after a failed fsync the kernel may have
/// dropped the dirty pages, so nothing written since can be trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FatalPolicy {
    /// Log the error and abort the process (the default).
    #[default]
    Abort,
    /// Fail this and every later commit (tests, embedding).
    Stop,
}

/// Settings of a repository.
#[derive(Clone, Debug)]
pub struct RepoConfig {
    /// When commits are fsynced.
    pub fsync: FsyncPolicy,
    /// What recovery may cut.
    pub recovery: RecoveryMode,
    /// What a failed write or fsync does.
    pub on_fatal: FatalPolicy,
    /// A WAL segment is closed once it reaches this size.
    pub segment_bytes: u64,
    /// Content up to this size is stored in the WAL record itself.
    pub inline_limit: usize,
    /// A content segment is closed once it reaches this size.
    pub content_segment_bytes: u64,
    /// Content repository disk cap; above it commits with new content fail
    /// with [`RepoError::ContentFull`] and sources are held back.
    pub content_max_bytes: u64,
    /// A checkpoint is taken at least this often (while anything was written).
    pub checkpoint_interval: Duration,
    /// ... and whenever this many WAL bytes were written since the last one.
    pub checkpoint_wal_bytes: u64,
}

impl Default for RepoConfig {
    fn default() -> Self {
        Self {
            fsync: FsyncPolicy::Always,
            recovery: RecoveryMode::TolerateTail,
            on_fatal: FatalPolicy::Abort,
            segment_bytes: 64 << 20,
            inline_limit: 4096,
            content_segment_bytes: 64 << 20,
            content_max_bytes: 10_000_000_000,
            checkpoint_interval: Duration::from_mins(1),
            checkpoint_wal_bytes: 256 << 20,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsync_policies_parse_and_print() {
        assert_eq!(
            "always".parse::<FsyncPolicy>().unwrap(),
            FsyncPolicy::Always
        );
        assert_eq!("never".parse::<FsyncPolicy>().unwrap(), FsyncPolicy::Never);
        let ten = FsyncPolicy::Interval(Duration::from_millis(10));
        assert_eq!("interval:10ms".parse::<FsyncPolicy>().unwrap(), ten);
        assert_eq!("interval(10ms)".parse::<FsyncPolicy>().unwrap(), ten);
        assert_eq!(ten.to_string(), "interval:10ms");
        let err = "sometimes".parse::<FsyncPolicy>().unwrap_err().to_string();
        assert!(err.contains("always, interval:10ms or never"), "{err}");
        assert!("interval:soon".parse::<FsyncPolicy>().is_err());
    }
}
