//! Back-pressure end to end in the engine: a fast source into a stalled sink.
//! The connection holds at its threshold (by count, then by bytes), the source
//! stops being triggered, memory stays bounded, and once the sink resumes
//! everything drains in order.
//!
//! The source and sink here are test processors (a counter and a recorder) so
//! the assertions see every FlowFile; the engine, sessions and connections
//! are the real ones.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Content, Engine, EngineOptions, InputRequirement, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, Registry, RelationshipDef, async_trait, parse_flow,
};

#[derive(Default)]
struct Shared {
    next_seq: AtomicU64,
    received: Mutex<Vec<u64>>,
}

const SRC_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::optional(
    "size",
    PropKind::Integer { min: 0, max: 1 << 20 },
    Some("16"),
    "content bytes per FlowFile",
)];

struct SourceType(Arc<Shared>);
struct Source(Arc<Shared>, usize);

impl ProcessorType for SourceType {
    fn name(&self) -> &'static str {
        "TestCounterSource"
    }
    fn description(&self) -> &'static str {
        "test source: numbered FlowFiles as fast as allowed"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SRC_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "numbered FlowFiles")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Source(self.0.clone(), p.usize("size")?)))
    }
    fn example(&self) -> &'static str {
        "size: 16"
    }
}

#[async_trait]
impl Processor for Source {
    async fn on_trigger(&self, ctx: &ProcessContext, s: &mut ProcessSession) -> Result<(), ProcessError> {
        for _ in 0..ctx.scheduling().batch_size {
            let seq = self.0.next_seq.fetch_add(1, Ordering::SeqCst);
            let mut ff = s.create();
            ff.attributes.insert("seq", seq.to_string());
            ff.content = Content::Memory(Bytes::from(vec![b'x'; self.1]));
            s.transfer(ff, "success");
        }
        Ok(())
    }
}

struct SinkType(Arc<Shared>);
struct Sink(Arc<Shared>);

impl ProcessorType for SinkType {
    fn name(&self) -> &'static str {
        "TestRecordingSink"
    }
    fn description(&self) -> &'static str {
        "test sink: records sequence numbers"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        &[]
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        Vec::new()
    }
    fn build(&self, _: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Sink(self.0.clone())))
    }
    fn example(&self) -> &'static str {
        "{}"
    }
}

#[async_trait]
impl Processor for Sink {
    async fn on_trigger(&self, ctx: &ProcessContext, s: &mut ProcessSession) -> Result<(), ProcessError> {
        let batch = s.get_batch(ctx.scheduling().batch_size);
        let mut rec = self.0.received.lock();
        for ff in batch {
            let seq = ff.attr("seq").and_then(|v| v.parse().ok()).unwrap_or(u64::MAX);
            rec.push(seq);
            s.remove(ff);
        }
        Ok(())
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !cond() {
        assert!(tokio::time::Instant::now() < end, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn stalled_sink(back_pressure: &str, size: usize, batch: usize) {
    let shared = Arc::new(Shared::default());
    let mut registry: Registry = sluice_processors::registry();
    registry.register(Arc::new(SourceType(shared.clone())));
    registry.register(Arc::new(SinkType(shared.clone())));
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
    // Stall the sink.
    engine.set_running("sink", false);
    let conn = engine.connection("src.success->sink").unwrap().clone();
    wait_until("back-pressure", Duration::from_secs(20), || conn.is_back_pressured()).await;
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
    assert!(conn.queued_count() <= s.max_count + batch as u64, "queue overfilled: {}", conn.queued_count());
    assert!(
        conn.queued_bytes() <= s.max_bytes + (batch * size) as u64,
        "queue overfilled: {} bytes",
        conn.queued_bytes()
    );
    let growth = rss_kib().saturating_sub(rss_at_threshold);
    assert!(growth < 64 * 1024, "RSS grew by {growth} KiB while stalled");
    let status = engine.status();
    assert!(status.connections[0].back_pressured);
    assert!(status.processors.iter().find(|p| p.id == "src").unwrap().back_pressured);

    // Stop the source, resume the sink: everything drains, in order.
    engine.set_running("src", false);
    wait_until("source idle", Duration::from_secs(5), || src.active_tasks.load(Ordering::SeqCst) == 0).await;
    let produced = shared.next_seq.load(Ordering::SeqCst);
    engine.set_running("sink", true);
    wait_until("drained", Duration::from_secs(20), || {
        shared.received.lock().len() as u64 == produced
    })
    .await;
    let got = shared.received.lock().clone();
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
