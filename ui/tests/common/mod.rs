//! Shared pieces of the UI tests: real engines built from YAML flows.
//!
//! The flows use the shipped processors (UpdateAttribute) plus two small test
//! types defined here: `TestSource`, a source with a secret property (no
//! shipped source has one yet), and `TestAlarm`, a source whose every trigger
//! fails, so bulletins appear on its box.

#![allow(dead_code, clippy::unwrap_used)]

use std::cell::RefCell;
use std::fmt::Write;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use sluice_runtime::{
    BuildContext, BuildError, Engine, EngineOptions, FlowSpec, InputRequirement, Level,
    ProcessContext, ProcessError, ProcessSession, Processor, ProcessorType, PropKind, Properties,
    PropertyDescriptor, RelationshipDef, async_trait, parse_flow,
};
use sluice_ui::{UiState, router};
use tower::ServiceExt;

pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A secret written literally in a flow file.
pub const LITERAL_SECRET: &str = "hunter2-literal-secret";
/// A secret that reaches a flow through `${env:UI_TEST_SECRET}`.
pub const ENV_SECRET: &str = "s3cr3t-from-the-environment";
/// The value of `${env:UI_TEST_URL}`, used in a non-sensitive property.
pub const ENV_URL: &str = "https://internal.example.test/hook";
/// The value of `${env:UI_TEST_SLACK}`: a webhook whose path is the secret
/// (nothing listens on port 9 here, so deliveries fail and are retried).
pub const SLACK_WEBHOOK: &str = "http://127.0.0.1:9/services/T0001/B0002/xoxSecretWebhookPart";

const SOURCE_PROPS: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "count",
        PropKind::Integer {
            min: 0,
            max: i64::MAX,
        },
        Some("0"),
        "FlowFiles to make in all (0 = no limit).",
    ),
    PropertyDescriptor::optional(
        "batch",
        PropKind::Integer {
            min: 1,
            max: 10_000,
        },
        Some("1"),
        "FlowFiles per trigger.",
    ),
    PropertyDescriptor::optional(
        "size",
        PropKind::Integer {
            min: 0,
            max: 1_000_000,
        },
        Some("16"),
        "Content bytes.",
    ),
    PropertyDescriptor::optional("url", PropKind::Text, None, "Where it pretends to log in."),
    PropertyDescriptor::optional("password", PropKind::Text, None, "Password for the login.")
        .secret(),
    PropertyDescriptor::optional(
        "leak",
        PropKind::Bool,
        Some("false"),
        "Puts the password in a bulletin and in attributes, as a careless processor might.",
    ),
];

/// A source of numbered FlowFiles (`seq` attribute), counted in `generated`.
pub struct TestSourceType;

impl ProcessorType for TestSourceType {
    fn name(&self) -> &'static str {
        "TestSource"
    }
    fn description(&self) -> &'static str {
        "Test source: numbered FlowFiles."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        SOURCE_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "Every FlowFile made.")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(TestSource {
            count: u64::try_from(p.int("count")?).unwrap_or(0),
            batch: p.usize("batch")?,
            size: p.usize("size")?,
            url: p.str_opt("url")?.unwrap_or_default().to_string(),
            password: p.str_opt("password")?.unwrap_or_default().to_string(),
            leak: p.bool("leak")?,
            made: AtomicU64::new(0),
        }))
    }
    fn example(&self) -> &'static str {
        "count: 10"
    }
}

struct TestSource {
    count: u64,
    batch: usize,
    size: usize,
    url: String,
    password: String,
    leak: bool,
    made: AtomicU64,
}

#[async_trait]
impl Processor for TestSource {
    async fn on_scheduled(&self, ctx: &ProcessContext) -> Result<(), ProcessError> {
        if self.leak {
            ctx.bulletin(
                Level::Warn,
                format!("logged in to {} with password {}", self.url, self.password),
            );
        }
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        s: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let counter = ctx.counter("generated");
        for _ in 0..self.batch {
            let n = self.made.load(Ordering::Relaxed);
            if self.count > 0 && n >= self.count {
                break;
            }
            self.made.store(n + 1, Ordering::Relaxed);
            let mut ff = s.create();
            ff.attributes.insert("seq", (n + 1).to_string());
            if self.leak {
                ff.attributes
                    .insert("login.password", self.password.clone());
                ff.attributes
                    .insert("note", format!("logged in with {}", self.password));
            }
            s.write(&mut ff, vec![b'x'; self.size]);
            s.transfer(ff, "success");
            counter.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

const ALARM_PROPS: &[PropertyDescriptor] = &[PropertyDescriptor::required(
    "message",
    PropKind::NonEmpty,
    "The error every trigger fails with.",
)];

/// A source whose every trigger fails with `message` (a bulletin each time).
pub struct TestAlarmType;

impl ProcessorType for TestAlarmType {
    fn name(&self) -> &'static str {
        "TestAlarm"
    }
    fn description(&self) -> &'static str {
        "Test source that always fails."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        ALARM_PROPS
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new("success", "Nothing ever.")]
    }
    fn build(&self, p: &Properties, _: &BuildContext) -> Result<Box<dyn Processor>, BuildError> {
        Ok(Box::new(TestAlarm(p.str("message")?.to_string())))
    }
    fn example(&self) -> &'static str {
        "message: boom"
    }
}

struct TestAlarm(String);

#[async_trait]
impl Processor for TestAlarm {
    async fn on_trigger(
        &self,
        _: &ProcessContext,
        _: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        Err(ProcessError::new(self.0.clone()))
    }
}

fn env(name: &str) -> Option<String> {
    match name {
        "UI_TEST_SECRET" => Some(ENV_SECRET.into()),
        "UI_TEST_URL" => Some(ENV_URL.into()),
        "UI_TEST_SLACK" => Some(SLACK_WEBHOOK.into()),
        _ => None,
    }
}

/// A flow spec from YAML text, with the shipped processors and the test types.
pub fn spec(yaml: &str) -> FlowSpec {
    let mut registry = sluice_processors::registry();
    registry.register(Arc::new(TestSourceType));
    registry.register(Arc::new(TestAlarmType));
    parse_flow(yaml, Path::new("/flows/ui-test.yaml"), &registry, &env)
        .unwrap_or_else(|e| panic!("test flow does not validate:\n{e}"))
}

/// Starts a flow from YAML text.
pub async fn start(yaml: &str) -> Arc<Engine> {
    Engine::start(spec(yaml), EngineOptions::default())
        .await
        .unwrap()
}

pub fn state(engine: &Arc<Engine>, open_reads: bool) -> UiState {
    UiState::new(engine.clone(), TOKEN, open_reads)
}

pub fn app(engine: &Arc<Engine>) -> Router {
    router(state(engine, true))
}

/// Sends one request through the router (no socket).
pub async fn call(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

pub fn post(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::post(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

pub async fn body(resp: Response<Body>) -> Bytes {
    resp.into_body().collect().await.unwrap().to_bytes()
}

/// GET `uri`, expecting 200, as text.
pub async fn get_text(app: &Router, uri: &str) -> String {
    let resp = call(app, get(uri)).await;
    let status = resp.status();
    let text = String::from_utf8(body(resp).await.to_vec()).unwrap();
    assert_eq!(status, StatusCode::OK, "GET {uri}: {text}");
    text
}

/// GET `uri`, expecting 200, as JSON.
pub async fn get_json(app: &Router, uri: &str) -> serde_json::Value {
    serde_json::from_str(&get_text(app, uri).await).unwrap()
}

/// Percent-encodes a path segment (connection ids contain `->`).
pub fn enc(segment: &str) -> String {
    let mut out = String::new();
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Polls `check` until it returns `Some` (testkit's `wait_until_async`), or
/// panics after `secs`.
pub async fn eventually<T, F, Fut>(secs: u64, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let found = RefCell::new(None);
    sluice_testkit::wait_until_async(Duration::from_secs(secs), || {
        let fut = check();
        let found = &found;
        async move {
            let v = fut.await;
            let done = v.is_some();
            *found.borrow_mut() = v;
            done
        }
    })
    .await
    .unwrap_or_else(|e| panic!("waiting for {what}: {e}"));
    found.into_inner().unwrap()
}

/// The status entry of processor `id` in a `/api/status` body.
pub fn processor<'a>(status: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    status["processors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no processor {id} in {status}"))
}

/// The status entry of connection `id` in a `/api/status` body.
pub fn connection<'a>(status: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    status["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no connection {id} in {status}"))
}
