//! Checkpoints: a snapshot of the live FlowFiles, after which the WAL
//! segments it covers are deleted, so recovery reads one checkpoint and the
//! few segments written since, however long the process ran.
//!
//! Generation `G` covers every record in WAL segments below `G`. It is
//! written to `checkpoint-G.tmp`, fsynced, renamed to `checkpoint-G.ckpt` and
//! the directory fsynced; only then are older segments and checkpoints
//! deleted. A crash at any point leaves either the old checkpoint and all its
//! segments, or the new checkpoint (and perhaps segments it covers, which
//! recovery deletes): nothing is lost.

use std::collections::HashMap;
use std::time::Duration;

use crate::error::RepoError;
use crate::format::{
    FileKind, HEADER_LEN, Op, Transaction, decode_payload, file_header, read_record,
};
use crate::live::{FileRef, Loc};
use crate::names::{RepoFile, checkpoint_file_name, checkpoint_temp_name, parse_file_name};
use crate::storage::Storage;

/// Records of a checkpoint hold about this many payload bytes each.
const BATCH_BYTES: usize = 1 << 20;

/// What a checkpoint did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckpointStats {
    /// Its generation (first WAL segment it does not cover).
    pub generation: u64,
    /// FlowFiles written.
    pub flowfiles: u64,
    /// Size of the checkpoint file.
    pub bytes: u64,
    /// Files deleted after it (covered segments, older checkpoints).
    pub removed: Vec<String>,
    /// How long it took.
    pub elapsed: Duration,
}

/// Where each FlowFile was and where it is now: (id, old, new).
pub(crate) type Moves = Vec<(u64, Loc, Loc)>;

struct RecordCache {
    at: Option<Loc>,
    ops: HashMap<u64, crate::format::StoredFlowFile>,
}

/// Writes checkpoint `generation` from `snapshot` (live ids with the
/// location of their latest PUT, in write order) and makes it durable.
/// Returns where each FlowFile now is in the checkpoint.
pub(crate) fn write(
    storage: &dyn Storage,
    generation: u64,
    snapshot: &[(u64, Loc)],
    max_id: u64,
) -> Result<(Moves, u64), RepoError> {
    let tmp = checkpoint_temp_name(generation);
    let file = storage
        .create(&tmp)
        .map_err(|e| RepoError::io(format!("creating {tmp}"), e))?;
    let write_err = |e| RepoError::io(format!("writing {tmp}"), e);
    file.append(&file_header(FileKind::Checkpoint, generation))
        .map_err(write_err)?;
    let mut offset = HEADER_LEN as u64;
    let mut moves = Vec::with_capacity(snapshot.len());
    let mut tx = Transaction::new();
    let mut loaded: Option<(FileRef, Vec<u8>)> = None;
    let mut cache = RecordCache {
        at: None,
        ops: HashMap::new(),
    };
    for (id, loc) in snapshot {
        if loaded.as_ref().is_none_or(|(f, _)| *f != loc.file) {
            let name = loc.file.name();
            let data = storage
                .read(&name)
                .map_err(|e| RepoError::io(format!("reading {name} for a checkpoint"), e))?;
            loaded = Some((loc.file, data));
        }
        if cache.at != Some(*loc) {
            let Some((_, data)) = &loaded else { continue };
            let start = usize::try_from(loc.offset)
                .unwrap_or(usize::MAX)
                .min(data.len());
            let damaged = |error| {
                RepoError::Damaged(crate::error::Damage {
                    file: loc.file.name(),
                    offset: loc.offset,
                    error,
                    bytes_cut: 0,
                })
            };
            let (payload, _) = read_record(&data[start..]).map_err(damaged)?;
            let ops = decode_payload(payload).map_err(damaged)?;
            cache.ops.clear();
            for op in ops {
                if let Op::Put(ff) = op {
                    cache.ops.insert(ff.id, ff);
                }
            }
            cache.at = Some(*loc);
        }
        let Some(ff) = cache.ops.get(id) else {
            return Err(RepoError::Damaged(crate::error::Damage {
                file: loc.file.name(),
                offset: loc.offset,
                error: crate::format::FormatError::Malformed(format!(
                    "FlowFile {id} is not in the record the live set points at"
                )),
                bytes_cut: 0,
            }));
        };
        tx.put_stored(ff);
        moves.push((
            *id,
            *loc,
            Loc {
                file: FileRef::Checkpoint(generation),
                offset,
            },
        ));
        if tx.payload_len() >= BATCH_BYTES {
            let (rec, _) = std::mem::take(&mut tx).into_record();
            tx = Transaction::new();
            file.append(&rec).map_err(write_err)?;
            offset += rec.len() as u64;
        }
    }
    tx.end(snapshot.len() as u64, max_id);
    let (rec, _) = tx.into_record();
    file.append(&rec).map_err(write_err)?;
    offset += rec.len() as u64;
    file.sync()
        .map_err(|e| RepoError::io(format!("fsync of {tmp}"), e))?;
    let name = checkpoint_file_name(generation);
    storage
        .rename(&tmp, &name)
        .map_err(|e| RepoError::io(format!("renaming {tmp} to {name}"), e))?;
    storage
        .sync_dir()
        .map_err(|e| RepoError::io("fsync of the repository directory", e))?;
    Ok((moves, offset))
}

/// Deletes what checkpoint `generation` made redundant.
pub(crate) fn remove_covered(
    storage: &dyn Storage,
    generation: u64,
) -> Result<Vec<String>, RepoError> {
    let names = storage
        .list()
        .map_err(|e| RepoError::io(format!("listing {}", storage.describe()), e))?;
    let mut removed = Vec::new();
    for n in names {
        let covered = matches!(
            parse_file_name(&n),
            Some(RepoFile::Wal(s) | RepoFile::Checkpoint(s)) if s < generation
        );
        if covered {
            storage
                .remove(&n)
                .map_err(|e| RepoError::io(format!("removing {n}"), e))?;
            removed.push(n);
        }
    }
    if !removed.is_empty() {
        storage
            .sync_dir()
            .map_err(|e| RepoError::io("fsync of the repository directory", e))?;
    }
    Ok(removed)
}
