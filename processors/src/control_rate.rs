//! ControlRate: lets at most `rate` FlowFiles (or bytes) per `period` through
//! for each key; the excess stays queued, in order, until the rate allows it.
//! Nothing is ever dropped: a held-back FlowFile waits in the incoming queue,
//! so back-pressure reaches the source when the rate is exceeded for long.
//!
//! Each key has a token bucket holding up to `rate` tokens that refills evenly
//! over `period` (so `rate: 60, period: 1m` allows a burst of 60, then one a
//! second). A FlowFile costs one token (`mode: flowfiles`) or its size
//! (`mode: bytes`); one larger than the whole bucket passes when the bucket is
//! full. FlowFiles of one key keep their order; other keys are not held up.
//!
//! ```yaml
//! throttle:
//!   type: ControlRate
//!   properties:
//!     rate: 10
//!     period: 1m
//!     key: "{{syslog.hostname}}"
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::time::Duration;

use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Escape, InputRequirement, Level, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait, parse_data_size,
};
use tokio::time::Instant;

/// FlowFiles the rate allowed.
pub const SUCCESS: &str = "success";
/// FlowFiles whose key could not be rendered (`controlrate.error` says why).
pub const FAILURE: &str = "failure";

/// Most FlowFiles looked at in one trigger when the head of the queue is held back.
const MAX_INSPECTED: usize = 10_000;

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "rate",
        PropKind::NonEmpty,
        "How much may pass per `period` for each key: a count of FlowFiles (mode `flowfiles`) or a data size such as `10 MB` (mode `bytes`).",
    ),
    PropertyDescriptor::optional(
        "period",
        PropKind::Duration,
        Some("1m"),
        "The time over which `rate` is allowed; the allowance refills evenly over it.",
    ),
    PropertyDescriptor::optional(
        "mode",
        PropKind::Choice(&["flowfiles", "bytes"]),
        Some("flowfiles"),
        "What `rate` counts: FlowFiles or content bytes.",
    ),
    PropertyDescriptor::optional(
        "key",
        PropKind::Template,
        None,
        "Template over attributes naming the bucket a FlowFile counts against (e.g. `{{syslog.hostname}}`); without it all FlowFiles share one bucket.",
    ),
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    FlowFiles,
    Bytes,
}

fn parse_rate(props: &Properties) -> Result<(Mode, u64), PropertyError> {
    let err = |message: String| PropertyError {
        name: "rate".into(),
        message,
        pos: props.raw("rate").map(sluice_runtime::PropValue::pos),
    };
    let mode = match props.str("mode")? {
        "bytes" => Mode::Bytes,
        _ => Mode::FlowFiles,
    };
    let text = props.str("rate")?;
    let rate = match mode {
        Mode::FlowFiles => text.trim().parse::<u64>().map_err(|_| {
            err(format!(
                "`{text}` is not a whole number of FlowFiles (for a size, set `mode: bytes`)"
            ))
        })?,
        Mode::Bytes => parse_data_size(text).map_err(err)?,
    };
    if rate == 0 {
        return Err(err("must be at least 1".into()));
    }
    Ok((mode, rate))
}

/// The registry entry.
pub struct ControlRateType;

impl ProcessorType for ControlRateType {
    fn name(&self) -> &'static str {
        "ControlRate"
    }
    fn description(&self) -> &'static str {
        "Limits how many FlowFiles or bytes pass per period, per key (token bucket); the excess stays queued in order, never dropped."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "FlowFiles the rate allowed, in order per key."),
            RelationshipDef::new(
                FAILURE,
                "FlowFiles whose key template failed (`controlrate.error`).",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        if let Err(e) = parse_rate(props) {
            errs.push(e);
        }
        match props.duration("period") {
            Ok(d) if d.is_zero() => errs.push(PropertyError {
                name: "period".into(),
                message: "must be longer than 0".into(),
                pos: props.raw("period").map(sluice_runtime::PropValue::pos),
            }),
            Ok(_) => {}
            Err(e) => errs.push(e),
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let (mode, rate) = parse_rate(props)?;
        let period = props.duration("period")?;
        if period.is_zero() {
            return Err(BuildError::Other("period must be longer than 0".into()));
        }
        let key = props
            .str_opt("key")?
            .map(|k| Template::compile(k, Escape::None))
            .transpose()
            .map_err(|e| BuildError::Other(format!("key: {e}")))?;
        Ok(Box::new(ControlRate {
            mode,
            limiter: Mutex::new(Limiter::new(rate, period)),
            key,
        }))
    }
    fn example(&self) -> &'static str {
        "rate: 10\nperiod: 1m\nkey: \"{{syslog.hostname}}\""
    }
}

/// Token buckets in exact integer arithmetic: one token is `period_nanos`
/// units, and time refills `rate` units per nanosecond.
struct Limiter {
    rate: u128,
    period_nanos: u128,
    buckets: HashMap<String, Bucket>,
    last_sweep: Option<Instant>,
}

#[derive(Clone, Copy)]
struct Bucket {
    /// May go negative after an oversized FlowFile (a debt paid off by time).
    units: i128,
    at: Instant,
}

impl Limiter {
    fn new(rate: u64, period: Duration) -> Self {
        Self {
            rate: u128::from(rate),
            period_nanos: period.as_nanos().max(1),
            buckets: HashMap::new(),
            last_sweep: None,
        }
    }

    fn capacity(&self) -> i128 {
        i128::try_from(self.rate.saturating_mul(self.period_nanos)).unwrap_or(i128::MAX)
    }

    fn refilled(&self, b: Bucket, now: Instant) -> Bucket {
        let elapsed = now.saturating_duration_since(b.at).as_nanos();
        let gain = i128::try_from(elapsed.saturating_mul(self.rate)).unwrap_or(i128::MAX);
        Bucket {
            units: b.units.saturating_add(gain).min(self.capacity()),
            at: now,
        }
    }

    /// Takes `cost` tokens from `key`'s bucket, or says how long until it could.
    fn try_take(&mut self, key: &str, cost: u64, now: Instant) -> Result<(), Duration> {
        let cap = self.capacity();
        let b = match self.buckets.get(key) {
            Some(b) => self.refilled(*b, now),
            None => Bucket {
                units: cap,
                at: now,
            },
        };
        let want =
            i128::try_from(u128::from(cost).saturating_mul(self.period_nanos)).unwrap_or(i128::MAX);
        if b.units >= want || b.units >= cap {
            self.buckets.insert(
                key.to_string(),
                Bucket {
                    units: b.units.saturating_sub(want),
                    at: now,
                },
            );
            return Ok(());
        }
        self.buckets.insert(key.to_string(), b);
        let missing = u128::try_from(want.min(cap) - b.units).unwrap_or(0);
        let nanos = missing.div_ceil(self.rate);
        Err(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }

    /// Forgets buckets that are full again (a fresh bucket is the same), at
    /// most once per period, so many short-lived keys do not grow memory.
    fn sweep(&mut self, now: Instant, period: Duration) {
        if self
            .last_sweep
            .is_some_and(|t| now.saturating_duration_since(t) < period)
        {
            return;
        }
        self.last_sweep = Some(now);
        let cap = self.capacity();
        let buckets = std::mem::take(&mut self.buckets);
        self.buckets = buckets
            .into_iter()
            .filter(|(_, b)| self.refilled(*b, now).units < cap)
            .collect();
    }
}

struct ControlRate {
    mode: Mode,
    limiter: Mutex<Limiter>,
    key: Option<Template>,
}

#[async_trait]
impl Processor for ControlRate {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let batch_size = ctx.scheduling().batch_size.max(1);
        let now = Instant::now();
        let mut passed = 0usize;
        let mut inspected = 0usize;
        let mut held_keys: HashSet<String> = HashSet::new();
        let mut soonest: Option<Duration> = None;
        let mut limiter = self.limiter.lock();
        let period = Duration::from_nanos(u64::try_from(limiter.period_nanos).unwrap_or(u64::MAX));
        limiter.sweep(now, period);
        // Look further down the queue only while everything so far was held back.
        while passed == 0 && inspected < MAX_INSPECTED.max(batch_size) {
            let batch = session.get_batch(batch_size);
            if batch.is_empty() {
                break;
            }
            inspected += batch.len();
            for mut ff in batch {
                let key = match &self.key {
                    None => String::new(),
                    Some(t) => match t.render(&ff.attributes) {
                        Ok(k) => k,
                        Err(e) => {
                            ctx.bulletin(Level::Warn, format!("key: {e}"));
                            ff.attributes.insert("controlrate.error", e.to_string());
                            session.transfer(ff, FAILURE);
                            continue;
                        }
                    },
                };
                // Once a key is held back, its later FlowFiles wait too (order).
                if held_keys.contains(&key) {
                    session.requeue(vec![ff], false);
                    continue;
                }
                let cost = match self.mode {
                    Mode::FlowFiles => 1,
                    Mode::Bytes => ff.size(),
                };
                match limiter.try_take(&key, cost, now) {
                    Ok(()) => {
                        passed += 1;
                        session.transfer(ff, SUCCESS);
                    }
                    Err(wait) => {
                        soonest = Some(soonest.map_or(wait, |s| s.min(wait)));
                        held_keys.insert(key);
                        session.requeue(vec![ff], false);
                    }
                }
            }
        }
        drop(limiter);
        ctx.counter("controlrate.passed")
            .fetch_add(passed as u64, Ordering::Relaxed);
        if passed == 0 {
            // Everything waits for a refill: rest until the first one is due
            // rather than spin over the same queue.
            if let Some(wait) = soonest {
                ctx.yield_for(wait.max(Duration::from_millis(1)));
            }
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
        check_type_contract(&ControlRateType, &crate::registry()).unwrap();
    }

    fn runner(yaml: &str) -> TestRunner {
        crate::test_runner(&ControlRateType, yaml)
    }

    fn names(ffs: &[sluice_runtime::FlowFile]) -> Vec<String> {
        ffs.iter().map(TestRunner::text).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn passes_the_rate_then_refills_over_the_period() {
        let r = runner("rate: 10\nperiod: 1s\n");
        for i in 0..25 {
            r.enqueue(format!("m{i}"), &[]);
        }
        r.run_once().await.unwrap();
        let first = r.take(SUCCESS);
        assert_eq!(
            names(&first),
            (0..10).map(|i| format!("m{i}")).collect::<Vec<_>>()
        );
        assert_eq!(r.input_queued(), 15, "the excess stays queued");

        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty(), "no time passed: nothing more");
        assert_eq!(r.input_queued(), 15);

        tokio::time::advance(Duration::from_millis(500)).await;
        r.run_once().await.unwrap();
        assert_eq!(
            names(&r.take(SUCCESS)),
            (10..15).map(|i| format!("m{i}")).collect::<Vec<_>>(),
            "half a period refills half the rate, in order"
        );

        tokio::time::advance(Duration::from_secs(5)).await;
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS).len(), 10, "a bucket holds at most `rate`");
        assert_eq!(r.input_queued(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_have_their_own_buckets_and_keep_their_order() {
        let r = runner("rate: 2\nperiod: 10s\nkey: \"{{host}}\"\n");
        for i in 0..5 {
            r.enqueue(format!("a{i}"), &[("host", "a")]);
        }
        r.enqueue("b0", &[("host", "b")]);
        r.run_once().await.unwrap();
        assert_eq!(names(&r.take(SUCCESS)), ["a0", "a1", "b0"]);
        assert_eq!(r.input_queued(), 3);
        tokio::time::advance(Duration::from_secs(5)).await;
        r.run_once().await.unwrap();
        assert_eq!(names(&r.take(SUCCESS)), ["a2"]);
        tokio::time::advance(Duration::from_secs(10)).await;
        r.run_once().await.unwrap();
        assert_eq!(names(&r.take(SUCCESS)), ["a3", "a4"]);
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_mode_counts_content_and_lets_an_oversized_flowfile_through_a_full_bucket() {
        let r = runner("rate: 10 B\nperiod: 1s\nmode: bytes\n");
        r.enqueue("123456", &[]);
        r.enqueue("12345", &[]);
        r.enqueue("x".repeat(50), &[]);
        r.run_once().await.unwrap();
        assert_eq!(
            names(&r.take(SUCCESS)),
            ["123456"],
            "6 of 10 bytes used; 5 more do not fit"
        );
        tokio::time::advance(Duration::from_millis(100)).await;
        r.run_once().await.unwrap();
        assert_eq!(
            names(&r.take(SUCCESS)),
            ["12345"],
            "one byte refilled: 5 fit now"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        r.run_once().await.unwrap();
        assert_eq!(
            r.take(SUCCESS).len(),
            1,
            "50 bytes pass once the bucket is full"
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        r.enqueue("1", &[]);
        r.run_once().await.unwrap();
        assert!(
            r.take(SUCCESS).is_empty(),
            "the oversized FlowFile left a debt"
        );
        tokio::time::advance(Duration::from_secs(4)).await;
        r.run_once().await.unwrap();
        assert_eq!(names(&r.take(SUCCESS)), ["1"]);
    }

    #[tokio::test(start_paused = true)]
    async fn idle_buckets_are_forgotten_once_full_again() {
        let mut l = Limiter::new(1, Duration::from_secs(1));
        let t0 = Instant::now();
        for i in 0..100 {
            assert!(l.try_take(&i.to_string(), 1, t0).is_ok());
        }
        assert_eq!(l.try_take("0", 1, t0), Err(Duration::from_secs(1)));
        l.sweep(t0, Duration::from_secs(1));
        assert_eq!(l.buckets.len(), 100, "all still refilling");
        let t1 = t0 + Duration::from_millis(1500);
        assert!(l.try_take("new", 1, t1).is_ok());
        l.sweep(t1, Duration::from_secs(1));
        assert_eq!(l.buckets.len(), 1, "only the bucket in use is kept");
        assert_eq!(l.try_take("new", 1, t1), Err(Duration::from_secs(1)));
    }

    #[test]
    fn invalid_rates_are_refused_with_the_property_named() {
        let props = Properties::from_pairs(&[("rate", "10 MB")], PROPERTIES);
        let errs = ControlRateType.validate(&props);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("mode: bytes"), "{}", errs[0]);
        let props = Properties::from_pairs(&[("rate", "0")], PROPERTIES);
        assert_eq!(ControlRateType.validate(&props).len(), 1);
        let props = Properties::from_pairs(&[("rate", "5"), ("period", "0")], PROPERTIES);
        assert_eq!(ControlRateType.validate(&props).len(), 1);
    }
}
