//! Benchmark: FlowFiles per second through a five-processor in-memory chain,
//! against a peer in the same run.
//!
//! Chain: GenerateFlowFile -> UpdateAttribute (template) -> RouteOnAttribute
//! (CEL) -> AttributesToJSON -> UpdateAttribute (terminates).
//!
//! Peer: the same per-message work (attribute map, the same template, the
//! same CEL predicate, the same JSON) in four tokio tasks joined by bounded
//! channels carrying batches of 1,000, the way a hand-written pipeline would
//! do it. The ratio shows what the runtime (sessions, connections, scheduling,
//! accounting) costs over bare channels.
//!
//! Run: `cargo bench --bench chain` (BENCH_N=2000000 for a longer run).

#[path = "common.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_runtime::{Attributes, Engine, EngineOptions, Escape, Predicate, Template, parse_flow};

const BATCH: usize = 1000;

fn flow(n: usize) -> String {
    format!(
        r#"name: bench-chain
defaults:
  provenance_events: 0
  scheduling: {{ batch_size: {BATCH} }}
processors:
  gen:
    type: GenerateFlowFile
    properties:
      count: {n}
      batch: {BATCH}
      content: "disk /var/log is 91% full on host"
      attributes:
        host: "web-{{{{seq}}}}"
        severity: "{{{{seq}}}}"
  tag:
    type: UpdateAttribute
    properties:
      set:
        env: production
        colour: "{{{{#if (lte (num severity) 3)}}}}danger{{{{else}}}}good{{{{/if}}}}"
  route:
    type: RouteOnAttribute
    properties:
      routes:
        urgent: 'attr["colour"] == "danger"'
  json:
    type: AttributesToJSON
    auto_terminate: [failure]
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
connections:
  - {{ from: gen, relationship: success, to: tag }}
  - {{ from: tag, relationship: success, to: route }}
  - {{ from: route, relationships: [urgent, unmatched], to: json }}
  - {{ from: json, relationship: success, to: sink }}
"#
    )
}

async fn sluice_run(n: usize) -> Duration {
    let registry = sluice_processors::registry();
    let spec = parse_flow(
        &flow(n),
        std::path::Path::new("bench.yaml"),
        &registry,
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("bench flow invalid:\n{e}"));
    let start = Instant::now();
    let engine = Engine::start(spec, EngineOptions::default())
        .await
        .expect("engine starts");
    let sink = engine.node("sink").expect("sink").context().stats().clone();
    while sink
        .flowfiles_dropped
        .load(std::sync::atomic::Ordering::Relaxed)
        < n as u64
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    engine.shutdown(Duration::from_secs(5)).await;
    took
}

struct Msg {
    attrs: Attributes,
    content: bytes::Bytes,
}

async fn peer_run(n: usize) -> Duration {
    let tpl = Arc::new(
        Template::compile(
            "{{#if (lte (num severity) 3)}}danger{{else}}good{{/if}}",
            Escape::None,
        )
        .expect("template"),
    );
    let pred = Arc::new(Predicate::compile(r#"attr["colour"] == "danger""#).expect("predicate"));
    let cap = 10;
    let (tx1, mut rx1) = tokio::sync::mpsc::channel::<Vec<Msg>>(cap);
    let (tx2, mut rx2) = tokio::sync::mpsc::channel::<Vec<Msg>>(cap);
    let (tx3, mut rx3) = tokio::sync::mpsc::channel::<Vec<Msg>>(cap);
    let (tx4, mut rx4) = tokio::sync::mpsc::channel::<Vec<Msg>>(cap);
    let start = Instant::now();
    tokio::spawn(async move {
        let content = bytes::Bytes::from_static(b"disk /var/log is 91% full on host");
        let mut seq = 0usize;
        while seq < n {
            let mut batch = Vec::with_capacity(BATCH);
            for _ in 0..BATCH.min(n - seq) {
                let mut attrs = Attributes::new();
                attrs.insert("host", format!("web-{seq}"));
                attrs.insert("severity", seq.to_string());
                batch.push(Msg {
                    attrs,
                    content: content.clone(),
                });
                seq += 1;
            }
            if tx1.send(batch).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(mut batch) = rx1.recv().await {
            for m in &mut batch {
                let orig = m.attrs.clone();
                m.attrs.insert("env", "production");
                let c = tpl.render(&orig).unwrap_or_default();
                m.attrs.insert("colour", c);
            }
            if tx2.send(batch).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(mut batch) = rx2.recv().await {
            for m in &mut batch {
                let urgent = pred.eval(&m.attrs).unwrap_or(false);
                m.attrs
                    .insert("route", if urgent { "urgent" } else { "unmatched" });
            }
            if tx3.send(batch).await.is_err() {
                return;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(mut batch) = rx3.recv().await {
            for m in &mut batch {
                let map: BTreeMap<&str, &str> = m.attrs.iter().collect();
                m.content = bytes::Bytes::from(serde_json::to_vec(&map).unwrap_or_default());
            }
            if tx4.send(batch).await.is_err() {
                return;
            }
        }
    });
    let mut got = 0;
    while let Some(batch) = rx4.recv().await {
        got += batch.len();
        if got >= n {
            break;
        }
    }
    start.elapsed()
}

fn main() {
    if !common::invoked_as_bench(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let n: usize = common::env_or("BENCH_N", 1_000_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    // Warm up both once, then measure each three times, alternating.
    rt.block_on(sluice_run(n / 10));
    rt.block_on(peer_run(n / 10));
    let mut s = Vec::new();
    let mut p = Vec::new();
    for _ in 0..3 {
        s.push(per_sec(rt.block_on(sluice_run(n))));
        p.push(per_sec(rt.block_on(peer_run(n))));
    }
    let best = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
    let (sb, pb) = (best(&s), best(&p));
    println!("chain of 5 processors, {n} FlowFiles, best of 3:");
    println!("  sluice engine : {sb:>10.0} FlowFiles/s");
    println!("  bare channels : {pb:>10.0} messages/s (same per-message work)");
    println!("  ratio sluice/bare = {:.2}", sb / pb);
}
