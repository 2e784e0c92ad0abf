//! The durable [`Journal`]: session commits go to the FlowFile repository
//! (`sluice-flowfile-repo`) before FlowFiles enter their downstream queues.
//!
//! - A session commit becomes one WAL record: a PUT for every FlowFile
//!   delivered to a connection, a DELETE for every one removed, terminated or
//!   dropped by a connection. It returns once the record is durable under the
//!   fsync policy, so a source that acknowledges after `commit().await` (HTTP
//!   200) acknowledges only what survives a crash.
//! - Content larger than the repository's inline limit is moved into the
//!   content repository by [`Journal::persist_content`] and travels as a
//!   claim ([`StoredContent`]) read back, checksum-verified, on demand.
//! - The repository keeps its own live set of FlowFile locations, fed by the
//!   WAL, and checkpoints from it on its own thread (every minute, or after
//!   256 MiB of WAL): no checkpoint task in the runtime and nothing asked of
//!   the engine. FlowFiles recovered for a connection that is gone stay in
//!   the WAL (the engine keeps them aside and never deletes them), so
//!   checkpoints keep them too.
//! - Connections with `when_full: spill` keep their swap files under
//!   `<repository>/swap/`; the WAL holds every spilled FlowFile, so the swap
//!   directory is cleared at start.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::future::BoxFuture;
use sluice_flowfile_repo::{
    ClaimHandle, RecoveryReport, RepoConfig, RepoError, Repository, Transaction,
};

use crate::flowfile::{Content, FlowFile, StoredContent, reserve_ids_above};
use crate::journal::{Change, Journal, JournalError};
use crate::record;

/// Content in the content repository.
struct RepoContent(ClaimHandle);

impl fmt::Debug for RepoContent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StoredContent for RepoContent {
    fn len(&self) -> u64 {
        self.0.claim().length
    }

    fn read(&self) -> std::io::Result<bytes::Bytes> {
        self.0.read().map_err(std::io::Error::other)
    }

    fn locator(&self) -> (u64, u64, u64) {
        let c = self.0.claim();
        (c.segment, c.offset, c.length)
    }
}

/// A [`Journal`] over a [`Repository`].
pub struct DurableJournal {
    repo: Arc<Repository>,
    spill_dir: PathBuf,
}

impl DurableJournal {
    /// The repository behind it (status, checkpoints, close).
    #[must_use]
    pub fn repository(&self) -> &Arc<Repository> {
        &self.repo
    }
}

fn journal_error(e: &RepoError) -> JournalError {
    JournalError(e.to_string())
}

impl Journal for DurableJournal {
    fn commit<'a>(&'a self, changes: Vec<Change<'a>>) -> BoxFuture<'a, Result<(), JournalError>> {
        let mut tx = Transaction::new();
        for c in &changes {
            match c {
                Change::Put {
                    flowfile,
                    connection,
                } => record::put(&mut tx, flowfile, connection),
                Change::Remove { id } => tx.delete(*id),
            }
        }
        Box::pin(async move { self.repo.commit(tx).await.map_err(|e| journal_error(&e)) })
    }

    fn persist_content(&self, flowfile: &mut FlowFile) -> Result<(), JournalError> {
        if let Content::Memory(b) = &flowfile.content
            && b.len() > self.repo.config().inline_limit
        {
            let handle = self
                .repo
                .content()
                .store(b)
                .map_err(|e| journal_error(&e))?;
            flowfile.content = Content::Stored(Arc::new(RepoContent(handle)));
        }
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.repo.content().is_full()
    }

    fn spill_dir(&self) -> Option<PathBuf> {
        Some(self.spill_dir.clone())
    }
}

/// A repository opened for a run.
pub struct Opened {
    /// The journal to hand to the engine.
    pub journal: Arc<dyn Journal>,
    /// The same, with access to the repository.
    pub durable: Arc<DurableJournal>,
    /// Live FlowFiles with the connection they were in, in commit order.
    pub recovered: Vec<(String, FlowFile)>,
    /// What recovery found and did (damage cut, leftovers removed...).
    pub report: RecoveryReport,
}

/// Opens (creating if needed) the repository in `dir`, recovers its
/// FlowFiles and clears the spill directory.
///
/// # Errors
/// The repository is damaged beyond what the recovery mode may cut, held by
/// another process, or cannot be read.
pub fn open(dir: &Path, config: RepoConfig) -> Result<Opened, RepoError> {
    let (repo, recovered) = Repository::open_dir(dir, config)?;
    let repo = Arc::new(repo);
    let spill_dir = dir.join("swap");
    if spill_dir.exists() {
        std::fs::remove_dir_all(&spill_dir).map_err(|e| RepoError::Io {
            what: format!("clearing {}", spill_dir.display()),
            source: e,
        })?;
    }
    reserve_ids_above(recovered.report.max_id);
    let mut flowfiles = Vec::with_capacity(recovered.flowfiles.len());
    for stored in recovered.flowfiles {
        let connection = stored.connection.clone();
        let ff = record::restore(stored, |claim| {
            Ok::<_, std::convert::Infallible>(
                Arc::new(RepoContent(repo.content().handle(claim))) as Arc<dyn StoredContent>
            )
        });
        match ff {
            Ok(ff) => flowfiles.push((connection, ff)),
            Err(never) => match never {},
        }
    }
    let durable = Arc::new(DurableJournal { repo, spill_dir });
    Ok(Opened {
        journal: durable.clone(),
        durable,
        recovered: flowfiles,
        report: recovered.report,
    })
}
