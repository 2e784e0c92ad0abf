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
use crate::session::{NodeIo, Output, ProcessSession, Tap};
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
    taps: Mutex<Vec<(String, Tap)>>,
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
        self.running.load(Ordering::SeqCst)
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

/// What a reload changed.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReloadSummary {
    /// Processors added.
    pub added: Vec<String>,
    /// Processors removed.
    pub removed: Vec<String>,
    /// Processors rebuilt because their type, properties or scheduling changed.
    pub changed: Vec<String>,
    /// Connections created or rebuilt.
    pub connections_changed: Vec<String>,
    /// Queued FlowFiles moved from a removed or rebuilt connection to its successor.
    pub flowfiles_moved: u64,
    /// Queued FlowFiles of removed connections with no successor (kept aside, reported).
    pub flowfiles_orphaned: u64,
    /// Processors that failed to start after the reload (left stopped), with the reason.
    pub failed_to_start: Vec<(String, String)>,
}

impl ReloadSummary {
    /// Whether nothing changed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.connections_changed.is_empty()
    }
}

struct State {
    spec: Arc<FlowSpec>,
    nodes: Vec<Arc<Node>>,
    connections: Vec<(ConnectionSpec, Arc<Connection>)>,
}

/// A running flow.
pub struct Engine {
    state: RwLock<State>,
    /// Triggers hold it shared; a reload holds it exclusively while it swaps
    /// connections, so no commit lands in a connection being replaced.
    gate: Arc<tokio::sync::RwLock<()>>,
    reload_lock: tokio::sync::Mutex<()>,
    wakes: Mutex<BTreeMap<String, Arc<Notify>>>,
    dropper: Arc<dyn DropObserver>,
    provenance: Arc<ProvenanceRepository>,
    journal: Option<Arc<dyn Journal>>,
    shutdown: CancellationToken,
    orphaned: Mutex<BTreeMap<String, Vec<FlowFile>>>,
    started: Instant,
}

fn build_processor(spec: &FlowSpec, p: &ProcessorSpec) -> Result<Arc<dyn Processor>, EngineError> {
    let bctx = BuildContext {
        flow_name: spec.name.clone(),
        processor_id: p.id.clone(),
        base_dir: spec
            .path
            .parent()
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
    };
    p.kind
        .build(&p.properties, &bctx)
        .map(Arc::from)
        .map_err(|e| EngineError::Build {
            id: p.id.clone(),
            message: e.to_string(),
        })
}

/// Whether two processor specs would build the same processor.
fn same_processor(a: &ProcessorSpec, b: &ProcessorSpec) -> bool {
    fn values(p: &ProcessorSpec) -> Vec<(String, Vec<String>)> {
        p.properties
            .iter()
            .map(|(k, v)| {
                let vals = match v {
                    crate::properties::PropValue::Scalar(s) => vec![s.value.clone()],
                    crate::properties::PropValue::List(items, _) => {
                        items.iter().map(|s| s.value.clone()).collect()
                    }
                    crate::properties::PropValue::Map(items, _) => items
                        .iter()
                        .flat_map(|(k, v)| [k.value.clone(), v.value.clone()])
                        .collect(),
                };
                (k.clone(), vals)
            })
            .collect()
    }
    a.kind.name() == b.kind.name()
        && a.scheduling == b.scheduling
        && a.auto_terminate == b.auto_terminate
        && values(a) == values(b)
}

fn same_connection(a: &ConnectionSpec, b: &ConnectionSpec) -> bool {
    a.id == b.id
        && a.from == b.from
        && a.to == b.to
        && a.relationships == b.relationships
        && a.settings.max_count == b.settings.max_count
        && a.settings.max_bytes == b.settings.max_bytes
        && a.settings.when_full == b.settings.when_full
        && a.settings.prioritizer == b.settings.prioritizer
        && a.settings.expiration == b.settings.expiration
}

impl Engine {
    /// Builds every processor and connection, then schedules them.
    ///
    /// # Errors
    /// A processor could not be built or started; nothing is left running.
    pub async fn start(spec: FlowSpec, opts: EngineOptions) -> Result<Arc<Self>, EngineError> {
        // Build everything first: a refused flow leaves nothing behind.
        let mut built = BTreeMap::new();
        for p in &spec.processors {
            built.insert(p.id.clone(), build_processor(&spec, p)?);
        }
        let provenance = Arc::new(ProvenanceRepository::new(spec.provenance_capacity));
        let dropper: Arc<dyn DropObserver> = Arc::new(Dropper {
            journal: opts.journal.clone(),
            provenance: provenance.clone(),
        });
        let engine = Arc::new(Self {
            state: RwLock::new(State {
                spec: Arc::new(FlowSpec {
                    processors: Vec::new(),
                    connections: Vec::new(),
                    ..spec.clone()
                }),
                nodes: Vec::new(),
                connections: Vec::new(),
            }),
            gate: Arc::new(tokio::sync::RwLock::new(())),
            reload_lock: tokio::sync::Mutex::new(()),
            wakes: Mutex::new(BTreeMap::new()),
            dropper,
            provenance,
            journal: opts.journal,
            shutdown: CancellationToken::new(),
            orphaned: Mutex::new(BTreeMap::new()),
            started: Instant::now(),
        });
        // Start-up is a reload from the empty flow: one path.
        let summary = engine.swap_in(spec, built, opts.recovered).await;
        if let Some((id, message)) = summary.failed_to_start.into_iter().next() {
            engine.shutdown(Duration::from_secs(5)).await;
            return Err(EngineError::Start { id, message });
        }
        // Periodic age-off for connections with an expiration.
        let sweeper = Arc::downgrade(&engine);
        let token = engine.shutdown.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tokio::select! {
                    () = token.cancelled() => break,
                    _ = tick.tick() => {
                        let Some(e) = sweeper.upgrade() else { break };
                        for (_, c) in e.connections() {
                            c.expire();
                        }
                    }
                }
            }
        });
        Ok(engine)
    }

    /// Applies a changed flow without losing queued FlowFiles: unchanged
    /// processors keep running, changed ones are rebuilt, connections whose
    /// settings changed are rebuilt with their queue moved over, and the queue
    /// of a removed connection moves to a new connection from the same
    /// processor and relationship (or is kept aside as orphaned, reported).
    ///
    /// # Errors
    /// A new or changed processor could not be built; nothing was changed.
    pub async fn reload(&self, spec: FlowSpec) -> Result<ReloadSummary, EngineError> {
        let old = self.state.read().spec.clone();
        let mut built = BTreeMap::new();
        for p in &spec.processors {
            let keep = old
                .processors
                .iter()
                .any(|o| o.id == p.id && same_processor(o, p));
            if !keep {
                built.insert(p.id.clone(), build_processor(&spec, p)?);
            }
        }
        Ok(self.swap_in(spec, built, Vec::new()).await)
    }

    fn wake_for(&self, id: &str) -> Arc<Notify> {
        self.wakes
            .lock()
            .entry(id.to_string())
            .or_insert_with(|| Arc::new(Notify::new()))
            .clone()
    }

    #[allow(clippy::too_many_lines)]
    async fn swap_in(
        &self,
        spec: FlowSpec,
        mut built: BTreeMap<String, Arc<dyn Processor>>,
        recovered: Vec<(String, FlowFile)>,
    ) -> ReloadSummary {
        let _one_at_a_time = self.reload_lock.lock().await;
        let mut summary = ReloadSummary::default();
        let (old_nodes, old_conns) = {
            let st = self.state.read();
            (st.nodes.clone(), st.connections.clone())
        };
        // 1. Stop processors that go away or are rebuilt: their in-flight
        //    sessions commit into the old connections, which are moved below.
        let mut kept: BTreeMap<String, Arc<Node>> = BTreeMap::new();
        for n in &old_nodes {
            let still = spec.processors.iter().any(|p| p.id == n.spec.id);
            if still && !built.contains_key(&n.spec.id) {
                kept.insert(n.spec.id.clone(), n.clone());
                continue;
            }
            if still {
                summary.changed.push(n.spec.id.clone());
            } else {
                summary.removed.push(n.spec.id.clone());
            }
            n.stop(Duration::from_secs(30)).await;
        }
        for p in &spec.processors {
            if !old_nodes.iter().any(|n| n.spec.id == p.id) {
                summary.added.push(p.id.clone());
            }
        }
        // 2. Hold every trigger while connections are swapped.
        let gate = self.gate.clone();
        let guard = gate.write().await;
        let mut connections: Vec<(ConnectionSpec, Arc<Connection>)> = Vec::new();
        let mut reused: Vec<Arc<Connection>> = Vec::new();
        for c in &spec.connections {
            if let Some((_, conn)) = old_conns.iter().find(|(o, _)| same_connection(o, c)) {
                reused.push(conn.clone());
                connections.push((c.clone(), conn.clone()));
                continue;
            }
            let mut settings = c.settings.clone();
            if let WhenFull::Spill(sp) = &mut settings.when_full
                && sp.dir.is_none()
            {
                sp.dir = self.journal.as_ref().and_then(|j| j.spill_dir());
            }
            let conn = Arc::new(Connection::new(
                c.id.clone(),
                settings,
                self.wake_for(&c.to),
                self.wake_for(&c.from),
                Some(self.dropper.clone()),
            ));
            summary.connections_changed.push(c.id.clone());
            connections.push((c.clone(), conn));
        }
        for (o, conn) in &old_conns {
            if reused.iter().any(|r| Arc::ptr_eq(r, conn)) {
                continue;
            }
            let queued = conn.drain_all();
            if queued.is_empty() {
                continue;
            }
            let n = queued.len() as u64;
            // Same id first, then same upstream processor and relationship.
            let successor = connections
                .iter()
                .find(|(s, _)| s.id == o.id)
                .or_else(|| {
                    connections.iter().find(|(s, _)| {
                        s.from == o.from
                            && s.relationships.iter().any(|r| o.relationships.contains(r))
                    })
                })
                .map(|(_, c)| c.clone());
            if let Some(c) = successor {
                // The repository must see the move too, or a crash after the
                // reload would bring these back to the removed connection
                // (kept aside as orphaned instead of flowing on).
                if let Some(j) = &self.journal {
                    let changes = queued
                        .iter()
                        .map(|flowfile| Change::Put {
                            flowfile,
                            connection: c.id(),
                        })
                        .collect();
                    if let Err(e) = j.commit(changes).await {
                        tracing::warn!(error = %e, connection = %c.id(), "recording moved FlowFiles failed; after a crash they come back as orphaned");
                    }
                }
                c.push_batch(queued);
                summary.flowfiles_moved += n;
            } else {
                tracing::warn!(connection = %o.id, count = n, "connection removed with FlowFiles queued; kept aside as orphaned");
                self.orphaned
                    .lock()
                    .entry(o.id.clone())
                    .or_default()
                    .extend(queued);
                summary.flowfiles_orphaned += n;
            }
        }
        // Recovered FlowFiles go back where they were.
        let mut by_conn: BTreeMap<String, Vec<FlowFile>> = BTreeMap::new();
        for (cid, ff) in recovered {
            by_conn.entry(cid).or_default().push(ff);
        }
        for (cid, ffs) in by_conn {
            if let Some((_, conn)) = connections.iter().find(|(s, _)| s.id == cid) {
                conn.push_batch(ffs);
            } else {
                tracing::warn!(connection = %cid, count = ffs.len(), "recovered FlowFiles belong to a connection that is no longer in the flow; kept aside");
                self.orphaned.lock().entry(cid).or_default().extend(ffs);
            }
        }
        // 3. Nodes: kept ones get their new connections; new ones are created.
        let mut nodes = Vec::new();
        let mut fresh = Vec::new();
        for p in &spec.processors {
            let outputs_all: Vec<Arc<Connection>> = connections
                .iter()
                .filter(|(s, _)| s.from == p.id)
                .map(|(_, c)| c.clone())
                .collect();
            let node = if let Some(n) = kept.get(&p.id) {
                *n.ctx.outputs.write() = outputs_all;
                n.clone()
            } else {
                let Some(processor) = built.remove(&p.id) else {
                    continue;
                };
                let ctx = Arc::new(ProcessContext {
                    id: p.id.clone(),
                    type_name: p.kind.name().to_string(),
                    stats: Arc::default(),
                    wake: self.wake_for(&p.id),
                    outputs: RwLock::new(outputs_all),
                    shutdown: self.shutdown.child_token(),
                    scheduling: p.scheduling.clone(),
                    yielded_until: AtomicU64::new(0),
                    journal: self.journal.clone(),
                });
                let n = Arc::new(Node {
                    spec: p.clone(),
                    processor,
                    ctx,
                    io: RwLock::new(Arc::new(NodeIo {
                        id: p.id.clone(),
                        inputs: Vec::new(),
                        outputs: Vec::new(),
                        stats: Arc::default(),
                        journal: None,
                        provenance: self.provenance.clone(),
                        penalty: p.scheduling.penalty,
                        taps: Vec::new(),
                    })),
                    running: AtomicBool::new(true),
                    cancel: self.shutdown.child_token(),
                    tasks: Mutex::new(Vec::new()),
                    taps: Mutex::new(Vec::new()),
                });
                fresh.push(n.clone());
                n
            };
            *node.io.write() = Arc::new(self.node_io(p, &connections, &node));
            nodes.push(node);
        }
        {
            let mut st = self.state.write();
            st.spec = Arc::new(spec);
            st.nodes = nodes;
            st.connections = connections;
        }
        drop(guard);
        // 4. Start the new processors.
        for n in &fresh {
            if let Err(e) = n.processor.on_scheduled(&n.ctx).await {
                n.running.store(false, Ordering::Relaxed);
                n.ctx
                    .bulletin(Level::Error, format!("failed to start: {}", e.message));
                summary.failed_to_start.push((n.spec.id.clone(), e.message));
                continue;
            }
            let mut tasks = n.tasks.lock();
            for _ in 0..n.spec.scheduling.concurrent_tasks {
                tasks.push(tokio::spawn(run_task(n.clone(), gate.clone())));
            }
        }
        for n in self.nodes() {
            n.ctx.wake();
        }
        summary
    }

    fn node_io(
        &self,
        p: &ProcessorSpec,
        connections: &[(ConnectionSpec, Arc<Connection>)],
        node: &Node,
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
            stats: node.ctx.stats.clone(),
            journal: self.journal.clone(),
            provenance: self.provenance.clone(),
            penalty: p.scheduling.penalty,
            taps: node.taps.lock().clone(),
        }
    }

    /// The flow as validated.
    #[must_use]
    pub fn spec(&self) -> Arc<FlowSpec> {
        self.state.read().spec.clone()
    }

    /// Processors.
    #[must_use]
    pub fn nodes(&self) -> Vec<Arc<Node>> {
        self.state.read().nodes.clone()
    }

    /// The processor of this id.
    #[must_use]
    pub fn node(&self, id: &str) -> Option<Arc<Node>> {
        self.state
            .read()
            .nodes
            .iter()
            .find(|n| n.spec.id == id)
            .cloned()
    }

    /// The connection of this id.
    #[must_use]
    pub fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.state
            .read()
            .connections
            .iter()
            .find(|(s, _)| s.id == id)
            .map(|(_, c)| c.clone())
    }

    /// Connections with their specs.
    #[must_use]
    pub fn connections(&self) -> Vec<(ConnectionSpec, Arc<Connection>)> {
        self.state.read().connections.clone()
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
        for (s, c) in self.connections() {
            out.extend(c.snapshot().into_iter().map(|f| (s.id.clone(), f)));
        }
        for (cid, ffs) in self.orphaned.lock().iter() {
            out.extend(ffs.iter().map(|f| (cid.clone(), f.clone())));
        }
        out
    }

    /// Copies of every FlowFile `processor` commits to `relationship` from now on.
    /// Returns `None` if there is no such processor.
    #[must_use]
    pub fn tap(&self, processor: &str, relationship: &str) -> Option<Tap> {
        let st = self.state.read();
        let node = st.nodes.iter().find(|n| n.spec.id == processor)?;
        let tap: Tap = Arc::default();
        node.taps
            .lock()
            .push((relationship.to_string(), tap.clone()));
        let io = self.node_io(&node.spec, &st.connections, node);
        *node.io.write() = Arc::new(io);
        Some(tap)
    }

    /// Whether nothing is queued or being worked on (flow tests wait for it).
    #[must_use]
    pub fn is_quiescent(&self) -> bool {
        let st = self.state.read();
        st.connections.iter().all(|(_, c)| c.queued_count() == 0)
            && st
                .nodes
                .iter()
                .all(|n| n.ctx.stats.active_tasks.load(Ordering::SeqCst) == 0)
    }

    /// Stops (false) or starts (true) a processor. Returns false if unknown.
    pub fn set_running(&self, id: &str, running: bool) -> bool {
        match self.node(id) {
            Some(n) => {
                n.running.store(running, Ordering::SeqCst);
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
        let st = self.state.read();
        let processors = st
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
        let connections = st
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
            name: st.spec.name.clone(),
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
        let nodes = self.nodes();
        for n in &nodes {
            n.ctx.wake();
        }
        let deadline = tokio::time::Instant::now() + grace;
        for n in &nodes {
            n.join(deadline).await;
        }
        for n in &nodes {
            n.processor.on_stopped(&n.ctx).await;
        }
    }
}

impl Node {
    /// Stops this node's tasks (finishing in-flight triggers) and runs `on_stopped`.
    async fn stop(&self, grace: Duration) {
        self.cancel.cancel();
        self.ctx.shutdown.cancel();
        self.ctx.wake();
        self.join(tokio::time::Instant::now() + grace).await;
        self.processor.on_stopped(&self.ctx).await;
    }

    async fn join(&self, deadline: tokio::time::Instant) {
        let tasks: Vec<JoinHandle<()>> = std::mem::take(&mut *self.tasks.lock());
        for mut t in tasks {
            if tokio::time::timeout_at(deadline, &mut t).await.is_err() {
                tracing::warn!(processor = %self.spec.id, "task did not finish in time; aborted");
                t.abort();
            }
        }
    }
}

async fn run_task(node: Arc<Node>, gate: Arc<tokio::sync::RwLock<()>>) {
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
        // Shared with other triggers; exclusive only while a reload swaps
        // connections. Read the connections again under it.
        let stats = &ctx.stats;
        // Count the task active before the last running check: once an
        // operator stopped the processor and sees no active task, no trigger
        // can start any more. The count drops only after commit or rollback.
        stats.active_tasks.fetch_add(1, Ordering::SeqCst);
        if !node.is_running() || node.cancel.is_cancelled() {
            stats.active_tasks.fetch_sub(1, Ordering::SeqCst);
            continue;
        }
        let gate_guard = gate.read().await;
        let io = node.io.read().clone();
        let mut session = ProcessSession::new(io);
        let result = AssertUnwindSafe(node.processor.on_trigger(&ctx, &mut session))
            .catch_unwind()
            .await;
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
        let did_work = session.did_work();
        drop(session);
        drop(gate_guard);
        stats.active_tasks.fetch_sub(1, Ordering::SeqCst);
        if let Some(e) = failure {
            stats.errors.fetch_add(1, Ordering::Relaxed);
            ctx.bulletin(Level::Error, e.message.clone());
            ctx.yield_for(e.yield_for.unwrap_or(sched.yield_duration));
            continue;
        }
        if !did_work && run_ms == 0 {
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
