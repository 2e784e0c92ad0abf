//! The durable FlowFile repository of Sluice: a write-ahead log of FlowFile
//! state changes, a content repository for large content, checkpoints, and
//! recovery that cuts and reports what a crash tore.
//!
//! - [`Repository::open`] recovers the live FlowFiles (with their
//!   connection) and a [`RecoveryReport`], then starts writing.
//! - [`Repository::commit`] records one [`Transaction`] (a session commit:
//!   PUTs and DELETEs) atomically and returns once it is durable under the
//!   [`FsyncPolicy`]; concurrent commits share one write and one fsync.
//! - [`ContentRepo::store`] puts content above the inline limit into content
//!   segments as reference-counted claims; released segments are deleted and
//!   a disk cap turns into [`RepoError::ContentFull`].
//! - Checkpoints run in the background; `check` and `dump` inspect a
//!   repository without changing it.
//!
//! The byte format is documented in [`format`]. Storage I/O goes through the
//! [`Storage`] trait; [`MemStorage`] is its in-memory twin with fault
//! injection. This crate knows nothing of the runtime: the runtime adapts
//! its FlowFiles to [`Transaction`]s and [`StoredFlowFile`]s.

mod checkpoint;
mod config;
mod content;
mod error;
pub mod format;
mod inspect;
mod live;
mod mem_storage;
mod names;
mod recovery;
mod repo;
mod storage;
mod wal;

pub use checkpoint::CheckpointStats;
pub use config::{FatalPolicy, FsyncPolicy, RecoveryMode, RepoConfig};
pub use content::{ClaimHandle, ContentRepo, ContentUsage};
pub use error::{Damage, RepoError};
pub use format::{
    Claim, ContentRef, ContentView, FormatError, PutHeader, StoredFlowFile, Transaction,
};
pub use inspect::{CheckReport, Dump, check, dump};
pub use mem_storage::MemStorage;
pub use names::{checkpoint_file_name, content_file_name, wal_file_name};
pub use recovery::{DamageReport, LostContent, RecoveryReport};
pub use repo::{Recovered, RepoStatus, Repository};
pub use storage::{DirStorage, Storage, WriteFile};
