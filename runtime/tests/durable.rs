//! The durable journal under a running engine: recovery into the right
//! connections, orphans kept, the content cap as back-pressure, and spill.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use sluice_flowfile_repo::RepoConfig;
use sluice_runtime::durable::{self, Opened};
use sluice_runtime::{Change, Content, Engine, EngineOptions, FlowFile};
use support::{flow, hold, received, wait_until};

const LONG: Duration = Duration::from_secs(20);

async fn start(yaml: &str, opened: &mut Opened) -> Arc<Engine> {
    Engine::start(
        flow(yaml),
        EngineOptions {
            journal: Some(opened.journal.clone()),
            recovered: std::mem::take(&mut opened.recovered),
        },
    )
    .await
    .unwrap()
}

/// Stops the engine and waits until nothing holds the repository, so it is
/// closed and its directory can be opened again.
async fn stop(engine: Arc<Engine>, opened: Opened) {
    engine.shutdown(Duration::from_secs(5)).await;
    drop(engine);
    let Opened {
        journal, durable, ..
    } = opened;
    drop(journal);
    wait_until("the repository to be released", LONG, || {
        Arc::strong_count(&durable) == 1
    })
    .await;
    drop(durable);
}

fn content(ff: &FlowFile) -> Vec<u8> {
    match &ff.content {
        Content::Memory(b) => b.to_vec(),
        Content::Stored(s) => s.read().unwrap().to_vec(),
    }
}

fn config() -> RepoConfig {
    RepoConfig {
        inline_limit: 64,
        ..RepoConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_flowfiles_come_back_to_their_connection_intact() {
    let dir = tempfile::tempdir().unwrap();
    hold("intact", true);
    let yaml = |count: u32| {
        format!(
            "name: t
processors:
  small: {{ type: TestGen, properties: {{ count: {count}, batch: 7, size: 8, penalize: true }}, scheduling: {{ penalty: 1s }} }}
  large: {{ type: TestGen, properties: {{ count: {count}, batch: 7, size: 1000 }} }}
  sink: {{ type: TestSink, properties: {{ bucket: intact }} }}
connections:
  - {{ name: q, from: small, relationship: success, to: sink }}
  - {{ name: r, from: large, relationship: success, to: sink }}
"
        )
    };
    let mut opened = durable::open(dir.path(), config()).unwrap();
    assert!(opened.recovered.is_empty());
    let engine = start(&yaml(30), &mut opened).await;
    wait_until("60 FlowFiles queued", LONG, || {
        engine.connection("q").unwrap().queued_count() == 30
            && engine.connection("r").unwrap().queued_count() == 30
    })
    .await;
    let mut before: BTreeMap<u64, (String, FlowFile)> = BTreeMap::new();
    for c in ["q", "r"] {
        for ff in engine.connection(c).unwrap().snapshot() {
            before.insert(ff.id, (c.to_string(), ff));
        }
    }
    stop(engine, opened).await;

    let mut opened = durable::open(dir.path(), config()).unwrap();
    assert!(opened.report.is_clean());
    assert_eq!(opened.recovered.len(), 60);
    for (conn, ff) in &opened.recovered {
        let (was_in, orig) = &before[&ff.id];
        assert_eq!(conn, was_in, "FlowFile {} back in its connection", ff.id);
        assert_eq!(ff.attributes, orig.attributes);
        assert_eq!(content(ff), content(orig));
        assert_eq!(ff.penalized_until, orig.penalized_until);
        assert_eq!(ff.lineage_start, orig.lineage_start);
        assert_eq!(ff.entry_date, orig.entry_date);
        let large = conn == "r";
        assert_eq!(
            matches!(ff.content, Content::Stored(_)),
            large,
            "large content is a claim"
        );
    }
    assert!(opened.recovered.iter().any(|(_, f)| f.penalized_until > 0));
    // Commit order is queue order.
    let q_seqs: Vec<u64> = opened
        .recovered
        .iter()
        .filter(|(c, _)| c == "q")
        .map(|(_, f)| f.attr("seq").unwrap().parse().unwrap())
        .collect();
    assert_eq!(q_seqs, (0..30).collect::<Vec<_>>());

    // The sink takes them now; they leave the repository.
    hold("intact", false);
    let engine = start(&yaml(0), &mut opened).await;
    wait_until("60 received", LONG, || received("intact").len() == 60).await;
    let mut got = received("intact");
    got.sort_unstable();
    let mut want: Vec<u64> = (0..30).chain(0..30).collect();
    want.sort_unstable();
    assert_eq!(got, want);
    stop(engine, opened).await;
    let opened = durable::open(dir.path(), config()).unwrap();
    assert!(opened.recovered.is_empty());
    let leftover: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("content-"))
        .collect();
    assert!(
        leftover.is_empty(),
        "released content deleted: {leftover:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowfiles_of_a_removed_connection_are_kept_aside_across_checkpoints() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = "name: t
processors:
  gen: { type: TestGen, properties: { count: 0 } }
  sink: { type: TestSink, properties: { bucket: orphans } }
connections:
  - { name: q, from: gen, relationship: success, to: sink }
";
    let opened = durable::open(dir.path(), config()).unwrap();
    let ffs: Vec<FlowFile> = (0..5).map(|_| FlowFile::new()).collect();
    let changes = ffs
        .iter()
        .map(|f| Change::Put {
            flowfile: f,
            connection: "removed-from-the-flow",
        })
        .collect();
    opened.journal.commit(changes).await.unwrap();
    let Opened {
        journal, durable, ..
    } = opened;
    drop(journal);
    drop(durable);
    let mut opened = durable::open(dir.path(), config()).unwrap();
    for round in 0..2 {
        let engine = start(yaml, &mut opened).await;
        assert_eq!(
            engine.status().orphaned.get("removed-from-the-flow"),
            Some(&5),
            "round {round}"
        );
        opened.durable.repository().checkpoint().unwrap();
        stop(engine, opened).await;
        opened = durable::open(dir.path(), config()).unwrap();
        assert_eq!(opened.recovered.len(), 5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_content_repository_holds_sources_back_then_resumes() {
    let dir = tempfile::tempdir().unwrap();
    hold("cap", true);
    let cfg = RepoConfig {
        inline_limit: 16,
        content_segment_bytes: 500,
        content_max_bytes: 2_000,
        ..RepoConfig::default()
    };
    let yaml = "name: t
processors:
  gen: { type: TestGen, properties: { count: 40, batch: 4, size: 200 }, scheduling: { yield: 100ms } }
  sink: { type: TestSink, properties: { bucket: cap } }
connections:
  - { name: q, from: gen, relationship: success, to: sink }
";
    let mut opened = durable::open(dir.path(), cfg.clone()).unwrap();
    let engine = start(yaml, &mut opened).await;
    let gen_status = |e: &Engine| {
        e.status()
            .processors
            .into_iter()
            .find(|p| p.id == "gen")
            .unwrap()
    };
    wait_until("the source to be held back", LONG, || {
        let s = gen_status(&engine);
        s.back_pressured
            && s.bulletins
                .iter()
                .any(|b| b.message.contains("content repository full"))
    })
    .await;
    let queued = engine.connection("q").unwrap().queued_count();
    assert!(queued > 0 && queued < 40, "{queued} queued at the cap");
    hold("cap", false);
    wait_until("all 40 delivered", LONG, || received("cap").len() == 40).await;
    let mut got = received("cap");
    got.sort_unstable();
    assert_eq!(got, (0..40).collect::<Vec<_>>(), "nothing lost or doubled");
    assert!(!gen_status(&engine).back_pressured);
    stop(engine, opened).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sink_behind_spill_neither_stalls_its_sibling_nor_loses_data() {
    let dir = tempfile::tempdir().unwrap();
    hold("slow", true);
    let yaml = "name: t
processors:
  gen: { type: TestGen, properties: { count: 3000, batch: 100, size: 100 } }
  fast: { type: TestSink, properties: { bucket: fast } }
  slow: { type: TestSink, properties: { bucket: slow } }
connections:
  - { name: to-fast, from: gen, relationship: success, to: fast, back_pressure: { max_count: 100 } }
  - { name: to-slow, from: gen, relationship: success, to: slow, back_pressure: { max_count: 100 }, when_full: spill, spill: { max_disk: 1 GB } }
";
    let mut opened = durable::open(dir.path(), config()).unwrap();
    let engine = start(yaml, &mut opened).await;
    let slow = engine.connection("to-slow").unwrap().clone();
    wait_until("the sibling to get everything", LONG, || {
        received("fast").len() == 3000
    })
    .await;
    wait_until("everything queued for the stalled sink", LONG, || {
        slow.queued_count() == 3000
    })
    .await;
    // Memory holds the threshold plus at most one batch; the rest is on disk.
    assert!(
        slow.spilled_count() >= 2800,
        "spilled {}",
        slow.spilled_count()
    );
    assert!(!slow.is_back_pressured());
    let swap = dir.path().join("swap");
    let files = walk(&swap);
    assert!(files >= 28, "{files} swap files under {}", swap.display());
    let status = engine.status();
    let st = status
        .connections
        .iter()
        .find(|c| c.id == "to-slow")
        .unwrap();
    assert_eq!(st.when_full, "spill");
    assert_eq!(st.spilled, slow.spilled_count());
    // The WAL has the spilled FlowFiles too: a stop here loses nothing.
    drop(slow);
    stop(engine, opened).await;
    let mut opened = durable::open(dir.path(), config()).unwrap();
    assert_eq!(opened.recovered.len(), 3000);
    assert_eq!(walk(&swap), 0, "swap files are cleared at start");
    // The sink comes back: everything arrives, in order.
    hold("slow", false);
    let yaml_after = yaml.replace("count: 3000", "count: 0");
    let engine = start(&yaml_after, &mut opened).await;
    wait_until("the stalled sink to catch up", LONG, || {
        received("slow").len() == 3000
    })
    .await;
    assert_eq!(received("slow"), (0..3000).collect::<Vec<_>>());
    stop(engine, opened).await;
}

fn walk(dir: &std::path::Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.map(|e| {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            walk(&e.path())
        } else {
            1
        }
    })
    .sum()
}
