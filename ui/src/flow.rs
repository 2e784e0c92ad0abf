//! The flow graph as `/api/flow` shows it: processors with their type,
//! properties (redacted), relationships and scheduling; connections with
//! their thresholds and policies; and the flow file's text (redacted).

use serde::Serialize;
use serde_json::Value;
use sluice_runtime::{
    ConnectionSpec, FlowSpec, InputRequirement, Prioritizer, ProcessorSpec, WhenFull,
};

use crate::redact::{MASK, Redactor, descriptor, property_value, references_env};

/// The whole flow.
#[derive(Debug, Serialize)]
pub struct FlowView {
    /// Flow name.
    pub name: String,
    /// The file's `description:`.
    pub description: String,
    /// File name of the flow (without its directory).
    pub file: String,
    /// The flow file's text, with any line holding a secret value masked.
    pub source: String,
    /// Processors in file order.
    pub processors: Vec<ProcessorDef>,
    /// Connections in file order.
    pub connections: Vec<ConnectionDef>,
}

/// One processor's configuration.
#[derive(Debug, Serialize)]
pub struct ProcessorDef {
    /// Id in the flow.
    pub id: String,
    /// Type name.
    #[serde(rename = "type")]
    pub kind: String,
    /// What the type does.
    pub type_description: String,
    /// `forbidden` (a source), `required` or `allowed`.
    pub input: &'static str,
    /// Line in the flow file.
    pub line: u32,
    /// Every declared property, set or not.
    pub properties: Vec<PropertyView>,
    /// Relationships with whether each is auto-terminated.
    pub relationships: Vec<RelationshipView>,
    /// Scheduling.
    pub scheduling: SchedulingView,
}

/// One property.
#[derive(Debug, Serialize)]
pub struct PropertyView {
    /// Name.
    pub name: String,
    /// What it does.
    pub description: String,
    /// Kind of value, in words.
    pub kind: String,
    /// Must be given.
    pub required: bool,
    /// Secret: its value is always `***`.
    pub sensitive: bool,
    /// Default, when not set.
    pub default: Option<String>,
    /// The value as written in the file (`***` if sensitive), or null.
    pub value: Option<Value>,
    /// The value as written references `${env:...}`.
    pub from_env: bool,
}

/// One relationship.
#[derive(Debug, Serialize)]
pub struct RelationshipView {
    /// Name.
    pub name: String,
    /// What goes there.
    pub description: String,
    /// Its FlowFiles are dropped.
    pub auto_terminated: bool,
}

/// Scheduling of a processor (durations in milliseconds).
#[derive(Debug, Serialize)]
pub struct SchedulingView {
    /// Tasks at once.
    pub concurrent_tasks: usize,
    /// Most FlowFiles per trigger.
    pub batch_size: usize,
    /// Time between triggers of a source.
    pub run_schedule_ms: u128,
    /// Penalty of a penalised FlowFile.
    pub penalty_ms: u128,
    /// Rest after an error.
    pub yield_ms: u128,
}

/// One connection.
#[derive(Debug, Serialize)]
pub struct ConnectionDef {
    /// Id.
    pub id: String,
    /// Upstream processor.
    pub from: String,
    /// Relationships carried.
    pub relationships: Vec<String>,
    /// Downstream processor.
    pub to: String,
    /// Line in the flow file.
    pub line: u32,
    /// Object threshold.
    pub max_count: u64,
    /// Byte threshold.
    pub max_bytes: u64,
    /// `block`, `drop-oldest` or `shed`.
    pub when_full: &'static str,
    /// For `shed`: the attribute compared and the bound above which FlowFiles are shed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shed: Option<ShedView>,
    /// `fifo`, `oldest-first` or `attribute:<name>`.
    pub prioritizer: String,
    /// Age-off, if any.
    pub expiration_ms: Option<u128>,
}

/// The `shed` policy's settings.
#[derive(Debug, Serialize)]
pub struct ShedView {
    /// Numeric attribute compared.
    pub attribute: String,
    /// FlowFiles with a value above this are shed first.
    pub above: i64,
}

/// The flow of `spec`, redacted by `redactor`.
#[must_use]
pub fn view(spec: &FlowSpec, redactor: &Redactor) -> FlowView {
    FlowView {
        name: spec.name.clone(),
        description: spec.description.clone(),
        file: spec
            .path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default(),
        source: redactor.source(&spec.source),
        processors: spec.processors.iter().map(processor).collect(),
        connections: spec.connections.iter().map(connection).collect(),
    }
}

fn processor(p: &ProcessorSpec) -> ProcessorDef {
    let descriptors = p.kind.properties();
    let mut properties: Vec<PropertyView> = descriptors
        .iter()
        .map(|d| {
            let raw = p.properties.raw(d.name);
            PropertyView {
                name: d.name.to_string(),
                description: d.description.to_string(),
                kind: d.kind.describe(),
                required: d.required,
                sensitive: d.sensitive,
                default: d.default.map(str::to_string),
                value: raw.map(|v| property_value(v, d.sensitive)),
                from_env: raw.is_some_and(references_env),
            }
        })
        .collect();
    // Validation refuses undeclared properties; should one get through, it is
    // shown masked, since nothing says it is not a secret.
    for (name, v) in p.properties.iter() {
        if descriptor(descriptors, name).is_none() {
            properties.push(PropertyView {
                name: name.clone(),
                description: String::new(),
                kind: "undeclared".into(),
                required: false,
                sensitive: true,
                default: None,
                value: Some(Value::String(MASK.into())),
                from_env: references_env(v),
            });
        }
    }
    ProcessorDef {
        id: p.id.clone(),
        kind: p.kind.name().to_string(),
        type_description: p.kind.description().to_string(),
        input: match p.kind.input() {
            InputRequirement::Forbidden => "forbidden",
            InputRequirement::Required => "required",
            InputRequirement::Allowed => "allowed",
        },
        line: p.pos.line,
        properties,
        relationships: p
            .relationships
            .iter()
            .map(|r| RelationshipView {
                name: r.name.clone(),
                description: r.description.clone(),
                auto_terminated: p.auto_terminate.contains(&r.name),
            })
            .collect(),
        scheduling: SchedulingView {
            concurrent_tasks: p.scheduling.concurrent_tasks,
            batch_size: p.scheduling.batch_size,
            run_schedule_ms: p.scheduling.run_schedule.as_millis(),
            penalty_ms: p.scheduling.penalty.as_millis(),
            yield_ms: p.scheduling.yield_duration.as_millis(),
        },
    }
}

fn connection(c: &ConnectionSpec) -> ConnectionDef {
    let s = &c.settings;
    let (when_full, shed) = match &s.when_full {
        WhenFull::Block => ("block", None),
        WhenFull::DropOldest => ("drop-oldest", None),
        WhenFull::Spill(_) => ("spill", None),
        WhenFull::Shed { attribute, above } => (
            "shed",
            Some(ShedView {
                attribute: attribute.clone(),
                above: *above,
            }),
        ),
    };
    ConnectionDef {
        id: c.id.clone(),
        from: c.from.clone(),
        relationships: c.relationships.clone(),
        to: c.to.clone(),
        line: c.pos.line,
        max_count: s.max_count,
        max_bytes: s.max_bytes,
        when_full,
        shed,
        prioritizer: match &s.prioritizer {
            Prioritizer::Fifo => "fifo".into(),
            Prioritizer::OldestFirst => "oldest-first".into(),
            Prioritizer::PriorityAttribute(a) => format!("attribute:{a}"),
        },
        expiration_ms: s.expiration.map(|d| d.as_millis()),
    }
}
