//! Spill: the overflow of a `when_full: spill` connection, swapped out to
//! disk in batches so memory stays bounded while a sink is down.
//!
//! Past the connection's thresholds, new FlowFiles are *staged* in memory;
//! every full batch of staged FlowFiles is written to one swap file (the
//! repository's record format, magic `SLUICESW`) and dropped from memory. As
//! the in-memory queue drains, the oldest swap file is read back, then the
//! staged FlowFiles follow, so FlowFiles come back in the order they came in.
//! Once the swap files reach the disk cap, staging fills up to one batch and
//! the connection then blocks its upstream like `block`.
//!
//! Swap files only relieve memory: with a repository the WAL still holds
//! every spilled FlowFile, so they are not needed for recovery and a start
//! clears them. Content already in the content repository stays there; only
//! its claim handle stays in memory while the FlowFile is on disk.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sluice_flowfile_repo::Transaction;
use sluice_flowfile_repo::format::{
    FileKind, Op, Scanned, check_header, decode_payload, file_header, scan,
};

use crate::flowfile::{Content, FlowFile, StoredContent};
use crate::record;

/// `name` with every character but ASCII letters, digits, `-` and `.`
/// replaced by `_`, for directory names made from connection ids.
pub(crate) fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Records in a swap file hold about this many payload bytes each.
const RECORD_BYTES: usize = 1 << 20;

/// A batch of FlowFiles on disk.
struct SwapFile {
    path: PathBuf,
    count: u64,
    bytes: u64,
    disk: u64,
    stored: HashMap<u64, Arc<dyn StoredContent>>,
}

/// The spilled part of one connection's queue (after the in-memory part).
pub(crate) struct Spill {
    dir: PathBuf,
    connection: String,
    max_disk: u64,
    batch: usize,
    batch_bytes: u64,
    files: VecDeque<SwapFile>,
    staged: VecDeque<FlowFile>,
    staged_bytes: u64,
    swapped: u64,
    swapped_bytes: u64,
    disk: u64,
    next_seq: u64,
    errors: u64,
}

impl Spill {
    pub(crate) fn new(
        dir: PathBuf,
        connection: &str,
        max_disk: u64,
        max_count: u64,
        max_bytes: u64,
    ) -> Self {
        Self {
            dir,
            connection: connection.to_string(),
            max_disk,
            batch: usize::try_from(max_count.clamp(1, 10_000)).unwrap_or(10_000),
            batch_bytes: max_bytes.clamp(1, 64 << 20),
            files: VecDeque::new(),
            staged: VecDeque::new(),
            staged_bytes: 0,
            swapped: 0,
            swapped_bytes: 0,
            disk: 0,
            next_seq: 1,
            errors: 0,
        }
    }

    /// Nothing spilled or staged.
    pub(crate) fn is_empty(&self) -> bool {
        self.files.is_empty() && self.staged.is_empty()
    }

    /// FlowFiles held here (on disk and staged).
    pub(crate) fn count(&self) -> u64 {
        self.swapped + self.staged.len() as u64
    }

    /// Content bytes of the FlowFiles held here.
    pub(crate) fn bytes(&self) -> u64 {
        self.swapped_bytes + self.staged_bytes
    }

    /// FlowFiles in swap files.
    pub(crate) fn swapped(&self) -> u64 {
        self.swapped
    }

    /// Bytes of swap files on disk.
    pub(crate) fn disk(&self) -> u64 {
        self.disk
    }

    /// Swap files that could not be written or read back.
    pub(crate) fn errors(&self) -> u64 {
        self.errors
    }

    /// The disk cap is reached and a full batch waits in memory: the
    /// connection must block its upstream.
    pub(crate) fn blocked(&self) -> bool {
        self.disk >= self.max_disk && self.staged.len() >= self.batch
    }

    /// Adds a FlowFile after everything held, then writes full batches out.
    pub(crate) fn push(&mut self, ff: FlowFile) {
        self.staged_bytes += ff.queued_bytes();
        self.staged.push_back(ff);
    }

    /// Writes full batches of staged FlowFiles to swap files while the disk
    /// cap allows.
    pub(crate) fn swap_out(&mut self) {
        while !self.staged.is_empty()
            && (self.staged.len() >= self.batch || self.staged_bytes >= self.batch_bytes)
            && self.disk < self.max_disk
        {
            let n = self.batch.min(self.staged.len());
            let chunk: Vec<FlowFile> = self.staged.drain(..n).collect();
            match self.write(&chunk) {
                Ok(file) => {
                    self.staged_bytes -= file.bytes;
                    self.swapped += file.count;
                    self.swapped_bytes += file.bytes;
                    self.disk += file.disk;
                    self.files.push_back(file);
                }
                Err(e) => {
                    self.errors += 1;
                    tracing::error!(
                        connection = %self.connection,
                        dir = %self.dir.display(),
                        error = %e,
                        "cannot write a swap file; the FlowFiles stay in memory"
                    );
                    for ff in chunk.into_iter().rev() {
                        self.staged.push_front(ff);
                    }
                    return;
                }
            }
        }
    }

    fn write(&mut self, chunk: &[FlowFile]) -> std::io::Result<SwapFile> {
        std::fs::create_dir_all(&self.dir)?;
        let seq = self.next_seq;
        self.next_seq += 1;
        let path = self.dir.join(format!("swap-{seq:020}.swp"));
        let mut buf = file_header(FileKind::Swap, seq).to_vec();
        let mut tx = Transaction::new();
        let mut stored = HashMap::new();
        let mut bytes = 0;
        for ff in chunk {
            record::put(&mut tx, ff, &self.connection);
            bytes += ff.queued_bytes();
            if let Content::Stored(s) = &ff.content {
                stored.insert(ff.id, s.clone());
            }
            if tx.payload_len() >= RECORD_BYTES {
                buf.extend_from_slice(&std::mem::take(&mut tx).into_record().0);
            }
        }
        if !tx.is_empty() {
            buf.extend_from_slice(&tx.into_record().0);
        }
        std::fs::write(&path, &buf)?;
        Ok(SwapFile {
            path,
            count: chunk.len() as u64,
            bytes,
            disk: buf.len() as u64,
            stored,
        })
    }

    /// Count and content bytes of what [`Self::take_front`] returns next.
    pub(crate) fn front_size(&self) -> Option<(u64, u64)> {
        match self.files.front() {
            Some(f) => Some((f.count, f.bytes)),
            None => self.staged.front().map(|ff| (1, ff.queued_bytes())),
        }
    }

    /// Takes the oldest held FlowFiles: a whole swap file, or one staged
    /// FlowFile when nothing is on disk.
    pub(crate) fn take_front(&mut self) -> Vec<FlowFile> {
        if let Some(file) = self.files.pop_front() {
            self.swapped -= file.count;
            self.swapped_bytes -= file.bytes;
            self.disk -= file.disk;
            let ffs = self.read(file);
            return ffs;
        }
        match self.staged.pop_front() {
            Some(ff) => {
                self.staged_bytes -= ff.queued_bytes();
                vec![ff]
            }
            None => Vec::new(),
        }
    }

    fn read(&mut self, mut file: SwapFile) -> Vec<FlowFile> {
        let result = decode_swap_file(&file.path, &mut file.stored);
        if let Err(e) = std::fs::remove_file(&file.path) {
            tracing::warn!(path = %file.path.display(), error = %e, "cannot remove a swap file");
        }
        match result {
            Ok(ffs) if ffs.len() as u64 == file.count => ffs,
            Ok(ffs) => {
                self.lost(&file, ffs.len() as u64, "fewer FlowFiles than written");
                ffs
            }
            Err(e) => {
                self.lost(&file, 0, &e);
                Vec::new()
            }
        }
    }

    fn lost(&mut self, file: &SwapFile, got: u64, why: &str) {
        self.errors += 1;
        tracing::error!(
            connection = %self.connection,
            path = %file.path.display(),
            lost = file.count - got,
            why,
            "a swap file came back damaged; with a repository the lost FlowFiles return at the next start"
        );
    }

    /// Everything held, in order, leaving nothing behind (reload, shutdown).
    pub(crate) fn take_all(&mut self) -> Vec<FlowFile> {
        let mut out = Vec::new();
        while !self.is_empty() {
            out.extend(self.take_front());
        }
        out
    }

    /// Copies of everything held, in order, without taking it.
    pub(crate) fn snapshot(&self) -> Vec<FlowFile> {
        let mut out = Vec::new();
        for f in &self.files {
            let mut stored = f.stored.clone();
            match decode_swap_file(&f.path, &mut stored) {
                Ok(ffs) => out.extend(ffs),
                Err(e) => {
                    tracing::warn!(path = %f.path.display(), error = %e, "cannot read a swap file");
                }
            }
        }
        out.extend(self.staged.iter().cloned());
        out
    }
}

impl Drop for Spill {
    fn drop(&mut self) {
        for f in &self.files {
            let _ = std::fs::remove_file(&f.path);
        }
        let _ = std::fs::remove_dir(&self.dir);
    }
}

fn decode_swap_file(
    path: &Path,
    stored: &mut HashMap<u64, Arc<dyn StoredContent>>,
) -> Result<Vec<FlowFile>, String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    check_header(FileKind::Swap, &data).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for item in scan(&data) {
        let payload = match item {
            Scanned::Record { payload, .. } => payload,
            Scanned::Damage { offset, error } => return Err(format!("byte {offset}: {error}")),
        };
        for op in decode_payload(payload).map_err(|e| e.to_string())? {
            let Op::Put(sf) = op else { continue };
            let id = sf.id;
            let ff = record::restore(sf, |_| {
                stored
                    .remove(&id)
                    .ok_or_else(|| format!("no content kept for FlowFile {id}"))
            })?;
            out.push(ff);
        }
    }
    Ok(out)
}
