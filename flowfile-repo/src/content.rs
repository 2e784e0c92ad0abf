//! The content repository: append-only content segments holding the bytes of
//! FlowFiles too large to sit inline in a WAL record.
//!
//! [`ContentRepo::store`] appends an entry (see [`crate::format`]) to the
//! current segment and returns a [`ClaimHandle`]; a segment is closed when it
//! reaches its size limit and a new one is started. Each segment counts two
//! kinds of references: *durable* ones (live FlowFiles in the WAL whose claim
//! points into it; the WAL writer adds and releases them as commits become
//! durable) and *in-memory* ones (live [`ClaimHandle`]s). A closed segment
//! with neither is deleted at once.
//!
//! Content is made durable by [`ContentRepo::sync`], which the WAL writer
//! calls before it writes records that may reference new claims: a durable
//! record never points at bytes that are not.
//!
//! The disk cap is checked before every append: above it `store` fails with
//! [`RepoError::ContentFull`], which the runtime turns into back-pressure.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::error::RepoError;
use crate::format::{
    CONTENT_ENTRY_HEADER_LEN, Claim, FileKind, HEADER_LEN, check_content_entry,
    content_entry_header, file_header,
};
use crate::names::content_file_name;
use crate::storage::{Storage, WriteFile};

#[derive(Debug, Default, Clone, Copy)]
struct Seg {
    size: u64,
    durable: u64,
    mem: u64,
}

struct Current {
    seq: u64,
    file: Arc<dyn WriteFile>,
    len: u64,
}

struct State {
    segments: BTreeMap<u64, Seg>,
    current: Option<Current>,
    next_seq: u64,
    used: u64,
    unsynced: Vec<(u64, Arc<dyn WriteFile>)>,
    dir_dirty: bool,
    deleted: u64,
    /// A store was refused at the cap and nothing was released since.
    refused: bool,
    /// The repository was closed: nothing is written or deleted any more.
    closed: bool,
}

pub(crate) struct Inner {
    storage: Arc<dyn Storage>,
    state: Mutex<State>,
    segment_bytes: u64,
    cap: u64,
}

/// The content repository of one [`crate::Repository`].
#[derive(Clone)]
pub struct ContentRepo {
    inner: Arc<Inner>,
}

/// Usage figures of the content repository.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ContentUsage {
    /// Bytes in content segments.
    pub used: u64,
    /// The disk cap.
    pub cap: u64,
    /// Segments on disk.
    pub segments: u64,
    /// Segments deleted since start because every claim in them was released.
    pub deleted: u64,
}

/// A claim held in memory; dropping the last handle of a claim may release
/// its segment.
pub struct ClaimHandle {
    inner: Arc<Inner>,
    claim: Claim,
}

impl fmt::Debug for ClaimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Claim(segment {}, offset {}, length {})",
            self.claim.segment, self.claim.offset, self.claim.length
        )
    }
}

impl ClaimHandle {
    /// Where the content is.
    #[must_use]
    pub fn claim(&self) -> Claim {
        self.claim
    }

    /// Reads the content and checks it against its checksum.
    ///
    /// # Errors
    /// The segment is gone, short or damaged.
    pub fn read(&self) -> Result<Bytes, RepoError> {
        self.inner.read(&self.claim)
    }
}

impl Drop for ClaimHandle {
    fn drop(&mut self) {
        self.inner.release(self.claim.segment, false);
    }
}

impl ContentRepo {
    /// A content repository over `storage` whose existing segments have the
    /// given sizes; new segments are numbered from `next_seq`.
    pub(crate) fn new(
        storage: Arc<dyn Storage>,
        segment_bytes: u64,
        cap: u64,
        existing: &BTreeMap<u64, u64>,
        next_seq: u64,
    ) -> Self {
        let segments: BTreeMap<u64, Seg> = existing
            .iter()
            .map(|(s, size)| {
                (
                    *s,
                    Seg {
                        size: *size,
                        ..Seg::default()
                    },
                )
            })
            .collect();
        let used = existing.values().sum();
        Self {
            inner: Arc::new(Inner {
                storage,
                state: Mutex::new(State {
                    segments,
                    current: None,
                    next_seq,
                    used,
                    unsynced: Vec::new(),
                    dir_dirty: false,
                    deleted: 0,
                    refused: false,
                    closed: false,
                }),
                segment_bytes: segment_bytes.max(HEADER_LEN as u64 + 1),
                cap,
            }),
        }
    }

    /// Appends `data` as a new claim.
    ///
    /// # Errors
    /// [`RepoError::ContentFull`] above the disk cap (nothing written), or the
    /// write failed.
    pub fn store(&self, data: &[u8]) -> Result<ClaimHandle, RepoError> {
        let inner = &self.inner;
        let entry_len = (CONTENT_ENTRY_HEADER_LEN + data.len()) as u64;
        let mut guard = inner.state.lock();
        let st = &mut *guard;
        if st.closed {
            return Err(RepoError::Stopped("the repository is closed".into()));
        }
        if st.used.saturating_add(entry_len) > inner.cap {
            st.refused = true;
            return Err(RepoError::ContentFull {
                used: st.used,
                cap: inner.cap,
            });
        }
        let roll = st
            .current
            .as_ref()
            .is_some_and(|c| c.len > HEADER_LEN as u64 && c.len + entry_len > inner.segment_bytes);
        if roll {
            inner.close_current(st);
        }
        if st.current.is_none() {
            let seq = st.next_seq;
            let name = content_file_name(seq);
            let file = inner
                .storage
                .create(&name)
                .map_err(|e| RepoError::io(format!("creating content segment {name}"), e))?;
            st.next_seq += 1;
            st.segments.insert(seq, Seg::default());
            st.dir_dirty = true;
            let header = file_header(FileKind::Content, seq);
            if let Err(e) = file.append(&header) {
                st.segments.remove(&seq);
                let _ = inner.storage.remove(&name);
                return Err(RepoError::io(format!("writing content segment {name}"), e));
            }
            if let Some(s) = st.segments.get_mut(&seq) {
                s.size = HEADER_LEN as u64;
            }
            st.used += HEADER_LEN as u64;
            st.current = Some(Current {
                seq,
                file,
                len: HEADER_LEN as u64,
            });
        }
        let Some(cur) = st.current.as_mut() else {
            return Err(RepoError::Stopped("no content segment".into()));
        };
        let seq = cur.seq;
        let offset = cur.len + CONTENT_ENTRY_HEADER_LEN as u64;
        let mut buf = Vec::with_capacity(CONTENT_ENTRY_HEADER_LEN + data.len());
        buf.extend_from_slice(&content_entry_header(data));
        buf.extend_from_slice(data);
        let file = cur.file.clone();
        if let Err(e) = file.append(&buf) {
            // The segment's length is unknown now: never append to it again.
            let size = inner
                .storage
                .len(&content_file_name(seq))
                .unwrap_or(cur.len);
            let grown = size.saturating_sub(cur.len);
            st.used += grown;
            if let Some(s) = st.segments.get_mut(&seq) {
                s.size += grown;
            }
            inner.close_current(st);
            return Err(RepoError::io(
                format!("writing content segment {}", content_file_name(seq)),
                e,
            ));
        }
        cur.len += entry_len;
        st.used += entry_len;
        if let Some(s) = st.segments.get_mut(&seq) {
            s.size += entry_len;
            s.mem += 1;
        }
        if !st.unsynced.iter().any(|(s, _)| *s == seq) {
            st.unsynced.push((seq, file));
        }
        drop(guard);
        Ok(ClaimHandle {
            inner: inner.clone(),
            claim: Claim {
                segment: seq,
                offset,
                length: data.len() as u64,
            },
        })
    }

    /// A handle on an existing claim (a recovered FlowFile's content).
    #[must_use]
    pub fn handle(&self, claim: Claim) -> ClaimHandle {
        let mut st = self.inner.state.lock();
        st.segments.entry(claim.segment).or_default().mem += 1;
        drop(st);
        ClaimHandle {
            inner: self.inner.clone(),
            claim,
        }
    }

    /// Reads a claim's content, checked against its checksum.
    ///
    /// # Errors
    /// The segment is gone, short or damaged.
    pub fn read(&self, claim: &Claim) -> Result<Bytes, RepoError> {
        self.inner.read(claim)
    }

    /// Usage figures.
    #[must_use]
    pub fn usage(&self) -> ContentUsage {
        let st = self.inner.state.lock();
        ContentUsage {
            used: st.used,
            cap: self.inner.cap,
            segments: st.segments.len() as u64,
            deleted: st.deleted,
        }
    }

    /// Whether the disk cap is reached (or content was refused and nothing
    /// released since): sources should hold back.
    #[must_use]
    pub fn is_full(&self) -> bool {
        let st = self.inner.state.lock();
        st.refused || st.used >= self.inner.cap
    }

    /// Makes every appended byte (and new segment names) durable.
    pub(crate) fn sync(&self) -> Result<(), RepoError> {
        let (files, dir) = {
            let mut st = self.inner.state.lock();
            (
                std::mem::take(&mut st.unsynced),
                std::mem::take(&mut st.dir_dirty),
            )
        };
        for (seq, f) in files {
            f.sync()
                .map_err(|e| RepoError::io(format!("fsync of {}", content_file_name(seq)), e))?;
        }
        if dir {
            self.inner
                .storage
                .sync_dir()
                .map_err(|e| RepoError::io("fsync of the repository directory", e))?;
        }
        Ok(())
    }

    /// Stops writing and deleting: handles still alive after the repository
    /// closed may read, but releasing them deletes nothing (another process
    /// may own the directory by then).
    pub(crate) fn close(&self) {
        let mut st = self.inner.state.lock();
        st.closed = true;
        st.current = None;
    }

    /// Whether anything was appended since the last sync.
    pub(crate) fn needs_sync(&self) -> bool {
        let st = self.inner.state.lock();
        !st.unsynced.is_empty() || st.dir_dirty
    }

    /// A durable reference to `segment` was added (a PUT became durable).
    pub(crate) fn add_durable(&self, segment: u64) {
        self.inner
            .state
            .lock()
            .segments
            .entry(segment)
            .or_default()
            .durable += 1;
    }

    /// A durable reference to `segment` was released.
    pub(crate) fn release_durable(&self, segment: u64) {
        self.inner.release(segment, true);
    }

    /// Deletes every segment nobody references (after recovery).
    pub(crate) fn collect_garbage(&self) -> Vec<u64> {
        let mut st = self.inner.state.lock();
        let idle: Vec<u64> = st
            .segments
            .iter()
            .filter(|(_, s)| s.durable == 0 && s.mem == 0)
            .map(|(k, _)| *k)
            .collect();
        for s in &idle {
            self.inner.delete(&mut st, *s);
        }
        idle
    }

    /// Segment numbers on disk with their sizes (tests, inspection).
    #[must_use]
    pub fn segments(&self) -> Vec<(u64, u64)> {
        let st = self.inner.state.lock();
        st.segments.iter().map(|(k, s)| (*k, s.size)).collect()
    }
}

impl Inner {
    fn read(&self, claim: &Claim) -> Result<Bytes, RepoError> {
        let err = |reason: String| RepoError::Content {
            segment: claim.segment,
            offset: claim.offset,
            length: claim.length,
            reason,
        };
        let start = claim
            .offset
            .checked_sub(CONTENT_ENTRY_HEADER_LEN as u64)
            .ok_or_else(|| err("offset inside the segment header".into()))?;
        let len = usize::try_from(claim.length)
            .map_err(|_| err("too large for this machine".into()))?
            + CONTENT_ENTRY_HEADER_LEN;
        let entry = self
            .storage
            .read_at(&content_file_name(claim.segment), start, len)
            .map_err(|e| err(e.to_string()))?;
        let data = check_content_entry(&entry, claim.length).map_err(|e| err(e.to_string()))?;
        Ok(Bytes::copy_from_slice(data))
    }

    fn close_current(&self, st: &mut State) {
        if let Some(cur) = st.current.take() {
            let s = st.segments.get(&cur.seq).copied().unwrap_or_default();
            if s.durable == 0 && s.mem == 0 {
                self.delete(st, cur.seq);
            }
        }
    }

    fn release(&self, segment: u64, durable: bool) {
        let mut st = self.state.lock();
        let Some(s) = st.segments.get_mut(&segment) else {
            return;
        };
        if durable {
            s.durable = s.durable.saturating_sub(1);
        } else {
            s.mem = s.mem.saturating_sub(1);
        }
        let idle = s.durable == 0 && s.mem == 0;
        let current = st.current.as_ref().is_some_and(|c| c.seq == segment);
        if idle && !current {
            self.delete(&mut st, segment);
        }
    }

    fn delete(&self, st: &mut State, segment: u64) {
        if st.closed {
            return;
        }
        if let Some(s) = st.segments.remove(&segment) {
            st.used = st.used.saturating_sub(s.size);
            st.unsynced.retain(|(q, _)| *q != segment);
            st.deleted += 1;
            st.refused = false;
            let name = content_file_name(segment);
            // A segment that comes back after a crash is unreferenced and
            // collected again at the next start.
            if let Err(e) = self.storage.remove(&name)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(file = %name, error = %e, "could not delete released content segment");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStorage;

    fn repo(storage: &MemStorage, seg: u64, cap: u64) -> ContentRepo {
        ContentRepo::new(Arc::new(storage.clone()), seg, cap, &BTreeMap::new(), 1)
    }

    #[test]
    fn stored_content_reads_back_and_damage_is_caught() {
        let s = MemStorage::new();
        let c = repo(&s, 1 << 20, u64::MAX);
        let h = c.store(b"some large content").unwrap();
        assert_eq!(&h.read().unwrap()[..], b"some large content");
        let name = content_file_name(h.claim().segment);
        s.flip_bit(&name, usize::try_from(h.claim().offset).unwrap() + 2, 3);
        let err = h.read().unwrap_err().to_string();
        assert!(err.contains("checksum"), "{err}");
        assert!(
            err.contains(&format!("segment {}", h.claim().segment)),
            "{err}"
        );
    }

    #[test]
    fn a_closed_segment_is_deleted_when_its_last_claim_is_released() {
        let s = MemStorage::new();
        // Room for one 100-byte entry per segment.
        let c = repo(&s, 150, u64::MAX);
        let a = c.store(&[1; 100]).unwrap();
        let b = c.store(&[2; 100]).unwrap();
        assert_ne!(a.claim().segment, b.claim().segment);
        let a_seg = a.claim().segment;
        let a_name = content_file_name(a_seg);
        // A durable reference keeps it after the handle is gone.
        c.add_durable(a_seg);
        drop(a);
        assert!(s.contents(&a_name).is_some());
        c.release_durable(a_seg);
        assert!(s.contents(&a_name).is_none(), "released segment deleted");
        assert_eq!(c.usage().deleted, 1);
        // The current segment stays while it is being written.
        let b_name = content_file_name(b.claim().segment);
        drop(b);
        assert!(s.contents(&b_name).is_some());
    }

    #[test]
    fn the_cap_refuses_new_content_until_space_is_released() {
        let s = MemStorage::new();
        let c = repo(&s, 200, 500);
        let mut held = Vec::new();
        let err = loop {
            match c.store(&[7; 100]) {
                Ok(h) => held.push(h),
                Err(e) => break e,
            }
            assert!(held.len() < 10, "the cap never applied");
        };
        assert!(
            matches!(err, RepoError::ContentFull { cap: 500, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("content repository full"));
        assert!(c.usage().used <= 500);
        // Releasing the content of a closed segment makes room again.
        held.remove(0);
        c.store(&[7; 100]).expect("room after release");
    }

    #[test]
    fn sync_makes_content_and_new_segments_durable() {
        let s = MemStorage::new();
        let c = repo(&s, 1 << 20, u64::MAX);
        let h = c.store(b"durable?").unwrap();
        assert!(c.needs_sync());
        c.sync().unwrap();
        assert!(!c.needs_sync());
        s.crash();
        assert_eq!(&c.read(&h.claim()).unwrap()[..], b"durable?");
    }
}
