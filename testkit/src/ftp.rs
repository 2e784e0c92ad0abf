//! pure-ftpd with one virtual user.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::proc::{Proc, START_TIMEOUT};
use crate::util::{find_tool, free_port, free_port_range, read_banner, self_signed_cert};

/// A real pure-ftpd (Debian package) on `127.0.0.1`, with one virtual user whose home (and
/// chroot) is [`FtpServer::root`]: files a client uploads appear there.
///
/// The user is written to a pure-pw passwd file and compiled with `pure-pw mkdb`. Started as
/// `pure-ftpd -S 127.0.0.1,PORT -l puredb:PDB -E -A -H -4 -p FIRST:LAST -P 127.0.0.1`:
/// only the virtual user may log in (`-E`), chrooted (`-A`), no DNS (`-H`), IPv4 only, and
/// passive data connections on a range of free ports. The virtual user maps to
/// `nobody:nogroup`, so this needs root (as CI runs); `root` is mode 0777 so that user can
/// write. [`stop`](Self::stop) kills the server and any open sessions;
/// [`start_again`](Self::start_again) brings it back on the same ports, with the same files.
///
/// [`start_with_tls`](Self::start_with_tls) adds explicit FTPS (`AUTH TLS`) with a
/// self-signed certificate for `localhost`/`127.0.0.1` ([`FtpServer::tls_cert`]) and refuses
/// logins that did not switch to TLS first (`-Y 2 -2 CERT,KEY`).
pub struct FtpServer {
    /// Control connection address.
    pub addr: SocketAddr,
    pub user: String,
    pub password: String,
    /// The user's home directory: `/` as the FTP client sees it.
    pub root: PathBuf,
    /// The passive (data) port range, inclusive.
    pub passive_ports: (u16, u16),
    /// The PEM certificate clients must trust, when started with TLS.
    pub tls_cert: Option<PathBuf>,
    proc: Proc,
    _dir: TempDir,
}

impl FtpServer {
    /// Starts pure-ftpd on a free port and waits for its `220` banner.
    pub async fn start() -> Result<Self> {
        Self::start_inner(false).await
    }

    /// The same with explicit FTPS required before login; see [`FtpServer::tls_cert`].
    pub async fn start_with_tls() -> Result<Self> {
        Self::start_inner(true).await
    }

    async fn start_inner(tls: bool) -> Result<Self> {
        let pure_ftpd = find_tool("pure-ftpd", Some("SLUICE_PURE_FTPD"), &[])?;
        let pure_pw = find_tool("pure-pw", Some("SLUICE_PURE_PW"), &[])?;
        let dir = tempfile::Builder::new().prefix("sluice-ftp-").tempdir()?;
        let root = dir.path().join("root");
        std::fs::create_dir(&root)?;
        std::fs::set_permissions(&root, std::fs::Permissions::from_mode(0o777))?;
        let user = "sluice".to_string();
        let password = "sluice-ftp-password".to_string();
        let passwd = dir.path().join("pureftpd.passwd");
        let pdb = dir.path().join("pureftpd.pdb");

        // `pure-pw useradd` hashes with argon2id at a cost that takes 8 s per hash and per
        // login on this machine kind, so the user line is written here with a SHA-512 crypt
        // hash (`openssl passwd -6`, which pure-ftpd checks with crypt(3)) in pure-pw's own
        // format (`/./` ends a chrooted home), then compiled with `pure-pw mkdb`.
        let hash = run_with_stdin(
            Command::new(find_tool("openssl", None, &[])?).args(["passwd", "-6", "-stdin"]),
            &format!("{password}\n"),
        )?;
        let uid = id_of("/etc/passwd", "nobody").unwrap_or(65534);
        let gid = id_of("/etc/group", "nogroup").unwrap_or(65534);
        std::fs::write(
            &passwd,
            format!(
                "{user}:{}:{uid}:{gid}::{}/./::::::::::::\n",
                hash.trim(),
                root.display()
            ),
        )?;
        run_with_stdin(
            Command::new(&pure_pw)
                .arg("mkdb")
                .arg(&pdb)
                .arg("-f")
                .arg(&passwd),
            "",
        )?;

        let port = free_port();
        let passive_ports = free_port_range(10);
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let mut proc = Proc::new("pure-ftpd", &pure_ftpd, dir.path().join("pure-ftpd.log"));
        proc.arg("-S")
            .arg(format!("127.0.0.1,{port}"))
            .arg("-l")
            .arg(format!("puredb:{}", pdb.display()))
            .args(["-E", "-A", "-H", "-4"])
            .arg("-p")
            .arg(format!("{}:{}", passive_ports.0, passive_ports.1))
            .arg("-P")
            .arg("127.0.0.1");
        let mut tls_cert = None;
        if tls {
            let (cert, key) = self_signed_cert(dir.path())?;
            proc.args(["-Y", "2", "-2"])
                .arg(format!("{},{}", cert.display(), key.display()));
            tls_cert = Some(cert);
        }
        let mut server = Self {
            addr,
            user,
            password,
            root,
            passive_ports,
            tls_cert,
            proc,
            _dir: dir,
        };
        server.start_again().await?;
        Ok(server)
    }

    /// `ftp://USER:PASSWORD@127.0.0.1:PORT/`
    pub fn url(&self) -> String {
        format!("ftp://{}:{}@{}/", self.user, self.password, self.addr)
    }

    /// Kills the server and its sessions. Files under `root` stay.
    pub fn stop(&mut self) {
        self.proc.kill();
    }

    /// Starts the server again on the same ports (after [`stop`](Self::stop)) and waits for
    /// its banner.
    pub async fn start_again(&mut self) -> Result<()> {
        self.proc.spawn()?;
        let addr = self.addr;
        self.proc
            .wait_ready(START_TIMEOUT, || async move {
                matches!(read_banner(addr).await, Ok(line) if line.starts_with("220"))
            })
            .await
    }

    /// Whether the server process is still alive.
    pub fn is_running(&mut self) -> bool {
        self.proc.is_running()
    }
}

/// Runs a command with `input` on stdin; its stdout, or an error with its stderr.
fn run_with_stdin(cmd: &mut Command, input: &str) -> Result<String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cmd:?}"))?;
    child
        .stdin
        .take()
        .context("stdin")?
        .write_all(input.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The numeric id of `name` in /etc/passwd or /etc/group.
fn id_of(file: &str, name: &str) -> Option<u32> {
    std::fs::read_to_string(file)
        .ok()?
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == name).then(|| fields.nth(1)?.parse().ok())?
        })
}
