//! Back-pressure end to end in the engine: a fast source into a stalled sink.
//! The connection holds at its threshold (by count, then by bytes), the source
//! stops being triggered, memory stays bounded, and once the sink resumes
//! everything drains in order.
//!
//! The source and sink here are test processors (a counter and a recorder) so
//! the assertions see every FlowFile; the engine, sessions and connections
//! are the real ones.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Shared, registry, rss_kib, wait_until};
use sluice_runtime::{Engine, EngineOptions, parse_flow};

async fn stalled_sink(back_pressure: &str, size: usize, batch: usize) {
    let shared = Arc::new(Shared::default());
    let registry = registry(&shared);
    let yaml = format!(
        "name: bp
processors:
  src:
    type: TestCounterSource
    properties: {{ size: {size} }}
    scheduling: {{ batch_size: {batch} }}
  sink:
    type: TestRecordingSink
connections:
  - {{ from: src, relationship: success, to: sink, back_pressure: {back_pressure} }}
"
    );
    let spec = parse_flow(&yaml, std::path::Path::new("bp.yaml"), &registry, &|_| None).unwrap();
    let engine = Engine::start(spec, EngineOptions::default()).await.unwrap();
    // Stall the sink, and wait for a trigger it had started to end: such a
    // trigger still takes a batch, which would let the source run again
    // after the queue first looked full (seen on a loaded CI machine).
    engine.set_running("sink", false);
    let sink = engine.node("sink").unwrap().context().stats().clone();
    wait_until("sink idle", Duration::from_secs(5), || {
        sink.active_tasks.load(Ordering::SeqCst) == 0
    })
    .await;
    let conn = engine.connection("src.success->sink").unwrap().clone();
    wait_until("back-pressure", Duration::from_secs(20), || {
        conn.is_back_pressured()
    })
    .await;
    let src = engine.node("src").unwrap().context().stats().clone();
    let rss_at_threshold = rss_kib();

    // The source is not triggered while the connection is full: over a window
    // its trigger count does not move and the queue stays within threshold +
    // one batch.
    let invocations = src.invocations.load(Ordering::SeqCst);
    let moved = tokio::time::timeout(Duration::from_millis(500), async {
        while src.invocations.load(Ordering::SeqCst) == invocations {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(moved.is_err(), "source was triggered while back-pressured");
    let s = conn.settings().clone();
    assert!(
        conn.queued_count() <= s.max_count + batch as u64,
        "queue overfilled: {}",
        conn.queued_count()
    );
    assert!(
        conn.queued_bytes() <= s.max_bytes + (batch * size) as u64,
        "queue overfilled: {} bytes",
        conn.queued_bytes()
    );
    let growth = rss_kib().saturating_sub(rss_at_threshold);
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB while stalled");
    let status = engine.status();
    assert!(status.connections[0].back_pressured);
    assert!(
        status
            .processors
            .iter()
            .find(|p| p.id == "src")
            .unwrap()
            .back_pressured
    );

    // Stop the source, resume the sink: everything drains, in order.
    engine.set_running("src", false);
    wait_until("source idle", Duration::from_secs(5), || {
        src.active_tasks.load(Ordering::SeqCst) == 0
    })
    .await;
    let produced = shared.next_seq.load(Ordering::SeqCst);
    engine.set_running("sink", true);
    wait_until("drained", Duration::from_secs(20), || {
        shared.received.lock().len() as u64 == produced
    })
    .await;
    let got: Vec<u64> = shared.received.lock().iter().map(|(s, _)| *s).collect();
    assert!(got.windows(2).all(|w| w[0] < w[1]), "out of order");
    assert_eq!(got.first().copied(), Some(0));
    assert_eq!(conn.queued_count(), 0);
    assert!(!conn.is_back_pressured());
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_by_count() {
    stalled_sink("{ max_count: 2000 }", 16, 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_pressure_by_bytes() {
    stalled_sink("{ max_bytes: 1 MB }", 4096, 50).await;
}

/// A stalled sink behind a `drop-oldest` edge does not stall its sibling: the
/// source keeps producing, the fast sink gets everything, the slow edge holds
/// at its threshold and counts what it dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_edge_does_not_stall_siblings() {
    let shared = Arc::new(Shared::default());
    let registry = registry(&shared);
    let yaml = "name: fanout
processors:
  src:
    type: TestCounterSource
    scheduling: { batch_size: 100 }
  fast:
    type: TestRecordingSink
  slow:
    type: TestRecordingSink
connections:
  - { from: src, relationship: success, to: fast, back_pressure: { max_count: 1000 } }
  - { from: src, relationship: success, to: slow, back_pressure: { max_count: 500 }, when_full: drop-oldest }
";
    let spec = parse_flow(
        yaml,
        std::path::Path::new("fanout.yaml"),
        &registry,
        &|_| None,
    )
    .unwrap();
    let engine = Engine::start(spec, EngineOptions::default()).await.unwrap();
    engine.set_running("slow", false);
    let slow = engine.connection("src.success->slow").unwrap();
    // Far more than both thresholds flows through while `slow` is stalled.
    wait_until("20k through the fast edge", Duration::from_secs(30), || {
        shared.received.lock().len() > 20_000
    })
    .await;
    assert!(
        slow.queued_count() <= 500 + 100,
        "slow edge overfilled: {}",
        slow.queued_count()
    );
    assert!(!slow.is_back_pressured(), "a drop-oldest edge never blocks");
    engine.set_running("src", false);
    let src = engine.node("src").unwrap().context().stats().clone();
    wait_until("source idle", Duration::from_secs(5), || {
        src.active_tasks.load(Ordering::SeqCst) == 0
    })
    .await;
    let produced = shared.next_seq.load(Ordering::SeqCst);
    wait_until("fast edge drained", Duration::from_secs(20), || {
        engine
            .connection("src.success->fast")
            .unwrap()
            .queued_count()
            == 0
    })
    .await;
    let dropped = slow.counters().dropped_overflow.load(Ordering::SeqCst);
    assert_eq!(
        dropped + slow.queued_count(),
        produced,
        "every FlowFile on the slow edge is queued or counted as dropped"
    );
    // What the slow edge kept is the newest, in order.
    let kept: Vec<u64> = slow
        .listing(usize::MAX)
        .iter()
        .map(|f| f.attr("seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(kept.first().copied(), Some(produced - kept.len() as u64));
    assert!(kept.windows(2).all(|w| w[0] + 1 == w[1]));
    let status = engine.status();
    let s = status
        .connections
        .iter()
        .find(|c| c.id == "src.success->slow")
        .unwrap();
    assert_eq!(s.dropped_overflow, dropped);
    engine.shutdown(Duration::from_secs(5)).await;
}
