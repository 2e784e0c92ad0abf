//! tansu, a Kafka-compatible broker, with in-memory storage.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::proc::{Proc, START_TIMEOUT};
use crate::util::{find_in_cache, free_port};

/// A real Kafka-protocol broker: tansu 0.6.0 (built by scripts/install-test-deps.sh into
/// `$SLUICE_CACHE/tansu/bin/tansu`, with the `dynostore` feature that provides memory
/// storage) on a free loopback port, started as
/// `tansu broker --listener-url tcp://127.0.0.1:PORT --advertised-listener-url tcp://127.0.0.1:PORT --storage-engine memory://tansu/`.
/// Ready when the port accepts connections and the log says `ready in`.
///
/// tansu does not create topics on first use: call [`create_topic`](Self::create_topic)
/// (creating one that exists is an error). Clients such as rdkafka work against it (see
/// testkit/tests/servers.rs). `tansu cat consume` 0.6.0 printed nothing here for records
/// that rdkafka reads fine, so no consume helper wraps it: read with the client under test.
/// Storage is in memory, so [`stop`](Self::stop) / [`start_again`](Self::start_again) (same
/// port) lose all topics and messages. When the binary is missing, [`start`](Self::start)
/// fails with a message naming the install script.
pub struct KafkaBroker {
    /// `127.0.0.1:PORT`, for `bootstrap.servers`.
    pub bootstrap: String,
    pub addr: SocketAddr,
    tansu: PathBuf,
    /// Numbers the input files of `produce_json`.
    produced: AtomicU64,
    proc: Proc,
    dir: TempDir,
}

impl KafkaBroker {
    pub async fn start() -> Result<Self> {
        let tansu = find_in_cache("tansu/bin/tansu", "SLUICE_TANSU")?;
        let dir = tempfile::Builder::new().prefix("sluice-kafka-").tempdir()?;
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let url = format!("tcp://{addr}");
        let mut proc = Proc::new("tansu", &tansu, dir.path().join("tansu.log"));
        proc.arg("broker")
            .arg("--listener-url")
            .arg(&url)
            .arg("--advertised-listener-url")
            .arg(&url)
            .arg("--storage-engine")
            .arg("memory://tansu/")
            .arg("--cluster-id")
            .arg("sluice-test")
            // tansu reads `.env` from its working directory: give it an empty one
            .cwd(dir.path())
            .env("RUST_LOG", "warn");
        let mut broker = Self {
            bootstrap: addr.to_string(),
            addr,
            tansu,
            produced: AtomicU64::new(0),
            proc,
            dir,
        };
        broker.start_again().await?;
        Ok(broker)
    }

    /// `tcp://127.0.0.1:PORT`, the form tansu's own commands take.
    pub fn url(&self) -> String {
        format!("tcp://{}", self.addr)
    }

    /// Kills the broker; topics and messages are gone.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts a fresh, empty broker on the same port.
    pub async fn start_again(&mut self) -> Result<()> {
        self.proc.spawn()?;
        let addr = self.addr;
        let log = self.proc.log_path().to_path_buf();
        self.proc
            .wait_ready(START_TIMEOUT, || {
                let log = log.clone();
                async move {
                    std::fs::read_to_string(&log).is_ok_and(|l| l.contains("ready in"))
                        && tokio::net::TcpStream::connect(addr).await.is_ok()
                }
            })
            .await
    }

    /// Creates a topic with `tansu topic create NAME --partitions N`.
    pub async fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let out = self
            .tansu_command(&[
                "topic",
                "create",
                name,
                "--partitions",
                &partitions.to_string(),
            ])
            .await?;
        if !out.status.success() {
            bail!(
                "tansu topic create {name} failed ({}): {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// Produces records with `tansu cat produce` into one partition: each item is one record
    /// `{"key": .., "value": ..}`, and key and value are sent as their JSON text (so a string
    /// value `"a"` arrives as the 3 bytes `"a"`). Handy for seeding a topic a test consumes.
    pub async fn produce_json(
        &self,
        topic: &str,
        partition: i32,
        records: &[serde_json::Value],
    ) -> Result<()> {
        let input = self.dir.path().join(format!(
            "produce-{}.json",
            self.produced.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(
            &input,
            serde_json::Value::from(records.to_vec()).to_string(),
        )?;
        let out = self
            .tansu_command(&[
                "cat",
                "produce",
                topic,
                &input.display().to_string(),
                "--partition",
                &partition.to_string(),
            ])
            .await?;
        if !out.status.success() {
            bail!(
                "tansu cat produce {topic} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The names of the broker's topics (`tansu topic list`).
    pub async fn topics(&self) -> Result<Vec<String>> {
        let out = self.tansu_command(&["topic", "list"]).await?;
        if !out.status.success() {
            bail!(
                "tansu topic list failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let list: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("tansu topic list output")?;
        Ok(list
            .as_array()
            .map(|topics| {
                topics
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The broker's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.log_path()).unwrap_or_default()
    }

    async fn tansu_command(&self, args: &[&str]) -> Result<Output> {
        let mut cmd = Command::new(&self.tansu);
        cmd.args(args)
            .arg("--broker")
            .arg(self.url())
            .current_dir(self.dir.path())
            .env_remove("ADVERTISED_LISTENER_URL")
            .stdin(Stdio::null());
        let mut cmd = tokio::process::Command::from(cmd);
        cmd.kill_on_drop(true);
        tokio::time::timeout(Duration::from_mins(1), cmd.output())
            .await
            .with_context(|| format!("tansu {} timed out", args.join(" ")))?
            .with_context(|| format!("running tansu {}", args.join(" ")))
    }
}
