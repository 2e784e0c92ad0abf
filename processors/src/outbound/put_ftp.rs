//! PutFTP: uploads each FlowFile's content to an FTP (or explicit FTPS) server.
//!
//! The remote path is a template. The content is stored in binary mode under
//! a temporary name in the target directory (`.NAME.ID.part`), and renamed to
//! its final name only after the server confirmed the transfer (226), so a
//! reader never sees half a file. Missing directories are created when the
//! server refuses the upload. Logged-in control connections are kept in a
//! small pool and reused across FlowFiles and triggers; a connection that
//! failed is dropped and a new one opened on the next attempt.
//!
//! FTP 4xx replies, refused connections and timeouts are transient (the
//! FlowFile stays queued, the processor backs off); 5xx replies (530 login
//! incorrect, 553 not allowed...) and TLS problems go to `failure`.
//!
//! ```yaml
//! archive:
//!   type: PutFTP
//!   properties:
//!     host: ftp.example.com
//!     username: sluice
//!     password: ${env:FTP_PASSWORD}
//!     remote_path: "/incoming/{{now \"%Y/%m/%d\"}}/{{filename}}"
//!     tls: explicit
//!   auto_terminate: [success, failure]
//! ```
//!
//! Attribute written on success: `ftp.remote.path`.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use sluice_runtime::{
    BuildContext, BuildError, Escape, FlowFile, InputRequirement, ProcessContext, ProcessError,
    ProcessSession, Processor, ProcessorType, PropKind, Properties, PropertyDescriptor,
    PropertyError, RelationshipDef, Template, async_trait,
};
use suppaftp::FtpError;
use suppaftp::tokio::{AsyncRustlsConnector, AsyncRustlsFtpStream};
use suppaftp::types::FileType;
use tokio::io::AsyncWriteExt;
use tokio::time::{Instant, timeout};
use tokio_rustls::rustls::ClientConfig;

use super::retry::{
    self, BACKOFF_INITIAL, BACKOFF_MAX, Delivered, Delivery, FAILURE, Failure, MAX_ATTEMPTS,
    SUCCESS, Sink,
};
use super::tls::{CA_FILE, TLS_INSECURE, TlsOptions};
use super::{Secret, secret_opt};

/// A pooled connection idle longer than this is checked with NOOP before use.
const IDLE_CHECK: Duration = Duration::from_secs(1);

type Ftp = AsyncRustlsFtpStream;

const PROPERTIES: &[PropertyDescriptor] = &[
    PropertyDescriptor::required(
        "host",
        PropKind::NonEmpty,
        "FTP server host name or address.",
    ),
    PropertyDescriptor::optional(
        "port",
        PropKind::Integer { min: 1, max: 65535 },
        Some("21"),
        "Control connection port.",
    ),
    PropertyDescriptor::optional(
        "username",
        PropKind::NonEmpty,
        Some("anonymous"),
        "Login user.",
    ),
    PropertyDescriptor::optional(
        "password",
        PropKind::Text,
        None,
        "Login password, e.g. ${env:FTP_PASSWORD} (secret: never logged).",
    )
    .secret(),
    PropertyDescriptor::required(
        "remote_path",
        PropKind::Template,
        "Path of the file on the server (template), e.g. /incoming/{{filename}}.",
    ),
    PropertyDescriptor::optional(
        "passive",
        PropKind::Bool,
        Some("true"),
        "Passive mode (the client opens data connections); false for active mode.",
    ),
    PropertyDescriptor::optional(
        "tls",
        PropKind::Choice(&["none", "explicit"]),
        Some("none"),
        "`explicit`: FTPS with AUTH TLS on the control connection and protected data connections.",
    ),
    PropertyDescriptor::optional(
        "temp_rename",
        PropKind::Bool,
        Some("true"),
        "Upload to a hidden temporary name, then rename to the final name once the server confirmed.",
    ),
    PropertyDescriptor::optional(
        "create_dirs",
        PropKind::Bool,
        Some("true"),
        "Create missing directories of the remote path.",
    ),
    PropertyDescriptor::optional(
        "connect_timeout",
        PropKind::Duration,
        Some("5s"),
        "Longest wait to connect (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "timeout",
        PropKind::Duration,
        Some("30s"),
        "Longest time for one upload, rename included (a timeout is a transient failure).",
    ),
    PropertyDescriptor::optional(
        "pool_size",
        PropKind::Integer { min: 1, max: 64 },
        Some("2"),
        "Idle logged-in control connections kept for reuse.",
    ),
    TLS_INSECURE,
    CA_FILE,
    BACKOFF_INITIAL,
    BACKOFF_MAX,
    MAX_ATTEMPTS,
];

/// The registry entry.
pub struct PutFtpType;

impl ProcessorType for PutFtpType {
    fn name(&self) -> &'static str {
        "PutFTP"
    }
    fn description(&self) -> &'static str {
        "Uploads each FlowFile to an FTP or explicit-FTPS server in binary mode, under a temporary name renamed once the server confirmed, creating missing directories and reusing pooled control connections."
    }
    fn properties(&self) -> &'static [PropertyDescriptor] {
        PROPERTIES
    }
    fn input(&self) -> InputRequirement {
        InputRequirement::Required
    }
    fn relationships(&self, _: &Properties) -> Vec<RelationshipDef> {
        vec![
            RelationshipDef::new(SUCCESS, "Stored (226) and renamed to its final name."),
            RelationshipDef::new(
                FAILURE,
                "The server refused it for good (5xx: login, permissions, bad path) or TLS failed; reason in `put.error`.",
            ),
        ]
    }
    fn validate(&self, props: &Properties) -> Vec<PropertyError> {
        let mut errs = Vec::new();
        if let Ok(Some(p)) = props.str_opt("remote_path")
            && !p.contains("{{")
            && (p.trim().is_empty() || p.trim().ends_with('/'))
        {
            errs.push(PropertyError {
                name: "remote_path".into(),
                message: format!(
                    "`{p}` names a directory, not a file; add a file name, e.g. {p}{{{{filename}}}}"
                ),
                pos: props.raw("remote_path").map(sluice_runtime::PropValue::pos),
            });
        }
        errs
    }
    fn build(
        &self,
        props: &Properties,
        ctx: &BuildContext,
    ) -> Result<Box<dyn Processor>, BuildError> {
        let explicit_tls = props.str("tls")? == "explicit";
        let tls = if explicit_tls {
            Some(TlsOptions::from_props(props, ctx)?.rustls_config()?)
        } else {
            None
        };
        let remote_path = Template::compile(props.str("remote_path")?, Escape::None)
            .map_err(|e| BuildError::Other(format!("remote_path: {e}")))?;
        Ok(Box::new(PutFtp {
            config: Config {
                host: props.str("host")?.trim().to_string(),
                port: u16::try_from(props.int("port")?).unwrap_or(21),
                username: props.str("username")?.to_string(),
                password: secret_opt(props, "password")?.unwrap_or_default(),
                remote_path,
                passive: props.bool("passive")?,
                temp_rename: props.bool("temp_rename")?,
                create_dirs: props.bool("create_dirs")?,
                connect_timeout: props.duration("connect_timeout")?,
                timeout: props.duration("timeout")?,
                pool_size: props.usize("pool_size")?,
            },
            tls,
            pool: Mutex::new(Vec::new()),
            delivery: Delivery::from_props(props, FAILURE)?,
        }))
    }
    fn example(&self) -> &'static str {
        "host: ftp.example.com\nusername: sluice\npassword: secret\nremote_path: \"/incoming/{{filename}}\"\ntls: explicit"
    }
}

#[derive(Debug)]
struct Config {
    host: String,
    port: u16,
    username: String,
    password: Secret,
    remote_path: Template,
    passive: bool,
    temp_rename: bool,
    create_dirs: bool,
    connect_timeout: Duration,
    timeout: Duration,
    pool_size: usize,
}

struct Idle {
    ftp: Ftp,
    since: Instant,
}

struct PutFtp {
    config: Config,
    tls: Option<Arc<ClientConfig>>,
    pool: Mutex<Vec<Idle>>,
    delivery: Delivery,
}

impl fmt::Debug for PutFtp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutFtp")
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

/// An FTP error as a [`Failure`], and whether the control connection is
/// still in a known state (a clean reply) and can be reused.
fn classify(e: &FtpError) -> (Failure, bool) {
    match e {
        FtpError::UnexpectedResponse(r) => {
            let code = r.status.code();
            let text = String::from_utf8_lossy(&r.body).trim().to_string();
            let text = if text.starts_with(&code.to_string()) {
                text
            } else {
                format!("{code} {text}")
            };
            let f = if (500..600).contains(&code) {
                Failure::permanent(text)
            } else {
                // 4xx by definition, and anything unexpected: try again later.
                Failure::transient(text)
            };
            (f, true)
        }
        FtpError::ConnectionError(io) => (Failure::transient(retry::error_chain(io)), false),
        FtpError::SecureError(m) => (Failure::permanent(format!("TLS: {m}")), false),
        e @ (FtpError::BadResponse
        | FtpError::InvalidAddress(_)
        | FtpError::DataConnectionAlreadyOpen) => (Failure::transient(e.to_string()), false),
    }
}

/// Whether the server answered with a permanent (5xx) reply.
fn is_permanent_reply(e: &FtpError) -> bool {
    matches!(e, FtpError::UnexpectedResponse(r) if (500..600).contains(&r.status.code()))
}

/// An FTP step failed: what to report, and whether the connection is reusable.
struct StepError {
    failure: Failure,
    reusable: bool,
}

impl StepError {
    fn from(e: &FtpError, what: &str) -> Self {
        let (failure, reusable) = classify(e);
        Self {
            failure: failure.context(what),
            reusable,
        }
    }
}

impl PutFtp {
    fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "ftps" } else { "ftp" }
    }

    async fn resolve(&self) -> Result<SocketAddr, Failure> {
        let c = &self.config;
        tokio::net::lookup_host((c.host.as_str(), c.port))
            .await
            .map_err(|e| Failure::transient(format!("resolving {}: {e}", c.host)))?
            .next()
            .ok_or_else(|| Failure::transient(format!("{} has no address", c.host)))
    }

    /// A new logged-in connection in binary mode.
    async fn connect(&self, ctx: &ProcessContext) -> Result<Ftp, Failure> {
        let c = &self.config;
        let addr = self.resolve().await?;
        let target = format!("{}://{}:{}", self.scheme(), c.host, c.port);
        let step = |what: &'static str| {
            let target = target.clone();
            move |e: FtpError| classify(&e).0.context(&format!("{target}: {what}"))
        };
        let mut ftp = Ftp::connect_timeout(addr, c.connect_timeout)
            .await
            .map_err(step("connect"))?;
        if let Some(tls) = &self.tls {
            let connector =
                AsyncRustlsConnector::from(tokio_rustls::TlsConnector::from(tls.clone()));
            ftp = ftp
                .into_secure(connector, &c.host)
                .await
                .map_err(step("AUTH TLS"))?;
        }
        if !c.passive {
            ftp = ftp.active_mode(c.timeout);
        }
        ftp.login(c.username.as_str(), c.password.expose())
            .await
            .map_err(step("login"))?;
        ftp.transfer_type(FileType::Binary)
            .await
            .map_err(step("TYPE I"))?;
        ctx.counter("ftp.connections")
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(ftp)
    }

    /// A pooled connection that still answers, or a new one.
    async fn checkout(&self, ctx: &ProcessContext) -> Result<Ftp, Failure> {
        loop {
            let idle = self.pool.lock().pop();
            let Some(mut idle) = idle else {
                return timeout(self.config.connect_timeout * 2, self.connect(ctx))
                    .await
                    .unwrap_or_else(|_| {
                        Err(Failure::transient(format!(
                            "connecting to {}:{} timed out",
                            self.config.host, self.config.port
                        )))
                    });
            };
            if idle.since.elapsed() < IDLE_CHECK {
                return Ok(idle.ftp);
            }
            if let Ok(Ok(())) = timeout(self.config.connect_timeout, idle.ftp.noop()).await {
                return Ok(idle.ftp);
            }
            // Closed by the server while idle: drop it and try the next.
        }
    }

    fn checkin(&self, ftp: Ftp) {
        let mut pool = self.pool.lock();
        if pool.len() < self.config.pool_size {
            pool.push(Idle {
                ftp,
                since: Instant::now(),
            });
        }
    }

    async fn store(ftp: &mut Ftp, name: &str, content: &[u8]) -> Result<(), FtpError> {
        let mut stream = ftp.put_with_stream(name).await?;
        stream
            .write_all(content)
            .await
            .map_err(FtpError::ConnectionError)?;
        // Reads the server's 226: the transfer is confirmed only here.
        stream.finish().await
    }

    async fn make_dirs(ftp: &mut Ftp, dir: &str) -> Result<(), StepError> {
        let mut cur = if dir.starts_with('/') {
            String::from("/")
        } else {
            String::new()
        };
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            if !cur.is_empty() && !cur.ends_with('/') {
                cur.push('/');
            }
            cur.push_str(part);
            match ftp.mkdir(&cur).await {
                // A refusal here usually means it exists; the upload will tell.
                Ok(()) | Err(FtpError::UnexpectedResponse(_)) => {}
                Err(e) => return Err(StepError::from(&e, &format!("MKD {cur}"))),
            }
        }
        Ok(())
    }

    async fn upload(
        &self,
        ftp: &mut Ftp,
        path: &str,
        id: u64,
        content: &[u8],
    ) -> Result<(), StepError> {
        let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
        let temp = if !self.config.temp_rename {
            path.to_string()
        } else if path.contains('/') {
            format!("{dir}/.{name}.{id}.part")
        } else {
            format!(".{name}.{id}.part")
        };
        match Self::store(ftp, &temp, content).await {
            Ok(()) => {}
            Err(e) if self.config.create_dirs && !dir.is_empty() && is_permanent_reply(&e) => {
                Self::make_dirs(ftp, dir).await?;
                Self::store(ftp, &temp, content)
                    .await
                    .map_err(|e| StepError::from(&e, &format!("STOR {temp}")))?;
            }
            Err(e) => return Err(StepError::from(&e, &format!("STOR {temp}"))),
        }
        if !self.config.temp_rename {
            return Ok(());
        }
        let renamed = match ftp.rename(temp.as_str(), path).await {
            Err(e) if is_permanent_reply(&e) => {
                // Some servers refuse to rename over an existing file: replace it.
                let _ = ftp.rm(path).await;
                ftp.rename(temp.as_str(), path).await
            }
            other => other,
        };
        if let Err(e) = renamed {
            let err = StepError::from(&e, &format!("RNFR {temp} RNTO {path}"));
            if err.reusable {
                let _ = ftp.rm(&temp).await;
            }
            return Err(err);
        }
        Ok(())
    }
}

#[async_trait]
impl Sink for PutFtp {
    async fn deliver(
        &self,
        ctx: &ProcessContext,
        ff: &FlowFile,
        content: Bytes,
    ) -> Result<Delivered, Failure> {
        let path = self
            .config
            .remote_path
            .render(&ff.attributes)
            .map_err(|e| Failure::permanent(format!("remote_path: {e}")))?;
        let path = path.trim().to_string();
        if path.is_empty() || path.ends_with('/') {
            return Err(Failure::permanent(format!(
                "remote_path: `{path}` names a directory, not a file"
            )));
        }
        let mut ftp = self.checkout(ctx).await?;
        match timeout(
            self.config.timeout,
            self.upload(&mut ftp, &path, ff.id, &content),
        )
        .await
        {
            Ok(Ok(())) => {
                self.checkin(ftp);
                let c = &self.config;
                Ok(Delivered {
                    destination: format!(
                        "{}://{}:{}/{}",
                        self.scheme(),
                        c.host,
                        c.port,
                        path.trim_start_matches('/')
                    ),
                    attributes: vec![("ftp.remote.path".into(), path)],
                })
            }
            Ok(Err(e)) => {
                if e.reusable {
                    self.checkin(ftp);
                }
                Err(e.failure)
            }
            Err(_) => Err(Failure::transient(format!(
                "uploading {path} timed out after {}",
                humantime::format_duration(self.config.timeout)
            ))),
        }
    }
}

#[async_trait]
impl Processor for PutFtp {
    async fn on_trigger(
        &self,
        ctx: &ProcessContext,
        session: &mut ProcessSession,
    ) -> Result<(), ProcessError> {
        self.delivery.run(self, ctx, session).await
    }

    async fn on_stopped(&self, _: &ProcessContext) {
        let idle: Vec<Idle> = std::mem::take(&mut *self.pool.lock());
        for mut i in idle {
            let _ = timeout(Duration::from_secs(1), i.ftp.quit()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::testing::check_type_contract;
    use suppaftp::Status;

    #[test]
    fn contract() {
        check_type_contract(&PutFtpType, &crate::registry()).unwrap();
    }

    #[test]
    fn replies_classify_by_code() {
        let reply = |code: u32, text: &str| {
            FtpError::UnexpectedResponse(suppaftp::types::Response {
                status: Status::from(code),
                body: text.as_bytes().to_vec(),
            })
        };
        let (f, reusable) = classify(&reply(530, "530 Login authentication failed"));
        assert!(!f.is_transient() && reusable);
        assert_eq!(f.reason, "530 Login authentication failed");
        let (f, _) = classify(&reply(421, "421 Too many connections"));
        assert!(f.is_transient());
        let (f, _) = classify(&reply(451, "Local error"));
        assert!(f.is_transient());
        assert_eq!(f.reason, "451 Local error");
        let (f, reusable) = classify(&FtpError::ConnectionError(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert!(f.is_transient() && !reusable);
        assert!(is_permanent_reply(&reply(550, "550 No such directory")));
        assert!(!is_permanent_reply(&reply(450, "450 busy")));
    }

    #[test]
    fn a_directory_path_is_refused_at_validation() {
        let e = sluice_runtime::testing::props_from_yaml(
            &PutFtpType,
            &crate::registry(),
            "host: h\nremote_path: /incoming/\n",
        )
        .unwrap_err();
        assert!(e.contains("names a directory"), "{e}");
    }

    #[test]
    fn debug_hides_the_password() {
        let props = crate::test_props(
            &PutFtpType,
            "host: h\npassword: s3cret-pw\nremote_path: \"{{filename}}\"\n",
        );
        PutFtpType.build(&props, &BuildContext::default()).unwrap();
        let cfg = Config {
            host: "h".into(),
            port: 21,
            username: "u".into(),
            password: secret_opt(&props, "password").unwrap().unwrap(),
            remote_path: Template::compile("x", Escape::None).unwrap(),
            passive: true,
            temp_rename: true,
            create_dirs: true,
            connect_timeout: Duration::from_secs(1),
            timeout: Duration::from_secs(1),
            pool_size: 1,
        };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
