//! ListenSyslog: receives syslog over UDP, TCP or TLS and emits one FlowFile
//! per message, parsed (RFC 5424 / RFC 3164, see `syslog_parse`).
//!
//! On TCP and TLS both framings of RFC 6587 are accepted and detected per
//! message (see `framing`). Each FlowFile gets `syslog.sender` (the sender's
//! IP address), `syslog.port` (the port it arrived on), `syslog.protocol`
//! (`udp`, `tcp` or `tls`) and the parsed fields; the body is the content.
//! A message that cannot be parsed goes to `invalid` with its raw bytes and
//! `syslog.error`.
//!
//! A message above `max_message_size` is, by `oversize`:
//! - `truncate`: cut to `max_message_size`, parsed, and marked
//!   `syslog.truncated: true` with `syslog.original.size`; counted in
//!   `oversize.truncated`;
//! - `invalid`: sent to `invalid` whole, with `syslog.error` and
//!   `syslog.original.size`; counted in `oversize.invalid`. "Whole" holds up
//!   to 16 times `max_message_size`, so one sender cannot exhaust memory;
//!   beyond that the tail is cut (`syslog.original.size` still tells).
//!
//! Back-pressure: messages wait in a channel of `queue_size` messages. When
//! the flow is full, TCP connections stop being read (the sender blocks, the
//! kernel keeps the rest) and UDP datagrams are dropped and counted in
//! `udp.dropped`. Other counters: `senders.rejected` (not on the allow-list),
//! `connections.refused` (over `max_connections`), `connections.idle_closed`,
//! `connections.open`, `tls.handshake_failed`.
//!
//! Messages read but still in the channel when the flow stops are lost (the
//! sender saw them written); stop the senders first to avoid that.
//!
//! ```yaml
//! syslog:
//!   type: ListenSyslog
//!   properties:
//!     protocol: tls
//!     port: 6514
//!     tls_certificate: /etc/sluice/syslog.crt
//!     tls_private_key: /etc/sluice/syslog.key
//!     allowed_senders: [10.0.0.0/8, 192.168.1.7]
//!     max_message_size: 16 KiB
//!     oversize: invalid
//! ```

mod framing;
mod net;
mod tls;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::FutureExt;
use ipnet::IpNet;
use parking_lot::Mutex;
use sluice_runtime::{
    AttrStr, Attributes, BuildContext, BuildError, Content, InputRequirement, ProcessContext,
    ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, PropertyError, RelationshipDef, async_trait, compare_keys,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::intern::Interner;
use crate::syslog_parse::{KEYS, SyslogParser, Zone, push_error};
use net::{Counters, Received, Settings, Shared};

/// Parsed messages.
pub const SUCCESS: &str = "success";
/// Messages that are not syslog, or oversize with `oversize: invalid`.
pub const INVALID: &str = "invalid";

/// How much of an oversize message `oversize: invalid` keeps, in multiples of
/// `max_message_size`.
const INVALID_KEEP_FACTOR: usize = 16;
/// Largest accepted `max_message_size`.
const MAX_MESSAGE_LIMIT: u64 = 16 * 1024 * 1024;

const PROTOCOLS: &[&str] = &["udp", "tcp", "tls"];
const OVERSIZE: &[&str] = &["truncate", "invalid"];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "protocol",
        PropKind::Choice(PROTOCOLS),
        Some("tcp"),
        "udp, tcp, or tls (TCP with TLS, RFC 5425).",
    ),
    PropertyDescriptor::required(
        "port",
        PropKind::Integer { min: 0, max: 65535 },
        "Port to listen on.",
    ),
    PropertyDescriptor::optional(
        "bind",
        PropKind::NonEmpty,
        Some("0.0.0.0"),
        "Address to listen on (0.0.0.0 for every IPv4 interface, :: for IPv6).",
    ),
    PropertyDescriptor::optional(
        "max_message_size",
        PropKind::DataSize,
        Some("8 KiB"),
        "Largest message accepted as it is; see `oversize` for larger ones.",
    ),
    PropertyDescriptor::optional(
        "oversize",
        PropKind::Choice(OVERSIZE),
        Some("truncate"),
        "What happens to a larger message: truncate (cut, parsed, marked syslog.truncated) or invalid (sent whole to `invalid`). Counted either way.",
    ),
    PropertyDescriptor::optional(
        "max_connections",
        PropKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        Some("10000"),
        "Most TCP/TLS connections open at once; more are closed at once and counted in connections.refused.",
    ),
    PropertyDescriptor::optional(
        "idle_timeout",
        PropKind::Duration,
        Some("5m"),
        "A TCP/TLS connection that sends nothing for this long is closed (0 = never).",
    ),
    PropertyDescriptor::optional(
        "allowed_senders",
        PropKind::ListOf(&PropKind::NonEmpty),
        None,
        "Networks (10.0.0.0/8) or addresses allowed to send; others are refused and counted in senders.rejected. Empty = everyone.",
    ),
    PropertyDescriptor::optional(
        "nul_delimiter",
        PropKind::Bool,
        Some("false"),
        "On TCP, a NUL byte also ends a message (some senders use it instead of LF).",
    ),
    PropertyDescriptor::optional(
        "queue_size",
        PropKind::Integer {
            min: 1,
            max: 10_000_000,
        },
        Some("10000"),
        "Messages held between the sockets and the flow; when full, TCP stops reading and UDP drops.",
    ),
    PropertyDescriptor::optional(
        "timezone",
        PropKind::NonEmpty,
        Some("local"),
        "Zone of RFC 3164 timestamps, which carry none: local, UTC, or an offset like +02:00.",
    ),
    PropertyDescriptor::optional(
        "parse",
        PropKind::Bool,
        Some("true"),
        "Parse each message into syslog.* attributes (body as content); false forwards the raw message as the content with only the sender attributes (an edge that publishes raw syslog for ParseSyslog further on).",
    ),
    PropertyDescriptor::optional(
        "tls_certificate",
        PropKind::NonEmpty,
        None,
        "PEM file with the server certificate chain (protocol tls).",
    ),
    PropertyDescriptor::optional(
        "tls_private_key",
        PropKind::NonEmpty,
        None,
        "PEM file with the server's private key (protocol tls).",
    ),
    PropertyDescriptor::optional(
        "tls_client_ca",
        PropKind::NonEmpty,
        None,
        "PEM file of CA certificates: when set, clients must present a certificate signed by one of them.",
    ),
];

/// The registry entry.
pub struct ListenSyslogType;

/// The validated settings.
struct Config {
    protocol: &'static str,
    addr: SocketAddr,
    max_message: usize,
    oversize_invalid: bool,
    max_connections: usize,
    idle_timeout: Option<Duration>,
    allowed: Vec<IpNet>,
    nul_delimiter: bool,
    queue_size: usize,
    zone: Zone,
    parse: bool,
}

fn perr(name: &str, message: impl Into<String>, props: &Properties) -> PropertyError {
    PropertyError {
        name: name.to_string(),
        message: message.into(),
        pos: props.raw(name).map(sluice_runtime::PropValue::pos),
    }
}

/// Parses `10.0.0.0/8` or a single address.
fn parse_net(s: &str) -> Result<IpNet, String> {
    let t = s.trim();
    t.parse::<IpNet>()
        .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{s}` is not a network (10.0.0.0/8) or an address"))
}

fn config(props: &Properties) -> Result<Config, Vec<PropertyError>> {
    let mut errs = Vec::new();
    let protocol = match props.str("protocol") {
        Ok("udp") => "udp",
        Ok("tls") => "tls",
        Ok(_) => "tcp",
        Err(e) => {
            errs.push(e);
            "tcp"
        }
    };
    let port = props
        .int("port")
        .map_err(|e| errs.push(e))
        .ok()
        .and_then(|p| u16::try_from(p).ok())
        .unwrap_or(0);
    let ip = match props.str("bind") {
        Ok(b) => b.trim().parse::<IpAddr>().unwrap_or_else(|_| {
            errs.push(perr("bind", format!("`{b}` is not an IP address"), props));
            IpAddr::from([0, 0, 0, 0])
        }),
        Err(e) => {
            errs.push(e);
            IpAddr::from([0, 0, 0, 0])
        }
    };
    let max_message = match props.data_size("max_message_size") {
        Ok(0) => {
            errs.push(perr("max_message_size", "must be above 0", props));
            1
        }
        Ok(n) if n > MAX_MESSAGE_LIMIT => {
            errs.push(perr("max_message_size", "must be at most 16 MiB", props));
            1
        }
        Ok(n) => usize::try_from(n).unwrap_or(1),
        Err(e) => {
            errs.push(e);
            1
        }
    };
    let oversize_invalid = props.str("oversize").is_ok_and(|s| s == "invalid");
    let max_connections = props
        .usize("max_connections")
        .map_err(|e| errs.push(e))
        .unwrap_or(1);
    let idle_timeout = props
        .duration("idle_timeout")
        .map_err(|e| errs.push(e))
        .ok()
        .filter(|d| !d.is_zero());
    let mut allowed = Vec::new();
    match props.list("allowed_senders") {
        Ok(list) => {
            for s in list {
                match parse_net(&s) {
                    Ok(n) => allowed.push(n),
                    Err(m) => errs.push(perr("allowed_senders", m, props)),
                }
            }
        }
        Err(e) => errs.push(e),
    }
    let nul_delimiter = props
        .bool("nul_delimiter")
        .map_err(|e| errs.push(e))
        .unwrap_or(false);
    let queue_size = props
        .usize("queue_size")
        .map_err(|e| errs.push(e))
        .unwrap_or(1);
    let zone = match props.str("timezone") {
        Ok(z) => Zone::parse(z).unwrap_or_else(|m| {
            errs.push(perr("timezone", m, props));
            Zone::Local
        }),
        Err(e) => {
            errs.push(e);
            Zone::Local
        }
    };
    let parse = props
        .bool("parse")
        .map_err(|e| errs.push(e))
        .unwrap_or(true);
    let has = |n: &str| matches!(props.str_opt(n), Ok(Some(_)));
    if protocol == "tls" {
        for n in ["tls_certificate", "tls_private_key"] {
            if !has(n) {
                errs.push(perr(n, "is required with protocol tls", props));
            }
        }
    } else {
        for n in ["tls_certificate", "tls_private_key", "tls_client_ca"] {
            if has(n) {
                errs.push(perr(
                    n,
                    format!("only applies with protocol tls, not {protocol}"),
                    props,
                ));
            }
        }
    }
    if errs.is_empty() {
        Ok(Config {
            protocol,
            addr: SocketAddr::new(ip, port),
            max_message,
            oversize_invalid,
            max_connections,
            idle_timeout,
            allowed,
            nul_delimiter,
            queue_size,
            zone,
            parse,
        })
    } else {
        Err(errs)
    }
}

impl ProcessorType for ListenSyslogType {
    fn name(&self) -> &'static str {
        "ListenSyslog"
    }
    fn description(&self) -> &'static str {
        "Receives syslog (RFC 5424 and RFC 3164) over UDP, TCP or TLS, one FlowFile per message with the parsed fields as attributes and the body as content; pushes back on TCP senders when the flow is full."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(
                SUCCESS,
                "Parsed messages: fields as attributes, body as content.",
            ),
            RelationshipDef::new(
                INVALID,
                "Messages that are not syslog (or oversize with `oversize: invalid`): raw bytes, sender attributes and syslog.error.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        config(props).err().unwrap_or_default()
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let cfg = config(props)?;
        let tls = if cfg.protocol == "tls" {
            let path = |n: &str| -> Result<Option<PathBuf>, BuildError> {
                Ok(props.str_opt(n)?.map(|p| ctx.base_dir.join(p)))
            };
            let (Some(cert), Some(key)) = (path("tls_certificate")?, path("tls_private_key")?)
            else {
                return Err(BuildError::Other(
                    "protocol tls needs tls_certificate and tls_private_key".into(),
                ));
            };
            let ca = path("tls_client_ca")?;
            Some(tls::acceptor(&cert, &key, ca.as_deref()).map_err(BuildError::Other)?)
        } else {
            None
        };
        let keep = if cfg.oversize_invalid {
            cfg.max_message.saturating_mul(INVALID_KEEP_FACTOR)
        } else {
            cfg.max_message
        };
        let settings = Arc::new(Settings {
            max_message: cfg.max_message,
            keep,
            nul_delimits: cfg.nul_delimiter,
            idle_timeout: cfg.idle_timeout,
            max_connections: cfg.max_connections,
            allowed: cfg.allowed.clone(),
            tls,
        });
        Ok(Box::new(ListenSyslog {
            parser: SyslogParser::new(cfg.zone),
            cfg,
            settings,
            state: Mutex::new(None),
        }))
    }
    fn example(&self) -> &'static str {
        "protocol: tcp\nport: 5514\nbind: 127.0.0.1\nallowed_senders: [127.0.0.0/8, 10.0.0.0/8]\nmax_message_size: 16 KiB\noversize: invalid\nidle_timeout: 2m"
    }
}

/// What exists while the processor is scheduled.
struct Running {
    rx: mpsc::Receiver<Received>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
    port: AttrStr,
    protocol: AttrStr,
    truncated: Arc<AtomicU64>,
    oversize_invalid: Arc<AtomicU64>,
    /// Kept across triggers (its interned values above all).
    scratch: Scratch,
    /// Messages taken from the channel for one trigger (capacity kept).
    taken: Vec<Received>,
}

struct ListenSyslog {
    cfg: Config,
    settings: Arc<Settings>,
    parser: SyslogParser,
    state: Mutex<Option<Running>>,
}

impl ListenSyslog {
    /// One message as a FlowFile on its relationship. `scratch` is reused
    /// from message to message.
    fn emit(
        &self,
        m: Received,
        run: &Running,
        now: chrono::DateTime<Utc>,
        scratch: &mut Scratch,
        session: &mut ProcessSession,
    ) {
        let k = &*KEYS;
        let Scratch { attrs, own, values } = scratch;
        attrs.clear();
        own.clear();
        own.push((k.sender.clone(), m.peer.sender.clone()));
        own.push((k.port.clone(), run.port.clone()));
        own.push((k.protocol.clone(), run.protocol.clone()));
        let oversize = m.original_len > self.cfg.max_message;
        if oversize {
            own.push((
                k.original_size.clone(),
                AttrStr::from(m.original_len.to_string()),
            ));
        }
        let (rel, content) = if oversize && self.cfg.oversize_invalid {
            run.oversize_invalid.fetch_add(1, Ordering::Relaxed);
            own.push((
                k.error.clone(),
                AttrStr::from(format!(
                    "message of {} bytes is above max_message_size ({} bytes)",
                    m.original_len, self.cfg.max_message
                )),
            ));
            (INVALID, m.data)
        } else {
            let mut data = m.data;
            if oversize {
                run.truncated.fetch_add(1, Ordering::Relaxed);
                own.push((k.truncated.clone(), AttrStr::constant("true")));
                data.truncate(self.cfg.max_message);
            }
            if self.cfg.parse {
                match self.parser.parse(&data, now, values, attrs) {
                    Ok(body) => (SUCCESS, body),
                    Err(e) => {
                        push_error(&e, attrs);
                        (INVALID, data)
                    }
                }
            } else {
                (SUCCESS, data)
            }
        };
        // The parser gives its fields in key order; the listener's own go in
        // their places, so the map is built without a sort.
        for (key, value) in own.drain(..) {
            let at = attrs.partition_point(|(k, _)| compare_keys(k, &key).is_lt());
            attrs.insert(at, (key, value));
        }
        let mut ff = session.receive(&m.peer.uri);
        ff.attributes = Attributes::from_drain(attrs);
        ff.content = Content::Memory(content);
        session.transfer(ff, rel);
    }
}

/// Reused buffers for the attributes of one message.
#[derive(Default)]
struct Scratch {
    /// Parsed fields, then all of them in key order.
    attrs: Vec<(AttrStr, AttrStr)>,
    /// The listener's own attributes (sender, port, protocol, oversize).
    own: Vec<(AttrStr, AttrStr)>,
    /// Shared copies of repeated values (host and app names...).
    values: Interner,
}

#[async_trait]
impl Processor for ListenSyslog {
    async fn on_scheduled(&self, ctx: &ProcessContext) -> Result<(), ProcessError> {
        let (tx, rx) = mpsc::channel(self.cfg.queue_size);
        let cancel = ctx.shutdown().child_token();
        let shared = Arc::new(Shared {
            settings: self.settings.clone(),
            tx,
            wake: ctx.waker(),
            cancel: cancel.clone(),
            counters: Counters::new(ctx),
        });
        let started = if self.cfg.protocol == "udp" {
            net::start_udp(self.cfg.addr, shared).await
        } else {
            net::start_tcp(self.cfg.addr, shared).await
        };
        let (local, task) = started.map_err(|e| {
            ProcessError::new(format!(
                "cannot listen for syslog on {} {}: {e}",
                self.cfg.protocol, self.cfg.addr
            ))
        })?;
        tracing::info!(processor = ctx.id(), protocol = self.cfg.protocol, address = %local, "listening for syslog");
        *self.state.lock() = Some(Running {
            rx,
            cancel,
            task,
            port: AttrStr::constant(&local.port().to_string()),
            protocol: AttrStr::constant(self.cfg.protocol),
            truncated: ctx.counter("oversize.truncated"),
            oversize_invalid: ctx.counter("oversize.invalid"),
            scratch: Scratch::default(),
            taken: Vec::new(),
        });
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        if ctx.is_back_pressured() {
            return Ok(());
        }
        let now = Utc::now();
        let mut guard = self.state.lock();
        let Some(run) = guard.as_mut() else {
            return Ok(());
        };
        let mut scratch = std::mem::take(&mut run.scratch);
        let mut taken = std::mem::take(&mut run.taken);
        take_ready(&mut run.rx, &mut taken, ctx.scheduling().batch_size);
        for m in taken.drain(..) {
            self.emit(m, run, now, &mut scratch, session);
        }
        run.taken = taken;
        run.scratch = scratch;
        Ok(())
    }

    async fn on_stopped(&self, _ctx: &ProcessContext) {
        let running = self.state.lock().take();
        if let Some(r) = running {
            r.cancel.cancel();
            let _ = r.task.await;
        }
    }
}

/// Moves up to `limit` waiting messages into `into`, without waiting. Taken
/// as a run: the channel's room is given back once for all of them, not per
/// message (its counter is shared with the connections' tasks on the other
/// core). Unconstrained: with the task's cooperative budget spent, `recv_many`
/// would answer "not ready" and wake a waker that is dropped here, and a full
/// channel (its senders blocked, nobody to wake the listener) would wait for
/// the runtime's idle timer.
fn take_ready<T>(rx: &mut mpsc::Receiver<T>, into: &mut Vec<T>, limit: usize) -> usize {
    tokio::task::unconstrained(rx.recv_many(into, limit.max(1)))
        .now_or_never()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
