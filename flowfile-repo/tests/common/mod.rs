//! Helpers shared by the repository tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use sluice_flowfile_repo::{
    ContentRef, ContentView, FatalPolicy, MemStorage, PutHeader, Recovered, RepoConfig, Repository,
    StoredFlowFile, Transaction,
};

/// A config for tests: failures stop the repository instead of the process,
/// no background checkpoints.
pub fn config() -> RepoConfig {
    RepoConfig {
        on_fatal: FatalPolicy::Stop,
        checkpoint_interval: Duration::ZERO,
        ..RepoConfig::default()
    }
}

pub fn open(s: &MemStorage, cfg: &RepoConfig) -> (Repository, Recovered) {
    Repository::open(Arc::new(s.clone()), cfg.clone()).expect("open")
}

/// The process dies: nothing more reaches the storage, then power is lost.
pub fn kill(repo: Repository, s: &MemStorage) {
    s.fail_after(0);
    drop(repo);
    s.crash();
}

pub fn ff(id: u64, conn: &str, body: &[u8], attrs: &[(&str, &str)]) -> StoredFlowFile {
    StoredFlowFile {
        id,
        connection: conn.to_string(),
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
            .collect(),
        content: ContentRef::Inline(Bytes::copy_from_slice(body)),
        lineage_start: 1_000 + id,
        entry_date: 2_000 + id,
        penalized_until: if id.is_multiple_of(3) {
            9_000_000 + id
        } else {
            0
        },
    }
}

pub fn put_tx(ffs: &[StoredFlowFile]) -> Transaction {
    let mut tx = Transaction::new();
    for f in ffs {
        tx.put_stored(f);
    }
    tx
}

pub fn put_claim(tx: &mut Transaction, id: u64, conn: &str, claim: sluice_flowfile_repo::Claim) {
    tx.put(
        PutHeader {
            id,
            connection: conn,
            lineage_start: 1,
            entry_date: 2,
            penalized_until: 0,
        },
        [("kind", "large")],
        ContentView::Claim(claim),
    );
}

pub fn by_id(r: &Recovered) -> BTreeMap<u64, StoredFlowFile> {
    r.flowfiles.iter().map(|f| (f.id, f.clone())).collect()
}

pub fn ids(r: &Recovered) -> Vec<u64> {
    r.flowfiles.iter().map(|f| f.id).collect()
}
