//! Ports, polling with a deadline, and finding installed tools.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::future::Future;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::INSTALL_HINT;

/// How often the polling helpers look again.
pub(crate) const POLL_INTERVAL: Duration = Duration::from_millis(25);

/// Ports this process has already handed out, so two tests running in parallel never get the
/// same one even if the kernel offers it twice in a row.
static HANDED_OUT: Mutex<Option<HashSet<u16>>> = Mutex::new(None);

fn claim(port: u16) -> bool {
    let mut guard = HANDED_OUT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    guard.get_or_insert_with(HashSet::new).insert(port)
}

fn tcp_and_udp_free(port: u16) -> bool {
    TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok()
}

/// A loopback port that is free for both TCP and UDP right now, never returned twice by this
/// process, and below the kernel's ephemeral range.
///
/// The port is released before this returns and the server under test binds it a moment later
/// (for a spawned `sluice`, up to a second later). A port from the ephemeral range (what binding
/// port 0 gives) can be taken in that window by any client socket of a test running in parallel
/// (a Kafka client, `logger --udp`): seen once in a full CI run, where the built-in flow's UDP
/// listener then failed to bind. Ports below the range are handed out only by an explicit bind,
/// so candidates are drawn there; port 0 is the fallback when that range is too small.
pub fn free_port() -> u16 {
    let (low, high) = below_ephemeral();
    let mut seed = u64::from(std::process::id())
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::from(d.subsec_nanos()));
    for _ in 0..1000 {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let port = if high > low {
            low + u16::try_from((seed >> 33) % u64::from(high - low)).unwrap_or(0)
        } else {
            TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("binding 127.0.0.1:0 failed: is there a loopback interface?")
                .port()
        };
        if tcp_and_udp_free(port) && claim(port) {
            return port;
        }
    }
    panic!("no free loopback port found in 1000 tries");
}

/// Ports from 10,000 up to the start of the ephemeral range
/// (`/proc/sys/net/ipv4/ip_local_port_range`, 32768 when unreadable).
fn below_ephemeral() -> (u16, u16) {
    let start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    (10_000, start)
}

/// `count` consecutive free loopback ports (for servers that take a port range, like
/// pure-ftpd's passive ports). Returns the first and last port.
pub fn free_port_range(count: u16) -> (u16, u16) {
    assert!(count > 0, "free_port_range(0)");
    for _ in 0..1000 {
        let first = free_port();
        let Some(last) = first.checked_add(count - 1) else {
            continue;
        };
        if (first + 1..=last).all(tcp_and_udp_free) && (first + 1..=last).all(claim) {
            return (first, last);
        }
    }
    panic!("no {count} consecutive free loopback ports found in 1000 tries");
}

/// The files in `dir` under their final names, sorted. A name starting with
/// `.` is a write still in flight (PutFile's `.NAME.ID.tmp`, PutFTP's
/// `.NAME.ID.part`, renamed once complete) and is left out, so a test that
/// waits for N files never counts one that is half there. A directory that
/// does not exist yet has no files.
pub fn finished_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Polls `condition` every 25 ms until it is true or `timeout` has passed.
///
/// ```no_run
/// # async fn f(dir: std::path::PathBuf) -> anyhow::Result<()> {
/// use std::time::Duration;
/// sluice_testkit::wait_until(Duration::from_secs(10), || dir.join("done").exists()).await?;
/// # Ok(()) }
/// ```
pub async fn wait_until<F>(timeout: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> bool,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("condition still false after {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Like [`wait_until`], with an async condition.
pub async fn wait_until_async<F, Fut>(timeout: Duration, mut condition: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if condition().await {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("condition still false after {timeout:?}");
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Waits until a TCP connection to `addr` succeeds.
pub async fn wait_for_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    wait_until_async(
        timeout,
        || async move { TcpStream::connect(addr).await.is_ok() },
    )
    .await
    .with_context(|| format!("nothing accepted TCP connections on {addr} within {timeout:?}"))
}

/// Waits until some process has a UDP socket bound to `addr` (read from /proc/net/udp, since a
/// UDP port cannot be probed by connecting).
pub async fn wait_for_udp_port(addr: SocketAddr, timeout: Duration) -> Result<()> {
    wait_until(timeout, || udp_bound(addr))
        .await
        .with_context(|| format!("nothing bound UDP {addr} within {timeout:?}"))
}

/// Is a UDP socket bound to `addr` (or to the wildcard address on its port)?
///
/// The kernel prints /proc/net/udp a page at a time and walks its table
/// again for each page: a socket another process opens or closes meanwhile
/// can shift the lines so that one is not printed (seen once in a full CI
/// run, with the test servers up). A socket missing from one reading is
/// looked for in two more.
pub(crate) fn udp_bound(addr: SocketAddr) -> bool {
    (0..3).any(|_| udp_bound_once(addr))
}

fn udp_bound_once(addr: SocketAddr) -> bool {
    let (file, wildcard) = match addr {
        SocketAddr::V4(_) => ("/proc/net/udp", "00000000"),
        SocketAddr::V6(_) => ("/proc/net/udp6", "00000000000000000000000000000000"),
    };
    let Ok(table) = std::fs::read_to_string(file) else {
        return false;
    };
    let want_ip = match addr {
        SocketAddr::V4(a) => format!("{:08X}", u32::from_le_bytes(a.ip().octets())),
        SocketAddr::V6(a) => a.ip().octets().chunks(4).fold(String::new(), |mut hex, c| {
            let word = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
            let _ = write!(hex, "{word:08X}");
            hex
        }),
    };
    let want_port = format!("{:04X}", addr.port());
    table.lines().skip(1).any(|line| {
        let Some(local) = line.split_whitespace().nth(1) else {
            return false;
        };
        let Some((ip, port)) = local.split_once(':') else {
            return false;
        };
        port == want_port && (ip == want_ip || ip == wildcard)
    })
}

/// `$SLUICE_CACHE`, or `$HOME/.cache/sluice`: where scripts/install-test-deps.sh puts
/// everything that is not an apt package.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("SLUICE_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache").join("sluice")
}

/// Finds an executable: `$env_var` if set, else each of `candidates` (absolute, or relative to
/// [`cache_dir`]), else `name` on `$PATH`, else `/usr/sbin` and `/sbin` (root-only daemons
/// live there and are not always on a user's `PATH`). The error names the install script.
pub fn find_tool(name: &str, env_var: Option<&str>, candidates: &[&str]) -> Result<PathBuf> {
    if let Some(var) = env_var
        && let Some(path) = std::env::var_os(var).filter(|p| !p.is_empty())
    {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Ok(path);
        }
        bail!(
            "${var} is set to {} but that is not an executable file",
            path.display()
        );
    }
    let cache = cache_dir();
    let mut looked = Vec::new();
    for candidate in candidates {
        let path = cache.join(candidate);
        if is_executable(&path) {
            return Ok(path);
        }
        looked.push(path);
    }
    let path_dirs = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path_dirs)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
    {
        let path = dir.join(name);
        if is_executable(&path) {
            return Ok(path);
        }
    }
    looked.push(PathBuf::from(format!("{name} on $PATH")));
    bail!(
        "{name} not found (looked at {}); {INSTALL_HINT}",
        looked
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// An executable that only the install script provides: `$env_var` if set, else
/// [`cache_dir`]`/rel`; never `$PATH` (a system `python3` lacks the venv's packages).
pub(crate) fn find_in_cache(rel: &str, env_var: &str) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if is_executable(&path) {
            return Ok(path);
        }
        bail!(
            "${env_var} is set to {} but that is not an executable file",
            path.display()
        );
    }
    let path = cache_dir().join(rel);
    if is_executable(&path) {
        return Ok(path);
    }
    bail!("{} not found; {INSTALL_HINT}", path.display())
}

/// Debian's Chromium (`$SLUICE_CHROMIUM`, else `/usr/bin/chromium`), for browser tests. Start
/// it headless with `--headless --no-sandbox --disable-gpu --disable-background-networking`
/// (this machine has no network, and root needs `--no-sandbox`).
pub fn chromium() -> Result<PathBuf> {
    find_tool("chromium", Some("SLUICE_CHROMIUM"), &["/usr/bin/chromium"])
}

/// The `node_modules` folder holding `playwright-core` (`$SLUICE_CACHE/node/node_modules`):
/// set it as `NODE_PATH` for a node script that does `require('playwright-core')` and launches
/// [`chromium`] through `executablePath`. Playwright never downloads a browser here.
pub fn playwright_node_path() -> Result<PathBuf> {
    let dir = cache_dir().join("node/node_modules");
    if dir.join("playwright-core/package.json").is_file() {
        Ok(dir)
    } else {
        bail!(
            "playwright-core is not installed in {}; {INSTALL_HINT}",
            dir.display()
        )
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Connects to `addr` and reads the first line the server sends (an FTP or SMTP banner).
pub(crate) async fn read_banner(addr: SocketAddr) -> Result<String> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(2), stream.read(&mut chunk))
            .await
            .context("banner read timed out")??;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.contains(&b'\n') {
            break;
        }
    }
    let _ = stream.write_all(b"QUIT\r\n").await;
    let text = String::from_utf8_lossy(&buf);
    Ok(text.lines().next().unwrap_or_default().to_string())
}

/// A plain HTTP/1.1 GET; returns the status code.
pub(crate) async fn http_get_status(addr: SocketAddr, path: &str) -> Result<u16> {
    let mut stream = tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr))
        .await
        .context("connect timed out")??;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .context("response timed out")??;
    let text = String::from_utf8_lossy(&buf);
    let status = text
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("not an HTTP response: {:?}", text.lines().next()))?;
    Ok(status)
}

/// A self-signed certificate and key for `localhost` and `127.0.0.1`, made with `openssl`, in
/// `dir` as `cert.pem` and `key.pem`. It is a leaf certificate (`CA:FALSE`): rustls/webpki
/// refuse a CA certificate used as a server's own (`CaUsedAsEndEntity`), so a client that
/// trusts `cert.pem` as its only root can verify the server with it.
pub(crate) fn self_signed_cert(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let out = std::process::Command::new(find_tool("openssl", None, &[])?)
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .context("running openssl req")?;
    if !out.status.success() {
        bail!(
            "openssl req failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok((cert, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let a = free_port();
        let b = free_port();
        assert_ne!(a, b);
        // Below the ephemeral range, where no client socket is given a port.
        let (low, high) = below_ephemeral();
        assert!(
            (low..high).contains(&a) && (low..high).contains(&b),
            "{a} {b}"
        );
        let (first, last) = free_port_range(5);
        assert_eq!(last - first, 4);
        assert!(!(first..=last).contains(&a) && !(first..=last).contains(&b));
    }

    #[test]
    fn udp_bound_sees_a_bound_socket() {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        let addr = socket.local_addr().expect("addr");
        assert!(udp_bound(addr));
        drop(socket);
        assert!(!udp_bound(addr));
    }

    #[tokio::test]
    async fn wait_until_times_out() {
        let start = Instant::now();
        let err = wait_until(Duration::from_millis(100), || false).await;
        assert!(err.is_err());
        assert!(start.elapsed() >= Duration::from_millis(100));
        let mut n = 0;
        wait_until(Duration::from_secs(5), || {
            n += 1;
            n == 3
        })
        .await
        .expect("third poll is true");
    }
}
