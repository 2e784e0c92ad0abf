//! Flow unit tests: YAML test cases beside a flow, run without the network.
//!
//! ```yaml
//! flow: syslog-to-chat.yaml          # relative to this file
//! env: { SLACK_WEBHOOK_URL: "http://chat.invalid/hook" }
//! cases:
//!   - name: errors are red
//!     inject:
//!       at: listen                   # a source: the FlowFiles leave it on `relationship`
//!       relationship: success        # (default); any other processor: they enter its input
//!       flowfiles:
//!         - content: "disk full"
//!           attributes: { syslog.severity: "3" }
//!     simulate: { slack: failure }   # a replaced sink sends everything to this relationship
//!     expect:
//!       - at: route.urgent           # processor.relationship, or a connection id
//!         count: 1
//!         flowfiles:                 # in order; each lists only what it checks
//!           - attributes: { colour: danger }
//!             content: "exact body"
//!             content_contains: [disk]
//!             json: { text: "disk full" }   # content parsed as JSON contains this
//! ```
//!
//! Sources are replaced by injection points and processors whose type says
//! [`ProcessorType::is_external`] by capture points that transfer everything
//! to `success` (or the relationship named under `simulate`). Each case runs
//! on a fresh in-memory engine until the flow is idle.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value as Json;

use crate::engine::{Engine, EngineOptions};
use crate::flowfile::{Content, FlowFile};
use crate::processor::{
    BuildContext, BuildError, InputRequirement, ProcessContext, ProcessError, Processor,
    ProcessorType, RelationshipDef,
};
use crate::properties::{Properties, PropertyDescriptor};
use crate::registry::Registry;
use crate::session::{ProcessSession, Tap};
use crate::spec::{FlowSpec, parse_flow};

/// A test file could not be run (as opposed to a failing case).
#[derive(Debug, thiserror::Error)]
pub enum FlowTestError {
    /// Reading a file failed.
    #[error("{path}: {source}")]
    Io {
        /// File.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The test file is malformed.
    #[error("{path}: {message}")]
    Format {
        /// File.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The flow under test does not validate or start.
    #[error("{0}")]
    Flow(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TestFile {
    flow: String,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    inject: Inject,
    #[serde(default)]
    simulate: BTreeMap<String, String>,
    #[serde(default)]
    expect: Vec<Expect>,
    #[serde(default)]
    timeout: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Inject {
    at: String,
    #[serde(default = "success")]
    relationship: String,
    flowfiles: Vec<InputFlowFile>,
}

fn success() -> String {
    "success".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFlowFile {
    #[serde(default)]
    content: String,
    #[serde(default)]
    attributes: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    at: String,
    #[serde(default)]
    count: Option<usize>,
    #[serde(default)]
    flowfiles: Vec<ExpectFlowFile>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ExpectFlowFile {
    #[serde(default)]
    attributes: BTreeMap<String, String>,
    #[serde(default)]
    absent_attributes: Vec<String>,
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    content_contains: Vec<String>,
    #[serde(default)]
    json: Option<Json>,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// Case name.
    pub name: String,
    /// Empty when it passed; otherwise one line per difference.
    pub differences: Vec<String>,
}

/// The results of one test file.
#[derive(Debug, Clone)]
pub struct FileResult {
    /// The test file.
    pub path: PathBuf,
    /// The flow it tests.
    pub flow: PathBuf,
    /// Per case.
    pub cases: Vec<CaseResult>,
}

impl FileResult {
    /// Whether every case passed.
    #[must_use]
    pub fn passed(&self) -> bool {
        self.cases.iter().all(|c| c.differences.is_empty())
    }

    /// A readable report: one line per case, differences indented under failures.
    #[must_use]
    pub fn report(&self) -> String {
        let mut out = String::new();
        for c in &self.cases {
            if c.differences.is_empty() {
                let _ = writeln!(out, "ok   {}: {}", self.path.display(), c.name);
            } else {
                let _ = writeln!(out, "FAIL {}: {}", self.path.display(), c.name);
                for d in &c.differences {
                    let _ = writeln!(out, "       {d}");
                }
            }
        }
        out
    }
}

/// The test file beside `flow` (`x.yaml` -> `x.test.yaml`), if `path` is a flow
/// rather than a test file.
#[must_use]
pub fn test_file_for(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.ends_with(".test.yaml") {
        return path.to_path_buf();
    }
    let stem = name.trim_end_matches(".yaml").trim_end_matches(".yml");
    path.with_file_name(format!("{stem}.test.yaml"))
}

/// Runs every case of the test file at `path` (or beside the flow at `path`).
///
/// # Errors
/// The test file or flow cannot be read or does not validate.
pub async fn run_file(path: &Path, registry: &Registry) -> Result<FileResult, FlowTestError> {
    let path = test_file_for(path);
    let text = std::fs::read_to_string(&path).map_err(|source| FlowTestError::Io {
        path: path.clone(),
        source,
    })?;
    let file: TestFile = serde_saphyr::from_str_with_options(
        &text,
        serde_saphyr::options! { strict_booleans: true },
    )
    .map_err(|e| FlowTestError::Format {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let flow_path = path.parent().unwrap_or(Path::new(".")).join(&file.flow);
    let flow_text = std::fs::read_to_string(&flow_path).map_err(|source| FlowTestError::Io {
        path: flow_path.clone(),
        source,
    })?;
    let env = file.env.clone();
    let lookup = move |k: &str| env.get(k).cloned().or_else(|| std::env::var(k).ok());
    let spec = parse_flow(&flow_text, &flow_path, registry, &lookup)
        .map_err(|e| FlowTestError::Flow(e.to_string()))?;
    let mut cases = Vec::new();
    for case in &file.cases {
        let differences = run_case(&spec, case, &path).await?;
        cases.push(CaseResult {
            name: case.name.clone(),
            differences,
        });
    }
    Ok(FileResult {
        path,
        flow: flow_path,
        cases,
    })
}

/// Stands in for a source or an external sink.
struct StandIn {
    relationships: Vec<RelationshipDef>,
    input: InputRequirement,
    route_to: String,
    inject: Arc<Mutex<Vec<FlowFile>>>,
}

impl ProcessorType for StandIn {
    fn name(&self) -> &'static str {
        "TestStandIn"
    }
    fn description(&self) -> &'static str {
        "injection or capture point of a flow unit test"
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        &[]
    }
    fn input(&self) -> InputRequirement {
        self.input
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        self.relationships.clone()
    }
    fn build(&self, _: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(StandInProcessor {
            route_to: self.route_to.clone(),
            inject: self.inject.clone(),
        }))
    }
    fn example(&self) -> &'static str {
        "{}"
    }
}

struct StandInProcessor {
    route_to: String,
    inject: Arc<Mutex<Vec<FlowFile>>>,
}

#[crate::async_trait]
impl Processor for StandInProcessor {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let injected: Vec<FlowFile> = std::mem::take(&mut *self.inject.lock());
        for template in injected {
            let mut ff = session.receive("test://inject");
            ff.attributes = template.attributes;
            ff.content = template.content;
            session.transfer(ff, &self.route_to);
        }
        for ff in session.get_batch(ctx.scheduling().batch_size) {
            session.transfer(ff, &self.route_to);
        }
        Ok(())
    }
}

#[allow(clippy::too_many_lines)]
async fn run_case(spec: &FlowSpec, case: &Case, path: &Path) -> Result<Vec<String>, FlowTestError> {
    let bad = |message: String| FlowTestError::Format {
        path: path.to_path_buf(),
        message: format!("case `{}`: {message}", case.name),
    };
    let mut spec = spec.clone();
    let injector: Arc<Mutex<Vec<FlowFile>>> = Arc::default();
    let mut direct_input: Option<String> = None;
    if spec.processor(&case.inject.at).is_none() {
        return Err(bad(format!("inject.at: no processor `{}`", case.inject.at)));
    }
    for p in &mut spec.processors {
        let is_source = p.kind.input() == InputRequirement::Forbidden;
        if !(is_source || p.kind.is_external()) {
            if p.id == case.inject.at {
                direct_input = Some(p.id.clone());
            }
            continue;
        }
        let route_to = if is_source && p.id == case.inject.at {
            case.inject.relationship.clone()
        } else if is_source {
            p.relationships
                .first()
                .map_or_else(success, |r| r.name.clone())
        } else {
            case.simulate.get(&p.id).cloned().unwrap_or_else(success)
        };
        if !p.relationships.iter().any(|r| r.name == route_to) && !p.relationships.is_empty() {
            return Err(bad(format!(
                "processor `{}` has no relationship `{route_to}`",
                p.id
            )));
        }
        let inject = if is_source && p.id == case.inject.at {
            injector.clone()
        } else {
            Arc::default()
        };
        p.kind = Arc::new(StandIn {
            relationships: p.relationships.clone(),
            input: p.kind.input(),
            route_to,
            inject,
        });
    }
    let inputs: Vec<FlowFile> = case
        .inject
        .flowfiles
        .iter()
        .map(|i| {
            let mut ff = FlowFile::new();
            for (k, v) in &i.attributes {
                ff.attributes.insert(k.as_str(), v.as_str());
            }
            ff.content = Content::Memory(Bytes::from(i.content.clone().into_bytes()));
            ff
        })
        .collect();
    let engine = Engine::start(spec.clone(), EngineOptions::default())
        .await
        .map_err(|e| FlowTestError::Flow(e.to_string()))?;
    // Taps before any data moves.
    let mut taps: Vec<(usize, Vec<Tap>)> = Vec::new();
    for (i, e) in case.expect.iter().enumerate() {
        let mut t = Vec::new();
        if let Some(c) = spec.connections.iter().find(|c| c.id == e.at) {
            for r in &c.relationships {
                t.extend(engine.tap(&c.from, r));
            }
        } else if let Some((p, r)) = e.at.rsplit_once('.') {
            match spec.processor(p) {
                Some(ps) if ps.relationships.iter().any(|x| x.name == r) => {
                    t.extend(engine.tap(p, r));
                }
                _ => {
                    engine.shutdown(Duration::from_secs(1)).await;
                    return Err(bad(format!(
                        "expect.at: `{}` is neither a connection id nor processor.relationship",
                        e.at
                    )));
                }
            }
        } else {
            engine.shutdown(Duration::from_secs(1)).await;
            return Err(bad(format!(
                "expect.at: `{}` is neither a connection id nor processor.relationship",
                e.at
            )));
        }
        taps.push((i, t));
    }
    if let Some(id) = &direct_input {
        if let Some((_, c)) = engine.connections().into_iter().find(|(s, _)| &s.to == id) {
            c.push_batch(inputs);
        } else {
            engine.shutdown(Duration::from_secs(1)).await;
            return Err(bad(format!(
                "processor `{id}` has no input connection to inject into"
            )));
        }
    } else {
        injector.lock().extend(inputs);
        if let Some(n) = engine.node(&case.inject.at) {
            n.context().wake();
        }
    }
    let timeout = case
        .timeout
        .as_deref()
        .map(crate::properties::parse_duration)
        .transpose()
        .map_err(bad)?
        .unwrap_or(Duration::from_secs(30));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut diffs = Vec::new();
    loop {
        let injected = injector.lock().is_empty();
        if injected && engine.is_quiescent() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            diffs.push(format!(
                "the flow was still busy after {timeout:?} (FlowFiles queued or penalised)"
            ));
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    engine.shutdown(Duration::from_secs(5)).await;
    for (i, t) in taps {
        let e = &case.expect[i];
        let got: Vec<FlowFile> = t.iter().flat_map(|t| t.lock().clone()).collect();
        compare(e, &got, &mut diffs);
    }
    Ok(diffs)
}

fn text(ff: &FlowFile) -> String {
    match &ff.content {
        Content::Memory(b) => String::from_utf8_lossy(b).into_owned(),
        Content::Stored(s) => s
            .read()
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default(),
    }
}

fn compare(e: &Expect, got: &[FlowFile], diffs: &mut Vec<String>) {
    if let Some(n) = e.count
        && got.len() != n
    {
        diffs.push(format!(
            "at {}: expected {n} FlowFile(s), got {}",
            e.at,
            got.len()
        ));
    }
    for (i, want) in e.flowfiles.iter().enumerate() {
        let Some(ff) = got.get(i) else {
            diffs.push(format!(
                "at {}: FlowFile #{} expected, none arrived",
                e.at,
                i + 1
            ));
            continue;
        };
        let here = format!("at {}, FlowFile #{}", e.at, i + 1);
        for (k, v) in &want.attributes {
            match ff.attr(k) {
                Some(actual) if actual == v => {}
                Some(actual) => diffs.push(format!(
                    "{here}: attribute `{k}`\n         - expected: {v:?}\n         + actual:   {actual:?}"
                )),
                None => diffs.push(format!("{here}: attribute `{k}` is missing (expected {v:?})")),
            }
        }
        for k in &want.absent_attributes {
            if let Some(actual) = ff.attr(k) {
                diffs.push(format!(
                    "{here}: attribute `{k}` should be absent, is {actual:?}"
                ));
            }
        }
        let body = text(ff);
        if let Some(c) = &want.content
            && &body != c
        {
            diffs.push(format!(
                "{here}: content\n         - expected: {c:?}\n         + actual:   {body:?}"
            ));
        }
        for needle in &want.content_contains {
            if !body.contains(needle.as_str()) {
                diffs.push(format!(
                    "{here}: content does not contain {needle:?}; content: {body:?}"
                ));
            }
        }
        if let Some(j) = &want.json {
            match serde_json::from_str::<Json>(&body) {
                Ok(actual) => json_subset(j, &actual, "$", &here, diffs),
                Err(err) => diffs.push(format!("{here}: content is not JSON ({err}): {body:?}")),
            }
        }
    }
}

fn json_subset(want: &Json, got: &Json, path: &str, here: &str, diffs: &mut Vec<String>) {
    match (want, got) {
        (Json::Object(w), Json::Object(g)) => {
            for (k, wv) in w {
                match g.get(k) {
                    Some(gv) => json_subset(wv, gv, &format!("{path}.{k}"), here, diffs),
                    None => diffs.push(format!(
                        "{here}: JSON {path}.{k} is missing (expected {wv})"
                    )),
                }
            }
        }
        (Json::Array(w), Json::Array(g)) => {
            for (i, wv) in w.iter().enumerate() {
                match g.get(i) {
                    Some(gv) => json_subset(wv, gv, &format!("{path}[{i}]"), here, diffs),
                    None => diffs.push(format!(
                        "{here}: JSON {path}[{i}] is missing (expected {wv})"
                    )),
                }
            }
        }
        (w, g) if w == g => {}
        (w, g) => diffs.push(format!(
            "{here}: JSON {path}\n         - expected: {w}\n         + actual:   {g}"
        )),
    }
}
