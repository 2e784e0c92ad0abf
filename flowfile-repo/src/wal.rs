//! The WAL writer: group commit on one thread.
//!
//! Committers frame their record (see [`crate::format`]) on their own thread,
//! append it to a shared pending buffer under a short lock, take the next log
//! sequence number (LSN) and wait on the *written through* or *synced
//! through* watermark. The writer thread takes everything pending at once,
//! makes new content durable first, writes the batch with one `write` and
//! fsyncs once per the [`FsyncPolicy`]; then it advances the watermarks,
//! which releases every waiter of the batch, and applies the batch to the
//! live set. Commits that arrive during an fsync form the next batch, so the
//! busier the repository, the more commits share each fsync.
//!
//! A failed write or fsync is fatal ([`FatalPolicy`]): the repository never
//! retries and carries on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};
use tokio::sync::watch;

use crate::config::{FatalPolicy, FsyncPolicy, RepoConfig};
use crate::content::ContentRepo;
use crate::error::RepoError;
use crate::format::{FileKind, HEADER_LEN, OpMeta, file_header};
use crate::live::{FileRef, LiveSet, Loc};
use crate::names::wal_file_name;
use crate::storage::{Storage, WriteFile};

/// Watermarks published by the writer.
#[derive(Clone, Debug, Default)]
struct Progress {
    written: u64,
    synced: u64,
    failed: Option<Arc<str>>,
}

struct Pending {
    lsn: u64,
    offset: usize,
    meta: Vec<OpMeta>,
}

#[derive(Default)]
struct Queue {
    buf: Vec<u8>,
    pending: Vec<Pending>,
    next_lsn: u64,
    rotate: Vec<std::sync::mpsc::Sender<Result<u64, RepoError>>>,
    shutdown: bool,
}

/// Counters of the WAL.
#[derive(Default, Debug)]
pub(crate) struct WalStats {
    pub commits: AtomicU64,
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes: AtomicU64,
    pub bytes_since_checkpoint: AtomicU64,
    pub segment: AtomicU64,
}

struct Shared {
    queue: Mutex<Queue>,
    work: Condvar,
    progress: watch::Sender<Progress>,
    policy: FsyncPolicy,
    stats: Arc<WalStats>,
}

/// Handle on the writer thread.
pub(crate) struct Wal {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

struct Segment {
    seq: u64,
    file: Arc<dyn WriteFile>,
    len: u64,
}

struct Writer {
    shared: Arc<Shared>,
    storage: Arc<dyn Storage>,
    content: ContentRepo,
    live: Arc<Mutex<LiveSet>>,
    segment: Segment,
    segment_bytes: u64,
    fatal: FatalPolicy,
    unsynced: bool,
    last_sync: Instant,
    to_apply: Vec<(Loc, Vec<OpMeta>)>,
}

/// Creates WAL segment `seq` and makes it and its name durable.
fn create_segment(storage: &dyn Storage, seq: u64) -> Result<Segment, RepoError> {
    let name = wal_file_name(seq);
    let file = storage
        .create(&name)
        .map_err(|e| RepoError::io(format!("creating WAL segment {name}"), e))?;
    file.append(&file_header(FileKind::Wal, seq))
        .and_then(|()| file.sync())
        .map_err(|e| RepoError::io(format!("writing the header of {name}"), e))?;
    storage
        .sync_dir()
        .map_err(|e| RepoError::io("fsync of the repository directory", e))?;
    Ok(Segment {
        seq,
        file,
        len: HEADER_LEN as u64,
    })
}

impl Wal {
    /// Starts the writer on a new segment `first_seq`.
    pub(crate) fn start(
        storage: Arc<dyn Storage>,
        content: ContentRepo,
        live: Arc<Mutex<LiveSet>>,
        first_seq: u64,
        config: &RepoConfig,
        stats: Arc<WalStats>,
    ) -> Result<Self, RepoError> {
        let segment = create_segment(storage.as_ref(), first_seq)?;
        stats.segment.store(first_seq, Ordering::Relaxed);
        let (progress, _) = watch::channel(Progress::default());
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                next_lsn: 1,
                ..Queue::default()
            }),
            work: Condvar::new(),
            progress,
            policy: config.fsync,
            stats,
        });
        let writer = Writer {
            shared: shared.clone(),
            storage,
            content,
            live,
            segment,
            segment_bytes: config.segment_bytes.max(HEADER_LEN as u64 + 1),
            fatal: config.on_fatal,
            unsynced: false,
            last_sync: Instant::now(),
            to_apply: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name("sluice-wal".into())
            .spawn(move || {
                let shared = writer.shared.clone();
                let fatal_policy = writer.fatal;
                if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| writer.run())).is_err()
                {
                    // A bug, not an I/O error; still never carry on silently.
                    let e = RepoError::Stopped("the WAL writer panicked".into());
                    fatal(fatal_policy, &e);
                    shared
                        .progress
                        .send_modify(|p| p.failed = Some(e.to_string().into()));
                }
            })
            .map_err(|e| RepoError::io("starting the WAL writer thread", e))?;
        Ok(Self {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    fn failed(&self) -> Option<Arc<str>> {
        self.shared.progress.borrow().failed.clone()
    }

    /// Queues a framed record; returns its LSN.
    fn enqueue(&self, record: &[u8], meta: Vec<OpMeta>) -> Result<u64, RepoError> {
        if let Some(f) = self.failed() {
            return Err(RepoError::Stopped(f.to_string()));
        }
        let mut q = self.shared.queue.lock();
        if q.shutdown {
            return Err(RepoError::Stopped("the repository is closed".into()));
        }
        let lsn = q.next_lsn;
        q.next_lsn += 1;
        let offset = q.buf.len();
        q.buf.extend_from_slice(record);
        q.pending.push(Pending { lsn, offset, meta });
        drop(q);
        self.shared.work.notify_one();
        Ok(lsn)
    }

    /// Appends a framed record and waits until it is durable under the
    /// policy. Cancel-safe in the sense that dropping the future leaves the
    /// record queued: it is written, and recovery may see it.
    pub(crate) async fn commit(&self, record: &[u8], meta: Vec<OpMeta>) -> Result<(), RepoError> {
        let mut rx = self.shared.progress.subscribe();
        let lsn = self.enqueue(record, meta)?;
        self.shared.stats.commits.fetch_add(1, Ordering::Relaxed);
        let never = self.shared.policy == FsyncPolicy::Never;
        let p = rx
            .wait_for(|p| p.failed.is_some() || (if never { p.written } else { p.synced }) >= lsn)
            .await
            .map_err(|_| RepoError::Stopped("the WAL writer is gone".into()))?;
        match &p.failed {
            Some(f) if (if never { p.written } else { p.synced }) < lsn => {
                Err(RepoError::Stopped(f.to_string()))
            }
            _ => Ok(()),
        }
    }

    /// Closes the current segment (synced) and starts the next; returns the
    /// new segment's number. Everything committed before is durable and
    /// applied to the live set when this returns.
    pub(crate) fn rotate(&self) -> Result<u64, RepoError> {
        let (tx, rx) = std::sync::mpsc::channel();
        {
            let mut q = self.shared.queue.lock();
            if q.shutdown {
                return Err(RepoError::Stopped("the repository is closed".into()));
            }
            q.rotate.push(tx);
        }
        self.shared.work.notify_one();
        rx.recv()
            .unwrap_or_else(|_| Err(RepoError::Stopped("the WAL writer is gone".into())))
    }

    /// Writes and syncs what is pending, then stops the writer.
    pub(crate) fn close(&self) {
        self.shared.queue.lock().shutdown = true;
        self.shared.work.notify_one();
        if let Some(t) = self.thread.lock().take() {
            let _ = t.join();
        }
    }

    /// Marks the WAL failed (a checkpoint hit a fatal error).
    pub(crate) fn fail(&self, why: &str) {
        self.shared
            .progress
            .send_modify(|p| p.failed = Some(why.into()));
    }
}

impl Drop for Wal {
    fn drop(&mut self) {
        self.close();
    }
}

/// Stops the process (or the repository) after a failed write or fsync.
pub(crate) fn fatal(policy: FatalPolicy, err: &RepoError) {
    tracing::error!(error = %err, "repository write failed; stopping: data written since the last good fsync cannot be trusted");
    if policy == FatalPolicy::Abort {
        eprintln!("sluice: fatal: repository write failed: {err}; stopping the process");
        std::process::abort();
    }
}

impl Writer {
    fn run(mut self) {
        loop {
            let (buf, pending, rotate, shutdown) = {
                let mut q = self.shared.queue.lock();
                loop {
                    if !q.buf.is_empty() || !q.rotate.is_empty() || q.shutdown {
                        break;
                    }
                    match (self.unsynced, self.shared.policy) {
                        (true, FsyncPolicy::Interval(d)) => {
                            let due = self.last_sync + d;
                            if Instant::now() >= due
                                || self.shared.work.wait_until(&mut q, due).timed_out()
                            {
                                break;
                            }
                        }
                        _ => self.shared.work.wait(&mut q),
                    }
                }
                (
                    std::mem::take(&mut q.buf),
                    std::mem::take(&mut q.pending),
                    std::mem::take(&mut q.rotate),
                    q.shutdown,
                )
            };
            let result = self
                .step(&buf, pending, !rotate.is_empty() || shutdown)
                .and_then(|()| {
                    if !rotate.is_empty() || self.segment.len >= self.segment_bytes {
                        self.rotate().map(Some)
                    } else {
                        Ok(None)
                    }
                });
            match result {
                Ok(new_segment) => {
                    for r in rotate {
                        let _ = r.send(
                            new_segment.ok_or_else(|| RepoError::Stopped("no rotation".into())),
                        );
                    }
                }
                Err(e) => {
                    fatal(self.fatal, &e);
                    let msg: Arc<str> = e.to_string().into();
                    self.shared
                        .progress
                        .send_modify(|p| p.failed = Some(msg.clone()));
                    for r in rotate {
                        let _ = r.send(Err(RepoError::Stopped(msg.to_string())));
                    }
                    self.refuse_rest(&msg);
                    return;
                }
            }
            if shutdown {
                return;
            }
        }
    }

    /// After a fatal error: fail whatever is still queued and stop taking more.
    fn refuse_rest(&self, msg: &Arc<str>) {
        let mut q = self.shared.queue.lock();
        q.shutdown = true;
        q.buf.clear();
        q.pending.clear();
        for r in q.rotate.drain(..) {
            let _ = r.send(Err(RepoError::Stopped(msg.to_string())));
        }
    }

    /// Writes one batch, syncs when due (or when `force_sync`), applies what
    /// became durable to the live set, then publishes the watermarks (so a
    /// commit's effects are visible when it returns).
    fn step(
        &mut self,
        buf: &[u8],
        pending: Vec<Pending>,
        force_sync: bool,
    ) -> Result<(), RepoError> {
        let policy = self.shared.policy;
        let mut written = None;
        if !buf.is_empty() {
            if policy != FsyncPolicy::Never && self.content.needs_sync() {
                self.content.sync()?;
                self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
            }
            let base = self.segment.len;
            self.segment.file.append(buf).map_err(|e| {
                RepoError::io(format!("writing {}", wal_file_name(self.segment.seq)), e)
            })?;
            self.segment.len += buf.len() as u64;
            self.unsynced = true;
            let stats = &self.shared.stats;
            stats.batches.fetch_add(1, Ordering::Relaxed);
            stats.bytes.fetch_add(buf.len() as u64, Ordering::Relaxed);
            stats
                .bytes_since_checkpoint
                .fetch_add(buf.len() as u64, Ordering::Relaxed);
            written = pending.last().map(|p| p.lsn);
            for p in pending {
                self.to_apply.push((
                    Loc {
                        file: FileRef::Wal(self.segment.seq),
                        offset: base + p.offset as u64,
                    },
                    p.meta,
                ));
            }
        }
        let due = match policy {
            FsyncPolicy::Always => true,
            FsyncPolicy::Interval(d) => self.last_sync.elapsed() >= d,
            FsyncPolicy::Never => false,
        };
        let synced = self.unsynced && (due || force_sync);
        if synced {
            self.sync()?;
        }
        if policy == FsyncPolicy::Never || !self.unsynced {
            self.apply();
        }
        self.shared.progress.send_modify(|p| {
            if let Some(w) = written {
                p.written = w;
            }
            if synced {
                p.synced = p.written;
            }
        });
        Ok(())
    }

    fn apply(&mut self) {
        let mut live = self.live.lock();
        for (loc, metas) in self.to_apply.drain(..) {
            for m in &metas {
                live.apply(m, loc);
            }
        }
    }

    fn sync(&mut self) -> Result<(), RepoError> {
        if self.shared.policy == FsyncPolicy::Never && self.content.needs_sync() {
            self.content.sync()?;
        }
        self.segment.file.sync().map_err(|e| {
            RepoError::io(format!("fsync of {}", wal_file_name(self.segment.seq)), e)
        })?;
        self.shared.stats.fsyncs.fetch_add(1, Ordering::Relaxed);
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }

    fn rotate(&mut self) -> Result<u64, RepoError> {
        if self.unsynced {
            self.sync()?;
            self.apply();
            self.shared.progress.send_modify(|p| p.synced = p.written);
        }
        let seq = self.segment.seq + 1;
        self.segment = create_segment(self.storage.as_ref(), seq)?;
        self.shared.stats.segment.store(seq, Ordering::Relaxed);
        Ok(seq)
    }
}
