//! Benchmark: FlowFiles per second through ListenHTTP -> UpdateAttribute ->
//! PutFile with the FlowFile repository on (default fsync policy `always`)
//! against the same flow in memory, in one run; also the fsyncs per second
//! the repository did.
//!
//! A second pair runs ListenHTTP -> UpdateAttribute -> (terminate): PutFile
//! fsyncs every file it writes, so in the first pair both runs may be bound by
//! PutFile's own fsyncs; the second shows what the repository costs when the
//! sink is not disk-bound.
//!
//! Load: `BENCH_CLIENTS` (default 64) concurrent HTTP clients in this process
//! post 100-byte bodies as fast as they are answered, for `BENCH_SECS`
//! (default 10) after a 2 s warm-up. Throughput counts FlowFiles that left the
//! last processor (PutFile commits batches of at most 100, so the count moves
//! in small steps). `BENCH_VERBOSE=1` prints per-processor counters.
//!
//! Run: `cargo bench --bench repository`.

#[path = "common.rs"]
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_flowfile_repo::RepoConfig;
use sluice_runtime::durable::{self, DurableJournal};
use sluice_runtime::{Engine, EngineOptions, Journal, parse_flow};

fn flow(port: u16, out: Option<&Path>) -> String {
    let sink = match out {
        Some(dir) => format!(
            "  last:\n    type: PutFile\n    properties: {{ directory: '{}', conflict: unique }}\n    scheduling: {{ batch_size: 100 }}\n    auto_terminate: [success, failure]\n",
            dir.display()
        ),
        None => "  last:\n    type: UpdateAttribute\n    auto_terminate: [success]\n".to_string(),
    };
    format!(
        "name: bench-repository
defaults:
  provenance_events: 0
processors:
  listen:
    type: ListenHTTP
    properties: {{ port: {port}, max_pending: 10000 }}
    scheduling: {{ batch_size: 1000 }}
  tag:
    type: UpdateAttribute
    properties:
      set: {{ filename: 'r-{{{{http.header.x-request-id}}}}', stage: tagged }}
{sink}connections:
  - {{ from: listen, relationship: success, to: tag }}
  - {{ from: tag, relationship: success, to: last }}
"
    )
}

#[allow(clippy::struct_field_names)] // all rates, named as printed
struct Outcome {
    per_sec: f64,
    fsyncs_per_sec: Option<f64>,
    commits_per_sec: Option<f64>,
}

#[allow(clippy::cast_precision_loss)]
async fn run(durable_repo: bool, put_file: bool) -> Outcome {
    let tmp = tempfile::tempdir().expect("temp dir");
    let out = tmp.path().join("out");
    std::fs::create_dir_all(&out).expect("out dir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().expect("addr").port()
    };
    let spec = parse_flow(
        &flow(port, put_file.then_some(out.as_path())),
        Path::new("bench.yaml"),
        &sluice_processors::registry(),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("bench flow invalid:\n{e}"));
    let mut repo: Option<Arc<DurableJournal>> = None;
    let mut journal: Option<Arc<dyn Journal>> = None;
    if durable_repo {
        let opened = durable::open(&tmp.path().join("repo"), RepoConfig::default()).expect("repo");
        repo = Some(opened.durable.clone());
        journal = Some(opened.journal);
    }
    let engine = Engine::start(
        spec,
        EngineOptions {
            journal,
            recovered: Vec::new(),
        },
    )
    .await
    .expect("engine starts");
    let last = engine.node("last").expect("last").context().stats().clone();

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let clients = common::env_or::<u64>("BENCH_CLIENTS", 64);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let stop = stop.clone();
        let sent = sent.clone();
        let url = format!("http://127.0.0.1:{port}/");
        tasks.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            let body = vec![b'x'; 100];
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let r = http
                    .post(&url)
                    .header("x-request-id", format!("{c}-{n}"))
                    .body(body.clone())
                    .send()
                    .await;
                n += 1;
                if matches!(&r, Ok(r) if r.status() == 200) {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await; // warm-up
    let secs = common::env_or::<u64>("BENCH_SECS", 10);
    let before = last.flowfiles_in.load(Ordering::Relaxed);
    let status_before = repo.as_ref().map(|r| r.repository().status());
    let t0 = Instant::now();
    tokio::time::sleep(Duration::from_secs(secs)).await; // the measured window
    let took = t0.elapsed().as_secs_f64();
    let done = last.flowfiles_in.load(Ordering::Relaxed) - before;
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        for p in engine.status().processors {
            eprintln!(
                "  {:<8} invocations {:>8} in {:>8} out {:>8} rollbacks {} errors {} bp {}",
                p.id,
                p.invocations,
                p.flowfiles_in,
                p.flowfiles_out,
                p.rollbacks,
                p.errors,
                p.back_pressured
            );
        }
        for c in engine.status().connections {
            eprintln!("  {:<20} queued {}", c.id, c.queued_count);
        }
    }
    let status_after = repo.as_ref().map(|r| r.repository().status());
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    engine.shutdown(Duration::from_secs(10)).await;
    let (fsyncs, commits) = match (status_before, status_after) {
        (Some(a), Some(b)) => (
            Some((b.fsyncs - a.fsyncs) as f64 / took),
            Some((b.commits - a.commits) as f64 / took),
        ),
        _ => (None, None),
    };
    Outcome {
        per_sec: done as f64 / took,
        fsyncs_per_sec: fsyncs,
        commits_per_sec: commits,
    }
}

fn main() {
    if !common::invoked_as_bench(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "FlowFiles/s through ListenHTTP -> UpdateAttribute -> sink, {} clients, {} s each",
        common::env_or::<u64>("BENCH_CLIENTS", 64),
        common::env_or::<u64>("BENCH_SECS", 10)
    );
    for (put_file, label) in [(true, "PutFile"), (false, "terminate")] {
        let memory = rt.block_on(run(false, put_file));
        let durable = rt.block_on(run(true, put_file));
        println!(
            "sink {label:<9}  in memory {:>9.0}/s   durable (fsync always) {:>9.0}/s   ratio {:.2}   repository fsyncs {:.0}/s, commits {:.0}/s",
            memory.per_sec,
            durable.per_sec,
            durable.per_sec / memory.per_sec.max(1e-9),
            durable.fsyncs_per_sec.unwrap_or(0.0),
            durable.commits_per_sec.unwrap_or(0.0),
        );
    }
}
