//! GenerateFlowFile: a test source that creates FlowFiles from templates.
//!
//! Each FlowFile gets a sequence number `seq` (0, 1, 2, ... across the
//! processor's life) that the `content` and `attributes` templates can use as
//! `{{seq}}`. Attribute templates see `seq` only; the content template sees
//! `seq` and the attributes just set. Without `content`, the content is `size`
//! bytes of filler text (printable ASCII lines), shared by every FlowFile.
//!
//! Amount and pace:
//! - without `rate`, each trigger creates `batch` FlowFiles;
//! - with `rate`, a token bucket inside the processor decides: tokens accrue
//!   at `rate` per second (the first FlowFile is due at once) and each trigger
//!   creates one FlowFile per whole token, waiting for the next token (at most
//!   a second, and never past shutdown) when there is none. The bucket holds up
//!   to one second of tokens, or one `run_schedule` period when that is longer,
//!   so the flow keeps `rate` whatever the run schedule and batch size are.
//!   Under back-pressure the processor is not triggered and the bucket stops
//!   filling at its capacity: no catch-up burst beyond it.
//! - after `count` FlowFiles (0 = no limit) it creates no more. The processor
//!   commits its own session, and a failed commit gives its sequence numbers
//!   back, so exactly `count` FlowFiles enter the flow.
//!
//! ```yaml
//! gen:
//!   type: GenerateFlowFile
//!   properties:
//!     count: 1000
//!     rate: 100
//!     content: '{"n": {{seq}}, "host": "{{host}}"}'
//!     attributes:
//!       host: web-1
//!       seq: "{{seq}}"
//! ```

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use sluice_runtime::{
    AttrStr, Attributes, BuildContext, BuildError, Escape, InputRequirement, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, PropertyError, RelationshipDef, Template, TemplateError, async_trait,
};
use tokio::time::Instant;

/// Every FlowFile created goes here.
pub const SUCCESS: &str = "success";

/// Largest `size` accepted: generated content lives in memory.
const MAX_SIZE: u64 = 1 << 30;

/// Longest wait for a token inside one trigger.
const MAX_TOKEN_WAIT: Duration = Duration::from_secs(1);

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "count",
        PropKind::Integer {
            min: 0,
            max: i64::MAX,
        },
        Some("0"),
        "How many FlowFiles to create in total; 0 = no limit.",
    ),
    PropertyDescriptor::optional(
        "batch",
        PropKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        Some("1"),
        "FlowFiles created per trigger when no `rate` is set.",
    ),
    PropertyDescriptor::optional(
        "rate",
        PropKind::Integer {
            min: 1,
            max: 100_000_000,
        },
        None,
        "FlowFiles per second, kept by a token bucket whatever the run schedule is.",
    ),
    PropertyDescriptor::optional(
        "content",
        PropKind::Template,
        None,
        "Content template; sees `{{seq}}` and the attributes set by `attributes`.",
    ),
    PropertyDescriptor::optional(
        "size",
        PropKind::DataSize,
        Some("0"),
        "Without `content`: this many bytes of filler text (at most 1 GiB).",
    ),
    PropertyDescriptor::optional(
        "attributes",
        PropKind::MapOf(&PropKind::Template),
        None,
        "Attributes to set: name -> template (sees `{{seq}}`).",
    ),
];

/// The registry entry.
pub struct GenerateFlowFileType;

impl ProcessorType for GenerateFlowFileType {
    fn name(&self) -> &'static str {
        "GenerateFlowFile"
    }
    fn description(&self) -> &'static str {
        "Test source: creates FlowFiles with templated content (or N bytes of filler) and attributes, optionally at a fixed rate and up to a total count."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new(SUCCESS, "Every FlowFile created.")]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        match props.data_size("size") {
            Ok(n) if n > MAX_SIZE => errs.push(PropertyError {
                name: "size".into(),
                message: format!("{n} bytes is more than the 1 GiB a generated FlowFile may hold"),
                pos: props.raw("size").map(sluice_runtime::PropValue::pos),
            }),
            Ok(n) if n > 0 && props.raw("content").is_some() => errs.push(PropertyError {
                name: "size".into(),
                message: "give either `content` or `size`, not both".into(),
                pos: props.raw("size").map(sluice_runtime::PropValue::pos),
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
        let count = u64::try_from(props.int("count")?).unwrap_or(0);
        let batch = u64::try_from(props.int("batch")?).unwrap_or(1).max(1);
        let rate = props.int_opt("rate")?.and_then(|r| u64::try_from(r).ok());
        let content = match props.str_opt("content")? {
            Some(src) => match TextSource::compile(src, "content")? {
                TextSource::Literal(text) => Body::Literal(Bytes::copy_from_slice(text.as_bytes())),
                other => Body::Text(other),
            },
            None => Body::Filler(usize::try_from(props.data_size("size")?).unwrap_or(usize::MAX)),
        };
        let mut attributes = Vec::new();
        for (name, src) in props.map("attributes")? {
            let v = TextSource::compile(&src, &format!("attributes.{name}"))?;
            attributes.push((AttrStr::from(name.as_str()), v));
        }
        Ok(Box::new(GenerateFlowFile {
            count,
            batch,
            rate,
            content,
            attributes,
            filler: OnceLock::new(),
            produced: AtomicU64::new(0),
            bucket: Mutex::new(None),
        }))
    }
    fn example(&self) -> &'static str {
        "count: 1000\nrate: 100\ncontent: '{\"n\": {{seq}}, \"host\": \"{{host}}\"}'\nattributes:\n  host: web-1\n  seq: \"{{seq}}\""
    }
}

/// A template, compiled for the cheapest way to render it.
enum TextSource {
    /// No placeholders: the text itself.
    Literal(AttrStr),
    /// Only `{{seq}}` placeholders: the text around them, joined by the number.
    SeqOnly(Vec<String>),
    /// Anything else: handlebars.
    Template(Template),
}

impl TextSource {
    fn compile(src: &str, what: &str) -> Result<Self, BuildError> {
        if !src.contains("{{") && !src.contains("}}") {
            return Ok(TextSource::Literal(AttrStr::from(src)));
        }
        let parts: Vec<String> = src.split("{{seq}}").map(str::to_string).collect();
        // A backslash may escape a placeholder in handlebars: leave those to it.
        let plain = |p: &String| !p.contains("{{") && !p.contains("}}") && !p.contains('\\');
        if parts.len() > 1 && parts.iter().all(plain) {
            return Ok(TextSource::SeqOnly(parts));
        }
        Template::compile(src, Escape::None)
            .map(TextSource::Template)
            .map_err(|e| BuildError::Other(format!("{what}: {e}")))
    }

    fn render(&self, attrs: &Attributes, seq: u64) -> Result<AttrStr, TemplateError> {
        match self {
            TextSource::Literal(s) => Ok(s.clone()),
            TextSource::SeqOnly(parts) => Ok(parts.join(&seq.to_string()).into()),
            TextSource::Template(t) => t
                .render_with(attrs, None, &[("seq", Value::from(seq))])
                .map(AttrStr::from),
        }
    }
}

enum Body {
    Literal(Bytes),
    Text(TextSource),
    Filler(usize),
}

/// Tokens accrue at `rate` per second up to a capacity.
struct Bucket {
    rate: f64,
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, capacity: f64) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(capacity);
        self.last = now;
    }

    /// Takes every whole token, at most `max`.
    fn take(&mut self, max: u64) -> u64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // The epsilon keeps float error (0.9999999 after a wait) from
        // postponing a token that is due.
        let whole = (self.tokens + 1e-9).floor().max(0.0) as u64;
        let n = whole.min(max);
        #[allow(clippy::cast_precision_loss)]
        {
            self.tokens -= n as f64;
        }
        n
    }

    /// How long until the next whole token.
    fn until_next(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
            .max(Duration::from_millis(1))
    }
}

struct GenerateFlowFile {
    count: u64,
    batch: u64,
    rate: Option<u64>,
    content: Body,
    attributes: Vec<(AttrStr, TextSource)>,
    filler: OnceLock<Bytes>,
    produced: AtomicU64,
    bucket: Mutex<Option<Bucket>>,
}

/// `n` bytes of printable filler: lines of the alphabet and digits.
fn filler(n: usize) -> Bytes {
    const LINE: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ\n";
    LINE.iter()
        .copied()
        .cycle()
        .take(n)
        .collect::<Vec<u8>>()
        .into()
}

impl GenerateFlowFile {
    /// How many FlowFiles this trigger may create, waiting for a token if the
    /// rate allows none yet.
    async fn allowance(&self, ctx: &ProcessContext) -> u64 {
        let Some(rate) = self.rate else {
            return self.batch;
        };
        #[allow(clippy::cast_precision_loss)]
        let rate_f = rate as f64;
        let period = ctx.scheduling().run_schedule.max(Duration::from_secs(1));
        let capacity = (rate_f * period.as_secs_f64()).max(1.0);
        let wait = {
            let mut guard = self.bucket.lock();
            let now = Instant::now();
            let b = guard.get_or_insert(Bucket {
                rate: rate_f,
                tokens: 1.0,
                last: now,
            });
            b.refill(now, capacity);
            let n = b.take(u64::MAX);
            if n > 0 {
                return n;
            }
            b.until_next().min(MAX_TOKEN_WAIT)
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = ctx.shutdown().cancelled() => return 0,
        }
        let mut guard = self.bucket.lock();
        match guard.as_mut() {
            Some(b) => {
                b.refill(Instant::now(), capacity);
                b.take(u64::MAX)
            }
            None => 0,
        }
    }

    /// Reserves up to `n` sequence numbers within `count`: (first, how many).
    fn reserve(&self, n: u64) -> (u64, u64) {
        let mut got = 0;
        let first = self
            .produced
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| {
                got = if self.count == 0 {
                    n
                } else {
                    n.min(self.count.saturating_sub(p))
                };
                (got > 0).then_some(p + got)
            })
            .unwrap_or(0);
        (first, got)
    }

    fn make(
        &self,
        session: &mut ProcessSession,
        seq: u64,
    ) -> Result<sluice_runtime::FlowFile, String> {
        let empty = Attributes::new();
        let mut ff = session.create();
        for (name, v) in &self.attributes {
            let value = v
                .render(&empty, seq)
                .map_err(|e| format!("attributes.{name}: {e}"))?;
            ff.attributes.insert(name.clone(), value);
        }
        let body = match &self.content {
            Body::Literal(b) => b.clone(),
            Body::Text(t) => Bytes::copy_from_slice(
                t.render(&ff.attributes, seq)
                    .map_err(|e| format!("content: {e}"))?
                    .as_bytes(),
            ),
            Body::Filler(n) => self.filler.get_or_init(|| filler(*n)).clone(),
        };
        session.write(&mut ff, body);
        Ok(ff)
    }
}

#[async_trait]
impl Processor for GenerateFlowFile {
    async fn on_scheduled(&self, _: &ProcessContext) -> Result<(), ProcessError> {
        if let Some(rate) = self.rate {
            #[allow(clippy::cast_precision_loss)]
            let rate = rate as f64;
            *self.bucket.lock() = Some(Bucket {
                rate,
                tokens: 1.0,
                last: Instant::now(),
            });
        }
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        if self.count != 0 && self.produced.load(Ordering::Relaxed) >= self.count {
            return Ok(());
        }
        let want = self.allowance(ctx).await;
        let (first, n) = self.reserve(want);
        if n == 0 {
            return Ok(());
        }
        for seq in first..first + n {
            match self.make(session, seq) {
                Ok(ff) => session.transfer(ff, SUCCESS),
                Err(e) => {
                    self.produced.fetch_sub(n, Ordering::Relaxed);
                    session.rollback(false);
                    return Err(ProcessError::new(e));
                }
            }
        }
        if let Err(e) = session.commit().await {
            self.produced.fetch_sub(n, Ordering::Relaxed);
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::{TestRunner, check_type_contract};
    use sluice_runtime::{Scheduling, parse_flow};

    fn runner(yaml: &str) -> TestRunner {
        runner_with(yaml, Scheduling::default())
    }

    fn runner_with(yaml: &str, sched: Scheduling) -> TestRunner {
        let props = crate::test_props(&GenerateFlowFileType, yaml);
        TestRunner::with_properties(&GenerateFlowFileType, props, sched).unwrap()
    }

    #[test]
    fn contract() {
        check_type_contract(&GenerateFlowFileType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn batch_per_trigger_and_stops_at_count() {
        let r = runner("count: 7\nbatch: 3\ncontent: hello");
        let mut sizes = Vec::new();
        for _ in 0..5 {
            r.run_once().await.unwrap();
            sizes.push(r.take(SUCCESS).len());
        }
        assert_eq!(sizes, vec![3, 3, 1, 0, 0]);
    }

    #[tokio::test]
    async fn seq_in_content_and_attributes() {
        let r = runner(
            "count: 3\nbatch: 10\ncontent: 'n={{seq}} kind={{kind}} at={{at}}'\nattributes:\n  kind: test\n  at: \"#{{seq}}\"",
        );
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        let texts: Vec<String> = out.iter().map(TestRunner::text).collect();
        assert_eq!(
            texts,
            vec![
                "n=0 kind=test at=#0",
                "n=1 kind=test at=#1",
                "n=2 kind=test at=#2"
            ]
        );
        assert_eq!(out[2].attr("at"), Some("#2"));
        assert_eq!(out[2].attr("kind"), Some("test"));
    }

    #[test]
    fn seq_only_texts_render_as_handlebars_would() {
        let attrs = Attributes::new();
        for src in [
            "web-{{seq}}",
            "{{seq}}",
            "{{seq}}-{{seq}}.",
            "a}b{c {{seq}}",
        ] {
            let fast = TextSource::compile(src, "t").unwrap();
            assert!(matches!(fast, TextSource::SeqOnly(_)), "{src}");
            let slow = Template::compile(src, Escape::None).unwrap();
            for seq in [0, 7, 12_345] {
                let want = slow
                    .render_with(&attrs, None, &[("seq", Value::from(seq))])
                    .unwrap();
                assert_eq!(&*fast.render(&attrs, seq).unwrap(), want.as_str(), "{src}");
            }
        }
        assert!(matches!(
            TextSource::compile("{{ seq }}", "t").unwrap(),
            TextSource::Template(_)
        ));
        assert!(matches!(
            TextSource::compile("{{seq}}{{x}}", "t").unwrap(),
            TextSource::Template(_)
        ));
        assert!(matches!(
            TextSource::compile("plain", "t").unwrap(),
            TextSource::Literal(_)
        ));
        assert!(matches!(
            TextSource::compile(r"\{{seq}}", "t").unwrap(),
            TextSource::Template(_)
        ));
    }

    #[tokio::test]
    async fn filler_of_exact_size_and_empty_by_default() {
        let r = runner("count: 2\nbatch: 2\nsize: 1 KB");
        r.run_once().await.unwrap();
        let out = r.take(SUCCESS);
        assert_eq!(out.len(), 2);
        for ff in &out {
            assert_eq!(ff.size(), 1000);
            assert!(TestRunner::text(ff).starts_with("abcdefghij"));
        }
        let r = runner("count: 1");
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS)[0].size(), 0);
    }

    #[test]
    fn content_and_size_together_or_too_big_are_refused() {
        let kind: &dyn ProcessorType = &GenerateFlowFileType;
        let err = sluice_runtime::testing::props_from_yaml(
            kind,
            &crate::registry(),
            "content: x\nsize: 10",
        )
        .unwrap_err();
        assert!(err.contains("either `content` or `size`"), "{err}");
        let err = sluice_runtime::testing::props_from_yaml(kind, &crate::registry(), "size: 2 GiB")
            .unwrap_err();
        assert!(err.contains("more than the 1 GiB"), "{err}");
        let err = sluice_runtime::testing::props_from_yaml(kind, &crate::registry(), "rate: 0")
            .unwrap_err();
        assert!(err.contains("out of range"), "{err}");
    }

    #[tokio::test]
    async fn render_error_rolls_back_and_gives_the_count_back() {
        // `truncate` needs a number: a render error on every FlowFile.
        let r = runner("count: 2\nbatch: 2\ncontent: '{{truncate seq \"x\"}}'");
        let err = r.run_once().await.unwrap_err();
        assert!(err.message.contains("content"), "{}", err.message);
        assert!(r.take(SUCCESS).is_empty());
    }

    /// Triggers as fast as the scheduler would (run_schedule 0) for `secs`
    /// of paused-clock time; returns how many FlowFiles were created.
    async fn run_for(r: &TestRunner, secs: u64) -> usize {
        let end = Instant::now() + Duration::from_secs(secs);
        let mut n = 0;
        while Instant::now() < end {
            r.run_once().await.unwrap();
            let got = r.take(SUCCESS).len();
            if got == 0 {
                // The scheduler's idle wait before triggering a bored source again.
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            n += got;
        }
        n
    }

    #[tokio::test(start_paused = true)]
    async fn rate_is_kept_with_run_schedule_zero() {
        let r = runner("rate: 20\nbatch: 1000");
        r.schedule().await.unwrap();
        // First FlowFile at once, then 20 per second: 1 + 20 * 3 over 3 s
        // (the last token may land exactly on the end).
        let n = run_for(&r, 3).await;
        assert!((60..=61).contains(&n), "{n} FlowFiles in 3 s at 20/s");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_is_kept_with_a_slow_run_schedule_and_small_batch() {
        let sched = Scheduling {
            run_schedule: Duration::from_secs(2),
            ..Scheduling::default()
        };
        let r = runner_with("rate: 50\nbatch: 1", sched);
        r.schedule().await.unwrap();
        let mut n = 0;
        // Triggered every 2 s, as the scheduler would with run_schedule 2s.
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(2)).await;
            r.run_once().await.unwrap();
            n += r.take(SUCCESS).len();
        }
        assert_eq!(n, 500, "50/s for 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn rate_does_not_burst_past_its_bucket_after_a_stall() {
        let r = runner("rate: 10");
        r.schedule().await.unwrap();
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS).len(), 1);
        // Not triggered for a minute (back-pressure): at most one second of tokens.
        tokio::time::advance(Duration::from_mins(1)).await;
        r.run_once().await.unwrap();
        assert_eq!(r.take(SUCCESS).len(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn rate_and_count_together() {
        let r = runner("rate: 100\ncount: 150");
        r.schedule().await.unwrap();
        let n = run_for(&r, 5).await;
        assert_eq!(n, 150);
    }

    #[tokio::test]
    async fn stops_at_count_in_a_running_flow() {
        let yaml = "name: gen\nprocessors:\n  gen:\n    type: GenerateFlowFile\n    properties: { count: 25, batch: 4, content: 'x{{seq}}' }\n  sink:\n    type: UpdateAttribute\n    auto_terminate: [success]\nconnections:\n  - { from: gen, relationship: success, to: sink }\n";
        let spec = parse_flow(
            yaml,
            std::path::Path::new("gen.yaml"),
            &crate::registry(),
            &|_| None,
        )
        .unwrap();
        let engine = sluice_runtime::Engine::start(spec, sluice_runtime::EngineOptions::default())
            .await
            .unwrap();
        let stats = engine.node("gen").unwrap().context().stats().clone();
        let created = || stats.flowfiles_created.load(Ordering::Relaxed);
        sluice_testkit::wait_until(Duration::from_secs(10), || created() == 25)
            .await
            .unwrap();
        // It keeps being triggered but creates nothing more.
        let invocations = stats.invocations.load(Ordering::Relaxed);
        sluice_testkit::wait_until(Duration::from_secs(10), || {
            stats.invocations.load(Ordering::Relaxed) > invocations + 2
        })
        .await
        .unwrap();
        assert_eq!(created(), 25);
        engine.shutdown(Duration::from_secs(5)).await;
    }
}
