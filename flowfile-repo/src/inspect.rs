//! Read-only inspection for `sluice repo check` and `sluice repo dump`: the
//! recovery pass without cutting or deleting anything, plus a read of every
//! live content claim.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::Arc;

use crate::config::RecoveryMode;
use crate::content::ContentRepo;
use crate::error::RepoError;
use crate::format::{ContentRef, StoredFlowFile};
use crate::names::{RepoFile, parse_file_name};
use crate::recovery::{self, LostContent, RecoveryReport};
use crate::storage::Storage;

/// What `check` found.
#[derive(Debug)]
pub struct CheckReport {
    /// Where the repository is.
    pub location: String,
    /// Repository files with their sizes.
    pub files: Vec<(String, u64)>,
    /// The recovery pass (damage found, live count...).
    pub recovery: RecoveryReport,
    /// Live claims whose content could not be read back intact.
    pub bad_content: Vec<LostContent>,
    /// Live claims read and verified.
    pub claims_checked: u64,
}

impl CheckReport {
    /// Whether every file and every live claim is intact.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.recovery.is_clean() && self.bad_content.is_empty()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = &self.recovery;
        writeln!(f, "repository {}", self.location)?;
        for (name, size) in &self.files {
            writeln!(f, "  {name}  {size} bytes")?;
        }
        match r.checkpoint {
            Some(g) => writeln!(
                f,
                "checkpoint generation {g}: {} FlowFiles",
                r.checkpoint_flowfiles
            )?,
            None => writeln!(f, "no checkpoint")?,
        }
        writeln!(
            f,
            "WAL: {} segments, {} records, {} bytes read",
            r.wal_segments.len(),
            r.records,
            r.bytes_read
        )?;
        writeln!(
            f,
            "live FlowFiles: {}; content claims verified: {}",
            r.live, self.claims_checked
        )?;
        for d in &r.damage {
            let what = if d.tail {
                "torn tail (cut at the next start)"
            } else {
                "DAMAGE (start refuses unless recovery mode is skip-damaged)"
            };
            writeln!(f, "{what}: {}", d.damage)?;
        }
        for l in r.lost_content.iter().chain(&self.bad_content) {
            writeln!(
                f,
                "CONTENT LOST: FlowFile {} in `{}`: claim (segment {}, offset {}, length {}): {}",
                l.id, l.connection, l.claim.segment, l.claim.offset, l.claim.length, l.reason
            )?;
        }
        if self.is_clean() {
            write!(f, "clean")
        } else {
            write!(f, "NOT clean")
        }
    }
}

fn repo_files(storage: &dyn Storage) -> Result<Vec<(String, u64)>, RepoError> {
    let names = storage
        .list()
        .map_err(|e| RepoError::io(format!("listing {}", storage.describe()), e))?;
    let mut out = Vec::new();
    for n in names {
        if parse_file_name(&n).is_some() {
            let size = storage
                .len(&n)
                .map_err(|e| RepoError::io(format!("examining {n}"), e))?;
            out.push((n, size));
        }
    }
    Ok(out)
}

/// Verifies every file and every live content claim without changing
/// anything.
///
/// # Errors
/// The directory or a file cannot be read (damage is reported, not an error).
pub fn check(storage: &Arc<dyn Storage>) -> Result<CheckReport, RepoError> {
    let files = repo_files(storage.as_ref())?;
    let replayed = recovery::replay(storage.as_ref(), RecoveryMode::SkipDamaged, false)?;
    let content_segments: BTreeMap<u64, u64> = files
        .iter()
        .filter_map(|(n, size)| match parse_file_name(n) {
            Some(RepoFile::Content(s)) => Some((s, *size)),
            _ => None,
        })
        .collect();
    let content = ContentRepo::new(
        storage.clone(),
        u64::MAX,
        u64::MAX,
        &content_segments,
        u64::MAX,
    );
    let lost: Vec<u64> = replayed.report.lost_content.iter().map(|l| l.id).collect();
    let mut bad_content = Vec::new();
    let mut claims_checked = 0;
    let mut live: Vec<_> = replayed.live.values().collect();
    live.sort_by_key(|(order, _, _)| *order);
    for (_, _, ff) in live {
        let Some(claim) = ff.claim() else { continue };
        if lost.contains(&ff.id) {
            continue;
        }
        claims_checked += 1;
        if let Err(e) = content.read(&claim) {
            bad_content.push(LostContent {
                id: ff.id,
                connection: ff.connection.clone(),
                claim,
                reason: e.to_string(),
            });
        }
    }
    Ok(CheckReport {
        location: storage.describe(),
        files,
        recovery: replayed.report,
        bad_content,
        claims_checked,
    })
}

/// The live FlowFiles per connection, as recovery would return them.
#[derive(Debug)]
pub struct Dump {
    /// Connection id -> FlowFiles in queue order.
    pub connections: BTreeMap<String, Vec<StoredFlowFile>>,
    /// The recovery pass.
    pub recovery: RecoveryReport,
}

/// Reads the live FlowFiles without changing anything.
///
/// # Errors
/// The directory or a file cannot be read.
pub fn dump(storage: &dyn Storage) -> Result<Dump, RepoError> {
    let replayed = recovery::replay(storage, RecoveryMode::SkipDamaged, false)?;
    let mut live: Vec<_> = replayed.live.into_values().collect();
    live.sort_by_key(|(order, _, _)| *order);
    let mut connections: BTreeMap<String, Vec<StoredFlowFile>> = BTreeMap::new();
    for (_, _, ff) in live {
        connections
            .entry(ff.connection.clone())
            .or_default()
            .push(ff);
    }
    Ok(Dump {
        connections,
        recovery: replayed.report,
    })
}

impl fmt::Display for Dump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.recovery.damage {
            writeln!(f, "# damage: {}", d.damage)?;
        }
        if self.connections.is_empty() {
            return write!(f, "no live FlowFiles");
        }
        for (conn, ffs) in &self.connections {
            writeln!(f, "connection {conn}: {} FlowFiles", ffs.len())?;
            for ff in ffs {
                let mut line = format!("  FlowFile {} ({} bytes", ff.id, ff.content_len());
                match &ff.content {
                    ContentRef::Inline(_) => line.push_str(", inline"),
                    ContentRef::Claim(c) => {
                        let _ = write!(line, ", claim segment {} offset {}", c.segment, c.offset);
                    }
                }
                let _ = write!(
                    line,
                    ", entered {}, lineage from {}",
                    time(ff.entry_date),
                    time(ff.lineage_start)
                );
                if ff.penalized_until > 0 {
                    let _ = write!(line, ", penalized until {}", time(ff.penalized_until));
                }
                line.push(')');
                writeln!(f, "{line}")?;
                for (k, v) in &ff.attributes {
                    writeln!(f, "    {k} = {v}")?;
                }
            }
        }
        Ok(())
    }
}

fn time(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}
