//! Built-in flows end to end, through the real binary: `syslog-to-files`
//! (`logger` -> JSON files), `syslog-to-chat`
//! (util-linux `logger` -> Sluice -> the Slack-shaped receiver) and the
//! scale-out pair `edge-to-kafka` + two `kafka-worker`s on a real broker
//! (tansu). Slack itself cannot be installed here, so its webhook is
//! testkit's `SlackReceiver`, which checks payloads as Slack does.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sluice_proc.rs"]
mod sluice_proc;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use sluice_proc::{SluiceProc, summary_in};
use sluice_testkit::{
    KafkaBroker, LoggerTransport, SlackReceiver, SyslogFormat, finished_files, free_port,
    logger_with_priority, wait_for_port, wait_until,
};

const DEADLINE: Duration = Duration::from_mins(1);

/// Text -> attachment colour of every message the receiver accepted.
fn colours(slack: &SlackReceiver) -> BTreeMap<String, String> {
    slack
        .messages()
        .iter()
        .map(|m| {
            let a = &m.payload["attachments"][0];
            (
                a["text"].as_str().unwrap_or_default().to_string(),
                a["color"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

fn send(addr: SocketAddr, transport: LoggerTransport, priority: &str, message: &str) {
    logger_with_priority(
        addr,
        transport,
        SyslogFormat::Rfc5424,
        priority,
        "app",
        message,
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_to_chat_posts_errors_red_and_the_rest_green() {
    let dir = tempfile::tempdir().unwrap();
    let slack = SlackReceiver::start().await.unwrap();
    let port = free_port();
    let env = [
        ("SLACK_WEBHOOK_URL", slack.webhook_url()),
        ("SLUICE_SYSLOG_PORT", port.to_string()),
        ("SLUICE_SYSLOG_BIND", "127.0.0.1".to_string()),
        ("SLUICE_ENV", "staging".to_string()),
        ("SLUICE_OUT", dir.path().join("out").display().to_string()),
    ];
    let mut sluice = SluiceProc::start(
        "sluice",
        dir.path(),
        &[
            "run",
            "--builtin",
            "syslog-to-chat",
            "--no-ui",
            "--no-repository",
        ],
        &env,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, DEADLINE).await.unwrap();

    send(addr, LoggerTransport::Tcp, "daemon.debug", "cache miss");
    send(
        addr,
        LoggerTransport::Tcp,
        "daemon.err",
        "disk /var is full",
    );
    send(
        addr,
        LoggerTransport::TcpOctetCount,
        "user.warning",
        "slow query",
    );
    send(
        addr,
        LoggerTransport::Udp,
        "auth.info",
        "user alice logged in",
    );
    send(addr, LoggerTransport::Udp, "kern.crit", "CPU 3 overheating");

    wait_until(DEADLINE, || slack.messages().len() >= 4)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", slack.messages(), sluice.log()));
    let got = colours(&slack);
    let colour_of = |needle: &str| -> &str {
        got.iter()
            .find(|(text, _)| text.contains(needle))
            .map_or_else(
                || panic!("no message with `{needle}` in {got:?}"),
                |(_, c)| c.as_str(),
            )
    };
    assert_eq!(colour_of("disk /var is full"), "danger");
    assert_eq!(colour_of("CPU 3 overheating"), "danger");
    assert_eq!(colour_of("slow query"), "good");
    assert_eq!(colour_of("user alice logged in"), "good");
    let err = got.keys().find(|t| t.contains("disk /var")).unwrap();
    assert!(err.contains("*[err]*") && err.contains("app"), "{err}");
    let username = slack.messages()[0].payload["username"].clone();
    assert_eq!(username, "sluice (staging)");

    let log = sluice.terminate().await;
    assert_eq!(slack.messages().len(), 4, "debug never reaches chat");
    assert_eq!(summary_in(&log, "severity"), Some(5), "{log}");
    assert_eq!(summary_in(&log, "chat"), Some(4), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syslog_to_files_writes_json_per_severity() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let env = [
        ("SLUICE_SYSLOG_PORT", port.to_string()),
        ("SLUICE_ENV", "lab".to_string()),
        ("SLUICE_OUT", out.display().to_string()),
    ];
    let repo = dir.path().join("repo").display().to_string();
    let mut sluice = SluiceProc::start(
        "sluice",
        dir.path(),
        &[
            "run",
            "--builtin",
            "syslog-to-files",
            "--no-ui",
            "--repository",
            &repo,
        ],
        &env,
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, DEADLINE).await.unwrap();
    send(addr, LoggerTransport::Tcp, "daemon.debug", "noise");
    send(addr, LoggerTransport::Tcp, "daemon.err", "disk full");
    send(addr, LoggerTransport::Tcp, "daemon.warning", "slow");
    send(addr, LoggerTransport::TcpOctetCount, "user.info", "login");
    wait_until(DEADLINE, || outputs(&out).len() >= 3)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", sluice.log()));
    let log = sluice.terminate().await;
    let files = outputs(&out);
    let find = |msg: &str| {
        files
            .iter()
            .find(|(_, v)| v["message"] == msg)
            .unwrap_or_else(|| panic!("no file for {msg}: {files:?}"))
    };
    let (route, v) = find("disk full");
    assert_eq!(route, "urgent");
    assert_eq!(v["syslog.severity"], 3, "typed: {v}");
    assert_eq!(v["environment"], "lab");
    assert_eq!(v["syslog.appname"], "app");
    assert_eq!(find("slow").0, "warning");
    assert_eq!(find("login").0, "routine");
    assert_eq!(files.len(), 3, "debug is dropped: {files:?}");
    assert_eq!(summary_in(&log, "severity"), Some(4), "{log}");
}

/// The JSON files under `urgent/`, `warning/`, `routine/` with their route.
fn outputs(dir: &std::path::Path) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for route in ["urgent", "warning", "routine"] {
        for path in finished_files(&dir.join(route)) {
            // Written whole then renamed: a finished file is one JSON object.
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}: {text:?}", path.display()));
            out.push((route.to_string(), v));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_publishes_raw_syslog_and_two_workers_deliver_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = KafkaBroker::start().await.unwrap();
    broker.create_topic("syslog", 4).await.unwrap();
    let slack = SlackReceiver::start().await.unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let common = |extra: &[(&'static str, String)]| -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("KAFKA_BOOTSTRAP", broker.bootstrap.clone()),
            ("SLUICE_KAFKA_TOPIC", "syslog".to_string()),
            ("SLACK_WEBHOOK_URL", slack.webhook_url()),
            ("SLUICE_OUT", out.display().to_string()),
        ];
        env.extend_from_slice(extra);
        env
    };
    let run = |flow: &str, name: &str| -> Vec<String> {
        [
            "run",
            "--builtin",
            flow,
            "--no-ui",
            "--status-interval",
            "0",
            "--repository",
            &dir.path()
                .join(format!("{name}-repo"))
                .display()
                .to_string(),
        ]
        .map(String::from)
        .to_vec()
    };
    let (edge_args, w1_args, w2_args) = (
        run("edge-to-kafka", "edge"),
        run("kafka-worker", "w1"),
        run("kafka-worker", "w2"),
    );
    let mut edge = SluiceProc::start(
        "edge",
        dir.path(),
        &args(&edge_args),
        &common(&[
            ("SLUICE_SYSLOG_PORT", port.to_string()),
            ("SLUICE_SYSLOG_BIND", "127.0.0.1".to_string()),
            ("SLUICE_EDGE", "site-a".to_string()),
        ]),
    );
    let mut w1 = SluiceProc::start(
        "w1",
        dir.path(),
        &args(&w1_args),
        &common(&[("SLUICE_WORKER", "w1".to_string())]),
    );
    let mut w2 = SluiceProc::start(
        "w2",
        dir.path(),
        &args(&w2_args),
        &common(&[("SLUICE_WORKER", "w2".to_string())]),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, DEADLINE).await.unwrap();

    let total = 40;
    for i in 0..total {
        let priority = match i % 4 {
            0 => "daemon.err",
            1 => "daemon.warning",
            _ => "daemon.info",
        };
        let transport = if i % 2 == 0 {
            LoggerTransport::Tcp
        } else {
            LoggerTransport::Udp
        };
        send(addr, transport, priority, &format!("event {i}"));
    }
    let logs = |e: &SluiceProc, a: &SluiceProc, b: &SluiceProc| {
        format!(
            "--- edge\n{}\n--- w1\n{}\n--- w2\n{}\n--- broker\n{}",
            e.log(),
            a.log(),
            b.log(),
            broker.log()
        )
    };
    wait_until(Duration::from_mins(2), || outputs(&out).len() >= total)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "{e}: {} files\n{}",
                outputs(&out).len(),
                logs(&edge, &w1, &w2)
            )
        });
    wait_until(DEADLINE, || slack.messages().len() >= total / 4)
        .await
        .unwrap_or_else(|e| panic!("{e}: {:?}", slack.messages()));

    let files = outputs(&out);
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (route, v) in &files {
        let message = v["message"].as_str().unwrap().to_string();
        let i: usize = message.trim_start_matches("event ").parse().unwrap();
        let want = match i % 4 {
            0 => "urgent",
            1 => "warning",
            _ => "routine",
        };
        assert_eq!(route, want, "{v}");
        assert_eq!(v["edge"], "site-a");
        assert_eq!(v["syslog.sender"], "127.0.0.1");
        assert_eq!(v["syslog.appname"], "app");
        assert!(v["worker"] == "w1" || v["worker"] == "w2", "{v}");
        *seen.entry(message).or_default() += 1;
    }
    assert_eq!(seen.len(), total, "every message arrives once: {seen:?}");
    for m in slack.messages() {
        let a = &m.payload["attachments"][0];
        assert_eq!(a["color"], "danger");
        assert!(a["text"].as_str().unwrap().contains("via site-a"), "{a}");
    }
    assert_eq!(slack.messages().len(), total / 4, "only errors are chatted");

    for p in [&mut edge, &mut w1, &mut w2] {
        p.terminate().await;
    }
}
