//! Test processor types for engine-level tests of the runtime: a source that
//! emits numbered FlowFiles and a sink that records what it receives (and can
//! be held, like a sink whose remote side is down).
#![allow(dead_code, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use sluice_runtime::{
    BuildContext, BuildError, FlowSpec, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor, Registry,
    RelationshipDef, async_trait, parse_flow,
};

static RECEIVED: LazyLock<Mutex<HashMap<String, Vec<u64>>>> = LazyLock::new(Mutex::default);
static HELD: LazyLock<Mutex<HashMap<String, bool>>> = LazyLock::new(Mutex::default);

/// Sequence numbers a sink bucket received, in order.
pub fn received(bucket: &str) -> Vec<u64> {
    RECEIVED
        .lock()
        .unwrap()
        .get(bucket)
        .cloned()
        .unwrap_or_default()
}

/// Holds (true) or releases (false) the sinks of `bucket`.
pub fn hold(bucket: &str, held: bool) {
    HELD.lock().unwrap().insert(bucket.to_string(), held);
}

fn is_held(bucket: &str) -> bool {
    HELD.lock().unwrap().get(bucket).copied().unwrap_or(false)
}

const N: PropKind = PropKind::Integer {
    min: 0,
    max: i64::MAX,
};
const GEN_PROPS: &[PropertyDescriptor] = &[
    PropertyDescriptor::required("count", N, "FlowFiles in all."),
    PropertyDescriptor::optional("batch", N, Some("10"), "Per trigger."),
    PropertyDescriptor::optional("size", N, Some("8"), "Content bytes."),
    PropertyDescriptor::optional(
        "penalize",
        PropKind::Bool,
        Some("false"),
        "Penalise every third.",
    ),
];

/// Emits `count` FlowFiles with attribute `seq` = 0, 1, 2... and content
/// derived from it; with `penalize`, every third is penalised.
pub struct GenType;

impl ProcessorType for GenType {
    fn name(&self) -> &'static str {
        "TestGen"
    }
    fn description(&self) -> &'static str {
        "Test source."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        GEN_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "all")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Gen {
            count: u64::try_from(p.int("count")?).unwrap(),
            batch: p.usize("batch")?,
            size: p.usize("size")?,
            penalize: p.bool("penalize")?,
            next: AtomicU64::new(0),
        }))
    }
    fn example(&self) -> &'static str {
        "count: 10"
    }
}

struct Gen {
    count: u64,
    batch: usize,
    size: usize,
    penalize: bool,
    next: AtomicU64,
}

#[async_trait]
impl Processor for Gen {
    async fn on_trigger(
        &self,
        _: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let start = self.next.load(Ordering::Relaxed);
        let end = (start + self.batch as u64).min(self.count);
        for seq in start..end {
            let mut ff = s.create();
            ff.attributes.insert("seq", seq.to_string());
            let body: Vec<u8> = (0..self.size).map(|i| (seq as usize + i) as u8).collect();
            s.write(&mut ff, body);
            if self.penalize && seq % 3 == 0 {
                s.penalize(&mut ff);
            }
            s.transfer(ff, "success");
        }
        s.commit().await?;
        self.next.store(end, Ordering::Relaxed);
        Ok(())
    }
}

const SINK_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::required(
    "bucket",
    PropKind::NonEmpty,
    "Where received sequence numbers are recorded.",
)];

/// Records the `seq` of every FlowFile, checks its content, removes it.
/// While its bucket is held it takes nothing.
pub struct SinkType;

impl ProcessorType for SinkType {
    fn name(&self) -> &'static str {
        "TestSink"
    }
    fn description(&self) -> &'static str {
        "Test sink."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SINK_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        Vec::new()
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Sink {
            bucket: p.str("bucket")?.to_string(),
        }))
    }
    fn example(&self) -> &'static str {
        "bucket: b"
    }
}

struct Sink {
    bucket: String,
}

#[async_trait]
impl Processor for Sink {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        if is_held(&self.bucket) {
            return Ok(());
        }
        let mut got = Vec::new();
        for ff in s.get_batch(ctx.scheduling().batch_size) {
            let seq: u64 = ff.attr("seq").unwrap().parse().unwrap();
            let body = s.read(&ff)?;
            let want: Vec<u8> = (0..body.len()).map(|i| (seq as usize + i) as u8).collect();
            assert_eq!(&body[..], &want[..], "content of {seq}");
            got.push(seq);
            s.remove(ff);
        }
        s.commit().await?;
        RECEIVED
            .lock()
            .unwrap()
            .entry(self.bucket.clone())
            .or_default()
            .extend(got);
        Ok(())
    }
}

pub fn registry() -> Registry {
    Registry::new(vec![Arc::new(GenType), Arc::new(SinkType)])
}

pub fn flow(yaml: &str) -> FlowSpec {
    parse_flow(yaml, Path::new("test.yaml"), &registry(), &|_| None)
        .unwrap_or_else(|e| panic!("{e}"))
}

/// Polls `cond` until it holds or `deadline` passes.
pub async fn wait_until(what: &str, deadline: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + deadline;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
