//! The repository: WAL, live set, content repository and checkpoints behind
//! one handle.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::checkpoint::{self, CheckpointStats};
use crate::config::{FsyncPolicy, RepoConfig};
use crate::content::{ContentRepo, ContentUsage};
use crate::error::RepoError;
use crate::format::{OpMeta, StoredFlowFile, Transaction};
use crate::live::LiveSet;
use crate::recovery::{self, RecoveryReport};
use crate::storage::{DirStorage, Storage};
use crate::wal::{Wal, WalStats, fatal};

/// What [`Repository::open`] recovered.
#[derive(Debug)]
pub struct Recovered {
    /// Live FlowFiles in the order they were committed, each with its connection.
    pub flowfiles: Vec<StoredFlowFile>,
    /// What recovery found and did.
    pub report: RecoveryReport,
}

/// Figures of a running repository.
#[derive(Clone, Debug)]
pub struct RepoStatus {
    /// The fsync policy.
    pub fsync: FsyncPolicy,
    /// FlowFiles live in the WAL.
    pub live: u64,
    /// WAL segment being written.
    pub wal_segment: u64,
    /// Commits since start.
    pub commits: u64,
    /// Write batches (group commits) since start.
    pub batches: u64,
    /// Fsyncs (WAL and content) since start.
    pub fsyncs: u64,
    /// WAL bytes written since start.
    pub wal_bytes: u64,
    /// Content repository usage.
    pub content: ContentUsage,
    /// The latest checkpoint taken by this process.
    pub last_checkpoint: Option<CheckpointStats>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    config: RepoConfig,
    wal: Wal,
    live: Arc<Mutex<LiveSet>>,
    content: ContentRepo,
    stats: Arc<WalStats>,
    checkpoint_lock: Mutex<()>,
    last_checkpoint: Mutex<Option<(Instant, CheckpointStats)>>,
    stop: Mutex<bool>,
    stop_cv: Condvar,
}

/// A durable FlowFile repository; see the crate docs.
pub struct Repository {
    inner: Arc<Inner>,
    checkpointer: Mutex<Option<JoinHandle<()>>>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repository")
            .field("storage", &self.inner.storage.describe())
            .finish_non_exhaustive()
    }
}

impl Repository {
    /// Opens (creating if needed) the repository in directory `dir`.
    ///
    /// # Errors
    /// See [`Repository::open`]; also when another process holds `dir`.
    pub fn open_dir(dir: &Path, config: RepoConfig) -> Result<(Self, Recovered), RepoError> {
        let storage = DirStorage::open(dir)
            .map_err(|e| RepoError::io(format!("opening repository {}", dir.display()), e))?;
        Self::open(Arc::new(storage), config)
    }

    /// Recovers the repository in `storage` and starts writing to it: torn
    /// tails are cut, leftovers of interrupted checkpoints removed, content
    /// nobody references deleted; then a new WAL segment is started and the
    /// background checkpointer runs.
    ///
    /// # Errors
    /// Damage recovery may not cut under the configured mode, or I/O failed.
    pub fn open(
        storage: Arc<dyn Storage>,
        config: RepoConfig,
    ) -> Result<(Self, Recovered), RepoError> {
        let replayed = recovery::replay(storage.as_ref(), config.recovery, true)?;
        let mut report = replayed.report;
        let next_content = replayed
            .content_segments
            .keys()
            .next_back()
            .map_or(1, |s| s + 1);
        let content = ContentRepo::new(
            storage.clone(),
            config.content_segment_bytes,
            config.content_max_bytes,
            &replayed.content_segments,
            next_content,
        );
        let mut live = LiveSet::new(content.clone());
        let mut entries: Vec<_> = replayed.live.into_values().collect();
        entries.sort_by_key(|(order, _, _)| *order);
        for (_, loc, ff) in &entries {
            live.apply(
                &OpMeta::Put {
                    id: ff.id,
                    claim_segment: ff.claim().map(|c| c.segment),
                },
                *loc,
            );
        }
        live.note_id(report.max_id);
        for seg in content.collect_garbage() {
            report
                .removed_files
                .push(crate::names::content_file_name(seg));
        }
        let live = Arc::new(Mutex::new(live));
        let stats = Arc::new(WalStats::default());
        let wal = Wal::start(
            storage.clone(),
            content.clone(),
            live.clone(),
            replayed.next_wal_seq,
            &config,
            stats.clone(),
        )?;
        let inner = Arc::new(Inner {
            storage,
            config,
            wal,
            live,
            content,
            stats,
            checkpoint_lock: Mutex::new(()),
            last_checkpoint: Mutex::new(None),
            stop: Mutex::new(false),
            stop_cv: Condvar::new(),
        });
        let repo = Repository {
            inner,
            checkpointer: Mutex::new(None),
        };
        if replayed.skipped {
            // Skipped damage stays in its segment until a checkpoint covers it.
            repo.checkpoint()?;
        }
        if !repo.inner.config.checkpoint_interval.is_zero() {
            let inner = repo.inner.clone();
            let handle = std::thread::Builder::new()
                .name("sluice-checkpoint".into())
                .spawn(move || checkpointer(&inner))
                .map_err(|e| RepoError::io("starting the checkpoint thread", e))?;
            *repo.checkpointer.lock() = Some(handle);
        }
        let flowfiles = entries.into_iter().map(|(_, _, ff)| ff).collect();
        Ok((repo, Recovered { flowfiles, report }))
    }

    /// Records `tx` atomically; returns once it is durable under the fsync
    /// policy. Concurrent commits share one write and one fsync.
    ///
    /// Not cancel-safe: dropping the future leaves the record queued, so it
    /// may be written and recovered (at-least-once).
    ///
    /// # Errors
    /// The repository stopped after a failed write or fsync, or is closed.
    pub async fn commit(&self, tx: Transaction) -> Result<(), RepoError> {
        if tx.is_empty() {
            return Ok(());
        }
        let (record, meta) = tx.into_record();
        self.inner.wal.commit(&record, meta).await
    }

    /// The content repository.
    #[must_use]
    pub fn content(&self) -> &ContentRepo {
        &self.inner.content
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// Takes a checkpoint now (blocking; also done in the background).
    ///
    /// # Errors
    /// A write or fsync failed (fatal, per the policy), or a record the
    /// live set points at is damaged (the checkpoint is abandoned).
    pub fn checkpoint(&self) -> Result<CheckpointStats, RepoError> {
        self.inner.checkpoint()
    }

    /// Current figures.
    #[must_use]
    pub fn status(&self) -> RepoStatus {
        let s = &self.inner.stats;
        RepoStatus {
            fsync: self.inner.config.fsync,
            live: self.inner.live.lock().len() as u64,
            wal_segment: s.segment.load(Ordering::Relaxed),
            commits: s.commits.load(Ordering::Relaxed),
            batches: s.batches.load(Ordering::Relaxed),
            fsyncs: s.fsyncs.load(Ordering::Relaxed),
            wal_bytes: s.bytes.load(Ordering::Relaxed),
            content: self.inner.content.usage(),
            last_checkpoint: self
                .inner
                .last_checkpoint
                .lock()
                .as_ref()
                .map(|(_, c)| c.clone()),
        }
    }

    /// Writes and syncs what is pending, stops the background threads and
    /// gives up the directory. Later commits fail; content handles still
    /// alive may read. Also done on drop.
    pub fn close(&self) {
        *self.inner.stop.lock() = true;
        self.inner.stop_cv.notify_all();
        if let Some(t) = self.checkpointer.lock().take() {
            let _ = t.join();
        }
        self.inner.wal.close();
        self.inner.content.close();
        self.inner.storage.release();
    }
}

impl Drop for Repository {
    fn drop(&mut self) {
        self.close();
    }
}

impl Inner {
    fn checkpoint(&self) -> Result<CheckpointStats, RepoError> {
        let _one_at_a_time = self.checkpoint_lock.lock();
        let started = Instant::now();
        let written_before = self.stats.bytes_since_checkpoint.load(Ordering::Relaxed);
        let generation = self.wal.rotate()?;
        let (snapshot, max_id) = {
            let live = self.live.lock();
            (live.snapshot_before(generation), live.max_id())
        };
        let storage = self.storage.as_ref();
        let result =
            checkpoint::write(storage, generation, &snapshot, max_id).and_then(|(moves, bytes)| {
                self.live.lock().relocate(&moves);
                let removed = checkpoint::remove_covered(storage, generation)?;
                Ok((bytes, removed))
            });
        let (bytes, removed) = match result {
            Ok(r) => r,
            Err(e) => {
                if matches!(e, RepoError::Io { .. }) {
                    fatal(self.config.on_fatal, &e);
                    self.wal.fail(&e.to_string());
                }
                return Err(e);
            }
        };
        self.stats.bytes_since_checkpoint.fetch_sub(
            written_before.min(self.stats.bytes_since_checkpoint.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        let stats = CheckpointStats {
            generation,
            flowfiles: snapshot.len() as u64,
            bytes,
            removed,
            elapsed: started.elapsed(),
        };
        tracing::debug!(
            generation,
            flowfiles = stats.flowfiles,
            bytes,
            "checkpoint taken"
        );
        *self.last_checkpoint.lock() = Some((Instant::now(), stats.clone()));
        Ok(stats)
    }
}

/// Background checkpoints: every `checkpoint_interval` while anything was
/// written, and whenever `checkpoint_wal_bytes` were written since the last.
fn checkpointer(inner: &Arc<Inner>) {
    let interval = inner.config.checkpoint_interval;
    let tick = interval.min(Duration::from_millis(200));
    let mut last = Instant::now();
    loop {
        {
            let mut stop = inner.stop.lock();
            if *stop {
                return;
            }
            let _ = inner.stop_cv.wait_for(&mut stop, tick);
            if *stop {
                return;
            }
        }
        let written = inner.stats.bytes_since_checkpoint.load(Ordering::Relaxed);
        let due = written >= inner.config.checkpoint_wal_bytes
            || (written > 0 && last.elapsed() >= interval);
        if !due {
            continue;
        }
        last = Instant::now();
        if let Err(e) = inner.checkpoint() {
            tracing::error!(error = %e, "checkpoint failed");
            if matches!(e, RepoError::Stopped(_)) {
                return;
            }
        }
    }
}
