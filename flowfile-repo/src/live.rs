//! The live set: for every FlowFile the WAL says is in a connection, where
//! its latest PUT record is and which content segment it references.
//!
//! The repository keeps this map itself (fed by the WAL writer as commits
//! become durable), so a checkpoint needs nothing from the engine: it copies
//! the records the map points at. Only locations are kept, not FlowFiles, so a
//! queue swapped out to disk does not come back into memory here.

use std::collections::HashMap;

use crate::content::ContentRepo;
use crate::format::OpMeta;
use crate::names::{checkpoint_file_name, wal_file_name};

/// Which file a record is in. Checkpoints sort before WAL segments, matching
/// the order in which their records were first written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum FileRef {
    /// Checkpoint of this generation.
    Checkpoint(u64),
    /// WAL segment of this sequence number.
    Wal(u64),
}

impl FileRef {
    pub(crate) fn name(self) -> String {
        match self {
            FileRef::Checkpoint(g) => checkpoint_file_name(g),
            FileRef::Wal(s) => wal_file_name(s),
        }
    }
}

/// Where a record starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct Loc {
    pub file: FileRef,
    pub offset: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    loc: Loc,
    claim_segment: Option<u64>,
}

pub(crate) struct LiveSet {
    map: HashMap<u64, Entry>,
    content: ContentRepo,
    max_id: u64,
}

impl LiveSet {
    pub(crate) fn new(content: ContentRepo) -> Self {
        Self {
            map: HashMap::new(),
            content,
            max_id: 0,
        }
    }

    /// Applies one durable op found at `loc`, keeping content references.
    pub(crate) fn apply(&mut self, meta: &OpMeta, loc: Loc) {
        match *meta {
            OpMeta::Put { id, claim_segment } => {
                self.max_id = self.max_id.max(id);
                if let Some(seg) = claim_segment {
                    self.content.add_durable(seg);
                }
                let old = self.map.insert(id, Entry { loc, claim_segment });
                if let Some(seg) = old.and_then(|e| e.claim_segment) {
                    self.content.release_durable(seg);
                }
            }
            OpMeta::Delete { id } => {
                self.max_id = self.max_id.max(id);
                if let Some(seg) = self.map.remove(&id).and_then(|e| e.claim_segment) {
                    self.content.release_durable(seg);
                }
            }
        }
    }

    pub(crate) fn note_id(&mut self, id: u64) {
        self.max_id = self.max_id.max(id);
    }

    pub(crate) fn max_id(&self) -> u64 {
        self.max_id
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }

    /// Live entries whose record is in a file before WAL segment `wal_seq`,
    /// in write order.
    pub(crate) fn snapshot_before(&self, wal_seq: u64) -> Vec<(u64, Loc)> {
        let limit = FileRef::Wal(wal_seq);
        let mut v: Vec<(u64, Loc)> = self
            .map
            .iter()
            .filter(|(_, e)| e.loc.file < limit)
            .map(|(id, e)| (*id, e.loc))
            .collect();
        v.sort_by_key(|(id, loc)| (*loc, *id));
        v
    }

    /// Points entries still at their old location to their copy in a
    /// checkpoint (entries changed since the snapshot are left alone).
    pub(crate) fn relocate(&mut self, moves: &[(u64, Loc, Loc)]) {
        for (id, from, to) in moves {
            if let Some(e) = self.map.get_mut(id)
                && e.loc == *from
            {
                e.loc = *to;
            }
        }
    }
}
