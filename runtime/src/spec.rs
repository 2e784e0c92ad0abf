//! Flow files: YAML -> a validated flow, with every error at once.
//!
//! ```yaml
//! name: http-to-files
//! defaults:
//!   back_pressure: { max_count: 10000, max_bytes: 1 GB }
//!   scheduling: { batch_size: 500 }
//! processors:
//!   listen:
//!     type: ListenHTTP
//!     properties: { port: 8081 }
//!   tag:
//!     type: UpdateAttribute
//!     properties:
//!       set: { env: prod }
//!   save:
//!     type: PutFile
//!     properties: { directory: /var/spool/sluice }
//!     auto_terminate: [success, failure]
//! connections:
//!   - { from: listen, relationship: success, to: tag }
//!   - { from: tag, relationship: success, to: save, back_pressure: { max_count: 500 } }
//!   # past its thresholds, swap to disk instead of blocking `tag`:
//!   # - { from: tag, relationship: success, to: save, when_full: spill, spill: { max_disk: 10 GB } }
//! ```
//!
//! Scalars may reference the environment: `${env:NAME}` or
//! `${env:NAME:-default}`. The file's text, not the substituted value, is what
//! the API and logs show.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::connection::{ConnectionSettings, Prioritizer, SpillSettings, WhenFull};
use crate::expr::Predicate;
use crate::processor::{InputRequirement, ProcessorType, RelationshipDef, Scheduling};
use crate::properties::{
    PropKind, PropValue, Properties, PropertyDescriptor, Scalar, parse_bool, parse_data_size,
    parse_duration,
};
use crate::registry::{Registry, suggest};
use crate::template::{Escape, Template};
pub use crate::yaml::Pos;
use crate::yaml::{self, Node, Value};

/// One problem in a flow file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    /// File as given.
    pub file: String,
    /// Where.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: error: {}",
            self.file, self.pos.line, self.pos.column, self.message
        )?;
        if let Some(h) = &self.hint {
            write!(f, "\n  hint: {h}")?;
        }
        Ok(())
    }
}

/// Every problem found in one or more flow files.
#[derive(Debug, thiserror::Error)]
pub struct FlowErrors(pub Vec<Diagnostic>);

impl fmt::Display for FlowErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        write!(
            f,
            "\n{} error{} found; the flow was not started",
            self.0.len(),
            if self.0.len() == 1 { "" } else { "s" }
        )
    }
}

/// A validated processor.
#[derive(Clone)]
pub struct ProcessorSpec {
    /// Id in the flow.
    pub id: String,
    /// Where it is declared.
    pub pos: Pos,
    /// Its type.
    pub kind: Arc<dyn ProcessorType>,
    /// Validated properties (defaults filled in).
    pub properties: Properties,
    /// Scheduling.
    pub scheduling: Scheduling,
    /// Relationships whose FlowFiles are dropped.
    pub auto_terminate: BTreeSet<String>,
    /// Relationships its type declares for these properties.
    pub relationships: Vec<RelationshipDef>,
}

impl fmt::Debug for ProcessorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessorSpec")
            .field("id", &self.id)
            .field("type", &self.kind.name())
            .field("scheduling", &self.scheduling)
            .finish_non_exhaustive()
    }
}

/// A validated connection.
#[derive(Clone, Debug)]
pub struct ConnectionSpec {
    /// Stable id: `name`, or `from.rel->to`.
    pub id: String,
    /// Upstream processor id.
    pub from: String,
    /// Relationships it carries.
    pub relationships: Vec<String>,
    /// Downstream processor id.
    pub to: String,
    /// Queue settings.
    pub settings: ConnectionSettings,
    /// Where it is declared.
    pub pos: Pos,
}

/// A validated flow.
#[derive(Clone, Debug)]
pub struct FlowSpec {
    /// Flow name.
    pub name: String,
    /// Description (the file's `description:`).
    pub description: String,
    /// The file it came from.
    pub path: PathBuf,
    /// The file's text.
    pub source: String,
    /// Processors in file order.
    pub processors: Vec<ProcessorSpec>,
    /// Connections in file order.
    pub connections: Vec<ConnectionSpec>,
    /// Provenance events kept in memory.
    pub provenance_capacity: usize,
}

impl FlowSpec {
    /// The processor of this id.
    #[must_use]
    pub fn processor(&self, id: &str) -> Option<&ProcessorSpec> {
        self.processors.iter().find(|p| p.id == id)
    }
}

/// Reads and validates a flow file.
///
/// # Errors
/// The file cannot be read or is not a valid flow; every problem is listed.
pub fn load_flow(path: &Path, registry: &Registry) -> Result<FlowSpec, FlowErrors> {
    let label = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        FlowErrors(vec![Diagnostic {
            file: label.clone(),
            pos: Pos::default(),
            message: format!("cannot read flow file: {e}"),
            hint: None,
        }])
    })?;
    parse_flow(&text, path, registry, &|k| std::env::var(k).ok())
}

struct Ctx<'a> {
    file: String,
    diags: Vec<Diagnostic>,
    env: &'a dyn Fn(&str) -> Option<String>,
}

impl Ctx<'_> {
    fn err(&mut self, pos: Pos, message: impl Into<String>, hint: Option<String>) {
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            pos,
            message: message.into(),
            hint,
        });
    }

    fn unknown_key(&mut self, key: &Node, what: &str, known: &[&str]) {
        let name = key.scalar_text().unwrap_or_default();
        let hint = suggest(&name, known.iter().copied()).map_or_else(
            || Some(format!("known keys: {}", known.join(", "))),
            |s| Some(format!("did you mean `{s}`?")),
        );
        self.err(key.pos, format!("unknown key `{name}` in {what}"), hint);
    }

    /// `${env:NAME}` / `${env:NAME:-default}` substitution.
    fn substitute(&mut self, raw: &str, pos: Pos) -> String {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(start) = rest.find("${env:") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 6..];
            let Some(end) = after.find('}') else {
                self.err(
                    pos,
                    "unclosed `${env:` reference",
                    Some("write ${env:NAME}".into()),
                );
                return raw.to_string();
            };
            let inner = &after[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            match ((self.env)(name), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => self.err(
                    pos,
                    format!("environment variable `{name}` is not set"),
                    Some(format!(
                        "export {name}=... before starting, or write ${{env:{name}:-default}}"
                    )),
                ),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        out
    }

    fn scalar(&mut self, n: &Node, what: &str) -> Option<Scalar> {
        if let Some(raw) = n.scalar_text() {
            let value = self.substitute(&raw, n.pos);
            Some(Scalar {
                value,
                raw,
                pos: n.pos,
            })
        } else {
            self.err(
                n.pos,
                format!("{what} must be a single value, found {}", n.kind_name()),
                None,
            );
            None
        }
    }

    fn string(&mut self, n: &Node, what: &str) -> Option<String> {
        self.scalar(n, what).map(|s| s.value)
    }

    fn map<'n>(&mut self, n: &'n Node, what: &str) -> &'n [(Node, Node)] {
        match &n.value {
            Value::Map(m) => m,
            Value::Null => &[],
            _ => {
                self.err(
                    n.pos,
                    format!("{what} must be a mapping, found {}", n.kind_name()),
                    None,
                );
                &[]
            }
        }
    }

    fn parse_with<T>(
        &mut self,
        n: &Node,
        what: &str,
        f: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(n, what)?;
        match f(&s) {
            Ok(v) => Some(v),
            Err(m) => {
                self.err(n.pos, format!("{what}: {m}"), None);
                None
            }
        }
    }

    fn count(&mut self, n: &Node, what: &str, min: u64) -> Option<u64> {
        self.parse_with(n, what, |s| {
            s.trim()
                .replace('_', "")
                .parse::<u64>()
                .ok()
                .filter(|v| *v >= min)
                .ok_or_else(|| format!("`{s}` is not a whole number >= {min}"))
        })
    }
}

const TOP_KEYS: &[&str] = &[
    "name",
    "description",
    "defaults",
    "processors",
    "connections",
];
const DEFAULT_KEYS: &[&str] = &["back_pressure", "scheduling", "provenance_events"];
const PROC_KEYS: &[&str] = &[
    "type",
    "properties",
    "scheduling",
    "auto_terminate",
    "description",
];
const SCHED_KEYS: &[&str] = &[
    "concurrent_tasks",
    "batch_size",
    "run_schedule",
    "penalty",
    "yield",
];
const BP_KEYS: &[&str] = &["max_count", "max_bytes"];
const CONN_KEYS: &[&str] = &[
    "name",
    "from",
    "relationship",
    "relationships",
    "to",
    "back_pressure",
    "when_full",
    "shed",
    "spill",
    "prioritizer",
    "expiration",
];
const WHEN_FULL: &[&str] = &["block", "drop-oldest", "shed", "spill"];

fn scheduling(ctx: &mut Ctx<'_>, node: &Node, base: &Scheduling) -> Scheduling {
    let mut s = base.clone();
    for (k, v) in ctx.map(node, "scheduling") {
        match k.scalar_text().as_deref() {
            Some("concurrent_tasks") => {
                if let Some(n) = ctx.count(v, "concurrent_tasks", 1) {
                    s.concurrent_tasks = usize::try_from(n).unwrap_or(1);
                }
            }
            Some("batch_size") => {
                if let Some(n) = ctx.count(v, "batch_size", 1) {
                    s.batch_size = usize::try_from(n).unwrap_or(1);
                }
            }
            Some("run_schedule") => {
                if let Some(d) = ctx.parse_with(v, "run_schedule", parse_duration) {
                    s.run_schedule = d;
                }
            }
            Some("penalty") => {
                if let Some(d) = ctx.parse_with(v, "penalty", parse_duration) {
                    s.penalty = d;
                }
            }
            Some("yield") => {
                if let Some(d) = ctx.parse_with(v, "yield", parse_duration) {
                    s.yield_duration = d;
                }
            }
            _ => ctx.unknown_key(k, "scheduling", SCHED_KEYS),
        }
    }
    s
}

fn back_pressure(ctx: &mut Ctx<'_>, node: &Node, base: &ConnectionSettings) -> ConnectionSettings {
    let mut s = base.clone();
    for (k, v) in ctx.map(node, "back_pressure") {
        match k.scalar_text().as_deref() {
            Some("max_count") => {
                if let Some(n) = ctx.count(v, "max_count", 1) {
                    s.max_count = n;
                }
            }
            Some("max_bytes") => {
                if let Some(n) = ctx.parse_with(v, "max_bytes", parse_data_size) {
                    s.max_bytes = n.max(1);
                }
            }
            _ => ctx.unknown_key(k, "back_pressure", BP_KEYS),
        }
    }
    s
}

/// Checks one scalar against a property kind.
fn check_kind(kind: &PropKind, s: &Scalar) -> Result<(), String> {
    let v = s.value.as_str();
    match kind {
        PropKind::Text => Ok(()),
        PropKind::NonEmpty => {
            if v.trim().is_empty() {
                Err("must not be empty".into())
            } else {
                Ok(())
            }
        }
        PropKind::Integer { min, max } => match v.trim().parse::<i64>() {
            Ok(n) if n >= *min && n <= *max => Ok(()),
            Ok(n) => Err(format!("{n} is out of range {min}..={max}")),
            Err(_) => Err(format!("`{v}` is not a whole number")),
        },
        PropKind::Bool => parse_bool(v).map(|_| ()),
        PropKind::Duration => parse_duration(v).map(|_| ()),
        PropKind::DataSize => parse_data_size(v).map(|_| ()),
        PropKind::Choice(c) => {
            if c.contains(&v) {
                Ok(())
            } else {
                let hint = suggest(v, c.iter().copied())
                    .map(|s| format!(" (did you mean `{s}`?)"))
                    .unwrap_or_default();
                Err(format!("`{v}` is not one of {}{hint}", c.join(", ")))
            }
        }
        PropKind::Template => Template::compile(v, Escape::None)
            .map(|_| ())
            .map_err(|e| e.to_string()),
        PropKind::Expression => Predicate::compile(v).map(|_| ()).map_err(|e| e.to_string()),
        PropKind::MapOf(_) | PropKind::ListOf(_) => Err("expected a mapping or a list".into()),
    }
}

fn property_value(ctx: &mut Ctx<'_>, desc: &PropertyDescriptor, node: &Node) -> Option<PropValue> {
    let name = desc.name;
    match (&desc.kind, &node.value) {
        (PropKind::MapOf(inner), Value::Map(entries)) => {
            let mut out = Vec::new();
            for (k, v) in entries {
                let key = ctx.scalar(k, &format!("a key of `{name}`"))?;
                let val = ctx.scalar(v, &format!("`{name}.{}`", key.value))?;
                if let Err(m) = check_kind(inner, &val) {
                    ctx.err(
                        val.pos,
                        format!("property `{name}.{}`: {m}", key.value),
                        None,
                    );
                }
                out.push((key, val));
            }
            Some(PropValue::Map(out, node.pos))
        }
        (PropKind::MapOf(_), _) => {
            ctx.err(
                node.pos,
                format!(
                    "property `{name}` must be a mapping of name: value, found {}",
                    node.kind_name()
                ),
                None,
            );
            None
        }
        (PropKind::ListOf(inner), Value::Seq(items)) => {
            let mut out = Vec::new();
            for item in items {
                let s = ctx.scalar(item, &format!("an item of `{name}`"))?;
                if let Err(m) = check_kind(inner, &s) {
                    ctx.err(s.pos, format!("property `{name}`: {m}"), None);
                }
                out.push(s);
            }
            Some(PropValue::List(out, node.pos))
        }
        (PropKind::ListOf(inner), _) => {
            let s = ctx.scalar(node, &format!("property `{name}`"))?;
            for part in s.value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let one = Scalar {
                    value: part.to_string(),
                    raw: part.to_string(),
                    pos: s.pos,
                };
                if let Err(m) = check_kind(inner, &one) {
                    ctx.err(s.pos, format!("property `{name}`: {m}"), None);
                }
            }
            Some(PropValue::Scalar(s))
        }
        (kind, _) => {
            let s = ctx.scalar(node, &format!("property `{name}`"))?;
            if let Err(m) = check_kind(kind, &s) {
                ctx.err(s.pos, format!("property `{name}`: {m}"), None);
            }
            Some(PropValue::Scalar(s))
        }
    }
}

fn properties(
    ctx: &mut Ctx<'_>,
    kind: &Arc<dyn ProcessorType>,
    node: Option<&Node>,
    proc_pos: Pos,
    proc_id: &str,
) -> Properties {
    let descs = kind.properties();
    let mut values = BTreeMap::new();
    if let Some(node) = node {
        for (k, v) in ctx.map(node, "properties") {
            let Some(name) = k.scalar_text() else {
                continue;
            };
            if let Some(d) = descs.iter().find(|d| d.name == name) {
                if let Some(pv) = property_value(ctx, d, v) {
                    values.insert(name, pv);
                }
            } else {
                let hint = suggest(&name, descs.iter().map(|d| d.name)).map_or_else(
                    || {
                        Some(format!(
                            "{} properties: {}",
                            kind.name(),
                            descs.iter().map(|d| d.name).collect::<Vec<_>>().join(", ")
                        ))
                    },
                    |s| Some(format!("did you mean `{s}`?")),
                );
                ctx.err(
                    k.pos,
                    format!("unknown property `{name}` for {}", kind.name()),
                    hint,
                );
            }
        }
    }
    for d in descs {
        if d.required && !values.contains_key(d.name) {
            ctx.err(
                node.map_or(proc_pos, |n| n.pos),
                format!(
                    "processor `{proc_id}` ({}) is missing required property `{}`",
                    kind.name(),
                    d.name
                ),
                Some(format!("`{}`: {}", d.name, d.description)),
            );
        }
    }
    let props = Properties::new(values, descs);
    for e in kind.validate(&props) {
        let pos = e.pos.unwrap_or(proc_pos);
        ctx.err(pos, format!("processor `{proc_id}`: {e}"), None);
    }
    props
}

fn relationship_list(ctx: &mut Ctx<'_>, node: &Node, what: &str) -> Vec<(String, Pos)> {
    match &node.value {
        Value::Seq(items) => items
            .iter()
            .filter_map(|i| ctx.string(i, what).map(|s| (s, i.pos)))
            .collect(),
        _ => ctx
            .string(node, what)
            .map(|s| {
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| (p.to_string(), node.pos))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

struct RawProc<'n> {
    id: String,
    pos: Pos,
    kind: Option<Arc<dyn ProcessorType>>,
    props_node: Option<&'n Node>,
    sched_node: Option<&'n Node>,
    auto_terminate: Vec<(String, Pos)>,
}

/// Validates flow text. `env` resolves `${env:...}` references.
///
/// # Errors
/// Every problem found, with positions.
#[allow(clippy::too_many_lines)]
pub fn parse_flow(
    text: &str,
    path: &Path,
    registry: &Registry,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<FlowSpec, FlowErrors> {
    let mut ctx = Ctx {
        file: path.display().to_string(),
        diags: Vec::new(),
        env,
    };
    let root = match yaml::parse(text) {
        Ok(n) => n,
        Err(e) => {
            ctx.err(e.pos, format!("invalid YAML: {}", e.message), None);
            return Err(FlowErrors(ctx.diags));
        }
    };
    let mut name = path
        .file_stem()
        .map_or_else(|| "flow".into(), |s| s.to_string_lossy().into_owned());
    let mut description = String::new();
    let mut defaults_sched = Scheduling::default();
    let mut defaults_conn = ConnectionSettings::default();
    let mut provenance_capacity = 100_000usize;
    let mut procs_node = None;
    let mut conns_node = None;
    if !matches!(root.value, Value::Map(_)) {
        ctx.err(
            root.pos,
            format!("a flow file must be a mapping, found {}", root.kind_name()),
            Some("start with `name:`, `processors:` and `connections:`".into()),
        );
        return Err(FlowErrors(ctx.diags));
    }
    for (k, v) in ctx.map(&root, "the flow") {
        match k.scalar_text().as_deref() {
            Some("name") => {
                if let Some(s) = ctx.string(v, "name") {
                    name = s;
                }
            }
            Some("description") => description = ctx.string(v, "description").unwrap_or_default(),
            Some("processors") => procs_node = Some(v),
            Some("connections") => conns_node = Some(v),
            Some("defaults") => {
                for (dk, dv) in ctx.map(v, "defaults") {
                    match dk.scalar_text().as_deref() {
                        Some("back_pressure") => {
                            defaults_conn = back_pressure(&mut ctx, dv, &defaults_conn);
                        }
                        Some("scheduling") => {
                            defaults_sched = scheduling(&mut ctx, dv, &defaults_sched);
                        }
                        Some("provenance_events") => {
                            if let Some(n) = ctx.count(dv, "provenance_events", 0) {
                                provenance_capacity = usize::try_from(n).unwrap_or(usize::MAX);
                            }
                        }
                        _ => ctx.unknown_key(dk, "defaults", DEFAULT_KEYS),
                    }
                }
            }
            _ => ctx.unknown_key(k, "the flow", TOP_KEYS),
        }
    }

    // Processors.
    let mut raw: Vec<RawProc<'_>> = Vec::new();
    match procs_node {
        None => ctx.err(root.pos, "the flow has no `processors:`", None),
        Some(pn) => {
            for (k, v) in ctx.map(pn, "processors") {
                let Some(id) = ctx.string(k, "a processor id") else {
                    continue;
                };
                if raw.iter().any(|r| r.id == id) {
                    ctx.err(k.pos, format!("processor `{id}` is declared twice"), None);
                    continue;
                }
                let mut rp = RawProc {
                    id: id.clone(),
                    pos: k.pos,
                    kind: None,
                    props_node: None,
                    sched_node: None,
                    auto_terminate: Vec::new(),
                };
                let mut type_seen = false;
                for (pk, pv) in ctx.map(v, &format!("processor `{id}`")) {
                    match pk.scalar_text().as_deref() {
                        Some("type") => {
                            type_seen = true;
                            let Some(t) = ctx.string(pv, "type") else {
                                continue;
                            };
                            if let Some(kind) = registry.get(&t) {
                                rp.kind = Some(kind.clone());
                            } else {
                                let hint = registry.suggest(&t).map_or_else(
                                    || Some("`sluice processors` lists the known types".into()),
                                    |s| Some(format!("did you mean `{s}`?")),
                                );
                                ctx.err(pv.pos, format!("unknown processor type `{t}`"), hint);
                            }
                        }
                        Some("properties") => rp.props_node = Some(pv),
                        Some("scheduling") => rp.sched_node = Some(pv),
                        Some("auto_terminate") => {
                            rp.auto_terminate = relationship_list(&mut ctx, pv, "auto_terminate");
                        }
                        Some("description") => {}
                        _ => ctx.unknown_key(pk, &format!("processor `{id}`"), PROC_KEYS),
                    }
                }
                if !type_seen {
                    ctx.err(
                        k.pos,
                        format!("processor `{id}` has no `type:`"),
                        Some("`sluice processors` lists the known types".into()),
                    );
                }
                raw.push(rp);
            }
        }
    }

    let mut processors: Vec<ProcessorSpec> = Vec::new();
    for rp in &raw {
        let Some(kind) = &rp.kind else { continue };
        let props = properties(&mut ctx, kind, rp.props_node, rp.pos, &rp.id);
        let tdef = kind.default_scheduling();
        let mut base = defaults_sched.clone();
        if let Some(rs) = tdef.run_schedule {
            base.run_schedule = rs;
        }
        base.trigger_when_empty = tdef.trigger_when_empty;
        let sched = match rp.sched_node {
            Some(n) => scheduling(&mut ctx, n, &base),
            None => base,
        };
        let relationships = kind.relationships(&props);
        let mut auto = BTreeSet::new();
        for (r, pos) in &rp.auto_terminate {
            if relationships.iter().any(|d| &d.name == r) {
                auto.insert(r.clone());
            } else {
                ctx.err(
                    *pos,
                    format!(
                        "processor `{}` has no relationship `{r}` to auto-terminate",
                        rp.id
                    ),
                    Some(rel_hint(r, &relationships)),
                );
            }
        }
        processors.push(ProcessorSpec {
            id: rp.id.clone(),
            pos: rp.pos,
            kind: kind.clone(),
            properties: props,
            scheduling: sched,
            auto_terminate: auto,
            relationships,
        });
    }

    // Connections.
    let mut connections: Vec<ConnectionSpec> = Vec::new();
    // Endpoints of connections refused above, so their absence is not
    // reported a second time as "not connected".
    let mut refused: Vec<(String, Vec<String>, String)> = Vec::new();
    let ids: Vec<&str> = raw.iter().map(|r| r.id.as_str()).collect();
    if let Some(cn) = conns_node {
        let items: &[Node] = match &cn.value {
            Value::Seq(items) => items,
            Value::Null => &[],
            _ => {
                ctx.err(cn.pos, "`connections` must be a list", None);
                &[]
            }
        };
        for item in items {
            let mut from = None;
            let mut to = None;
            let mut rels: Vec<(String, Pos)> = Vec::new();
            let mut name = None;
            let mut settings = defaults_conn.clone();
            let mut when_full: Option<(String, Pos)> = None;
            let mut shed_attr = "syslog.severity".to_string();
            let mut shed_above = 4i64;
            let mut shed_pos = None;
            let mut spill: Option<SpillSettings> = None;
            for (k, v) in ctx.map(item, "a connection") {
                match k.scalar_text().as_deref() {
                    Some("from") => from = ctx.string(v, "from").map(|s| (s, v.pos)),
                    Some("to") => to = ctx.string(v, "to").map(|s| (s, v.pos)),
                    Some("relationship" | "relationships") => {
                        rels.extend(relationship_list(&mut ctx, v, "relationship"));
                    }
                    Some("name") => name = ctx.string(v, "name"),
                    Some("back_pressure") => settings = back_pressure(&mut ctx, v, &settings),
                    Some("when_full") => when_full = ctx.string(v, "when_full").map(|s| (s, v.pos)),
                    Some("shed") => {
                        shed_pos = Some(v.pos);
                        for (sk, sv) in ctx.map(v, "shed") {
                            match sk.scalar_text().as_deref() {
                                Some("attribute") => {
                                    if let Some(s) = ctx.string(sv, "shed.attribute") {
                                        shed_attr = s;
                                    }
                                }
                                Some("above") => {
                                    if let Some(n) = ctx.parse_with(sv, "shed.above", |s| {
                                        crate::severity::parse_level(s)
                                    }) {
                                        shed_above = n;
                                    }
                                }
                                _ => ctx.unknown_key(sk, "shed", &["attribute", "above"]),
                            }
                        }
                    }
                    Some("spill") => {
                        let mut sp = SpillSettings::default();
                        for (sk, sv) in ctx.map(v, "spill") {
                            if sk.scalar_text().as_deref() == Some("max_disk") {
                                if let Some(n) =
                                    ctx.parse_with(sv, "spill.max_disk", parse_data_size)
                                {
                                    sp.max_disk = n.max(1);
                                }
                            } else {
                                ctx.unknown_key(sk, "spill", &["max_disk"]);
                            }
                        }
                        spill = Some(sp);
                    }
                    Some("prioritizer") => match &v.value {
                        Value::Map(m) => {
                            for (pk, pv) in m {
                                if pk.scalar_text().as_deref() == Some("attribute") {
                                    if let Some(a) = ctx.string(pv, "prioritizer.attribute") {
                                        settings.prioritizer = Prioritizer::PriorityAttribute(a);
                                    }
                                } else {
                                    ctx.unknown_key(pk, "prioritizer", &["attribute"]);
                                }
                            }
                        }
                        _ => match ctx.string(v, "prioritizer").as_deref() {
                            Some("fifo") => settings.prioritizer = Prioritizer::Fifo,
                            Some("oldest-first") => settings.prioritizer = Prioritizer::OldestFirst,
                            Some(other) => ctx.err(
                                v.pos,
                                format!("unknown prioritizer `{other}`"),
                                Some("use fifo, oldest-first or { attribute: NAME }".into()),
                            ),
                            None => {}
                        },
                    },
                    Some("expiration") => {
                        if let Some(d) = ctx.parse_with(v, "expiration", parse_duration) {
                            settings.expiration = (d > Duration::ZERO).then_some(d);
                        }
                    }
                    _ => ctx.unknown_key(k, "a connection", CONN_KEYS),
                }
            }
            match when_full {
                None => {
                    if let Some(sp) = spill.clone() {
                        settings.when_full = WhenFull::Spill(sp);
                    } else if shed_pos.is_some() {
                        settings.when_full = WhenFull::Shed {
                            attribute: shed_attr.clone(),
                            above: shed_above,
                        };
                    }
                }
                Some((w, pos)) => match w.as_str() {
                    "block" => settings.when_full = WhenFull::Block,
                    "drop-oldest" => settings.when_full = WhenFull::DropOldest,
                    "spill" => {
                        settings.when_full = WhenFull::Spill(spill.clone().unwrap_or_default());
                    }
                    "shed" => {
                        settings.when_full = WhenFull::Shed {
                            attribute: shed_attr.clone(),
                            above: shed_above,
                        };
                    }
                    other => ctx.err(
                        pos,
                        format!("unknown when_full policy `{other}`"),
                        Some(suggest(other, WHEN_FULL.iter().copied()).map_or_else(
                            || format!("use one of {}", WHEN_FULL.join(", ")),
                            |s| format!("did you mean `{s}`?"),
                        )),
                    ),
                },
            }
            let (Some((from, from_pos)), Some((to, to_pos))) = (from, to) else {
                ctx.err(item.pos, "a connection needs `from:` and `to:`", None);
                continue;
            };
            if rels.is_empty() {
                ctx.err(
                    item.pos,
                    format!("connection from `{from}` to `{to}` names no relationship"),
                    Some("add `relationship: success` (or a list under `relationships:`)".into()),
                );
                continue;
            }
            let from_proc = processors.iter().find(|p| p.id == from);
            let mut ok = true;
            for (id, pos) in [(&from, from_pos), (&to, to_pos)] {
                if !ids.contains(&id.as_str()) {
                    ok = false;
                    let hint = suggest(id, ids.iter().copied()).map_or_else(
                        || Some(format!("processors: {}", ids.join(", "))),
                        |s| Some(format!("did you mean `{s}`?")),
                    );
                    ctx.err(pos, format!("unknown processor `{id}`"), hint);
                }
            }
            if let Some(fp) = from_proc {
                for (r, pos) in &rels {
                    if !fp.relationships.iter().any(|d| &d.name == r) {
                        ok = false;
                        ctx.err(
                            *pos,
                            format!(
                                "processor `{from}` ({}) has no relationship `{r}`",
                                fp.kind.name()
                            ),
                            Some(rel_hint(r, &fp.relationships)),
                        );
                    }
                }
            }
            if let Some(tp) = processors.iter().find(|p| p.id == to)
                && tp.kind.input() == InputRequirement::Forbidden
            {
                ok = false;
                ctx.err(
                    to_pos,
                    format!("`{to}` ({}) is a source and takes no input", tp.kind.name()),
                    None,
                );
            }
            let rel_names: Vec<String> = rels.into_iter().map(|(r, _)| r).collect();
            let id = name.unwrap_or_else(|| format!("{from}.{}->{to}", rel_names.join("+")));
            if connections.iter().any(|c| c.id == id) {
                ctx.err(
                    item.pos,
                    format!("connection `{id}` is declared twice"),
                    Some("give one of them a distinct `name:`".into()),
                );
                continue;
            }
            if !ok {
                refused.push((from.clone(), rel_names.clone(), to.clone()));
            }
            if ok {
                connections.push(ConnectionSpec {
                    id,
                    from,
                    relationships: rel_names,
                    to,
                    settings,
                    pos: item.pos,
                });
            }
        }
    }

    // Every relationship is connected or auto-terminated; inputs as required.
    for p in &processors {
        for r in &p.relationships {
            let connected = connections
                .iter()
                .any(|c| c.from == p.id && c.relationships.contains(&r.name))
                || refused.iter().any(|(f, _, _)| f == &p.id);
            if !connected && !p.auto_terminate.contains(&r.name) {
                ctx.err(
                    p.pos,
                    format!(
                        "relationship `{}` of processor `{}` is not connected and not auto-terminated",
                        r.name, p.id
                    ),
                    Some(format!(
                        "connect it, or add `auto_terminate: [{}]` to drop what goes there",
                        r.name
                    )),
                );
            }
        }
        let has_input =
            connections.iter().any(|c| c.to == p.id) || refused.iter().any(|(_, _, t)| t == &p.id);
        if p.kind.input() == InputRequirement::Required && !has_input {
            ctx.err(
                p.pos,
                format!(
                    "processor `{}` ({}) needs an incoming connection",
                    p.id,
                    p.kind.name()
                ),
                None,
            );
        }
    }

    if ctx.diags.is_empty() {
        Ok(FlowSpec {
            name,
            description,
            path: path.to_path_buf(),
            source: text.to_string(),
            processors,
            connections,
            provenance_capacity,
        })
    } else {
        ctx.diags.sort_by_key(|d| d.pos);
        Err(FlowErrors(ctx.diags))
    }
}

fn rel_hint(r: &str, rels: &[RelationshipDef]) -> String {
    let names: Vec<&str> = rels.iter().map(|d| d.name.as_str()).collect();
    match suggest(r, names.iter().copied()) {
        Some(s) => format!("did you mean `{s}`?"),
        None => format!("its relationships: {}", names.join(", ")),
    }
}

/// Validates a YAML mapping as the properties of one processor of `kind`
/// (processor tests, examples, the UI's property check).
///
/// # Errors
/// Every problem found, positions relative to `yaml`.
pub fn parse_properties(
    kind: &Arc<dyn ProcessorType>,
    yaml: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Properties, FlowErrors> {
    let mut ctx = Ctx {
        file: format!("<{} properties>", kind.name()),
        diags: Vec::new(),
        env,
    };
    let node = match yaml::parse(yaml) {
        Ok(n) => n,
        Err(e) => {
            ctx.err(e.pos, format!("invalid YAML: {}", e.message), None);
            return Err(FlowErrors(ctx.diags));
        }
    };
    let props = properties(&mut ctx, kind, Some(&node), node.pos, "under_test");
    if ctx.diags.is_empty() {
        Ok(props)
    } else {
        Err(FlowErrors(ctx.diags))
    }
}
