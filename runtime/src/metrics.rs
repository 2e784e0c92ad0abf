//! Counters and bulletins of processors, readable without locks on hot paths.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde::Serialize;

use crate::flowfile::now_millis;

/// How many bulletins a processor keeps.
pub const BULLETIN_CAPACITY: usize = 50;

/// Severity of a bulletin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Worth knowing.
    Info,
    /// Something was retried or degraded.
    Warn,
    /// Something failed.
    Error,
}

/// A message a processor raised for operators (NiFi's bulletin).
#[derive(Clone, Debug, Serialize)]
pub struct Bulletin {
    /// When (ms epoch).
    pub time: u64,
    /// Severity.
    pub level: Level,
    /// The processor that raised it.
    pub processor: String,
    /// What happened.
    pub message: String,
}

/// Live counters of one processor.
#[derive(Default, Debug)]
pub struct ProcessorStats {
    /// Completed `on_trigger` calls.
    pub invocations: AtomicU64,
    /// FlowFiles taken from input queues and committed.
    pub flowfiles_in: AtomicU64,
    /// Content bytes taken in.
    pub bytes_in: AtomicU64,
    /// FlowFiles transferred to connections.
    pub flowfiles_out: AtomicU64,
    /// Content bytes transferred out.
    pub bytes_out: AtomicU64,
    /// FlowFiles created by this processor (sources, splits).
    pub flowfiles_created: AtomicU64,
    /// FlowFiles removed or auto-terminated here.
    pub flowfiles_dropped: AtomicU64,
    /// Triggers that failed and were rolled back.
    pub errors: AtomicU64,
    /// Sessions rolled back.
    pub rollbacks: AtomicU64,
    /// Tasks running `on_trigger` now.
    pub active_tasks: AtomicU64,
    bulletins: Mutex<VecDeque<Bulletin>>,
    custom: Mutex<BTreeMap<String, Arc<AtomicU64>>>,
}

impl ProcessorStats {
    /// A named counter of this processor (created at zero on first use).
    /// Keep the returned handle on hot paths.
    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut c = self.custom.lock();
        c.entry(name.to_string()).or_default().clone()
    }

    /// Every named counter.
    pub fn custom_counters(&self) -> BTreeMap<String, u64> {
        self.custom
            .lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.load(Ordering::Relaxed)))
            .collect()
    }

    /// Records a bulletin (the oldest go first when full).
    pub fn bulletin(&self, processor: &str, level: Level, message: impl Into<String>) {
        let b = Bulletin {
            time: now_millis(),
            level,
            processor: processor.to_string(),
            message: message.into(),
        };
        match level {
            Level::Error => tracing::error!(processor, message = %b.message, "bulletin"),
            Level::Warn => tracing::warn!(processor, message = %b.message, "bulletin"),
            Level::Info => tracing::info!(processor, message = %b.message, "bulletin"),
        }
        let mut q = self.bulletins.lock();
        if q.len() == BULLETIN_CAPACITY {
            q.pop_front();
        }
        q.push_back(b);
    }

    /// Recent bulletins, oldest first.
    pub fn bulletins(&self) -> Vec<Bulletin> {
        self.bulletins.lock().iter().cloned().collect()
    }

    /// The most recent error bulletin.
    pub fn last_error(&self) -> Option<Bulletin> {
        self.bulletins
            .lock()
            .iter()
            .rev()
            .find(|b| b.level == Level::Error)
            .cloned()
    }
}

/// Shorthand for a relaxed load.
#[must_use]
pub fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Shorthand for a relaxed add.
pub fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}
