//! aiosmtpd delivering into a Maildir.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tempfile::TempDir;

use crate::proc::{Proc, START_TIMEOUT};
use crate::util::{find_in_cache, free_port, read_banner, self_signed_cert, wait_until};

/// Parses every message of a Maildir with Python's own `email` package and prints them as JSON,
/// oldest first.
const PARSE_MAILDIR: &str = r#"
import email, email.policy, json, os, sys
root = sys.argv[1]
files = []
for sub in ("new", "cur"):
    d = os.path.join(root, sub)
    if os.path.isdir(d):
        for name in os.listdir(d):
            p = os.path.join(d, name)
            files.append((os.stat(p).st_mtime_ns, name, p))
out = []
for _, _, path in sorted(files):
    with open(path, "rb") as f:
        raw = f.read()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    part = msg.get_body(preferencelist=("plain", "html"))
    body = part.get_content() if part is not None else ""
    rcpt = msg.get("X-RcptTo", "")
    out.append({
        "envelope_from": str(msg.get("X-MailFrom", "")),
        "envelope_to": [r.strip() for r in str(rcpt).split(",") if r.strip()],
        "from": str(msg.get("From", "")),
        "to": str(msg.get("To", "")),
        "cc": str(msg.get("Cc", "")),
        "subject": str(msg.get("Subject", "")),
        "body": body,
        "headers": [[k, str(v)] for k, v in msg.items()],
        "raw": raw.decode("utf-8", "replace"),
    })
json.dump(out, sys.stdout)
"#;

/// One message the [`SmtpServer`] accepted, parsed by Python's `email` package (encoded
/// words, quoted-printable and base64 are decoded; for a multipart message `body` is the
/// text/plain part, else text/html).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct ReceivedMail {
    /// `MAIL FROM` of the SMTP envelope.
    pub envelope_from: String,
    /// Every `RCPT TO` of the SMTP envelope.
    pub envelope_to: Vec<String>,
    /// The `From:` header, decoded.
    pub from: String,
    /// The `To:` header, decoded.
    pub to: String,
    /// The `Cc:` header, decoded ("" when absent).
    pub cc: String,
    pub subject: String,
    pub body: String,
    /// All headers in order, including the `X-Peer`, `X-MailFrom` and `X-RcptTo` that
    /// aiosmtpd adds.
    pub headers: Vec<(String, String)>,
    /// The message as stored.
    pub raw: String,
}

impl ReceivedMail {
    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A real SMTP server: aiosmtpd (from `$SLUICE_CACHE/venv`) with its `Mailbox` handler, which
/// stores every accepted message in a Maildir under the handle's temporary directory.
///
/// Messages survive [`stop`](Self::stop) / [`start_again`](Self::start_again), which reuse
/// the same port. [`start_with_starttls`](Self::start_with_starttls) also offers STARTTLS
/// with a self-signed certificate for `localhost` (made with `openssl`) and then requires it.
pub struct SmtpServer {
    pub addr: SocketAddr,
    /// The Maildir the messages are stored in.
    pub maildir: PathBuf,
    /// The PEM certificate clients must trust, when started with STARTTLS.
    pub tls_cert: Option<PathBuf>,
    python: PathBuf,
    proc: Proc,
    _dir: TempDir,
}

impl SmtpServer {
    /// Plain SMTP, no authentication, no TLS.
    pub async fn start() -> Result<Self> {
        Self::start_inner(false).await
    }

    /// SMTP with STARTTLS required before `MAIL`; see [`SmtpServer::tls_cert`].
    pub async fn start_with_starttls() -> Result<Self> {
        Self::start_inner(true).await
    }

    async fn start_inner(starttls: bool) -> Result<Self> {
        let python = find_in_cache("venv/bin/python", "SLUICE_PYTHON")?;
        let dir = tempfile::Builder::new().prefix("sluice-smtp-").tempdir()?;
        let maildir = dir.path().join("Maildir");
        let port = free_port();
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut proc = Proc::new("aiosmtpd", &python, dir.path().join("aiosmtpd.log"));
        proc.args(["-m", "aiosmtpd", "-n", "-u", "-l"])
            .arg(format!("127.0.0.1:{port}"));
        let mut tls_cert = None;
        if starttls {
            let (cert, key) = self_signed_cert(dir.path())?;
            proc.arg("--tlscert").arg(&cert).arg("--tlskey").arg(&key);
            tls_cert = Some(cert);
        }
        proc.args(["-c", "aiosmtpd.handlers.Mailbox"]).arg(&maildir);
        proc.env("PYTHONUNBUFFERED", "1");
        let mut server = Self {
            addr,
            maildir,
            tls_cert,
            python,
            proc,
            _dir: dir,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Kills the server. Stored messages stay.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts the server again on the same port and waits for its `220` banner.
    pub async fn start_again(&mut self) -> Result<()> {
        self.proc.spawn()?;
        let addr = self.addr;
        self.proc
            .wait_ready(START_TIMEOUT, || async move {
                matches!(read_banner(addr).await, Ok(line) if line.starts_with("220"))
            })
            .await
    }

    /// How many messages have been stored (cheap: counts files).
    pub fn message_count(&self) -> usize {
        ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(self.maildir.join(sub)).ok())
            .map(|entries| entries.filter_map(std::result::Result::ok).count())
            .sum()
    }

    /// Every stored message, oldest first.
    pub fn messages(&self) -> Result<Vec<ReceivedMail>> {
        if self.message_count() == 0 {
            return Ok(Vec::new());
        }
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(PARSE_MAILDIR)
            .arg(&self.maildir)
            .output()
            .context("running python to parse the Maildir")?;
        if !out.status.success() {
            bail!(
                "parsing the Maildir failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("parsing the Maildir's JSON")
    }

    /// Waits until at least `n` messages are stored, then returns them all.
    pub async fn wait_for_messages(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<ReceivedMail>> {
        wait_until(timeout, || self.message_count() >= n)
            .await
            .with_context(|| {
                format!(
                    "expected {n} message(s) in {}, have {}",
                    self.maildir.display(),
                    self.message_count()
                )
            })?;
        self.messages()
    }

    /// The server's log (aiosmtpd's stderr), for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.proc.log_path()).unwrap_or_default()
    }
}
