//! Benchmark: records per second through PublishKafka and ConsumeKafka
//! against tansu (started by the testkit on loopback), each against a peer in
//! the same run.
//!
//! - publish: a source queues N FlowFiles of 100 bytes; PublishKafka sends
//!   them in batches of 1,000 and awaits every delivery report before
//!   committing. Peer: a bare rdkafka `FutureProducer` with the same settings
//!   sending the same records in batches of 1,000, awaiting each batch's
//!   reports.
//! - consume: ConsumeKafka reads N records into FlowFiles (auto-terminated),
//!   committing offsets after each session. Peer: a bare rdkafka
//!   `StreamConsumer` reading N records and committing every 1,000.
//!
//! The ratios show what the runtime (sessions, FlowFiles, scheduling,
//! commit-after-session) costs over using librdkafka directly.
//!
//! Run: `cargo bench --bench kafka` (BENCH_N=200000 for a longer run; needs
//! `bash scripts/install-test-deps.sh` for tansu).

#[path = "common.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message};
use sluice_runtime::{
    BuildContext, BuildError, Content, Engine, EngineOptions, InputRequirement, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, RelationshipDef, async_trait, parse_flow,
};
use sluice_testkit::KafkaBroker;

const BATCH: usize = 1000;
const PARTITIONS: i32 = 4;

/// Emits `total` FlowFiles of 100 bytes, a batch per trigger.
struct SourceType(Arc<AtomicU64>);
struct Source(Arc<AtomicU64>, u64);

const SOURCE_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::required(
    "total",
    PropKind::Integer {
        min: 0,
        max: i64::MAX,
    },
    "FlowFiles in all",
)];

impl ProcessorType for SourceType {
    fn name(&self) -> &'static str {
        "BenchSource"
    }
    fn description(&self) -> &'static str {
        "bench source: `total` FlowFiles of 100 bytes"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SOURCE_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "FlowFiles")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Source(
            self.0.clone(),
            p.int("total")?.cast_unsigned(),
        )))
    }
    fn example(&self) -> &'static str {
        "total: 10"
    }
}

#[async_trait]
impl Processor for Source {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let body = Bytes::from(vec![b'x'; 100]);
        for _ in 0..ctx.scheduling().batch_size {
            if self.0.fetch_add(1, Ordering::Relaxed) >= self.1 {
                break;
            }
            let mut ff = s.create();
            ff.content = Content::Memory(body.clone());
            s.transfer(ff, "success");
        }
        Ok(())
    }
}

async fn sluice_publish(bootstrap: &str, topic: &str, n: usize) -> Duration {
    let mut registry = sluice_processors::registry();
    registry.register(Arc::new(SourceType(Arc::default())));
    let yaml = format!(
        r#"name: bench-publish
defaults:
  provenance_events: 0
  scheduling: {{ batch_size: {BATCH} }}
processors:
  src:
    type: BenchSource
    properties: {{ total: {n} }}
  publish:
    type: PublishKafka
    properties:
      bootstrap_servers: "{bootstrap}"
      topic: {topic}
    auto_terminate: [success, failure]
connections:
  - {{ from: src, relationship: success, to: publish, back_pressure: {{ max_count: {} }} }}
"#,
        BATCH * 4
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
    let publish = engine
        .node("publish")
        .expect("publish")
        .context()
        .stats()
        .clone();
    while publish.flowfiles_dropped.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    let bulletins = publish.bulletins();
    assert!(
        bulletins.is_empty(),
        "publishing had trouble: {bulletins:?}"
    );
    engine.shutdown(Duration::from_secs(5)).await;
    took
}

async fn peer_publish(bootstrap: &str, topic: &str, n: usize) -> Duration {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("acks", "all")
        .set("message.timeout.ms", "30000")
        .create()
        .expect("producer");
    let body = vec![b'x'; 100];
    let start = Instant::now();
    let mut sent = 0;
    while sent < n {
        let k = BATCH.min(n - sent);
        let mut reports = Vec::with_capacity(k);
        for _ in 0..k {
            match producer.send_result(FutureRecord::<str, [u8]>::to(topic).payload(&body)) {
                Ok(r) => reports.push(r),
                Err((e, _)) => panic!("enqueue: {e}"),
            }
        }
        for r in join_all(reports).await {
            r.expect("report").expect("delivered");
        }
        sent += k;
    }
    start.elapsed()
}

async fn sluice_consume(bootstrap: &str, topic: &str, group: &str, n: usize) -> Duration {
    let registry = sluice_processors::registry();
    let yaml = format!(
        r#"name: bench-consume
defaults:
  provenance_events: 0
  scheduling: {{ batch_size: {BATCH} }}
processors:
  consume:
    type: ConsumeKafka
    properties:
      bootstrap_servers: "{bootstrap}"
      topics: [{topic}]
      group_id: {group}
      auto_offset_reset: earliest
    auto_terminate: [success]
"#
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
    let consume = engine
        .node("consume")
        .expect("consume")
        .context()
        .stats()
        .clone();
    while consume.flowfiles_dropped.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = start.elapsed();
    engine.shutdown(Duration::from_secs(5)).await;
    took
}

async fn peer_consume(bootstrap: &str, topic: &str, group: &str, n: usize) -> Duration {
    let start = Instant::now();
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut got = 0;
    let mut bytes = 0usize;
    while got < n {
        let m = consumer.recv().await.expect("record");
        bytes += m.payload().map_or(0, <[u8]>::len);
        got += 1;
        if got % BATCH == 0 || got == n {
            consumer
                .commit_message(&m, CommitMode::Async)
                .expect("commit");
        }
    }
    assert!(bytes >= n * 100);
    start.elapsed()
}

fn main() {
    if !common::invoked_as_bench(env!("CARGO_CRATE_NAME")) {
        return;
    }
    let n: usize = common::env_or("BENCH_N", 50_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    #[allow(clippy::cast_precision_loss)]
    let per_sec = |d: Duration| n as f64 / d.as_secs_f64();
    rt.block_on(async {
        let broker = KafkaBroker::start().await.expect("tansu starts");
        let b = broker.bootstrap.clone();
        let (mut sp, mut pp, mut sc, mut pc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        // Three rounds, alternating; each publish round fills its own topic,
        // which both consumers then read with fresh groups.
        for round in 0..3 {
            let ts = format!("bench-sluice-{round}");
            let tp = format!("bench-peer-{round}");
            broker.create_topic(&ts, PARTITIONS).await.expect("topic");
            broker.create_topic(&tp, PARTITIONS).await.expect("topic");
            sp.push(per_sec(sluice_publish(&b, &ts, n).await));
            pp.push(per_sec(peer_publish(&b, &tp, n).await));
            sc.push(per_sec(
                sluice_consume(&b, &ts, &format!("gs{round}"), n).await,
            ));
            pc.push(per_sec(
                peer_consume(&b, &tp, &format!("gp{round}"), n).await,
            ));
        }
        let best = |v: &[f64]| v.iter().copied().fold(0.0_f64, f64::max);
        println!("Kafka against tansu, {n} records of 100 bytes, best of 3:");
        println!(
            "  publish  sluice PublishKafka : {:>9.0} records/s",
            best(&sp)
        );
        println!(
            "  publish  bare FutureProducer : {:>9.0} records/s   ratio {:.2}",
            best(&pp),
            best(&sp) / best(&pp)
        );
        println!(
            "  consume  sluice ConsumeKafka : {:>9.0} records/s",
            best(&sc)
        );
        println!(
            "  consume  bare StreamConsumer : {:>9.0} records/s   ratio {:.2}",
            best(&pc),
            best(&sc) / best(&pc)
        );
    });
}
