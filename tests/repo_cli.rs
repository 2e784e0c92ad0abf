//! `sluice repo check` and `sluice repo dump` on a repository written by the
//! library, clean and damaged.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use sluice_flowfile_repo::{
    ContentRef, RepoConfig, Repository, StoredFlowFile, Transaction, wal_file_name,
};

fn sluice(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ff(id: u64, conn: &str, attrs: &[(&str, &str)]) -> StoredFlowFile {
    StoredFlowFile {
        id,
        connection: conn.into(),
        attributes: attrs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        content: ContentRef::Inline(Bytes::from_static(b"hello")),
        lineage_start: 1_700_000_000_000,
        entry_date: 1_700_000_000_000,
        penalized_until: 0,
    }
}

/// A repository with three live FlowFiles in two connections; returns the
/// WAL segment written and where its last record starts.
fn seed(dir: &Path) -> (String, u64) {
    let (repo, _) = Repository::open_dir(dir, RepoConfig::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let seg = wal_file_name(repo.status().wal_segment);
    let mut tx = Transaction::new();
    tx.put_stored(&ff(1, "listen.success->tag", &[("http.path", "/a")]));
    tx.put_stored(&ff(2, "listen.success->tag", &[("http.path", "/b")]));
    rt.block_on(repo.commit(tx)).unwrap();
    let last = std::fs::metadata(dir.join(&seg)).unwrap().len();
    let mut tx = Transaction::new();
    tx.put_stored(&ff(3, "tag.success->save", &[("env", "prod")]));
    rt.block_on(repo.commit(tx)).unwrap();
    drop(repo);
    (seg, last)
}

#[test]
fn dump_lists_live_flowfiles_per_connection_with_attributes() {
    let dir = tempfile::tempdir().unwrap();
    seed(dir.path());
    let (code, out, err) = sluice(&["repo", "dump", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("connection listen.success->tag: 2 FlowFiles"),
        "{out}"
    );
    assert!(
        out.contains("connection tag.success->save: 1 FlowFiles"),
        "{out}"
    );
    assert!(out.contains("http.path = /b"), "{out}");
    assert!(out.contains("env = prod"), "{out}");
    assert!(out.contains("FlowFile 3 (5 bytes, inline"), "{out}");
}

#[test]
fn check_says_clean_or_reports_damage_with_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let (seg, last) = seed(dir.path());
    let (code, out, err) = sluice(&["repo", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.trim_end().ends_with("clean"), "{out}");
    assert!(out.contains("live FlowFiles: 3"), "{out}");

    // A crash tore the last record.
    let path = dir.path().join(&seg);
    let len = std::fs::metadata(&path).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(len - 3)
        .unwrap();
    let (code, out, _) = sluice(&["repo", "check", dir.path().to_str().unwrap()]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains(&format!("{seg} at byte {last}")), "{out}");
    assert!(out.contains("torn tail"), "{out}");
    assert!(out.contains("NOT clean"), "{out}");
    // Check changes nothing: the tail is still there for recovery to cut.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len - 3);
    let (_, out, _) = sluice(&["repo", "dump", dir.path().to_str().unwrap()]);
    assert!(
        !out.contains("FlowFile 3 "),
        "the torn commit is not live: {out}"
    );
}

#[test]
fn check_of_a_missing_directory_is_an_error() {
    let (code, _, err) = sluice(&["repo", "check", "/nonexistent/sluice-repo"]);
    assert_eq!(code, 2);
    assert!(err.contains("not a directory"), "{err}");
}
