//! PublishKafka: sends each FlowFile's content as one Kafka record, with the
//! topic and key from templates and headers from attributes.
//!
//! A trigger publishes its whole batch, then awaits every delivery report.
//! Only a FlowFile whose record the broker acknowledged (per `acks`) goes to
//! `success`, with `kafka.topic`, `kafka.partition` and `kafka.offset` set and
//! a SEND provenance event. A record the broker can never take (too large,
//! invalid, not authorised) sends its FlowFile to `failure` with the reason in
//! `kafka.error`. Anything else (broker down, timeouts, a full queue, a topic
//! that is not there yet) puts the FlowFile back in the queue, penalised, counts
//! it in `retries`, and yields the processor with a back-off that doubles on
//! each failed trigger in a row (from the yield duration up to a minute).
//! Meanwhile the queue fills and back-pressure reaches the source: nothing is
//! dropped. A retry after a lost acknowledgement may publish a record twice
//! (at-least-once).
//!
//! ```yaml
//! publish:
//!   type: PublishKafka
//!   properties:
//!     bootstrap_servers: 127.0.0.1:9092
//!     topic: "alerts.{{syslog.severity}}"
//!     key: "{{syslog.hostname}}"
//!     headers: [syslog.appname]
//!     header_prefix: "kafka.header."
//!     acks: all
//!     compression: lz4
//!     client_properties:
//!       security.protocol: SASL_SSL
//!       sasl.mechanism: PLAIN
//!       sasl.username: sluice
//!       sasl.password: "${env:KAFKA_PASSWORD}"
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use futures::future::join_all;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, Level, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, PropertyError, RelationshipDef, Template, async_trait,
};

use crate::kafka_client::{self, BOOTSTRAP, CLIENT_PROPERTIES, is_permanent_produce_error};

/// FlowFiles whose record the broker acknowledged.
pub const SUCCESS: &str = "success";
/// FlowFiles whose record can never be published (`kafka.error` says why).
pub const FAILURE: &str = "failure";

/// The longest back-off after failed triggers in a row.
const MAX_BACKOFF: Duration = Duration::from_mins(1);
/// Extra time past `delivery_timeout` before a missing report counts as lost.
const REPORT_GRACE: Duration = Duration::from_secs(10);

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        BOOTSTRAP,
        PropKind::NonEmpty,
        "Brokers to bootstrap from: `host:port[,host:port...]`.",
    ),
    PropertyDescriptor::required(
        "topic",
        PropKind::Template,
        "Topic to publish to (template over attributes).",
    ),
    PropertyDescriptor::optional(
        "key",
        PropKind::Template,
        None,
        "Record key (template over attributes); no key when unset or rendered empty.",
    ),
    PropertyDescriptor::optional(
        "headers",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Attributes sent as record headers of the same name (absent attributes are skipped).",
    ),
    PropertyDescriptor::optional(
        "header_prefix",
        PropKind::NonEmpty,
        None,
        "Attributes whose name starts with this are sent as headers named without it (`kafka.header.` round-trips ConsumeKafka's headers).",
    ),
    PropertyDescriptor::optional(
        "acks",
        PropKind::Choice(&["all", "1", "0"]),
        Some("all"),
        "Acknowledgement the broker gives before a record counts as delivered: all in-sync replicas, the leader, or none.",
    ),
    PropertyDescriptor::optional(
        "compression",
        PropKind::Choice(&["none", "gzip", "snappy", "lz4"]),
        Some("none"),
        "Compression of record batches.",
    ),
    PropertyDescriptor::optional(
        "delivery_timeout",
        PropKind::Duration,
        Some("30s"),
        "How long librdkafka tries to deliver a record before reporting it failed (then it is retried later).",
    ),
    PropertyDescriptor::optional(
        CLIENT_PROPERTIES,
        PropKind::MapOf(&PropKind::Text),
        None,
        "Further librdkafka producer settings (`security.protocol`, `sasl.password`, `linger.ms`...), passed through.",
    )
    .secret(),
];

/// Settings the processor owns.
const OWNED: &[&str] = &[
    "acks",
    "request.required.acks",
    "compression.type",
    "compression.codec",
    "message.timeout.ms",
    "delivery.timeout.ms",
];

/// The registry entry.
pub struct PublishKafkaType;

impl ProcessorType for PublishKafkaType {
    fn name(&self) -> &'static str {
        "PublishKafka"
    }
    fn description(&self) -> &'static str {
        "Publishes each FlowFile as a Kafka record (topic, key and headers from attributes) and routes it to success only after the broker's delivery report."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(
                SUCCESS,
                "Delivered records, with kafka.topic, kafka.partition and kafka.offset.",
            ),
            RelationshipDef::new(
                FAILURE,
                "Records the broker can never take (too large, invalid, not authorised): kafka.error.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        kafka_client::validate(props, OWNED)
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(Self::build_publisher(props, ctx)?))
    }
    fn example(&self) -> &'static str {
        "bootstrap_servers: 127.0.0.1:9092\ntopic: \"alerts.{{syslog.severity}}\"\nkey: \"{{syslog.hostname}}\"\nheaders: [syslog.appname]\nheader_prefix: \"kafka.header.\"\nacks: all\ncompression: lz4\nclient_properties:\n  linger.ms: \"5\""
    }
    fn is_external(&self) -> bool {
        true
    }
}

impl PublishKafkaType {
    fn build_publisher(props: &Properties, ctx: &BuildContext) -> Result<PublishKafka, BuildError> {
        let delivery_timeout = props.duration("delivery_timeout")?;
        let compression = props.str("compression")?;
        let config = kafka_client::config(
            props,
            &format!("sluice-{}", ctx.processor_id),
            &[
                ("acks", props.str("acks")?.to_string()),
                ("compression.type", compression.to_string()),
                (
                    "message.timeout.ms",
                    delivery_timeout.as_millis().max(1).to_string(),
                ),
            ],
        )?;
        let template = |name: &str, src: &str| {
            Template::compile(src, Escape::None)
                .map_err(|e| BuildError::Other(format!("{name}: {e}")))
        };
        Ok(PublishKafka {
            config,
            destination: format!("kafka://{}", props.str(BOOTSTRAP)?),
            topic: template("topic", props.str("topic")?)?,
            key: props
                .str_opt("key")?
                .map(|k| template("key", k))
                .transpose()?,
            headers: props.list("headers")?,
            header_prefix: props.str_opt("header_prefix")?.map(str::to_string),
            delivery_timeout,
            producer: parking_lot::Mutex::new(None),
            failed_triggers: AtomicU32::new(0),
        })
    }
}

struct PublishKafka {
    config: ClientConfig,
    /// `kafka://bootstrap`, for provenance.
    destination: String,
    topic: Template,
    key: Option<Template>,
    headers: Vec<String>,
    header_prefix: Option<String>,
    delivery_timeout: Duration,
    producer: parking_lot::Mutex<Option<Arc<FutureProducer>>>,
    failed_triggers: AtomicU32,
}

/// One FlowFile's record, rendered.
struct Outgoing {
    topic: String,
    key: Option<String>,
    headers: OwnedHeaders,
}

impl PublishKafka {
    fn render(&self, ff: &FlowFile) -> Result<Outgoing, String> {
        let topic = self
            .topic
            .render(&ff.attributes)
            .map_err(|e| format!("topic: {e}"))?;
        if topic.trim().is_empty() {
            return Err(format!(
                "topic template `{}` rendered empty",
                self.topic.source()
            ));
        }
        let key = match &self.key {
            Some(t) => Some(t.render(&ff.attributes).map_err(|e| format!("key: {e}"))?)
                .filter(|k| !k.is_empty()),
            None => None,
        };
        let mut headers = OwnedHeaders::new();
        for name in &self.headers {
            if let Some(v) = ff.attr(name) {
                headers = headers.insert(Header {
                    key: name,
                    value: Some(v),
                });
            }
        }
        if let Some(prefix) = &self.header_prefix {
            for (name, v) in ff.attributes.iter() {
                if let Some(short) = name.strip_prefix(prefix.as_str())
                    && !short.is_empty()
                {
                    headers = headers.insert(Header {
                        key: short,
                        value: Some(v),
                    });
                }
            }
        }
        Ok(Outgoing {
            topic: topic.trim().to_string(),
            key,
            headers,
        })
    }

    fn producer(&self) -> Result<Arc<FutureProducer>, ProcessError> {
        self.producer
            .lock()
            .clone()
            .ok_or_else(|| ProcessError::new("producer not started (on_scheduled did not run)"))
    }
}

fn fail(ctx: &ProcessContext, session: &mut ProcessSession, mut ff: FlowFile, why: String) {
    ctx.bulletin(
        Level::Warn,
        format!("FlowFile {} not publishable: {why}", ff.id),
    );
    ff.attributes.insert("kafka.error", why);
    session.transfer(ff, FAILURE);
}

#[async_trait]
impl Processor for PublishKafka {
    async fn on_scheduled(&self, _ctx: &ProcessContext) -> Result<(), ProcessError> {
        let producer: FutureProducer = self
            .config
            .create()
            .map_err(|e| ProcessError::new(format!("creating the Kafka producer: {e}")))?;
        *self.producer.lock() = Some(Arc::new(producer));
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let producer = self.producer()?;
        let batch = session.get_batch(ctx.scheduling().batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let mut inflight = Vec::with_capacity(batch.len());
        let mut retry: Vec<(FlowFile, String)> = Vec::new();
        for ff in batch {
            let out = match self.render(&ff) {
                Ok(o) => o,
                Err(why) => {
                    fail(ctx, session, ff, why);
                    continue;
                }
            };
            let payload = session.read(&ff)?;
            let mut record = FutureRecord::<str, [u8]>::to(&out.topic)
                .payload(&payload[..])
                .headers(out.headers);
            if let Some(k) = &out.key {
                record = record.key(k.as_str());
            }
            match producer.send_result(record) {
                Ok(report) => inflight.push((ff, out.topic, report)),
                Err((e, _)) if is_permanent_produce_error(&e) => {
                    fail(ctx, session, ff, e.to_string());
                }
                Err((e, _)) => retry.push((ff, e.to_string())),
            }
        }
        let (flowfiles, reports): (Vec<_>, Vec<_>) =
            inflight.into_iter().map(|(ff, t, r)| ((ff, t), r)).unzip();
        // librdkafka reports every record within `delivery_timeout`; the grace
        // covers a wedged client. A report that never came may still mean a
        // delivered record: retrying then risks a duplicate, never a loss.
        let reports = tokio::time::timeout(self.delivery_timeout + REPORT_GRACE, join_all(reports))
            .await
            .ok();
        for (i, (mut ff, topic)) in flowfiles.into_iter().enumerate() {
            match reports.as_ref().map(|r| &r[i]) {
                Some(Ok(Ok(delivery))) => {
                    ff.attributes.insert("kafka.topic", topic.as_str());
                    ff.attributes
                        .insert("kafka.partition", delivery.partition.to_string());
                    ff.attributes
                        .insert("kafka.offset", delivery.offset.to_string());
                    session.send(&ff, &format!("{}/{topic}", self.destination));
                    session.transfer(ff, SUCCESS);
                }
                Some(Ok(Err((e, _)))) if is_permanent_produce_error(e) => {
                    fail(ctx, session, ff, e.to_string());
                }
                Some(Ok(Err((e, _)))) => retry.push((ff, e.to_string())),
                Some(Err(_)) => retry.push((ff, "the producer went away before reporting".into())),
                None => retry.push((ff, "no delivery report in time".into())),
            }
        }
        if retry.is_empty() {
            self.failed_triggers.store(0, Ordering::Relaxed);
            return Ok(());
        }
        let n = retry.len();
        let first = retry[0].1.clone();
        for (ff, _) in retry {
            session.requeue(vec![ff], true);
        }
        ctx.counter("retries")
            .fetch_add(n as u64, Ordering::Relaxed);
        let in_a_row = self.failed_triggers.fetch_add(1, Ordering::Relaxed).min(16);
        let backoff = ctx
            .scheduling()
            .yield_duration
            .max(Duration::from_millis(10))
            .saturating_mul(1 << in_a_row)
            .min(MAX_BACKOFF);
        ctx.bulletin(
            Level::Warn,
            format!("{n} record(s) not delivered, retrying in {backoff:?}: {first}"),
        );
        ctx.yield_for(backoff);
        Ok(())
    }

    async fn on_stopped(&self, _ctx: &ProcessContext) {
        let producer = self.producer.lock().take();
        if let Some(p) = producer {
            // Whatever is still queued in the client was not reported, so its
            // FlowFiles were requeued: flushing only avoids a needless resend.
            let _ = tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(5))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::Headers;
    use sluice_runtime::testing::{TestRunner, check_type_contract};
    use sluice_runtime::{Attributes, Scheduling};

    #[test]
    fn contract() {
        check_type_contract(&PublishKafkaType, &crate::registry()).unwrap();
    }

    /// Nothing listens on port 9 (discard) on loopback: no broker at all.
    const NO_BROKER: &str = "bootstrap_servers: 127.0.0.1:9\n";

    #[test]
    fn renders_topic_key_and_headers_from_attributes() {
        let yaml = format!(
            "{NO_BROKER}topic: \"alerts.{{{{sev}}}}\"\nkey: \"{{{{host}}}}\"\nheaders: [app, missing]\nheader_prefix: \"kafka.header.\"\n"
        );
        let props = crate::test_props(&PublishKafkaType, &yaml);
        let p = PublishKafkaType::build_publisher(&props, &BuildContext::default()).unwrap();
        let mut ff = FlowFile::new();
        ff.attributes = [
            ("sev", "3"),
            ("host", "web-1"),
            ("app", "sshd"),
            ("kafka.header.trace", "abc"),
            ("other", "x"),
        ]
        .into_iter()
        .collect::<Attributes>();
        let out = p.render(&ff).unwrap();
        assert_eq!(out.topic, "alerts.3");
        assert_eq!(out.key.as_deref(), Some("web-1"));
        let headers: Vec<(String, Option<Vec<u8>>)> = out
            .headers
            .iter()
            .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            headers,
            [
                ("app".to_string(), Some(b"sshd".to_vec())),
                ("trace".to_string(), Some(b"abc".to_vec())),
            ]
        );
        ff.attributes.remove("host");
        assert_eq!(p.render(&ff).unwrap().key, None, "an empty key is no key");
        ff.attributes.remove("sev");
        let yaml = format!("{NO_BROKER}topic: \"{{{{t}}}}\"\n");
        let p = PublishKafkaType::build_publisher(
            &crate::test_props(&PublishKafkaType, &yaml),
            &BuildContext::default(),
        )
        .unwrap();
        assert!(p.render(&ff).err().unwrap().contains("rendered empty"));
    }

    fn runner(yaml: &str) -> TestRunner {
        let props = crate::test_props(&PublishKafkaType, yaml);
        let scheduling = Scheduling {
            yield_duration: Duration::from_millis(100),
            ..Scheduling::default()
        };
        TestRunner::with_properties(&PublishKafkaType, props, scheduling).unwrap()
    }

    #[tokio::test]
    async fn unpublishable_records_go_to_failure_at_once_with_the_reason() {
        let yaml = format!(
            "{NO_BROKER}topic: \"{{{{t}}}}\"\nclient_properties:\n  message.max.bytes: \"1000\"\n"
        );
        let r = runner(&yaml);
        r.schedule().await.unwrap();
        r.enqueue(vec![b'x'; 5000], &[("t", "big")]);
        r.enqueue("no topic", &[]);
        r.run_once().await.unwrap();
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 2);
        let reasons: Vec<_> = failed
            .iter()
            .map(|f| f.attr("kafka.error").unwrap())
            .collect();
        assert!(reasons[0].contains("too large"), "{reasons:?}");
        assert!(reasons[1].contains("rendered empty"), "{reasons:?}");
        assert_eq!(r.input_queued(), 0);
        r.processor.on_stopped(&r.ctx).await;
    }

    #[tokio::test]
    async fn an_unreachable_broker_requeues_penalised_and_counts_retries() {
        let yaml = format!("{NO_BROKER}topic: t\ndelivery_timeout: 300ms\n");
        let r = runner(&yaml);
        r.schedule().await.unwrap();
        r.enqueue("a", &[]);
        r.enqueue("b", &[]);
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        assert!(r.take(FAILURE).is_empty());
        assert_eq!(r.input_queued(), 2, "both back in the queue");
        assert_eq!(r.ctx.counter("retries").load(Ordering::Relaxed), 2);
        let last = r.ctx.stats().bulletins();
        assert!(
            last.iter()
                .any(|b| b.message.contains("2 record(s) not delivered")),
            "{last:?}"
        );
        r.run_once().await.unwrap();
        assert_eq!(
            r.ctx.counter("retries").load(Ordering::Relaxed),
            2,
            "penalised: not retried at once"
        );
        r.processor.on_stopped(&r.ctx).await;
    }
}
