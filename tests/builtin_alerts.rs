//! The built-in flow `alert-webhook-router`, end to end through the real
//! binary: an Alertmanager webhook POST goes in over HTTP; what comes out is
//! what an on-call engineer would see: chat messages (coloured by severity),
//! a mail at a real SMTP server (aiosmtpd) and a call to the pager webhook.
//!
//! Chat goes to testkit's `SlackReceiver`, an in-process stand-in that checks
//! payloads the way Slack does: Slack itself cannot be installed or reached
//! from this machine. The SMTP server and the pager's HTTP endpoint are real
//! servers on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sluice_proc.rs"]
#[allow(dead_code)] // shared with other tests
mod sluice_proc;

use std::time::Duration;

use serde_json::{Value, json};
use sluice_proc::SluiceProc;
use sluice_testkit::{
    HttpReceiver, SlackMessage, SlackReceiver, SmtpServer, finished_files, free_port,
    wait_for_port, wait_until,
};

const WAIT: Duration = Duration::from_secs(30);

/// An Alertmanager (webhook payload version 4) notification with these alerts.
fn alertmanager(status: &str, alerts: &[Value]) -> Value {
    json!({
        "version": "4",
        "groupKey": "{}:{job=\"node\"}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "sluice",
        "groupLabels": {"job": "node"},
        "commonLabels": {"job": "node"},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example:9093",
        "alerts": alerts,
    })
}

fn alert(status: &str, name: &str, severity: &str, instance: &str, summary: &str) -> Value {
    json!({
        "status": status,
        "labels": {"alertname": name, "severity": severity, "instance": instance, "job": "node"},
        "annotations": {"summary": summary, "description": format!("{summary} (from the test)")},
        "startsAt": "2026-11-23T10:00:00.000Z",
        "endsAt": if status == "resolved" { "2026-11-23T10:05:00.000Z" } else { "0001-01-01T00:00:00Z" },
        "generatorURL": format!("http://prometheus.example:9090/graph?g0.expr={name}"),
        "fingerprint": format!("{name}-{instance}"),
    })
}

/// The message about `name`, with its text and attachment colour.
fn message<'a>(msgs: &'a [SlackMessage], name: &str) -> (&'a Value, String) {
    let m = msgs
        .iter()
        .find(|m| m.payload.to_string().contains(name))
        .unwrap_or_else(|| panic!("no chat message about {name}: {msgs:#?}"));
    let att = &m.payload["attachments"][0];
    (
        &att["color"],
        att["text"].as_str().unwrap_or_default().to_string(),
    )
}

/// Starts the built-in flow with its variables pointing at the test servers;
/// files it keeps go under `keep`.
async fn start_flow(
    slack: &SlackReceiver,
    smtp: &SmtpServer,
    pager: &HttpReceiver,
    dir: &std::path::Path,
) -> (SluiceProc, std::net::SocketAddr) {
    let port = free_port();
    let env = [
        ("SLUICE_ALERTS_PORT", port.to_string()),
        ("SLUICE_ALERTS_DEDUP_WINDOW", "10m".to_string()),
        ("SLACK_WEBHOOK_URL", slack.webhook_url()),
        ("PAGER_URL", format!("{}/v1/events", pager.url())),
        ("PAGER_AUTHORIZATION", "Token pager-secret".to_string()),
        ("SMTP_HOST", "127.0.0.1".to_string()),
        ("SMTP_PORT", smtp.addr.port().to_string()),
        ("SMTP_STARTTLS", "none".to_string()),
        ("MAIL_FROM", "Sluice <sluice@example.com>".to_string()),
        (
            "MAIL_ADMINS",
            "oncall@example.com, lead@example.com".to_string(),
        ),
        (
            "SLUICE_ALERTS_KEEP_DIR",
            dir.join("keep").display().to_string(),
        ),
    ];
    let flow = SluiceProc::start(
        "sluice",
        dir,
        &[
            "run",
            "--builtin",
            "alert-webhook-router",
            "--no-ui",
            "--no-repository",
            "--status-interval",
            "0",
        ],
        &env,
    );
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    wait_for_port(addr, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", flow.log()));
    (flow, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_alerts_reach_chat_mail_and_pager_once() {
    let slack = SlackReceiver::start().await.unwrap();
    let smtp = SmtpServer::start().await.unwrap();
    let pager = HttpReceiver::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let invalid = dir.path().join("keep/invalid");
    let (flow, addr) = start_flow(&slack, &smtp, &pager, dir.path()).await;
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/alerts");
    let notify = |body: Value| {
        let req = client.post(&url).json(&body);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
        }
    };

    // One notification, three alerts: a critical and a warning firing, and an
    // earlier critical now resolved.
    let first = alertmanager(
        "firing",
        &[
            alert(
                "firing",
                "DiskFull",
                "critical",
                "web-1:9100",
                "/var is 99% full",
            ),
            alert(
                "firing",
                "HighLoad",
                "warning",
                "web-2:9100",
                "load 12 for 10m",
            ),
            alert(
                "resolved",
                "NodeDown",
                "critical",
                "web-3:9100",
                "web-3 is unreachable",
            ),
        ],
    );
    notify(first.clone()).await;

    let msgs = slack
        .wait_for_messages(3, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", flow.log()));
    let (colour, text) = message(&msgs, "DiskFull");
    assert_eq!(colour, "danger");
    assert!(
        text.contains("FIRING [critical] *DiskFull* on web-1:9100"),
        "{text}"
    );
    assert!(text.contains("/var is 99% full"), "{text}");
    let (colour, text) = message(&msgs, "HighLoad");
    assert_eq!(colour, "warning");
    assert!(text.contains("FIRING [warning]"), "{text}");
    let (colour, text) = message(&msgs, "NodeDown");
    assert_eq!(colour, "good");
    assert!(text.contains("RESOLVED [critical] *NodeDown*"), "{text}");

    // Only the firing critical one is mailed and paged.
    let mails = smtp
        .wait_for_messages(1, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", smtp.log(), flow.log()));
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        "[CRITICAL] DiskFull on web-1:9100: /var is 99% full"
    );
    assert_eq!(
        mail.envelope_to,
        vec!["oncall@example.com", "lead@example.com"]
    );
    assert!(mail.from.contains("sluice@example.com"), "{}", mail.from);
    assert!(
        mail.body.contains("/var is 99% full (from the test)"),
        "{}",
        mail.body
    );
    assert!(
        mail.body.contains("http://alertmanager.example:9093"),
        "{}",
        mail.body
    );
    let calls = pager.wait_for_requests(1, WAIT).await.unwrap();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(
        (call.method.as_str(), call.path.as_str()),
        ("POST", "/v1/events")
    );
    assert_eq!(call.header("authorization"), Some("Token pager-secret"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    let body = call.json().unwrap();
    assert_eq!(body["event"], "trigger");
    assert_eq!(body["summary"], "DiskFull: /var is 99% full");
    assert_eq!(body["dedup_key"], "DiskFull-web-1:9100");
    assert_eq!(body["alert"]["labels"]["severity"], "critical");

    // Alertmanager repeats the notification: nothing new reaches anyone. To know
    // the repeat has been through, a new critical alert follows it; each sink
    // delivers in order, so once that one arrived everywhere the repeat would
    // have too.
    notify(first).await;
    notify(alertmanager(
        "firing",
        &[alert("firing", "MemoryLow", "page", "db-1:9100", "2% free")],
    ))
    .await;
    slack.wait_for_messages(4, WAIT).await.unwrap();
    smtp.wait_for_messages(2, WAIT).await.unwrap();
    pager.wait_for_requests(2, WAIT).await.unwrap();
    let msgs = slack.messages();
    assert_eq!(msgs.len(), 4, "{msgs:#?}");
    assert_eq!(message(&msgs, "MemoryLow").0, "danger");
    assert_eq!(smtp.message_count(), 2);
    let calls = pager.requests();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].json().unwrap()["alert"]["labels"]["alertname"],
        "MemoryLow"
    );

    // A body that is not JSON is accepted, kept with the reason, and alerts no one.
    let resp = client.post(&url).body("disk full!").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    wait_until(WAIT, || !finished_files(&invalid).is_empty())
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", flow.log()));
    let kept = finished_files(&invalid);
    assert_eq!(kept.len(), 1);
    assert_eq!(std::fs::read_to_string(&kept[0]).unwrap(), "disk full!");
    assert_eq!(slack.messages().len(), 4);
    drop(flow);
}
