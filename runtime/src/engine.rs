//! The running flow: builds processors and connections from a validated
//! [`FlowSpec`] and schedules processors on tokio.
//!
//! Each processor runs `concurrent_tasks` tasks. A task triggers its processor
//! when it is running, not yielded, none of its outgoing `block` connections is
//! at threshold, and either an input has a FlowFile available (processors with
//! input) or its run schedule is due (sources; a source with run schedule 0 is
//! event-driven: it is triggered again at once while it finds work, and
//! otherwise when it wakes itself or after a short idle wait). Connections wake
//! the tasks of the processors on both ends, so nothing polls.
//!
//! Shutdown cancels the waits; a trigger in progress finishes and commits or
//! rolls back, so no FlowFile is ever half-moved.

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::FutureExt;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::connection::{Connection, DropObserver, DropReason, WhenFull};
use crate::flowfile::{FlowFile, now_millis};
use crate::journal::{Change, Journal};
use crate::metrics::{Bulletin, Level, get};
use crate::processor::{BuildContext, ProcessContext, Processor};
use crate::provenance::{EventKind, ProvenanceEvent, ProvenanceRepository};
use crate::session::{NodeIo, Output, ProcessSession};
use crate::spec::{ConnectionSpec, FlowSpec, ProcessorSpec};

/// How long an event-driven source with nothing to do waits before it is
/// triggered again without being woken.
const IDLE_WAIT: Duration = Duration::from_millis(100);

/// How often a source held back by a full repository checks again.
const JOURNAL_FULL_RECHECK_MS: u64 = 100;

/// The flow could not be started.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A processor could not be built.
    #[error("processor `{id}`: {message}")]
    Build {
        /// Processor id.
        id: String,
        /// Why.
        message: String,
    },
    /// A processor failed to start (port in use...).
    #[error("processor `{id}` failed to start: {message}")]
    Start {
        /// Processor id.
        id: String,
        /// Why.
        message: String,
    },
}

/// Options of a run.
#[derive(Default)]
pub struct EngineOptions {
    /// Durable storage; `None` runs in memory.
    pub journal: Option<Arc<dyn Journal>>,
    /// FlowFiles recovered from the repository, with the connection they were in.
    pub recovered: Vec<(String, FlowFile)>,
}

/// A processor in the running flow.
pub struct Node {
    spec: ProcessorSpec,
    processor: Arc<dyn Processor>,
    ctx: Arc<ProcessContext>,
    io: RwLock<Arc<NodeIo>>,
    running: AtomicBool,
    cancel: CancellationToken,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Node {
    /// Id in the flow.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.spec.id
    }

    /// Its spec.
    #[must_use]
    pub fn spec(&self) -> &ProcessorSpec {
        &self.spec
    }

    /// Its context (counters, bulletins).
    #[must_use]
    pub fn context(&self) -> &Arc<ProcessContext> {
        &self.ctx
    }

    /// Whether it is scheduled (not stopped by an operator).
    #[must_use]
    pub fn is_running(&self) -> bool {
        self.running.load(Ordering::Relaxed)
    }
}

/// Counters of one processor, as the status API shows them.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessorStatus {
    /// Id.
    pub id: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// `running` or `stopped`.
    pub state: &'static str,
    /// Completed triggers.
    pub invocations: u64,
    /// FlowFiles in.
    pub flowfiles_in: u64,
    /// Bytes in.
    pub bytes_in: u64,
    /// FlowFiles out.
    pub flowfiles_out: u64,
    /// Bytes out.
    pub bytes_out: u64,
    /// FlowFiles created.
    pub flowfiles_created: u64,
    /// FlowFiles removed or auto-terminated.
    pub flowfiles_dropped: u64,
    /// Failed triggers.
    pub errors: u64,
    /// Rolled-back sessions.
    pub rollbacks: u64,
    /// Tasks in `on_trigger` now.
    pub active_tasks: u64,
    /// Whether an outgoing connection holds it back now.
    pub back_pressured: bool,
    /// Named counters of the processor (drops, retries...).
    pub counters: BTreeMap<String, u64>,
    /// Most recent error bulletin.
    pub last_error: Option<Bulletin>,
    /// Recent bulletins.
    pub bulletins: Vec<Bulletin>,
}

/// State of one connection.
#[derive(Clone, Debug, Serialize)]
pub struct ConnectionStatus {
    /// Id.
    pub id: String,
    /// Upstream processor.
    pub from: String,
    /// Relationships carried.
    pub relationships: Vec<String>,
    /// Downstream processor.
    pub to: String,
    /// FlowFiles queued.
    pub queued_count: u64,
    /// Bytes queued.
    pub queued_bytes: u64,
    /// Object threshold.
    pub max_count: u64,
    /// Byte threshold.
    pub max_bytes: u64,
    /// Fill ratio (largest of count and bytes).
    pub fill: f64,
    /// At threshold with policy `block`.
    pub back_pressured: bool,
    /// Policy.
    pub when_full: String,
    /// Ever enqueued.
    pub enqueued: u64,
    /// Ever dequeued.
    pub dequeued: u64,
    /// Dropped by the when-full policy.
    pub dropped_overflow: u64,
    /// Dropped by expiration.
    pub dropped_expired: u64,
    /// Swapped out to disk now (`when_full: spill`).
    pub spilled: u64,
    /// Bytes of swap files on disk now (`when_full: spill`).
    pub spill_disk_bytes: u64,
}

/// A snapshot of the whole flow.
#[derive(Clone, Debug, Serialize)]
pub struct FlowStatus {
    /// Flow name.
    pub name: String,
    /// Since start, ms.
    pub uptime_ms: u64,
    /// Processors in file order.
    pub processors: Vec<ProcessorStatus>,
    /// Connections in file order.
    pub connections: Vec<ConnectionStatus>,
    /// FlowFiles recovered for connections that no longer exist (kept, not dropped).
    pub orphaned: BTreeMap<String, u64>,
}

struct Dropper {
    journal: Option<Arc<dyn Journal>>,
    provenance: Arc<ProvenanceRepository>,
}

impl DropObserver for Dropper {
    fn dropped(&self, connection: &str, flowfiles: &[FlowFile], reason: DropReason) {
        if self.provenance.enabled() {
            let now = now_millis();
            self.provenance.record(
                flowfiles
                    .iter()
                    .map(|f| ProvenanceEvent {
                        seq: 0,
                        time: now,
                        kind: EventKind::Drop,
                        flowfile: f.id,
                        parents: Vec::new(),
                        component: connection.to_string(),
                        details: reason.as_str().to_string(),
                        attributes: f.attributes.clone(),
                    })
                    .collect(),
            );
        }
        if let Some(j) = &self.journal {
            // Best effort: if the process dies first, the FlowFiles come back
            // after recovery (a duplicate, never a loss).
            let j = j.clone();
            let ids: Vec<u64> = flowfiles.iter().map(|f| f.id).collect();
            if let Ok(handle) = tokio::runtime::Handle::try_current() {
                handle.spawn(async move {
                    let changes = ids.into_iter().map(|id| Change::Remove { id }).collect();
                    if let Err(e) = j.commit(changes).await {
                        tracing::warn!(error = %e, "recording dropped FlowFiles failed");
                    }
                });
            }
        }
    }
}

/// A running flow.
pub struct Engine {
    spec: Arc<FlowSpec>,
    nodes: Vec<Arc<Node>>,
    connections: Vec<(ConnectionSpec, Arc<Connection>)>,
    provenance: Arc<ProvenanceRepository>,
    journal: Option<Arc<dyn Journal>>,
    shutdown: CancellationToken,
    orphaned: Mutex<BTreeMap<String, Vec<FlowFile>>>,
    started: Instant,
    flow_status_seq: AtomicU64,
}

impl Engine {
    /// Builds every processor and connection, then schedules them.
    ///
    /// # Errors
    /// A processor could not be built or started; nothing is left running.
    pub async fn start(spec: FlowSpec, opts: EngineOptions) -> Result<Arc<Self>, EngineError> {
        let base_dir = spec
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default();
        let mut built = Vec::new();
        for p in &spec.processors {
            let bctx = BuildContext {
                flow_name: spec.name.clone(),
                processor_id: p.id.clone(),
                base_dir: base_dir.clone(),
            };
            let proc = p
                .kind
                .build(&p.properties, &bctx)
                .map_err(|e| EngineError::Build {
                    id: p.id.clone(),
                    message: e.to_string(),
                })?;
            built.push(Arc::<dyn Processor>::from(proc));
        }
        let provenance = Arc::new(ProvenanceRepository::new(spec.provenance_capacity));
        let shutdown = CancellationToken::new();
        let wakes: BTreeMap<&str, Arc<Notify>> = spec
            .processors
            .iter()
            .map(|p| (p.id.as_str(), Arc::new(Notify::new())))
            .collect();
        let dropper: Arc<dyn DropObserver> = Arc::new(Dropper {
            journal: opts.journal.clone(),
            provenance: provenance.clone(),
        });
        let mut connections = Vec::new();
        let spill_root = opts.journal.as_ref().and_then(|j| j.spill_dir());
        for (i, c) in spec.connections.iter().enumerate() {
            let mut settings = c.settings.clone();
            if let (WhenFull::Spill(sp), Some(root)) = (&mut settings.when_full, &spill_root)
                && sp.dir.is_none()
            {
                let name = crate::spill::safe_file_name(&c.id);
                sp.dir = Some(root.join(format!("{i:03}-{name}")));
            }
            let conn = Arc::new(Connection::new(
                c.id.clone(),
                settings,
                wakes[c.to.as_str()].clone(),
                wakes[c.from.as_str()].clone(),
                Some(dropper.clone()),
            ));
            connections.push((c.clone(), conn));
        }
        // Recovered FlowFiles go back where they were.
        let mut orphaned: BTreeMap<String, Vec<FlowFile>> = BTreeMap::new();
        let mut by_conn: BTreeMap<String, Vec<FlowFile>> = BTreeMap::new();
        for (cid, ff) in opts.recovered {
            by_conn.entry(cid).or_default().push(ff);
        }
        for (cid, ffs) in by_conn {
            match connections.iter().find(|(s, _)| s.id == cid) {
                Some((_, conn)) => conn.push_batch(ffs),
                None => {
                    tracing::warn!(
                        connection = %cid,
                        count = ffs.len(),
                        "recovered FlowFiles belong to a connection that is no longer in the flow; kept aside"
                    );
                    orphaned.insert(cid, ffs);
                }
            }
        }
        let mut nodes = Vec::new();
        for (p, proc) in spec.processors.iter().zip(built) {
            let outputs_all: Vec<Arc<Connection>> = connections
                .iter()
                .filter(|(s, _)| s.from == p.id)
                .map(|(_, c)| c.clone())
                .collect();
            let ctx = Arc::new(ProcessContext {
                id: p.id.clone(),
                type_name: p.kind.name().to_string(),
                stats: Arc::default(),
                wake: wakes[p.id.as_str()].clone(),
                outputs: RwLock::new(outputs_all),
                shutdown: shutdown.child_token(),
                scheduling: p.scheduling.clone(),
                yielded_until: AtomicU64::new(0),
                journal: opts.journal.clone(),
            });
            let io = Arc::new(Self::node_io(
                p,
                &connections,
                &ctx,
                opts.journal.clone(),
                &provenance,
            ));
            nodes.push(Arc::new(Node {
                spec: p.clone(),
                processor: proc,
                ctx,
                io: RwLock::new(io),
                running: AtomicBool::new(true),
                cancel: shutdown.child_token(),
                tasks: Mutex::new(Vec::new()),
            }));
        }
        let engine = Arc::new(Self {
            spec: Arc::new(spec),
            nodes,
            connections,
            provenance,
            journal: opts.journal,
            shutdown,
            orphaned: Mutex::new(orphaned),
            started: Instant::now(),
            flow_status_seq: AtomicU64::new(0),
        });
        for (i, node) in engine.nodes.iter().enumerate() {
            if let Err(e) = node.processor.on_scheduled(&node.ctx).await {
                for started in &engine.nodes[..i] {
                    started.processor.on_stopped(&started.ctx).await;
                }
                return Err(EngineError::Start {
                    id: node.spec.id.clone(),
                    message: e.message,
                });
            }
        }
        for node in &engine.nodes {
            let mut tasks = node.tasks.lock();
            for _ in 0..node.spec.scheduling.concurrent_tasks {
                tasks.push(tokio::spawn(run_task(node.clone())));
            }
        }
        // Periodic age-off for connections with an expiration.
        let sweeper = engine.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = sweeper.shutdown.cancelled() => break,
                    _ = tick.tick() => {
                        for (_, c) in &sweeper.connections {
                            c.expire();
                        }
                    }
                }
            }
        });
        Ok(engine)
    }

    fn node_io(
        p: &ProcessorSpec,
        connections: &[(ConnectionSpec, Arc<Connection>)],
        ctx: &Arc<ProcessContext>,
        journal: Option<Arc<dyn Journal>>,
        provenance: &Arc<ProvenanceRepository>,
    ) -> NodeIo {
        let inputs = connections
            .iter()
            .filter(|(s, _)| s.to == p.id)
            .map(|(_, c)| c.clone())
            .collect();
        let outputs = p
            .relationships
            .iter()
            .map(|r| Output {
                relationship: r.name.clone(),
                connections: connections
                    .iter()
                    .filter(|(s, _)| s.from == p.id && s.relationships.contains(&r.name))
                    .map(|(_, c)| c.clone())
                    .collect(),
            })
            .collect();
        NodeIo {
            id: p.id.clone(),
            inputs,
            outputs,
            stats: ctx.stats.clone(),
            journal,
            provenance: provenance.clone(),
            penalty: p.scheduling.penalty,
        }
    }

    /// The flow as validated.
    #[must_use]
    pub fn spec(&self) -> &Arc<FlowSpec> {
        &self.spec
    }

    /// Processors.
    #[must_use]
    pub fn nodes(&self) -> &[Arc<Node>] {
        &self.nodes
    }

    /// The processor of this id.
    #[must_use]
    pub fn node(&self, id: &str) -> Option<&Arc<Node>> {
        self.nodes.iter().find(|n| n.spec.id == id)
    }

    /// The connection of this id.
    #[must_use]
    pub fn connection(&self, id: &str) -> Option<&Arc<Connection>> {
        self.connections
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(_, c)| c)
    }

    /// Connections with their specs.
    #[must_use]
    pub fn connections(&self) -> &[(ConnectionSpec, Arc<Connection>)] {
        &self.connections
    }

    /// Provenance store.
    #[must_use]
    pub fn provenance(&self) -> &Arc<ProvenanceRepository> {
        &self.provenance
    }

    /// The journal, if the run is durable.
    #[must_use]
    pub fn journal(&self) -> Option<&Arc<dyn Journal>> {
        self.journal.as_ref()
    }

    /// Fires when the flow shuts down.
    #[must_use]
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// Every queued FlowFile with its connection, including orphans (checkpoints).
    #[must_use]
    pub fn live_flowfiles(&self) -> Vec<(String, FlowFile)> {
        let mut out = Vec::new();
        for (s, c) in &self.connections {
            out.extend(c.snapshot().into_iter().map(|f| (s.id.clone(), f)));
        }
        for (cid, ffs) in self.orphaned.lock().iter() {
            out.extend(ffs.iter().map(|f| (cid.clone(), f.clone())));
        }
        out
    }

    /// Stops (false) or starts (true) a processor. Returns false if unknown.
    pub fn set_running(&self, id: &str, running: bool) -> bool {
        match self.node(id) {
            Some(n) => {
                n.running.store(running, Ordering::Relaxed);
                n.ctx.wake();
                n.ctx.bulletin(
                    Level::Info,
                    if running {
                        "started by operator"
                    } else {
                        "stopped by operator"
                    },
                );
                true
            }
            None => false,
        }
    }

    /// A snapshot of every counter.
    #[must_use]
    pub fn status(&self) -> FlowStatus {
        self.flow_status_seq.fetch_add(1, Ordering::Relaxed);
        let processors = self
            .nodes
            .iter()
            .map(|n| {
                let s = &n.ctx.stats;
                ProcessorStatus {
                    id: n.spec.id.clone(),
                    kind: n.spec.kind.name().to_string(),
                    state: if n.is_running() { "running" } else { "stopped" },
                    invocations: get(&s.invocations),
                    flowfiles_in: get(&s.flowfiles_in),
                    bytes_in: get(&s.bytes_in),
                    flowfiles_out: get(&s.flowfiles_out),
                    bytes_out: get(&s.bytes_out),
                    flowfiles_created: get(&s.flowfiles_created),
                    flowfiles_dropped: get(&s.flowfiles_dropped),
                    errors: get(&s.errors),
                    rollbacks: get(&s.rollbacks),
                    active_tasks: get(&s.active_tasks),
                    back_pressured: n.ctx.is_back_pressured(),
                    counters: s.custom_counters(),
                    last_error: s.last_error(),
                    bulletins: s.bulletins(),
                }
            })
            .collect();
        let connections = self
            .connections
            .iter()
            .map(|(spec, c)| {
                let k = c.counters();
                ConnectionStatus {
                    id: spec.id.clone(),
                    from: spec.from.clone(),
                    relationships: spec.relationships.clone(),
                    to: spec.to.clone(),
                    queued_count: c.queued_count(),
                    queued_bytes: c.queued_bytes(),
                    max_count: c.settings().max_count,
                    max_bytes: c.settings().max_bytes,
                    fill: c.fill_ratio(),
                    back_pressured: c.is_back_pressured(),
                    when_full: c.settings().when_full.name().into(),
                    enqueued: get(&k.enqueued),
                    dequeued: get(&k.dequeued),
                    dropped_overflow: get(&k.dropped_overflow),
                    dropped_expired: get(&k.dropped_expired),
                    spilled: get(&k.spilled),
                    spill_disk_bytes: get(&k.spill_disk_bytes),
                }
            })
            .collect();
        FlowStatus {
            name: self.spec.name.clone(),
            uptime_ms: u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX),
            processors,
            connections,
            orphaned: self
                .orphaned
                .lock()
                .iter()
                .map(|(k, v)| (k.clone(), v.len() as u64))
                .collect(),
        }
    }

    /// Stops every task: waits are cancelled, triggers in progress finish and
    /// commit or roll back, then each processor's `on_stopped` runs. Tasks
    /// still busy after `grace` are aborted (their sessions roll back on drop).
    pub async fn shutdown(&self, grace: Duration) {
        self.shutdown.cancel();
        for n in &self.nodes {
            n.ctx.wake();
        }
        let deadline = tokio::time::Instant::now() + grace;
        for n in &self.nodes {
            let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *n.tasks.lock());
            for mut t in tasks {
                if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                    tracing::warn!(processor = %n.spec.id, "task did not finish in time; aborted");
                    t.abort();
                }
            }
        }
        for n in &self.nodes {
            n.processor.on_stopped(&n.ctx).await;
        }
    }
}

async fn run_task(node: Arc<Node>) {
    let ctx = node.ctx.clone();
    let sched = node.spec.scheduling.clone();
    let is_source = node.spec.kind.input() == crate::processor::InputRequirement::Forbidden;
    let mut next_run = now_millis();
    let run_ms = u64::try_from(sched.run_schedule.as_millis()).unwrap_or(u64::MAX);
    loop {
        if node.cancel.is_cancelled() {
            break;
        }
        let notified = ctx.wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let io = node.io.read().clone();
        let now = now_millis();
        let yielded = ctx.yielded_until.load(Ordering::Relaxed);
        let wait: Option<Option<u64>> = if !node.is_running() {
            Some(None)
        } else if yielded > now {
            Some(Some(yielded - now))
        } else if io
            .outputs
            .iter()
            .any(|o| o.connections.iter().any(|c| c.is_back_pressured()))
        {
            Some(None)
        } else if is_source && io.journal.as_ref().is_some_and(|j| j.is_full()) {
            // The repository is at its disk cap: hold new data back until
            // downstream releases content (no wake-up for that: re-check).
            Some(Some(JOURNAL_FULL_RECHECK_MS))
        } else if io.inputs.is_empty() || is_source {
            (next_run > now).then(|| Some(next_run - now))
        } else if io.inputs.iter().any(|c| c.has_available()) {
            None
        } else if sched.trigger_when_empty {
            let due = next_run.max(now);
            if due > now {
                Some(Some(due - now))
            } else {
                None
            }
        } else {
            let pen = io
                .inputs
                .iter()
                .filter_map(|c| c.next_penalty_end())
                .min()
                .map(|t| t.saturating_sub(now).max(1));
            Some(pen)
        };
        if let Some(ms) = wait {
            let sleep = tokio::time::sleep(Duration::from_millis(ms.unwrap_or(3_600_000)));
            tokio::select! {
                () = &mut notified => {}
                () = sleep => {}
                () = node.cancel.cancelled() => break,
            }
            continue;
        }
        next_run = now + run_ms.max(if sched.trigger_when_empty { 10 } else { 0 });
        let mut session = ProcessSession::new(io);
        let stats = &ctx.stats;
        stats.active_tasks.fetch_add(1, Ordering::Relaxed);
        let result = AssertUnwindSafe(node.processor.on_trigger(&ctx, &mut session))
            .catch_unwind()
            .await;
        stats.active_tasks.fetch_sub(1, Ordering::Relaxed);
        stats.invocations.fetch_add(1, Ordering::Relaxed);
        let failure = match result {
            Ok(Ok(())) => {
                if session.has_work() {
                    session.commit().await.err()
                } else {
                    None
                }
            }
            Ok(Err(e)) => {
                session.rollback(e.penalize);
                Some(e)
            }
            Err(panic) => {
                session.rollback(true);
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Some(crate::processor::ProcessError::new(format!(
                    "processor panicked: {msg}"
                )))
            }
        };
        if let Some(e) = failure {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            ctx.bulletin(Level::Error, e.message.clone());
            ctx.yield_for(e.yield_for.unwrap_or(sched.yield_duration));
            continue;
        }
        if !session.did_work() && run_ms == 0 {
            // Nothing to do: wait to be woken (new input, a source's own
            // signal) or a short idle period.
            tokio::select! {
                () = &mut notified => {}
                () = tokio::time::sleep(IDLE_WAIT) => {}
                () = node.cancel.cancelled() => break,
            }
        }
    }
}
