//! `GET /api/events`: server-sent events.
//!
//! - `status`: once, first: the whole status (as `/api/status`).
//! - `delta`: about every second: `uptime_ms` and the processors and
//!   connections whose status changed since the last event (whole entries).
//! - `bulletin`: each new bulletin, within a quarter second of being raised.
//! - `flow`: the flow was reloaded; fetch `/api/flow` again (a `status`
//!   event with the whole new status follows).
//!
//! The stream ends when the server or the flow shuts down.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use serde_json::{Value, json};
use sluice_runtime::{Bulletin, FlowSpec};
use tokio::time::{Interval, MissedTickBehavior};

use crate::state::UiState;
use crate::status::{self, RateTracker};

/// Time between status deltas.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// Time between looks for new bulletins.
const BULLETINS_EVERY: Duration = Duration::from_millis(250);

/// `GET /api/events`
pub async fn events(
    State(s): State<UiState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold(EventStream::new(s), |mut st| async move {
        st.next().await.map(|e| (Ok(e), st))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Ticks every `every`, the first one period from now: the stream opens with
/// the whole status (and the bulletins in it), so an immediate first tick
/// would only send a delta of what changed in the microseconds since.
fn ticker(every: Duration) -> Interval {
    let mut t = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    t.set_missed_tick_behavior(MissedTickBehavior::Delay);
    t
}

fn event(name: &str, data: &impl Serialize) -> Event {
    let v = serde_json::to_value(data).unwrap_or(Value::Null);
    Event::default().event(name).data(v.to_string())
}

/// Which bulletins of each processor were already sent: the time of the
/// newest one and how many carried that time.
#[derive(Default)]
struct BulletinCursor(BTreeMap<String, (u64, usize)>);

impl BulletinCursor {
    /// The bulletins of `processor` not seen before (oldest first), and
    /// remembers them.
    fn fresh(&mut self, processor: &str, bulletins: &[Bulletin]) -> Vec<Bulletin> {
        let (seen_time, seen_at_time) = self.0.get(processor).copied().unwrap_or((0, 0));
        let mut out = Vec::new();
        let mut same = 0;
        for b in bulletins {
            if b.time > seen_time {
                out.push(b.clone());
            } else if b.time == seen_time {
                same += 1;
                if same > seen_at_time {
                    out.push(b.clone());
                }
            }
        }
        if let Some(newest) = bulletins.last() {
            let n = bulletins.iter().filter(|b| b.time == newest.time).count();
            self.0.insert(processor.to_string(), (newest.time, n));
        }
        out
    }
}

struct EventStream {
    state: UiState,
    rates: RateTracker,
    /// Last sent JSON of each processor (`p:` id) and connection (`c:` id).
    sent: BTreeMap<String, Value>,
    bulletins: BulletinCursor,
    /// The flow the stream last described.
    spec: Option<Arc<FlowSpec>>,
    pending: VecDeque<Event>,
    status_tick: Interval,
    bulletin_tick: Interval,
    started: bool,
}

impl EventStream {
    fn new(state: UiState) -> Self {
        let mut bulletins = BulletinCursor::default();
        // Bulletins raised before the stream opened are in the first status.
        for n in state.engine.nodes() {
            bulletins.fresh(n.id(), &n.context().stats().bulletins());
        }
        Self {
            state,
            rates: RateTracker::default(),
            sent: BTreeMap::new(),
            bulletins,
            spec: None,
            pending: VecDeque::new(),
            status_tick: ticker(STATUS_EVERY),
            bulletin_tick: ticker(BULLETINS_EVERY),
            started: false,
        }
    }

    /// The next event, or `None` once the server or the flow shuts down.
    async fn next(&mut self) -> Option<Event> {
        if !self.started {
            // The whole status always comes first.
            self.status();
        }
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            let closing = self.state.closing.clone();
            let flow_done = self.state.engine.shutdown_token().clone();
            tokio::select! {
                () = closing.cancelled() => return None,
                () = flow_done.cancelled() => return None,
                _ = self.status_tick.tick() => self.status(),
                _ = self.bulletin_tick.tick() => self.new_bulletins(),
            }
        }
    }

    fn status(&mut self) {
        let spec = self.state.engine.spec();
        if !self.spec.as_ref().is_some_and(|s| Arc::ptr_eq(s, &spec)) {
            if self.spec.is_some() {
                // Reloaded: the page fetches the new graph; a whole status follows.
                self.pending
                    .push_back(event("flow", &json!({ "name": spec.name })));
                self.started = false;
                self.sent.clear();
            }
            self.spec = Some(spec);
        }
        let view = status::view(
            self.state.engine.status(),
            &mut self.rates,
            &self.state.redactor(),
        );
        if !self.started {
            self.started = true;
            for p in &view.processors {
                self.changed(format!("p:{}", p.status.id), p);
            }
            for c in &view.connections {
                self.changed(format!("c:{}", c.id), c);
            }
            self.pending.push_back(event("status", &view));
            return;
        }
        let processors: Vec<_> = view
            .processors
            .iter()
            .filter(|p| self.changed(format!("p:{}", p.status.id), p))
            .collect();
        let connections: Vec<_> = view
            .connections
            .iter()
            .filter(|c| self.changed(format!("c:{}", c.id), c))
            .collect();
        let delta = json!({
            "uptime_ms": view.uptime_ms,
            "processors": processors,
            "connections": connections,
        });
        self.pending.push_back(event("delta", &delta));
    }

    /// Whether `item` differs from what was last sent under `key` (and records it).
    fn changed(&mut self, key: String, item: &impl Serialize) -> bool {
        let v = serde_json::to_value(item).unwrap_or(Value::Null);
        if self.sent.get(&key) == Some(&v) {
            return false;
        }
        self.sent.insert(key, v);
        true
    }

    fn new_bulletins(&mut self) {
        let redactor = self.state.redactor();
        for n in self.state.engine.nodes() {
            for mut b in self
                .bulletins
                .fresh(n.id(), &n.context().stats().bulletins())
            {
                b.message = redactor.scrub(&b.message).into_owned();
                self.pending.push_back(event("bulletin", &b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Level;

    fn b(time: u64, message: &str) -> Bulletin {
        Bulletin {
            time,
            level: Level::Error,
            processor: "p".into(),
            message: message.into(),
        }
    }

    #[test]
    fn cursor_reports_each_bulletin_once() {
        let mut c = BulletinCursor::default();
        let first = vec![b(10, "a"), b(20, "b")];
        assert_eq!(c.fresh("p", &first).len(), 2);
        assert!(c.fresh("p", &first).is_empty());
        // Another bulletin in the same millisecond as the newest seen.
        let more = vec![b(10, "a"), b(20, "b"), b(20, "c"), b(30, "d")];
        let fresh: Vec<String> = c.fresh("p", &more).into_iter().map(|b| b.message).collect();
        assert_eq!(fresh, ["c", "d"]);
        // The oldest fell out of the bounded list: nothing new.
        assert!(c.fresh("p", &more[1..]).is_empty());
    }
}
