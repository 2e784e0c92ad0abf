//! PutSlack against testkit's `SlackReceiver`. Slack itself cannot be
//! installed or reached here, and no Slack-compatible server (Mattermost,
//! Rocket.Chat) is packaged for this machine, so this is a stand-in: the
//! project's own receiver on a real loopback HTTP connection, which checks
//! the payload the way Slack does (text/blocks/attachments shape, colours,
//! token, channel) and answers like Slack (`ok`, `ok:false` errors, 429 with
//! Retry-After).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{down_then_back, fault_flow, runner, sent_to, start_flow};
use serde_json::json;
use sluice_testkit::{SlackMessageKind, SlackReceiver};

const SEVERITY_COLOUR: &str = "color: \"{{#if (lte (num syslog.severity) 3)}}danger{{else}}{{#if (eq (num syslog.severity) 4)}}warning{{else}}good{{/if}}{{/if}}\"\n";

#[tokio::test]
async fn webhook_messages_coloured_by_severity() {
    let rx = SlackReceiver::start().await.unwrap();
    let r = runner(
        "PutSlack",
        &format!(
            "webhook_url: {}\ntext: \"*{{{{host}}}}* {{{{content}}}}\"\nusername: sluice\nicon_emoji: \":rotating_light:\"\n{SEVERITY_COLOUR}",
            rx.webhook_url()
        ),
    );
    for sev in 0..8 {
        r.enqueue(
            format!("event at severity {sev}"),
            &[("syslog.severity", &sev.to_string()), ("host", "db1")],
        );
    }
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 8, "failures: {:?}", r.take("failure"));
    let msgs = rx.messages();
    assert_eq!(msgs.len(), 8);
    let colours: Vec<&str> = msgs
        .iter()
        .map(|m| m.payload["attachments"][0]["color"].as_str().unwrap())
        .collect();
    assert_eq!(
        colours,
        [
            "danger", "danger", "danger", "danger", "warning", "good", "good", "good"
        ]
    );
    let first = &msgs[0];
    assert_eq!(first.kind, SlackMessageKind::Webhook);
    assert_eq!(
        first.payload,
        json!({
            "attachments": [{
                "color": "danger",
                "fallback": "*db1* event at severity 0",
                "text": "*db1* event at severity 0",
                "mrkdwn_in": ["text"],
            }],
            "username": "sluice",
            "icon_emoji": ":rotating_light:",
        })
    );
    // Provenance names the host, never the webhook's secret path.
    let dest = sent_to(&r, &ok[0]);
    assert_eq!(dest, vec![format!("http://{}/services/***", rx.addr)]);
}

#[tokio::test]
async fn chat_post_message_with_token_channel_and_blocks() {
    let rx = SlackReceiver::start().await.unwrap();
    let r = runner(
        "PutSlack",
        &format!(
            "token: {}\napi_url: {}\nchannel: \"#{{{{team}}}}\"\ntext: \"{{{{content}}}}\"\nblocks: '[{{\"type\":\"header\",\"text\":{{\"type\":\"plain_text\",\"text\":\"{{{{host}}}}\"}}}},{{\"type\":\"section\",\"text\":{{\"type\":\"mrkdwn\",\"text\":\"{{{{content}}}}\"}}}}]'\n",
            rx.token,
            rx.api_url()
        ),
    );
    r.enqueue("a \"quoted\"\nmessage", &[("team", "ops"), ("host", "db1")]);
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 1, "failures: {:?}", r.take("failure"));
    assert_eq!(ok[0].attr("slack.channel"), Some("#ops"));
    assert!(ok[0].attr("slack.ts").is_some_and(|t| t.contains('.')));
    let m = &rx.messages()[0];
    assert_eq!(m.kind, SlackMessageKind::PostMessage);
    assert_eq!(m.channel.as_deref(), Some("#ops"));
    assert_eq!(m.text.as_deref(), Some("a \"quoted\"\nmessage"));
    assert_eq!(
        m.payload["blocks"],
        json!([
            {"type": "header", "text": {"type": "plain_text", "text": "db1"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "a \"quoted\"\nmessage"}},
        ])
    );
    assert_eq!(
        rx.requests()[0].header("authorization"),
        Some(format!("Bearer {}", rx.token).as_str())
    );
}

#[tokio::test]
async fn slack_refusals_go_to_failure_with_slacks_error() {
    let rx = SlackReceiver::start().await.unwrap();
    let wrong_token = runner(
        "PutSlack",
        &format!(
            "token: xoxb-wrong\napi_url: {}\nchannel: \"#ops\"\n",
            rx.api_url()
        ),
    );
    wrong_token.enqueue("x", &[]);
    wrong_token.run_once().await.unwrap();
    let f = wrong_token.take("failure");
    assert_eq!(f.len(), 1);
    assert_eq!(
        f[0].attr("put.error"),
        Some("Slack refused the message: invalid_auth")
    );
    // A header block must be plain_text: Slack says invalid_blocks.
    let bad_blocks = runner(
        "PutSlack",
        &format!(
            "webhook_url: {}\ntext: \"\"\nblocks: '[{{\"type\":\"header\",\"text\":{{\"type\":\"mrkdwn\",\"text\":\"x\"}}}}]'\n",
            rx.webhook_url()
        ),
    );
    bad_blocks.enqueue("x", &[]);
    bad_blocks.run_once().await.unwrap();
    let f = bad_blocks.take("failure");
    assert_eq!(
        f[0].attr("put.error"),
        Some("Slack answered HTTP 400: invalid_blocks")
    );
    // A colour Slack does not know.
    let bad_colour = runner(
        "PutSlack",
        &format!("webhook_url: {}\ncolor: blue\n", rx.webhook_url()),
    );
    bad_colour.enqueue("x", &[]);
    bad_colour.run_once().await.unwrap();
    let f = bad_colour.take("failure");
    assert_eq!(
        f[0].attr("put.error"),
        Some("Slack answered HTTP 400: invalid_attachments")
    );
    assert!(rx.messages().is_empty());
}

/// 429 with `Retry-After: 2`: measured, no request goes out before the two
/// seconds are over, and the message is delivered soon after.
#[tokio::test]
async fn rate_limiting_waits_out_retry_after() {
    let rx = SlackReceiver::start().await.unwrap();
    rx.rate_limit_next(1, 2);
    let r = runner(
        "PutSlack",
        &format!("webhook_url: {}\nbackoff_initial: 10ms\n", rx.webhook_url()),
    );
    for i in 0..3 {
        r.enqueue(format!("message {i}"), &[]);
    }
    let t0 = Instant::now();
    r.run_once().await.unwrap();
    assert_eq!(rx.requests().len(), 1);
    assert_eq!(rx.requests()[0].status, 429);
    assert_eq!(r.input_queued(), 3, "all three still queued");
    // Trigger as often as the scheduler might; note when each request went out.
    let mut second_request_at = None;
    while rx.messages().len() < 3 {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "not delivered in time"
        );
        let before = rx.requests().len();
        let started = Instant::now();
        r.run_once().await.unwrap();
        if second_request_at.is_none() && rx.requests().len() > before {
            second_request_at = Some(started);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let waited = second_request_at.unwrap().duration_since(t0);
    assert!(
        waited >= Duration::from_secs(2),
        "a request went out {waited:?} after the 429 asked for 2 s"
    );
    assert!(waited < Duration::from_secs(4), "waited {waited:?}");
    // The rate-limited message was penalised: as in NiFi, it goes back
    // behind the others once its penalty is over.
    let mut texts: Vec<String> = rx
        .messages()
        .iter()
        .map(|m| m.text.clone().unwrap())
        .collect();
    texts.sort();
    assert_eq!(texts, ["message 0", "message 1", "message 2"], "each once");
    assert_eq!(r.take("success").len(), 3);
}

/// Slack answers 503 for a while: the queue fills, the source is held back;
/// Slack recovers and every message arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_errors_back_pressure_the_source_then_every_message_arrives() {
    let rx = SlackReceiver::start().await.unwrap();
    rx.fail_next(1_000_000, 503);
    let total = 30;
    let sink = format!(
        "  sink:
    type: PutSlack
    properties:
      webhook_url: {}
      text: \"alert {{{{seq}}}}\"
      {}      backoff_initial: 50ms
      backoff_max: 200ms
    auto_terminate: [success, failure]",
        rx.webhook_url(),
        SEVERITY_COLOUR
    );
    let engine = start_flow(&fault_flow(total, 5, &sink)).await;
    down_then_back(
        &engine,
        total,
        5,
        || {
            let n = rx.messages().len();
            async move { n }
        },
        || async { rx.clear_faults() },
    )
    .await;
    engine.shutdown(Duration::from_secs(5)).await;
    let mut got: Vec<u64> = rx
        .messages()
        .iter()
        .map(|m| {
            let text = m.payload["attachments"][0]["text"].as_str().unwrap();
            text.trim_start_matches("alert ").parse().unwrap()
        })
        .collect();
    got.sort_unstable();
    assert_eq!(got, (0..total).collect::<Vec<_>>(), "each exactly once");
    // Colours follow the source's severities (seq % 8).
    for m in rx.messages() {
        let a = &m.payload["attachments"][0];
        let seq: u64 = a["text"].as_str().unwrap()[6..].parse().unwrap();
        let want = match seq % 8 {
            0..=3 => "danger",
            4 => "warning",
            _ => "good",
        };
        assert_eq!(a["color"], want, "seq {seq}");
    }
}
