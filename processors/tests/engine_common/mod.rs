//! Shared by the processor integration tests: a numbered test source, flow
//! start-up in the real engine, taps, and waiting with a deadline.

#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use sluice_runtime::{
    BuildContext, BuildError, Content, Engine, EngineOptions, FlowFile, InputRequirement, Journal,
    ProcessContext, ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, Registry, RelationshipDef, Tap, async_trait, parse_flow,
};

/// Waits for `cond`, polling every 20 ms, failing with `what` after `deadline`.
pub async fn wait_for(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out after {deadline:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A source that emits `total` numbered FlowFiles once `go` is set: content
/// `message N`, attributes `n`, `host` (N mod 3), `app` and
/// `kafka.header.trace`.
#[derive(Default)]
pub struct SourceState {
    pub go: AtomicBool,
    pub next: AtomicU64,
}

struct NumberedSourceType(Arc<SourceState>);
struct NumberedSource(Arc<SourceState>, u64);

const SOURCE_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::required(
    "total",
    PropKind::Integer {
        min: 0,
        max: 1_000_000,
    },
    "how many FlowFiles in all",
)];

impl ProcessorType for NumberedSourceType {
    fn name(&self) -> &'static str {
        "TestNumberedSource"
    }
    fn description(&self) -> &'static str {
        "test source: `total` numbered FlowFiles once the test says go"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SOURCE_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "numbered FlowFiles")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(NumberedSource(
            self.0.clone(),
            p.int("total")?.cast_unsigned(),
        )))
    }
    fn example(&self) -> &'static str {
        "total: 10"
    }
}

#[async_trait]
impl Processor for NumberedSource {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        if !self.0.go.load(Ordering::SeqCst) {
            return Ok(());
        }
        for _ in 0..ctx.scheduling().batch_size {
            let n = self.0.next.load(Ordering::SeqCst);
            if n >= self.1 {
                break;
            }
            self.0.next.store(n + 1, Ordering::SeqCst);
            let mut ff = s.create();
            ff.attributes.insert("n", n.to_string());
            ff.attributes.insert("host", format!("host-{}", n % 3));
            ff.attributes.insert("app", format!("app{n}"));
            ff.attributes.insert("kafka.header.trace", format!("t{n}"));
            ff.content = Content::Memory(Bytes::from(format!("message {n}")));
            s.transfer(ff, "success");
        }
        Ok(())
    }
}

pub fn registry(source: &Arc<SourceState>) -> Registry {
    let mut r = sluice_processors::registry();
    r.register(Arc::new(NumberedSourceType(source.clone())));
    r
}

pub async fn start(
    yaml: &str,
    registry: &Registry,
    journal: Option<Arc<dyn Journal>>,
) -> Arc<Engine> {
    let spec = parse_flow(yaml, Path::new("kafka-test.yaml"), registry, &|_| None)
        .unwrap_or_else(|e| panic!("flow does not validate:\n{e}"));
    Engine::start(
        spec,
        EngineOptions {
            journal,
            ..EngineOptions::default()
        },
    )
    .await
    .expect("flow starts")
}

pub fn tapped(tap: &Tap) -> Vec<FlowFile> {
    tap.lock().clone()
}

pub fn text(ff: &FlowFile) -> String {
    match &ff.content {
        Content::Memory(b) => String::from_utf8_lossy(b).into_owned(),
        Content::Stored(s) => String::from_utf8_lossy(&s.read().expect("content")).into_owned(),
    }
}

pub fn counter(engine: &Engine, processor: &str, name: &str) -> u64 {
    engine
        .node(processor)
        .expect("processor")
        .context()
        .counter(name)
        .load(Ordering::SeqCst)
}
