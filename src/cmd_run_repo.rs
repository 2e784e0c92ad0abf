//! The repository of `sluice run`: opened (and recovered) before the flow
//! starts, its findings logged. The repository checkpoints on its own
//! thread and closes (final fsync) when the engine lets go of the journal.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, Result};
use sluice_flowfile_repo::{FsyncPolicy, RecoveryMode, RepoConfig};
use sluice_runtime::{FlowFile, Journal};

/// Recovered FlowFiles with the connection each was in.
pub type Recovered = Vec<(String, FlowFile)>;

/// Where a flow's repository lives unless `--repository` says otherwise.
#[must_use]
pub fn default_dir(flow_name: &str) -> PathBuf {
    let safe: String = flow_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    Path::new("sluice-repo").join(safe)
}

/// Opens the repository in `dir` for a run: recovers the FlowFiles the last
/// run left (with the connection each was in) and logs what recovery found.
///
/// # Errors
/// The repository is damaged beyond what `recovery` may cut, in use by
/// another process, or unreadable.
pub fn open_for_run(
    dir: &Path,
    fsync: FsyncPolicy,
    recovery: RecoveryMode,
) -> Result<(Arc<dyn Journal>, Recovered)> {
    let config = RepoConfig {
        fsync,
        recovery,
        ..RepoConfig::default()
    };
    let opened = sluice_runtime::durable::open(dir, config)
        .with_context(|| format!("opening the repository {}", dir.display()))?;
    let r = &opened.report;
    for d in &r.damage {
        if d.tail {
            tracing::warn!(damage = %d.damage, "cut the torn tail a crash left in the WAL");
        } else {
            tracing::error!(damage = %d.damage, "skipped damaged WAL records (recovery mode skip-damaged)");
        }
    }
    for l in &r.lost_content {
        tracing::error!(flowfile = l.id, connection = %l.connection, reason = %l.reason, "recovered FlowFile has lost its content");
    }
    tracing::info!(
        repository = %dir.display(),
        fsync = %fsync,
        recovered = r.live,
        checkpoint = ?r.checkpoint,
        wal_segments = r.wal_segments.len(),
        bytes_read = r.bytes_read,
        took_ms = r.elapsed.as_millis(),
        "repository opened"
    );
    Ok((opened.journal, opened.recovered))
}
