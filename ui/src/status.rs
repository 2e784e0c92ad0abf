//! The status the API shows: the engine's counters, scrubbed of secrets, with
//! per-second rates computed from the difference between two snapshots.

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::Serialize;
use sluice_runtime::{ConnectionStatus, FlowStatus, ProcessorStatus};

use crate::redact::Redactor;

/// Rates are measured over at least this window when the flow is that old.
const RATE_WINDOW_MS: u64 = 1_000;
/// Snapshots closer together than this are not kept (many readers at once).
const MIN_SAMPLE_GAP_MS: u64 = 250;

/// Per-second rates of one processor.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Rates {
    /// FlowFiles in per second.
    pub flowfiles_in: f64,
    /// FlowFiles out per second.
    pub flowfiles_out: f64,
    /// Bytes in per second.
    pub bytes_in: f64,
    /// Bytes out per second.
    pub bytes_out: f64,
}

/// One processor's status with its rates.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessorView {
    /// Counters, state, bulletins.
    #[serde(flatten)]
    pub status: ProcessorStatus,
    /// Per-second rates.
    pub rates: Rates,
}

/// The flow's status as `/api/status` and the event stream show it.
#[derive(Clone, Debug, Serialize)]
pub struct StatusView {
    /// Flow name.
    pub name: String,
    /// Since start, ms.
    pub uptime_ms: u64,
    /// Processors in file order.
    pub processors: Vec<ProcessorView>,
    /// Connections in file order.
    pub connections: Vec<ConnectionStatus>,
    /// FlowFiles recovered for connections no longer in the flow.
    pub orphaned: BTreeMap<String, u64>,
}

#[derive(Debug)]
struct Sample {
    at_ms: u64,
    /// Counters by processor id (a reload may add, remove or reorder them).
    counts: HashMap<String, [u64; 4]>,
}

/// Remembers recent counter snapshots to turn counts into rates.
///
/// The reference for a rate is the newest snapshot at least a second old (or
/// the oldest kept, early on); the flow's start, when every counter was zero,
/// is the first snapshot.
#[derive(Debug)]
pub struct RateTracker {
    samples: VecDeque<Sample>,
}

impl Default for RateTracker {
    fn default() -> Self {
        Self {
            samples: VecDeque::from([Sample {
                at_ms: 0,
                counts: HashMap::new(),
            }]),
        }
    }
}

fn counts(p: &ProcessorStatus) -> [u64; 4] {
    [p.flowfiles_in, p.flowfiles_out, p.bytes_in, p.bytes_out]
}

impl RateTracker {
    /// Rates of each processor of `status` (in its order), and keeps `status`
    /// as a future reference.
    pub fn observe(&mut self, status: &FlowStatus) -> Vec<Rates> {
        let now = status.uptime_ms;
        let current: Vec<(&str, [u64; 4])> = status
            .processors
            .iter()
            .map(|p| (p.id.as_str(), counts(p)))
            .collect();
        // The front becomes the newest sample at least a window old.
        while self.samples.len() > 1 && now.saturating_sub(self.samples[1].at_ms) >= RATE_WINDOW_MS
        {
            self.samples.pop_front();
        }
        let rates = match self.samples.front() {
            Some(r) if now > r.at_ms => {
                #[allow(clippy::cast_precision_loss)]
                let secs = (now - r.at_ms) as f64 / 1000.0;
                current
                    .iter()
                    .map(|(id, c)| {
                        let base = r.counts.get(*id).copied().unwrap_or_default();
                        #[allow(clippy::cast_precision_loss)]
                        let rate = |k: usize| round2(c[k].saturating_sub(base[k]) as f64 / secs);
                        Rates {
                            flowfiles_in: rate(0),
                            flowfiles_out: rate(1),
                            bytes_in: rate(2),
                            bytes_out: rate(3),
                        }
                    })
                    .collect()
            }
            _ => vec![Rates::default(); current.len()],
        };
        let newest = self.samples.back().map_or(0, |s| s.at_ms);
        if self.samples.is_empty() || now.saturating_sub(newest) >= MIN_SAMPLE_GAP_MS {
            self.samples.push_back(Sample {
                at_ms: now,
                counts: current
                    .into_iter()
                    .map(|(id, c)| (id.to_string(), c))
                    .collect(),
            });
        }
        rates
    }
}

fn round2(v: f64) -> f64 {
    (v * 100.0).round() / 100.0
}

/// `status` for display: bulletins scrubbed, rates from `tracker`.
pub fn view(mut status: FlowStatus, tracker: &mut RateTracker, redactor: &Redactor) -> StatusView {
    let rates = tracker.observe(&status);
    for p in &mut status.processors {
        for b in p.bulletins.iter_mut().chain(p.last_error.iter_mut()) {
            b.message = redactor.scrub(&b.message).into_owned();
        }
    }
    StatusView {
        name: status.name,
        uptime_ms: status.uptime_ms,
        processors: status
            .processors
            .into_iter()
            .zip(rates)
            .map(|(status, rates)| ProcessorView { status, rates })
            .collect(),
        connections: status.connections,
        orphaned: status.orphaned,
    }
}

#[cfg(test)]
// Rates compared here are exact (whole counts over whole seconds).
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    fn status(at_ms: u64, flowfiles_in: u64, bytes_in: u64) -> FlowStatus {
        FlowStatus {
            name: "f".into(),
            uptime_ms: at_ms,
            processors: vec![ProcessorStatus {
                id: "p".into(),
                kind: "T".into(),
                state: "running",
                invocations: 0,
                flowfiles_in,
                bytes_in,
                flowfiles_out: flowfiles_in,
                bytes_out: 0,
                flowfiles_created: 0,
                flowfiles_dropped: 0,
                errors: 0,
                rollbacks: 0,
                active_tasks: 0,
                back_pressured: false,
                counters: BTreeMap::new(),
                last_error: None,
                bulletins: Vec::new(),
            }],
            connections: Vec::new(),
            orphaned: BTreeMap::new(),
        }
    }

    #[test]
    fn first_rate_is_the_average_since_start() {
        let mut t = RateTracker::default();
        let r = t.observe(&status(2_000, 100, 4_000));
        assert_eq!(r[0].flowfiles_in, 50.0);
        assert_eq!(r[0].bytes_in, 2_000.0);
        assert_eq!(r[0].flowfiles_out, 50.0);
    }

    #[test]
    fn later_rates_use_the_last_second() {
        let mut t = RateTracker::default();
        t.observe(&status(10_000, 1_000, 0));
        t.observe(&status(11_000, 1_000, 0));
        // Nothing moved in the last second: 0, not the long-run average.
        let r = t.observe(&status(12_000, 1_000, 0));
        assert_eq!(r[0].flowfiles_in, 0.0);
        let r = t.observe(&status(13_000, 1_300, 0));
        assert_eq!(r[0].flowfiles_in, 300.0);
        // A reader 400 ms later still measures against a snapshot >= 1 s old.
        let r = t.observe(&status(13_400, 1_300, 0));
        assert!((r[0].flowfiles_in - 300.0 / 1.4).abs() < 0.01, "{r:?}");
    }

    #[test]
    fn samples_stay_bounded() {
        let mut t = RateTracker::default();
        for i in 0..1_000 {
            t.observe(&status(i * 300, i, i));
        }
        assert!(t.samples.len() <= 5, "{}", t.samples.len());
    }
}
