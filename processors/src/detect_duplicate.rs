//! DetectDuplicate: routes a FlowFile to `duplicate` when another with the
//! same key was seen within `window`, else to `unique`. Made for alert
//! storms: let the first alert for a host and check through, hold the rest
//! for ten minutes.
//!
//! The window runs from the first FlowFile of a key: once it has passed, the
//! next one is unique again and opens a new window. At most `max_entries`
//! keys are remembered; past that the least recently seen key is forgotten
//! (counted in `duplicate.evicted`), so its next FlowFile counts as unique.
//!
//! The cache lives in memory only: it is empty after a restart, and a
//! FlowFile delivered again after a crash (delivery is at-least-once) may
//! pass as unique a second time.
//!
//! ```yaml
//! dedupe:
//!   type: DetectDuplicate
//!   properties:
//!     key: "{{syslog.hostname}}/{{syslog.appname}}"
//!     window: 10m
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Escape, InputRequirement, Level, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    RelationshipDef, Template, async_trait, now_millis,
};
use tokio::time::Instant;

/// The first FlowFile of a key within the window.
pub const UNIQUE: &str = "unique";
/// Later FlowFiles of a key within the window.
pub const DUPLICATE: &str = "duplicate";
/// The key template failed (`duplicate.error` says why).
pub const FAILURE: &str = "failure";

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "key",
        PropKind::Template,
        "Template over attributes (or `{{content}}`) that identifies duplicates.",
    ),
    PropertyDescriptor::optional(
        "window",
        PropKind::Duration,
        Some("10m"),
        "How long after the first FlowFile of a key its repeats count as duplicates.",
    ),
    PropertyDescriptor::optional(
        "max_entries",
        PropKind::Integer {
            min: 1,
            max: 100_000_000,
        },
        Some("100000"),
        "Most keys remembered; past it the least recently seen key is forgotten.",
    ),
];

/// The registry entry.
pub struct DetectDuplicateType;

impl ProcessorType for DetectDuplicateType {
    fn name(&self) -> &'static str {
        "DetectDuplicate"
    }
    fn description(&self) -> &'static str {
        "Routes FlowFiles whose key was already seen within a time window to `duplicate` (in-memory cache with age-off and a size cap)."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(UNIQUE, "The first FlowFile of a key within the window."),
            RelationshipDef::new(
                DUPLICATE,
                "Repeats within the window, with `duplicate.count` and `duplicate.first_seen`.",
            ),
            RelationshipDef::new(FAILURE, "The key template failed (`duplicate.error`)."),
        ]
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let key = Template::compile(props.str("key")?, Escape::None)
            .map_err(|e| BuildError::Other(format!("key: {e}")))?;
        Ok(Box::new(DetectDuplicate {
            key,
            cache: Mutex::new(Cache::new(
                props.duration("window")?,
                props.usize("max_entries")?,
            )),
        }))
    }
    fn example(&self) -> &'static str {
        "key: \"{{syslog.hostname}}/{{syslog.appname}}\"\nwindow: 10m\nmax_entries: 100000"
    }
}

/// What is remembered of a key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seen {
    /// Occurrences in the current window, this one included.
    count: u64,
    /// Wall-clock time of the first one (ms since the epoch), for the attribute.
    first_seen_ms: u64,
}

struct Entry {
    seen: Seen,
    /// Position in the recency order.
    touch: u64,
    /// Distinguishes this window of the key from earlier ones in `expiry`.
    window_id: u64,
}

/// Keys with their windows, evicted by age (oldest window first) and by
/// recency when full.
struct Cache {
    window: Duration,
    max_entries: usize,
    entries: HashMap<String, Entry>,
    /// Touch counter -> key: the least recently seen key comes first.
    recency: BTreeMap<u64, String>,
    /// Windows in the order they opened (= the order they close).
    expiry: VecDeque<(Instant, u64, String)>,
    clock: u64,
}

impl Cache {
    fn new(window: Duration, max_entries: usize) -> Self {
        Self {
            window,
            max_entries: max_entries.max(1),
            entries: HashMap::new(),
            recency: BTreeMap::new(),
            expiry: VecDeque::new(),
            clock: 0,
        }
    }

    fn age_off(&mut self, now: Instant) {
        while let Some((opened, _, _)) = self.expiry.front() {
            if now.saturating_duration_since(*opened) < self.window {
                break;
            }
            let Some((_, id, key)) = self.expiry.pop_front() else {
                break;
            };
            if self.entries.get(&key).is_some_and(|e| e.window_id == id)
                && let Some(e) = self.entries.remove(&key)
            {
                self.recency.remove(&e.touch);
            }
        }
    }

    /// Records an occurrence of `key`; returns what was seen, and how many
    /// keys were evicted to make room.
    fn observe(&mut self, key: &str, now: Instant, now_ms: u64) -> (Seen, u64) {
        self.age_off(now);
        self.clock += 1;
        let touch = self.clock;
        if let Some(e) = self.entries.get_mut(key) {
            e.seen.count += 1;
            self.recency.remove(&e.touch);
            e.touch = touch;
            self.recency.insert(touch, key.to_string());
            return (e.seen, 0);
        }
        let mut evicted = 0;
        while self.entries.len() >= self.max_entries {
            let Some((_, lru)) = self.recency.pop_first() else {
                break;
            };
            self.entries.remove(&lru);
            evicted += 1;
        }
        let seen = Seen {
            count: 1,
            first_seen_ms: now_ms,
        };
        self.entries.insert(
            key.to_string(),
            Entry {
                seen,
                touch,
                window_id: touch,
            },
        );
        self.recency.insert(touch, key.to_string());
        self.expiry.push_back((now, touch, key.to_string()));
        // Windows of evicted keys linger in `expiry` until they close; keep
        // that queue bounded too.
        if self.expiry.len() > self.max_entries.saturating_mul(2) {
            let entries = &self.entries;
            self.expiry
                .retain(|(_, id, k)| entries.get(k).is_some_and(|e| e.window_id == *id));
        }
        (seen, evicted)
    }
}

struct DetectDuplicate {
    key: Template,
    cache: Mutex<Cache>,
}

#[async_trait]
impl Processor for DetectDuplicate {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let batch = session.get_batch(ctx.scheduling().batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let now_ms = now_millis();
        let (mut duplicates, mut evicted) = (0u64, 0u64);
        for mut ff in batch {
            let rendered = if self.key.uses_content() {
                let body = session.read(&ff)?;
                self.key
                    .render_with(&ff.attributes, Some(&String::from_utf8_lossy(&body)), &[])
            } else {
                self.key.render(&ff.attributes)
            };
            let key = match rendered {
                Ok(k) => k,
                Err(e) => {
                    ctx.bulletin(Level::Warn, format!("key: {e}"));
                    ff.attributes.insert("duplicate.error", e.to_string());
                    session.transfer(ff, FAILURE);
                    continue;
                }
            };
            let (seen, ev) = self.cache.lock().observe(&key, now, now_ms);
            evicted += ev;
            if seen.count == 1 {
                session.transfer(ff, UNIQUE);
            } else {
                duplicates += 1;
                ff.attributes
                    .insert("duplicate.count", seen.count.to_string());
                ff.attributes
                    .insert("duplicate.first_seen", seen.first_seen_ms.to_string());
                session.transfer(ff, DUPLICATE);
            }
        }
        ctx.counter("duplicates")
            .fetch_add(duplicates, Ordering::Relaxed);
        if evicted > 0 {
            ctx.counter("duplicate.evicted")
                .fetch_add(evicted, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use sluice_runtime::testing::{TestRunner, check_type_contract};

    #[test]
    fn contract() {
        check_type_contract(&DetectDuplicateType, &crate::registry()).unwrap();
    }

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&DetectDuplicateType, yaml)
    }

    fn texts(ffs: &[sluice_runtime::FlowFile]) -> Vec<String> {
        ffs.iter().map(TestRunner::text).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn repeats_within_the_window_are_duplicates_then_a_new_window_opens() {
        let r = runner("key: \"{{host}}\"\nwindow: 10m\n");
        r.enqueue("a1", &[("host", "a")]);
        r.enqueue("b1", &[("host", "b")]);
        r.enqueue("a2", &[("host", "a")]);
        r.enqueue("a3", &[("host", "a")]);
        r.run_once().await.unwrap();
        assert_eq!(texts(&r.take(UNIQUE)), ["a1", "b1"]);
        let dups = r.take(DUPLICATE);
        assert_eq!(texts(&dups), ["a2", "a3"]);
        assert_eq!(dups[0].attr("duplicate.count"), Some("2"));
        assert_eq!(dups[1].attr("duplicate.count"), Some("3"));
        let first: u64 = dups[0]
            .attr("duplicate.first_seen")
            .unwrap()
            .parse()
            .unwrap();
        assert!(first > 0 && first <= now_millis());

        tokio::time::advance(Duration::from_mins(9)).await;
        r.enqueue("a4", &[("host", "a")]);
        r.run_once().await.unwrap();
        assert_eq!(texts(&r.take(DUPLICATE)), ["a4"], "still inside the window");

        tokio::time::advance(Duration::from_mins(1)).await;
        r.enqueue("a5", &[("host", "a")]);
        r.enqueue("a6", &[("host", "a")]);
        r.run_once().await.unwrap();
        assert_eq!(
            texts(&r.take(UNIQUE)),
            ["a5"],
            "window from the first one closed"
        );
        let d = r.take(DUPLICATE);
        assert_eq!(texts(&d), ["a6"]);
        assert_eq!(d[0].attr("duplicate.count"), Some("2"), "counting restarts");
        assert_eq!(r.ctx.counter("duplicates").load(Ordering::Relaxed), 4);
    }

    #[tokio::test(start_paused = true)]
    async fn the_least_recently_seen_key_is_evicted_at_the_cap_and_counted() {
        let r = runner("key: \"{{k}}\"\nmax_entries: 2\n");
        for k in ["a", "b", "a", "c", "a", "b"] {
            r.enqueue(k, &[("k", k)]);
        }
        r.run_once().await.unwrap();
        // a, b; a (dup, now most recent); c evicts b; a dup; b is new again (evicts c).
        assert_eq!(texts(&r.take(UNIQUE)), ["a", "b", "c", "b"]);
        assert_eq!(texts(&r.take(DUPLICATE)), ["a", "a"]);
        assert_eq!(
            r.ctx.counter("duplicate.evicted").load(Ordering::Relaxed),
            2
        );
    }

    #[tokio::test]
    async fn key_can_use_the_content() {
        let r = runner("key: \"{{content}}\"\n");
        r.enqueue("same", &[]);
        r.enqueue("same", &[]);
        r.enqueue("other", &[]);
        r.run_once().await.unwrap();
        assert_eq!(texts(&r.take(UNIQUE)), ["same", "other"]);
        assert_eq!(r.take(DUPLICATE).len(), 1);
    }

    #[test]
    fn age_off_and_eviction_keep_memory_bounded() {
        let mut c = Cache::new(Duration::from_secs(1), 100);
        let t0 = Instant::now();
        for i in 0..10_000u64 {
            let t = t0 + Duration::from_millis(i);
            c.observe(&i.to_string(), t, 0);
            assert!(c.entries.len() <= 100);
            assert!(c.recency.len() <= 100);
            assert!(c.expiry.len() <= 201);
        }
        c.age_off(t0 + Duration::from_secs(20));
        assert!(c.entries.is_empty() && c.recency.is_empty() && c.expiry.is_empty());
    }
}
