//! PutSlack: posts each FlowFile as a Slack message, through an incoming
//! webhook or the Web API's `chat.postMessage` with a bot token.
//!
//! `text`, `blocks` (a JSON array template) and the attachment `color` are
//! templates over the attributes, with `{{content}}` the content as text.
//! When `color` renders non-empty, the text and blocks go into one attachment
//! of that colour (`good`, `warning`, `danger` or `#rrggbb`): the way to
//! colour alerts by severity. The same payload works for the incoming
//! webhooks of Slack-compatible servers (Mattermost, Rocket.Chat).
//!
//! Slack's answers decide: HTTP 2xx with `ok` (or a plain `ok` body) is
//! success; 429 waits at least its `Retry-After` before any further message;
//! 5xx and `ok:false` with `ratelimited`, `internal_error`, `fatal_error`,
//! `service_unavailable` or `request_timeout` are retried with back-off;
//! other errors (`invalid_auth`, `channel_not_found`, `invalid_blocks`,
//! `no_text`...) go to `failure` with the error in `put.error`.
//!
//! ```yaml
//! chatops:
//!   type: PutSlack
//!   properties:
//!     webhook_url: ${env:SLACK_WEBHOOK_URL}
//!     text: "*{{syslog.hostname}}* {{syslog.message}}"
//!     color: "{{#if (lte (num syslog.severity) 3)}}danger{{else}}{{#if (eq (num syslog.severity) 4)}}warning{{else}}good{{/if}}{{/if}}"
//!   auto_terminate: [success, failure]
//! ```
//!
//! With a bot token instead: `token: ${env:SLACK_BOT_TOKEN}` and
//! `channel: "#alerts"`. Attributes written on success (Web API):
//! `slack.channel`, `slack.ts`.

use std::fmt;

use bytes::Bytes;
use reqwest::Url;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use serde_json::{Map, Value, json};
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

use super::http::{origin_only, public_url, read_body};
use super::retry::{
    self, BACKOFF_INITIAL, BACKOFF_MAX, Class, Delivered, Delivery, FAILURE, Failure, MAX_ATTEMPTS,
    SUCCESS, Sink,
};
use super::tls::{CA_FILE, TLS_INSECURE, TlsOptions};
use super::{Secret, secret_opt};

/// Bytes of Slack's answer kept for the error message and the `ts`.
const ANSWER_LIMIT: usize = 16 * 1024;

/// Web API error codes that heal by waiting.
const TRANSIENT_ERRORS: &[&str] = &[
    "ratelimited",
    "rate_limited",
    "internal_error",
    "fatal_error",
    "service_unavailable",
    "request_timeout",
    "team_added_to_org",
];

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::optional(
        "webhook_url",
        PropKind::Text,
        None,
        "Incoming-webhook URL (Slack, Mattermost, Rocket.Chat), e.g. ${env:SLACK_WEBHOOK_URL}. Secret. Either this or `token`.",
    )
    .secret(),
    PropertyDescriptor::optional(
        "token",
        PropKind::Text,
        None,
        "Bot token (xoxb-...) for chat.postMessage, e.g. ${env:SLACK_BOT_TOKEN}. Secret. Needs `channel`.",
    )
    .secret(),
    PropertyDescriptor::optional(
        "channel",
        PropKind::Template,
        None,
        "Channel name or id (template); required with `token`, an override for webhooks that allow it.",
    ),
    PropertyDescriptor::optional(
        "api_url",
        PropKind::Text,
        Some("https://slack.com/api/"),
        "Base URL of the Web API (chat.postMessage is appended).",
    ),
    PropertyDescriptor::optional(
        "text",
        PropKind::Template,
        Some("{{content}}"),
        "Message text (template; Slack mrkdwn). `{{content}}` is the content as text.",
    ),
    PropertyDescriptor::optional(
        "blocks",
        PropKind::Template,
        None,
        "Block Kit blocks: a template rendering a JSON array; values are JSON-escaped, so write \"{{syslog.message}}\" inside string literals.",
    ),
    PropertyDescriptor::optional(
        "color",
        PropKind::Template,
        None,
        "Attachment colour (template): good, warning, danger or #rrggbb. When it renders non-empty, text and blocks go into one attachment of that colour.",
    ),
    PropertyDescriptor::optional("username", PropKind::Template, None, "Display name override (template)."),
    PropertyDescriptor::optional(
        "icon_emoji",
        PropKind::Template,
        None,
        "Icon emoji override, e.g. :rotating_light: (template).",
    ),
    PropertyDescriptor::optional("icon_url", PropKind::Template, None, "Icon image URL override (template)."),
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
        "Longest wait for each read of Slack's answer.",
    ),
    TLS_INSECURE,
    CA_FILE,
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
];

/// The registry entry.
pub struct PutSlackType;

impl ProcessorType for PutSlackType {
    fn name(&self) -> &'static str {
        "PutSlack"
    }
    fn description(&self) -> &'static str {
        "Posts each FlowFile as a Slack message (incoming webhook or chat.postMessage) with text, blocks and a severity colour from templates; honours 429 Retry-After and Slack's ok:false errors. Works with Mattermost and Rocket.Chat webhooks."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "Slack accepted the message."),
            RelationshipDef::new(
                FAILURE,
                "Slack refused it for good (bad token, unknown channel, invalid blocks...); reason in `put.error`.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let err = |name: &str, message: &str| PropertyError {
            name: name.into(),
            message: message.into(),
            pos: props.raw(name).map(sluice_runtime::PropValue::pos),
        };
        let given = |name: &str| {
            props
                .str_opt(name)
                .ok()
                .flatten()
                .is_some_and(|v| !v.trim().is_empty())
        };
        match (given("webhook_url"), given("token")) {
            (true, true) => errs.push(err(
                "token",
                "give either `webhook_url` or `token`, not both",
            )),
            (false, false) => errs.push(err(
                "webhook_url",
                "is required (or `token` with `channel` for chat.postMessage)",
            )),
            (false, true) if !given("channel") => {
                errs.push(err("channel", "is required with `token`"));
            }
            _ => {}
        }
        if given("webhook_url")
            && let Ok(Some(u)) = props.str_opt("webhook_url")
            && !is_http_url(u)
        {
            // The value is secret: say what is wrong without repeating it.
            errs.push(err("webhook_url", "is not an http(s) URL"));
        }
        if let Ok(Some(u)) = props.str_opt("api_url")
            && !is_http_url(u)
        {
            errs.push(err("api_url", "is not an http(s) URL"));
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let tls = TlsOptions::from_props(props, ctx)?;
        let client = tls.reqwest_client(
            props.duration("connect_timeout")?,
            props.duration("read_timeout")?,
        )?;
        Ok(Box::new(PutSlack {
            config: Config::from_props(props)?,
            client,
            delivery: Delivery::from_props(props, FAILURE)?,
        }))
    }
    fn example(&self) -> &'static str {
        "webhook_url: https://hooks.slack.com/services/T000/B000/XXXX\ntext: \"*{{syslog.hostname}}* {{syslog.message}}\"\ncolor: \"{{#if (lte (num syslog.severity) 3)}}danger{{else}}good{{/if}}\""
    }
}

fn is_http_url(s: &str) -> bool {
    Url::parse(s.trim()).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// Where messages go.
enum Mode {
    /// An incoming webhook; the URL's path is the secret (see `Debug`).
    Webhook { parsed: Url },
    /// chat.postMessage with a bot token.
    Api { token: Secret, endpoint: Url },
}

impl fmt::Debug for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Webhook { parsed, .. } => {
                write!(f, "Webhook({}/***)", origin_only(parsed))
            }
            Mode::Api { token, endpoint } => write!(f, "Api({endpoint}, token {token:?})"),
        }
    }
}

#[derive(Debug)]
struct Config {
    mode: Mode,
    channel: Option<Template>,
    text: Option<Template>,
    blocks: Option<Template>,
    color: Option<Template>,
    username: Option<Template>,
    icon_emoji: Option<Template>,
    icon_url: Option<Template>,
}

impl Config {
    fn from_props(props: &Properties) -> Result<Self, BuildError> {
        let compile = |name: &str, escape: Escape| -> Result<Option<Template>, BuildError> {
            match props.str_opt(name)? {
                Some(src) if !src.is_empty() => Template::compile(src, escape)
                    .map(Some)
                    .map_err(|e| BuildError::Other(format!("{name}: {e}"))),
                _ => Ok(None),
            }
        };
        let mode = match (
            secret_opt(props, "webhook_url")?,
            secret_opt(props, "token")?,
        ) {
            (Some(url), _) => {
                let parsed = Url::parse(url.expose().trim())
                    .map_err(|_| BuildError::Other("webhook_url: is not a URL".into()))?;
                Mode::Webhook { parsed }
            }
            (None, Some(token)) => {
                let mut base = props.str("api_url")?.trim().to_string();
                if !base.ends_with('/') {
                    base.push('/');
                }
                let endpoint = Url::parse(&base)
                    .and_then(|b| b.join("chat.postMessage"))
                    .map_err(|e| BuildError::Other(format!("api_url: {e}")))?;
                Mode::Api { token, endpoint }
            }
            (None, None) => {
                return Err(BuildError::Other("webhook_url or token is required".into()));
            }
        };
        Ok(Self {
            mode,
            channel: compile("channel", Escape::None)?,
            text: compile("text", Escape::None)?,
            blocks: compile("blocks", Escape::Json)?,
            color: compile("color", Escape::None)?,
            username: compile("username", Escape::None)?,
            icon_emoji: compile("icon_emoji", Escape::None)?,
            icon_url: compile("icon_url", Escape::None)?,
        })
    }

    /// The message for `ff`: see the module docs for the colour rule.
    fn payload(&self, ff: &FlowFile, content: &str) -> Result<Value, Failure> {
        let render = |t: &Option<Template>, what: &str| -> Result<Option<String>, Failure> {
            match t {
                None => Ok(None),
                Some(t) => t
                    .render_with(&ff.attributes, Some(content), &[])
                    .map(|s| Some(s).filter(|s| !s.trim().is_empty()))
                    .map_err(|e| Failure::permanent(format!("{what}: {e}"))),
            }
        };
        let text = render(&self.text, "text")?;
        let blocks = match render(&self.blocks, "blocks")? {
            None => None,
            Some(src) => match serde_json::from_str::<Value>(&src) {
                Ok(v @ Value::Array(_)) => Some(v),
                Ok(_) => {
                    return Err(Failure::permanent(
                        "blocks: the template must render a JSON array",
                    ));
                }
                Err(e) => {
                    return Err(Failure::permanent(format!(
                        "blocks: the template did not render JSON ({e})"
                    )));
                }
            },
        };
        if text.is_none() && blocks.is_none() {
            return Err(Failure::permanent(
                "nothing to send: text and blocks rendered empty",
            ));
        }
        let mut msg = Map::new();
        match render(&self.color, "color")? {
            Some(color) => {
                let mut a = Map::new();
                a.insert("color".into(), Value::String(color.trim().to_string()));
                if let Some(t) = text {
                    a.insert("fallback".into(), Value::String(t.clone()));
                    a.insert("text".into(), Value::String(t));
                    a.insert("mrkdwn_in".into(), json!(["text"]));
                }
                if let Some(b) = blocks {
                    a.insert("blocks".into(), b);
                }
                msg.insert("attachments".into(), Value::Array(vec![Value::Object(a)]));
            }
            None => {
                if let Some(t) = text {
                    msg.insert("text".into(), Value::String(t));
                }
                if let Some(b) = blocks {
                    msg.insert("blocks".into(), b);
                }
            }
        }
        for (key, t) in [
            ("channel", &self.channel),
            ("username", &self.username),
            ("icon_emoji", &self.icon_emoji),
            ("icon_url", &self.icon_url),
        ] {
            if let Some(v) = render(t, key)? {
                msg.insert(key.into(), Value::String(v.trim().to_string()));
            }
        }
        Ok(Value::Object(msg))
    }
}

struct PutSlack {
    config: Config,
    client: reqwest::Client,
    delivery: Delivery,
}

/// What Slack's answer means.
fn judge(
    status: u16,
    retry_after: Option<std::time::Duration>,
    body: &[u8],
) -> Result<Map<String, Value>, Failure> {
    let text = String::from_utf8_lossy(body);
    let json = serde_json::from_slice::<Value>(body).ok();
    let error_code = json
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(Value::as_str)
        .map(str::to_string);
    if let Some(class) = retry::http_status(status) {
        let what = error_code.unwrap_or_else(|| text.trim().chars().take(200).collect());
        return Err(
            Failure::permanent(format!("Slack answered HTTP {status}: {what}"))
                .classed(class)
                .retry_after(retry_after),
        );
    }
    let Some(Value::Object(obj)) = json else {
        // Webhooks answer a plain `ok`.
        return Ok(Map::new());
    };
    let refused = obj.get("ok") == Some(&Value::Bool(false))
        || obj.get("success") == Some(&Value::Bool(false));
    if refused {
        let code = error_code.unwrap_or_else(|| "unknown_error".into());
        let class = if TRANSIENT_ERRORS.contains(&code.as_str()) {
            Class::Transient
        } else {
            Class::Permanent
        };
        return Err(
            Failure::permanent(format!("Slack refused the message: {code}"))
                .classed(class)
                .retry_after(retry_after),
        );
    }
    Ok(obj)
}

#[async_trait]
impl Sink for PutSlack {
    async fn deliver(
        &self,
        _: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure> {
        let payload = self
            .config
            .payload(ff, &String::from_utf8_lossy(&content))?;
        let json_type = HeaderValue::from_static("application/json; charset=utf-8");
        let (req, destination) = match &self.config.mode {
            Mode::Webhook { parsed, .. } => (
                self.client.post(parsed.clone()),
                format!("{}/services/***", origin_only(parsed)),
            ),
            Mode::Api { token, endpoint } => {
                let mut auth = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| Failure::permanent("token: not a valid header value"))?;
                auth.set_sensitive(true);
                let channel = payload.get("channel").and_then(Value::as_str).unwrap_or("");
                (
                    self.client
                        .post(endpoint.clone())
                        .header(AUTHORIZATION, auth),
                    format!("{}#{channel}", public_url(endpoint)),
                )
            }
        };
        let body = serde_json::to_vec(&payload)
            .map_err(|e| Failure::permanent(format!("payload: {e}")))?;
        let resp = req
            .header(CONTENT_TYPE, json_type)
            .body(body)
            .send()
            .await
            .map_err(|e| retry::reqwest_failure(e).context("posting to Slack"))?;
        let status = resp.status().as_u16();
        let retry_after = retry::retry_after_header(resp.headers());
        let answer = read_body(resp, ANSWER_LIMIT).await;
        let obj = judge(status, retry_after, &answer)?;
        let mut attributes = Vec::new();
        for key in ["channel", "ts"] {
            if let Some(v) = obj.get(key).and_then(Value::as_str) {
                attributes.push((format!("slack.{key}"), v.to_string()));
            }
        }
        Ok(Delivered {
            destination,
            attributes,
        })
    }
}

#[async_trait]
impl Processor for PutSlack {
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
    use sluice_runtime::testing::check_type_contract;

    #[test]
    fn contract() {
        check_type_contract(&PutSlackType, &crate::registry()).unwrap();
    }

    fn config(yaml: &str) -> Config {
        Config::from_props(&crate::test_props(&PutSlackType, yaml)).unwrap()
    }

    fn flowfile(attrs: &[(&str, &str)]) -> FlowFile {
        let mut ff = FlowFile::new();
        for (k, v) in attrs {
            ff.attributes.insert(*k, *v);
        }
        ff
    }

    const SEVERITY_COLOUR: &str = "color: \"{{#if (lte (num syslog.severity) 3)}}danger{{else}}{{#if (eq (num syslog.severity) 4)}}warning{{else}}good{{/if}}{{/if}}\"\n";

    #[test]
    fn plain_text_from_content() {
        let c = config("webhook_url: http://x/services/T/B/C\n");
        let p = c.payload(&flowfile(&[]), "disk full").unwrap();
        assert_eq!(p, json!({"text": "disk full"}));
    }

    #[test]
    fn severity_colours_go_into_an_attachment() {
        let c = config(&format!(
            "webhook_url: http://x/services/T/B/C\ntext: \"{{{{host}}}}: {{{{content}}}}\"\n{SEVERITY_COLOUR}"
        ));
        for (sev, colour) in [
            ("0", "danger"),
            ("3", "danger"),
            ("4", "warning"),
            ("5", "good"),
            ("7", "good"),
        ] {
            let p = c
                .payload(
                    &flowfile(&[("syslog.severity", sev), ("host", "db1")]),
                    "down",
                )
                .unwrap();
            assert_eq!(
                p,
                json!({"attachments": [{
                    "color": colour, "fallback": "db1: down", "text": "db1: down", "mrkdwn_in": ["text"]
                }]}),
                "severity {sev}"
            );
        }
    }

    #[test]
    fn blocks_are_json_with_escaped_values() {
        let yaml = "webhook_url: http://x/services/T/B/C\ntext: \"\"\nblocks: '[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":\"{{content}}\"}}]'\nchannel: \"#ops\"\nusername: sluice\n";
        let c = config(yaml);
        let p = c.payload(&flowfile(&[]), "say \"hi\"\nnow").unwrap();
        assert_eq!(
            p,
            json!({
                "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "say \"hi\"\nnow"}}],
                "channel": "#ops",
                "username": "sluice",
            })
        );
    }

    #[test]
    fn bad_blocks_and_empty_messages_are_permanent() {
        let c = config("webhook_url: http://x/services/T/B/C\nblocks: \"{{content}}\"\n");
        let e = c.payload(&flowfile(&[]), "not json").unwrap_err();
        assert!(!e.is_transient());
        assert!(e.reason.starts_with("blocks:"), "{}", e.reason);
        let c = config("webhook_url: http://x/services/T/B/C\ntext: \"{{missing}}\"\n");
        let e = c.payload(&flowfile(&[]), "").unwrap_err();
        assert!(e.reason.contains("nothing to send"), "{}", e.reason);
    }

    #[test]
    fn answers_are_judged_like_slack_means_them() {
        assert!(judge(200, None, b"ok").is_ok());
        let ok = judge(200, None, br#"{"ok":true,"channel":"C1","ts":"1.2"}"#).unwrap();
        assert_eq!(ok.get("ts"), Some(&json!("1.2")));
        let e = judge(200, None, br#"{"ok":false,"error":"channel_not_found"}"#).unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(e.reason, "Slack refused the message: channel_not_found");
        let e = judge(200, None, br#"{"ok":false,"error":"ratelimited"}"#).unwrap_err();
        assert!(e.is_transient());
        let wait = Some(std::time::Duration::from_secs(3));
        let e = judge(429, wait, br#"{"ok":false,"error":"ratelimited"}"#).unwrap_err();
        assert!(e.is_transient());
        assert_eq!(e.retry_after, wait);
        let e = judge(503, None, b"upstream down").unwrap_err();
        assert!(e.is_transient());
        let e = judge(400, None, b"invalid_payload").unwrap_err();
        assert!(!e.is_transient());
        assert_eq!(e.reason, "Slack answered HTTP 400: invalid_payload");
        // Rocket.Chat's shape.
        assert!(judge(200, None, br#"{"success":false,"error":"x"}"#).is_err());
    }

    #[test]
    fn validation_needs_one_destination_and_hides_the_secret() {
        let check = |yaml: &str| {
            sluice_runtime::testing::props_from_yaml(&PutSlackType, &crate::registry(), yaml)
                .err()
                .unwrap_or_default()
        };
        assert!(check("text: hi\n").contains("webhook_url"));
        assert!(check("token: xoxb-1\n").contains("`channel`: is required"));
        assert!(check("token: xoxb-1\nwebhook_url: http://x/\n").contains("not both"));
        let e = check("webhook_url: notaurl-s3cret\n");
        assert!(
            e.contains("not an http(s) URL") && !e.contains("s3cret"),
            "{e}"
        );
        assert_eq!(check("token: xoxb-1\nchannel: \"#ops\"\n"), "");
    }

    #[test]
    fn debug_shows_no_secret() {
        let m = Mode::Webhook {
            parsed: Url::parse("https://hooks.slack.com/services/T0/B0/s3cret").unwrap(),
        };
        let shown = format!("{m:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        let m = Mode::Api {
            token: Secret::new("xoxb-s3cret"),
            endpoint: Url::parse("https://slack.com/api/chat.postMessage").unwrap(),
        };
        let shown = format!("{m:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
