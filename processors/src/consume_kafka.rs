//! ConsumeKafka: reads records from Kafka topics as a member of a consumer
//! group, one FlowFile per record.
//!
//! A task started in `on_scheduled` polls the consumer and hands records over
//! a bounded channel (one batch deep); each trigger takes up to a batch,
//! makes FlowFiles (`session.receive`), commits the session, and only then
//! commits the records' offsets to Kafka. Offsets are never committed
//! automatically (`enable.auto.commit=false`), so a record whose session did
//! not commit, or a process killed at any instant, is delivered again
//! (to this instance after a restart, or to another member of the group):
//! at-least-once.
//!
//! Back-pressure: while an outgoing connection is full the scheduler does not
//! trigger the processor, the channel fills, and the task pauses every
//! assigned partition (librdkafka stops fetching and drops what it had
//! prefetched); it keeps polling, so the group membership stays alive. Once
//! the queue drains and the channel has room, the partitions resume from the
//! last record handed over. `kafka.pauses` and `kafka.resumes` count this.
//!
//! Rebalancing: when partitions are revoked, the offsets of records already
//! committed in sessions are committed synchronously before the partitions
//! move; records of those partitions still waiting in the channel are dropped
//! (`kafka.revoked_dropped`): the new owner reads them from the committed
//! offset.
//!
//! Attributes: `kafka.topic`, `kafka.partition`, `kafka.offset`, `kafka.key`
//! (UTF-8 text, or hex with `kafka.key.encoding: hex`), `kafka.timestamp` (ms
//! since the epoch) and each header as `kafka.header.<name>`.
//!
//! ```yaml
//! consume:
//!   type: ConsumeKafka
//!   properties:
//!     bootstrap_servers: 127.0.0.1:9092
//!     topics: [alerts]
//!     group_id: sluice-workers
//!     auto_offset_reset: earliest
//! ```

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use rdkafka::client::ClientContext;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::KafkaResult;
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use sluice_runtime::{
    BuildContext, BuildError, InputRequirement, Level, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorStats, ProcessorType, PropKind, Properties,
    PropertyDescriptor, PropertyError, RelationshipDef, async_trait,
};
use tokio::sync::Notify;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::kafka_client::{self, BOOTSTRAP, CLIENT_PROPERTIES, bytes_to_attr};

/// One FlowFile per record.
pub const SUCCESS: &str = "success";

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        BOOTSTRAP,
        PropKind::NonEmpty,
        "Brokers to bootstrap from: `host:port[,host:port...]`.",
    ),
    PropertyDescriptor::required(
        "topics",
        PropKind::ListOf(&PropKind::NonEmpty),
        "Topics to subscribe to (a name starting with `^` is a regular expression).",
    ),
    PropertyDescriptor::required(
        "group_id",
        PropKind::NonEmpty,
        "Consumer group: instances with the same group share the partitions.",
    ),
    PropertyDescriptor::optional(
        "auto_offset_reset",
        PropKind::Choice(&["earliest", "latest"]),
        Some("latest"),
        "Where a group with no committed offset for a partition starts.",
    ),
    PropertyDescriptor::optional(
        CLIENT_PROPERTIES,
        PropKind::MapOf(&PropKind::Text),
        None,
        "Further librdkafka consumer settings (`security.protocol`, `sasl.password`, `session.timeout.ms`...), passed through.",
    )
    .secret(),
];

/// Settings the processor owns: its at-least-once guarantee depends on them.
const OWNED: &[&str] = &[
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "auto.offset.reset",
];

/// How long to wait after a consumer error before polling again.
const ERROR_PAUSE: Duration = Duration::from_millis(200);

/// The registry entry.
pub struct ConsumeKafkaType;

impl ProcessorType for ConsumeKafkaType {
    fn name(&self) -> &'static str {
        "ConsumeKafka"
    }
    fn description(&self) -> &'static str {
        "Consumes Kafka topics in a consumer group, one FlowFile per record; offsets are committed only after the session commits, partitions pause under back-pressure."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new(
            SUCCESS,
            "One FlowFile per record, with kafka.* attributes.",
        )]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        kafka_client::validate(props, OWNED)
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let config = kafka_client::config(
            props,
            &format!("sluice-{}", ctx.processor_id),
            &[
                ("group.id", props.str("group_id")?.to_string()),
                ("enable.auto.commit", "false".into()),
                ("enable.auto.offset.store", "false".into()),
                (
                    "auto.offset.reset",
                    props.str("auto_offset_reset")?.to_string(),
                ),
            ],
        )?;
        Ok(Box::new(ConsumeKafka {
            config,
            source: format!("kafka://{}", props.str(BOOTSTRAP)?),
            topics: props.list("topics")?,
            running: parking_lot::Mutex::new(None),
            unacked: tokio::sync::Mutex::new(Vec::new()),
        }))
    }
    fn example(&self) -> &'static str {
        "bootstrap_servers: 127.0.0.1:9092\ntopics: [alerts]\ngroup_id: sluice-workers\nauto_offset_reset: earliest\nclient_properties:\n  session.timeout.ms: \"10000\""
    }
    fn is_external(&self) -> bool {
        true
    }
}

/// A record taken from the consumer, owned.
#[derive(Debug, Clone)]
struct Record {
    topic: Arc<str>,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Bytes,
    timestamp: Option<i64>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    /// The partition's assignment generation when the record was read.
    generation: u64,
}

impl Record {
    fn new(m: &BorrowedMessage<'_>, generation: u64) -> Self {
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            topic: Arc::from(m.topic()),
            partition: m.partition(),
            offset: m.offset(),
            key: m.key().map(<[u8]>::to_vec),
            payload: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
            timestamp: m.timestamp().to_millis(),
            headers,
            generation,
        }
    }

    fn partition_key(&self) -> (String, i32) {
        (self.topic.to_string(), self.partition)
    }
}

/// Per-partition bookkeeping shared by triggers and rebalance callbacks.
#[derive(Default)]
struct GroupState {
    /// Bumped each time a partition is revoked: records read before are stale.
    generation: HashMap<(String, i32), u64>,
    /// Next offset to read, as committed after sessions, per partition held now.
    acked: HashMap<(String, i32), i64>,
}

impl GroupState {
    fn generation_of(&self, topic: &str, partition: i32) -> u64 {
        self.generation
            .get(&(topic.to_string(), partition))
            .copied()
            .unwrap_or(0)
    }
}

struct Shared {
    state: parking_lot::Mutex<GroupState>,
    paused: AtomicBool,
    stats: Arc<ProcessorStats>,
    id: String,
}

impl Shared {
    fn count(&self, name: &str, n: u64) {
        self.stats.counter(name).fetch_add(n, Ordering::Relaxed);
    }

    fn warn(&self, message: String) {
        tracing::warn!(processor = %self.id, "{message}");
        self.stats.bulletin(&self.id, Level::Warn, message);
    }
}

/// librdkafka callbacks: rebalances and commit results.
struct GroupContext {
    shared: Arc<Shared>,
}

impl ClientContext for GroupContext {}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else {
            return;
        };
        let mut st = self.shared.state.lock();
        let mut commit = TopicPartitionList::new();
        for el in tpl.elements() {
            let key = (el.topic().to_string(), el.partition());
            if let Some(next) = st.acked.remove(&key) {
                let _ =
                    commit.add_partition_offset(el.topic(), el.partition(), Offset::Offset(next));
            }
            *st.generation.entry(key).or_default() += 1;
        }
        self.shared.count("kafka.revoked", tpl.count() as u64);
        // Make sure what sessions committed is in Kafka before the partitions
        // move; nothing else is committed.
        if commit.count() > 0
            && let Err(e) = consumer.commit(&commit, CommitMode::Sync)
        {
            self.shared.count("kafka.commit_failures", 1);
            self.shared.warn(format!(
                "committing offsets of revoked partitions: {e} (their records will be read again)"
            ));
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                self.shared.count("kafka.assigned", tpl.count() as u64);
                // A partition assigned while paused starts paused.
                if self.shared.paused.load(Ordering::SeqCst)
                    && let Err(e) = consumer.pause(tpl)
                {
                    self.shared
                        .warn(format!("pausing newly assigned partitions: {e}"));
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(e) => self.shared.warn(format!("rebalance failed: {e}")),
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        if let Err(e) = result {
            self.shared.count("kafka.commit_failures", 1);
            self.shared.warn(format!(
                "offset commit failed: {e} (those records will be read again)"
            ));
        }
    }
}

type GroupConsumer = StreamConsumer<GroupContext>;

/// What runs between `on_scheduled` and `on_stopped`.
struct Running {
    consumer: Arc<GroupConsumer>,
    records: parking_lot::Mutex<mpsc::Receiver<Record>>,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

struct ConsumeKafka {
    config: ClientConfig,
    /// `kafka://bootstrap`, for provenance.
    source: String,
    topics: Vec<String>,
    running: parking_lot::Mutex<Option<Arc<Running>>>,
    /// Records whose session did not commit, to be offered again first. The
    /// lock also makes triggers take turns: offsets are committed in order.
    unacked: tokio::sync::Mutex<Vec<Record>>,
}

fn set_paused(consumer: &GroupConsumer, shared: &Shared, pause: bool) {
    // Set the flag first: a rebalance in between pauses what it assigns.
    shared.paused.store(pause, Ordering::SeqCst);
    let result = consumer.assignment().and_then(|a| {
        if pause {
            consumer.pause(&a)
        } else {
            consumer.resume(&a)
        }
    });
    match result {
        Ok(()) => shared.count(
            if pause {
                "kafka.pauses"
            } else {
                "kafka.resumes"
            },
            1,
        ),
        Err(e) => shared.warn(format!(
            "{} partitions: {e}",
            if pause { "pausing" } else { "resuming" }
        )),
    }
}

/// Polls the consumer and feeds the channel; pauses the partitions while the
/// channel is full (the processor is not being triggered: back-pressure).
async fn pump(
    consumer: Arc<GroupConsumer>,
    tx: mpsc::Sender<Record>,
    shared: Arc<Shared>,
    wake: Arc<Notify>,
    stop: CancellationToken,
) {
    let mut pending: VecDeque<Record> = VecDeque::new();
    let mut paused = false;
    // A broker that is down reports the same error over and over: one
    // bulletin per distinct error in a row, every one counted.
    let mut last_error = String::new();
    loop {
        while let Some(r) = pending.pop_front() {
            match tx.try_send(r) {
                Ok(()) => wake.notify_waiters(),
                Err(TrySendError::Full(r)) => {
                    pending.push_front(r);
                    break;
                }
                Err(TrySendError::Closed(_)) => return,
            }
        }
        let blocked = !pending.is_empty();
        if blocked != paused {
            set_paused(&consumer, &shared, blocked);
            paused = blocked;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            permit = tx.reserve(), if blocked => match permit {
                Ok(permit) => {
                    if let Some(r) = pending.pop_front() {
                        permit.send(r);
                        wake.notify_waiters();
                    }
                }
                Err(_) => return,
            },
            m = consumer.recv() => match m {
                Ok(m) => {
                    let generation = shared.state.lock().generation_of(m.topic(), m.partition());
                    pending.push_back(Record::new(&m, generation));
                    shared.count("kafka.fetched", 1);
                    last_error.clear();
                }
                Err(e) => {
                    shared.count("kafka.errors", 1);
                    let text = e.to_string();
                    if text != last_error {
                        shared.warn(format!("consumer: {text}"));
                        last_error = text;
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(ERROR_PAUSE) => {}
                    }
                }
            },
        }
    }
}

impl ConsumeKafka {
    fn running(&self) -> Result<Arc<Running>, ProcessError> {
        self.running
            .lock()
            .clone()
            .ok_or_else(|| ProcessError::new("consumer not started (on_scheduled did not run)"))
    }
}

/// The FlowFile attributes of a record.
fn attributes(r: &Record) -> Vec<(String, String)> {
    let mut out = vec![
        ("kafka.topic".to_string(), r.topic.to_string()),
        ("kafka.partition".to_string(), r.partition.to_string()),
        ("kafka.offset".to_string(), r.offset.to_string()),
    ];
    if let Some(k) = &r.key {
        let (text, encoding) = bytes_to_attr(k);
        out.push(("kafka.key".into(), text));
        if encoding != "utf-8" {
            out.push(("kafka.key.encoding".into(), encoding.into()));
        }
    }
    if let Some(ts) = r.timestamp {
        out.push(("kafka.timestamp".into(), ts.to_string()));
    }
    for (name, value) in &r.headers {
        let text = value
            .as_deref()
            .map(|v| bytes_to_attr(v).0)
            .unwrap_or_default();
        out.push((format!("kafka.header.{name}"), text));
    }
    out
}

#[async_trait]
impl Processor for ConsumeKafka {
    async fn on_scheduled(&self, ctx: &ProcessContext) -> Result<(), ProcessError> {
        let shared = Arc::new(Shared {
            state: parking_lot::Mutex::new(GroupState::default()),
            paused: AtomicBool::new(false),
            stats: ctx.stats().clone(),
            id: ctx.id().to_string(),
        });
        let consumer: GroupConsumer = self
            .config
            .create_with_context(GroupContext {
                shared: shared.clone(),
            })
            .map_err(|e| ProcessError::new(format!("creating the Kafka consumer: {e}")))?;
        let topics: Vec<&str> = self.topics.iter().map(String::as_str).collect();
        consumer
            .subscribe(&topics)
            .map_err(|e| ProcessError::new(format!("subscribing to {topics:?}: {e}")))?;
        let consumer = Arc::new(consumer);
        let (tx, rx) = mpsc::channel(ctx.scheduling().batch_size.max(1));
        let stop = ctx.shutdown().child_token();
        let task = tokio::spawn(pump(
            consumer.clone(),
            tx,
            shared.clone(),
            ctx.waker(),
            stop.clone(),
        ));
        *self.running.lock() = Some(Arc::new(Running {
            consumer,
            records: parking_lot::Mutex::new(rx),
            shared,
            stop,
            task: parking_lot::Mutex::new(Some(task)),
        }));
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let running = self.running()?;
        let mut unacked = self.unacked.lock().await;
        let mut records = std::mem::take(&mut *unacked);
        let batch = ctx.scheduling().batch_size.max(1);
        {
            let mut rx = running.records.lock();
            while records.len() < batch {
                match rx.try_recv() {
                    Ok(r) => records.push(r),
                    Err(_) => break,
                }
            }
        }
        {
            let st = running.shared.state.lock();
            let before = records.len();
            records.retain(|r| st.generation_of(&r.topic, r.partition) == r.generation);
            let stale = before - records.len();
            if stale > 0 {
                running.shared.count("kafka.revoked_dropped", stale as u64);
            }
        }
        if records.is_empty() {
            return Ok(());
        }
        for r in &records {
            let mut ff = session.receive(&format!("{}/{}", self.source, r.topic));
            for (k, v) in attributes(r) {
                ff.attributes.insert(k, v);
            }
            session.write(&mut ff, r.payload.clone());
            session.transfer(ff, SUCCESS);
        }
        if let Err(e) = session.commit().await {
            // Not in the flow: offer the same records again, never ack them.
            *unacked = records;
            return Err(e);
        }
        // Committed in the flow: now tell Kafka, for partitions still ours.
        let mut next: HashMap<(String, i32), (i64, u64)> = HashMap::new();
        for r in &records {
            let e = next
                .entry(r.partition_key())
                .or_insert((r.offset + 1, r.generation));
            e.0 = e.0.max(r.offset + 1);
        }
        let st_guard = running.shared.state.lock();
        let mut st = st_guard;
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), (offset, generation)) in next {
            if st.generation_of(&topic, partition) != generation {
                continue;
            }
            let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
            st.acked.insert((topic, partition), offset);
        }
        if tpl.count() > 0
            && let Err(e) = running.consumer.commit(&tpl, CommitMode::Async)
        {
            running.shared.count("kafka.commit_failures", 1);
            running.shared.warn(format!(
                "offset commit failed: {e} (those records will be read again)"
            ));
        }
        drop(st);
        Ok(())
    }

    async fn on_stopped(&self, _ctx: &ProcessContext) {
        let running = self.running.lock().take();
        let Some(running) = running else { return };
        running.stop.cancel();
        let task = running.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
        // Records still in the channel were never committed in a session:
        // they are read again next time. Closing the consumer (off the async
        // threads: it blocks) leaves the group and runs the revoke callback,
        // which commits what sessions committed.
        let _ = tokio::task::spawn_blocking(move || {
            let acked: Vec<((String, i32), i64)> = running
                .shared
                .state
                .lock()
                .acked
                .iter()
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            let mut tpl = TopicPartitionList::new();
            for ((topic, partition), offset) in acked {
                let _ = tpl.add_partition_offset(&topic, partition, Offset::Offset(offset));
            }
            if tpl.count() > 0 {
                let _ = running.consumer.commit(&tpl, CommitMode::Sync);
            }
            running.consumer.unsubscribe();
            drop(running);
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::check_type_contract;

    #[test]
    fn contract() {
        check_type_contract(&ConsumeKafkaType, &crate::registry()).unwrap();
    }

    fn record(key: Option<&[u8]>, headers: &[(&str, Option<&[u8]>)]) -> Record {
        Record {
            topic: Arc::from("alerts"),
            partition: 2,
            offset: 41,
            key: key.map(<[u8]>::to_vec),
            payload: Bytes::from_static(b"body"),
            timestamp: Some(1_700_000_000_000),
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.map(<[u8]>::to_vec)))
                .collect(),
            generation: 0,
        }
    }

    #[test]
    fn record_attributes() {
        let attrs: HashMap<_, _> = attributes(&record(
            Some(b"web-1"),
            &[("trace", Some(b"abc")), ("empty", None)],
        ))
        .into_iter()
        .collect();
        assert_eq!(attrs["kafka.topic"], "alerts");
        assert_eq!(attrs["kafka.partition"], "2");
        assert_eq!(attrs["kafka.offset"], "41");
        assert_eq!(attrs["kafka.key"], "web-1");
        assert!(!attrs.contains_key("kafka.key.encoding"));
        assert_eq!(attrs["kafka.timestamp"], "1700000000000");
        assert_eq!(attrs["kafka.header.trace"], "abc");
        assert_eq!(attrs["kafka.header.empty"], "");

        let attrs: HashMap<_, _> = attributes(&record(Some(&[0xff, 0xfe]), &[]))
            .into_iter()
            .collect();
        assert_eq!(attrs["kafka.key"], "fffe");
        assert_eq!(attrs["kafka.key.encoding"], "hex");
        let attrs: HashMap<_, _> = attributes(&record(None, &[])).into_iter().collect();
        assert!(!attrs.contains_key("kafka.key"));
    }
}
