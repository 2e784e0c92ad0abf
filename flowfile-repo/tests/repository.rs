//! The repository end to end on in-memory storage with injected faults.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{by_id, config, ff, ids, kill, open, put_claim, put_tx};
use sluice_flowfile_repo::{
    FormatError, FsyncPolicy, MemStorage, RecoveryMode, RepoConfig, RepoError, Repository, Storage,
    Transaction, checkpoint_file_name, content_file_name, wal_file_name,
};

#[tokio::test]
async fn committed_flowfiles_survive_power_loss_with_everything_intact() {
    let s = MemStorage::new();
    let cfg = config();
    let (repo, rec) = open(&s, &cfg);
    assert!(rec.flowfiles.is_empty());
    let a = ff(
        1,
        "in",
        b"alpha",
        &[("filename", "a.txt"), ("mime.type", "text/plain")],
    );
    let b = ff(2, "in", b"", &[]);
    let c = ff(3, "out", b"gamma", &[("k", "v")]);
    repo.commit(put_tx(&[a.clone(), b.clone(), c.clone()]))
        .await
        .unwrap();
    // b leaves the flow, a moves on with a new attribute.
    let mut a2 = a.clone();
    a2.connection = "out".into();
    a2.attributes.push(("tagged".into(), "yes".into()));
    let mut tx = put_tx(&[a2.clone()]);
    tx.delete(2);
    repo.commit(tx).await.unwrap();
    kill(repo, &s);

    let (_repo, rec) = open(&s, &cfg);
    assert!(rec.report.is_clean(), "{:?}", rec.report);
    // Commit order is kept: c was committed before a's move.
    assert_eq!(ids(&rec), vec![3, 1]);
    let got = by_id(&rec);
    assert_eq!(got[&1], a2);
    assert_eq!(got[&3], c);
    assert_eq!(got[&3].penalized_until, 9_000_003, "penalisation intact");
    assert_eq!(rec.report.max_id, 3);
}

#[tokio::test]
async fn concurrent_commits_share_fsyncs() {
    let s = MemStorage::new();
    s.set_sync_delay(Duration::from_millis(5));
    let (repo, _) = open(&s, &config());
    let repo = Arc::new(repo);
    let before = repo.status().fsyncs;
    let n = 200u64;
    let mut tasks = Vec::new();
    for id in 1..=n {
        let r = repo.clone();
        tasks.push(tokio::spawn(async move {
            r.commit(put_tx(&[ff(id, "q", b"x", &[])])).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let st = repo.status();
    let fsyncs = st.fsyncs - before;
    assert_eq!(st.commits, n);
    assert!(
        fsyncs * 4 <= n,
        "{n} concurrent commits took {fsyncs} fsyncs in {} batches",
        st.batches
    );
    assert_eq!(st.live, n);
}

#[tokio::test]
async fn every_fsync_policy_keeps_what_it_promises() {
    // always and interval: a commit that returned survives power loss.
    for policy in [
        FsyncPolicy::Always,
        FsyncPolicy::Interval(Duration::from_millis(20)),
    ] {
        let s = MemStorage::new();
        let cfg = RepoConfig {
            fsync: policy,
            ..config()
        };
        let (repo, _) = open(&s, &cfg);
        for id in 1..=5 {
            repo.commit(put_tx(&[ff(id, "q", b"x", &[])]))
                .await
                .unwrap();
        }
        kill(repo, &s);
        let (_r, rec) = open(&s, &cfg);
        assert_eq!(ids(&rec), vec![1, 2, 3, 4, 5], "{policy}");
    }
    // never: survives the process dying (the OS keeps what was written)...
    let s = MemStorage::new();
    let cfg = RepoConfig {
        fsync: FsyncPolicy::Never,
        ..config()
    };
    let (repo, _) = open(&s, &cfg);
    let syncs = s.syncs();
    repo.commit(put_tx(&[ff(1, "q", b"x", &[])])).await.unwrap();
    assert_eq!(s.syncs(), syncs, "never means no fsync per commit");
    let what_the_os_has = s.deep_copy();
    kill(repo, &s);
    let (_r, rec) = open(&what_the_os_has, &cfg);
    assert_eq!(ids(&rec), vec![1]);
    // ...but not power loss.
    let (_r, rec) = open(&s, &cfg);
    assert!(rec.flowfiles.is_empty());
}

#[tokio::test]
async fn interval_policy_batches_fsyncs() {
    let s = MemStorage::new();
    let cfg = RepoConfig {
        fsync: FsyncPolicy::Interval(Duration::from_millis(50)),
        ..config()
    };
    let (repo, _) = open(&s, &cfg);
    let repo = Arc::new(repo);
    let before = repo.status().fsyncs;
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for id in 1..=40u64 {
        let r = repo.clone();
        tasks.push(tokio::spawn(async move {
            r.commit(put_tx(&[ff(id, "q", b"x", &[])])).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    let fsyncs = repo.status().fsyncs - before;
    let allowed = started.elapsed().as_millis() / 50 + 2;
    assert!(
        u128::from(fsyncs) <= allowed,
        "{fsyncs} fsyncs in {:?}",
        started.elapsed()
    );
}

/// Commits `n` single-put records and returns the WAL segment's bytes and
/// the offset where each record starts.
async fn segment_with_records(s: &MemStorage, n: u64) -> (String, Vec<usize>) {
    let (repo, _) = open(s, &config());
    let seg = wal_file_name(repo.status().wal_segment);
    let mut starts = Vec::new();
    for id in 1..=n {
        starts.push(s.contents(&seg).unwrap().len());
        repo.commit(put_tx(&[ff(
            id,
            "q",
            format!("body {id}").as_bytes(),
            &[("n", "v")],
        )]))
        .await
        .unwrap();
    }
    kill(repo, s);
    (seg, starts)
}

#[tokio::test]
async fn truncation_at_every_byte_is_cut_and_reported() {
    let base = MemStorage::new();
    let (seg, starts) = segment_with_records(&base, 3).await;
    let full = base.contents(&seg).unwrap().len();
    let cfg = config();
    for cut in starts[0]..full {
        let s = base.deep_copy();
        s.truncate_file(&seg, cut);
        let (_repo, rec) = open(&s, &cfg);
        // Records wholly before the cut survive.
        let complete: Vec<u64> = (1..=3u64)
            .filter(|id| {
                let i = usize::try_from(*id).unwrap() - 1;
                starts.get(i + 1).copied().unwrap_or(full) <= cut
            })
            .collect();
        assert_eq!(ids(&rec), complete, "cut at {cut}");
        let torn_at = starts.get(complete.len()).copied();
        match torn_at {
            Some(at) if at < cut => {
                assert_eq!(rec.report.damage.len(), 1, "cut at {cut}");
                let d = &rec.report.damage[0];
                assert!(d.tail);
                assert_eq!(d.damage.file, seg);
                assert_eq!(d.damage.offset, at as u64, "cut at {cut}");
                assert!(d.damage.error.is_torn(), "{}", d.damage.error);
                // The tail is gone from disk.
                assert_eq!(s.contents(&seg).unwrap().len(), at);
            }
            _ => assert!(rec.report.is_clean(), "cut at {cut} (record boundary)"),
        }
    }
}

#[tokio::test]
async fn a_flipped_bit_in_the_last_record_is_cut_as_a_tail() {
    let base = MemStorage::new();
    let (seg, starts) = segment_with_records(&base, 3).await;
    let s = base.deep_copy();
    s.flip_bit(&seg, starts[2] + 20, 1);
    let (_repo, rec) = open(&s, &config());
    assert_eq!(ids(&rec), vec![1, 2]);
    let d = &rec.report.damage[0];
    assert!(d.tail);
    assert_eq!(d.damage.offset, starts[2] as u64);
    assert_eq!(d.damage.error, FormatError::Checksum);
}

#[tokio::test]
async fn a_flipped_bit_before_intact_records_refuses_to_start_unless_told() {
    let base = MemStorage::new();
    let (seg, starts) = segment_with_records(&base, 3).await;
    for byte in [starts[1], starts[1] + 5, starts[1] + 30] {
        let s = base.deep_copy();
        s.flip_bit(&seg, byte, 4);
        let err = Repository::open(Arc::new(s.clone()), config()).unwrap_err();
        match &err {
            RepoError::Damaged(d) => {
                assert_eq!(d.file, seg);
                assert_eq!(d.offset, starts[1] as u64, "flip at {byte}");
            }
            other => panic!("flip at {byte}: {other}"),
        }
        assert!(err.to_string().contains("sluice repo check"), "{err}");
        // Skip-damaged keeps every intact record and reports the skipped one.
        let cfg = RepoConfig {
            recovery: RecoveryMode::SkipDamaged,
            ..config()
        };
        let (repo, rec) = open(&s, &cfg);
        assert_eq!(ids(&rec), vec![1, 3], "flip at {byte}");
        assert_eq!(rec.report.damage.len(), 1);
        assert!(!rec.report.damage[0].tail);
        // The skipped record is gone for good: the next start is clean.
        drop(repo);
        let (_repo, rec) = open(&s, &config());
        assert_eq!(ids(&rec), vec![1, 3]);
        assert!(rec.report.is_clean(), "{:?}", rec.report.damage);
    }
}

#[tokio::test]
async fn checkpoints_drop_old_segments_and_keep_start_up_short() {
    let s = MemStorage::new();
    let cfg = RepoConfig {
        segment_bytes: 4096,
        ..config()
    };
    {
        let (repo, _) = open(&s, &cfg);
        let keep: Vec<_> = (1..=10).map(|id| ff(id, "q", b"stays", &[])).collect();
        repo.commit(put_tx(&keep)).await.unwrap();
        kill(repo, &s);
    }
    let mut bytes_read = Vec::new();
    let mut next = 11u64;
    for round in 0..12 {
        let (repo, rec) = open(&s, &cfg);
        bytes_read.push(rec.report.bytes_read);
        assert_eq!(ids(&rec), (1..=10).collect::<Vec<_>>(), "round {round}");
        // Churn: 300 FlowFiles come and go through several segments.
        for _ in 0..30 {
            let batch: Vec<_> = (0..10).map(|i| ff(next + i, "q", &[7; 50], &[])).collect();
            repo.commit(put_tx(&batch)).await.unwrap();
            let mut tx = Transaction::new();
            for f in &batch {
                tx.delete(f.id);
            }
            repo.commit(tx).await.unwrap();
            next += 10;
        }
        assert!(repo.status().wal_segment > 3, "the churn spans segments");
        repo.checkpoint().unwrap();
        kill(repo, &s);
        let files = s.list().unwrap();
        assert!(files.len() <= 3, "covered segments removed: {files:?}");
    }
    let (first, last) = (bytes_read[1], bytes_read[11]);
    assert!(
        last <= first + 100,
        "recovery reads {last} bytes after 12 rounds vs {first} after 1"
    );
    assert!(last < 2_000, "recovery reads {last} bytes");
}

#[tokio::test]
async fn a_checkpoint_interrupted_at_any_step_loses_nothing() {
    let base = MemStorage::new();
    let cfg = RepoConfig {
        segment_bytes: 2048,
        ..config()
    };
    let (repo, _) = open(&base, &cfg);
    for id in 1..=40u64 {
        repo.commit(put_tx(&[ff(
            id,
            "q",
            &[u8::try_from(id).unwrap(); 40],
            &[("n", "v")],
        )]))
        .await
        .unwrap();
    }
    let mut tx = Transaction::new();
    for id in (1..=40).step_by(4) {
        tx.delete(id);
    }
    repo.commit(tx).await.unwrap();
    // A first checkpoint, so the interrupted one also replaces an old one.
    repo.checkpoint().unwrap();
    for id in 41..=50u64 {
        repo.commit(put_tx(&[ff(id, "r", b"late", &[])]))
            .await
            .unwrap();
    }
    kill(repo, &base);
    let (repo, expected) = open(&base, &cfg);
    let expected = by_id(&expected);
    assert_eq!(expected.len(), 40);
    kill(repo, &base);

    let mut completed = false;
    for steps in 0..200 {
        let s = base.deep_copy();
        let (repo, _) = open(&s, &cfg);
        s.fail_after(steps);
        let result = repo.checkpoint();
        let finished = result.is_ok() && !s.faulted();
        kill(repo, &s);
        let (_repo, rec) = open(&s, &cfg);
        assert_eq!(by_id(&rec), expected, "checkpoint cut after {steps} writes");
        assert!(rec.report.damage.iter().all(|d| d.tail));
        if finished {
            completed = true;
            break;
        }
    }
    assert!(completed, "the checkpoint never completed");
}

#[tokio::test]
async fn content_claims_survive_a_crash_and_read_back_checked() {
    let s = MemStorage::new();
    let cfg = RepoConfig {
        inline_limit: 16,
        ..config()
    };
    let (repo, _) = open(&s, &cfg);
    let big: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let h = repo.content().store(&big).unwrap();
    let mut tx = Transaction::new();
    put_claim(&mut tx, 7, "q", h.claim());
    repo.commit(tx).await.unwrap();
    // Content stored but never committed: garbage after a crash.
    let orphan = repo.content().store(&[1; 100]).unwrap();
    let claim = h.claim();
    drop(h);
    drop(orphan);
    kill(repo, &s);
    let (repo, rec) = open(&s, &cfg);
    assert_eq!(rec.flowfiles.len(), 1);
    assert_eq!(rec.flowfiles[0].claim(), Some(claim));
    let handle = repo.content().handle(claim);
    assert_eq!(&handle.read().unwrap()[..], &big[..]);
    assert!(rec.report.lost_content.is_empty());
}

#[tokio::test]
async fn releasing_every_claim_deletes_the_segment_even_across_restarts() {
    let s = MemStorage::new();
    let cfg = RepoConfig {
        content_segment_bytes: 300,
        ..config()
    };
    let (repo, _) = open(&s, &cfg);
    let mut claims = Vec::new();
    for id in 1..=6u64 {
        let h = repo
            .content()
            .store(&[u8::try_from(id).unwrap(); 200])
            .unwrap();
        let mut tx = Transaction::new();
        put_claim(&mut tx, id, "q", h.claim());
        repo.commit(tx).await.unwrap();
        claims.push(h.claim());
    }
    let segs: Vec<u64> = claims.iter().map(|c| c.segment).collect();
    assert_eq!(segs.len(), 6, "one claim per segment at this size");
    // Handles are gone; durable references keep every segment.
    for c in &claims[..5] {
        assert!(s.contents(&content_file_name(c.segment)).is_some());
    }
    kill(repo, &s);
    let (repo, rec) = open(&s, &cfg);
    assert_eq!(rec.flowfiles.len(), 6);
    // Deleting FlowFile 1 (nobody holds its content) deletes its segment.
    let mut tx = Transaction::new();
    tx.delete(1);
    repo.commit(tx).await.unwrap();
    assert!(s.contents(&content_file_name(segs[0])).is_none());
    // A FlowFile moved with the same claim keeps the segment.
    let mut tx = Transaction::new();
    put_claim(&mut tx, 2, "elsewhere", claims[1]);
    repo.commit(tx).await.unwrap();
    assert!(s.contents(&content_file_name(segs[1])).is_some());
    // A held handle keeps a segment whose FlowFile was deleted.
    let held = repo.content().handle(claims[2]);
    let mut tx = Transaction::new();
    tx.delete(3);
    repo.commit(tx).await.unwrap();
    assert!(s.contents(&content_file_name(segs[2])).is_some());
    drop(held);
    assert!(s.contents(&content_file_name(segs[2])).is_none());
    assert!(repo.content().usage().deleted >= 2);
}

#[tokio::test]
async fn the_content_cap_is_back_pressure_with_a_clear_status() {
    let s = MemStorage::new();
    let cfg = RepoConfig {
        content_segment_bytes: 250,
        content_max_bytes: 1_000,
        ..config()
    };
    let (repo, _) = open(&s, &cfg);
    let mut id = 0;
    let err = loop {
        id += 1;
        match repo.content().store(&[9; 200]) {
            Ok(h) => {
                let mut tx = Transaction::new();
                put_claim(&mut tx, id, "q", h.claim());
                repo.commit(tx).await.unwrap();
            }
            Err(e) => break e,
        }
        assert!(id < 20, "the cap never applied");
    };
    assert!(matches!(err, RepoError::ContentFull { cap: 1_000, .. }));
    assert!(err.to_string().contains("content repository full"), "{err}");
    assert!(repo.content().usage().used <= 1_000);
    assert!(repo.content().is_full(), "a refused store reports full");
    // Commits without new content still work (downstream drains).
    let mut tx = Transaction::new();
    for i in 1..id {
        tx.delete(i);
    }
    repo.commit(tx).await.unwrap();
    assert!(!repo.content().is_full());
    repo.content()
        .store(&[9; 200])
        .expect("room again once released");
}

#[tokio::test]
async fn flowfiles_of_any_connection_survive_checkpoints() {
    let s = MemStorage::new();
    let (repo, _) = open(&s, &config());
    repo.commit(put_tx(&[ff(
        1,
        "a-connection-that-will-be-removed",
        b"x",
        &[],
    )]))
    .await
    .unwrap();
    repo.checkpoint().unwrap();
    repo.checkpoint().unwrap();
    kill(repo, &s);
    let (_repo, rec) = open(&s, &config());
    assert_eq!(
        rec.flowfiles[0].connection,
        "a-connection-that-will-be-removed"
    );
}

#[tokio::test]
async fn a_failed_fsync_stops_the_repository_for_good() {
    let s = MemStorage::new();
    let (repo, _) = open(&s, &config());
    repo.commit(put_tx(&[ff(1, "q", b"x", &[])])).await.unwrap();
    s.fail_sync(true);
    let err = repo
        .commit(put_tx(&[ff(2, "q", b"x", &[])]))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Stopped(_)), "{err}");
    s.fail_sync(false);
    // Never retry and carry on: the repository accepts nothing more.
    let err = repo
        .commit(put_tx(&[ff(3, "q", b"x", &[])]))
        .await
        .unwrap_err();
    assert!(matches!(err, RepoError::Stopped(_)), "{err}");
    assert!(err.to_string().contains("fsync"), "{err}");
}

/// Run as a child process by the test below.
#[test]
fn abort_child() {
    if std::env::var_os("SLUICE_ABORT_CHILD").is_none() {
        return;
    }
    let s = MemStorage::new();
    let cfg = RepoConfig {
        on_fatal: sluice_flowfile_repo::FatalPolicy::Abort,
        ..config()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (repo, _) = open(&s, &cfg);
    s.fail_sync(true);
    let _ = rt.block_on(repo.commit(put_tx(&[ff(1, "q", b"x", &[])])));
    // Not reached: the fsync failure aborted the process.
    std::process::exit(0);
}

#[test]
fn a_failed_fsync_aborts_the_process_by_default() {
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "abort_child", "--nocapture", "--test-threads=1"])
        .env("SLUICE_ABORT_CHILD", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(6), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("fsync"), "{stderr}");
}

#[tokio::test]
async fn a_torn_header_of_a_new_segment_is_cut() {
    let s = MemStorage::new();
    let (repo, _) = open(&s, &config());
    repo.commit(put_tx(&[ff(1, "q", b"x", &[])])).await.unwrap();
    let seg = repo.status().wal_segment;
    kill(repo, &s);
    // A crash right after creating the next segment: half a header.
    let (repo, _) = open(&s, &config());
    let next = repo.status().wal_segment;
    assert_eq!(next, seg + 1);
    kill(repo, &s);
    s.truncate_file(&wal_file_name(next), 10);
    let (repo, rec) = open(&s, &config());
    assert_eq!(ids(&rec), vec![1]);
    assert_eq!(rec.report.damage.len(), 1);
    assert_eq!(rec.report.damage[0].damage.offset, 0);
    // The cut segment's number is written again: no gap in the sequence.
    assert_eq!(repo.status().wal_segment, next);
    repo.commit(put_tx(&[ff(2, "q", b"y", &[])])).await.unwrap();
    kill(repo, &s);
    let (_repo, rec) = open(&s, &config());
    assert!(rec.report.is_clean(), "{:?}", rec.report.damage);
    assert_eq!(ids(&rec), vec![1, 2]);
}

#[tokio::test]
async fn a_damaged_checkpoint_refuses_to_start() {
    let s = MemStorage::new();
    let (repo, _) = open(&s, &config());
    repo.commit(put_tx(&[ff(1, "q", b"x", &[]), ff(2, "q", b"y", &[])]))
        .await
        .unwrap();
    let g = repo.checkpoint().unwrap().generation;
    kill(repo, &s);
    s.flip_bit(&checkpoint_file_name(g), 40, 0);
    let err = Repository::open(Arc::new(s.clone()), config()).unwrap_err();
    assert!(
        matches!(&err, RepoError::Damaged(d) if d.file == checkpoint_file_name(g)),
        "{err}"
    );
}
