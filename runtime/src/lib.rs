//! Sluice runtime: FlowFiles, sessions, back-pressured connections, flow
//! specs and the scheduler. Processors see only [`ProcessSession`] and
//! [`ProcessContext`]; durable storage plugs in through [`Journal`].

mod attr_str;
mod attributes;
mod connection;
pub mod durable;
mod engine;
mod expr;
mod flowfile;
pub mod flowtest;
mod journal;
mod metrics;
mod processor;
mod properties;
mod provenance;
mod record;
mod registry;
mod session;
pub mod severity;
mod spec;
mod spill;
mod template;
pub mod testing;
pub mod yaml;

pub use attributes::{AttrStr, Attributes, compare_keys};
pub use connection::{
    Connection, ConnectionCounters, ConnectionSettings, DEFAULT_MAX_BYTES, DEFAULT_MAX_COUNT,
    DEFAULT_SPILL_MAX_DISK, DropObserver, DropReason, Prioritizer, SpillSettings, WhenFull,
};
pub use engine::{
    ConnectionStatus, Engine, EngineError, EngineOptions, FlowStatus, Node, ProcessorStatus,
    ReloadSummary,
};
pub use expr::{ExprError, Predicate};
pub use flowfile::{Content, FlowFile, StoredContent, now_millis, reserve_ids_above};
pub use journal::{Change, Journal, JournalError};
pub use metrics::{Bulletin, Level, ProcessorStats};
pub use processor::{
    BuildContext, BuildError, InputRequirement, ProcessContext, ProcessError, Processor,
    ProcessorType, RelationshipDef, Scheduling, SchedulingDefaults,
};
pub use properties::{
    PropKind, PropValue, Properties, PropertyDescriptor, PropertyError, Scalar, parse_bool,
    parse_data_size, parse_duration,
};
pub use provenance::{EventKind, ProvenanceEvent, ProvenanceRepository};
pub use registry::{Registry, suggest};
pub use session::{NodeIo, Output, ProcessSession, Tap};
pub use spec::{
    ConnectionSpec, Diagnostic, FlowErrors, FlowSpec, ProcessorSpec, load_flow, parse_flow,
    parse_properties,
};
pub use template::{Escape, Template, TemplateError};
pub use yaml::Pos;

/// Re-exported so processors implement [`Processor`] with the same macro.
pub use async_trait::async_trait;
