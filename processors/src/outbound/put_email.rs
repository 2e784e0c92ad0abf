//! PutEmail: sends each FlowFile as an email over SMTP.
//!
//! From, to, cc, bcc, subject and body are templates over the attributes
//! (`{{content}}` is the content as text); the body is plain text or HTML
//! (HTML-escaped values; `{{{content}}}` inserts raw). STARTTLS is `none`,
//! `opportunistic` (when the server offers it) or `required`; authentication
//! when `username` is set. Connections are pooled (lettre's pool).
//!
//! The server's 250 after the message is success. 4xx replies, refused
//! connections and timeouts are transient (the FlowFile stays queued, the
//! processor backs off); 5xx replies (unknown user, authentication failed,
//! STARTTLS required...), TLS problems and bad addresses go to `failure`.
//!
//! ```yaml
//! page:
//!   type: PutEmail
//!   properties:
//!     host: smtp.example.com
//!     port: 587
//!     starttls: required
//!     username: alerts@example.com
//!     password: ${env:SMTP_PASSWORD}
//!     from: "Sluice <alerts@example.com>"
//!     to: "oncall@example.com, {{owner}}"
//!     subject: "[{{syslog.severity}}] {{syslog.hostname}}: {{truncate syslog.message 60}}"
//!   auto_terminate: [success, failure]
//! ```
//!
//! Attributes written on success: `email.message.id`, `email.response`.

use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use lettre::message::header::{self, ContentType};
use lettre::message::{Mailbox, Mailboxes, Message};
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};

use super::retry::{
    self, BACKOFF_INITIAL, BACKOFF_MAX, Delivered, Delivery, FAILURE, Failure, MAX_ATTEMPTS,
    SUCCESS, Sink,
};
use super::tls::{CA_FILE, TLS_INSECURE, TlsOptions};
use super::{Secret, secret_opt};

type Transport = AsyncSmtpTransport<Tokio1Executor>;

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "host",
        PropKind::NonEmpty,
        "SMTP server host name or address.",
    ),
    PropertyDescriptor::optional(
        "port",
        PropKind::Integer { min: 1, max: 65535 },
        Some("25"),
        "SMTP port (25, or 587 for submission).",
    ),
    PropertyDescriptor::optional(
        "starttls",
        PropKind::Choice(&["none", "opportunistic", "required"]),
        Some("opportunistic"),
        "STARTTLS: never, when the server offers it, or required (refuse to send in clear).",
    ),
    PropertyDescriptor::optional(
        "username",
        PropKind::Text,
        None,
        "Login user; authentication is used only when set.",
    ),
    PropertyDescriptor::optional(
        "password",
        PropKind::Text,
        None,
        "Login password, e.g. ${env:SMTP_PASSWORD} (secret: never logged).",
    )
    .secret(),
    PropertyDescriptor::required(
        "from",
        PropKind::Template,
        "Sender (template), e.g. \"Sluice <alerts@example.com>\".",
    ),
    PropertyDescriptor::required(
        "to",
        PropKind::Template,
        "Recipients (template), comma-separated.",
    ),
    PropertyDescriptor::optional(
        "cc",
        PropKind::Template,
        None,
        "Copy recipients (template), comma-separated.",
    ),
    PropertyDescriptor::optional(
        "bcc",
        PropKind::Template,
        None,
        "Blind-copy recipients (template), comma-separated; not shown in the message.",
    ),
    PropertyDescriptor::optional(
        "subject",
        PropKind::Template,
        Some("Message from Sluice"),
        "Subject (template).",
    ),
    PropertyDescriptor::optional(
        "body",
        PropKind::Template,
        Some("{{content}}"),
        "Body (template); `{{content}}` is the content as text.",
    ),
    PropertyDescriptor::optional(
        "body_type",
        PropKind::Choice(&["text", "html"]),
        Some("text"),
        "text/plain, or text/html (values in the body template are HTML-escaped).",
    ),
    PropertyDescriptor::optional(
        "timeout",
        PropKind::Duration,
        Some("30s"),
        "Longest wait for each step of the SMTP conversation (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "pool_size",
        PropKind::Integer { min: 1, max: 64 },
        Some("4"),
        "Most SMTP connections kept open for reuse.",
    ),
    TLS_INSECURE,
    CA_FILE,
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
];

/// The registry entry.
pub struct PutEmailType;

impl ProcessorType for PutEmailType {
    fn name(&self) -> &'static str {
        "PutEmail"
    }
    fn description(&self) -> &'static str {
        "Sends each FlowFile as an email over SMTP (pooled connections, STARTTLS none/opportunistic/required, optional authentication), with from/to/cc/bcc/subject/body from templates and a text or HTML body."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "The server accepted the message (250)."),
            RelationshipDef::new(
                FAILURE,
                "Refused for good (5xx, bad address, TLS or authentication problem); reason in `put.error`.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        let user = props.str_opt("username").ok().flatten().unwrap_or("");
        let pass = props.str_opt("password").ok().flatten().unwrap_or("");
        if user.is_empty() && !pass.is_empty() {
            errs.push(PropertyError {
                name: "username".into(),
                message: "is required when a password is given".into(),
                pos: props.raw("password").map(sluice_runtime::PropValue::pos),
            });
        }
        for name in ["from", "to", "cc", "bcc"] {
            if let Ok(Some(v)) = props.str_opt(name)
                && !v.contains("{{")
                && !v.trim().is_empty()
                && let Err(e) = parse_list(v)
            {
                errs.push(PropertyError {
                    name: name.into(),
                    message: e,
                    pos: props.raw(name).map(sluice_runtime::PropValue::pos),
                });
            }
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let html = props.str("body_type")? == "html";
        let compile = |name: &str, escape: Escape| -> Result<Option<Template>, BuildError> {
            match props.str_opt(name)? {
                Some(src) if !src.is_empty() => Template::compile(src, escape)
                    .map(Some)
                    .map_err(|e| BuildError::Other(format!("{name}: {e}"))),
                _ => Ok(None),
            }
        };
        let required = |name: &str| -> Result<Template, BuildError> {
            compile(name, Escape::None)?
                .ok_or_else(|| BuildError::Other(format!("{name}: is required")))
        };
        let starttls = match props.str("starttls")? {
            "none" => StartTls::None,
            "required" => StartTls::Required,
            _ => StartTls::Opportunistic,
        };
        Ok(Box::new(PutEmail {
            config: Config {
                host: props.str("host")?.trim().to_string(),
                port: u16::try_from(props.int("port")?).unwrap_or(25),
                starttls,
                tls: TlsOptions::from_props(props, ctx)?,
                username: props
                    .str_opt("username")?
                    .filter(|u| !u.is_empty())
                    .map(str::to_string),
                password: secret_opt(props, "password")?.unwrap_or_default(),
                from: required("from")?,
                to: required("to")?,
                cc: compile("cc", Escape::None)?,
                bcc: compile("bcc", Escape::None)?,
                subject: required("subject")?,
                body: compile("body", if html { Escape::Html } else { Escape::None })?,
                html,
                timeout: props.duration("timeout")?,
                pool_size: u32::try_from(props.int("pool_size")?).unwrap_or(4),
            },
            transport: OnceLock::new(),
            delivery: Delivery::from_props(props, FAILURE)?,
        }))
    }
    fn example(&self) -> &'static str {
        "host: smtp.example.com\nport: 587\nstarttls: required\nusername: alerts@example.com\npassword: secret\nfrom: \"Sluice <alerts@example.com>\"\nto: \"oncall@example.com, {{owner}}\"\nsubject: \"[{{syslog.severity}}] {{syslog.hostname}}\""
    }
}

/// Parses a comma-separated address list (an empty list is allowed).
fn parse_list(s: &str) -> Result<Mailboxes, String> {
    if s.trim().is_empty() {
        return Ok(Mailboxes::new());
    }
    s.parse::<Mailboxes>()
        .map_err(|e| format!("`{}` is not a list of email addresses ({e})", s.trim()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartTls {
    None,
    Opportunistic,
    Required,
}

#[derive(Debug)]
struct Config {
    host: String,
    port: u16,
    starttls: StartTls,
    tls: TlsOptions,
    username: Option<String>,
    password: Secret,
    from: Template,
    to: Template,
    cc: Option<Template>,
    bcc: Option<Template>,
    subject: Template,
    body: Option<Template>,
    html: bool,
    timeout: Duration,
    pool_size: u32,
}

impl Config {
    /// The pooled transport (its pool runs a task, so this is made in
    /// `on_scheduled`, not in `build`).
    fn transport(&self) -> Result<Transport, String> {
        let tls = if self.starttls == StartTls::None {
            Tls::None
        } else {
            let mut b = TlsParameters::builder(self.host.clone())
                .dangerous_accept_invalid_certs(self.tls.insecure);
            if let Some(ca) = &self.tls.ca {
                b = b.certificate_store(CertificateStore::None);
                for der in ca {
                    let cert =
                        Certificate::from_der(der.to_vec()).map_err(|e| format!("ca_file: {e}"))?;
                    b = b.add_root_certificate(cert);
                }
            }
            let params = b.build_rustls().map_err(|e| format!("TLS: {e}"))?;
            if self.starttls == StartTls::Required {
                Tls::Required(params)
            } else {
                Tls::Opportunistic(params)
            }
        };
        let mut b = Transport::builder_dangerous(&self.host)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .pool_config(PoolConfig::new().max_size(self.pool_size));
        if let Some(user) = &self.username {
            b = b.credentials(Credentials::new(
                user.clone(),
                self.password.expose().to_string(),
            ));
        }
        Ok(b.build())
    }

    fn message(&self, ff: &FlowFile, content: &str) -> Result<Message, Failure> {
        let render = |t: &Template, what: &str| {
            t.render_with(&ff.attributes, Some(content), &[])
                .map_err(|e| Failure::permanent(format!("{what}: {e}")))
        };
        let list = |t: &Option<Template>, what: &str| -> Result<Mailboxes, Failure> {
            match t {
                None => Ok(Mailboxes::new()),
                Some(t) => parse_list(&render(t, what)?)
                    .map_err(|e| Failure::permanent(format!("{what}: {e}"))),
            }
        };
        let from_text = render(&self.from, "from")?;
        let from: Mailbox = from_text.trim().parse().map_err(|e| {
            Failure::permanent(format!(
                "from: `{}` is not an email address ({e})",
                from_text.trim()
            ))
        })?;
        let to = list(&Some(self.to.clone()), "to")?;
        let cc = list(&self.cc, "cc")?;
        let bcc = list(&self.bcc, "bcc")?;
        if to.iter().next().is_none() && cc.iter().next().is_none() && bcc.iter().next().is_none() {
            return Err(Failure::permanent("to: no recipient"));
        }
        let mut b = Message::builder()
            .from(from)
            .subject(render(&self.subject, "subject")?.trim())
            .message_id(None)
            .date_now();
        for (list, kind) in [(to, 0), (cc, 1), (bcc, 2)] {
            if list.iter().next().is_none() {
                continue;
            }
            b = match kind {
                0 => b.mailbox(header::To::from(list)),
                1 => b.mailbox(header::Cc::from(list)),
                _ => b.mailbox(header::Bcc::from(list)),
            };
        }
        let body = match &self.body {
            Some(t) => render(t, "body")?,
            None => String::new(),
        };
        let ct = if self.html {
            ContentType::TEXT_HTML
        } else {
            ContentType::TEXT_PLAIN
        };
        b.header(ct)
            .body(body)
            .map_err(|e| Failure::permanent(format!("message: {e}")))
    }
}

/// Classifies an SMTP error.
fn smtp_failure(e: &lettre::transport::smtp::Error) -> Failure {
    if let Some(t) = retry::tls_problem(e) {
        return Failure::permanent(format!("TLS: {t}"));
    }
    let reason = retry::error_chain(e);
    if e.is_transient() || e.is_timeout() {
        Failure::transient(reason)
    } else if e.is_permanent() || e.is_tls() || e.is_client() {
        // 5xx; a TLS setup problem; STARTTLS required but not offered, no
        // common authentication mechanism: none of these heal by waiting.
        Failure::permanent(reason)
    } else {
        // Refused or broken connections, garbled replies.
        Failure::transient(reason)
    }
}

struct PutEmail {
    config: Config,
    transport: OnceLock<Transport>,
    delivery: Delivery,
}

impl fmt::Debug for PutEmail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutEmail")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl Sink for PutEmail {
    async fn deliver(
        &self,
        _: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure> {
        let Some(transport) = self.transport.get() else {
            return Err(Failure::transient(
                "the SMTP transport is not ready (not scheduled)",
            ));
        };
        let msg = self
            .config
            .message(ff, &String::from_utf8_lossy(&content))?;
        let id = msg.headers().get_raw("Message-ID").map(str::to_string);
        let resp = transport.send(msg).await.map_err(|e| smtp_failure(&e))?;
        let mut attributes = vec![(
            "email.response".to_string(),
            format!(
                "{} {}",
                u16::from(resp.code()),
                resp.first_line().unwrap_or("").trim()
            ),
        )];
        if let Some(id) = id {
            attributes.push(("email.message.id".to_string(), id));
        }
        Ok(Delivered {
            destination: format!("smtp://{}:{}", self.config.host, self.config.port),
            attributes,
        })
    }
}

#[async_trait]
impl Processor for PutEmail {
    async fn on_scheduled(&self, _: &ProcessContext) -> Result<(), ProcessError> {
        if self.transport.get().is_none() {
            let t = self.config.transport().map_err(ProcessError::new)?;
            let _ = self.transport.set(t);
        }
        Ok(())
    }

    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        self.delivery.run(self, ctx, session).await
    }

    async fn on_stopped(&self, _: &ProcessContext) {
        if let Some(t) = self.transport.get() {
            t.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::check_type_contract;

    #[test]
    fn contract() {
        check_type_contract(&PutEmailType, &crate::registry()).unwrap();
    }

    fn config(yaml: &str) -> Config {
        let props = crate::test_props(&PutEmailType, yaml);
        let html = props.str("body_type").unwrap() == "html";
        let t = |name: &str, escape: Escape| {
            props
                .str_opt(name)
                .unwrap()
                .map(|s| Template::compile(s, escape).unwrap())
        };
        Config {
            host: "h".into(),
            port: 25,
            starttls: StartTls::None,
            tls: TlsOptions::default(),
            username: None,
            password: secret_opt(&props, "password").unwrap().unwrap_or_default(),
            from: t("from", Escape::None).unwrap(),
            to: t("to", Escape::None).unwrap(),
            cc: t("cc", Escape::None),
            bcc: t("bcc", Escape::None),
            subject: t("subject", Escape::None).unwrap(),
            body: t("body", if html { Escape::Html } else { Escape::None }),
            html,
            timeout: Duration::from_secs(1),
            pool_size: 1,
        }
    }

    fn ff(attrs: &[(&str, &str)]) -> FlowFile {
        let mut ff = FlowFile::new();
        for (k, v) in attrs {
            ff.attributes.insert(*k, *v);
        }
        ff
    }

    #[test]
    fn messages_from_templates() {
        let c = config(
            "host: h\nfrom: \"Sluice <a@example.com>\"\nto: \"ops@example.com, {{owner}}\"\nbcc: audit@example.com\nsubject: \"[{{sev}}] disk\"\n",
        );
        let msg = c
            .message(
                &ff(&[("owner", "Bob <bob@example.com>"), ("sev", "2")]),
                "full",
            )
            .unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("From: Sluice <a@example.com>"), "{text}");
        assert!(
            text.contains("To: ops@example.com, Bob <bob@example.com>"),
            "{text}"
        );
        assert!(text.contains("Subject: [2] disk"), "{text}");
        assert!(
            !text.contains("audit@"),
            "Bcc is not in the message: {text}"
        );
        let rcpt: Vec<String> = msg
            .envelope()
            .to()
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            rcpt,
            ["ops@example.com", "bob@example.com", "audit@example.com"]
        );
        assert!(text.ends_with("full"), "{text}");
    }

    #[test]
    fn html_bodies_escape_values() {
        let c = config(
            "host: h\nfrom: a@example.com\nto: b@example.com\nbody_type: html\nbody: \"<p>{{msg}}</p>\"\n",
        );
        let msg = c.message(&ff(&[("msg", "x < y & z")]), "").unwrap();
        let text = String::from_utf8(msg.formatted()).unwrap();
        assert!(text.contains("Content-Type: text/html"), "{text}");
        assert!(text.contains("<p>x &lt; y &amp; z</p>"), "{text}");
    }

    #[test]
    fn bad_addresses_are_permanent_failures() {
        let c = config("host: h\nfrom: a@example.com\nto: \"{{who}}\"\n");
        let e = c
            .message(&ff(&[("who", "not an address")]), "")
            .unwrap_err();
        assert!(!e.is_transient());
        assert!(e.reason.starts_with("to:"), "{}", e.reason);
        let e = c.message(&ff(&[("who", "")]), "").unwrap_err();
        assert_eq!(e.reason, "to: no recipient");
    }

    #[test]
    fn validation_checks_literal_addresses_and_credentials() {
        let e = sluice_runtime::testing::props_from_yaml(
            &PutEmailType,
            &crate::registry(),
            "host: h\nfrom: nobody\nto: b@example.com\npassword: s3cret\n",
        )
        .unwrap_err();
        assert!(
            e.contains("`from`") && e.contains("not a list of email addresses"),
            "{e}"
        );
        assert!(e.contains("`username`: is required"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let c = config(
            "host: h\nfrom: a@example.com\nto: b@example.com\nusername: u\npassword: s3cret-pw\n",
        );
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
