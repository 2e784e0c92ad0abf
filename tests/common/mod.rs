//! Test processors shared by the engine tests: a numbered source and a
//! recording sink, so assertions can see every FlowFile.

#![allow(clippy::unwrap_used, clippy::expect_used)]
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Content, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor, Registry,
    RelationshipDef, async_trait,
};

#[derive(Default)]
pub struct Shared {
    pub next_seq: AtomicU64,
    pub received: Mutex<Vec<(u64, sluice_runtime::Attributes)>>,
}

const SRC_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::optional(
    "size",
    PropKind::Integer {
        min: 0,
        max: 1 << 20,
    },
    Some("16"),
    "content bytes per FlowFile",
)];

pub struct SourceType(pub Arc<Shared>);
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
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
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

pub struct SinkType(pub Arc<Shared>);
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
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let batch = s.get_batch(ctx.scheduling().batch_size);
        let mut rec = self.0.received.lock();
        for ff in batch {
            let seq = ff
                .attr("seq")
                .and_then(|v| v.parse().ok())
                .unwrap_or(u64::MAX);
            rec.push((seq, ff.attributes.clone()));
            s.remove(ff);
        }
        Ok(())
    }
}

pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

pub async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + deadline;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The stock registry plus the test source and sink sharing `shared`.
pub fn registry(shared: &Arc<Shared>) -> Registry {
    let mut registry = sluice_processors::registry();
    registry.register(Arc::new(SourceType(shared.clone())));
    registry.register(Arc::new(SinkType(shared.clone())));
    registry
}
