//! Recovery: rebuilds the live FlowFiles from the newest checkpoint and the
//! WAL segments after it.
//!
//! Damage is never accepted silently. A bad record at the end of the newest
//! WAL segment with nothing intact after it is what a crash leaves (a torn
//! tail): it is cut and reported with its file and byte offset. Damage
//! anywhere else (an earlier segment, the middle of the newest one, a
//! checkpoint) may hide committed FlowFiles: under
//! [`RecoveryMode::TolerateTail`] recovery refuses with
//! [`RepoError::Damaged`]; under [`RecoveryMode::SkipDamaged`] it skips the
//! damaged records, keeps every intact one and reports each skip.
//!
//! The same pass runs read-only for `sluice repo check` and `dump`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::config::RecoveryMode;
use crate::error::{Damage, RepoError};
use crate::format::{
    CONTENT_ENTRY_HEADER_LEN, Claim, FileKind, FormatError, HEADER_LEN, MAX_RECORD, Op,
    RECORD_HEADER_LEN, StoredFlowFile, check_header, decode_payload, read_record,
};
use crate::live::{FileRef, Loc};
use crate::names::{
    RepoFile, checkpoint_file_name, content_file_name, parse_file_name, wal_file_name,
};
use crate::storage::Storage;

/// A live FlowFile whose content claim points at bytes that are not there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LostContent {
    /// FlowFile id.
    pub id: u64,
    /// Its connection.
    pub connection: String,
    /// The claim.
    pub claim: Claim,
    /// What is wrong.
    pub reason: String,
}

/// What recovery found and did.
#[derive(Clone, Debug, Default)]
pub struct RecoveryReport {
    /// Generation of the checkpoint loaded, if any.
    pub checkpoint: Option<u64>,
    /// FlowFiles the checkpoint held.
    pub checkpoint_flowfiles: u64,
    /// WAL segments replayed after it.
    pub wal_segments: Vec<u64>,
    /// Records read (checkpoint and WAL).
    pub records: u64,
    /// Bytes read (checkpoint and WAL).
    pub bytes_read: u64,
    /// Damage found, each cut (torn tails) or skipped.
    pub damage: Vec<DamageReport>,
    /// Live FlowFiles whose content is missing or short.
    pub lost_content: Vec<LostContent>,
    /// Leftover files removed (temp checkpoints, superseded segments,
    /// content nobody references).
    pub removed_files: Vec<String>,
    /// Live FlowFiles recovered.
    pub live: u64,
    /// Highest FlowFile id seen.
    pub max_id: u64,
    /// How long it took.
    pub elapsed: Duration,
}

/// One piece of damage and what recovery did about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DamageReport {
    /// Where and what.
    pub damage: Damage,
    /// A torn tail (what a crash leaves), cut without asking; otherwise
    /// damage that [`RecoveryMode::SkipDamaged`] skipped.
    pub tail: bool,
}

impl RecoveryReport {
    /// Whether nothing was damaged or lost.
    #[must_use]
    pub fn is_clean(&self) -> bool {
        self.damage.is_empty() && self.lost_content.is_empty()
    }
}

pub(crate) struct Replayed {
    /// id -> (replay order, where its PUT is, the FlowFile).
    pub live: HashMap<u64, (u64, Loc, StoredFlowFile)>,
    pub report: RecoveryReport,
    pub next_wal_seq: u64,
    pub content_segments: BTreeMap<u64, u64>,
    /// Damage was skipped (not a tail): take a checkpoint so it is gone.
    pub skipped: bool,
}

#[derive(Default)]
struct Files {
    wal: Vec<u64>,
    checkpoints: Vec<u64>,
    temps: Vec<String>,
    content: Vec<u64>,
}

fn classify(names: Vec<String>) -> Files {
    let mut f = Files::default();
    for n in names {
        match parse_file_name(&n) {
            Some(RepoFile::Wal(s)) => f.wal.push(s),
            Some(RepoFile::Checkpoint(s)) => f.checkpoints.push(s),
            Some(RepoFile::CheckpointTemp(_)) => f.temps.push(n),
            Some(RepoFile::Content(s)) => f.content.push(s),
            None => {}
        }
    }
    f.wal.sort_unstable();
    f.checkpoints.sort_unstable();
    f.content.sort_unstable();
    f
}

struct Ctx<'a> {
    storage: &'a dyn Storage,
    mode: RecoveryMode,
    repair: bool,
    out: Replayed,
    order: u64,
    reuse_last: bool,
}

impl Ctx<'_> {
    fn io(what: String) -> impl FnOnce(std::io::Error) -> RepoError {
        move |e| RepoError::io(what, e)
    }

    fn put(&mut self, ff: StoredFlowFile, loc: Loc) {
        self.out.report.max_id = self.out.report.max_id.max(ff.id);
        self.order += 1;
        self.out.live.insert(ff.id, (self.order, loc, ff));
    }

    fn apply(&mut self, ops: Vec<Op>, loc: Loc) {
        for op in ops {
            match op {
                Op::Put(ff) => self.put(ff, loc),
                Op::Delete(id) => {
                    self.out.report.max_id = self.out.report.max_id.max(id);
                    self.out.live.remove(&id);
                }
                Op::End { max_id, .. } => {
                    self.out.report.max_id = self.out.report.max_id.max(max_id);
                }
            }
        }
    }

    /// Damage that is not a torn tail: refuse, or note and skip it.
    fn skip_or_refuse(&mut self, damage: Damage) -> Result<(), RepoError> {
        if self.mode == RecoveryMode::TolerateTail {
            return Err(RepoError::Damaged(damage));
        }
        tracing::warn!(damage = %damage, "skipping damaged records");
        self.out.skipped = true;
        self.out.report.damage.push(DamageReport {
            damage,
            tail: false,
        });
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<(), RepoError> {
        if self.repair {
            self.storage
                .remove(name)
                .map_err(Self::io(format!("removing {name}")))?;
            self.out.report.removed_files.push(name.to_string());
        }
        Ok(())
    }

    fn checkpoint(&mut self, generation: u64) -> Result<(), RepoError> {
        let name = checkpoint_file_name(generation);
        let data = self
            .storage
            .read(&name)
            .map_err(Self::io(format!("reading {name}")))?;
        self.out.report.bytes_read += data.len() as u64;
        let len = data.len() as u64;
        let damage = |offset: u64, error: FormatError| Damage {
            file: name.clone(),
            offset,
            error,
            bytes_cut: len - offset,
        };
        match check_header(FileKind::Checkpoint, &data) {
            Ok(g) if g == generation => {}
            Ok(g) => {
                return self.skip_or_refuse(damage(
                    0,
                    FormatError::Malformed(format!("header says generation {g}")),
                ));
            }
            Err(e) => return self.skip_or_refuse(damage(0, e)),
        }
        self.out.report.checkpoint = Some(generation);
        let mut pos = HEADER_LEN;
        let mut puts = 0u64;
        let mut end = None;
        while pos < data.len() {
            let problem = match read_record(&data[pos..]) {
                Ok((payload, total)) => match decode_payload(payload) {
                    Ok(ops) if end.is_none() => {
                        let loc = Loc {
                            file: FileRef::Checkpoint(generation),
                            offset: pos as u64,
                        };
                        for op in &ops {
                            match op {
                                Op::Put(_) => puts += 1,
                                Op::End { live, .. } => end = Some(*live),
                                Op::Delete(_) => {}
                            }
                        }
                        self.apply(ops, loc);
                        self.out.report.records += 1;
                        pos += total;
                        continue;
                    }
                    Ok(_) => FormatError::Malformed("records after the END record".into()),
                    Err(e) => e,
                },
                Err(e) => e,
            };
            return self.skip_or_refuse(damage(pos as u64, problem));
        }
        match end {
            Some(n) if n == puts => {}
            Some(n) => {
                return self.skip_or_refuse(damage(
                    HEADER_LEN as u64,
                    FormatError::Malformed(format!(
                        "END record counts {n} FlowFiles, the checkpoint holds {puts}"
                    )),
                ));
            }
            None => {
                return self.skip_or_refuse(damage(
                    len,
                    FormatError::Malformed("the checkpoint has no END record".into()),
                ));
            }
        }
        self.out.report.checkpoint_flowfiles = puts;
        Ok(())
    }

    /// Whether an intact record starts at `pos`.
    fn intact_at(data: &[u8], pos: usize) -> bool {
        pos < data.len()
            && read_record(&data[pos..]).is_ok_and(|(payload, _)| decode_payload(payload).is_ok())
    }

    /// The first intact record at or after `from`, found byte by byte (a
    /// damaged length hides where the next record starts). Records are never
    /// empty, so a candidate must hold at least one op with a known tag:
    /// that cheap test skips almost every position before the checksum.
    fn next_intact(data: &[u8], from: usize) -> Option<usize> {
        let h = RECORD_HEADER_LEN;
        let mut p = from;
        while p + h + 5 <= data.len() {
            let count = u32::from_le_bytes([
                data[p + h],
                data[p + h + 1],
                data[p + h + 2],
                data[p + h + 3],
            ]);
            let tag = data[p + h + 4];
            if (1..=1 << 24).contains(&count) && (1..=3).contains(&tag) && Self::intact_at(data, p)
            {
                return Some(p);
            }
            p += 1;
        }
        None
    }

    fn segment(&mut self, seq: u64, last: bool) -> Result<(), RepoError> {
        let name = wal_file_name(seq);
        let data = self
            .storage
            .read(&name)
            .map_err(Self::io(format!("reading {name}")))?;
        self.out.report.bytes_read += data.len() as u64;
        self.out.report.wal_segments.push(seq);
        let len = data.len() as u64;
        let header = match check_header(FileKind::Wal, &data) {
            Ok(s) if s == seq => None,
            Ok(s) => Some(FormatError::Malformed(format!("header says segment {s}"))),
            Err(e) => Some(e),
        };
        if let Some(error) = header {
            let damage = Damage {
                file: name.clone(),
                offset: 0,
                error,
                bytes_cut: len,
            };
            if last && Self::next_intact(&data, HEADER_LEN.min(data.len())).is_none() {
                // Crash while the segment was being created: nothing in it.
                // Its number is used again, so the sequence has no gap.
                self.tail(damage);
                self.remove(&name)?;
                self.reuse_last = true;
            } else {
                self.skip_or_refuse(damage)?;
            }
            return Ok(());
        }
        let mut pos = HEADER_LEN;
        while pos < data.len() {
            let (error, extent) = match read_record(&data[pos..]) {
                Ok((payload, total)) => match decode_payload(payload) {
                    Ok(ops) => {
                        let loc = Loc {
                            file: FileRef::Wal(seq),
                            offset: pos as u64,
                        };
                        self.apply(ops, loc);
                        self.out.report.records += 1;
                        pos += total;
                        continue;
                    }
                    Err(e) => (e, Some(total)),
                },
                Err(e) => {
                    let extent = match e {
                        FormatError::Checksum => {
                            let n = u32::from_le_bytes([
                                data[pos],
                                data[pos + 1],
                                data[pos + 2],
                                data[pos + 3],
                            ]);
                            (n <= MAX_RECORD).then_some(RECORD_HEADER_LEN + n as usize)
                        }
                        _ => None,
                    };
                    (e, extent)
                }
            };
            let next = match extent.map(|n| pos + n) {
                Some(p) if Self::intact_at(&data, p) => Some(p),
                _ => Self::next_intact(&data, pos + 1),
            };
            if last && next.is_none() {
                self.tail(Damage {
                    file: name.clone(),
                    offset: pos as u64,
                    error,
                    bytes_cut: len - pos as u64,
                });
                if self.repair {
                    self.storage
                        .truncate(&name, pos as u64)
                        .map_err(Self::io(format!("cutting the torn tail of {name}")))?;
                }
                return Ok(());
            }
            let cut = next.map_or(len, |p| p as u64) - pos as u64;
            self.skip_or_refuse(Damage {
                file: name.clone(),
                offset: pos as u64,
                error,
                bytes_cut: cut,
            })?;
            match next {
                Some(p) => pos = p,
                None => return Ok(()),
            }
        }
        Ok(())
    }

    fn tail(&mut self, damage: Damage) {
        tracing::warn!(damage = %damage, "cutting the torn tail of the WAL");
        self.out
            .report
            .damage
            .push(DamageReport { damage, tail: true });
    }
}

/// Rebuilds the live set. With `repair`, cuts torn tails and removes
/// leftovers; without, only reads.
pub(crate) fn replay(
    storage: &dyn Storage,
    mode: RecoveryMode,
    repair: bool,
) -> Result<Replayed, RepoError> {
    let started = Instant::now();
    let names = storage
        .list()
        .map_err(|e| RepoError::io(format!("listing {}", storage.describe()), e))?;
    let files = classify(names);
    let mut ctx = Ctx {
        storage,
        mode,
        repair,
        out: Replayed {
            live: HashMap::new(),
            report: RecoveryReport::default(),
            next_wal_seq: 1,
            content_segments: BTreeMap::new(),
            skipped: false,
        },
        order: 0,
        reuse_last: false,
    };
    for t in &files.temps {
        // A checkpoint interrupted before its rename: the WAL still has it all.
        ctx.remove(t)?;
    }
    let generation = files.checkpoints.last().copied();
    if let Some(g) = generation {
        ctx.checkpoint(g)?;
        for old in files.checkpoints.iter().filter(|c| **c < g) {
            ctx.remove(&checkpoint_file_name(*old))?;
        }
    }
    let floor = generation.unwrap_or(0);
    for old in files.wal.iter().filter(|s| **s < floor) {
        // Covered by the checkpoint; its deletion was interrupted.
        ctx.remove(&wal_file_name(*old))?;
    }
    let segs: Vec<u64> = files.wal.iter().copied().filter(|s| *s >= floor).collect();
    let mut expected = generation;
    for (i, seq) in segs.iter().enumerate() {
        if let Some(e) = expected
            && *seq != e
        {
            let missing = RepoError::MissingSegment {
                missing: e,
                before: if i == 0 {
                    e.saturating_sub(1)
                } else {
                    segs[i - 1]
                },
                after: *seq,
            };
            ctx.skip_or_refuse(Damage {
                file: wal_file_name(e),
                offset: 0,
                error: FormatError::Malformed(missing.to_string()),
                bytes_cut: 0,
            })
            .map_err(|_| missing)?;
        }
        ctx.segment(*seq, i + 1 == segs.len())?;
        expected = Some(seq + 1);
    }
    ctx.out.next_wal_seq = match segs.last() {
        Some(s) if ctx.reuse_last => *s,
        Some(s) => s + 1,
        None => generation.unwrap_or(1).max(1),
    };
    for seq in &files.content {
        let name = content_file_name(*seq);
        let size = storage
            .len(&name)
            .map_err(|e| RepoError::io(format!("examining {name}"), e))?;
        ctx.out.content_segments.insert(*seq, size);
    }
    let mut lost = Vec::new();
    for (_, _, ff) in ctx.out.live.values() {
        if let Some(c) = ff.claim() {
            let reason = match ctx.out.content_segments.get(&c.segment) {
                None => Some("its content segment is missing".to_string()),
                Some(size) if c.offset < (HEADER_LEN + CONTENT_ENTRY_HEADER_LEN) as u64 => {
                    Some(format!("offset inside the header of a {size}-byte segment"))
                }
                Some(size) if c.offset.saturating_add(c.length) > *size => Some(format!(
                    "the segment is {size} bytes, the claim ends at {}",
                    c.offset.saturating_add(c.length)
                )),
                Some(_) => None,
            };
            if let Some(reason) = reason {
                lost.push(LostContent {
                    id: ff.id,
                    connection: ff.connection.clone(),
                    claim: c,
                    reason,
                });
            }
        }
    }
    lost.sort_by_key(|l| l.id);
    for l in &lost {
        tracing::error!(flowfile = l.id, connection = %l.connection, reason = %l.reason, "recovered FlowFile has lost its content");
    }
    ctx.out.report.lost_content = lost;
    if repair && !ctx.out.report.removed_files.is_empty() {
        storage
            .sync_dir()
            .map_err(|e| RepoError::io("fsync of the repository directory", e))?;
    }
    ctx.out.report.live = ctx.out.live.len() as u64;
    ctx.out.report.elapsed = started.elapsed();
    Ok(ctx.out)
}
