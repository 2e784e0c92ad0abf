//! Connections: bounded, prioritised queues between processors.
//!
//! A connection is full when it holds `max_count` FlowFiles or `max_bytes`
//! bytes of content. What happens then is its [`WhenFull`] policy:
//!
//! - `block` (default): the upstream processor is not triggered until the
//!   queue drains below both thresholds. A session already running may overfill
//!   by at most its batch, as in NiFi, so memory stays bounded by
//!   `threshold + batch_size * concurrent_tasks`.
//! - `drop-oldest`: the FlowFile next in line is dropped to make room.
//! - `shed`: FlowFiles whose shed attribute (default `syslog.severity`) is
//!   numerically above `shed_above` (less severe) are dropped first, oldest
//!   first; only when none is left does it fall back to dropping the oldest.
//!
//! - `spill`: past the thresholds FlowFiles are swapped out to disk in
//!   batches (see [`crate::spill`]) up to `max_disk`; they come back in order
//!   as the queue drains. Only when the disk cap is reached (and one more
//!   batch waits in memory) does it block like `block`.
//!
//! Neither dropping policy ever reports itself full, and `spill` only at its
//! disk cap, so a slow sink behind one never stalls its siblings. Every drop
//! is counted.
//!
//! Internally the queue keeps up to two *lanes* (one for sheddable FlowFiles
//! under `shed`) ordered by (rank, sequence); polling takes the better head. A
//! FIFO lane is a `VecDeque`, other prioritisers use a binary heap. Penalised
//! FlowFiles wait in a separate heap until their penalty ends.

use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::attributes::AttrStr;
use crate::flowfile::{FlowFile, now_millis};
use crate::spill::Spill;

/// Default back-pressure object threshold (NiFi's).
pub const DEFAULT_MAX_COUNT: u64 = 10_000;
/// Default back-pressure data-size threshold: 1 GB (NiFi's).
pub const DEFAULT_MAX_BYTES: u64 = 1_000_000_000;
/// Default disk cap of a `spill` connection's swap files: 10 GB.
pub const DEFAULT_SPILL_MAX_DISK: u64 = 10_000_000_000;

/// Settings of `when_full: spill`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpillSettings {
    /// Most bytes of swap files on disk; past it the connection blocks.
    pub max_disk: u64,
    /// Directory under which each connection instance makes its own swap
    /// directory (the engine sets the repository's; `None`: the system temp
    /// directory).
    pub dir: Option<PathBuf>,
}

impl Default for SpillSettings {
    fn default() -> Self {
        Self {
            max_disk: DEFAULT_SPILL_MAX_DISK,
            dir: None,
        }
    }
}

/// What a full connection does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WhenFull {
    /// Back-pressure reaches the upstream processor.
    Block,
    /// The oldest queued FlowFile is dropped (counted).
    DropOldest,
    /// Less severe FlowFiles are dropped first (counted).
    Shed {
        /// Numeric attribute to compare (default `syslog.severity`).
        attribute: String,
        /// FlowFiles with a value strictly above this are sheddable.
        above: i64,
    },
    /// FlowFiles past the thresholds are swapped out to disk.
    Spill(SpillSettings),
}

impl WhenFull {
    /// The policy's name in flow files.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            WhenFull::Block => "block",
            WhenFull::DropOldest => "drop-oldest",
            WhenFull::Shed { .. } => "shed",
            WhenFull::Spill(_) => "spill",
        }
    }
}

/// The order in which queued FlowFiles are handed out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Prioritizer {
    /// First in, first out.
    Fifo,
    /// Oldest lineage first.
    OldestFirst,
    /// By the value of an attribute: numbers before text, lower first; missing last.
    PriorityAttribute(String),
}

/// Why a connection dropped FlowFiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Age-off: older than the connection's expiration.
    Expired,
    /// The when-full policy made room.
    Overflow,
}

impl DropReason {
    /// Lower-case name used in events and metrics.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::Expired => "expired",
            DropReason::Overflow => "overflow",
        }
    }
}

/// Told about every FlowFile a connection drops, so durability and provenance
/// can record it.
pub trait DropObserver: Send + Sync {
    /// `flowfiles` were dropped from `connection` for `reason`.
    fn dropped(&self, connection: &str, flowfiles: &[FlowFile], reason: DropReason);
}

/// Settings of one connection.
#[derive(Clone, Debug)]
pub struct ConnectionSettings {
    /// Back-pressure object threshold.
    pub max_count: u64,
    /// Back-pressure data-size threshold in bytes.
    pub max_bytes: u64,
    /// Policy when full.
    pub when_full: WhenFull,
    /// Hand-out order.
    pub prioritizer: Prioritizer,
    /// Age-off: FlowFiles older than this (since entry) are dropped.
    pub expiration: Option<Duration>,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        Self {
            max_count: DEFAULT_MAX_COUNT,
            max_bytes: DEFAULT_MAX_BYTES,
            when_full: WhenFull::Block,
            prioritizer: Prioritizer::Fifo,
            expiration: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Rank {
    Fifo,
    Time(u64),
    Number(i64),
    Text(AttrStr),
    Missing,
}

struct Entry {
    rank: Rank,
    seq: u64,
    ff: FlowFile,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == CmpOrdering::Equal
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (&self.rank, self.seq).cmp(&(&other.rank, other.seq))
    }
}

enum Lane {
    Fifo(VecDeque<(u64, FlowFile)>),
    Heap(BinaryHeap<Reverse<Entry>>),
}

impl Lane {
    fn new(p: &Prioritizer) -> Self {
        match p {
            Prioritizer::Fifo => Lane::Fifo(VecDeque::new()),
            _ => Lane::Heap(BinaryHeap::new()),
        }
    }
    fn len(&self) -> usize {
        match self {
            Lane::Fifo(q) => q.len(),
            Lane::Heap(h) => h.len(),
        }
    }
    fn head_key(&self) -> Option<(&Rank, u64)> {
        match self {
            Lane::Fifo(q) => q.front().map(|(s, _)| (&Rank::Fifo, *s)),
            Lane::Heap(h) => h.peek().map(|Reverse(e)| (&e.rank, e.seq)),
        }
    }
    fn head(&self) -> Option<&FlowFile> {
        match self {
            Lane::Fifo(q) => q.front().map(|(_, f)| f),
            Lane::Heap(h) => h.peek().map(|Reverse(e)| &e.ff),
        }
    }
    fn pop(&mut self) -> Option<FlowFile> {
        match self {
            Lane::Fifo(q) => q.pop_front().map(|(_, f)| f),
            Lane::Heap(h) => h.pop().map(|Reverse(e)| e.ff),
        }
    }
    fn push(&mut self, rank: Rank, seq: u64, ff: FlowFile, front: bool) {
        match self {
            Lane::Fifo(q) if front => q.push_front((seq, ff)),
            Lane::Fifo(q) => q.push_back((seq, ff)),
            Lane::Heap(h) => h.push(Reverse(Entry { rank, seq, ff })),
        }
    }
    fn ordered(&self, limit: usize) -> Vec<FlowFile> {
        match self {
            Lane::Fifo(q) => q.iter().take(limit).map(|(_, f)| f.clone()).collect(),
            Lane::Heap(h) => {
                let mut all: Vec<&Entry> = h.iter().map(|Reverse(e)| e).collect();
                all.sort();
                all.into_iter().take(limit).map(|e| e.ff.clone()).collect()
            }
        }
    }
}

struct Penalized {
    until: u64,
    seq: u64,
    ff: FlowFile,
}
impl PartialEq for Penalized {
    fn eq(&self, o: &Self) -> bool {
        (self.until, self.seq) == (o.until, o.seq)
    }
}
impl Eq for Penalized {}
impl PartialOrd for Penalized {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Penalized {
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (self.until, self.seq).cmp(&(o.until, o.seq))
    }
}

struct Queue {
    /// Lane 0 keeps; lane 1 (only under `shed`) holds sheddable FlowFiles.
    lanes: Vec<Lane>,
    penalized: BinaryHeap<Reverse<Penalized>>,
    count: u64,
    bytes: u64,
    back_seq: u64,
    front_seq: u64,
    /// Under `spill`: what is past the in-memory part, in order.
    spill: Option<Spill>,
}

/// Counters of a connection, readable without its lock.
#[derive(Default, Debug)]
pub struct ConnectionCounters {
    /// FlowFiles queued now.
    pub queued_count: AtomicU64,
    /// Bytes queued now.
    pub queued_bytes: AtomicU64,
    /// FlowFiles ever enqueued.
    pub enqueued: AtomicU64,
    /// FlowFiles ever handed to the downstream processor.
    pub dequeued: AtomicU64,
    /// Dropped by the when-full policy.
    pub dropped_overflow: AtomicU64,
    /// Dropped by expiration.
    pub dropped_expired: AtomicU64,
    /// FlowFiles swapped out to disk now (`spill`).
    pub spilled: AtomicU64,
    /// Bytes of swap files on disk now (`spill`).
    pub spill_disk_bytes: AtomicU64,
    /// Swap files that could not be written or read back (`spill`).
    pub spill_errors: AtomicU64,
}

/// A bounded queue between two processors.
pub struct Connection {
    id: String,
    settings: ConnectionSettings,
    queue: Mutex<Queue>,
    counters: ConnectionCounters,
    downstream: Arc<Notify>,
    upstream: Arc<Notify>,
    observer: Option<Arc<dyn DropObserver>>,
    spill_blocked: AtomicBool,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("id", &self.id)
            .field("queued", &self.queued_count())
            .finish_non_exhaustive()
    }
}

const MID_SEQ: u64 = u64::MAX / 2;

/// The swap directory of one connection instance: unique, under `root`
/// (the repository's spill directory) or the system temp directory.
fn spill_dir(root: Option<&std::path::Path>, connection: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let name = format!(
        "{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        crate::spill::safe_file_name(connection)
    );
    match root {
        Some(r) => r.join(name),
        None => std::env::temp_dir().join("sluice-spill").join(name),
    }
}

impl Connection {
    /// A connection that wakes `downstream` when FlowFiles arrive and
    /// `upstream` when space frees up.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        settings: ConnectionSettings,
        downstream: Arc<Notify>,
        upstream: Arc<Notify>,
        observer: Option<Arc<dyn DropObserver>>,
    ) -> Self {
        let lanes = if matches!(settings.when_full, WhenFull::Shed { .. }) {
            vec![
                Lane::new(&settings.prioritizer),
                Lane::new(&settings.prioritizer),
            ]
        } else {
            vec![Lane::new(&settings.prioritizer)]
        };
        let id = id.into();
        let spill = match &settings.when_full {
            WhenFull::Spill(sp) => Some(Spill::new(
                spill_dir(sp.dir.as_deref(), &id),
                &id,
                sp.max_disk,
                settings.max_count,
                settings.max_bytes,
            )),
            _ => None,
        };
        Self {
            id,
            settings,
            queue: Mutex::new(Queue {
                lanes,
                penalized: BinaryHeap::new(),
                count: 0,
                bytes: 0,
                back_seq: MID_SEQ,
                front_seq: MID_SEQ,
                spill,
            }),
            counters: ConnectionCounters::default(),
            downstream,
            upstream,
            observer,
            spill_blocked: AtomicBool::new(false),
        }
    }

    /// The connection's id.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its settings.
    #[must_use]
    pub fn settings(&self) -> &ConnectionSettings {
        &self.settings
    }

    /// Its counters.
    #[must_use]
    pub fn counters(&self) -> &ConnectionCounters {
        &self.counters
    }

    /// FlowFiles queued now (penalised ones included).
    #[must_use]
    pub fn queued_count(&self) -> u64 {
        self.counters.queued_count.load(Ordering::Relaxed)
    }

    /// Bytes queued now.
    #[must_use]
    pub fn queued_bytes(&self) -> u64 {
        self.counters.queued_bytes.load(Ordering::Relaxed)
    }

    /// Whether a threshold is reached (regardless of policy).
    #[must_use]
    pub fn at_threshold(&self) -> bool {
        self.queued_count() >= self.settings.max_count
            || self.queued_bytes() >= self.settings.max_bytes
    }

    /// Whether this connection holds back its upstream processor now: a
    /// `block` connection at threshold does, and a `spill` one at its disk cap.
    #[must_use]
    pub fn is_back_pressured(&self) -> bool {
        match self.settings.when_full {
            WhenFull::Block => self.at_threshold(),
            WhenFull::Spill(_) => self.spill_blocked.load(Ordering::Relaxed),
            _ => false,
        }
    }

    /// FlowFiles swapped out to disk now (`spill` only).
    #[must_use]
    pub fn spilled_count(&self) -> u64 {
        self.counters.spilled.load(Ordering::Relaxed)
    }

    /// Fill ratio in [0, 1+]: the larger of count and bytes fill.
    #[must_use]
    #[allow(clippy::cast_precision_loss)]
    pub fn fill_ratio(&self) -> f64 {
        let c = self.queued_count() as f64 / self.settings.max_count.max(1) as f64;
        let b = self.queued_bytes() as f64 / self.settings.max_bytes.max(1) as f64;
        c.max(b)
    }

    fn rank(&self, ff: &FlowFile) -> Rank {
        match &self.settings.prioritizer {
            Prioritizer::Fifo => Rank::Fifo,
            Prioritizer::OldestFirst => Rank::Time(ff.lineage_start),
            Prioritizer::PriorityAttribute(a) => match ff.attributes.get_shared(a) {
                None => Rank::Missing,
                Some(v) => v
                    .trim()
                    .parse::<i64>()
                    .map_or_else(|_| Rank::Text(v.clone()), Rank::Number),
            },
        }
    }

    fn lane_of(&self, ff: &FlowFile) -> usize {
        match &self.settings.when_full {
            WhenFull::Shed { attribute, above } => {
                let sheddable = ff
                    .attributes
                    .get(attribute)
                    .and_then(|v| v.trim().parse::<i64>().ok())
                    .is_some_and(|v| v > *above);
                usize::from(sheddable)
            }
            _ => 0,
        }
    }

    #[inline]
    fn insert(&self, q: &mut Queue, ff: FlowFile, front: bool, now: u64) {
        q.count += 1;
        q.bytes += ff.queued_bytes();
        let seq = if front {
            q.front_seq -= 1;
            q.front_seq
        } else {
            q.back_seq += 1;
            q.back_seq
        };
        if ff.is_penalized(now) {
            q.penalized.push(Reverse(Penalized {
                until: ff.penalized_until,
                seq,
                ff,
            }));
        } else if let [Lane::Fifo(fifo)] = q.lanes.as_mut_slice() {
            // The common queue: one first-in first-out lane (so nothing to
            // rank or shed), no lane or rank to work out per FlowFile.
            if front {
                fifo.push_front((seq, ff));
            } else {
                fifo.push_back((seq, ff));
            }
        } else {
            let lane = self.lane_of(&ff);
            let rank = self.rank(&ff);
            q.lanes[lane].push(rank, seq, ff, front);
        }
    }

    /// Index of the lane whose head goes next.
    fn best_lane(q: &Queue) -> Option<usize> {
        let mut best: Option<(usize, (&Rank, u64))> = None;
        for (i, lane) in q.lanes.iter().enumerate() {
            if let Some(k) = lane.head_key()
                && best.as_ref().is_none_or(|(_, b)| k < *b)
            {
                best = Some((i, k));
            }
        }
        best.map(|(i, _)| i)
    }

    fn take(q: &mut Queue, lane: usize) -> Option<FlowFile> {
        let ff = q.lanes[lane].pop()?;
        q.count -= 1;
        q.bytes -= ff.queued_bytes();
        Some(ff)
    }

    fn publish(&self, q: &Queue) {
        let (mut count, mut bytes) = (q.count, q.bytes);
        if let Some(sp) = &q.spill {
            count += sp.count();
            bytes += sp.bytes();
            let c = &self.counters;
            c.spilled.store(sp.swapped(), Ordering::Relaxed);
            c.spill_disk_bytes.store(sp.disk(), Ordering::Relaxed);
            c.spill_errors.store(sp.errors(), Ordering::Relaxed);
            self.spill_blocked.store(sp.blocked(), Ordering::Relaxed);
        }
        self.counters.queued_count.store(count, Ordering::Relaxed);
        self.counters.queued_bytes.store(bytes, Ordering::Relaxed);
    }

    fn has_room(&self, q: &Queue) -> bool {
        q.count < self.settings.max_count && q.bytes < self.settings.max_bytes
    }

    /// Under `spill`: brings spilled FlowFiles back while the in-memory part
    /// has room for them (or is empty).
    fn spill_in(&self, q: &mut Queue, now: u64) {
        loop {
            let Some((n, b)) = q.spill.as_ref().and_then(Spill::front_size) else {
                return;
            };
            let fits =
                q.count + n <= self.settings.max_count && q.bytes + b <= self.settings.max_bytes;
            if q.count > 0 && !fits {
                return;
            }
            let ffs = q.spill.as_mut().map(Spill::take_front).unwrap_or_default();
            for ff in ffs {
                self.insert(q, ff, false, now);
            }
        }
    }

    fn over(&self, q: &Queue) -> bool {
        q.count > self.settings.max_count || q.bytes > self.settings.max_bytes
    }

    /// Enqueues FlowFiles at the back, applying the when-full policy.
    pub fn push_batch(&self, ffs: Vec<FlowFile>) {
        if ffs.is_empty() {
            return;
        }
        let n = ffs.len() as u64;
        let now = now_millis();
        let mut evicted = Vec::new();
        {
            let mut q = self.queue.lock();
            if q.spill.is_some() {
                for ff in ffs {
                    let direct = self.has_room(&q) && q.spill.as_ref().is_some_and(Spill::is_empty);
                    if direct {
                        self.insert(&mut q, ff, false, now);
                    } else if let Some(sp) = q.spill.as_mut() {
                        sp.push(ff);
                    }
                }
                if let Some(sp) = q.spill.as_mut() {
                    sp.swap_out();
                }
            } else {
                for ff in ffs {
                    self.insert(&mut q, ff, false, now);
                }
            }
            if !matches!(
                self.settings.when_full,
                WhenFull::Block | WhenFull::Spill(_)
            ) {
                while self.over(&q) {
                    // Sheddable lane first, then whatever goes next.
                    let lane = if q.lanes.len() > 1 && q.lanes[1].len() > 0 {
                        Some(1)
                    } else {
                        Self::best_lane(&q)
                    };
                    match lane.and_then(|l| Self::take(&mut q, l)) {
                        Some(ff) => evicted.push(ff),
                        None => break, // only penalised ones left: let them be
                    }
                }
            }
            self.publish(&q);
        }
        self.counters.enqueued.fetch_add(n, Ordering::Relaxed);
        if !evicted.is_empty() {
            self.record_drop(&evicted, DropReason::Overflow);
        }
        self.downstream.notify_waiters();
    }

    /// Puts FlowFiles back at the front in their original order (rollback).
    pub fn requeue_front(&self, ffs: Vec<FlowFile>) {
        if ffs.is_empty() {
            return;
        }
        let now = now_millis();
        {
            let mut q = self.queue.lock();
            let n = ffs.len() as u64;
            for ff in ffs.into_iter().rev() {
                self.insert(&mut q, ff, true, now);
            }
            self.counters.dequeued.fetch_sub(
                n.min(self.counters.dequeued.load(Ordering::Relaxed)),
                Ordering::Relaxed,
            );
            self.publish(&q);
        }
        self.downstream.notify_waiters();
    }

    fn release_penalized(q: &mut Queue, now: u64, conn: &Connection) {
        while let Some(Reverse(p)) = q.penalized.peek() {
            if p.until > now {
                break;
            }
            let Some(Reverse(p)) = q.penalized.pop() else {
                break;
            };
            let lane = conn.lane_of(&p.ff);
            let rank = conn.rank(&p.ff);
            q.lanes[lane].push(rank, p.seq, p.ff, false);
        }
    }

    fn expired(&self, ff: &FlowFile, now: u64) -> bool {
        self.settings.expiration.is_some_and(|exp| {
            now.saturating_sub(ff.entry_date) > u64::try_from(exp.as_millis()).unwrap_or(u64::MAX)
        })
    }

    /// Takes up to `max` FlowFiles in priority order, skipping penalised ones
    /// and dropping expired ones.
    pub fn poll_batch(&self, max: usize, out: &mut Vec<FlowFile>) -> usize {
        let now = now_millis();
        let mut expired = Vec::new();
        let was_full;
        let mut taken = 0;
        {
            let mut q = self.queue.lock();
            was_full = q.count >= self.settings.max_count
                || q.bytes >= self.settings.max_bytes
                || q.spill.as_ref().is_some_and(Spill::blocked);
            self.spill_in(&mut q, now);
            Self::release_penalized(&mut q, now, self);
            // The common queue: one first-in first-out lane, no age limit.
            // Taken as one run from its front, not a lane choice per FlowFile.
            if self.settings.expiration.is_none()
                && let [Lane::Fifo(fifo)] = q.lanes.as_mut_slice()
            {
                let n = fifo.len().min(max);
                let mut bytes = 0;
                out.extend(fifo.drain(..n).map(|(_, ff)| {
                    bytes += ff.queued_bytes();
                    ff
                }));
                q.count -= n as u64;
                q.bytes -= bytes;
                taken = n;
            }
            while taken < max {
                let Some(lane) = Self::best_lane(&q) else {
                    break;
                };
                let Some(ff) = Self::take(&mut q, lane) else {
                    break;
                };
                if self.expired(&ff, now) {
                    expired.push(ff);
                    continue;
                }
                out.push(ff);
                taken += 1;
            }
            self.spill_in(&mut q, now);
            self.publish(&q);
        }
        self.counters
            .dequeued
            .fetch_add(taken as u64, Ordering::Relaxed);
        if !expired.is_empty() {
            self.record_drop(&expired, DropReason::Expired);
        }
        if was_full || taken > 0 {
            self.upstream.notify_waiters();
        }
        taken
    }

    /// Drops every expired FlowFile (periodic age-off sweep). Returns how many.
    pub fn expire(&self) -> usize {
        if self.settings.expiration.is_none() {
            return 0;
        }
        let now = now_millis();
        let mut expired = Vec::new();
        {
            let mut q = self.queue.lock();
            let mut keep = Vec::new();
            for lane in 0..q.lanes.len() {
                while let Some(ff) = Self::take(&mut q, lane) {
                    if self.expired(&ff, now) {
                        expired.push(ff);
                    } else {
                        keep.push(ff);
                    }
                }
            }
            for ff in keep {
                self.insert(&mut q, ff, false, now);
            }
            self.publish(&q);
        }
        let n = expired.len();
        if n > 0 {
            self.record_drop(&expired, DropReason::Expired);
            self.upstream.notify_waiters();
        }
        n
    }

    fn record_drop(&self, ffs: &[FlowFile], reason: DropReason) {
        let c = match reason {
            DropReason::Expired => &self.counters.dropped_expired,
            DropReason::Overflow => &self.counters.dropped_overflow,
        };
        c.fetch_add(ffs.len() as u64, Ordering::Relaxed);
        if let Some(o) = &self.observer {
            o.dropped(&self.id, ffs, reason);
        }
    }

    /// Whether a FlowFile could be polled now (something queued and not penalised).
    #[must_use]
    pub fn has_available(&self) -> bool {
        if self.queued_count() == 0 {
            return false;
        }
        let q = self.queue.lock();
        q.lanes.iter().any(|l| l.len() > 0)
            || q.spill.as_ref().is_some_and(|s| !s.is_empty())
            || q.penalized
                .peek()
                .is_some_and(|Reverse(p)| p.until <= now_millis())
    }

    /// When the earliest penalised FlowFile becomes available (ms epoch).
    #[must_use]
    pub fn next_penalty_end(&self) -> Option<u64> {
        let q = self.queue.lock();
        q.penalized.peek().map(|Reverse(p)| p.until)
    }

    /// Age of the FlowFile next in line, in ms (for time-based batching).
    #[must_use]
    pub fn head_age_millis(&self) -> Option<u64> {
        let q = self.queue.lock();
        let lane = Self::best_lane(&q)?;
        q.lanes[lane]
            .head()
            .map(|ff| now_millis().saturating_sub(ff.entry_date))
    }

    /// The first `limit` queued FlowFiles in hand-out order, then penalised ones.
    #[must_use]
    pub fn listing(&self, limit: usize) -> Vec<FlowFile> {
        let q = self.queue.lock();
        let mut all: Vec<FlowFile> = Vec::new();
        for lane in &q.lanes {
            all.extend(lane.ordered(limit));
        }
        let mut pen: Vec<&Penalized> = q.penalized.iter().map(|Reverse(p)| p).collect();
        pen.sort();
        all.extend(pen.into_iter().map(|p| p.ff.clone()));
        all.truncate(limit);
        all
    }

    fn listing_with_spill(&self) -> Vec<FlowFile> {
        let mut all = self.listing(usize::MAX);
        let q = self.queue.lock();
        if let Some(sp) = &q.spill {
            all.extend(sp.snapshot());
        }
        all
    }

    /// Everything queued, for a checkpoint or a reload (order kept per lane).
    #[must_use]
    pub fn drain_all(&self) -> Vec<FlowFile> {
        let mut out = Vec::new();
        let mut q = self.queue.lock();
        while let Some(lane) = Self::best_lane(&q) {
            if let Some(ff) = Self::take(&mut q, lane) {
                out.push(ff);
            }
        }
        while let Some(Reverse(p)) = q.penalized.pop() {
            q.count -= 1;
            q.bytes -= p.ff.queued_bytes();
            out.push(p.ff);
        }
        if let Some(sp) = q.spill.as_mut() {
            out.extend(sp.take_all());
        }
        self.publish(&q);
        drop(q);
        self.upstream.notify_waiters();
        out
    }

    /// Copies of every queued FlowFile, spilled ones included (read back
    /// from their swap files).
    #[must_use]
    pub fn snapshot(&self) -> Vec<FlowFile> {
        self.listing_with_spill()
    }

    /// The notifier woken when FlowFiles arrive.
    #[must_use]
    pub fn downstream_notify(&self) -> &Arc<Notify> {
        &self.downstream
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn conn(settings: ConnectionSettings) -> Connection {
        Connection::new(
            "c",
            settings,
            Arc::new(Notify::new()),
            Arc::new(Notify::new()),
            None,
        )
    }

    fn ff(attrs: &[(&str, &str)], body: &'static str) -> FlowFile {
        let mut f = FlowFile::new();
        for (k, v) in attrs {
            f.attributes.insert(*k, *v);
        }
        f.content = crate::Content::Memory(Bytes::from_static(body.as_bytes()));
        f
    }

    fn poll_all(c: &Connection) -> Vec<FlowFile> {
        let mut out = Vec::new();
        c.poll_batch(usize::MAX, &mut out);
        out
    }

    #[test]
    fn fifo_order_and_counts() {
        let c = conn(ConnectionSettings::default());
        let a = ff(&[], "aa");
        let b = ff(&[], "bbb");
        let (ia, ib) = (a.id, b.id);
        c.push_batch(vec![a, b]);
        assert_eq!(c.queued_count(), 2);
        assert_eq!(c.queued_bytes(), 5);
        let got = poll_all(&c);
        assert_eq!(got.iter().map(|f| f.id).collect::<Vec<_>>(), vec![ia, ib]);
        assert_eq!(c.queued_count(), 0);
        assert_eq!(c.queued_bytes(), 0);
    }

    #[test]
    fn block_policy_reports_back_pressure_by_count_and_bytes() {
        let c = conn(ConnectionSettings {
            max_count: 2,
            ..Default::default()
        });
        c.push_batch(vec![ff(&[], "")]);
        assert!(!c.is_back_pressured());
        c.push_batch(vec![ff(&[], "")]);
        assert!(c.is_back_pressured());
        let c = conn(ConnectionSettings {
            max_bytes: 4,
            ..Default::default()
        });
        c.push_batch(vec![ff(&[], "abc")]);
        assert!(!c.is_back_pressured());
        c.push_batch(vec![ff(&[], "d")]);
        assert!(c.is_back_pressured());
    }

    #[test]
    fn drop_oldest_keeps_newest_and_counts() {
        let c = conn(ConnectionSettings {
            max_count: 2,
            when_full: WhenFull::DropOldest,
            ..Default::default()
        });
        let fs: Vec<FlowFile> = (0..5).map(|_| ff(&[], "x")).collect();
        let last: Vec<u64> = fs[3..].iter().map(|f| f.id).collect();
        c.push_batch(fs);
        assert!(!c.is_back_pressured(), "dropping policies never block");
        assert_eq!(c.counters().dropped_overflow.load(Ordering::Relaxed), 3);
        assert_eq!(poll_all(&c).iter().map(|f| f.id).collect::<Vec<_>>(), last);
    }

    #[test]
    fn shed_drops_less_severe_first_and_keeps_order() {
        let c = conn(ConnectionSettings {
            max_count: 3,
            when_full: WhenFull::Shed {
                attribute: "syslog.severity".into(),
                above: 4,
            },
            ..Default::default()
        });
        let sev = ["3", "6", "7", "2", "5", "1"];
        let fs: Vec<FlowFile> = sev
            .iter()
            .map(|s| ff(&[("syslog.severity", s)], "x"))
            .collect();
        c.push_batch(fs);
        let got: Vec<String> = poll_all(&c)
            .iter()
            .map(|f| f.attr("syslog.severity").unwrap_or_default().to_string())
            .collect();
        assert_eq!(got, vec!["3", "2", "1"]);
        assert_eq!(c.counters().dropped_overflow.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn priority_attribute_orders_numbers_then_text_then_missing() {
        let c = conn(ConnectionSettings {
            prioritizer: Prioritizer::PriorityAttribute("priority".into()),
            ..Default::default()
        });
        c.push_batch(vec![
            ff(&[], "none"),
            ff(&[("priority", "b")], "b"),
            ff(&[("priority", "10")], "10"),
            ff(&[("priority", "2")], "2"),
        ]);
        let got: Vec<u64> = poll_all(&c)
            .iter()
            .map(super::super::flowfile::FlowFile::size)
            .collect();
        assert_eq!(got, vec![1, 2, 1, 4]);
    }

    #[test]
    fn oldest_first_uses_lineage() {
        let c = conn(ConnectionSettings {
            prioritizer: Prioritizer::OldestFirst,
            ..Default::default()
        });
        let mut young = ff(&[], "young");
        young.lineage_start = 200;
        let mut old = ff(&[], "old");
        old.lineage_start = 100;
        let old_id = old.id;
        c.push_batch(vec![young, old]);
        assert_eq!(poll_all(&c)[0].id, old_id);
    }

    #[test]
    #[allow(clippy::many_single_char_names)] // FlowFiles named by their content
    fn penalised_wait_and_rollback_restores_order() {
        let c = conn(ConnectionSettings::default());
        let mut p = ff(&[], "p");
        p.penalized_until = now_millis() + 60_000;
        let a = ff(&[], "a");
        let b = ff(&[], "b");
        let ids = vec![a.id, b.id];
        c.push_batch(vec![p, a, b]);
        let mut got = Vec::new();
        c.poll_batch(10, &mut got);
        assert_eq!(got.iter().map(|f| f.id).collect::<Vec<_>>(), ids);
        assert_eq!(c.queued_count(), 1, "the penalised one is still queued");
        assert!(!c.has_available());
        c.requeue_front(got);
        let again = {
            let mut v = Vec::new();
            c.poll_batch(10, &mut v);
            v
        };
        assert_eq!(again.iter().map(|f| f.id).collect::<Vec<_>>(), ids);
    }

    #[test]
    fn expiration_drops_and_counts() {
        let c = conn(ConnectionSettings {
            expiration: Some(Duration::from_millis(10)),
            ..Default::default()
        });
        let mut old = ff(&[], "old");
        old.entry_date = now_millis() - 1_000;
        let fresh = ff(&[], "fresh");
        let fresh_id = fresh.id;
        c.push_batch(vec![old, fresh]);
        let got = poll_all(&c);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, fresh_id);
        assert_eq!(c.counters().dropped_expired.load(Ordering::Relaxed), 1);
    }

    fn spill_conn(max_count: u64, max_disk: u64, dir: &std::path::Path) -> Connection {
        conn(ConnectionSettings {
            max_count,
            when_full: WhenFull::Spill(SpillSettings {
                max_disk,
                dir: Some(dir.to_path_buf()),
            }),
            ..Default::default()
        })
    }

    fn swap_files(dir: &std::path::Path) -> usize {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return 0;
        };
        rd.map(|e| {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                swap_files(&e.path())
            } else {
                1
            }
        })
        .sum()
    }

    #[test]
    fn spill_swaps_out_past_the_threshold_and_comes_back_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("swap");
        let c = spill_conn(100, u64::MAX, &dir);
        let mut pushed = Vec::new();
        for batch in 0..100 {
            let fs: Vec<FlowFile> = (0..10)
                .map(|i| {
                    let mut f = ff(&[("n", &format!("{batch}-{i}"))], "0123456789");
                    f.attributes.insert("k", "v");
                    f
                })
                .collect();
            pushed.extend(fs.iter().map(|f| f.id));
            c.push_batch(fs);
            assert!(
                !c.is_back_pressured(),
                "spill never blocks below its disk cap"
            );
        }
        assert_eq!(c.queued_count(), 1000);
        assert_eq!(c.queued_bytes(), 10_000);
        // At most the threshold plus one batch stays in memory.
        assert!(c.spilled_count() >= 800, "spilled {}", c.spilled_count());
        assert!(swap_files(&dir) >= 8);
        assert!(c.counters().spill_disk_bytes.load(Ordering::Relaxed) > 10_000);
        let mut got = Vec::new();
        loop {
            let mut v = Vec::new();
            if c.poll_batch(37, &mut v) == 0 {
                break;
            }
            got.extend(v);
        }
        assert_eq!(got.iter().map(|f| f.id).collect::<Vec<_>>(), pushed);
        assert_eq!(got[999].attr("n"), Some("99-9"), "attributes come back");
        assert_eq!(text_of(&got[500]), "0123456789", "content comes back");
        assert_eq!(c.queued_count(), 0);
        assert_eq!(c.spilled_count(), 0);
        assert_eq!(swap_files(&dir), 0, "swap files removed once read back");
    }

    fn text_of(f: &FlowFile) -> String {
        crate::testing::TestRunner::text(f)
    }

    #[test]
    fn spill_blocks_at_its_disk_cap_then_releases() {
        let tmp = tempfile::tempdir().unwrap();
        let c = spill_conn(10, 1, tmp.path());
        let fs: Vec<FlowFile> = (0..30).map(|_| ff(&[], "x")).collect();
        let ids: Vec<u64> = fs.iter().map(|f| f.id).collect();
        c.push_batch(fs[..20].to_vec());
        assert!(!c.is_back_pressured(), "one batch went to disk");
        c.push_batch(fs[20..].to_vec());
        assert!(
            c.is_back_pressured(),
            "disk cap reached and a batch waits in memory"
        );
        let mut got = Vec::new();
        c.poll_batch(10, &mut got);
        assert!(!c.is_back_pressured(), "draining frees the disk");
        c.poll_batch(100, &mut got);
        c.poll_batch(100, &mut got);
        assert_eq!(got.iter().map(|f| f.id).collect::<Vec<_>>(), ids);
    }

    #[derive(Debug)]
    struct Claimed(bytes::Bytes);
    impl crate::StoredContent for Claimed {
        fn len(&self) -> u64 {
            self.0.len() as u64
        }
        fn read(&self) -> std::io::Result<bytes::Bytes> {
            Ok(self.0.clone())
        }
        fn locator(&self) -> (u64, u64, u64) {
            (1, 2, self.0.len() as u64)
        }
    }

    #[test]
    fn spilled_stored_content_keeps_its_claim_in_memory() {
        let tmp = tempfile::tempdir().unwrap();
        let c = spill_conn(1, u64::MAX, tmp.path());
        let stored: Arc<dyn crate::StoredContent> = Arc::new(Claimed(Bytes::from_static(b"big")));
        let fs: Vec<FlowFile> = (0..5)
            .map(|_| {
                let mut f = FlowFile::new();
                f.content = crate::Content::Stored(stored.clone());
                f
            })
            .collect();
        c.push_batch(fs);
        assert!(c.spilled_count() >= 3);
        let mut got = Vec::new();
        for _ in 0..5 {
            c.poll_batch(1, &mut got);
        }
        assert_eq!(got.len(), 5);
        for f in &got {
            match &f.content {
                crate::Content::Stored(s) => assert!(Arc::ptr_eq(s, &stored)),
                crate::Content::Memory(_) => panic!("claim lost"),
            }
        }
    }

    #[test]
    fn snapshot_and_drain_include_spilled_flowfiles() {
        let tmp = tempfile::tempdir().unwrap();
        let c = spill_conn(2, u64::MAX, tmp.path());
        let fs: Vec<FlowFile> = (0..9).map(|_| ff(&[], "x")).collect();
        let ids: Vec<u64> = fs.iter().map(|f| f.id).collect();
        c.push_batch(fs);
        assert!(c.spilled_count() > 0);
        assert_eq!(c.snapshot().iter().map(|f| f.id).collect::<Vec<_>>(), ids);
        assert_eq!(c.queued_count(), 9, "a snapshot takes nothing");
        assert_eq!(c.drain_all().iter().map(|f| f.id).collect::<Vec<_>>(), ids);
        assert_eq!(c.queued_count(), 0);
        assert_eq!(swap_files(tmp.path()), 0);
    }
}
