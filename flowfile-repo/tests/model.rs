//! Property test: random commits, checkpoints and power losses (with torn
//! unsynced writes) against a model of what was acknowledged.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::{config, open};
use proptest::prelude::*;
use sluice_flowfile_repo::{
    ContentRef, MemStorage, RepoConfig, Repository, StoredFlowFile, Transaction,
};

#[derive(Clone, Debug)]
enum Change {
    Put { id: u64, conn: u8, len: usize },
    Delete { id: u64 },
}

#[derive(Clone, Debug)]
enum Step {
    Commit(Vec<Change>),
    Checkpoint,
    /// Power loss; `keep` picks how much of each file's unsynced tail the
    /// disk had written; an in-flight commit is cut short if `in_flight`.
    Crash {
        keep: u8,
        in_flight: Option<Vec<Change>>,
    },
}

fn change() -> impl Strategy<Value = Change> {
    prop_oneof![
        3 => (1..30u64, 0..3u8, 0..300usize).prop_map(|(id, conn, len)| Change::Put { id, conn, len }),
        1 => (1..30u64).prop_map(|id| Change::Delete { id }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => proptest::collection::vec(change(), 1..5).prop_map(Step::Commit),
        1 => Just(Step::Checkpoint),
        1 => (any::<u8>(), proptest::option::of(proptest::collection::vec(change(), 1..4)))
            .prop_map(|(keep, in_flight)| Step::Crash { keep, in_flight }),
    ]
}

type Model = BTreeMap<u64, (String, Vec<u8>)>;

fn body(id: u64, len: usize, version: u64) -> Vec<u8> {
    (0..len)
        .map(|i| (id as usize * 7 + i + version as usize) as u8)
        .collect()
}

/// Builds the transaction (large bodies go to the content repository) and
/// the model after it.
fn build(
    repo: &Repository,
    changes: &[Change],
    model: &Model,
    version: u64,
) -> (Transaction, Model, Vec<sluice_flowfile_repo::ClaimHandle>) {
    let mut next = model.clone();
    let mut tx = Transaction::new();
    let mut handles = Vec::new();
    for c in changes {
        match c {
            Change::Put { id, conn, len } => {
                let data = body(*id, *len, version);
                let conn = format!("c{conn}");
                let content = if data.len() > repo.config().inline_limit {
                    let h = repo.content().store(&data).expect("store");
                    let claim = h.claim();
                    handles.push(h);
                    ContentRef::Claim(claim)
                } else {
                    ContentRef::Inline(Bytes::from(data.clone()))
                };
                tx.put_stored(&StoredFlowFile {
                    id: *id,
                    connection: conn.clone(),
                    attributes: vec![("v".into(), version.to_string())],
                    content,
                    lineage_start: 1,
                    entry_date: 2,
                    penalized_until: 0,
                });
                next.insert(*id, (conn, data));
            }
            Change::Delete { id } => {
                tx.delete(*id);
                next.remove(id);
            }
        }
    }
    (tx, next, handles)
}

fn observed(repo: &Repository, flowfiles: &[StoredFlowFile]) -> Model {
    flowfiles
        .iter()
        .map(|f| {
            let data = match &f.content {
                ContentRef::Inline(b) => b.to_vec(),
                ContentRef::Claim(c) => repo.content().read(c).expect("claim readable").to_vec(),
            };
            (f.id, (f.connection.clone(), data))
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn recovery_returns_exactly_what_was_acknowledged(steps in proptest::collection::vec(step(), 1..40)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let s = MemStorage::new();
            let cfg = RepoConfig {
                inline_limit: 100,
                segment_bytes: 1024,
                content_segment_bytes: 600,
                ..config()
            };
            let (mut repo, _) = open(&s, &cfg);
            let mut model = Model::new();
            let mut version = 0;
            for step in steps {
                match step {
                    Step::Commit(changes) => {
                        version += 1;
                        let (tx, next, _held) = build(&repo, &changes, &model, version);
                        repo.commit(tx).await.unwrap();
                        model = next;
                    }
                    Step::Checkpoint => {
                        repo.checkpoint().unwrap();
                    }
                    Step::Crash { keep, in_flight } => {
                        let mut maybe = None;
                        if let Some(changes) = in_flight {
                            version += 1;
                            let (tx, next, held) = build(&repo, &changes, &model, version);
                            // Poll once: the record is queued, perhaps written.
                            let _ = tokio::time::timeout(Duration::ZERO, repo.commit(tx)).await;
                            drop(held);
                            maybe = Some(next);
                        }
                        s.fail_after(0);
                        drop(repo);
                        s.crash_torn(|_, n| n * usize::from(keep) / 255);
                        let (r, rec) = open(&s, &cfg);
                        prop_assert!(
                            rec.report.damage.iter().all(|d| d.tail),
                            "only torn tails after a crash: {:?}", rec.report.damage
                        );
                        prop_assert!(rec.report.lost_content.is_empty(), "{:?}", rec.report.lost_content);
                        let got = observed(&r, &rec.flowfiles);
                        if got != model {
                            let next = maybe.take();
                            prop_assert!(Some(&got) == next.as_ref(), "recovered {:?}\nexpected {:?}", got.keys(), model.keys());
                            model = got;
                        }
                        repo = r;
                    }
                }
            }
            s.fail_after(0);
            drop(repo);
            s.crash();
            let (r, rec) = open(&s, &cfg);
            prop_assert_eq!(observed(&r, &rec.flowfiles), model);
            Ok(())
        })?;
    }
}
