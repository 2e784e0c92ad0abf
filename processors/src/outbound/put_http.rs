//! PutHTTP: sends each FlowFile's content in an HTTP request (InvokeHTTP-like).
//!
//! Method, URL and header values are templates over the attributes. The
//! response status, reason, headers and (the start of) the body become
//! attributes. A 2xx goes to `success` (with a SEND event); 408, 429 and 5xx
//! and network errors are transient: the FlowFile stays queued while the
//! processor backs off (honouring `Retry-After`), until it is delivered or,
//! with `max_attempts`, routed to `retry`. Any other status goes to `failure`.
//! One pooled HTTP client per processor.
//!
//! ```yaml
//! webhook:
//!   type: PutHTTP
//!   properties:
//!     url: "https://hooks.example.com/alerts/{{syslog.hostname}}"
//!     method: POST
//!     headers:
//!       X-Severity: "{{syslog.severity}}"
//!     authorization: "Bearer ${env:ALERTS_TOKEN}"
//!     content_type: application/json
//!     read_timeout: 10s
//!   auto_terminate: [success, retry, failure]
//! ```
//!
//! Attributes written: `http.status.code`, `http.status.message`,
//! `http.response.body` (up to `response_body_limit`),
//! `http.response.header.NAME` (lower-case name), and on failure `put.error`
//! (and `put.attempts` while retrying).

use std::fmt;

use bytes::Bytes;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, Url};
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

use super::http::{public_url, public_url_text, read_body};
use super::retry::{
    self, BACKOFF_INITIAL, BACKOFF_MAX, Delivered, Delivery, FAILURE, Failure, MAX_ATTEMPTS, RETRY,
    SUCCESS, Sink,
};
use super::tls::{CA_FILE, TLS_INSECURE, TlsOptions};
use super::{Secret, secret_opt};

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "url",
        PropKind::Template,
        "URL to send to (template over attributes); http or https.",
    ),
    PropertyDescriptor::optional(
        "method",
        PropKind::Template,
        Some("POST"),
        "HTTP method (template), e.g. POST, PUT, PATCH, GET, DELETE.",
    ),
    PropertyDescriptor::optional(
        "headers",
        PropKind::MapOf(&PropKind::Template),
        None,
        "Request headers: name -> value template.",
    ),
    PropertyDescriptor::optional(
        "authorization",
        PropKind::Text,
        None,
        "Value of the Authorization header, e.g. `Bearer ${env:TOKEN}` (secret: never logged).",
    )
    .secret(),
    PropertyDescriptor::optional(
        "content_type",
        PropKind::Template,
        Some("{{default mime.type \"application/octet-stream\"}}"),
        "Content-Type of the body (template).",
    ),
    PropertyDescriptor::optional(
        "send_body",
        PropKind::Bool,
        Some("true"),
        "Send the content as the body (never for GET and HEAD).",
    ),
    PropertyDescriptor::optional(
        "connect_timeout",
        PropKind::Duration,
        Some("5s"),
        "Longest wait to connect (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "read_timeout",
        PropKind::Duration,
        Some("30s"),
        "Longest wait for each read of the response (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "response_body_limit",
        PropKind::DataSize,
        Some("4 KB"),
        "Bytes of the response body kept in `http.response.body` (0 keeps none).",
    ),
    TLS_INSECURE,
    CA_FILE,
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
];

/// The registry entry.
pub struct PutHttpType;

impl ProcessorType for PutHttpType {
    fn name(&self) -> &'static str {
        "PutHTTP"
    }
    fn description(&self) -> &'static str {
        "Sends each FlowFile's content in an HTTP request built from templates; 2xx is success, 408/429/5xx and network errors are retried with back-off (honouring Retry-After), other statuses go to failure. Response status, headers and body become attributes."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "The server answered 2xx."),
            RelationshipDef::new(
                RETRY,
                "Transient failures after `max_attempts` (with `max_attempts: 0`, never: FlowFiles stay queued until delivered).",
            ),
            RelationshipDef::new(
                FAILURE,
                "The server refused it for good (4xx other than 408/429), or the request could not be built; reason in `put.error`.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let err = |name: &str, message: String| PropertyError {
            name: name.into(),
            message,
            pos: props.raw(name).map(sluice_runtime::PropValue::pos),
        };
        if let Ok(url) = props.str("url")
            && !url.contains("{{")
            && let Err(m) = check_url(url)
        {
            errs.push(err("url", m));
        }
        if let Ok(Some(m)) = props.str_opt("method")
            && !m.contains("{{")
            && Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).is_err()
        {
            errs.push(err("method", format!("`{m}` is not an HTTP method")));
        }
        match props.map("headers") {
            Ok(headers) => {
                for (name, _) in headers {
                    if HeaderName::from_bytes(name.as_bytes()).is_err() {
                        errs.push(err(
                            "headers",
                            format!("`{name}` is not a valid header name"),
                        ));
                    }
                }
            }
            Err(e) => errs.push(e),
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let compile = |name: &str, src: &str| {
            Template::compile(src, Escape::None)
                .map_err(|e| BuildError::Other(format!("{name}: {e}")))
        };
        let mut headers = Vec::new();
        for (name, src) in props.map("headers")? {
            let h = HeaderName::from_bytes(name.as_bytes())
                .map_err(|e| BuildError::Other(format!("headers.{name}: {e}")))?;
            headers.push((h, compile(&format!("headers.{name}"), &src)?));
        }
        let tls = TlsOptions::from_props(props, ctx)?;
        let client = tls.reqwest_client(
            props.duration("connect_timeout")?,
            props.duration("read_timeout")?,
        )?;
        Ok(Box::new(PutHttp {
            config: Config {
                url: compile("url", props.str("url")?)?,
                method: compile("method", props.str("method")?)?,
                headers,
                authorization: secret_opt(props, "authorization")?,
                content_type: compile("content_type", props.str("content_type")?)?,
                send_body: props.bool("send_body")?,
                body_limit: usize::try_from(props.data_size("response_body_limit")?)
                    .unwrap_or(usize::MAX),
            },
            client,
            delivery: Delivery::from_props(props, RETRY)?,
        }))
    }
    fn example(&self) -> &'static str {
        "url: \"https://hooks.example.com/alerts/{{syslog.hostname}}\"\nmethod: POST\nheaders:\n  X-Severity: \"{{syslog.severity}}\"\ncontent_type: application/json\nread_timeout: 10s"
    }
}

fn check_url(url: &str) -> Result<Url, String> {
    let u = Url::parse(url.trim())
        .map_err(|e| format!("`{}` is not a URL: {e}", public_url_text(url)))?;
    match u.scheme() {
        "http" | "https" => Ok(u),
        other => Err(format!("scheme `{other}` is not http or https")),
    }
}

#[derive(Debug)]
struct Config {
    url: Template,
    method: Template,
    headers: Vec<(HeaderName, Template)>,
    authorization: Option<Secret>,
    content_type: Template,
    send_body: bool,
    body_limit: usize,
}

struct PutHttp {
    config: Config,
    client: reqwest::Client,
    delivery: Delivery,
}

impl fmt::Debug for PutHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutHttp")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Config {
    fn render(&self, t: &Template, what: &str, ff: &FlowFile) -> Result<String, Failure> {
        t.render(&ff.attributes)
            .map_err(|e| Failure::permanent(format!("{what}: {e}")))
    }

    fn request(
        &self,
        client: &reqwest::Client,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<(reqwest::RequestBuilder, Method, Url), Failure> {
        let url = check_url(&self.render(&self.url, "url", ff)?)
            .map_err(|m| Failure::permanent(format!("url: {m}")))?;
        let method_text = self.render(&self.method, "method", ff)?;
        let method = Method::from_bytes(method_text.trim().to_ascii_uppercase().as_bytes())
            .map_err(|_| {
                Failure::permanent(format!("method: `{method_text}` is not an HTTP method"))
            })?;
        let mut req = client.request(method.clone(), url.clone());
        for (name, t) in &self.headers {
            let v = self.render(t, &format!("headers.{name}"), ff)?;
            let v = HeaderValue::from_str(&v).map_err(|_| {
                Failure::permanent(format!("headers.{name}: not a valid header value"))
            })?;
            req = req.header(name, v);
        }
        if let Some(auth) = &self.authorization {
            let mut v = HeaderValue::from_str(auth.expose())
                .map_err(|_| Failure::permanent("authorization: not a valid header value"))?;
            v.set_sensitive(true);
            req = req.header(AUTHORIZATION, v);
        }
        if self.send_body && method != Method::GET && method != Method::HEAD {
            let ct = self.render(&self.content_type, "content_type", ff)?;
            if !ct.trim().is_empty() {
                let ct = HeaderValue::from_str(ct.trim()).map_err(|_| {
                    Failure::permanent(format!("content_type: `{ct}` is not a valid header value"))
                })?;
                req = req.header(CONTENT_TYPE, ct);
            }
            req = req.body(content);
        }
        Ok((req, method, url))
    }
}

#[async_trait]
impl Sink for PutHttp {
    async fn deliver(
        &self,
        _: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure> {
        let (req, method, url) = self.config.request(&self.client, ff, content)?;
        let target = format!("{method} {}", public_url(&url));
        let resp = req
            .send()
            .await
            .map_err(|e| retry::reqwest_failure(e).context(&target))?;
        let status = resp.status();
        let reason = status.canonical_reason().unwrap_or("");
        let mut attributes = vec![
            ("http.status.code".to_string(), status.as_u16().to_string()),
            ("http.status.message".to_string(), reason.to_string()),
        ];
        let mut names: Vec<&HeaderName> = resp.headers().keys().collect();
        names.dedup();
        for name in names {
            let values: Vec<String> = resp
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            attributes.push((format!("http.response.header.{name}"), values.join(", ")));
        }
        let retry_after = retry::retry_after_header(resp.headers());
        let body = read_body(resp, self.config.body_limit).await;
        if self.config.body_limit > 0 {
            attributes.push((
                "http.response.body".to_string(),
                String::from_utf8_lossy(&body).into_owned(),
            ));
        }
        match retry::http_status(status.as_u16()) {
            None => Ok(Delivered {
                destination: public_url(&url),
                attributes,
            }),
            Some(class) => Err(Failure::permanent(format!(
                "{target}: HTTP {} {reason}",
                status.as_u16()
            ))
            .classed(class)
            .retry_after(retry_after)
            .with_attributes(attributes)),
        }
    }
}

#[async_trait]
impl Processor for PutHttp {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        self.delivery.run(self, ctx, session).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::{TestRunner, check_type_contract};

    #[test]
    fn contract() {
        check_type_contract(&PutHttpType, &crate::registry()).unwrap();
    }

    #[test]
    fn validation_names_each_bad_property_with_its_position() {
        let yaml =
            "url: ftp://example.com/x\nmethod: \"NOT A METHOD\"\nheaders:\n  \"bad header\": x\n";
        let errs = sluice_runtime::testing::props_from_yaml(&PutHttpType, &crate::registry(), yaml)
            .unwrap_err();
        let lines: Vec<&str> = errs.lines().filter(|l| l.contains("error:")).collect();
        assert_eq!(lines.len(), 3, "{errs}");
        assert!(
            lines[0].contains(":1:") && lines[0].contains("scheme `ftp`"),
            "{errs}"
        );
        assert!(
            lines[1].contains(":2:") && lines[1].contains("NOT A METHOD"),
            "{errs}"
        );
        assert!(
            lines[2].contains(":4:") && lines[2].contains("bad header"),
            "{errs}"
        );
    }

    #[test]
    fn debug_hides_the_authorization() {
        let props = crate::test_props(
            &PutHttpType,
            "url: http://127.0.0.1:9/\nauthorization: Bearer s3cret-token\n",
        );
        let cfg = Config {
            url: Template::compile("http://x/", Escape::None).unwrap(),
            method: Template::compile("POST", Escape::None).unwrap(),
            headers: Vec::new(),
            authorization: secret_opt(&props, "authorization").unwrap(),
            content_type: Template::compile("text/plain", Escape::None).unwrap(),
            send_body: true,
            body_limit: 0,
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    #[tokio::test]
    async fn a_bad_rendered_url_is_a_permanent_failure() {
        let r = TestRunner::new(&PutHttpType, &[("url", "{{target}}")]).unwrap();
        r.enqueue("x", &[("target", "not a url")]);
        r.run_once().await.unwrap();
        let failed = r.take(FAILURE);
        assert_eq!(failed.len(), 1);
        let why = failed[0].attr("put.error").unwrap();
        assert!(why.starts_with("url:"), "{why}");
    }

    #[tokio::test]
    async fn connection_refused_keeps_the_flowfile_queued() {
        // A port that was free a moment ago: nothing listens, connect is refused.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/x");
        let r = TestRunner::new(&PutHttpType, &[("url", &url)]).unwrap();
        r.enqueue("x", &[]);
        r.run_once().await.unwrap();
        assert!(r.take(SUCCESS).is_empty());
        assert!(r.take(FAILURE).is_empty());
        let back = r.take_input();
        assert_eq!(back.len(), 1);
        let why = back[0].attr("put.error").unwrap();
        assert!(why.starts_with(&format!("POST {url}")), "{why}");
        assert_eq!(
            r.ctx
                .counter("retries")
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }
}
