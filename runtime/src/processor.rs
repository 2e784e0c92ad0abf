//! The processor contract: a registry entry ([`ProcessorType`]) that validates
//! and builds, and the built [`Processor`] that the scheduler triggers.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::connection::Connection;
use crate::metrics::{Level, ProcessorStats};
use crate::properties::{Properties, PropertyDescriptor, PropertyError};
use crate::session::ProcessSession;

/// Whether a processor takes input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputRequirement {
    /// A source: no incoming connection allowed.
    Forbidden,
    /// Needs at least one incoming connection.
    Required,
    /// Either.
    Allowed,
}

/// A named output of a processor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RelationshipDef {
    /// Name used in connections.
    pub name: String,
    /// What goes there.
    pub description: String,
}

impl RelationshipDef {
    /// A relationship.
    #[must_use]
    pub fn new(name: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: description.into(),
        }
    }
}

/// What `build` may use besides the properties.
#[derive(Clone, Debug, Default)]
pub struct BuildContext {
    /// The flow's name.
    pub flow_name: String,
    /// This processor's id in the flow.
    pub processor_id: String,
    /// Directory of the flow file (relative paths resolve against it).
    pub base_dir: PathBuf,
}

/// A processor could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// A property is unusable.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// Anything else, with a message.
    #[error("{0}")]
    Other(String),
}

/// Several property problems at once (what `validate` found), joined by `; `.
impl From<Vec<PropertyError>> for BuildError {
    fn from(errs: Vec<PropertyError>) -> Self {
        BuildError::Other(
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// A registry entry: metadata, pure validation and building of one processor type.
pub trait ProcessorType: Send + Sync + 'static {
    /// The `type:` name in flow files.
    fn name(&self) -> &'static str;
    /// One paragraph for docs and `sluice processors`.
    fn description(&self) -> &'static str;
    /// Declared properties.
    fn properties(&self) -> &'static [PropertyDescriptor];
    /// Whether it takes input.
    fn input(&self) -> InputRequirement;
    /// Relationships, which may depend on properties (e.g. one per route).
    fn relationships(&self, props: &Properties) -> Vec<RelationshipDef>;
    /// Checks beyond each property's kind (combinations, parse of a value).
    /// Pure: no I/O, no tasks.
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let _ = props;
        Vec::new()
    }
    /// Builds an instance. May open clients; never spawns tasks.
    ///
    /// # Errors
    /// A property cannot be used.
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError>;
    /// Default scheduling for this type (e.g. timer-driven batching).
    fn default_scheduling(&self) -> SchedulingDefaults {
        SchedulingDefaults::default()
    }
    /// An example processor entry in YAML (properties only), checked by tests.
    fn example(&self) -> &'static str;
    /// Whether it talks to a system outside the process (a remote sink, a
    /// file system): flow unit tests replace such processors with capture
    /// points. Sources are always replaced.
    fn is_external(&self) -> bool {
        false
    }
}

/// Type-specific scheduling defaults.
#[derive(Clone, Copy, Debug, Default)]
pub struct SchedulingDefaults {
    /// Trigger on the run schedule even when no input is queued (timers,
    /// time-based batching).
    pub trigger_when_empty: bool,
    /// Default run schedule.
    pub run_schedule: Option<Duration>,
}

/// A trigger failed; the session is rolled back.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ProcessError {
    /// What went wrong.
    pub message: String,
    /// Penalise the inputs that go back to the queue.
    pub penalize: bool,
    /// Yield the processor for this long instead of its yield duration.
    pub yield_for: Option<Duration>,
}

impl ProcessError {
    /// An error that rolls back and yields.
    #[must_use]
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            penalize: false,
            yield_for: None,
        }
    }

    /// The same, penalising the inputs.
    #[must_use]
    pub fn penalized(mut self) -> Self {
        self.penalize = true;
        self
    }

    /// The same, yielding for `d`.
    #[must_use]
    pub fn yield_for(mut self, d: Duration) -> Self {
        self.yield_for = Some(d);
        self
    }
}

/// Scheduling settings of one processor in a flow.
#[derive(Clone, Debug, PartialEq)]
pub struct Scheduling {
    /// Tasks triggering this processor at once.
    pub concurrent_tasks: usize,
    /// Most FlowFiles a trigger should take.
    pub batch_size: usize,
    /// Time between triggers of a source (0 = as soon as there is work).
    pub run_schedule: Duration,
    /// How long a penalised FlowFile waits.
    pub penalty: Duration,
    /// How long the processor rests after an error or when it yields.
    pub yield_duration: Duration,
    /// Trigger on the run schedule even without input.
    pub trigger_when_empty: bool,
}

impl Default for Scheduling {
    fn default() -> Self {
        Self {
            concurrent_tasks: 1,
            batch_size: 1000,
            run_schedule: Duration::ZERO,
            penalty: Duration::from_secs(30),
            yield_duration: Duration::from_secs(1),
            trigger_when_empty: false,
        }
    }
}

/// What a running processor may ask of the runtime.
pub struct ProcessContext {
    pub(crate) id: String,
    pub(crate) type_name: String,
    pub(crate) stats: Arc<ProcessorStats>,
    pub(crate) wake: Arc<Notify>,
    pub(crate) outputs: parking_lot::RwLock<Vec<Arc<Connection>>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) scheduling: Scheduling,
    pub(crate) yielded_until: AtomicU64,
    pub(crate) journal: Option<Arc<dyn crate::journal::Journal>>,
}

impl ProcessContext {
    /// A context outside a running flow (processor unit tests).
    #[must_use]
    pub fn detached(id: &str, scheduling: Scheduling) -> Self {
        Self {
            id: id.to_string(),
            type_name: String::new(),
            stats: Arc::default(),
            wake: Arc::new(Notify::new()),
            outputs: parking_lot::RwLock::new(Vec::new()),
            shutdown: CancellationToken::new(),
            scheduling,
            yielded_until: AtomicU64::new(0),
            journal: None,
        }
    }

    /// The processor's id in the flow.
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The processor's type name.
    #[must_use]
    pub fn type_name(&self) -> &str {
        &self.type_name
    }

    /// Scheduling settings.
    #[must_use]
    pub fn scheduling(&self) -> &Scheduling {
        &self.scheduling
    }

    /// Asks the scheduler to trigger this processor soon (event-driven sources
    /// call this when data arrives).
    pub fn wake(&self) {
        self.wake.notify_waiters();
    }

    /// A handle sources can keep to wake the processor from their own tasks.
    #[must_use]
    pub fn waker(&self) -> Arc<Notify> {
        self.wake.clone()
    }

    /// Whether an outgoing `block` connection is at its threshold (or a
    /// `spill` one at its disk cap), or the repository is at its disk cap: a
    /// source should push back on its sender.
    #[must_use]
    pub fn is_back_pressured(&self) -> bool {
        self.outputs.read().iter().any(|c| c.is_back_pressured())
            || self.journal.as_ref().is_some_and(|j| j.is_full())
    }

    /// Fires when the flow shuts down; long waits should select on it.
    #[must_use]
    pub fn shutdown(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The processor's counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<ProcessorStats> {
        &self.stats
    }

    /// A named counter (shown in status and metrics).
    #[must_use]
    pub fn counter(&self, name: &str) -> Arc<AtomicU64> {
        self.stats.counter(name)
    }

    /// Raises a bulletin for operators.
    pub fn bulletin(&self, level: Level, message: impl Into<String>) {
        self.stats.bulletin(&self.id, level, message);
    }

    /// Do not trigger again for `d` (NiFi's yield: the remote side is down...).
    pub fn yield_for(&self, d: Duration) {
        let until = crate::flowfile::now_millis() + u64::try_from(d.as_millis()).unwrap_or(0);
        self.yielded_until.fetch_max(until, Ordering::Relaxed);
    }
}

/// A built processor. One instance serves all its concurrent tasks.
#[async_trait]
pub trait Processor: Send + Sync + 'static {
    /// Called once before the first trigger: start listeners, open clients.
    ///
    /// # Errors
    /// The processor cannot run (port in use...); the flow does not start.
    async fn on_scheduled(&self, ctx: &ProcessContext) -> Result<(), ProcessError> {
        let _ = ctx;
        Ok(())
    }

    /// Does one unit of work in `session`. The scheduler commits the session
    /// when this returns `Ok` (unless the processor committed it already) and
    /// rolls it back on `Err`.
    ///
    /// # Errors
    /// The session is rolled back and the processor yields.
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError>;

    /// Called once after the last trigger: stop listeners, flush clients.
    async fn on_stopped(&self, ctx: &ProcessContext) {
        let _ = ctx;
    }
}
