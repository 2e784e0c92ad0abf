//! Provenance: a bounded, in-memory record of what happened to each FlowFile,
//! so a person can ask where a message went.

use std::collections::VecDeque;

use parking_lot::Mutex;
use serde::Serialize;

use crate::attributes::Attributes;

/// What happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    /// Created inside the flow (e.g. GenerateFlowFile).
    Create,
    /// Received from outside (HTTP, syslog, Kafka).
    Receive,
    /// Derived from a parent (split, clone, merge output).
    Fork,
    /// Transferred to a relationship and its connections.
    Route,
    /// Sent to an external system, which confirmed.
    Send,
    /// Removed, auto-terminated, expired or shed.
    Drop,
}

/// One provenance event.
#[derive(Clone, Debug, Serialize)]
pub struct ProvenanceEvent {
    /// Sequence number, increasing.
    pub seq: u64,
    /// When (ms epoch).
    pub time: u64,
    /// What happened.
    pub kind: EventKind,
    /// The FlowFile.
    pub flowfile: u64,
    /// Its parents (for `Fork`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub parents: Vec<u64>,
    /// The processor or connection where it happened.
    pub component: String,
    /// Relationship, remote URI or drop reason.
    pub details: String,
    /// Attributes at that moment.
    pub attributes: Attributes,
}

/// The bounded event store.
pub struct ProvenanceRepository {
    capacity: usize,
    inner: Mutex<(u64, VecDeque<ProvenanceEvent>)>,
}

impl ProvenanceRepository {
    /// A store keeping the last `capacity` events (0 disables recording).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            inner: Mutex::new((0, VecDeque::new())),
        }
    }

    /// Whether events are recorded.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// Appends events (their `seq` is assigned here).
    pub fn record(&self, events: Vec<ProvenanceEvent>) {
        if self.capacity == 0 || events.is_empty() {
            return;
        }
        let mut g = self.inner.lock();
        let (seq, q) = &mut *g;
        for mut e in events {
            *seq += 1;
            e.seq = *seq;
            if q.len() == self.capacity {
                q.pop_front();
            }
            q.push_back(e);
        }
    }

    /// Every kept event about `flowfile` or its descendants, in order.
    #[must_use]
    pub fn lineage(&self, flowfile: u64) -> Vec<ProvenanceEvent> {
        let g = self.inner.lock();
        let mut ids = vec![flowfile];
        let mut out = Vec::new();
        for e in &g.1 {
            let related = ids.contains(&e.flowfile) || e.parents.iter().any(|p| ids.contains(p));
            if related {
                if !ids.contains(&e.flowfile) {
                    ids.push(e.flowfile);
                }
                out.push(e.clone());
            }
        }
        out
    }

    /// The last `limit` events whose attribute `key` equals `value` (or all
    /// recent events when `key` is `None`), newest last.
    #[must_use]
    pub fn search(&self, key: Option<&str>, value: &str, limit: usize) -> Vec<ProvenanceEvent> {
        let g = self.inner.lock();
        let mut out: Vec<ProvenanceEvent> =
            g.1.iter()
                .rev()
                .filter(|e| key.is_none_or(|k| e.attributes.get(k) == Some(value)))
                .take(limit)
                .cloned()
                .collect();
        out.reverse();
        out
    }
}
