//! `sluice repo check DIR` and `sluice repo dump DIR`: look at a FlowFile
//! repository without running its flow (and without changing it: a torn
//! tail is reported here and cut only by the next `sluice run`).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, Result};
use sluice_flowfile_repo::DirStorage;

fn storage(dir: &Path) -> Result<DirStorage> {
    DirStorage::open_read_only(dir).with_context(|| format!("opening repository {}", dir.display()))
}

/// Verifies every WAL segment, the checkpoint and every live content claim;
/// prints what it found, damage with file and byte offset. Returns whether
/// the repository is clean.
///
/// # Errors
/// The directory or a file cannot be read.
pub fn check(dir: &Path) -> Result<bool> {
    let report = sluice_flowfile_repo::check(
        &(Arc::new(storage(dir)?) as Arc<dyn sluice_flowfile_repo::Storage>),
    )?;
    println!("{report}");
    Ok(report.is_clean())
}

/// Writes the live FlowFiles per connection, with their attributes, to `out`.
///
/// # Errors
/// The directory or a file cannot be read, or `out` cannot be written.
pub fn dump(dir: &Path, out: &mut dyn Write) -> Result<()> {
    let dump = sluice_flowfile_repo::dump(&storage(dir)?)?;
    writeln!(out, "{dump}")?;
    Ok(())
}
