//! The seam between sessions and durable storage.
//!
//! A session commit hands the journal every change it makes at once; the
//! journal returns when the changes are durable under its fsync policy. Only
//! then do FlowFiles appear in their downstream queues. Without a repository
//! there is no journal and commits are memory-only.

use futures::future::BoxFuture;

use crate::flowfile::FlowFile;

/// One change in a commit.
#[derive(Debug)]
pub enum Change<'a> {
    /// This FlowFile now sits in `connection`.
    Put {
        /// The FlowFile as committed.
        flowfile: &'a FlowFile,
        /// Connection id.
        connection: &'a str,
    },
    /// This FlowFile left the flow.
    Remove {
        /// Its id.
        id: u64,
    },
}

/// The journal failed: the commit did not happen.
#[derive(Debug, thiserror::Error)]
#[error("repository: {0}")]
pub struct JournalError(pub String);

/// Durable storage of FlowFile state changes.
pub trait Journal: Send + Sync {
    /// Records `changes` atomically. Returns once they are durable under the
    /// configured policy. Not cancel-safe: a commit dropped half-way may or
    /// may not be recorded (recovery sees it whole or not at all).
    fn commit<'a>(&'a self, changes: Vec<Change<'a>>) -> BoxFuture<'a, Result<(), JournalError>>;

    /// Prepares content for storage before a commit (e.g. moves large content
    /// into the content repository). Returns the content to keep in the FlowFile.
    ///
    /// # Errors
    /// The content could not be stored (disk full, I/O error).
    fn persist_content(&self, flowfile: &mut FlowFile) -> Result<(), JournalError> {
        let _ = flowfile;
        Ok(())
    }

    /// Whether storage is at its disk cap: sources are held back (and
    /// report back-pressure) until downstream processors release content.
    fn is_full(&self) -> bool {
        false
    }

    /// Where connections with `when_full: spill` keep their swap files
    /// (`None`: the system temp directory).
    fn spill_dir(&self) -> Option<std::path::PathBuf> {
        None
    }
}
