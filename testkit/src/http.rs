//! In-process HTTP receivers: a generic one for webhook tests and a Slack look-alike.

use std::collections::VecDeque;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::util::wait_until;

/// Largest request body either receiver accepts.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// One request as received, with the status it was answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query string without `?` ("" when none).
    pub query: String,
    /// Header names are lower case, in the order received.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The status this receiver answered with.
    pub status: u16,
}

impl RecordedRequest {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as UTF-8 (lossy).
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body parsed as JSON.
    pub fn json(&self) -> Result<Value> {
        serde_json::from_slice(&self.body).context("request body is not JSON")
    }
}

/// An answer to give instead of the normal one, for fault tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub status: u16,
    /// Sent as the `Retry-After` header (seconds).
    pub retry_after: Option<u64>,
    /// Response body; when `None`, the receiver's usual error body for that status.
    pub body: Option<String>,
}

impl Fault {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            body: None,
        }
    }

    /// 429 with `Retry-After: secs`.
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        Self {
            status: 429,
            retry_after: Some(retry_after_secs),
            body: None,
        }
    }
}

#[derive(Default)]
struct FaultPlan {
    /// Each fault answers that many of the next requests, in order.
    queue: VecDeque<(Fault, usize)>,
    /// Until that instant, every request gets this fault (checked before `queue`).
    window: Option<(Instant, Fault)>,
}

impl FaultPlan {
    fn next(&mut self) -> Option<Fault> {
        if let Some((until, fault)) = &self.window {
            if Instant::now() < *until {
                return Some(fault.clone());
            }
            self.window = None;
        }
        let (fault, left) = self.queue.front_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            self.queue.pop_front();
        }
        Some(fault)
    }
}

#[derive(Clone)]
enum Mode {
    Http,
    Slack { token: String },
}

struct Core {
    mode: Mode,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<FaultPlan>,
    /// Normal answer of the generic receiver: status, content type, body.
    response: Mutex<(u16, String, Vec<u8>)>,
    slack: Mutex<Vec<SlackMessage>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The server thread: its own single-threaded tokio runtime, so the receiver keeps answering
/// whatever the test's runtime is doing, and works from plain `#[test]`s too.
struct ServerThread {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ServerThread {
    fn start(addr: SocketAddr, core: Arc<Core>) -> Result<(Self, SocketAddr)> {
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name(format!("testkit-http-{}", local.port()))
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("testkit http receiver: {e}");
                            return;
                        }
                    };
                    let app = Router::new().fallback(handle).with_state(core);
                    tokio::select! {
                        result = axum::serve(listener, app) => {
                            if let Err(e) = result {
                                eprintln!("testkit http receiver on {local}: {e}");
                            }
                        }
                        _ = rx => {}
                    }
                });
                // Dropping the runtime here ends every open connection.
                drop(runtime);
            })?;
        Ok((
            Self {
                shutdown: Some(tx),
                thread: Some(thread),
            },
            local,
        ))
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(State(core): State<Arc<Core>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let mut recorded = RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_string(),
        query: parts.uri.query().unwrap_or_default().to_string(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        status: 0,
    };
    let fault = lock(&core.faults).next();
    let response = match fault {
        Some(fault) => fault_response(&core.mode, &fault),
        None => match &core.mode {
            Mode::Http => {
                let (status, content_type, body) = lock(&core.response).clone();
                let mut r = Response::new(Body::from(body));
                *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
                if let Ok(v) = HeaderValue::from_str(&content_type) {
                    r.headers_mut().insert(header::CONTENT_TYPE, v);
                }
                r
            }
            Mode::Slack { token } => slack_answer(&core, token, &recorded, &parts.headers),
        },
    };
    recorded.status = response.status().as_u16();
    lock(&core.requests).push(recorded);
    response
}

fn fault_response(mode: &Mode, fault: &Fault) -> Response {
    let status = StatusCode::from_u16(fault.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = match (&fault.body, mode) {
        (Some(b), _) => b.clone(),
        (None, Mode::Slack { .. }) if fault.status == 429 => {
            json!({"ok": false, "error": "ratelimited"}).to_string()
        }
        (None, Mode::Slack { .. }) => json!({"ok": false, "error": "fatal_error"}).to_string(),
        (None, Mode::Http) => status.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut r = (status, body).into_response();
    if let Some(secs) = fault.retry_after {
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

/// The fault-injection and recording methods both receivers share.
macro_rules! receiver_common {
    () => {
        /// `http://127.0.0.1:PORT`
        pub fn url(&self) -> String {
            format!("http://{}", self.addr)
        }

        /// Every request received so far, faulted ones included, oldest first.
        pub fn requests(&self) -> Vec<RecordedRequest> {
            lock(&self.core.requests).clone()
        }

        /// Waits until at least `n` requests have been received, then returns them all.
        pub async fn wait_for_requests(
            &self,
            n: usize,
            timeout: Duration,
        ) -> Result<Vec<RecordedRequest>> {
            wait_until(timeout, || lock(&self.core.requests).len() >= n)
                .await
                .with_context(|| {
                    format!(
                        "expected {n} request(s) on {}, got {}",
                        self.addr,
                        lock(&self.core.requests).len()
                    )
                })?;
            Ok(self.requests())
        }

        /// Answers the next `count` requests with `fault` (after any faults queued before).
        pub fn push_fault(&self, fault: Fault, count: usize) {
            if count > 0 {
                lock(&self.core.faults).queue.push_back((fault, count));
            }
        }

        /// Answers the next `count` requests with 429 and `Retry-After: retry_after_secs`.
        pub fn rate_limit_next(&self, count: usize, retry_after_secs: u64) {
            self.push_fault(Fault::rate_limited(retry_after_secs), count);
        }

        /// Answers the next `count` requests with `status` (500, 503, ...).
        pub fn fail_next(&self, count: usize, status: u16) {
            self.push_fault(Fault::status(status), count);
        }

        /// Answers every request with `fault` for the next `duration`.
        pub fn fail_for(&self, duration: Duration, fault: Fault) {
            lock(&self.core.faults).window = Some((Instant::now() + duration, fault));
        }

        /// Drops all queued faults and any fault window.
        pub fn clear_faults(&self) {
            *lock(&self.core.faults) = FaultPlan::default();
        }

        /// Stops listening and closes open connections: clients get "connection refused".
        pub fn stop(&mut self) {
            self.server = None;
        }

        /// Listens again on the same port, keeping what was recorded.
        pub async fn start_again(&mut self) -> Result<()> {
            self.server = None;
            let (server, _) = ServerThread::start(self.addr, self.core.clone())?;
            self.server = Some(server);
            Ok(())
        }
    };
}

/// A generic in-process HTTP receiver for webhook tests: accepts any method on any path,
/// records method, path, query, headers and body, and answers with a configurable status
/// (200 with an empty body by default) unless a [`Fault`] is queued.
pub struct HttpReceiver {
    pub addr: SocketAddr,
    core: Arc<Core>,
    server: Option<ServerThread>,
    dir: TempDir,
}

impl HttpReceiver {
    /// Listens on a free loopback port. Ready as soon as this returns (the socket is bound).
    #[allow(clippy::unused_async)] // async like every other handle's start()
    pub async fn start() -> Result<Self> {
        let core = Arc::new(Core {
            mode: Mode::Http,
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultPlan::default()),
            response: Mutex::new((200, "text/plain".to_string(), Vec::new())),
            slack: Mutex::new(Vec::new()),
        });
        let (server, addr) = ServerThread::start(([127, 0, 0, 1], 0).into(), core.clone())?;
        Ok(Self {
            addr,
            core,
            server: Some(server),
            dir: tempfile::Builder::new().prefix("sluice-http-").tempdir()?,
        })
    }

    /// The normal answer from now on (faults still take precedence).
    pub fn set_response(&self, status: u16, content_type: &str, body: impl Into<Vec<u8>>) {
        *lock(&self.core.response) = (status, content_type.to_string(), body.into());
    }

    /// A scratch directory that lives as long as the receiver.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    receiver_common!();
}

/// Which Slack API a [`SlackMessage`] came through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlackMessageKind {
    /// `POST /services/...`, an incoming webhook.
    Webhook,
    /// `POST /api/chat.postMessage`, the Web API.
    PostMessage,
}

/// A message the [`SlackReceiver`] accepted.
#[derive(Debug, Clone, PartialEq)]
pub struct SlackMessage {
    pub kind: SlackMessageKind,
    /// The request path, e.g. `/services/T0/B0/X` or `/api/chat.postMessage`.
    pub path: String,
    /// `channel` of the payload (always set for chat.postMessage).
    pub channel: Option<String>,
    pub text: Option<String>,
    /// The whole payload, with form-encoded `blocks`/`attachments` parsed into JSON.
    pub payload: Value,
}

/// A stand-in for Slack. Slack itself cannot be installed or reached here (and no
/// self-hostable Slack-compatible server such as Mattermost is packaged for this machine), so
/// this is the project's own in-process receiver, checking what Slack checks.
///
/// * Incoming webhooks: `POST {webhook_url}` (any `/services/...` path) with a JSON body, or a
///   form body with a `payload=` field. Answers `200 ok`, or like Slack `400 invalid_payload`
///   (not JSON / not an object), `400 no_text` (none of `text`, `blocks`, `attachments`),
///   `400 invalid_blocks`, `400 invalid_attachments`; `404 no_service` for other paths.
/// * Web API: `POST {api_url}chat.postMessage` with `Authorization: Bearer TOKEN`, JSON or
///   form body. Answers like Slack with HTTP 200 and `{"ok":true,"channel":..,"ts":..}`, or
///   `{"ok":false,"error":..}` with `not_authed`, `invalid_auth`, `invalid_json`,
///   `channel_not_found`, `no_text`, `invalid_blocks`, `invalid_attachments`,
///   `msg_too_long`. `auth.test` answers ok; other methods `unknown_method`.
/// * Checks: `text` a string; `blocks` at most 50 typed objects of a known type, with the
///   fields that type requires (section: `text` or `fields`; header: plain_text `text`;
///   image: `image_url` + `alt_text`; context/actions: non-empty `elements`; text objects:
///   `plain_text`/`mrkdwn` with a string `text`); `attachments` objects with some content and
///   a `color` that is `good`, `warning`, `danger` or a hex colour.
/// * Faults: [`rate_limit_next`](Self::rate_limit_next) answers 429 with `Retry-After`
///   (Web API body `{"ok":false,"error":"ratelimited"}`), [`fail_next`](Self::fail_next) and
///   [`fail_for`](Self::fail_for) answer 5xx; faulted requests are recorded in
///   [`requests`](Self::requests) but are not messages.
pub struct SlackReceiver {
    pub addr: SocketAddr,
    /// The bot token chat.postMessage requires.
    pub token: String,
    core: Arc<Core>,
    server: Option<ServerThread>,
    _dir: TempDir,
}

impl SlackReceiver {
    /// With the token `xoxb-sluice-test`.
    pub async fn start() -> Result<Self> {
        Self::start_with_token("xoxb-sluice-test").await
    }

    #[allow(clippy::unused_async)] // async like every other handle's start()
    pub async fn start_with_token(token: &str) -> Result<Self> {
        let core = Arc::new(Core {
            mode: Mode::Slack {
                token: token.to_string(),
            },
            requests: Mutex::new(Vec::new()),
            faults: Mutex::new(FaultPlan::default()),
            response: Mutex::new((200, String::new(), Vec::new())),
            slack: Mutex::new(Vec::new()),
        });
        let (server, addr) = ServerThread::start(([127, 0, 0, 1], 0).into(), core.clone())?;
        Ok(Self {
            addr,
            token: token.to_string(),
            core,
            server: Some(server),
            _dir: tempfile::Builder::new().prefix("sluice-slack-").tempdir()?,
        })
    }

    /// An incoming-webhook URL: `http://127.0.0.1:PORT/services/T00000000/B00000000/XXXXXXXX`.
    pub fn webhook_url(&self) -> String {
        format!(
            "http://{}/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
            self.addr
        )
    }

    /// The Web API base, ending in `/`: `http://127.0.0.1:PORT/api/`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api/", self.addr)
    }

    /// Messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<SlackMessage> {
        lock(&self.core.slack).clone()
    }

    /// Waits until at least `n` messages were accepted, then returns them all.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<SlackMessage>> {
        wait_until(timeout, || lock(&self.core.slack).len() >= n)
            .await
            .with_context(|| {
                format!(
                    "expected {n} Slack message(s), got {} (requests: {:?})",
                    lock(&self.core.slack).len(),
                    self.requests()
                        .iter()
                        .map(|r| format!("{} {} -> {}", r.method, r.path, r.status))
                        .collect::<Vec<_>>()
                )
            })?;
        Ok(self.messages())
    }

    receiver_common!();
}

// ------------------------------------------------------------------------------------------
// Slack behaviour

fn slack_answer(
    core: &Core,
    token: &str,
    request: &RecordedRequest,
    headers: &HeaderMap,
) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let is_form = content_type.starts_with("application/x-www-form-urlencoded");
    let path = request.path.as_str();

    if let Some(method) = path.strip_prefix("/api/") {
        return web_api(core, token, method, request, is_form);
    }
    if !path.starts_with("/services/") {
        return (StatusCode::NOT_FOUND, "no_service").into_response();
    }
    if request.method != "POST" {
        return (StatusCode::METHOD_NOT_ALLOWED, "invalid_method").into_response();
    }
    // Incoming webhook.
    let payload = if is_form {
        form_fields(&request.body)
            .into_iter()
            .find(|(k, _)| k == "payload")
            .and_then(|(_, v)| serde_json::from_str::<Value>(&v).ok())
    } else {
        serde_json::from_slice::<Value>(&request.body).ok()
    };
    let Some(payload) = payload.filter(Value::is_object) else {
        return (StatusCode::BAD_REQUEST, "invalid_payload").into_response();
    };
    if let Err(error) = validate_message(&payload) {
        return (StatusCode::BAD_REQUEST, error).into_response();
    }
    lock(&core.slack).push(SlackMessage {
        kind: SlackMessageKind::Webhook,
        path: path.to_string(),
        channel: payload
            .get("channel")
            .and_then(Value::as_str)
            .map(String::from),
        text: payload
            .get("text")
            .and_then(Value::as_str)
            .map(String::from),
        payload,
    });
    (StatusCode::OK, "ok").into_response()
}

fn api_error(error: &str) -> Response {
    axum::Json(json!({"ok": false, "error": error})).into_response()
}

fn web_api(
    core: &Core,
    token: &str,
    method: &str,
    request: &RecordedRequest,
    is_form: bool,
) -> Response {
    let mut payload = if is_form {
        let mut map = serde_json::Map::new();
        for (k, v) in form_fields(&request.body) {
            // Form-encoded blocks and attachments are JSON strings.
            let value = if k == "blocks" || k == "attachments" {
                match serde_json::from_str::<Value>(&v) {
                    Ok(parsed) => parsed,
                    Err(_) => return api_error(&format!("invalid_{k}")),
                }
            } else {
                Value::String(v)
            };
            map.insert(k, value);
        }
        Value::Object(map)
    } else if request.body.is_empty() {
        Value::Object(serde_json::Map::default())
    } else {
        match serde_json::from_slice::<Value>(&request.body) {
            Ok(v @ Value::Object(_)) => v,
            _ => return api_error("invalid_json"),
        }
    };

    // Auth: a Bearer header, or (legacy) a `token` argument.
    let bearer = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(String::from);
    let given = bearer.or_else(|| {
        payload
            .get("token")
            .and_then(Value::as_str)
            .map(String::from)
    });
    match given {
        None => return api_error("not_authed"),
        Some(t) if t != token => return api_error("invalid_auth"),
        Some(_) => {}
    }
    if let Some(map) = payload.as_object_mut() {
        map.remove("token");
    }

    match method {
        "auth.test" => axum::Json(json!({
            "ok": true, "url": "http://sluice-test.slack.invalid/", "team": "Sluice Test",
            "user": "sluice-bot", "team_id": "T00000000", "user_id": "U00000000",
        }))
        .into_response(),
        "chat.postMessage" => {
            if request.method != "POST" {
                return api_error("invalid_request");
            }
            let channel = match payload.get("channel").and_then(Value::as_str) {
                Some(c) if !c.trim().is_empty() => c.to_string(),
                _ => return api_error("channel_not_found"),
            };
            if let Err(error) = validate_message(&payload) {
                return api_error(error);
            }
            if payload
                .get("text")
                .and_then(Value::as_str)
                .is_some_and(|t| t.chars().count() > 40_000)
            {
                return api_error("msg_too_long");
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default();
            let ts = format!("{}.{:06}", now.as_secs(), now.subsec_micros());
            let text = payload
                .get("text")
                .and_then(Value::as_str)
                .map(String::from);
            let answer = json!({
                "ok": true,
                "channel": channel,
                "ts": ts,
                "message": {
                    "type": "message", "user": "U00000000", "bot_id": "B00000000",
                    "text": text.clone().unwrap_or_default(), "ts": ts,
                },
            });
            lock(&core.slack).push(SlackMessage {
                kind: SlackMessageKind::PostMessage,
                path: request.path.clone(),
                channel: Some(channel),
                text,
                payload,
            });
            axum::Json(answer).into_response()
        }
        _ => api_error("unknown_method"),
    }
}

/// What Slack checks on a message payload; the error is Slack's error code.
fn validate_message(payload: &Value) -> Result<(), &'static str> {
    let obj = payload.as_object().ok_or("invalid_payload")?;
    let text = match obj.get("text") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err("invalid_payload"),
    };
    let mut has_blocks = false;
    match obj.get("blocks") {
        None | Some(Value::Null) => {}
        Some(Value::Array(blocks)) => {
            validate_blocks(blocks)?;
            has_blocks = !blocks.is_empty();
        }
        Some(_) => return Err("invalid_blocks"),
    }
    let mut has_attachments = false;
    match obj.get("attachments") {
        None | Some(Value::Null) => {}
        Some(Value::Array(attachments)) => {
            for a in attachments {
                validate_attachment(a)?;
            }
            has_attachments = !attachments.is_empty();
        }
        Some(_) => return Err("invalid_attachments"),
    }
    if text.trim().is_empty() && !has_blocks && !has_attachments {
        return Err("no_text");
    }
    Ok(())
}

fn is_text_object(v: &Value, plain_only: bool) -> bool {
    let Some(o) = v.as_object() else {
        return false;
    };
    let kind_ok = match o.get("type").and_then(Value::as_str) {
        Some("plain_text") => true,
        Some("mrkdwn") => !plain_only,
        _ => false,
    };
    kind_ok
        && o.get("text")
            .and_then(Value::as_str)
            .is_some_and(|t| !t.is_empty())
}

fn non_empty_array(v: Option<&Value>, max: usize) -> Option<&Vec<Value>> {
    v.and_then(Value::as_array)
        .filter(|a| !a.is_empty() && a.len() <= max)
}

fn validate_blocks(blocks: &[Value]) -> Result<(), &'static str> {
    const BAD: &str = "invalid_blocks";
    if blocks.len() > 50 {
        return Err(BAD);
    }
    for block in blocks {
        let o = block.as_object().ok_or(BAD)?;
        let kind = o.get("type").and_then(Value::as_str).ok_or(BAD)?;
        let ok = match kind {
            "section" => {
                let text = o.get("text");
                let fields = o.get("fields");
                (text.is_some() || fields.is_some())
                    && text.is_none_or(|t| is_text_object(t, false))
                    && fields.is_none_or(|f| {
                        non_empty_array(Some(f), 10)
                            .is_some_and(|f| f.iter().all(|t| is_text_object(t, false)))
                    })
            }
            "header" => o.get("text").is_some_and(|t| {
                is_text_object(t, true)
                    && t["text"].as_str().is_some_and(|s| s.chars().count() <= 150)
            }),
            "divider" => true,
            "image" => {
                (o.get("image_url").and_then(Value::as_str).is_some()
                    || o.get("slack_file").is_some_and(Value::is_object))
                    && o.get("alt_text").and_then(Value::as_str).is_some()
            }
            "context" => non_empty_array(o.get("elements"), 10).is_some_and(|els| {
                els.iter().all(|e| {
                    is_text_object(e, false)
                        || (e.get("type").and_then(Value::as_str) == Some("image")
                            && e.get("alt_text").and_then(Value::as_str).is_some())
                })
            }),
            "actions" => non_empty_array(o.get("elements"), 25).is_some_and(|els| {
                els.iter()
                    .all(|e| e.get("type").and_then(Value::as_str).is_some())
            }),
            "rich_text" => o.get("elements").is_some_and(Value::is_array),
            "input" => {
                o.get("label").is_some_and(|l| is_text_object(l, true))
                    && o.get("element").is_some_and(Value::is_object)
            }
            "markdown" => o.get("text").and_then(Value::as_str).is_some(),
            "file" => o.get("external_id").and_then(Value::as_str).is_some(),
            "video" => {
                o.get("video_url").and_then(Value::as_str).is_some()
                    && o.get("title").is_some_and(|t| is_text_object(t, true))
            }
            _ => false,
        };
        if !ok {
            return Err(BAD);
        }
    }
    Ok(())
}

fn valid_color(color: &str) -> bool {
    matches!(color, "good" | "warning" | "danger") || {
        let hex = color.strip_prefix('#').unwrap_or(color);
        (hex.len() == 6 || hex.len() == 3) && hex.chars().all(|c| c.is_ascii_hexdigit())
    }
}

fn validate_attachment(a: &Value) -> Result<(), &'static str> {
    const BAD: &str = "invalid_attachments";
    let o = a.as_object().ok_or(BAD)?;
    match o.get("color") {
        None | Some(Value::Null) => {}
        Some(Value::String(c)) if valid_color(c) => {}
        Some(_) => return Err(BAD),
    }
    if let Some(fields) = o.get("fields") {
        let fields = fields.as_array().ok_or(BAD)?;
        for f in fields {
            let f = f.as_object().ok_or(BAD)?;
            if !f.contains_key("title") && !f.contains_key("value") {
                return Err(BAD);
            }
        }
    }
    if let Some(blocks) = o.get("blocks") {
        validate_blocks(blocks.as_array().ok_or(BAD)?)?;
    }
    let has_content = [
        "text",
        "fallback",
        "pretext",
        "title",
        "fields",
        "blocks",
        "image_url",
        "author_name",
    ]
    .iter()
    .any(|k| match o.get(*k) {
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(v)) => !v.is_empty(),
        _ => false,
    });
    if !has_content {
        return Err(BAD);
    }
    Ok(())
}

/// `application/x-www-form-urlencoded` fields, decoded.
fn form_fields(body: &[u8]) -> Vec<(String, String)> {
    String::from_utf8_lossy(body)
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_payload_rules() {
        assert_eq!(validate_message(&json!({"text": "hi"})), Ok(()));
        assert_eq!(validate_message(&json!({})), Err("no_text"));
        assert_eq!(validate_message(&json!({"text": ""})), Err("no_text"));
        assert_eq!(
            validate_message(&json!({"text": 5})),
            Err("invalid_payload")
        );
        assert_eq!(
            validate_message(&json!({"blocks": [{"type": "divider"}]})),
            Ok(())
        );
        assert_eq!(
            validate_message(&json!({"blocks": [{"text": "no type"}]})),
            Err("invalid_blocks")
        );
        assert_eq!(
            validate_message(&json!({"blocks": [{"type": "section"}]})),
            Err("invalid_blocks")
        );
        assert_eq!(
            validate_message(&json!({"blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": "*x*"}},
                {"type": "header", "text": {"type": "plain_text", "text": "H"}},
            ]})),
            Ok(())
        );
        assert_eq!(
            validate_message(&json!({"blocks": [
                {"type": "header", "text": {"type": "mrkdwn", "text": "H"}}
            ]})),
            Err("invalid_blocks")
        );
        assert_eq!(
            validate_message(&json!({"attachments": [{"color": "#36a64f", "text": "t"}]})),
            Ok(())
        );
        assert_eq!(
            validate_message(&json!({"attachments": [{"color": "blue", "text": "t"}]})),
            Err("invalid_attachments")
        );
        assert_eq!(
            validate_message(&json!({"attachments": [{"color": "good"}]})),
            Err("invalid_attachments")
        );
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_fields(b"payload=%7B%22text%22%3A%22a+b%22%7D&x="),
            vec![
                ("payload".to_string(), "{\"text\":\"a b\"}".to_string()),
                ("x".to_string(), String::new())
            ]
        );
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
