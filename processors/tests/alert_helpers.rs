//! MergeContent and ControlRate in the real engine: what waits stays in the
//! queue, the processor rests instead of spinning over it, and the wait ends
//! when the bin ages out or the rate allows.
//!
//! Run: `cargo test -p sluice-processors --test alert_helpers`.

#[path = "engine_common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::{SourceState, registry, start, tapped, text, wait_for};

fn invocations(engine: &sluice_runtime::Engine, id: &str) -> u64 {
    engine
        .node(id)
        .expect("node")
        .context()
        .stats()
        .invocations
        .load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_content_emits_a_small_bin_when_it_ages_out_without_spinning() {
    let source = Arc::new(SourceState::default());
    let yaml = r#"name: merge
processors:
  src:
    type: TestNumberedSource
    properties: { total: 3 }
  merge:
    type: MergeContent
    properties:
      min_entries: 100
      max_age: 700ms
      demarcator: ","
    auto_terminate: [merged, original, failure]
connections:
  - { from: src, relationship: success, to: merge }
"#;
    let engine = start(yaml, &registry(&source), None).await;
    let merged = engine.tap("merge", "merged").expect("tap");
    let original = engine.tap("merge", "original").expect("tap");
    let queue = engine.connection("src.success->merge").expect("connection");
    let started = Instant::now();
    source.go.store(true, Ordering::SeqCst);
    wait_for("three queued", Duration::from_secs(10), || {
        queue.queued_count() == 3 || !merged.lock().is_empty()
    })
    .await;
    wait_for("the aged bin", Duration::from_secs(10), || {
        !merged.lock().is_empty()
    })
    .await;
    let waited = started.elapsed();
    let out = tapped(&merged);
    assert_eq!(out.len(), 1);
    assert_eq!(text(&out[0]), "message 0,message 1,message 2");
    assert_eq!(out[0].attr("merge.count"), Some("3"));
    assert_eq!(tapped(&original).len(), 3);
    assert_eq!(queue.queued_count(), 0);
    assert!(
        waited >= Duration::from_millis(650),
        "merged after {waited:?}, before the bin was 700ms old"
    );
    let n = invocations(&engine, "merge");
    assert!(n < 20, "{n} triggers for one bin: the processor spun");
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_rate_spreads_a_burst_over_time_and_keeps_the_excess_queued() {
    let source = Arc::new(SourceState::default());
    let yaml = r"name: rate
processors:
  src:
    type: TestNumberedSource
    properties: { total: 12 }
    scheduling: { batch_size: 12 }
  limit:
    type: ControlRate
    properties:
      rate: 5
      period: 1s
    auto_terminate: [success, failure]
connections:
  - { from: src, relationship: success, to: limit }
";
    let engine = start(yaml, &registry(&source), None).await;
    let passed = engine.tap("limit", "success").expect("tap");
    let queue = engine.connection("src.success->limit").expect("connection");
    let started = Instant::now();
    source.go.store(true, Ordering::SeqCst);
    wait_for("the first five", Duration::from_secs(10), || {
        passed.lock().len() >= 5
    })
    .await;
    let first_five = started.elapsed();
    // The bucket refills at 5 per second: the other 7 wait in the queue.
    assert!(passed.lock().len() < 12 && queue.queued_count() > 0);
    wait_for("all twelve", Duration::from_secs(10), || {
        passed.lock().len() == 12
    })
    .await;
    let all = started.elapsed();
    assert!(
        all >= Duration::from_millis(1300) && all > first_five,
        "12 at 5/s with a burst of 5 needs 1.4 s; took {all:?}"
    );
    let order: Vec<String> = tapped(&passed).iter().map(text).collect();
    let want: Vec<String> = (0..12).map(|i| format!("message {i}")).collect();
    assert_eq!(order, want, "in order");
    let n = invocations(&engine, "limit");
    assert!(n < 40, "{n} triggers for 12 FlowFiles: the processor spun");
    engine.shutdown(Duration::from_secs(5)).await;
}
