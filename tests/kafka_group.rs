//! Scale-out through Kafka: two `sluice run` processes in one consumer group
//! share a topic; one goes away, the other takes over its partitions, and
//! every message is processed at least once. A killed worker's records that
//! it had already committed into its FlowFile repository (and so acknowledged
//! to Kafka) are forwarded when it restarts on the same repository: the test
//! restarts it and checks nothing is missing.
//!
//! Each worker runs ConsumeKafka -> PublishKafka, forwarding every record to
//! a `done` topic keyed by the worker's name with the source partition and
//! offset as headers; the test reads `done` to see who processed what.
//!
//! - Stopped with SIGTERM (it leaves the group): against tansu, the real broker.
//! - Killed with SIGKILL (no goodbye; the group must notice the silence):
//!   against librdkafka's mock cluster, because tansu 0.6.0 never moves a dead
//!   member's partitions. Found in its coordinator
//!   (tansu-broker-0.6.0/src/coordinator/group/administrator.rs): the surviving
//!   member's heartbeat evicts the silent one (`Inner<O, Formed>::heartbeat`,
//!   line 2089) and answers REBALANCE_IN_PROGRESS, but the group stays
//!   `Formed` (the outer `Wrapper::missed_heartbeat`, line 444, finds nobody
//!   left to evict), so the survivor's JoinGroup with unchanged metadata gets
//!   the same generation and leader back (`Inner<O, Formed>::join`, line 2380)
//!   and its SyncGroup its old assignment: the dead member's partitions stay
//!   unassigned for good (seen in tansu's log: "missed heartbeat for ..." then
//!   one JoinGroup/SyncGroup and nothing more). The mock cluster listens on a
//!   real loopback port, so the two `sluice` processes reach it like a broker.
//!
//! Run: `cargo test --test kafka_group` (needs `bash scripts/install-test-deps.sh`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Headers;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sluice_testkit::KafkaBroker;

const PARTITIONS: i32 = 4;

/// One record seen on `done`.
#[derive(Clone, Debug)]
struct Processed {
    worker: String,
    message: String,
    partition: i32,
}

/// A `sluice run` process, killed when dropped.
struct Worker {
    name: &'static str,
    child: Child,
    log: std::path::PathBuf,
}

impl Worker {
    fn start(name: &'static str, flow: &Path, dir: &Path) -> Self {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(["run", "--status-interval", "0", "--no-ui", "--repository"])
            .arg(dir.join(format!("{name}-repo")))
            .arg(flow)
            .env("SLUICE_INSTANCE", name)
            .stdin(Stdio::null())
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("sluice starts");
        Self { name, child, log }
    }

    /// SIGTERM: `sluice run` shuts down cleanly and its consumer leaves the group.
    fn terminate(&mut self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success());
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn log(&self) -> String {
        format!(
            "--- {} log ---\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Reads `done` from the beginning in a thread until `stop` is set.
fn read_done(bootstrap: &str, seen: &Mutex<Vec<Processed>>, stop: &AtomicBool) {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("done", 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    while !stop.load(Ordering::SeqCst) {
        let Some(Ok(m)) = c.poll(Duration::from_millis(100)) else {
            continue;
        };
        let header = |name: &str| -> String {
            m.headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        seen.lock().expect("lock").push(Processed {
            worker: String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned(),
            message: String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            partition: header("kafka.partition").parse().unwrap_or(-1),
        });
    }
}

/// Waits (at most 90 s) until every message `w{i}`, i in `range`, is on `done`.
async fn wait_processed(
    seen: &Mutex<Vec<Processed>>,
    range: std::ops::Range<usize>,
    departure: Departure,
    logs: &dyn Fn() -> String,
) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let done: BTreeSet<String> = seen
            .lock()
            .expect("lock")
            .iter()
            .map(|p| p.message.clone())
            .collect();
        let missing: Vec<usize> = range
            .clone()
            .filter(|i| !done.contains(&format!("w{i}")))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{departure:?}: {} of {range:?} never processed (first: {:?})\n{}",
            missing.len(),
            &missing[..missing.len().min(10)],
            logs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn produce(producer: &FutureProducer, range: std::ops::Range<usize>) {
    for i in range {
        let payload = format!("w{i}");
        let partition = i32::try_from(i).expect("small") % PARTITIONS;
        producer
            .send(
                FutureRecord::<str, str>::to("work")
                    .partition(partition)
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("producing {payload}: {e}"));
    }
}

fn workers_seen(seen: &Mutex<Vec<Processed>>) -> BTreeSet<String> {
    seen.lock()
        .expect("lock")
        .iter()
        .map(|p| p.worker.clone())
        .collect()
}

/// How the first worker goes away.
#[derive(Clone, Copy, Debug)]
enum Departure {
    Terminated,
    Killed,
}

/// Two workers on `bootstrap` (topics `work` with four partitions and `done`
/// exist); worker a departs; checks b took over and nothing was lost.
async fn scenario(bootstrap: &str, departure: Departure, broker_log: &dyn Fn() -> String) {
    let b = bootstrap.to_string();
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = dir.path().join("worker.yaml");
    std::fs::write(
        &flow,
        format!(
            r#"name: worker
processors:
  consume:
    type: ConsumeKafka
    properties:
      bootstrap_servers: "{b}"
      topics: [work]
      group_id: workers
      auto_offset_reset: earliest
      client_properties:
        session.timeout.ms: "6000"
        heartbeat.interval.ms: "500"
    scheduling: {{ batch_size: 10 }}
  forward:
    type: PublishKafka
    properties:
      bootstrap_servers: "{b}"
      topic: done
      key: "${{env:SLUICE_INSTANCE}}"
      headers: [kafka.partition, kafka.offset]
    auto_terminate: [success, failure]
connections:
  - {{ from: consume, relationship: success, to: forward }}
"#
        ),
    )
    .expect("flow file");

    let seen = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (b, seen, stop) = (b.clone(), seen.clone(), stop.clone());
        std::thread::spawn(move || read_done(&b, &seen, &stop))
    };
    let kafka: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create()
        .expect("producer");

    let mut a = Worker::start("a", &flow, dir.path());
    let mut worker_b = Worker::start("b", &flow, dir.path());
    let logs = |a: &Worker, b: &Worker| format!("{}\n{}\n{}", a.log(), b.log(), broker_log());

    // Feed the topic until both workers have processed something: the group
    // has split the partitions between them.
    let mut produced = 0;
    let deadline = Instant::now() + Duration::from_secs(90);
    while workers_seen(&seen).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "both workers never processed a message: {:?}\n{}",
            workers_seen(&seen),
            logs(&a, &worker_b)
        );
        produce(&kafka, produced..produced + 8).await;
        produced += 8;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a_partitions: BTreeSet<i32> = seen
        .lock()
        .expect("lock")
        .iter()
        .filter(|p| p.worker == "a")
        .map(|p| p.partition)
        .collect();

    match departure {
        Departure::Terminated => a.terminate(),
        Departure::Killed => a.kill(),
    }
    let after_departure = produced;
    produce(&kafka, produced..produced + 200).await;
    produced += 200;

    // Everything produced after the departure is processed by b alone.
    wait_processed(&seen, after_departure..produced, departure, &|| {
        logs(&a, &worker_b)
    })
    .await;
    if matches!(departure, Departure::Killed) {
        // What a had taken from Kafka and committed into its repository, but
        // not yet forwarded, waits there (its offsets are committed: b does not
        // read it again). a restarted on the same repository forwards it.
        a = Worker::start("a", &flow, dir.path());
    }
    wait_processed(&seen, 0..produced, departure, &|| logs(&a, &worker_b)).await;
    stop.store(true, Ordering::SeqCst);
    reader.join().expect("reader");
    worker_b.kill();

    let seen = seen.lock().expect("lock").clone();
    let index = |m: &str| -> usize { m.trim_start_matches('w').parse().expect("index") };
    let taken_over: BTreeSet<i32> = seen
        .iter()
        .filter(|p| p.worker == "b" && index(&p.message) >= after_departure)
        .map(|p| p.partition)
        .filter(|p| a_partitions.contains(p))
        .collect();
    assert_eq!(
        taken_over, a_partitions,
        "{departure:?}: b processed a's partitions after a went away"
    );
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &seen {
        *times.entry(p.message.as_str()).or_default() += 1;
    }
    let duplicates = times.values().filter(|n| **n > 1).count();
    // Duplicates are allowed (records a had read but not committed are read
    // again by b); say how many there were.
    eprintln!(
        "{departure:?}: {produced} messages, {} processed, {duplicates} more than once; a had partitions {a_partitions:?}",
        seen.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_worker_s_partitions_move_to_the_other_and_nothing_is_lost() {
    let broker = KafkaBroker::start().await.expect("tansu starts");
    broker
        .create_topic("work", PARTITIONS)
        .await
        .expect("topic");
    broker.create_topic("done", 1).await.expect("topic");
    scenario(&broker.bootstrap, Departure::Terminated, &|| broker.log()).await;
}

/// Against librdkafka's mock cluster: see the module docs for why not tansu.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_partitions_move_to_the_other_and_nothing_is_lost() {
    let mock = MockCluster::new(1).expect("mock cluster");
    mock.create_topic("work", PARTITIONS, 1).expect("topic");
    mock.create_topic("done", 1, 1).expect("topic");
    scenario(&mock.bootstrap_servers(), Departure::Killed, &String::new).await;
}
