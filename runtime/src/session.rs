//! ProcessSession: the unit of work of one trigger.
//!
//! A processor takes FlowFiles from its input queues, creates, clones,
//! modifies, transfers or removes them, then commits. Commit is atomic: every
//! FlowFile the session touched must be accounted for (transferred or
//! removed), the journal (if any) records all changes as one record, and only
//! then do the FlowFiles appear in their downstream queues. Rollback puts the
//! inputs back at the front of the queues they came from, unmodified,
//! optionally penalised. Dropping an uncommitted session rolls it back, so even
//! a panicking processor moves nothing half-way.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::connection::Connection;
use crate::flowfile::{Content, FlowFile, now_millis};
use crate::journal::{Change, Journal};
use crate::metrics::{ProcessorStats, add};
use crate::processor::ProcessError;
use crate::provenance::{EventKind, ProvenanceEvent, ProvenanceRepository};

/// One relationship of a processor and the connections it feeds.
#[derive(Clone)]
pub struct Output {
    /// Relationship name.
    pub relationship: String,
    /// Connections fed (empty = auto-terminated).
    pub connections: Vec<Arc<Connection>>,
}

/// What a session of one processor works with; swapped as a whole on reload.
pub struct NodeIo {
    /// Processor id.
    pub id: String,
    /// Input queues.
    pub inputs: Vec<Arc<Connection>>,
    /// Outputs by relationship.
    pub outputs: Vec<Output>,
    /// Counters.
    pub stats: Arc<ProcessorStats>,
    /// Durable storage, if any.
    pub journal: Option<Arc<dyn Journal>>,
    /// Provenance store.
    pub provenance: Arc<ProvenanceRepository>,
    /// Penalty duration.
    pub penalty: Duration,
    /// Observers that receive a copy of every FlowFile committed to a
    /// relationship (flow unit tests, debugging).
    pub taps: Vec<(String, Tap)>,
}

/// Copies of FlowFiles committed to one relationship.
pub type Tap = Arc<parking_lot::Mutex<Vec<FlowFile>>>;

/// Hashes FlowFile ids. They are unique counters handed out by the runtime,
/// not keys chosen from outside, so one multiplication spreads them well and
/// costs far less than SipHash on this per-FlowFile path.
#[derive(Default, Clone, Copy)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(*b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The ids of FlowFiles open in a session.
type IdSet = HashSet<u64, BuildHasherDefault<IdHasher>>;

/// A unit of work; see the module docs.
pub struct ProcessSession {
    io: Arc<NodeIo>,
    taken: Vec<(usize, FlowFile)>,
    open: IdSet,
    transfers: Vec<(usize, FlowFile)>,
    removed: Vec<FlowFile>,
    events: Vec<ProvenanceEvent>,
    problems: Vec<String>,
    requeued: HashSet<u64>,
    requeue_penalized: HashSet<u64>,
    created: u64,
    next_input: usize,
    touched: bool,
}

impl ProcessSession {
    /// A session over `io`.
    #[must_use]
    pub fn new(io: Arc<NodeIo>) -> Self {
        Self {
            io,
            taken: Vec::new(),
            open: IdSet::default(),
            transfers: Vec::new(),
            removed: Vec::new(),
            events: Vec::new(),
            problems: Vec::new(),
            requeued: HashSet::new(),
            requeue_penalized: HashSet::new(),
            created: 0,
            next_input: 0,
            touched: false,
        }
    }

    /// The processor id.
    #[must_use]
    pub fn processor_id(&self) -> &str {
        &self.io.id
    }

    /// Whether this session took or created anything since its last commit.
    #[must_use]
    pub fn has_work(&self) -> bool {
        !self.taken.is_empty() || !self.open.is_empty() || !self.transfers.is_empty()
    }

    /// Whether anything was ever taken or created in this session (even if
    /// committed already): the scheduler uses it to tell a bored source.
    #[must_use]
    pub fn did_work(&self) -> bool {
        self.touched
    }

    /// Takes the next FlowFile from the inputs (round robin).
    pub fn get(&mut self) -> Option<FlowFile> {
        let mut v = Vec::with_capacity(1);
        self.get_into(1, &mut v);
        v.pop()
    }

    /// Takes up to `max` FlowFiles from the inputs.
    pub fn get_batch(&mut self, max: usize) -> Vec<FlowFile> {
        let mut v = Vec::with_capacity(max.min(4096));
        self.get_into(max, &mut v);
        v
    }

    fn get_into(&mut self, max: usize, out: &mut Vec<FlowFile>) {
        let n = self.io.inputs.len();
        if n == 0 || max == 0 {
            return;
        }
        let start_len = out.len();
        for k in 0..n {
            let idx = (self.next_input + k) % n;
            let before = out.len();
            let want = max - (out.len() - start_len);
            self.io.inputs[idx].poll_batch(want, out);
            let got = out.len() - before;
            // Room for them everywhere they go in this session: growing
            // these one push at a time copied every FlowFile several times.
            self.taken.reserve(got);
            self.open.reserve(got);
            self.transfers.reserve(got);
            for ff in &out[before..] {
                self.taken.push((idx, ff.clone()));
                self.open.insert(ff.id);
            }
            if out.len() - start_len >= max {
                self.next_input = (idx + 1) % n;
                break;
            }
        }
        if out.len() > start_len {
            self.touched = true;
        }
    }

    /// How many FlowFiles wait in the inputs now.
    #[must_use]
    pub fn queued(&self) -> u64 {
        self.io.inputs.iter().map(|c| c.queued_count()).sum()
    }

    /// Age in ms of the oldest FlowFile next in line across inputs.
    #[must_use]
    pub fn oldest_queued_age_millis(&self) -> Option<u64> {
        self.io
            .inputs
            .iter()
            .filter_map(|c| c.head_age_millis())
            .max()
    }

    /// Records a provenance event. `details` is built only when provenance
    /// is on: this runs for every FlowFile a session routes.
    fn event(
        &mut self,
        kind: EventKind,
        ff: &FlowFile,
        parents: &[u64],
        details: impl FnOnce() -> String,
    ) {
        if self.io.provenance.enabled() {
            self.events.push(ProvenanceEvent {
                seq: 0,
                time: now_millis(),
                kind,
                flowfile: ff.id,
                parents: parents.to_vec(),
                component: self.io.id.clone(),
                details: details(),
                attributes: ff.attributes.clone(),
            });
        }
    }

    fn track_new(&mut self, ff: &FlowFile) {
        self.open.insert(ff.id);
        self.created += 1;
        self.touched = true;
    }

    /// A new FlowFile made here (CREATE event).
    pub fn create(&mut self) -> FlowFile {
        let ff = FlowFile::new();
        self.track_new(&ff);
        self.event(EventKind::Create, &ff, &[], String::new);
        ff
    }

    /// A new FlowFile with data received from outside; `source` is its URI
    /// (RECEIVE event at commit, with the attributes it has then).
    pub fn receive(&mut self, source: &str) -> FlowFile {
        let ff = FlowFile::new();
        self.track_new(&ff);
        if !self.io.provenance.enabled() {
            return ff;
        }
        self.events.push(ProvenanceEvent {
            seq: 0,
            time: now_millis(),
            kind: EventKind::Receive,
            flowfile: ff.id,
            parents: Vec::new(),
            component: self.io.id.clone(),
            details: source.to_string(),
            attributes: crate::attributes::Attributes::new(),
        });
        ff
    }

    /// A child of `parent` (same attributes and content, new id; FORK event).
    pub fn create_child(&mut self, parent: &FlowFile) -> FlowFile {
        let ff = parent.child();
        self.track_new(&ff);
        self.event(EventKind::Fork, &ff, &[parent.id], String::new);
        ff
    }

    /// A new FlowFile derived from several parents (merge output).
    pub fn create_merged(&mut self, parents: &[FlowFile]) -> FlowFile {
        let mut ff = FlowFile::new();
        if let Some(oldest) = parents.iter().map(|p| p.lineage_start).min() {
            ff.lineage_start = oldest;
        }
        self.track_new(&ff);
        let ids: Vec<u64> = parents.iter().map(|p| p.id).collect();
        self.event(EventKind::Fork, &ff, &ids, || "merge".into());
        ff
    }

    /// Reads the content.
    ///
    /// # Errors
    /// Stored content could not be read.
    pub fn read(&self, ff: &FlowFile) -> Result<Bytes, ProcessError> {
        match &ff.content {
            Content::Memory(b) => Ok(b.clone()),
            Content::Stored(s) => s
                .read()
                .map_err(|e| ProcessError::new(format!("reading content of {}: {e}", ff.id))),
        }
    }

    /// Replaces the content.
    pub fn write(&self, ff: &mut FlowFile, content: impl Into<Bytes>) {
        ff.content = Content::Memory(content.into());
    }

    /// Penalises `ff` for the processor's penalty duration.
    pub fn penalize(&self, ff: &mut FlowFile) {
        ff.penalized_until = now_millis() + u64::try_from(self.io.penalty.as_millis()).unwrap_or(0);
    }

    /// Records that `ff` was delivered to `destination` (SEND event).
    pub fn send(&mut self, ff: &FlowFile, destination: &str) {
        self.event(EventKind::Send, ff, &[], || destination.to_string());
    }

    /// Whether the processor has a relationship of this name.
    #[must_use]
    pub fn has_relationship(&self, rel: &str) -> bool {
        self.io.outputs.iter().any(|o| o.relationship == rel)
    }

    /// Sends `ff` to relationship `rel` at commit.
    pub fn transfer(&mut self, ff: FlowFile, rel: &str) {
        if !self.open.remove(&ff.id) {
            self.problems.push(format!(
                "FlowFile {} transferred to `{rel}` but it is not open in this session",
                ff.id
            ));
            return;
        }
        if let Some(i) = self.io.outputs.iter().position(|o| o.relationship == rel) {
            self.transfers.push((i, ff));
        } else {
            self.problems.push(format!(
                "no relationship `{rel}` on processor `{}`",
                self.io.id
            ));
            self.open.insert(ff.id);
        }
    }

    /// Gives an input back to the front of the queue it was taken from, now,
    /// penalised until `penalized_until` (ms since the epoch; 0 = not
    /// penalised): NiFi's transfer back to self. A sink uses it for the one
    /// FlowFile whose delivery failed transiently, so the FlowFiles it already
    /// delivered in this session can still be committed.
    ///
    /// The FlowFile goes back as given (attribute changes are kept, unlike
    /// [`rollback`](Self::rollback)); nothing is journaled for it, so after a
    /// crash it is back as it was last committed. Only a FlowFile taken from an
    /// input in this session can be requeued; anything else fails the commit.
    pub fn requeue_until(&mut self, mut ff: FlowFile, penalized_until: u64) {
        let Some(pos) = self.taken.iter().position(|(_, t)| t.id == ff.id) else {
            self.problems.push(format!(
                "FlowFile {} requeued but it was not taken from an input in this session",
                ff.id
            ));
            return;
        };
        if !self.open.remove(&ff.id) {
            self.problems.push(format!(
                "FlowFile {} requeued but it is not open in this session",
                ff.id
            ));
            return;
        }
        let (idx, _) = self.taken.remove(pos);
        ff.penalized_until = penalized_until;
        self.io.inputs[idx].requeue_front(vec![ff]);
    }

    /// Gives FlowFiles taken in this session back to the front of the queues
    /// they came from when the session commits, as they were taken (their
    /// changes discarded), in the order they were taken, penalised if asked.
    /// They count as neither processed nor transferred. A processor uses it for
    /// the FlowFiles it cannot handle yet (a rate limit, an incomplete bin, a
    /// full disk, a remote side that said "later") while the rest of its batch
    /// commits; a later `get` in the same trigger does not see them again.
    /// FlowFiles created in this session cannot be requeued.
    pub fn requeue(&mut self, ffs: Vec<FlowFile>, penalize: bool) {
        for ff in ffs {
            let known = self.taken.iter().any(|(_, t)| t.id == ff.id);
            if !known || !self.open.remove(&ff.id) {
                self.problems.push(format!(
                    "FlowFile {} requeued but it was not taken from an input in this session",
                    ff.id
                ));
                continue;
            }
            self.requeued.insert(ff.id);
            if penalize {
                self.requeue_penalized.insert(ff.id);
            }
        }
    }

    /// At commit: FlowFiles passed to [`Self::requeue`] go back to the front
    /// of their inputs in the order they were taken.
    fn give_back_requeued(&mut self) {
        if self.requeued.is_empty() {
            return;
        }
        let until = now_millis() + u64::try_from(self.io.penalty.as_millis()).unwrap_or(0);
        let mut per_input: Vec<Vec<FlowFile>> = vec![Vec::new(); self.io.inputs.len()];
        let taken = std::mem::take(&mut self.taken);
        for (idx, mut ff) in taken {
            if self.requeued.remove(&ff.id) {
                if self.requeue_penalized.contains(&ff.id) {
                    ff.penalized_until = until;
                }
                per_input[idx].push(ff);
            } else {
                self.taken.push((idx, ff));
            }
        }
        self.requeue_penalized.clear();
        for (idx, ffs) in per_input.into_iter().enumerate() {
            self.io.inputs[idx].requeue_front(ffs);
        }
    }

    /// Removes `ff` from the flow at commit (DROP event).
    pub fn remove(&mut self, ff: FlowFile) {
        if !self.open.remove(&ff.id) {
            self.problems.push(format!(
                "FlowFile {} removed but it is not open in this session",
                ff.id
            ));
            return;
        }
        self.event(EventKind::Drop, &ff, &[], || "removed".into());
        self.removed.push(ff);
    }

    /// Commits: see the module docs. On error the session is rolled back.
    ///
    /// # Errors
    /// A FlowFile was not accounted for, or the journal failed.
    ///
    /// Not cancel-safe once the journal write started: dropping the future
    /// then leaves the inputs rolled back while the journal may hold the
    /// commit (recovery then delivers them again: at-least-once).
    pub async fn commit(&mut self) -> Result<(), ProcessError> {
        if !self.problems.is_empty() || !self.open.is_empty() {
            let mut msg = self.problems.join("; ");
            if !self.open.is_empty() {
                if !msg.is_empty() {
                    msg.push_str("; ");
                }
                let mut ids: Vec<_> = self.open.iter().copied().collect();
                ids.sort_unstable();
                let _ = write!(
                    msg,
                    "FlowFiles {ids:?} were neither transferred nor removed"
                );
            }
            self.rollback(false);
            return Err(ProcessError::new(format!("session not committed: {msg}")));
        }
        let io = self.io.clone();
        let mut batches: Vec<Vec<FlowFile>> = Vec::new();
        let mut targets: Vec<&Arc<Connection>> = Vec::new();
        let mut terminated: Vec<FlowFile> = Vec::new();
        let (mut out_n, mut out_bytes) = (0u64, 0u64);
        // Taps see a FlowFile only once its commit is durable.
        let mut tapped: Vec<(&Tap, FlowFile)> = Vec::new();
        let transfers = std::mem::take(&mut self.transfers);
        let total = transfers.len();
        for (i, (oi, ff)) in transfers.into_iter().enumerate() {
            // Sized for what is left, once: most sessions send everything to
            // one connection or one auto-terminated relationship.
            let left = total - i;
            let out = &io.outputs[oi];
            for (rel, tap) in &io.taps {
                if *rel == out.relationship {
                    tapped.push((tap, ff.clone()));
                }
            }
            if out.connections.is_empty() {
                self.event(EventKind::Drop, &ff, &[], || {
                    format!("auto-terminated `{}`", out.relationship)
                });
                if terminated.capacity() == 0 {
                    terminated.reserve(left);
                }
                terminated.push(ff);
                continue;
            }
            self.event(EventKind::Route, &ff, &[], || out.relationship.clone());
            let ff_id = ff.id;
            let last = out.connections.len() - 1;
            let mut ff = Some(ff);
            for (ci, conn) in out.connections.iter().enumerate() {
                let copy = if ci == last {
                    ff.take()
                } else {
                    ff.as_ref().map(|f| {
                        let mut c = f.clone();
                        c.id = crate::flowfile::next_id();
                        c
                    })
                };
                let Some(copy) = copy else { continue };
                if ci != last {
                    // A copy for another connection, linked to the original
                    // so provenance follows both.
                    self.event(EventKind::Fork, &copy, &[ff_id], || {
                        format!("clone to {}", conn.id())
                    });
                }
                out_n += 1;
                out_bytes += copy.size();
                let slot = if let Some(s) = targets.iter().position(|t| Arc::ptr_eq(t, conn)) {
                    s
                } else {
                    targets.push(conn);
                    batches.push(Vec::with_capacity(left));
                    targets.len() - 1
                };
                batches[slot].push(copy);
            }
        }
        if let Some(journal) = &io.journal {
            for batch in &mut batches {
                for ff in batch.iter_mut() {
                    if let Err(e) = journal.persist_content(ff) {
                        self.restore_after_failed_commit(batches, terminated);
                        return Err(
                            ProcessError::new(e.to_string()).yield_for(Duration::from_secs(1))
                        );
                    }
                }
            }
            let mut changes = Vec::new();
            for (slot, batch) in batches.iter().enumerate() {
                for ff in batch {
                    changes.push(Change::Put {
                        flowfile: ff,
                        connection: targets[slot].id(),
                    });
                }
            }
            for ff in self.removed.iter().chain(terminated.iter()) {
                changes.push(Change::Remove { id: ff.id });
            }
            if let Err(e) = journal.commit(changes).await {
                self.restore_after_failed_commit(batches, terminated);
                return Err(ProcessError::new(e.to_string()).yield_for(Duration::from_secs(1)));
            }
        }
        for (slot, batch) in batches.into_iter().enumerate() {
            targets[slot].push_batch(batch);
        }
        for (tap, ff) in tapped {
            tap.lock().push(ff);
        }
        self.give_back_requeued();
        let (in_n, in_bytes) = self
            .taken
            .iter()
            .fold((0u64, 0u64), |(n, b), (_, f)| (n + 1, b + f.size()));
        let s = &io.stats;
        add(&s.flowfiles_in, in_n);
        add(&s.bytes_in, in_bytes);
        add(&s.flowfiles_out, out_n);
        add(&s.bytes_out, out_bytes);
        add(&s.flowfiles_created, self.created);
        add(
            &s.flowfiles_dropped,
            (self.removed.len() + terminated.len()) as u64,
        );
        io.provenance.record(std::mem::take(&mut self.events));
        self.taken.clear();
        self.removed.clear();
        self.created = 0;
        Ok(())
    }

    fn restore_after_failed_commit(&mut self, _batches: Vec<Vec<FlowFile>>, _t: Vec<FlowFile>) {
        self.transfers.clear();
        self.removed.clear();
        self.rollback(true);
    }

    /// Rolls back: inputs go back to the front of their queues unmodified
    /// (penalised if asked), created FlowFiles are discarded.
    pub fn rollback(&mut self, penalize: bool) {
        let taken = std::mem::take(&mut self.taken);
        let had_work = !taken.is_empty() || !self.open.is_empty();
        let until = if penalize {
            now_millis() + u64::try_from(self.io.penalty.as_millis()).unwrap_or(0)
        } else {
            0
        };
        let mut per_input: Vec<Vec<FlowFile>> = vec![Vec::new(); self.io.inputs.len()];
        for (idx, mut ff) in taken {
            if penalize {
                ff.penalized_until = until;
            }
            per_input[idx].push(ff);
        }
        for (idx, ffs) in per_input.into_iter().enumerate() {
            self.io.inputs[idx].requeue_front(ffs);
        }
        self.open.clear();
        self.requeued.clear();
        self.requeue_penalized.clear();
        self.transfers.clear();
        self.removed.clear();
        self.events.clear();
        self.problems.clear();
        self.created = 0;
        if had_work {
            add(&self.io.stats.rollbacks, 1);
        }
    }
}

impl Drop for ProcessSession {
    fn drop(&mut self) {
        if !self.taken.is_empty() {
            self.rollback(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::connection::ConnectionSettings;
    use tokio::sync::Notify;

    fn conn(id: &str) -> Arc<Connection> {
        let n = Arc::new(Notify::new());
        Arc::new(Connection::new(
            id,
            ConnectionSettings::default(),
            n.clone(),
            n,
            None,
        ))
    }

    fn node(input: &Arc<Connection>, out: &Arc<Connection>) -> Arc<NodeIo> {
        node_with(input, out, None, Vec::new(), Duration::from_secs(30))
    }

    /// One input, `success` to `out`, with this journal, these taps and penalty.
    fn node_with(
        input: &Arc<Connection>,
        out: &Arc<Connection>,
        journal: Option<Arc<dyn Journal>>,
        taps: Vec<(String, Tap)>,
        penalty: Duration,
    ) -> Arc<NodeIo> {
        Arc::new(NodeIo {
            id: "p".into(),
            inputs: vec![input.clone()],
            outputs: vec![Output {
                relationship: "success".into(),
                connections: vec![out.clone()],
            }],
            stats: Arc::default(),
            journal,
            provenance: Arc::new(ProvenanceRepository::new(100)),
            penalty,
            taps,
        })
    }

    #[tokio::test]
    async fn requeue_gives_one_input_back_and_commits_the_rest() {
        let (input, out) = (conn("in"), conn("out"));
        input.push_batch((0..3).map(|_| FlowFile::new()).collect());
        let mut s = ProcessSession::new(node(&input, &out));
        let mut batch = s.get_batch(3);
        let mut third = batch.pop().unwrap();
        let third_id = third.id;
        for ff in batch {
            s.transfer(ff, "success");
        }
        third.attributes.insert("put.error", "connection refused");
        let until = now_millis() + 60_000;
        s.requeue_until(third, until);
        assert_eq!(input.queued_count(), 1, "requeued at once");
        s.commit().await.unwrap();
        assert_eq!(out.queued_count(), 2);
        assert!(!input.has_available(), "penalised, so not available yet");
        let back = input.drain_all();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].id, third_id);
        assert_eq!(back[0].attr("put.error"), Some("connection refused"));
        assert_eq!(back[0].penalized_until, until);
    }

    #[tokio::test]
    async fn requeue_returns_originals_in_order_and_the_rest_commits() {
        let n = Arc::new(Notify::new());
        let mk = |id: &str| {
            Arc::new(Connection::new(
                id,
                ConnectionSettings::default(),
                n.clone(),
                n.clone(),
                None,
            ))
        };
        let (input, out) = (mk("in"), mk("out"));
        let ffs: Vec<FlowFile> = (0..4).map(|_| FlowFile::new()).collect();
        let ids: Vec<u64> = ffs.iter().map(|f| f.id).collect();
        input.push_batch(ffs);
        let mut s = ProcessSession::new(node(&input, &out));
        let mut batch = s.get_batch(10);
        let rest = batch.split_off(1);
        s.transfer(batch.remove(0), "success");
        let mut changed = rest;
        for f in &mut changed {
            f.attributes.insert("touched", "yes");
        }
        s.requeue(changed, true);
        s.commit().await.unwrap();
        assert_eq!(out.queued_count(), 1);
        assert_eq!(input.queued_count(), 3);
        // Penalised: not available now, but back in their original order and unmodified.
        assert!(!input.has_available());
        let back = input.drain_all();
        assert_eq!(
            back.iter().map(|f| f.id).collect::<Vec<_>>(),
            ids[1..].to_vec()
        );
        assert!(
            back.iter()
                .all(|f| f.attr("touched").is_none() && f.penalized_until > 0)
        );
    }

    #[tokio::test]
    async fn requeue_of_a_created_flowfile_fails_the_commit() {
        let (input, out) = (conn("in"), conn("out"));
        let mut s = ProcessSession::new(node(&input, &out));
        let ff = s.create();
        s.requeue_until(ff, 0);
        let err = s.commit().await.unwrap_err();
        assert!(
            err.message.contains("not taken from an input"),
            "{}",
            err.message
        );
        assert_eq!(input.queued_count(), 0);
    }

    struct FailingJournal;

    impl Journal for FailingJournal {
        fn commit<'a>(
            &'a self,
            _changes: Vec<Change<'a>>,
        ) -> futures::future::BoxFuture<'a, Result<(), crate::journal::JournalError>> {
            Box::pin(async { Err(crate::journal::JournalError("disk gone".into())) })
        }
    }

    #[tokio::test]
    async fn a_tap_sees_only_committed_flowfiles() {
        let (input, out) = (conn("in"), conn("out"));
        let tap: Tap = Arc::default();
        let node = |journal| {
            let taps = vec![("success".into(), tap.clone())];
            node_with(&input, &out, journal, taps, Duration::ZERO)
        };
        input.push_batch(vec![FlowFile::new()]);

        let mut session =
            ProcessSession::new(node(Some(Arc::new(FailingJournal) as Arc<dyn Journal>)));
        let ff = session.get().unwrap();
        session.transfer(ff, "success");
        assert!(session.commit().await.is_err());
        assert!(tap.lock().is_empty(), "the commit failed: nothing to see");
        assert_eq!(input.queued_count(), 1, "rolled back");

        let mut session = ProcessSession::new(node(None));
        let ff = session.get().unwrap();
        session.transfer(ff, "success");
        session.commit().await.unwrap();
        assert_eq!(tap.lock().len(), 1);
        assert_eq!(out.queued_count(), 1);
    }
}
