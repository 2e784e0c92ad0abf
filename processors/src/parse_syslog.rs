//! ParseSyslog: parses syslog lines that arrived by another way (a file,
//! HTTP, Kafka) with the same parser as `ListenSyslog`.
//!
//! The content is one syslog message (RFC 5424 or RFC 3164, see
//! `syslog_parse` for the variants accepted). On success its fields become
//! attributes and the body becomes the content. A message that cannot be
//! parsed goes to `invalid` unchanged, with `syslog.error` saying why.
//!
//! ```yaml
//! parse:
//!   type: ParseSyslog
//!   properties:
//!     timezone: UTC
//! ```

use chrono::Utc;
use parking_lot::Mutex;
use sluice_runtime::{
    AttrStr, BuildContext, BuildError, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, async_trait,
};

use crate::intern::Interner;
use crate::syslog_parse::{SyslogParser, Zone, push_error};

/// Parsed messages.
pub const SUCCESS: &str = "success";
/// Content that is not a syslog message.
pub const INVALID: &str = "invalid";

const PROPERTIES: &[PropertyDescriptor] = &[PropertyDescriptor::optional(
    "timezone",
    PropKind::NonEmpty,
    Some("local"),
    "Zone of RFC 3164 timestamps, which carry none: local, UTC, or an offset like +02:00.",
)];

/// The registry entry.
pub struct ParseSyslogType;

fn zone(props: &Properties) -> Result<Zone, PropertyError> {
    let z = props.str("timezone")?;
    Zone::parse(z).map_err(|message| PropertyError {
        name: "timezone".into(),
        message,
        pos: props.raw("timezone").map(sluice_runtime::PropValue::pos),
    })
}

impl ProcessorType for ParseSyslogType {
    fn name(&self) -> &'static str {
        "ParseSyslog"
    }
    fn description(&self) -> &'static str {
        "Parses the content as one syslog message (RFC 5424 or RFC 3164): fields become syslog.* attributes, the body becomes the content; anything else goes to invalid unchanged."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "Parsed: fields as attributes, body as content."),
            RelationshipDef::new(INVALID, "Not syslog: unchanged, with syslog.error."),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        zone(props).err().into_iter().collect()
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(ParseSyslog {
            parser: SyslogParser::new(zone(props)?),
            values: Mutex::new(Interner::default()),
        }))
    }
    fn example(&self) -> &'static str {
        "timezone: UTC"
    }
}

struct ParseSyslog {
    parser: SyslogParser,
    /// Shared copies of repeated values, kept across triggers.
    values: Mutex<Interner>,
}

#[async_trait]
impl Processor for ParseSyslog {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let now = Utc::now();
        let mut attrs: Vec<(AttrStr, AttrStr)> = Vec::with_capacity(24);
        let mut values = self.values.lock();
        for mut ff in session.get_batch(ctx.scheduling().batch_size) {
            let raw = session.read(&ff)?;
            attrs.clear();
            match self.parser.parse(&raw, now, &mut values, &mut attrs) {
                Ok(body) => {
                    ff.attributes.extend(attrs.drain(..));
                    session.write(&mut ff, body);
                    session.transfer(ff, SUCCESS);
                }
                Err(e) => {
                    push_error(&e, &mut attrs);
                    ff.attributes.extend(attrs.drain(..));
                    session.transfer(ff, INVALID);
                }
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
        check_type_contract(&ParseSyslogType, &crate::registry()).unwrap();
    }

    #[test]
    fn bad_timezone_is_a_validation_error() {
        let props = Properties::from_pairs(&[("timezone", "Moon")], PROPERTIES);
        let errs = ParseSyslogType.validate(&props);
        assert_eq!(errs.len(), 1);
        assert!(errs[0].to_string().contains("`Moon` is not a time zone"));
    }

    #[tokio::test]
    async fn parses_lines_and_keeps_other_attributes() {
        let r = TestRunner::new(&ParseSyslogType, &[("timezone", "UTC")]).unwrap();
        r.enqueue(
            "<86>1 2026-03-10T08:00:00.5+01:00 bastion sshd 4321 AUTH [origin ip=\"10.1.2.3\"] Accepted key for deploy\n",
            &[("kafka.topic", "logs")],
        );
        r.enqueue("<38>Mar  1 07:00:00 bastion sudo: deploy : TTY=pts/0", &[]);
        r.enqueue("GET / HTTP/1.1", &[("kafka.topic", "logs")]);
        r.run_once().await.unwrap();
        let ok = r.take(SUCCESS);
        assert_eq!(ok.len(), 2);
        let a = &ok[0];
        assert_eq!(a.attr("kafka.topic"), Some("logs"));
        for (k, v) in [
            ("syslog.priority", "86"),
            ("syslog.severity", "6"),
            ("syslog.severity.name", "info"),
            ("syslog.facility", "10"),
            ("syslog.facility.name", "authpriv"),
            ("syslog.version", "1"),
            ("syslog.timestamp", "2026-03-10T08:00:00.500+01:00"),
            ("syslog.hostname", "bastion"),
            ("syslog.appname", "sshd"),
            ("syslog.procid", "4321"),
            ("syslog.msgid", "AUTH"),
            ("syslog.sd.origin.ip", "10.1.2.3"),
        ] {
            assert_eq!(a.attr(k), Some(v), "{k}");
        }
        assert_eq!(TestRunner::text(a), "Accepted key for deploy");
        assert_eq!(ok[1].attr("syslog.appname"), Some("sudo"));
        assert_eq!(ok[1].attr("syslog.severity.name"), Some("info"));
        assert_eq!(TestRunner::text(&ok[1]), "deploy : TTY=pts/0");
        let bad = r.take(INVALID);
        assert_eq!(bad.len(), 1);
        assert_eq!(TestRunner::text(&bad[0]), "GET / HTTP/1.1");
        assert_eq!(bad[0].attr("kafka.topic"), Some("logs"));
        assert_eq!(
            bad[0].attr("syslog.error"),
            Some("not an RFC 5424 or RFC 3164 syslog message")
        );
    }
}
