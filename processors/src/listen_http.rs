//! ListenHTTP: an HTTP server whose requests become FlowFiles.
//!
//! The server (axum) starts in `on_scheduled` and stops in `on_stopped`. Each
//! accepted request's body becomes the content, with the attributes
//! `http.method`, `http.path`, `http.query` (raw, when present),
//! `http.query.<name>` for each query parameter (percent-decoded; a repeated
//! parameter's values joined with `, `), `http.remote.addr` and
//! `http.remote.port`, `http.header.<lower-case name>`
//! for each header picked by `header_attributes` (repeated headers joined with
//! `, `), and `mime.type` from `Content-Type`.
//!
//! Nothing accepted is lost: the handler hands the request to the processor
//! through a bounded queue (`max_pending`) and waits; a trigger turns up to
//! `batch_size` waiting requests into FlowFiles, commits the session itself,
//! and only then answers each `200` with `{"status":"accepted","flowfile":ID}`.
//! If the commit fails they get `503` and nothing was kept.
//!
//! Other answers, each counted:
//! - `503` with `Retry-After` (`retry_after`, in whole seconds) when an
//!   outgoing connection is back-pressured or the queue of waiting requests is
//!   full (`rejected.backpressure`), when a request waited `request_timeout`
//!   without a trigger (`rejected.timeout`; such a request is then skipped,
//!   never committed), and while stopping (`rejected.stopping`);
//! - `503` when the commit failed (`rejected.not_stored`);
//! - `413` over `max_body_size` (`rejected.too_large`);
//! - `404` for a path not in `path` (`rejected.not_found`), `405` for a method
//!   not in `methods` (`rejected.method`).
//!
//! The back-pressure state is read after every commit (the scheduler does not
//! trigger a back-pressured processor, so it cannot change in between but by
//! draining); requests already waiting when it sets in are answered 503 at
//! once. The bound port is the counter `listen.port` and the address is in an
//! info bulletin (`port: 0` takes any free port).
//!
//! Stopping: new requests get 503, the waiting ones get 503, then the server
//! shuts down gracefully.
//!
//! ```yaml
//! listen:
//!   type: ListenHTTP
//!   properties:
//!     port: 8081
//!     path: [/ingest, /api/*]
//!     max_body_size: 1 MB
//!     header_attributes: [x-*, content-type]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use parking_lot::Mutex;
use sluice_runtime::{
    AttrStr, BuildContext, BuildError, InputRequirement, Level, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, async_trait,
};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use crate::name_pattern::NamePatterns;

/// Every request accepted, as a FlowFile.
pub const SUCCESS: &str = "success";

const METHODS: &[&str] = &["GET", "POST", "PUT", "PATCH", "DELETE"];
/// How long `on_stopped` waits for open connections to finish.
const STOP_GRACE: Duration = Duration::from_secs(5);

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "address",
        PropKind::NonEmpty,
        Some("127.0.0.1"),
        "Address to listen on (0.0.0.0 for every interface).",
    ),
    PropertyDescriptor::required(
        "port",
        PropKind::Integer { min: 0, max: 65535 },
        "TCP port; 0 takes any free port (see the counter `listen.port`).",
    ),
    PropertyDescriptor::optional(
        "path",
        PropKind::ListOf(&PropKind::NonEmpty),
        Some("/"),
        "Accepted paths; `*` matches any run of characters (`/api/*`). Others get 404.",
    ),
    PropertyDescriptor::optional(
        "methods",
        PropKind::ListOf(&PropKind::Choice(METHODS)),
        Some("POST, PUT"),
        "Accepted methods. Others get 405.",
    ),
    PropertyDescriptor::optional(
        "max_body_size",
        PropKind::DataSize,
        Some("10 MB"),
        "Largest request body accepted; larger ones get 413.",
    ),
    PropertyDescriptor::optional(
        "header_attributes",
        PropKind::ListOf(&PropKind::NonEmpty),
        Some("*"),
        "Headers (case-insensitive names or `*` patterns) copied to `http.header.<lower-case name>`.",
    ),
    PropertyDescriptor::optional(
        "retry_after",
        PropKind::Duration,
        Some("1s"),
        "Retry-After sent with 503 (rounded up to whole seconds).",
    ),
    PropertyDescriptor::optional(
        "max_pending",
        PropKind::Integer {
            min: 1,
            max: 1_000_000,
        },
        Some("1000"),
        "Requests that may wait for a trigger; more get 503.",
    ),
    PropertyDescriptor::optional(
        "request_timeout",
        PropKind::Duration,
        Some("30s"),
        "How long a request waits for its commit before it gets 503 (and is dropped).",
    ),
];

/// The registry entry.
pub struct ListenHttpType;

impl ProcessorType for ListenHttpType {
    fn name(&self) -> &'static str {
        "ListenHTTP"
    }
    fn description(&self) -> &'static str {
        "HTTP server: each request body becomes a FlowFile with method, path, query, remote address and headers as attributes; answers 200 only after commit, 503 + Retry-After under back-pressure, 413 over the size limit."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Forbidden
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![RelationshipDef::new(
            SUCCESS,
            "Every request accepted, as a FlowFile.",
        )]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let pos = |n: &str| props.raw(n).map(sluice_runtime::PropValue::pos);
        match props.list("path") {
            Ok(paths) => {
                for p in paths.iter().filter(|p| !p.starts_with('/')) {
                    errs.push(PropertyError {
                        name: "path".into(),
                        message: format!("`{p}` must start with `/`"),
                        pos: pos("path"),
                    });
                }
            }
            Err(e) => errs.push(e),
        }
        if let Ok(a) = props.str("address")
            && a.parse::<std::net::IpAddr>().is_err()
        {
            errs.push(PropertyError {
                name: "address".into(),
                message: format!("`{a}` is not an IP address (such as 127.0.0.1 or ::1)"),
                pos: pos("address"),
            });
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        _: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let address: std::net::IpAddr = props
            .str("address")?
            .parse()
            .map_err(|e| BuildError::Other(format!("address: {e}")))?;
        let port = u16::try_from(props.int("port")?)
            .map_err(|_| BuildError::Other("port: out of range".into()))?;
        let retry = props.duration("retry_after")?;
        let retry_secs = retry.as_secs() + u64::from(retry.subsec_nanos() > 0);
        let config = Config {
            bind: SocketAddr::new(address, port),
            paths: NamePatterns::new(props.list("path")?),
            methods: props.list("methods")?,
            max_body: props.data_size("max_body_size")?,
            headers: NamePatterns::ignoring_case(&props.list("header_attributes")?),
            retry_after: HeaderValue::from(retry_secs.max(1)),
            max_pending: props.usize("max_pending")?.max(1),
            request_timeout: props.duration("request_timeout")?,
        };
        Ok(Box::new(ListenHttp {
            config: Arc::new(config),
            running: Mutex::new(None),
            requests: Mutex::new(None),
        }))
    }
    fn example(&self) -> &'static str {
        "port: 8081\npath: [/ingest, /api/*]\nmax_body_size: 1 MB\nheader_attributes: [x-*, content-type]"
    }
}

struct Config {
    bind: SocketAddr,
    paths: NamePatterns,
    methods: Vec<String>,
    max_body: u64,
    headers: NamePatterns,
    retry_after: HeaderValue,
    max_pending: usize,
    request_timeout: Duration,
}

/// A request waiting for its commit.
struct Pending {
    attributes: Vec<(AttrStr, AttrStr)>,
    body: Bytes,
    uri: String,
    reply: oneshot::Sender<Reply>,
}

/// What the processor tells a waiting handler.
enum Reply {
    /// Committed as this FlowFile.
    Accepted(u64),
    /// Not kept; try again later.
    Unavailable(String),
}

/// Counters of rejected requests.
struct Counters {
    backpressure: Arc<AtomicU64>,
    too_large: Arc<AtomicU64>,
    timeout: Arc<AtomicU64>,
    stopping: Arc<AtomicU64>,
    not_found: Arc<AtomicU64>,
    method: Arc<AtomicU64>,
    not_stored: Arc<AtomicU64>,
}

/// What the HTTP handlers share with the processor.
struct Shared {
    config: Arc<Config>,
    tx: mpsc::Sender<Pending>,
    waker: Arc<Notify>,
    back_pressured: AtomicBool,
    stopping: AtomicBool,
    local: SocketAddr,
    counters: Counters,
}

struct Running {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

struct ListenHttp {
    config: Arc<Config>,
    running: Mutex<Option<Running>>,
    requests: Mutex<Option<mpsc::Receiver<Pending>>>,
}

fn json_response(status: StatusCode, body: &serde_json::Value) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body.to_string(),
    )
        .into_response()
}

/// 503 with Retry-After; `counter` is counted unless the processor counted already.
fn unavailable(sh: &Shared, counter: Option<&AtomicU64>, why: &str) -> Response {
    if let Some(c) = counter {
        c.fetch_add(1, Ordering::Relaxed);
    }
    let mut r = json_response(
        StatusCode::SERVICE_UNAVAILABLE,
        &serde_json::json!({"status": "unavailable", "error": why}),
    );
    r.headers_mut()
        .insert(header::RETRY_AFTER, sh.config.retry_after.clone());
    r
}

fn too_large(sh: &Shared) -> Response {
    sh.counters.too_large.fetch_add(1, Ordering::Relaxed);
    json_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        &serde_json::json!({"status": "too large", "limit": sh.config.max_body}),
    )
}

/// Reads the body, refusing it as soon as it passes `max` bytes.
async fn read_body(body: Body, max: u64) -> Result<Option<Bytes>, axum::Error> {
    let mut stream = body.into_data_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if (buf.len() + chunk.len()) as u64 > max {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Some(buf.freeze()))
}

fn request_attributes(
    sh: &Shared,
    parts: &axum::http::request::Parts,
    remote: SocketAddr,
) -> Vec<(AttrStr, AttrStr)> {
    let mut attrs: Vec<(AttrStr, AttrStr)> = vec![
        ("http.method".into(), parts.method.as_str().into()),
        ("http.path".into(), parts.uri.path().into()),
        ("http.remote.addr".into(), remote.ip().to_string().into()),
        ("http.remote.port".into(), remote.port().to_string().into()),
    ];
    if let Some(q) = parts.uri.query() {
        attrs.push(("http.query".into(), q.into()));
        attrs.extend(query_attributes(&parts.uri));
    }
    if let Some(ct) = parts.headers.get(header::CONTENT_TYPE) {
        attrs.push((
            "mime.type".into(),
            String::from_utf8_lossy(ct.as_bytes()).into(),
        ));
    }
    if !sh.config.headers.is_empty() {
        for name in parts.headers.keys() {
            // Header names are lower case in `http`.
            if !sh.config.headers.matches(name.as_str()) {
                continue;
            }
            let values: Vec<String> = parts
                .headers
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            attrs.push((
                format!("http.header.{}", name.as_str()).into(),
                values.join(", ").into(),
            ));
        }
    }
    attrs
}

/// `http.query.<name>` for each parameter of the query string, decoded; the
/// values of a repeated parameter joined with `, `. A query that does not
/// decode is only kept raw (in `http.query`).
fn query_attributes(uri: &axum::http::Uri) -> Vec<(AttrStr, AttrStr)> {
    let Ok(axum::extract::Query(pairs)) =
        axum::extract::Query::<Vec<(String, String)>>::try_from_uri(uri)
    else {
        return Vec::new();
    };
    let mut joined: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        match joined.iter_mut().find(|(name, _)| *name == k) {
            Some((_, acc)) => {
                acc.push_str(", ");
                acc.push_str(&v);
            }
            None => joined.push((k, v)),
        }
    }
    joined
        .into_iter()
        .map(|(k, v)| (format!("http.query.{k}").into(), v.into()))
        .collect()
}

async fn handle(
    State(sh): State<Arc<Shared>>,
    ConnectInfo(remote): ConnectInfo<SocketAddr>,
    req: Request,
) -> Response {
    let (parts, body) = req.into_parts();
    if !sh.config.paths.matches(parts.uri.path()) {
        sh.counters.not_found.fetch_add(1, Ordering::Relaxed);
        return json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"status": "not found", "path": parts.uri.path()}),
        );
    }
    if !sh.config.methods.iter().any(|m| m == parts.method.as_str()) {
        sh.counters.method.fetch_add(1, Ordering::Relaxed);
        let mut r = json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"status": "method not allowed", "allowed": sh.config.methods}),
        );
        if let Ok(v) = HeaderValue::from_str(&sh.config.methods.join(", ")) {
            r.headers_mut().insert(header::ALLOW, v);
        }
        return r;
    }
    if sh.stopping.load(Ordering::Relaxed) {
        return unavailable(&sh, Some(&sh.counters.stopping), "stopping");
    }
    if sh.back_pressured.load(Ordering::Relaxed) {
        return unavailable(&sh, Some(&sh.counters.backpressure), "back-pressure");
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > sh.config.max_body) {
        return too_large(&sh);
    }
    let body = match read_body(body, sh.config.max_body).await {
        Ok(Some(b)) => b,
        Ok(None) => return too_large(&sh),
        Err(e) => {
            return json_response(
                StatusCode::BAD_REQUEST,
                &serde_json::json!({"status": "bad request", "error": e.to_string()}),
            );
        }
    };
    let (reply, answer) = oneshot::channel();
    let pending = Pending {
        attributes: request_attributes(&sh, &parts, remote),
        body,
        uri: format!("http://{}{}", sh.local, parts.uri.path()),
        reply,
    };
    match sh.tx.try_send(pending) {
        Ok(()) => sh.waker.notify_waiters(),
        Err(mpsc::error::TrySendError::Full(_)) => {
            return unavailable(
                &sh,
                Some(&sh.counters.backpressure),
                "too many requests waiting",
            );
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            return unavailable(&sh, Some(&sh.counters.stopping), "stopping");
        }
    }
    match tokio::time::timeout(sh.config.request_timeout, answer).await {
        Ok(Ok(Reply::Accepted(id))) => json_response(
            StatusCode::OK,
            &serde_json::json!({"status": "accepted", "flowfile": id}),
        ),
        // Counted by the processor, which knows why.
        Ok(Ok(Reply::Unavailable(why))) => unavailable(&sh, None, &why),
        Ok(Err(_)) => unavailable(&sh, Some(&sh.counters.stopping), "stopping"),
        // Dropping `answer` marks the request abandoned: it is never committed.
        Err(_) => unavailable(
            &sh,
            Some(&sh.counters.timeout),
            "timed out waiting for the flow",
        ),
    }
}

impl ListenHttp {
    fn shared(&self) -> Option<Arc<Shared>> {
        self.running.lock().as_ref().map(|r| r.shared.clone())
    }

    /// Up to `max` waiting requests whose senders still wait.
    fn take_requests(&self, max: usize) -> Vec<Pending> {
        let mut out = Vec::new();
        let mut guard = self.requests.lock();
        let Some(rx) = guard.as_mut() else {
            return out;
        };
        while out.len() < max {
            match rx.try_recv() {
                Ok(p) if p.reply.is_closed() => {}
                Ok(p) => out.push(p),
                Err(_) => break,
            }
        }
        out
    }

    /// Answers every waiting request with 503.
    fn refuse_waiting(&self, counter: &AtomicU64, why: &str) {
        for p in self.take_requests(usize::MAX) {
            counter.fetch_add(1, Ordering::Relaxed);
            let _ = p.reply.send(Reply::Unavailable(why.to_string()));
        }
    }
}

#[async_trait]
impl Processor for ListenHttp {
    async fn on_scheduled(&self, ctx: &ProcessContext) -> Result<(), ProcessError> {
        let listener = tokio::net::TcpListener::bind(self.config.bind)
            .await
            .map_err(|e| {
                ProcessError::new(format!("cannot listen on {}: {e}", self.config.bind))
            })?;
        let local = listener
            .local_addr()
            .map_err(|e| ProcessError::new(format!("listening socket: {e}")))?;
        ctx.counter("listen.port")
            .store(u64::from(local.port()), Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.config.max_pending);
        let shared = Arc::new(Shared {
            config: self.config.clone(),
            tx,
            waker: ctx.waker(),
            back_pressured: AtomicBool::new(false),
            stopping: AtomicBool::new(false),
            local,
            counters: Counters {
                backpressure: ctx.counter("rejected.backpressure"),
                too_large: ctx.counter("rejected.too_large"),
                timeout: ctx.counter("rejected.timeout"),
                stopping: ctx.counter("rejected.stopping"),
                not_found: ctx.counter("rejected.not_found"),
                method: ctx.counter("rejected.method"),
                not_stored: ctx.counter("rejected.not_stored"),
            },
        });
        let app = Router::new()
            .fallback(handle)
            .with_state(shared.clone())
            .into_make_service_with_connect_info::<SocketAddr>();
        let (stop, mut stopped) = watch::channel(false);
        let id = ctx.id().to_string();
        let server = tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            });
            if let Err(e) = serve.await {
                tracing::error!(processor = %id, error = %e, "HTTP server failed");
            }
        });
        *self.requests.lock() = Some(rx);
        *self.running.lock() = Some(Running {
            shared,
            stop,
            server,
        });
        tracing::info!(processor = %ctx.id(), address = %local, "ListenHTTP listening");
        ctx.bulletin(Level::Info, format!("listening on http://{local}"));
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        let Some(sh) = self.shared() else {
            return Ok(());
        };
        sh.back_pressured
            .store(ctx.is_back_pressured(), Ordering::Relaxed);
        let batch = self.take_requests(ctx.scheduling().batch_size);
        if batch.is_empty() {
            return Ok(());
        }
        let mut accepted = Vec::with_capacity(batch.len());
        for p in batch {
            let mut ff = session.receive(&p.uri);
            ff.attributes.extend(p.attributes);
            session.write(&mut ff, p.body);
            accepted.push((ff.id, p.reply));
            session.transfer(ff, SUCCESS);
        }
        if let Err(e) = session.commit().await {
            sh.counters
                .not_stored
                .fetch_add(accepted.len() as u64, Ordering::Relaxed);
            for (_, reply) in accepted {
                let _ = reply.send(Reply::Unavailable(format!("not stored: {}", e.message)));
            }
            return Err(e);
        }
        for (id, reply) in accepted {
            // A client gone by now still had its FlowFile committed: it may
            // send again (at-least-once), nothing is lost.
            let _ = reply.send(Reply::Accepted(id));
        }
        let bp = ctx.is_back_pressured();
        sh.back_pressured.store(bp, Ordering::Relaxed);
        if bp {
            self.refuse_waiting(&sh.counters.backpressure, "back-pressure");
        }
        Ok(())
    }

    async fn on_stopped(&self, ctx: &ProcessContext) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        let sh = running.shared;
        sh.stopping.store(true, Ordering::Relaxed);
        if let Some(rx) = self.requests.lock().as_mut() {
            rx.close();
        }
        self.refuse_waiting(&sh.counters.stopping, "stopping");
        let _ = running.stop.send(true);
        let mut server = running.server;
        if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
            tracing::warn!(processor = %ctx.id(), "HTTP connections still open after the grace period; closed");
            server.abort();
        }
        *self.requests.lock() = None;
        ctx.bulletin(
            Level::Info,
            format!("stopped listening on http://{}", sh.local),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::Scheduling;
    use sluice_runtime::testing::{TestRunner, check_type_contract, props_from_yaml};
    use sluice_runtime::{Engine, EngineOptions, FlowFile, Journal, JournalError, parse_flow};

    const DEADLINE: Duration = Duration::from_secs(10);

    /// A runner with its own trigger loop, as the scheduler would drive it.
    struct Driven {
        runner: Arc<TestRunner>,
        task: JoinHandle<()>,
        base: String,
    }

    impl Driven {
        async fn start(yaml: &str) -> Self {
            let props = crate::test_props(&ListenHttpType, yaml);
            let runner = Arc::new(
                TestRunner::with_properties(&ListenHttpType, props, Scheduling::default()).unwrap(),
            );
            runner.schedule().await.unwrap();
            let port = runner.ctx.counter("listen.port").load(Ordering::Relaxed);
            assert_ne!(port, 0);
            let r = runner.clone();
            let task = tokio::spawn(async move {
                let waker = r.ctx.waker();
                loop {
                    let woken = waker.notified();
                    tokio::pin!(woken);
                    woken.as_mut().enable();
                    let _ = r.run_once().await;
                    // Woken by a request, or a scheduler-like idle tick.
                    tokio::select! {
                        () = woken => {}
                        () = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            });
            Self {
                runner,
                task,
                base: format!("http://127.0.0.1:{port}"),
            }
        }

        fn counter(&self, name: &str) -> u64 {
            self.runner.ctx.counter(name).load(Ordering::Relaxed)
        }

        async fn stop(self) {
            self.task.abort();
            self.runner.processor.on_stopped(&self.runner.ctx).await;
        }
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(DEADLINE)
            .build()
            .unwrap()
    }

    #[test]
    fn contract() {
        check_type_contract(&ListenHttpType, &crate::registry()).unwrap();
    }

    #[test]
    fn bad_paths_and_addresses_are_refused() {
        let reg = crate::registry();
        let err = props_from_yaml(&ListenHttpType, &reg, "port: 0\npath: ingest").unwrap_err();
        assert!(err.contains("must start with `/`"), "{err}");
        let err =
            props_from_yaml(&ListenHttpType, &reg, "port: 0\naddress: localhost").unwrap_err();
        assert!(err.contains("not an IP address"), "{err}");
        let err = props_from_yaml(&ListenHttpType, &reg, "port: 70000").unwrap_err();
        assert!(err.contains("out of range"), "{err}");
        let err =
            props_from_yaml(&ListenHttpType, &reg, "port: 0\nmethods: [POST, FETCH]").unwrap_err();
        assert!(err.contains("FETCH"), "{err}");
    }

    #[tokio::test]
    async fn answers_200_only_once_the_flowfile_is_committed() {
        let d = Driven::start("port: 0\nheader_attributes: [x-*, content-type]").await;
        let resp = client()
            .post(format!("{}/?a=1&b=two", d.base))
            .header("Content-Type", "application/json")
            .header("X-Request-Id", "r-1")
            .header("X-Multi", "one")
            .header("X-Multi", "two")
            .header("Cookie", "not copied")
            .body(r#"{"hello":"world"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        // At the moment the client has its 200, the FlowFile is in the output.
        let out = d.runner.take(SUCCESS);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["status"], "accepted");
        assert_eq!(out.len(), 1);
        let ff = &out[0];
        assert_eq!(body["flowfile"], serde_json::json!(ff.id));
        assert_eq!(TestRunner::text(ff), r#"{"hello":"world"}"#);
        assert_eq!(ff.attr("http.method"), Some("POST"));
        assert_eq!(ff.attr("http.path"), Some("/"));
        assert_eq!(ff.attr("http.query"), Some("a=1&b=two"));
        assert_eq!(ff.attr("http.query.a"), Some("1"));
        assert_eq!(ff.attr("http.query.b"), Some("two"));
        assert_eq!(ff.attr("http.remote.addr"), Some("127.0.0.1"));
        assert!(
            ff.attr("http.remote.port")
                .is_some_and(|p| p.parse::<u16>().is_ok())
        );
        assert_eq!(ff.attr("mime.type"), Some("application/json"));
        assert_eq!(
            ff.attr("http.header.content-type"),
            Some("application/json")
        );
        assert_eq!(ff.attr("http.header.x-request-id"), Some("r-1"));
        assert_eq!(ff.attr("http.header.x-multi"), Some("one, two"));
        assert_eq!(ff.attr("http.header.cookie"), None);
        // RECEIVE provenance for the FlowFile.
        let events = d.runner.provenance.lineage(ff.id);
        assert!(
            events
                .iter()
                .any(|e| e.kind == sluice_runtime::EventKind::Receive)
        );
        d.stop().await;
    }

    #[tokio::test]
    async fn all_headers_by_default_and_put_accepted() {
        let d = Driven::start("port: 0").await;
        let resp = client()
            .put(format!("{}/", d.base))
            .header("X-A", "1")
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out = d.runner.take(SUCCESS);
        assert_eq!(out[0].attr("http.method"), Some("PUT"));
        assert_eq!(out[0].attr("http.header.x-a"), Some("1"));
        assert!(out[0].attr("http.header.host").is_some());
        d.stop().await;
    }

    #[tokio::test]
    async fn query_parameters_are_decoded_and_repeats_joined() {
        let d = Driven::start("port: 0").await;
        let resp = client()
            .post(format!(
                "{}/?name=q3%20report%2Fv2.csv&tag=a&tag=b&empty=",
                d.base
            ))
            .body("x")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let out = d.runner.take(SUCCESS);
        assert_eq!(out[0].attr("http.query.name"), Some("q3 report/v2.csv"));
        assert_eq!(out[0].attr("http.query.tag"), Some("a, b"));
        assert_eq!(out[0].attr("http.query.empty"), Some(""));
        assert_eq!(
            out[0].attr("http.query"),
            Some("name=q3%20report%2Fv2.csv&tag=a&tag=b&empty=")
        );
        d.stop().await;
    }

    #[tokio::test]
    async fn many_concurrent_requests_each_get_their_own_flowfile() {
        let d = Driven::start("port: 0").await;
        let c = client();
        let sends = (0..50).map(|i| {
            let c = c.clone();
            let url = format!("{}/", d.base);
            async move {
                let r = c.post(url).body(format!("m{i}")).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let v: serde_json::Value = r.json().await.unwrap();
                (v["flowfile"].as_u64().unwrap(), format!("m{i}"))
            }
        });
        let answers = futures::future::join_all(sends).await;
        let out = d.runner.take(SUCCESS);
        assert_eq!(out.len(), 50);
        for (id, body) in answers {
            let ff = out.iter().find(|f| f.id == id).unwrap();
            assert_eq!(TestRunner::text(ff), body);
        }
        d.stop().await;
    }

    #[tokio::test]
    async fn size_limit_path_and_method() {
        let d = Driven::start("port: 0\nmax_body_size: 1 KB\npath: [/in, /api/*]").await;
        let c = client();
        let big = c
            .post(format!("{}/in", d.base))
            .body(vec![b'x'; 4000])
            .send()
            .await
            .unwrap();
        assert_eq!(big.status(), 413);
        let exact = c
            .post(format!("{}/in", d.base))
            .body(vec![b'x'; 1000])
            .send()
            .await
            .unwrap();
        assert_eq!(exact.status(), 200);
        let nested = c
            .post(format!("{}/api/v1/x", d.base))
            .body("a")
            .send()
            .await
            .unwrap();
        assert_eq!(nested.status(), 200);
        let missing = c
            .post(format!("{}/other", d.base))
            .body("a")
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        let root = c
            .post(format!("{}/", d.base))
            .body("a")
            .send()
            .await
            .unwrap();
        assert_eq!(root.status(), 404);
        let get = c.get(format!("{}/in", d.base)).send().await.unwrap();
        assert_eq!(get.status(), 405);
        assert_eq!(get.headers()["allow"], "POST, PUT");
        assert_eq!(d.counter("rejected.too_large"), 1);
        assert_eq!(d.counter("rejected.not_found"), 2);
        assert_eq!(d.counter("rejected.method"), 1);
        let out = d.runner.take(SUCCESS);
        assert_eq!(
            out.iter().map(FlowFile::size).collect::<Vec<_>>(),
            vec![1000, 1]
        );
        d.stop().await;
    }

    #[tokio::test]
    async fn chunked_body_over_the_limit_is_413() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let d = Driven::start("port: 0\nmax_body_size: 100 B").await;
        let addr = d.base.trim_start_matches("http://").to_string();
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        // No Content-Length: the limit must hold while streaming.
        let chunk = "x".repeat(80);
        let req = format!(
            "POST / HTTP/1.1\r\nHost: {addr}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n50\r\n{chunk}\r\n50\r\n{chunk}\r\n0\r\n\r\n"
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut resp = String::new();
        tokio::time::timeout(DEADLINE, s.read_to_string(&mut resp))
            .await
            .unwrap()
            .unwrap();
        assert!(resp.starts_with("HTTP/1.1 413"), "{resp}");
        assert!(d.runner.take(SUCCESS).is_empty());
        d.stop().await;
    }

    #[tokio::test]
    async fn no_trigger_means_503_after_the_timeout_and_nothing_is_kept() {
        let props = crate::test_props(
            &ListenHttpType,
            "port: 0\nrequest_timeout: 200ms\nretry_after: 1500ms",
        );
        let r = TestRunner::with_properties(&ListenHttpType, props, Scheduling::default()).unwrap();
        r.schedule().await.unwrap();
        let port = r.ctx.counter("listen.port").load(Ordering::Relaxed);
        let resp = client()
            .post(format!("http://127.0.0.1:{port}/"))
            .body("late")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 503);
        assert_eq!(resp.headers()["retry-after"], "2");
        // The abandoned request is not turned into a FlowFile afterwards.
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        assert_eq!(r.ctx.counter("rejected.timeout").load(Ordering::Relaxed), 1);
        r.processor.on_stopped(&r.ctx).await;
    }

    #[tokio::test]
    async fn stopping_answers_waiting_requests_503_and_frees_the_port() {
        let props = crate::test_props(&ListenHttpType, "port: 0");
        let r = TestRunner::with_properties(&ListenHttpType, props, Scheduling::default()).unwrap();
        r.schedule().await.unwrap();
        let port = r.ctx.counter("listen.port").load(Ordering::Relaxed);
        let url = format!("http://127.0.0.1:{port}/");
        // Registered before the request, so its wake-up is not missed.
        let waker = r.ctx.waker();
        let queued = waker.notified();
        let waiting = tokio::spawn({
            let url = url.clone();
            async move { client().post(url).body("w").send().await.unwrap() }
        });
        // Wait until the request is queued for a trigger (it never gets one).
        tokio::time::timeout(DEADLINE, queued).await.unwrap();
        r.processor.on_stopped(&r.ctx).await;
        let resp = waiting.await.unwrap();
        assert_eq!(resp.status(), 503);
        assert!(resp.headers().contains_key("retry-after"));
        assert_eq!(
            r.ctx.counter("rejected.stopping").load(Ordering::Relaxed),
            1
        );
        // The port is free again.
        std::net::TcpListener::bind(("127.0.0.1", u16::try_from(port).unwrap())).unwrap();
    }

    #[tokio::test]
    async fn port_in_use_fails_on_scheduled() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let props = crate::test_props(&ListenHttpType, &format!("port: {port}"));
        let r = TestRunner::with_properties(&ListenHttpType, props, Scheduling::default()).unwrap();
        let err = r.schedule().await.unwrap_err();
        assert!(err.message.contains("cannot listen on"), "{}", err.message);
    }

    fn flow(yaml: &str) -> sluice_runtime::FlowSpec {
        parse_flow(
            yaml,
            std::path::Path::new("listen.yaml"),
            &crate::registry(),
            &|_| None,
        )
        .unwrap()
    }

    const STALLED: &str = "name: bp\nprocessors:\n  listen:\n    type: ListenHTTP\n    properties: { port: 0, retry_after: 3s }\n  sink:\n    type: UpdateAttribute\n    auto_terminate: [success]\nconnections:\n  - { from: listen, relationship: success, to: sink, back_pressure: { max_count: 3 } }\n";

    async fn post(c: &reqwest::Client, url: &str, body: &str) -> reqwest::Response {
        c.post(url).body(body.to_string()).send().await.unwrap()
    }

    #[tokio::test]
    async fn back_pressure_gives_503_with_retry_after_until_the_sink_drains() {
        let engine = Engine::start(flow(STALLED), EngineOptions::default())
            .await
            .unwrap();
        engine.set_running("sink", false);
        let listen = engine.node("listen").unwrap().context().clone();
        let port = listen.counter("listen.port").load(Ordering::Relaxed);
        let url = format!("http://127.0.0.1:{port}/");
        let conn = engine.connection("listen.success->sink").unwrap().clone();
        let c = client();
        for i in 0..3 {
            assert_eq!(post(&c, &url, &format!("m{i}")).await.status(), 200);
        }
        assert_eq!(conn.queued_count(), 3);
        // The connection is at its threshold: refused at once, with Retry-After.
        for _ in 0..5 {
            let r = post(&c, &url, "refused").await;
            assert_eq!(r.status(), 503);
            assert_eq!(r.headers()["retry-after"], "3");
        }
        assert_eq!(
            conn.queued_count(),
            3,
            "nothing beyond the threshold was accepted"
        );
        assert_eq!(
            listen
                .counter("rejected.backpressure")
                .load(Ordering::Relaxed),
            5
        );
        // Sink resumes: the queue drains and requests are accepted again.
        engine.set_running("sink", true);
        sluice_testkit::wait_until(DEADLINE, || conn.queued_count() == 0)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let r = post(&c, &url, "again").await;
            if r.status() == 200 {
                break;
            }
            assert_eq!(r.status(), 503);
            assert!(
                tokio::time::Instant::now() < deadline,
                "never accepted again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        engine.shutdown(Duration::from_secs(5)).await;
    }

    /// A journal that fails while `fail` is set (a repository that cannot write).
    #[derive(Default)]
    struct FlakyJournal {
        fail: AtomicBool,
    }

    impl Journal for FlakyJournal {
        fn commit<'a>(
            &'a self,
            _: Vec<sluice_runtime::Change<'a>>,
        ) -> futures::future::BoxFuture<'a, Result<(), JournalError>> {
            let fail = self.fail.load(Ordering::Relaxed);
            Box::pin(async move {
                if fail {
                    Err(JournalError("disk on fire".into()))
                } else {
                    Ok(())
                }
            })
        }
        fn persist_content(&self, _: &mut FlowFile) -> Result<(), JournalError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_failed_commit_is_503_and_keeps_nothing() {
        let journal = Arc::new(FlakyJournal::default());
        journal.fail.store(true, Ordering::Relaxed);
        let opts = EngineOptions {
            journal: Some(journal.clone()),
            recovered: Vec::new(),
        };
        let yaml = STALLED.replace("max_count: 3", "max_count: 100");
        let engine = Engine::start(flow(&yaml), opts).await.unwrap();
        engine.set_running("sink", false);
        let listen = engine.node("listen").unwrap().context().clone();
        let port = listen.counter("listen.port").load(Ordering::Relaxed);
        let url = format!("http://127.0.0.1:{port}/");
        let conn = engine.connection("listen.success->sink").unwrap().clone();
        let c = client();
        let r = post(&c, &url, "lost?").await;
        assert_eq!(r.status(), 503);
        let v: serde_json::Value = r.json().await.unwrap();
        assert!(
            v["error"]
                .as_str()
                .is_some_and(|e| e.contains("disk on fire")),
            "{v}"
        );
        assert_eq!(conn.queued_count(), 0);
        assert_eq!(
            listen
                .counter("rejected.not_stored")
                .load(Ordering::Relaxed),
            1
        );
        journal.fail.store(false, Ordering::Relaxed);
        // After the yield the processor accepts again.
        let deadline = tokio::time::Instant::now() + DEADLINE;
        loop {
            let r = post(&c, &url, "kept").await;
            if r.status() == 200 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "never accepted again"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(conn.queued_count(), 1);
        engine.shutdown(Duration::from_secs(5)).await;
    }
}
