//! The built-in flows `http-to-ftp-gateway` and `syslog-archive-s3`, end to end:
//! the real binary (`sluice run --builtin NAME`) configured only through the
//! environment variables its header documents, against real servers from
//! testkit: pure-ftpd, aiosmtpd, moto (S3), and util-linux `logger` as the
//! syslog client.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// End-to-end scenarios read best as one story each.
#![allow(clippy::too_many_lines)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

#[path = "support/sluice_proc.rs"]
#[allow(dead_code)] // shared with other tests
mod sluice_proc;

use sluice_proc::SluiceProc;
use sluice_testkit::{
    FtpServer, LoggerTransport, S3Server, SmtpServer, SyslogFormat, free_port, logger,
    wait_for_port, wait_for_udp_port, wait_until,
};

const DEADLINE: Duration = Duration::from_mins(1);

/// `sluice run --builtin NAME` in `dir` with `env`; its log goes to a file
/// shown when a test fails. Killed when dropped.
fn start(name: &str, dir: &Path, env: &[(&str, String)]) -> SluiceProc {
    let repo = dir.join("repo").display().to_string();
    SluiceProc::start(
        "sluice",
        dir,
        &["run", "--builtin", name, "--no-ui", "--repository", &repo],
        env,
    )
}

/// Bytes that ASCII-mode FTP or a text conversion would change.
fn binary_payload(seed: u8, len: usize) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    v.extend_from_slice(b"\r\n\n\r\0end");
    v
}

fn read_if_exists(p: &Path) -> Option<Vec<u8>> {
    std::fs::read(p).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_uploads_to_ftp_and_keeps_what_ftp_does_not_take() {
    let mut ftp = FtpServer::start().await.unwrap();
    let smtp = SmtpServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fallback = dir.path().join("fallback");
    let port = free_port();
    let mut sluice = start(
        "http-to-ftp-gateway",
        dir.path(),
        &[
            ("SLUICE_GATEWAY_PORT", port.to_string()),
            ("FTP_HOST", "127.0.0.1".into()),
            ("FTP_PORT", ftp.addr.port().to_string()),
            ("FTP_USER", ftp.user.clone()),
            ("FTP_PASSWORD", ftp.password.clone()),
            ("FTP_DIR", "/incoming".into()),
            ("FTP_MAX_ATTEMPTS", "2".into()),
            ("FTP_BACKOFF", "100ms".into()),
            ("SMTP_HOST", "127.0.0.1".into()),
            ("SMTP_PORT", smtp.addr.port().to_string()),
            ("SMTP_STARTTLS", "none".into()),
            ("MAIL_FROM", "gateway@example.com".into()),
            ("MAIL_NOTIFY_TO", "ops@example.com".into()),
            ("MAIL_ADMINS", "admins@example.com".into()),
            ("SLUICE_FALLBACK_DIR", fallback.display().to_string()),
        ],
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/upload");

    // Named by the header, then by the query parameter.
    let report = binary_payload(7, 300_000);
    let resp = http
        .post(&url)
        .header("X-Filename", "report.bin")
        .body(report.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", sluice.log());
    let summary = b"id,amount\n1,20\n".to_vec();
    let resp = http
        .post(format!("{url}?name=q3%20summary.csv"))
        .body(summary.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let incoming = ftp.root.join("incoming");
    wait_until(DEADLINE, || {
        read_if_exists(&incoming.join("report.bin")).as_ref() == Some(&report)
            && read_if_exists(&incoming.join("q3 summary.csv")).as_ref() == Some(&summary)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: files not on the FTP server\n{}", sluice.log()));

    let mails = smtp
        .wait_for_messages(2, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    for (name, path) in [
        ("report.bin", "/incoming/report.bin"),
        ("q3 summary.csv", "/incoming/q3 summary.csv"),
    ] {
        let m = mails
            .iter()
            .find(|m| m.subject == format!("[sluice] {name} uploaded to FTP"))
            .unwrap_or_else(|| panic!("no notice for {name}: {mails:#?}"));
        assert_eq!(m.envelope_to, ["ops@example.com"]);
        assert_eq!(m.from, "gateway@example.com");
        assert!(m.body.contains(path), "{}", m.body);
    }
    assert!(!fallback.exists(), "nothing failed, nothing kept");

    // FTP goes away: the next file is kept locally and the admins are told.
    ftp.stop();
    let kept = binary_payload(99, 50_000);
    let resp = http
        .post(&url)
        .header("X-Filename", "late.bin")
        .body(kept.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let kept_path = fallback.join("late.bin");
    wait_until(DEADLINE, || {
        read_if_exists(&kept_path).as_ref() == Some(&kept)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: not kept in {}\n{}", fallback.display(), sluice.log()));
    let mails = smtp
        .wait_for_messages(3, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    let alert = mails
        .iter()
        .find(|m| m.envelope_to == ["admins@example.com"])
        .unwrap_or_else(|| panic!("no mail to the admins: {mails:#?}"));
    assert_eq!(alert.subject, "[sluice] FTP upload of late.bin failed");
    assert!(
        alert
            .body
            .contains(&format!("It was kept as {}", kept_path.display())),
        "{}",
        alert.body
    );
    assert!(
        alert.body.contains("(gave up after 2 attempts)"),
        "{}",
        alert.body
    );
    let error_line = alert
        .body
        .lines()
        .find(|l| l.starts_with("Error: "))
        .unwrap_or_else(|| panic!("no error line: {}", alert.body));
    assert!(!error_line.contains("unknown"), "{error_line}");
    assert_eq!(
        mails.len(),
        3,
        "one notice per upload, one alert: {mails:#?}"
    );
    assert!(!incoming.join("late.bin").exists());
    sluice.terminate().await;
}

/// Every object under `prefix`: key -> its lines, gunzipped.
async fn archived(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let Ok(list) = s3
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .send()
        .await
    else {
        return out;
    };
    for o in list.contents() {
        let key = o.key().unwrap().to_string();
        let obj = s3
            .get_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .unwrap();
        let gz = obj.body.collect().await.unwrap().into_bytes();
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(&gz[..])
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{key} is not gzipped text: {e}"));
        out.insert(key, text);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_is_archived_to_s3_in_gzipped_date_partitioned_batches() {
    const BATCH: usize = 10;
    let s3 = S3Server::start().await.unwrap();
    let client = s3.client();
    let bucket = "archive";
    client.create_bucket().bucket(bucket).send().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (tcp_port, udp_port) = (free_port(), free_port());
    let first_day = chrono::Utc::now().date_naive();
    let mut sluice = start(
        "syslog-archive-s3",
        dir.path(),
        &[
            ("SLUICE_SYSLOG_PORT", tcp_port.to_string()),
            ("SLUICE_SYSLOG_UDP_PORT", udp_port.to_string()),
            ("SLUICE_BATCH_COUNT", BATCH.to_string()),
            ("SLUICE_BATCH_AGE", "3s".into()),
            ("S3_BUCKET", bucket.into()),
            ("S3_REGION", s3.region.clone()),
            ("S3_ENDPOINT", s3.endpoint.clone()),
            ("S3_PATH_STYLE", "true".into()),
            ("S3_ACCESS_KEY_ID", s3.access_key.clone()),
            ("S3_SECRET_ACCESS_KEY", s3.secret_key.clone()),
            (
                "SLUICE_ARCHIVE_FALLBACK",
                dir.path().join("failed").display().to_string(),
            ),
        ],
    );
    let tcp: SocketAddr = ([127, 0, 0, 1], tcp_port).into();
    let udp: SocketAddr = ([127, 0, 0, 1], udp_port).into();
    wait_for_port(tcp, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    wait_for_udp_port(udp, DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));

    // Two full batches over TCP, then a remainder (TCP and UDP) that only age flushes.
    let run = rand::random::<u32>();
    let mut sent: Vec<String> = Vec::new();
    for i in 0..2 * BATCH + 5 {
        sent.push(format!(
            "archive {run} tcp line {i} with \"quotes\" and ünïcode"
        ));
    }
    for i in 0..3 {
        sent.push(format!("archive {run} udp line {i}"));
    }
    let to_send = sent.clone();
    tokio::task::spawn_blocking(move || {
        for m in &to_send {
            let (target, transport) = if m.contains(" udp ") {
                (udp, LoggerTransport::Udp)
            } else {
                (tcp, LoggerTransport::Tcp)
            };
            logger(target, transport, SyslogFormat::Rfc5424, "archive-test", m).unwrap();
        }
    })
    .await
    .unwrap();

    // Poll S3 until every line is there (or the deadline passes).
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let objects = loop {
        let objects = archived(&client, bucket, "syslog/").await;
        let lines: usize = objects.values().map(|t| t.lines().count()).sum();
        if lines >= sent.len() {
            break objects;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{lines} of {} lines archived after {DEADLINE:?}: {objects:#?}\n{}",
            sent.len(),
            sluice.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let last_day = chrono::Utc::now().date_naive();

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut sizes = Vec::new();
    for (key, text) in &objects {
        // syslog/YYYY/MM/DD/host=HOST/<uuid>.log.gz
        let parts: Vec<&str> = key.split('/').collect();
        assert_eq!(parts.len(), 6, "{key}");
        assert_eq!(parts[0], "syslog");
        let day = chrono::NaiveDate::parse_from_str(&parts[1..4].join("-"), "%Y-%m-%d")
            .unwrap_or_else(|e| panic!("{key}: {e}"));
        assert!((first_day..=last_day).contains(&day), "{key}");
        let host = parts[4]
            .strip_prefix("host=")
            .unwrap_or_else(|| panic!("{key}"));
        let uuid = parts[5]
            .strip_suffix(".log.gz")
            .unwrap_or_else(|| panic!("{key}"));
        assert_eq!(uuid.len(), 36, "{key}");
        assert!(
            text.ends_with('\n'),
            "{key}: every line ends with a newline"
        );
        let lines: Vec<&str> = text.lines().collect();
        sizes.push(lines.len());
        for line in lines {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {line}: {e}"));
            assert_eq!(v["syslog.hostname"], host, "{key}: {line}");
            assert_eq!(v["syslog.appname"], "archive-test", "{line}");
            assert_eq!(v["syslog.severity"], 5, "{line}");
            *seen
                .entry(v["content"].as_str().unwrap().to_string())
                .or_default() += 1;
        }
    }
    for m in &sent {
        assert_eq!(
            seen.get(m),
            Some(&1),
            "`{m}` must be archived exactly once: {seen:#?}"
        );
    }
    assert_eq!(seen.len(), sent.len(), "nothing else archived: {seen:#?}");
    assert!(sizes.iter().all(|&n| n <= BATCH), "{sizes:?}");
    assert!(
        sizes.contains(&BATCH),
        "a batch was cut by count: {sizes:?}"
    );
    assert!(
        sizes.iter().any(|&n| n < BATCH),
        "the remainder was flushed by age: {sizes:?}"
    );
    assert!(!dir.path().join("failed").exists(), "S3 took everything");
    sluice.terminate().await;
}
