//! A harness for processor tests: build a processor type from properties,
//! feed FlowFiles, trigger it, and read what went to each relationship.
//!
//! It runs the real session (commit, rollback, accounting), so a processor
//! that leaves a FlowFile unaccounted for fails here as it would in a flow.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::connection::{Connection, ConnectionSettings};
use crate::flowfile::{Content, FlowFile};
use crate::processor::{
    BuildContext, InputRequirement, ProcessContext, ProcessError, Processor, ProcessorType,
    Scheduling,
};
use crate::properties::Properties;
use crate::provenance::ProvenanceRepository;
use crate::session::{NodeIo, Output, ProcessSession};

/// A processor under test, with one input queue and one queue per relationship.
pub struct TestRunner {
    /// The built processor.
    pub processor: Box<dyn Processor>,
    /// Its context.
    pub ctx: ProcessContext,
    io: Arc<NodeIo>,
    input: Arc<Connection>,
    outputs: BTreeMap<String, Arc<Connection>>,
    /// Provenance recorded by its sessions.
    pub provenance: Arc<ProvenanceRepository>,
}

/// What a test runner could not do.
#[derive(Debug, thiserror::Error)]
pub enum TestRunnerError {
    /// Validation found problems.
    #[error("invalid properties: {0}")]
    Invalid(String),
    /// Build failed.
    #[error("build failed: {0}")]
    Build(String),
}

impl TestRunner {
    /// Validates and builds `kind` with `props` (name, value pairs).
    ///
    /// # Errors
    /// The properties are invalid or the build fails.
    pub fn new(kind: &dyn ProcessorType, props: &[(&str, &str)]) -> Result<Self, TestRunnerError> {
        let properties = Properties::from_pairs(props, kind.properties());
        Self::with_properties(kind, properties, Scheduling::default())
    }

    /// Same with prepared properties (maps, lists) and scheduling.
    ///
    /// # Errors
    /// The properties are invalid or the build fails.
    #[allow(clippy::needless_pass_by_value)]
    pub fn with_properties(
        kind: &dyn ProcessorType,
        properties: Properties,
        scheduling: Scheduling,
    ) -> Result<Self, TestRunnerError> {
        let errs = kind.validate(&properties);
        if !errs.is_empty() {
            return Err(TestRunnerError::Invalid(
                crate::BuildError::from(errs).to_string(),
            ));
        }
        let processor = kind
            .build(&properties, &BuildContext::default())
            .map_err(|e| TestRunnerError::Build(e.to_string()))?;
        let big = ConnectionSettings {
            max_count: u64::MAX,
            max_bytes: u64::MAX,
            ..ConnectionSettings::default()
        };
        let notify = Arc::new(Notify::new());
        let input = Arc::new(Connection::new(
            "input",
            big.clone(),
            notify.clone(),
            notify.clone(),
            None,
        ));
        let mut outputs = BTreeMap::new();
        let mut outs = Vec::new();
        for r in kind.relationships(&properties) {
            let c = Arc::new(Connection::new(
                r.name.clone(),
                big.clone(),
                notify.clone(),
                notify.clone(),
                None,
            ));
            outs.push(Output {
                relationship: r.name.clone(),
                connections: vec![c.clone()],
            });
            outputs.insert(r.name, c);
        }
        let ctx = ProcessContext::detached("under-test", scheduling.clone());
        let provenance = Arc::new(ProvenanceRepository::new(10_000));
        let inputs = if kind.input() == InputRequirement::Forbidden {
            Vec::new()
        } else {
            vec![input.clone()]
        };
        let io = Arc::new(NodeIo {
            id: "under-test".into(),
            inputs,
            outputs: outs,
            stats: ctx.stats.clone(),
            journal: None,
            provenance: provenance.clone(),
            penalty: scheduling.penalty,
            taps: Vec::new(),
        });
        Ok(Self {
            processor,
            ctx,
            io,
            input,
            outputs,
            provenance,
        })
    }

    /// Queues a FlowFile with `content` and `attrs` on the input.
    pub fn enqueue(&self, content: impl Into<Bytes>, attrs: &[(&str, &str)]) -> u64 {
        let mut ff = FlowFile::new();
        ff.content = Content::Memory(content.into());
        for (k, v) in attrs {
            ff.attributes.insert(*k, *v);
        }
        let id = ff.id;
        self.input.push_batch(vec![ff]);
        id
    }

    /// Queues a prepared FlowFile.
    pub fn enqueue_flowfile(&self, ff: FlowFile) {
        self.input.push_batch(vec![ff]);
    }

    /// Runs `on_scheduled`.
    ///
    /// # Errors
    /// As the processor returns.
    pub async fn schedule(&self) -> Result<(), ProcessError> {
        self.processor.on_scheduled(&self.ctx).await
    }

    /// One trigger, committed as the scheduler would (rolled back on error).
    ///
    /// # Errors
    /// As the processor or the commit returns.
    pub async fn run_once(&self) -> Result<(), ProcessError> {
        let mut session = ProcessSession::new(self.io.clone());
        match self.processor.on_trigger(&self.ctx, &mut session).await {
            Ok(()) => {
                if session.has_work() {
                    session.commit().await
                } else {
                    Ok(())
                }
            }
            Err(e) => {
                session.rollback(e.penalize);
                Err(e)
            }
        }
    }

    /// Triggers until the input is empty (or `max` triggers).
    ///
    /// # Errors
    /// The first trigger error.
    pub async fn run_until_idle(&self, max: usize) -> Result<(), ProcessError> {
        for _ in 0..max {
            if self.input.queued_count() == 0 {
                break;
            }
            self.run_once().await?;
        }
        Ok(())
    }

    /// Takes everything that went to `rel`.
    ///
    /// # Panics
    /// If the processor has no such relationship (a test mistake).
    #[must_use]
    pub fn take(&self, rel: &str) -> Vec<FlowFile> {
        let c = self
            .outputs
            .get(rel)
            .unwrap_or_else(|| panic!("no relationship `{rel}`"));
        // Penalised ones too: a processor that penalises what it routes
        // (retry relationships) must still be observable.
        c.drain_all()
    }

    /// Takes every FlowFile still on the input, penalised ones too (to look
    /// at what a processor gave back).
    #[must_use]
    pub fn take_input(&self) -> Vec<FlowFile> {
        self.input.drain_all()
    }

    /// FlowFiles still waiting on the input.
    #[must_use]
    pub fn input_queued(&self) -> u64 {
        self.input.queued_count()
    }

    /// Content of a FlowFile as UTF-8 (lossy).
    #[must_use]
    pub fn text(ff: &FlowFile) -> String {
        match &ff.content {
            Content::Memory(b) => String::from_utf8_lossy(b).into_owned(),
            Content::Stored(s) => s
                .read()
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
        }
    }
}

/// Checks the registry contract of a processor type: every property has a
/// description, names are unique, defaults pass their own kind, the example
/// parses as properties of this type. Every processor's tests call this.
///
/// # Errors
/// A description of each breach.
pub fn check_type_contract(
    kind: &dyn ProcessorType,
    registry: &crate::Registry,
) -> Result<(), String> {
    let mut problems = Vec::new();
    if kind.description().trim().is_empty() {
        problems.push("type has no description".to_string());
    }
    let mut seen = std::collections::BTreeSet::new();
    for d in kind.properties() {
        if d.description.trim().is_empty() {
            problems.push(format!("property `{}` has no description", d.name));
        }
        if !seen.insert(d.name) {
            problems.push(format!("property `{}` declared twice", d.name));
        }
        if d.required && d.default.is_some() {
            problems.push(format!(
                "property `{}` is required but has a default",
                d.name
            ));
        }
    }
    if let Err(e) = props_from_yaml(kind, registry, kind.example()) {
        problems.push(format!("example does not validate: {e}"));
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n"))
    }
}

/// Properties of `kind` from a YAML mapping, validated as a flow would
/// validate them (`${env:...}` resolved from the process environment).
///
/// # Errors
/// The validation errors, one per line.
pub fn props_from_yaml(
    kind: &dyn ProcessorType,
    registry: &crate::Registry,
    yaml: &str,
) -> Result<Properties, String> {
    let kind = registry
        .get(kind.name())
        .ok_or_else(|| format!("{} is not in the registry", kind.name()))?;
    crate::parse_properties(kind, yaml, &|k| std::env::var(k).ok()).map_err(|e| e.to_string())
}
