//! Benchmark: FlowFiles per second that PutHTTP delivers to a local HTTP
//! receiver, against a peer in the same run.
//!
//! Sluice: a flow `source -> PutHTTP` (the source makes N FlowFiles of 64
//! bytes in batches of 1,000), PutHTTP with `concurrent_tasks: C`; timed until
//! PutHTTP has delivered all N (each confirmed 2xx, committed, SEND event).
//!
//! Peer: C tokio tasks sharing one reqwest client, each POSTing its share of
//! the same N bodies and checking the status, the way a hand-written forwarder
//! would. Both talk to the same in-process receiver (testkit's HttpReceiver).
//! The ratio shows what the processor, sessions and scheduling cost over bare
//! HTTP requests.
//!
//! Run: `cargo bench --bench put_http` (BENCH_N=50000, BENCH_TASKS=4).

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_runtime::{
    BuildContext, BuildError, Content, Engine, EngineOptions, InputRequirement, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, RelationshipDef, async_trait, parse_flow,
};
use sluice_testkit::HttpReceiver;

const BODY: &[u8] = b"{\"host\":\"web-1\",\"severity\":3,\"message\":\"disk /var is 91% full\"}";

const PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::required(
    "count",
    PropKind::Integer {
        min: 0,
        max: i64::MAX,
    },
    "FlowFiles to make",
)];

/// A source of `count` FlowFiles with the same small JSON body.
struct BenchSourceType;
struct BenchSource {
    count: u64,
    made: AtomicU64,
}

impl ProcessorType for BenchSourceType {
    fn name(&self) -> &'static str {
        "BenchSource"
    }
    fn description(&self) -> &'static str {
        "benchmark source"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "FlowFiles")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(BenchSource {
            count: u64::try_from(p.int("count")?).unwrap_or(0),
            made: AtomicU64::new(0),
        }))
    }
    fn example(&self) -> &'static str {
        "count: 10"
    }
}

#[async_trait]
impl Processor for BenchSource {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for _ in 0..ctx.scheduling().batch_size {
            if self.made.fetch_add(1, Ordering::Relaxed) >= self.count {
                break;
            }
            let mut ff = s.create();
            ff.attributes.insert("mime.type", "application/json");
            ff.content = Content::Memory(bytes::Bytes::from_static(BODY));
            s.transfer(ff, "success");
        }
        Ok(())
    }
}

async fn sluice_run(url: &str, n: usize, tasks: usize) -> Duration {
    let mut registry = sluice_processors::registry();
    registry.register(Arc::new(BenchSourceType));
    let yaml = format!(
        "name: bench-put-http
defaults:
  provenance_events: 0
processors:
  source:
    type: BenchSource
    properties: {{ count: {n} }}
  sink:
    type: PutHTTP
    properties: {{ url: \"{url}/ingest\" }}
    scheduling: {{ concurrent_tasks: {tasks} }}
    auto_terminate: [success, retry, failure]
connections:
  - {{ from: source, relationship: success, to: sink }}
"
    );
    let spec = parse_flow(
        &yaml,
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
    while sink.flowfiles_dropped.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    let status = engine.status();
    let failed = status
        .processors
        .iter()
        .find(|p| p.id == "sink")
        .and_then(|p| p.counters.get("failed").copied())
        .unwrap_or(0);
    assert_eq!(failed, 0, "deliveries failed during the benchmark");
    engine.shutdown(Duration::from_secs(5)).await;
    took
}

async fn peer_run(url: &str, n: usize, tasks: usize) -> Duration {
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let url = format!("{url}/ingest");
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let share = n / tasks + usize::from(t < n % tasks);
        let client = client.clone();
        let url = url.clone();
        handles.push(tokio::spawn(async move {
            for _ in 0..share {
                let resp = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(bytes::Bytes::from_static(BODY))
                    .send()
                    .await
                    .expect("request");
                assert!(resp.status().is_success());
                let _ = resp.bytes().await;
            }
        }));
    }
    for h in handles {
        h.await.expect("peer task");
    }
    start.elapsed()
}

fn main() {
    if !common::invoked_as_bench(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let n = common::env_or::<usize>("BENCH_N", 50_000);
    let tasks = common::env_or::<usize>("BENCH_TASKS", 4);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    let best = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
    for c in [1, tasks] {
        // A fresh receiver per round keeps its request log small.
        let mut s = Vec::new();
        let mut p = Vec::new();
        for round in 0..4 {
            let rx = rt.block_on(HttpReceiver::start()).expect("receiver");
            let url = rx.url();
            let (sd, pd) = if round == 0 {
                // Warm-up: both, a tenth of the size, not counted.
                (
                    rt.block_on(sluice_run(&url, n / 10, c)),
                    rt.block_on(peer_run(&url, n / 10, c)),
                )
            } else {
                (
                    rt.block_on(sluice_run(&url, n, c)),
                    rt.block_on(peer_run(&url, n, c)),
                )
            };
            if round > 0 {
                s.push(per_sec(sd));
                p.push(per_sec(pd));
            }
        }
        let (sb, pb) = (best(&s), best(&p));
        println!("PutHTTP to a local receiver, {n} FlowFiles, {c} task(s), best of 3:");
        println!("  sluice PutHTTP : {sb:>8.0} FlowFiles/s");
        println!("  bare reqwest   : {pb:>8.0} requests/s (same bodies, same receiver)");
        println!("  ratio sluice/bare = {:.2}", sb / pb);
    }
}
