//! Crash test: the real `sluice` binary runs ListenHTTP -> UpdateAttribute ->
//! PutFile with its repository while a steady client posts numbered
//! requests; it is killed with SIGKILL at random moments, round after round,
//! and restarted on the same repository. At the end every request that got a
//! 200 must be in the output directory at least once. Duplicates (delivered
//! again after a crash: at-least-once) are counted and printed; a loss fails.
//!
//! Rounds: 20 by default, `SLUICE_CRASH_ROUNDS` to change. The kill moment of
//! each round is random: after a random number (1..=150) of new 200s, plus a
//! random number of extra requests sent (0..=20) in flight.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rand::Rng;
use sluice_testkit::{finished_files, free_port, wait_for_port, wait_until};

const CLIENTS: usize = 8;

fn flow(port: u16, out: &Path) -> String {
    format!(
        "name: crash
processors:
  listen:
    type: ListenHTTP
    properties: {{ port: {port}, header_attributes: [x-request-id] }}
    scheduling: {{ batch_size: 100 }}
  tag:
    type: UpdateAttribute
    properties:
      set: {{ filename: '{{{{http.header.x-request-id}}}}.txt', stage: tagged }}
  save:
    type: PutFile
    properties: {{ directory: '{}', conflict: unique }}
    auto_terminate: [success, failure]
connections:
  - {{ from: listen, relationship: success, to: tag }}
  - {{ from: tag, relationship: success, to: save }}
",
        out.display()
    )
}

fn start(flow: &Path, repo: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .arg("run")
        .arg(flow)
        .arg("--repository")
        .arg(repo)
        .args(["--no-ui", "--status-interval", "0"])
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap()
}

/// Request ids found in the output directory, with how often each is there.
fn delivered(out: &Path) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    // A temporary file left by a kill is not delivered: finished names only.
    for path in finished_files(out) {
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let body = std::fs::read_to_string(&path).unwrap();
        let id: u64 = body
            .strip_prefix('r')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected content {body:?} in {name}"));
        assert!(name.starts_with(&format!("r{id}")), "{name} holds {body}");
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

struct Client {
    acked: Mutex<BTreeSet<u64>>,
    next: AtomicU64,
    sent: AtomicU64,
    stop: AtomicBool,
}

async fn client_loop(c: Arc<Client>, url: String) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    while !c.stop.load(Ordering::Relaxed) {
        let id = c.next.fetch_add(1, Ordering::Relaxed);
        let res = http
            .post(&url)
            .header("x-request-id", format!("r{id}"))
            .body(format!("r{id}"))
            .send()
            .await;
        c.sent.fetch_add(1, Ordering::Relaxed);
        match res {
            Ok(r) if r.status() == 200 => {
                c.acked.lock().insert(id);
            }
            // Down or pushing back: pace the retries a little.
            _ => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
}

fn check_repo(repo: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["repo", "check"])
        .arg(repo)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        matches!(out.status.code(), Some(0 | 1)),
        "repo check failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !text.contains("DAMAGE") && !text.contains("CONTENT LOST"),
        "a kill may only tear the tail:\n{text}"
    );
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_request_survives_repeated_sigkill() {
    let rounds: usize = std::env::var("SLUICE_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out");
    let repo = tmp.path().join("repo");
    let log = tmp.path().join("sluice.log");
    std::fs::create_dir_all(&out).unwrap();
    let port = free_port();
    let flow_path: PathBuf = tmp.path().join("crash.yaml");
    std::fs::write(&flow_path, flow(port, &out)).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    let client = Arc::new(Client {
        acked: Mutex::new(BTreeSet::new()),
        next: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        stop: AtomicBool::new(false),
    });
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        tasks.push(tokio::spawn(client_loop(
            client.clone(),
            format!("http://{addr}/"),
        )));
    }

    let mut rng = rand::rng();
    let mut torn_tails = 0;
    for round in 0..rounds {
        let mut child = start(&flow_path, &repo, &log);
        wait_for_port(addr, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "round {round}: sluice did not listen: {e}\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        let acks = rng.random_range(1..=150usize);
        let extra = rng.random_range(0..=20u64);
        let base = client.acked.lock().len();
        wait_until(Duration::from_mins(1), || {
            client.acked.lock().len() >= base + acks
        })
        .await
        .unwrap_or_else(|e| {
            panic!(
                "round {round}: no progress: {e}\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        let sent = client.sent.load(Ordering::Relaxed);
        wait_until(Duration::from_mins(1), || {
            client.sent.load(Ordering::Relaxed) >= sent + extra
        })
        .await
        .unwrap();
        child.kill().unwrap(); // SIGKILL
        let status = child.wait().unwrap();
        assert!(!status.success(), "round {round}: killed, not exited");
        if check_repo(&repo).contains("torn tail") {
            torn_tails += 1;
        }
    }

    // Stop the client, restart once more and let everything drain.
    client.stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.unwrap();
    }
    let acked: BTreeSet<u64> = client.acked.lock().clone();
    let mut child = start(&flow_path, &repo, &log);
    wait_for_port(addr, Duration::from_secs(30)).await.unwrap();
    let drained = wait_until(Duration::from_mins(2), || {
        let d = delivered(&out);
        acked.iter().all(|id| d.contains_key(id))
    })
    .await;
    child.kill().unwrap();
    child.wait().unwrap();

    let d = delivered(&out);
    let lost: Vec<u64> = acked
        .iter()
        .filter(|id| !d.contains_key(id))
        .copied()
        .collect();
    let duplicates: u32 = d.values().map(|n| n - 1).sum();
    let unacked_delivered = d.keys().filter(|id| !acked.contains(id)).count();
    println!(
        "crash test: {rounds} SIGKILL rounds, {} requests sent, {} acknowledged (200), \
         {} delivered, {duplicates} duplicates, {unacked_delivered} delivered without a 200 \
         (killed before the answer), {torn_tails} torn tails cut, {} lost",
        client.sent.load(Ordering::Relaxed),
        acked.len(),
        d.len(),
        lost.len()
    );
    assert!(
        lost.is_empty() && drained.is_ok(),
        "{} acknowledged requests lost: {:?}...\n{}",
        lost.len(),
        &lost[..lost.len().min(20)],
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    assert!(
        acked.len() >= rounds,
        "the client made progress every round"
    );
}
