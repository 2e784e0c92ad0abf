//! Shared by the outbound integration tests: a numbered test source, running a
//! flow from YAML, reading status, and the fault scenario every sink passes
//! (remote side down -> queue full -> source back-pressured -> remote back ->
//! everything delivered).
//!
//! The source is a test processor (`TestSequence`: a fixed number of numbered
//! FlowFiles) so the tests can count exactly what must arrive; the sinks,
//! engine, sessions and connections are the real ones.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sluice_runtime::{
    BuildContext, BuildError, ConnectionStatus, Content, Engine, EngineOptions, InputRequirement,
    ProcessContext, ProcessError, ProcessSession, Processor, ProcessorStatus, ProcessorType,
    PropKind, Properties, PropertyDescriptor, Registry, RelationshipDef, async_trait, parse_flow,
};

const SEQ_PROPS: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "count",
        PropKind::Integer {
            min: 0,
            max: 1_000_000,
        },
        "FlowFiles to make in all",
    ),
    PropertyDescriptor::optional(
        "per_trigger",
        PropKind::Integer { min: 1, max: 1000 },
        Some("1"),
        "FlowFiles per trigger",
    ),
];

/// A source of `count` FlowFiles numbered 0.. : attribute `seq`, `filename`
/// `msg-NNNN.txt`, `syslog.severity` = seq % 8, content `message NNNN\n`.
/// Counter `generated`.
pub struct SequenceType;

struct Sequence {
    count: u64,
    per_trigger: u64,
    next: AtomicU64,
}

impl ProcessorType for SequenceType {
    fn name(&self) -> &'static str {
        "TestSequence"
    }
    fn description(&self) -> &'static str {
        "test source: a fixed number of numbered FlowFiles"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SEQ_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "numbered FlowFiles")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Sequence {
            count: p.int("count")? as u64,
            per_trigger: p.int("per_trigger")? as u64,
            next: AtomicU64::new(0),
        }))
    }
    fn example(&self) -> &'static str {
        "count: 10"
    }
}

#[async_trait]
impl Processor for Sequence {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for _ in 0..self.per_trigger {
            let n = self.next.load(Ordering::SeqCst);
            if n >= self.count {
                break;
            }
            self.next.store(n + 1, Ordering::SeqCst);
            let mut ff = s.create();
            ff.attributes.insert("seq", n.to_string());
            ff.attributes.insert("filename", format!("msg-{n:04}.txt"));
            ff.attributes.insert("syslog.severity", (n % 8).to_string());
            ff.content = Content::Memory(Bytes::from(format!("message {n:04}\n")));
            s.transfer(ff, "success");
            ctx.counter("generated").fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

/// The real registry plus `TestSequence`.
pub fn registry() -> Registry {
    let mut r = sluice_processors::registry();
    r.register(Arc::new(SequenceType));
    r
}

/// Validates and starts a flow.
pub async fn start_flow(yaml: &str) -> Arc<Engine> {
    let spec = parse_flow(
        yaml,
        std::path::Path::new("outbound-test.yaml"),
        &registry(),
        &|k| std::env::var(k).ok(),
    )
    .unwrap_or_else(|e| panic!("flow does not validate:\n{e}"));
    Engine::start(spec, EngineOptions::default()).await.unwrap()
}

/// A processor's status.
pub fn processor(engine: &Engine, id: &str) -> ProcessorStatus {
    engine
        .status()
        .processors
        .into_iter()
        .find(|p| p.id == id)
        .unwrap_or_else(|| panic!("no processor {id}"))
}

/// A connection's status.
pub fn connection(engine: &Engine, id: &str) -> ConnectionStatus {
    engine
        .status()
        .connections
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no connection {id}"))
}

/// A named counter of a processor (0 when never touched).
pub fn counter(engine: &Engine, id: &str, name: &str) -> u64 {
    processor(engine, id)
        .counters
        .get(name)
        .copied()
        .unwrap_or(0)
}

/// Waits for `cond` with a deadline, panicking with `what` and the flow's
/// status when it does not come true.
pub async fn wait_for(
    engine: &Engine,
    what: &str,
    timeout: Duration,
    mut cond: impl FnMut() -> bool,
) {
    if sluice_testkit::wait_until(timeout, &mut cond)
        .await
        .is_err()
    {
        let status = serde_json::to_string_pretty(&engine.status()).unwrap_or_default();
        panic!("timed out after {timeout:?} waiting for {what}\nstatus: {status}");
    }
}

/// The flow every fault test runs: `TestSequence` (`total` FlowFiles) into
/// the sink `sink_yaml` (a processor entry, indented for `processors:`)
/// through the connection `queue` with `back_pressure: { max_count }`.
pub fn fault_flow(total: u64, max_count: u64, sink_yaml: &str) -> String {
    format!(
        "name: outbound-fault
processors:
  source:
    type: TestSequence
    properties: {{ count: {total} }}
{sink_yaml}
connections:
  - {{ name: queue, from: source, relationship: success, to: sink, back_pressure: {{ max_count: {max_count} }} }}
"
    )
}

/// The fault scenario, with the remote side down when it starts:
///
/// 1. the sink fails and retries, the queue fills to its threshold and the
///    source is back-pressured (it stops being triggered and makes no more
///    FlowFiles while the sink keeps retrying), nothing is lost or failed;
/// 2. `bring_back` restores the remote side;
/// 3. everything is delivered: `delivered()` reaches `total`, the source made
///    exactly `total`, nothing went to `failure`.
pub async fn down_then_back<D, DFut, F, Fut>(
    engine: &Engine,
    total: u64,
    max_count: u64,
    delivered: D,
    bring_back: F,
) where
    D: Fn() -> DFut,
    DFut: Future<Output = usize>,
    F: FnOnce() -> Fut,
    Fut: Future<Output = ()>,
{
    wait_for(
        engine,
        "the queue to back-pressure the source",
        Duration::from_secs(30),
        || connection(engine, "queue").back_pressured && counter(engine, "sink", "retries") >= 1,
    )
    .await;
    // The sink holds one FlowFile while it tries; taking it may let the
    // source add one more before the requeue. After one more retry the
    // queue is settled at threshold (+ the one in flight).
    let retries = counter(engine, "sink", "retries");
    wait_for(engine, "one more retry", Duration::from_secs(30), || {
        counter(engine, "sink", "retries") > retries
    })
    .await;
    let q = connection(engine, "queue");
    assert!(
        q.queued_count >= max_count,
        "queue at its threshold: {}",
        q.queued_count
    );
    assert!(
        q.queued_count <= max_count + 1,
        "queue overfilled: {}",
        q.queued_count
    );
    assert!(processor(engine, "source").back_pressured);
    let invocations = processor(engine, "source").invocations;
    let generated = counter(engine, "source", "generated");
    assert!(
        generated < total,
        "the source was held back: made {generated} of {total}"
    );
    // While the sink keeps retrying, the source is not triggered at all.
    let retries = counter(engine, "sink", "retries");
    wait_for(
        engine,
        "three more retries while down",
        Duration::from_secs(30),
        || counter(engine, "sink", "retries") >= retries + 3,
    )
    .await;
    assert_eq!(
        processor(engine, "source").invocations,
        invocations,
        "source triggered while back-pressured"
    );
    assert_eq!(counter(engine, "source", "generated"), generated);
    assert_eq!(
        delivered().await,
        0,
        "nothing can arrive while the remote side is down"
    );
    assert_eq!(
        counter(engine, "sink", "failed"),
        0,
        "transient failures never go to failure"
    );
    let bulletin = processor(engine, "sink").bulletins.last().cloned();
    assert!(
        bulletin
            .as_ref()
            .is_some_and(|b| b.message.contains("kept queued")),
        "operators see why: {bulletin:?}"
    );

    bring_back().await;

    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while delivered().await < total as usize {
        if tokio::time::Instant::now() > deadline {
            let status = serde_json::to_string_pretty(&engine.status()).unwrap_or_default();
            panic!(
                "only {} of {total} delivered after 60s\nstatus: {status}",
                delivered().await
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    wait_for(
        engine,
        "the queue to drain",
        Duration::from_secs(10),
        || connection(engine, "queue").queued_count == 0,
    )
    .await;
    assert_eq!(counter(engine, "source", "generated"), total);
    assert_eq!(counter(engine, "sink", "failed"), 0);
    assert_eq!(
        delivered().await,
        total as usize,
        "exactly once each, no duplicates"
    );
}

/// A [`TestRunner`](sluice_runtime::testing::TestRunner) for the registered
/// type `name` with properties from YAML (validated as a flow would).
pub fn runner(name: &str, yaml: &str) -> sluice_runtime::testing::TestRunner {
    let reg = registry();
    let kind = reg
        .get(name)
        .unwrap_or_else(|| panic!("no type {name}"))
        .clone();
    let props = sluice_runtime::testing::props_from_yaml(kind.as_ref(), &reg, yaml)
        .unwrap_or_else(|e| panic!("invalid properties:\n{e}"));
    sluice_runtime::testing::TestRunner::with_properties(
        kind.as_ref(),
        props,
        sluice_runtime::Scheduling::default(),
    )
    .unwrap()
}

/// Whether a SEND provenance event to `destination` was recorded for `ff`.
pub fn sent_to(
    r: &sluice_runtime::testing::TestRunner,
    ff: &sluice_runtime::FlowFile,
) -> Vec<String> {
    r.provenance
        .lineage(ff.id)
        .into_iter()
        .filter(|e| e.kind == sluice_runtime::EventKind::Send)
        .map(|e| e.details)
        .collect()
}
