//! Delivery outcomes shared by every sink: how a failure classifies itself,
//! the back-off between retries, and the loop that delivers a batch and
//! applies each outcome.
//!
//! - [`Failure`] is transient (retry later) or permanent (route to
//!   `failure`). [`http_status`], [`parse_retry_after`], [`reqwest_failure`]
//!   and [`tls_problem`] classify what the protocols report.
//! - [`Backoff`] doubles the wait after each consecutive transient failure,
//!   up to a maximum, never shorter than a `Retry-After`; a success resets it.
//!   It is shared by the processor's tasks, so none sends before the wait is
//!   over.
//! - [`Delivery::run`] takes FlowFiles one at a time and hands each to a
//!   [`Sink`]. Delivered: SEND event, `success`. Permanent: `put.error`,
//!   `failure`. Transient: `put.error` and `put.attempts` set, the FlowFile
//!   goes back to the front of its queue penalised for the back-off, the
//!   processor yields for the same time, and the trigger ends; what was
//!   delivered before it is committed. After `max_attempts` (if set) it goes
//!   to `retry` (or `failure`) instead. No task is left running.

use std::error::Error as StdError;
use std::sync::atomic::Ordering;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_runtime::{
    FlowFile, Level, ProcessContext, ProcessError, ProcessSession, PropKind, Properties,
    PropertyDescriptor, PropertyError, async_trait, now_millis,
};
use tokio::time::Instant;

/// Delivered and confirmed.
pub const SUCCESS: &str = "success";
/// Failed for good (or gave up), with `put.error`.
pub const FAILURE: &str = "failure";
/// Gave up after `max_attempts` transient failures (PutHTTP).
pub const RETRY: &str = "retry";
/// Why the last attempt failed.
pub const ERROR_ATTR: &str = "put.error";
/// Attempts so far that failed transiently.
pub const ATTEMPTS_ATTR: &str = "put.attempts";

/// Longest a `Retry-After` is honoured for (a broken server could ask for a year).
const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);
/// A trigger stops taking new FlowFiles after this long, so reloads and
/// other processors get their turn.
const TRIGGER_BUDGET: Duration = Duration::from_secs(1);

/// First wait after a transient failure.
pub const BACKOFF_INITIAL: PropertyDescriptor = PropertyDescriptor::optional(
    "backoff_initial",
    PropKind::Duration,
    Some("1s"),
    "Wait after the first transient failure; it doubles after each further one.",
);
/// Longest wait between retries.
pub const BACKOFF_MAX: PropertyDescriptor = PropertyDescriptor::optional(
    "backoff_max",
    PropKind::Duration,
    Some("1m"),
    "Longest wait between retries (a longer Retry-After from the server is still honoured, up to 1h).",
);
/// Attempts before giving up.
pub const MAX_ATTEMPTS: PropertyDescriptor = PropertyDescriptor::optional(
    "max_attempts",
    PropKind::Integer {
        min: 0,
        max: 1_000_000,
    },
    Some("0"),
    "Transient failures a FlowFile may have before it is routed to `retry` (PutHTTP) or `failure`; 0 retries until delivered, keeping it queued so back-pressure reaches the source.",
);

/// Whether a failure is worth retrying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    /// The remote side may accept it later.
    Transient,
    /// It will never be accepted as it is.
    Permanent,
}

/// Why a delivery failed. The reason must not contain secrets.
#[derive(Debug)]
pub struct Failure {
    /// Retry or not.
    pub class: Class,
    /// Human-readable reason, put in `put.error`.
    pub reason: String,
    /// The server asked to wait this long (Retry-After).
    pub retry_after: Option<Duration>,
    /// Attributes to set on the FlowFile anyway (response status, ...).
    pub attributes: Vec<(String, String)>,
}

impl Failure {
    /// A failure that may succeed later.
    pub fn transient(reason: impl Into<String>) -> Self {
        Self {
            class: Class::Transient,
            reason: reason.into(),
            retry_after: None,
            attributes: Vec::new(),
        }
    }

    /// A failure that will not succeed by retrying.
    pub fn permanent(reason: impl Into<String>) -> Self {
        Self {
            class: Class::Permanent,
            ..Self::transient(reason)
        }
    }

    /// The same failure in `class`.
    #[must_use]
    pub fn classed(mut self, class: Class) -> Self {
        self.class = class;
        self
    }

    /// The same, waiting at least `d` before the next attempt.
    #[must_use]
    pub fn retry_after(mut self, d: Option<Duration>) -> Self {
        self.retry_after = d;
        self
    }

    /// The same, with attributes to set on the FlowFile.
    #[must_use]
    pub fn with_attributes(mut self, attrs: Vec<(String, String)>) -> Self {
        self.attributes = attrs;
        self
    }

    /// The reason prefixed with context.
    #[must_use]
    pub fn context(mut self, what: &str) -> Self {
        self.reason = format!("{what}: {}", self.reason);
        self
    }

    /// Whether to retry.
    pub fn is_transient(&self) -> bool {
        self.class == Class::Transient
    }
}

/// How an HTTP status classifies: `None` for 2xx (delivered); 408, 425, 429
/// and 5xx are transient; everything else (other 4xx, unfollowed 3xx, 1xx)
/// is permanent.
pub fn http_status(status: u16) -> Option<Class> {
    match status {
        200..=299 => None,
        408 | 425 | 429 | 500..=599 => Some(Class::Transient),
        _ => Some(Class::Permanent),
    }
}

/// Parses a `Retry-After` value: delay seconds or an HTTP date (relative to
/// `now`; a date in the past means "now"). Capped at one hour.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    let d = if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(v.parse::<u64>().unwrap_or(u64::MAX))
    } else {
        let when: SystemTime = chrono::DateTime::parse_from_rfc2822(v).ok()?.into();
        when.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(d.min(RETRY_AFTER_CAP))
}

/// The `Retry-After` of a response, if it has a usable one.
pub fn retry_after_header(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, SystemTime::now()))
}

/// A TLS problem (a certificate not trusted, a protocol mismatch) anywhere in
/// an error's chain, as text. Such failures do not heal by retrying: they are
/// configuration problems. `std::io::Error` hides its inner error from
/// `source()`, so it is unwrapped explicitly.
pub fn tls_problem(e: &(dyn StdError + 'static)) -> Option<String> {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<tokio_rustls::rustls::Error>() {
            return Some(t.to_string());
        }
        if let Some(inner) = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            if let Some(t) = inner.downcast_ref::<tokio_rustls::rustls::Error>() {
                return Some(t.to_string());
            }
            cur = Some(inner);
            continue;
        }
        cur = err.source();
    }
    None
}

/// An error and its causes as one line ("a: b: c"), skipping repeats.
pub fn error_chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}

/// Classifies an error from reqwest. The URL is left out of the reason (it
/// may hold a secret, such as a Slack webhook path).
pub fn reqwest_failure(e: reqwest::Error) -> Failure {
    let e = e.without_url();
    if let Some(t) = tls_problem(&e) {
        return Failure::permanent(format!("TLS: {t}"));
    }
    let reason = error_chain(&e);
    if e.is_builder() {
        Failure::permanent(reason)
    } else if e.is_timeout() {
        Failure::transient(format!("timed out: {reason}"))
    } else {
        // Connect errors, resets, bodies cut short: the remote side may be back later.
        Failure::transient(reason)
    }
}

/// Exponential back-off shared by a processor's tasks.
#[derive(Debug)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    state: Mutex<BackoffState>,
}

#[derive(Debug, Default)]
struct BackoffState {
    failures: u32,
    not_before: Option<Instant>,
}

impl Backoff {
    /// Waits `initial`, then twice as long after each further failure, up to `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
            state: Mutex::new(BackoffState::default()),
        }
    }

    /// Records a transient failure; returns how long to wait before the next
    /// attempt (never shorter than `retry_after`).
    pub fn failed(&self, retry_after: Option<Duration>) -> Duration {
        let mut st = self.state.lock();
        let n = st.failures.min(30);
        st.failures = st.failures.saturating_add(1);
        let exp = self.initial.saturating_mul(1u32 << n).min(self.max);
        let wait = retry_after.map_or(exp, |r| r.max(exp));
        st.not_before = Some(Instant::now() + wait);
        wait
    }

    /// Records a delivery (or an answer that was not a transient failure): the
    /// next failure starts from `initial` again.
    pub fn succeeded(&self) {
        *self.state.lock() = BackoffState::default();
    }

    /// How long until the next attempt is allowed, if it is not yet.
    pub fn remaining(&self) -> Option<Duration> {
        let st = self.state.lock();
        let until = st.not_before?;
        let now = Instant::now();
        (until > now).then(|| until - now)
    }
}

/// What a sink reports when the remote side confirmed.
#[derive(Debug, Default)]
pub struct Delivered {
    /// Where it went (a SEND event; no secrets).
    pub destination: String,
    /// Attributes to set (response status, remote path, ETag...).
    pub attributes: Vec<(String, String)>,
}

/// One delivery of one FlowFile.
#[async_trait]
pub trait Sink: Send + Sync {
    /// Delivers `ff` (whose content is `content`); `Ok` only once the remote
    /// side confirmed. Cancel-safe: dropping the future abandons the attempt
    /// (the FlowFile is retried).
    async fn deliver(
        &self,
        ctx: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure>;
}

/// How a sink retries: its back-off and where FlowFiles go when it gives up.
#[derive(Debug)]
pub struct Delivery {
    /// Shared back-off.
    pub backoff: Backoff,
    /// Transient failures before giving up (0 = never).
    pub max_attempts: u32,
    /// Relationship for FlowFiles given up on.
    pub exhausted: &'static str,
}

impl Delivery {
    /// Reads [`BACKOFF_INITIAL`], [`BACKOFF_MAX`] and [`MAX_ATTEMPTS`].
    ///
    /// # Errors
    /// A property is unusable.
    pub fn from_props(props: &Properties, exhausted: &'static str) -> Result<Self, PropertyError> {
        Ok(Self {
            backoff: Backoff::new(
                props.duration(BACKOFF_INITIAL.name)?,
                props.duration(BACKOFF_MAX.name)?,
            ),
            max_attempts: u32::try_from(props.int(MAX_ATTEMPTS.name)?).unwrap_or(u32::MAX),
            exhausted,
        })
    }

    /// Delivers FlowFiles from `session` through `sink` until the input is
    /// empty, a batch is done, an outgoing connection is full, or a transient
    /// failure; see the module docs. Never fails: problems are routed,
    /// requeued or raised as bulletins.
    ///
    /// # Errors
    /// None today; the signature matches `on_trigger`.
    pub async fn run(
        &self,
        sink: &dyn Sink,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let started = Instant::now();
        let max = ctx.scheduling().batch_size.max(1);
        for n in 0..max {
            if let Some(wait) = self.backoff.remaining() {
                ctx.yield_for(wait);
                break;
            }
            if n > 0 && (started.elapsed() >= TRIGGER_BUDGET || ctx.is_back_pressured()) {
                break;
            }
            let Some(ff) = session.get() else { break };
            let content = match session.read(&ff) {
                Ok(c) => c,
                Err(e) => {
                    // The local content repository failed: nothing to do with the remote side.
                    let wait = ctx.scheduling().yield_duration;
                    ctx.bulletin(Level::Error, e.message);
                    session.requeue(ff, now_millis() + millis(wait));
                    ctx.yield_for(wait);
                    break;
                }
            };
            let outcome = tokio::select! {
                r = sink.deliver(ctx, &ff, content) => Some(r),
                () = ctx.shutdown().cancelled() => None,
            };
            match outcome {
                None => {
                    session.requeue(ff, 0);
                    break;
                }
                Some(Ok(d)) => self.delivered(session, ff, d),
                Some(Err(f)) if !f.is_transient() => self.failed(ctx, session, ff, f),
                Some(Err(f)) => {
                    self.retry_later(ctx, session, ff, f);
                    break;
                }
            }
        }
        Ok(())
    }

    fn delivered(&self, session: &mut ProcessSession, mut ff: FlowFile, d: Delivered) {
        self.backoff.succeeded();
        ff.attributes.remove(ERROR_ATTR);
        ff.attributes.remove(ATTEMPTS_ATTR);
        for (k, v) in d.attributes {
            ff.attributes.insert(k, v);
        }
        session.send(&ff, &d.destination);
        session.transfer(ff, SUCCESS);
    }

    fn failed(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
        mut ff: FlowFile,
        f: Failure,
    ) {
        // The remote side answered: it is up, so the next failure starts afresh.
        self.backoff.succeeded();
        ctx.counter("failed").fetch_add(1, Ordering::Relaxed);
        ctx.bulletin(
            Level::Error,
            format!("FlowFile {}: {}; routed to {FAILURE}", ff.id, f.reason),
        );
        for (k, v) in f.attributes {
            ff.attributes.insert(k, v);
        }
        ff.attributes.insert(ERROR_ATTR, f.reason);
        session.transfer(ff, FAILURE);
    }

    fn retry_later(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
        mut ff: FlowFile,
        f: Failure,
    ) {
        ctx.counter("retries").fetch_add(1, Ordering::Relaxed);
        let attempts = ff
            .attr(ATTEMPTS_ATTR)
            .and_then(|a| a.parse::<u32>().ok())
            .unwrap_or(0)
            .saturating_add(1);
        // Read the clock before the back-off starts, so the FlowFile's
        // penalty ends no later than the back-off: it is available again as
        // soon as the processor may try again (behind FlowFiles that were not
        // penalised, as in NiFi).
        let failed_at = now_millis();
        let wait = self.backoff.failed(f.retry_after);
        ctx.yield_for(wait);
        for (k, v) in f.attributes {
            ff.attributes.insert(k, v);
        }
        ff.attributes.insert(ERROR_ATTR, f.reason.clone());
        ff.attributes.insert(ATTEMPTS_ATTR, attempts.to_string());
        if self.max_attempts > 0 && attempts >= self.max_attempts {
            ctx.bulletin(
                Level::Error,
                format!(
                    "FlowFile {}: {}; gave up after {attempts} attempts, routed to {}",
                    ff.id, f.reason, self.exhausted
                ),
            );
            session.penalize(&mut ff);
            session.transfer(ff, self.exhausted);
        } else {
            ctx.bulletin(
                Level::Warn,
                format!(
                    "FlowFile {}: {}; kept queued, attempt {} in {}",
                    ff.id,
                    f.reason,
                    attempts + 1,
                    humantime::format_duration(Duration::from_millis(millis(wait)))
                ),
            );
            session.requeue(ff, failed_at + millis(wait));
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify() {
        assert_eq!(http_status(200), None);
        assert_eq!(http_status(204), None);
        for s in [408, 425, 429, 500, 502, 503, 504] {
            assert_eq!(http_status(s), Some(Class::Transient), "{s}");
        }
        for s in [301, 400, 401, 403, 404, 410, 413, 422] {
            assert_eq!(http_status(s), Some(Class::Permanent), "{s}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_445_412_480); // 2015-10-21 07:28:00 UTC
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(parse_retry_after(" 0 ", now), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date in the past means now"
        );
        assert_eq!(parse_retry_after("99999999", now), Some(RETRY_AFTER_CAP));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_caps_honours_retry_after_and_resets() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        assert_eq!(b.remaining(), None);
        assert_eq!(b.failed(None), Duration::from_millis(100));
        assert_eq!(b.failed(None), Duration::from_millis(200));
        assert_eq!(b.failed(None), Duration::from_millis(400));
        assert_eq!(b.failed(None), Duration::from_millis(500), "capped");
        assert_eq!(b.failed(None), Duration::from_millis(500));
        assert_eq!(
            b.failed(Some(Duration::from_secs(3))),
            Duration::from_secs(3),
            "Retry-After wins over the cap"
        );
        assert_eq!(b.remaining(), Some(Duration::from_secs(3)));
        tokio::time::advance(Duration::from_millis(2_999)).await;
        assert_eq!(b.remaining(), Some(Duration::from_millis(1)));
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(b.remaining(), None, "no wait once Retry-After elapsed");
        b.succeeded();
        assert_eq!(
            b.failed(Some(Duration::from_millis(10))),
            Duration::from_millis(100)
        );
        for _ in 0..100 {
            b.failed(None);
        }
        assert_eq!(b.failed(None), Duration::from_millis(500), "no overflow");
    }

    /// A sink that answers from a script, for the delivery loop's tests.
    #[derive(Clone, Copy, Debug)]
    enum Step {
        Ok,
        Transient(Option<u64>),
        Permanent,
    }

    struct ScriptType(std::sync::Arc<Mutex<std::collections::VecDeque<Step>>>);
    struct Script(
        std::sync::Arc<Mutex<std::collections::VecDeque<Step>>>,
        Delivery,
    );

    const SCRIPT_PROPS: &[PropertyDescriptor] = &[BACKOFF_INITIAL, BACKOFF_MAX, MAX_ATTEMPTS];

    impl sluice_runtime::ProcessorType for ScriptType {
        fn name(&self) -> &'static str {
            "Script"
        }
        fn description(&self) -> &'static str {
            "test sink"
        }
        fn properties(&self) -> &'static [PropertyDescriptor] {
            SCRIPT_PROPS
        }
        fn input(&self) -> sluice_runtime::InputRequirement {
            sluice_runtime::InputRequirement::Required
        }
        fn relationships(&self, _: &Properties) -> Vec<sluice_runtime::RelationshipDef> {
            [SUCCESS, RETRY, FAILURE]
                .iter()
                .map(|r| sluice_runtime::RelationshipDef::new(*r, "test"))
                .collect()
        }
        fn build(
            &self,
            props: &Properties,
            _: &sluice_runtime::BuildContext,
        ) -> Result<Box<dyn sluice_runtime::Processor>, sluice_runtime::BuildError> {
            Ok(Box::new(Script(
                self.0.clone(),
                Delivery::from_props(props, RETRY)?,
            )))
        }
        fn example(&self) -> &'static str {
            "{}"
        }
    }

    #[async_trait]
    impl Sink for Script {
        async fn deliver(
            &self,
            _: &ProcessContext,
            ff: &FlowFile,
            _: Bytes,
        ) -> Result<Delivered, Failure> {
            let step = self.0.lock().pop_front().unwrap_or(Step::Ok);
            match step {
                Step::Ok => Ok(Delivered {
                    destination: format!("test://{}", ff.id),
                    attributes: vec![("test.status".into(), "200".into())],
                }),
                Step::Transient(ra) => Err(Failure::transient("connection refused")
                    .retry_after(ra.map(Duration::from_millis))),
                Step::Permanent => Err(Failure::permanent("HTTP 404 Not Found")
                    .with_attributes(vec![("test.status".into(), "404".into())])),
            }
        }
    }

    #[async_trait]
    impl sluice_runtime::Processor for Script {
        async fn on_trigger(
            &self,
            ctx: &ProcessContext,
            session: &mut ProcessSession,
        ) -> Result<(), ProcessError> {
            self.1.run(self, ctx, session).await
        }
    }

    fn runner(steps: &[Step], props: &[(&str, &str)]) -> sluice_runtime::testing::TestRunner {
        let script = std::sync::Arc::new(Mutex::new(steps.iter().copied().collect()));
        let kind = ScriptType(script);
        sluice_runtime::testing::TestRunner::new(&kind, props).unwrap()
    }

    #[tokio::test]
    async fn a_transient_failure_keeps_that_flowfile_queued_and_commits_the_rest() {
        let r = runner(
            &[Step::Ok, Step::Permanent, Step::Transient(None)],
            &[("backoff_initial", "200ms")],
        );
        for i in 0..4 {
            r.enqueue(format!("m{i}"), &[("seq", &i.to_string())]);
        }
        let before = now_millis();
        r.run_once().await.unwrap();
        let ok = r.take(SUCCESS);
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].attr("test.status"), Some("200"));
        assert_eq!(ok[0].attr(ERROR_ATTR), None);
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attr(ERROR_ATTR), Some("HTTP 404 Not Found"));
        assert_eq!(failed[0].attr("test.status"), Some("404"));
        assert_eq!(
            r.input_queued(),
            2,
            "the failed one back, the fourth never taken"
        );
        assert_eq!(r.ctx.counter("retries").load(Ordering::Relaxed), 1);
        assert_eq!(r.ctx.counter("failed").load(Ordering::Relaxed), 1);
        let sent = |id| {
            r.provenance
                .lineage(id)
                .iter()
                .any(|e| e.kind == sluice_runtime::EventKind::Send)
        };
        assert!(sent(ok[0].id), "SEND for the delivered one");
        assert!(!sent(failed[0].id), "no SEND for a failure");
        // The requeued one carries why, and waits out the back-off.
        let back = r.take_input();
        let third = back.iter().find(|f| f.attr("seq") == Some("2")).unwrap();
        assert_eq!(third.attr(ERROR_ATTR), Some("connection refused"));
        assert_eq!(third.attr(ATTEMPTS_ATTR), Some("1"));
        assert!(
            third.penalized_until >= before + 200,
            "penalised for the back-off"
        );
        assert!(third.penalized_until <= now_millis() + 200);
    }

    #[tokio::test]
    async fn no_attempt_before_the_backoff_is_over() {
        let r = runner(
            &[Step::Transient(Some(60_000))],
            &[("backoff_initial", "10ms")],
        );
        r.enqueue("a", &[]);
        r.run_once().await.unwrap();
        assert_eq!(r.input_queued(), 1);
        // Another FlowFile arrives: still nothing is sent while Retry-After runs.
        r.enqueue("b", &[]);
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        assert_eq!(r.input_queued(), 2);
    }

    #[tokio::test]
    async fn gives_up_after_max_attempts_to_the_exhausted_relationship() {
        let r = runner(
            &[Step::Transient(None), Step::Transient(None)],
            &[("backoff_initial", "0s"), ("max_attempts", "2")],
        );
        r.enqueue("a", &[]);
        r.run_once().await.unwrap();
        assert_eq!(r.input_queued(), 1);
        let mut ff = r.take_input().pop().unwrap();
        assert_eq!(ff.attr(ATTEMPTS_ATTR), Some("1"));
        ff.penalized_until = 0;
        r.enqueue_flowfile(ff);
        r.run_once().await.unwrap();
        let gave_up = r.take(RETRY);
        assert_eq!(gave_up.len(), 1);
        assert_eq!(gave_up[0].attr(ATTEMPTS_ATTR), Some("2"));
        assert_eq!(gave_up[0].attr(ERROR_ATTR), Some("connection refused"));
        assert_eq!(r.input_queued(), 0);
    }

    #[tokio::test]
    async fn a_success_clears_the_error_of_an_earlier_attempt() {
        let r = runner(&[Step::Ok], &[]);
        r.enqueue("a", &[(ERROR_ATTR, "timed out"), (ATTEMPTS_ATTR, "3")]);
        r.run_once().await.unwrap();
        let ok = r.take(SUCCESS);
        assert_eq!(ok[0].attr(ERROR_ATTR), None);
        assert_eq!(ok[0].attr(ATTEMPTS_ATTR), None);
    }

    #[test]
    fn io_wrapped_tls_errors_are_found() {
        use tokio_rustls::rustls;
        let inner = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = std::io::Error::new(std::io::ErrorKind::InvalidData, inner);
        #[derive(Debug, thiserror::Error)]
        #[error("connecting")]
        struct Outer(#[source] std::io::Error);
        let outer = Outer(io);
        let found = tls_problem(&outer).expect("found through io::Error");
        assert!(
            found.contains("UnknownIssuer") || found.contains("unknown issuer"),
            "{found}"
        );
        let plain = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert_eq!(tls_problem(&plain), None);
    }
}
