//! Real syslog senders: rsyslogd and syslog-ng forwarding to a target, and util-linux `logger`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::proc::{Proc, START_TIMEOUT};
use crate::util::{cache_dir, find_tool, free_port, udp_bound};

/// UDP or TCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// How syslog messages are delimited on a TCP stream (RFC 6587). Ignored for UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `LEN SP MSG`
    OctetCounted,
    /// Each message ends with LF.
    NonTransparent,
}

/// The message format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyslogFormat {
    /// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`
    Rfc5424,
    /// BSD: `<PRI>Mmm dd hh:mm:ss HOST TAG: MSG`
    Rfc3164,
}

/// Where and how [`Rsyslog`] or [`SyslogNg`] forwards every message it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyslogForward {
    pub target: SocketAddr,
    pub transport: Transport,
    pub framing: Framing,
    pub format: SyslogFormat,
}

impl SyslogForward {
    /// TCP, octet-counted, RFC 5424: the usual reliable setup.
    pub fn tcp_5424(target: SocketAddr) -> Self {
        Self {
            target,
            transport: Transport::Tcp,
            framing: Framing::OctetCounted,
            format: SyslogFormat::Rfc5424,
        }
    }

    /// TCP, LF-terminated, RFC 3164 (the traditional forward format).
    pub fn tcp_3164(target: SocketAddr) -> Self {
        Self {
            target,
            transport: Transport::Tcp,
            framing: Framing::NonTransparent,
            format: SyslogFormat::Rfc3164,
        }
    }

    /// UDP, RFC 5424.
    pub fn udp_5424(target: SocketAddr) -> Self {
        Self {
            target,
            transport: Transport::Udp,
            framing: Framing::NonTransparent,
            format: SyslogFormat::Rfc5424,
        }
    }

    /// UDP, RFC 3164.
    pub fn udp_3164(target: SocketAddr) -> Self {
        Self {
            target,
            transport: Transport::Udp,
            framing: Framing::NonTransparent,
            format: SyslogFormat::Rfc3164,
        }
    }
}

/// Waits for both inputs of a syslog daemon.
async fn wait_inputs(proc: &mut Proc, udp: SocketAddr, tcp: SocketAddr) -> Result<()> {
    proc.wait_ready(START_TIMEOUT, || async move {
        udp_bound(udp) && tokio::net::TcpStream::connect(tcp).await.is_ok()
    })
    .await
}

// ------------------------------------------------------------------------------------------

/// A real rsyslogd (Debian package) run in the foreground with its own configuration and
/// work directory: no system socket (`imuxsock` and `imklog` are not loaded), just an `imudp`
/// and an `imtcp` input on free loopback ports, whose messages all go to one `omfwd` action:
///
/// * TCP 5424: `protocol="tcp" TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"`
///   (that template ends each message with LF, which is inside the octet count);
/// * 3164: `template="RSYSLOG_TraditionalForwardFormat"`, `TCP_Framing="traditional"` on TCP;
/// * UDP: `protocol="udp"`.
///
/// The action retries forever, once a second (`action.resumeRetryCount="-1"`,
/// `action.resumeInterval="1"`) with an in-memory queue, so a target that is down and comes
/// back gets the queued messages. rsyslog's own messages go to a file
/// ([`internal_log`](Self::internal_log)), never to the target.
///
/// Feed it with [`logger`](crate::logger) at [`udp_input`](Self::udp_input) or
/// [`tcp_input`](Self::tcp_input).
pub struct Rsyslog {
    pub udp_input: SocketAddr,
    pub tcp_input: SocketAddr,
    pub forward: SyslogForward,
    internal_log: PathBuf,
    proc: Proc,
    dir: TempDir,
}

impl Rsyslog {
    pub async fn start(forward: SyslogForward) -> Result<Self> {
        let rsyslogd = find_tool("rsyslogd", Some("SLUICE_RSYSLOGD"), &[])?;
        let dir = tempfile::Builder::new()
            .prefix("sluice-rsyslog-")
            .tempdir()?;
        let work = dir.path().join("work");
        std::fs::create_dir(&work)?;
        let udp_input: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let tcp_input: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let internal_log = dir.path().join("rsyslog-internal.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            rsyslog_conf(&work, &internal_log, udp_input, tcp_input, &forward),
        )?;
        let mut proc = Proc::new("rsyslogd", &rsyslogd, dir.path().join("rsyslogd.log"));
        proc.arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"));
        let mut server = Self {
            udp_input,
            tcp_input,
            forward,
            internal_log,
            proc,
            dir,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Kills rsyslogd (messages still queued in memory are lost).
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts rsyslogd again with the same inputs and target.
    pub async fn start_again(&mut self) -> Result<()> {
        // a stale pid file makes rsyslogd refuse to start
        let _ = std::fs::remove_file(self.dir.path().join("rsyslogd.pid"));
        self.proc.spawn()?;
        wait_inputs(&mut self.proc, self.udp_input, self.tcp_input).await
    }

    /// rsyslog's own messages (start-up, errors, action suspended/resumed).
    pub fn internal_log(&self) -> String {
        let mut text = std::fs::read_to_string(&self.internal_log).unwrap_or_default();
        text.push_str(&std::fs::read_to_string(self.proc.log_path()).unwrap_or_default());
        text
    }
}

fn rsyslog_conf(
    work: &Path,
    internal_log: &Path,
    udp: SocketAddr,
    tcp: SocketAddr,
    f: &SyslogForward,
) -> String {
    let template = match f.format {
        SyslogFormat::Rfc5424 => "RSYSLOG_SyslogProtocol23Format",
        SyslogFormat::Rfc3164 => "RSYSLOG_TraditionalForwardFormat",
    };
    let transport = match (f.transport, f.framing) {
        (Transport::Udp, _) => r#"protocol="udp""#.to_string(),
        (Transport::Tcp, Framing::OctetCounted) => {
            r#"protocol="tcp" TCP_Framing="octet-counted""#.to_string()
        }
        (Transport::Tcp, Framing::NonTransparent) => {
            r#"protocol="tcp" TCP_Framing="traditional""#.to_string()
        }
    };
    format!(
        r#"# written by sluice-testkit
global(workDirectory="{work}" net.enableDNS="off" maxMessageSize="64k")
module(load="imudp")
module(load="imtcp")
input(type="imudp" address="127.0.0.1" port="{udp_port}" ruleset="forward")
input(type="imtcp" address="127.0.0.1" port="{tcp_port}" ruleset="forward")
ruleset(name="forward") {{
  action(type="omfwd" target="{target_ip}" port="{target_port}" {transport}
         template="{template}"
         action.resumeRetryCount="-1" action.resumeInterval="1"
         queue.type="LinkedList" queue.size="10000")
}}
# rsyslog's own messages (default ruleset) stay local
*.* action(type="omfile" file="{internal}")
"#,
        work = work.display(),
        udp_port = udp.port(),
        tcp_port = tcp.port(),
        target_ip = f.target.ip(),
        target_port = f.target.port(),
        internal = internal_log.display(),
    )
}

// ------------------------------------------------------------------------------------------

/// syslog-ng 3.38 (Debian's `syslog-ng-core`, unpacked into `$SLUICE_CACHE/syslog-ng` since it
/// conflicts with rsyslog as a package) in the foreground with its own configuration: a
/// `network()` UDP and a `network()` TCP source on free loopback ports (each takes RFC 3164
/// and RFC 5424; TCP takes LF-terminated messages), all forwarded to one destination:
///
/// * 5424 over TCP, octet-counted: `syslog(transport("tcp"))`;
/// * 5424 over UDP: `syslog(transport("udp"))`;
/// * 3164 (TCP LF-terminated or UDP): `network()`;
/// * 5424 over TCP LF-terminated: `network(flags(syslog-protocol))`.
///
/// 3164 with octet counting has no syslog-ng destination and is an error. `time-reopen(1)`
/// makes it reconnect to a target that went away within a second.
pub struct SyslogNg {
    pub udp_input: SocketAddr,
    pub tcp_input: SocketAddr,
    pub forward: SyslogForward,
    proc: Proc,
    _dir: TempDir,
}

impl SyslogNg {
    pub async fn start(forward: SyslogForward) -> Result<Self> {
        let root = match std::env::var_os("SLUICE_SYSLOG_NG_ROOT") {
            Some(r) => PathBuf::from(r),
            None => cache_dir().join("syslog-ng"),
        };
        let binary = root.join("usr/sbin/syslog-ng");
        if !binary.is_file() {
            bail!(
                "syslog-ng is not unpacked at {}; {}",
                binary.display(),
                crate::INSTALL_HINT
            );
        }
        let module_dir = std::fs::read_dir(root.join("usr/lib/syslog-ng"))
            .context("syslog-ng module directory")?
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .find(|p| p.is_dir() && p.join("libafsocket.so").exists())
            .context("no syslog-ng module directory with libafsocket.so")?;
        let ld_path = [
            "usr/lib/syslog-ng",
            "usr/lib/x86_64-linux-gnu",
            "lib/x86_64-linux-gnu",
        ]
        .iter()
        .map(|p| root.join(p).display().to_string())
        .collect::<Vec<_>>()
        .join(":");

        let dir = tempfile::Builder::new()
            .prefix("sluice-syslog-ng-")
            .tempdir()?;
        let udp_input: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let tcp_input: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        let conf = dir.path().join("syslog-ng.conf");
        std::fs::write(&conf, syslog_ng_conf(udp_input, tcp_input, &forward)?)?;
        let mut proc = Proc::new("syslog-ng", &binary, dir.path().join("syslog-ng.log"));
        proc.args(["-F", "-e", "--no-caps", "-f"])
            .arg(&conf)
            .arg(format!("--module-path={}", module_dir.display()))
            .arg(format!(
                "--persist-file={}",
                dir.path().join("syslog-ng.persist").display()
            ))
            .arg(format!(
                "--pidfile={}",
                dir.path().join("syslog-ng.pid").display()
            ))
            .arg(format!(
                "--control={}",
                dir.path().join("syslog-ng.ctl").display()
            ))
            .env("LD_LIBRARY_PATH", ld_path);
        let mut server = Self {
            udp_input,
            tcp_input,
            forward,
            proc,
            _dir: dir,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// Kills syslog-ng.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts syslog-ng again with the same inputs and target.
    pub async fn start_again(&mut self) -> Result<()> {
        self.proc.spawn()?;
        wait_inputs(&mut self.proc, self.udp_input, self.tcp_input).await
    }

    /// syslog-ng's own messages (its stderr).
    pub fn internal_log(&self) -> String {
        std::fs::read_to_string(self.proc.log_path()).unwrap_or_default()
    }
}

fn syslog_ng_conf(udp: SocketAddr, tcp: SocketAddr, f: &SyslogForward) -> Result<String> {
    let ip = f.target.ip();
    let port = f.target.port();
    let destination = match (f.format, f.transport, f.framing) {
        (SyslogFormat::Rfc5424, Transport::Tcp, Framing::OctetCounted) => {
            format!(r#"syslog("{ip}" transport("tcp") port({port}))"#)
        }
        (SyslogFormat::Rfc5424, Transport::Udp, _) => {
            format!(r#"syslog("{ip}" transport("udp") port({port}))"#)
        }
        (SyslogFormat::Rfc5424, Transport::Tcp, Framing::NonTransparent) => {
            format!(r#"network("{ip}" transport("tcp") port({port}) flags(syslog-protocol))"#)
        }
        (SyslogFormat::Rfc3164, Transport::Udp, _) => {
            format!(r#"network("{ip}" transport("udp") port({port}))"#)
        }
        (SyslogFormat::Rfc3164, Transport::Tcp, Framing::NonTransparent) => {
            format!(r#"network("{ip}" transport("tcp") port({port}))"#)
        }
        (SyslogFormat::Rfc3164, Transport::Tcp, Framing::OctetCounted) => {
            bail!("syslog-ng has no destination for RFC 3164 with octet counting")
        }
    };
    Ok(format!(
        r#"@version: 3.38
# written by sluice-testkit
options {{ time-reopen(1); keep-hostname(yes); use-dns(no); chain-hostnames(no); }};
source s_in {{
  network(transport("udp") ip("127.0.0.1") port({udp_port}));
  network(transport("tcp") ip("127.0.0.1") port({tcp_port}));
}};
destination d_out {{ {destination}; }};
log {{ source(s_in); destination(d_out); }};
"#,
        udp_port = udp.port(),
        tcp_port = tcp.port(),
    ))
}

// ------------------------------------------------------------------------------------------

/// How [`logger`] sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoggerTransport {
    /// `--udp`
    Udp,
    /// `--tcp`: LF-terminated (RFC 6587 non-transparent framing)
    Tcp,
    /// `--tcp --octet-count`
    TcpOctetCount,
}

/// Sends one message with util-linux `logger --server IP --port PORT`, priority
/// `user.notice` (PRI 13), tag `tag`, in the given format (`--rfc5424` or `--rfc3164`).
/// Returns once `logger` has exited (for TCP: the message was written to the socket).
pub fn logger(
    target: SocketAddr,
    transport: LoggerTransport,
    format: SyslogFormat,
    tag: &str,
    message: &str,
) -> Result<()> {
    logger_with_priority(target, transport, format, "user.notice", tag, message)
}

/// [`logger`] with another priority, `facility.level` as `logger -p` takes it
/// (`daemon.err`, `local0.debug`).
pub fn logger_with_priority(
    target: SocketAddr,
    transport: LoggerTransport,
    format: SyslogFormat,
    priority: &str,
    tag: &str,
    message: &str,
) -> Result<()> {
    let logger = find_tool("logger", Some("SLUICE_LOGGER"), &[])?;
    let mut cmd = Command::new(logger);
    cmd.arg("--server")
        .arg(target.ip().to_string())
        .arg("--port")
        .arg(target.port().to_string())
        .args(["-p", priority, "-t", tag]);
    match transport {
        LoggerTransport::Udp => cmd.arg("--udp"),
        LoggerTransport::Tcp => cmd.arg("--tcp"),
        LoggerTransport::TcpOctetCount => cmd.args(["--tcp", "--octet-count"]),
    };
    match format {
        SyslogFormat::Rfc5424 => cmd.arg("--rfc5424"),
        SyslogFormat::Rfc3164 => cmd.arg("--rfc3164"),
    };
    cmd.arg("--").arg(message);
    let out = run_with_timeout(cmd, Duration::from_secs(10))?;
    if !out.status.success() {
        bail!(
            "logger to {target} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<std::process::Output> {
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting logger")?;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if child.try_wait()?.is_some() {
            return Ok(child.wait_with_output()?);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("logger did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
