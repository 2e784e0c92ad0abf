//! LogAttribute: logs each FlowFile's attributes (and optionally content)
//! with `tracing`, then passes it on unchanged.
//!
//! One event per FlowFile at `level`, target `sluice::log_attribute`, with the
//! fields `processor`, `label` (if set), `flowfile` (id), `size`, `attributes`
//! (`name="value"` pairs, every value quoted and escaped so a newline in a
//! value cannot forge a log line) and `content` (with `include_content`; at
//! most `max_content` bytes, cut at a character boundary and marked with `…`).
//!
//! Secrets never reach the log: an attribute whose name matches one of
//! `secret_attributes` (case-insensitive `*` patterns; by default any name
//! containing password, secret, token or authorization) is written as
//! `name=<redacted>`, its value never formatted.
//!
//! ```yaml
//! log:
//!   type: LogAttribute
//!   properties:
//!     level: info
//!     attributes: ['http.*', route.name]
//!     include_content: true
//!     max_content: 256 B
//! ```

use std::fmt::Write as _;

use sluice_runtime::{
    BuildContext, BuildError, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    RelationshipDef, async_trait,
};

use crate::name_pattern::NamePatterns;

/// Every FlowFile, unchanged.
pub const SUCCESS: &str = "success";

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "level",
        PropKind::Choice(LEVELS),
        Some("info"),
        "Log level of the events.",
    ),
    PropertyDescriptor::optional(
        "label",
        PropKind::Text,
        None,
        "A label added to every event (to tell several LogAttribute processors apart).",
    ),
    PropertyDescriptor::optional(
        "attributes",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attribute names or `*` patterns to log; empty = every attribute.",
    ),
    PropertyDescriptor::optional(
        "include_content",
        PropKind::Bool,
        Some("false"),
        "Also log the content (lossy UTF-8, truncated to max_content).",
    ),
    PropertyDescriptor::optional(
        "max_content",
        PropKind::DataSize,
        Some("1 KB"),
        "Most content bytes logged per FlowFile.",
    ),
    PropertyDescriptor::optional(
        "secret_attributes",
        PropKind::ListOf(&PropKind::NonEmpty),
        Some("*password*, *secret*, *token*, *authorization*"),
        "Case-insensitive `*` patterns of attribute names whose values are never logged.",
    ),
];

/// The registry entry.
pub struct LogAttributeType;

impl ProcessorType for LogAttributeType {
    fn name(&self) -> &'static str {
        "LogAttribute"
    }
    fn description(&self) -> &'static str {
        "Logs each FlowFile's attributes (and optionally its content) as structured key=value events, redacting secret attributes, and passes it on."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new(SUCCESS, "Every FlowFile, unchanged.")]
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let level = match props.str("level")? {
            "trace" => tracing::Level::TRACE,
            "debug" => tracing::Level::DEBUG,
            "warn" => tracing::Level::WARN,
            "error" => tracing::Level::ERROR,
            _ => tracing::Level::INFO,
        };
        Ok(Box::new(LogAttribute {
            level,
            label: props.str_opt("label")?.map(str::to_string),
            attributes: NamePatterns::new(props.list("attributes")?),
            include_content: props.bool("include_content")?,
            max_content: usize::try_from(props.data_size("max_content")?).unwrap_or(usize::MAX),
            secrets: NamePatterns::ignoring_case(&props.list("secret_attributes")?),
        }))
    }
    fn example(&self) -> &'static str {
        "level: info\nattributes: ['http.*', route.name]\ninclude_content: true\nmax_content: 256 B"
    }
}

struct LogAttribute {
    level: tracing::Level,
    label: Option<String>,
    attributes: NamePatterns,
    include_content: bool,
    max_content: usize,
    secrets: NamePatterns,
}

/// Writes `s` bare when it is a plain token, else quoted and escaped.
fn push_token(out: &mut String, s: &str) {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ':'));
    if plain {
        out.push_str(s);
    } else {
        let _ = write!(out, "{s:?}");
    }
}

/// The first `max` bytes of `text`, cut at a character boundary, with `…`
/// when something was cut.
fn truncated(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut cut = max;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

impl LogAttribute {
    fn attributes_field(&self, ff: &FlowFile) -> String {
        let mut out = String::new();
        for (k, v) in ff.attributes.iter() {
            if !self.attributes.is_empty() && !self.attributes.matches(k) {
                continue;
            }
            if !out.is_empty() {
                out.push(' ');
            }
            push_token(&mut out, k);
            out.push('=');
            if self.secrets.matches(k) {
                out.push_str("<redacted>");
            } else {
                let _ = write!(out, "{v:?}");
            }
        }
        out
    }

    fn content_field(&self, session: &ProcessSession, ff: &FlowFile) -> Option<String> {
        if !self.include_content {
            return None;
        }
        Some(match session.read(ff) {
            // Read at most what is logged (plus a char's worth to cut cleanly).
            Ok(bytes) => {
                let head = &bytes[..bytes.len().min(self.max_content.saturating_add(4))];
                truncated(&String::from_utf8_lossy(head), self.max_content)
            }
            Err(e) => format!("<unreadable: {}>", e.message),
        })
    }
}

macro_rules! log_at {
    ($level:expr, $($fields:tt)*) => {
        match $level {
            tracing::Level::TRACE => tracing::event!(target: "sluice::log_attribute", tracing::Level::TRACE, $($fields)*),
            tracing::Level::DEBUG => tracing::event!(target: "sluice::log_attribute", tracing::Level::DEBUG, $($fields)*),
            tracing::Level::INFO => tracing::event!(target: "sluice::log_attribute", tracing::Level::INFO, $($fields)*),
            tracing::Level::WARN => tracing::event!(target: "sluice::log_attribute", tracing::Level::WARN, $($fields)*),
            tracing::Level::ERROR => tracing::event!(target: "sluice::log_attribute", tracing::Level::ERROR, $($fields)*),
        }
    };
}

#[async_trait]
impl Processor for LogAttribute {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        for ff in session.get_batch(ctx.scheduling().batch_size) {
            let attributes = self.attributes_field(&ff);
            let content = self.content_field(session, &ff);
            log_at!(
                self.level,
                processor = ctx.id(),
                label = self.label.as_deref(),
                flowfile = ff.id,
                size = ff.size(),
                attributes = %attributes,
                content = content.as_deref(),
                "flowfile"
            );
            session.transfer(ff, SUCCESS);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Scheduling;
    use sluice_runtime::testing::{TestRunner, check_type_contract};
    use std::sync::{Arc, Mutex};

    /// Collects formatted log lines.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs one trigger over `ffs` under a subscriber at TRACE; returns the log.
    async fn logged(yaml: &str, ffs: &[(&str, &[(&str, &str)])]) -> (String, TestRunner) {
        let props = crate::test_props(&LogAttributeType, yaml);
        let r =
            TestRunner::with_properties(&LogAttributeType, props, Scheduling::default()).unwrap();
        for (content, attrs) in ffs {
            r.enqueue(content.to_string(), attrs);
        }
        let cap = Captured::default();
        let sink = cap.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || sink.clone())
            .finish();
        {
            let _guard = tracing::subscriber::set_default(subscriber);
            r.run_once().await.unwrap();
        }
        let text = String::from_utf8(cap.0.lock().unwrap().clone()).unwrap();
        (text, r)
    }

    #[test]
    fn contract() {
        check_type_contract(&LogAttributeType, &crate::registry()).unwrap();
    }

    #[tokio::test]
    async fn logs_attributes_as_key_values_and_passes_on() {
        let (log, r) = logged(
            "label: audit",
            &[("body", &[("a", "1"), ("b", "two words")])],
        )
        .await;
        let lines: Vec<&str> = log.lines().collect();
        assert_eq!(lines.len(), 1, "{log}");
        let l = lines[0];
        assert!(l.contains(" INFO "), "{l}");
        assert!(l.contains("sluice::log_attribute"), "{l}");
        assert!(l.contains("label=\"audit\""), "{l}");
        assert!(l.contains(r#"attributes=a="1" b="two words""#), "{l}");
        assert!(l.contains("size=4"), "{l}");
        assert!(!l.contains("body"), "no content unless asked: {l}");
        let out = r.take(SUCCESS);
        assert_eq!(out.len(), 1);
        assert_eq!(TestRunner::text(&out[0]), "body");
    }

    #[tokio::test]
    async fn secrets_are_never_logged() {
        let attrs: &[(&str, &str)] = &[
            ("db.Password", "hunter2"),
            ("http.header.authorization", "Bearer abc.def"),
            ("api_token", "t0k3n"),
            ("client.secret", "shh"),
            ("user", "ann"),
        ];
        let (log, r) = logged("{}", &[("", attrs)]).await;
        for secret in ["hunter2", "abc.def", "t0k3n", "shh"] {
            assert!(!log.contains(secret), "{secret} leaked: {log}");
        }
        assert!(log.contains("db.Password=<redacted>"), "{log}");
        assert!(log.contains(r#"user="ann""#), "{log}");
        // The FlowFile itself keeps its attributes.
        assert_eq!(r.take(SUCCESS)[0].attr("db.Password"), Some("hunter2"));
        let (log, _) = logged("secret_attributes: [user]", &[("", attrs)]).await;
        assert!(
            log.contains("user=<redacted>") && log.contains("hunter2"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn attribute_filter_and_level() {
        let (log, _) = logged(
            "level: warn\nattributes: ['http.*']",
            &[("", &[("http.method", "GET"), ("other", "x")])],
        )
        .await;
        assert!(log.contains(" WARN "), "{log}");
        assert!(log.contains(r#"attributes=http.method="GET""#), "{log}");
        assert!(!log.contains("other"), "{log}");
    }

    #[tokio::test]
    async fn content_is_truncated_and_newlines_cannot_forge_lines() {
        let (log, _) = logged(
            "include_content: true\nmax_content: 10 B",
            &[("0123456789abcdef", &[("evil", "x\nINFO forged line")])],
        )
        .await;
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains(r#"content="0123456789…""#), "{log}");
        assert!(log.contains(r#"evil="x\nINFO forged line""#), "{log}");
        let (log, _) = logged("include_content: true\nmax_content: 3 B", &[("éé", &[])]).await;
        assert!(
            log.contains(r#"content="é…""#),
            "cut at a char boundary: {log}"
        );
    }
}
