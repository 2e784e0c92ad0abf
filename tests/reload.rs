//! Hot reload in the engine: a processor's properties and a connection's
//! settings change while data flows; no FlowFile is lost or duplicated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{Shared, registry, wait_until};
use sluice_runtime::{Engine, EngineOptions, parse_flow};

fn flow(version: &str, max_count: u32) -> String {
    format!(
        "name: reload
processors:
  src:
    type: TestCounterSource
    scheduling: {{ batch_size: 50 }}
  tag:
    type: UpdateAttribute
    properties: {{ set: {{ version: \"{version}\" }} }}
  sink:
    type: TestRecordingSink
connections:
  - {{ from: src, relationship: success, to: tag, back_pressure: {{ max_count: {max_count} }} }}
  - {{ from: tag, relationship: success, to: sink }}
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_while_flowing_loses_and_duplicates_nothing() {
    let shared = Arc::new(Shared::default());
    let reg = registry(&shared);
    let parse =
        |y: &str| parse_flow(y, std::path::Path::new("reload.yaml"), &reg, &|_| None).unwrap();
    let engine = Engine::start(parse(&flow("one", 500)), EngineOptions::default())
        .await
        .unwrap();
    // Let data flow, with a backlog queued in front of `tag`.
    engine.set_running("sink", false);
    wait_until("backlog", Duration::from_secs(10), || {
        engine
            .connection("src.success->tag")
            .is_some_and(|c| c.is_back_pressured())
    })
    .await;
    engine.set_running("sink", true);
    wait_until("sink receiving", Duration::from_secs(10), || {
        shared.received.lock().len() > 100
    })
    .await;

    // Change tag's properties and the connection's threshold.
    let summary = engine.reload(parse(&flow("two", 800))).await.unwrap();
    assert_eq!(summary.changed, vec!["tag".to_string()]);
    assert_eq!(
        summary.connections_changed,
        vec!["src.success->tag".to_string()]
    );
    assert_eq!(summary.flowfiles_orphaned, 0);
    assert_eq!(
        engine
            .connection("src.success->tag")
            .unwrap()
            .settings()
            .max_count,
        800
    );

    // Data keeps flowing through the new version.
    wait_until("new version", Duration::from_secs(10), || {
        shared
            .received
            .lock()
            .iter()
            .any(|(_, a)| a.get("version") == Some("two"))
    })
    .await;
    // A no-op reload changes nothing.
    assert!(
        engine
            .reload(parse(&flow("two", 800)))
            .await
            .unwrap()
            .is_empty()
    );

    engine.set_running("src", false);
    let src = engine.node("src").unwrap().context().stats().clone();
    wait_until("source idle", Duration::from_secs(5), || {
        src.active_tasks.load(Ordering::SeqCst) == 0
    })
    .await;
    let produced = shared.next_seq.load(Ordering::SeqCst);
    wait_until("drained", Duration::from_secs(20), || engine.is_quiescent()).await;
    let mut seqs: Vec<u64> = shared.received.lock().iter().map(|(s, _)| *s).collect();
    seqs.sort_unstable();
    let expected: Vec<u64> = (0..produced).collect();
    assert_eq!(
        seqs.len() as u64,
        produced,
        "lost or duplicated FlowFiles across the reload"
    );
    assert_eq!(seqs, expected);
    let versions: Vec<&str> = vec!["one", "two"];
    for v in versions {
        assert!(
            shared
                .received
                .lock()
                .iter()
                .any(|(_, a)| a.get("version") == Some(v)),
            "no FlowFile went through version {v}"
        );
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_connection_moves_its_queue_to_the_successor() {
    let shared = Arc::new(Shared::default());
    let reg = registry(&shared);
    let parse =
        |y: &str| parse_flow(y, std::path::Path::new("reload.yaml"), &reg, &|_| None).unwrap();
    let engine = Engine::start(parse(&flow("one", 300)), EngineOptions::default())
        .await
        .unwrap();
    engine.set_running("tag", false);
    wait_until("backlog", Duration::from_secs(10), || {
        engine
            .connection("src.success->tag")
            .is_some_and(|c| c.is_back_pressured())
    })
    .await;
    engine.set_running("src", false);
    let queued = engine
        .connection("src.success->tag")
        .unwrap()
        .queued_count();
    // Rename the connection: the queue moves to the new one from src.success.
    let renamed = flow("one", 300).replace(
        "{ from: src, relationship: success, to: tag,",
        "{ name: renamed, from: src, relationship: success, to: tag,",
    );
    let summary = engine.reload(parse(&renamed)).await.unwrap();
    assert_eq!(summary.flowfiles_moved, queued);
    assert_eq!(engine.connection("renamed").unwrap().queued_count(), queued);
    engine.shutdown(Duration::from_secs(5)).await;
}
