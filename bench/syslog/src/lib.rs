//! The load of the syslog benchmark: realistic messages (hosts, apps,
//! severities, bodies of 80-400 bytes) in RFC 5424 or RFC 3164, framed for
//! TCP (octet-counted or LF) or sent as UDP datagrams.

use std::fmt::Write as _;

/// How messages travel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// TCP, RFC 6587 octet counting.
    TcpOctet,
    /// TCP, LF-terminated.
    TcpLf,
    /// One datagram per message.
    Udp,
}

impl Mode {
    /// Parses `tcp-octet`, `tcp-lf`, `udp`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "tcp-octet" => Ok(Mode::TcpOctet),
            "tcp-lf" => Ok(Mode::TcpLf),
            "udp" => Ok(Mode::Udp),
            _ => Err(format!("mode `{s}`: use tcp-octet, tcp-lf or udp")),
        }
    }
}

/// Which header format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// RFC 5424 only.
    Rfc5424,
    /// RFC 3164 only.
    Rfc3164,
    /// Half and half, at random.
    Mixed,
}

impl Format {
    /// Parses `5424`, `3164`, `mixed`.
    ///
    /// # Errors
    /// Anything else.
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "5424" => Ok(Format::Rfc5424),
            "3164" => Ok(Format::Rfc3164),
            "mixed" => Ok(Format::Mixed),
            _ => Err(format!("format `{s}`: use 5424, 3164 or mixed")),
        }
    }
}

/// A small deterministic generator (xorshift64*), so runs are repeatable.
pub struct Rng(u64);

impl Rng {
    /// Seeded (0 is replaced).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    /// Next value.
    #[allow(clippy::should_implement_trait)] // an endless generator, not an iterator
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    /// One of `items`.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

const HOSTS: &[&str] = &[
    "web01",
    "web02",
    "web03",
    "web04",
    "web05",
    "web06",
    "api01",
    "api02",
    "api03",
    "db01",
    "db02",
    "db03",
    "cache01",
    "cache02",
    "lb01",
    "lb02",
    "fw-edge-1",
    "fw-edge-2",
    "sw-core-1",
    "sw-core-2",
    "sw-acc-17",
    "k8s-node-01",
    "k8s-node-02",
    "k8s-node-03",
    "k8s-node-04",
    "k8s-node-05",
    "k8s-node-06",
    "mail01",
    "ns1",
    "ns2",
    "backup01",
    "vpn01",
    "build07",
    "mon01",
    "log01",
    "esx-r2-04",
];

/// (app, facility, msgid, body starters)
const APPS: &[(&str, u8, &str, &[&str])] = &[
    (
        "nginx",
        16,
        "ACCESS",
        &[
            "GET /api/v2/orders/",
            "POST /login from",
            "upstream timed out (110: Connection timed out) while reading response header from upstream, client:",
        ],
    ),
    (
        "sshd",
        10,
        "AUTH",
        &[
            "Accepted publickey for deploy from",
            "Failed password for invalid user admin from",
            "Disconnected from authenticating user root",
        ],
    ),
    (
        "postgres",
        16,
        "DB",
        &[
            "duration: 1534.221 ms statement: SELECT * FROM orders WHERE",
            "checkpoint complete: wrote 2211 buffers",
            "could not serialize access due to concurrent update",
        ],
    ),
    (
        "kernel",
        0,
        "-",
        &[
            "[UFW BLOCK] IN=eth0 OUT= MAC=00:16:3e:5e:6c:00 SRC=",
            "EXT4-fs (sda1): mounted filesystem with ordered data mode",
            "Out of memory: Killed process",
        ],
    ),
    (
        "CRON",
        9,
        "-",
        &[
            "(root) CMD (/usr/local/bin/backup.sh --incremental)",
            "(www-data) CMD (php /var/www/artisan schedule:run)",
        ],
    ),
    (
        "systemd",
        3,
        "-",
        &[
            "Started Session 4242 of user deploy.",
            "Stopping Docker Application Container Engine...",
            "Reached target Multi-User System.",
        ],
    ),
    (
        "haproxy",
        17,
        "HTTP",
        &[
            "10.1.4.22:51234 [23/Nov/2026:12:00:01.123] fe_https~ be_app/app03",
            "Server be_app/app02 is DOWN, reason: Layer4 timeout",
        ],
    ),
    (
        "dockerd",
        3,
        "-",
        &[
            "level=info msg=\"ignoring event\" container=",
            "level=warning msg=\"Health check for container failed\" container=",
        ],
    ),
    (
        "kubelet",
        3,
        "-",
        &[
            "Liveness probe failed: HTTP probe failed with statuscode: 503 pod=",
            "Successfully pulled image \"registry.local/app:1.42.0\" in",
        ],
    ),
    (
        "postfix/smtpd",
        2,
        "MAIL",
        &[
            "connect from mail-wr1-f54.google.com[209.85.221.54]",
            "NOQUEUE: reject: RCPT from unknown[198.51.100.7]: 554 5.7.1",
        ],
    ),
    (
        "named",
        3,
        "DNS",
        &[
            "client @0x7f2c1c0a1b20 10.0.0.7#53211 (example.org): query: example.org IN A +E(0)K",
            "zone example.org/IN: loaded serial 2026112301",
        ],
    ),
];

/// Severity weights (per mille) for 0..=7: mostly info and notice.
const SEVERITY_WEIGHTS: [usize; 8] = [3, 7, 20, 80, 150, 200, 500, 40];

const WORDS: &[&str] = &[
    "request",
    "id",
    "user",
    "session",
    "latency",
    "bytes",
    "status",
    "retry",
    "shard",
    "region",
    "eu-west-1",
    "timeout",
    "queue",
    "worker",
    "trace",
    "span",
    "tenant",
    "acme",
    "checkout",
    "payment",
    "inventory",
    "cache",
    "miss",
    "hit",
    "pool",
];

fn severity(rng: &mut Rng) -> u8 {
    let mut x = rng.below(1000);
    for (s, w) in SEVERITY_WEIGHTS.iter().enumerate() {
        if x < *w {
            return s as u8;
        }
        x -= w;
    }
    6
}

fn body(rng: &mut Rng, starters: &[&str]) -> String {
    let target = 80 + rng.below(321);
    let mut b = String::with_capacity(target + 40);
    let start: &str = rng.pick(starters);
    b.push_str(start);
    let _ = write!(
        b,
        " 10.{}.{}.{}",
        rng.below(256),
        rng.below(256),
        rng.below(256)
    );
    while b.len() < target {
        let _ = write!(b, " {}={}", rng.pick(WORDS), rng.below(100_000));
    }
    b.truncate(target);
    b
}

/// One message as text (no framing) and its severity.
pub fn message(rng: &mut Rng, format: Format, seq: u64) -> (String, u8) {
    let host: &str = rng.pick(HOSTS);
    let (app, facility, msgid, starters) = rng.pick(APPS);
    let sev = severity(rng);
    let pri = u32::from(facility) * 8 + u32::from(sev);
    let pid = 100 + rng.below(60_000);
    let body = body(rng, starters);
    let sec = seq % 60;
    let min = (seq / 60) % 60;
    let rfc5424 = match format {
        Format::Rfc5424 => true,
        Format::Rfc3164 => false,
        Format::Mixed => rng.below(2) == 0,
    };
    let text = if rfc5424 {
        let sd = if rng.below(10) < 3 {
            format!("[meta@32473 seq=\"{seq}\" zone=\"eu-1\"]")
        } else {
            "-".to_string()
        };
        format!(
            "<{pri}>1 2026-11-23T12:{min:02}:{sec:02}.{:03}Z {host} {app} {pid} {msgid} {sd} {body}",
            seq % 1000
        )
    } else {
        format!("<{pri}>Nov 23 12:{min:02}:{sec:02} {host} {app}[{pid}]: {body}")
    };
    (text, sev)
}

/// `count` messages framed for `mode`, and how many of them have severity
/// err or worse. For UDP the frames are the datagrams (no framing).
pub fn corpus(count: usize, mode: Mode, format: Format, seed: u64) -> (Vec<Vec<u8>>, usize) {
    let mut rng = Rng::new(seed);
    let mut errors = 0;
    let frames = (0..count as u64)
        .map(|seq| {
            let (text, sev) = message(&mut rng, format, seq);
            if sev <= 3 {
                errors += 1;
            }
            match mode {
                Mode::TcpOctet => format!("{} {text}", text.len()).into_bytes(),
                Mode::TcpLf => format!("{text}\n").into_bytes(),
                Mode::Udp => text.into_bytes(),
            }
        })
        .collect();
    (frames, errors)
}
