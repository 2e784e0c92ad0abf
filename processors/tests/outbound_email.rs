//! PutEmail against a real SMTP server: aiosmtpd (testkit's `SmtpServer`),
//! plain and with STARTTLS required, on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{down_then_back, fault_flow, runner, sent_to, start_flow};
use sluice_testkit::SmtpServer;

const WAIT: Duration = Duration::from_secs(20);

fn props(smtp: &SmtpServer, extra: &str) -> String {
    format!("host: 127.0.0.1\nport: {}\n{extra}", smtp.addr.port())
}

#[tokio::test]
async fn sends_mail_built_from_templates() {
    let smtp = SmtpServer::start().await.unwrap();
    let r = runner(
        "PutEmail",
        &props(
            &smtp,
            "starttls: none
from: \"Sluice Alerts <alerts@example.com>\"
to: \"oncall@example.com, {{owner}}\"
cc: lead@example.com
bcc: audit@example.com
subject: \"[sev {{syslog.severity}}] {{host}}\"
body: \"{{host}} says: {{content}}\"
",
        ),
    );
    r.schedule().await.unwrap();
    r.enqueue(
        "disk full",
        &[
            ("owner", "Bob <bob@example.com>"),
            ("syslog.severity", "2"),
            ("host", "db1"),
        ],
    );
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 1, "failures: {:?}", r.take("failure"));
    assert!(ok[0].attr("email.response").unwrap().starts_with("250"));
    assert!(ok[0].attr("email.message.id").is_some());
    assert_eq!(
        sent_to(&r, &ok[0]),
        vec![format!("smtp://127.0.0.1:{}", smtp.addr.port())]
    );
    let mails = smtp.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.from, "Sluice Alerts <alerts@example.com>");
    assert_eq!(m.to, "oncall@example.com, Bob <bob@example.com>");
    assert_eq!(m.cc, "lead@example.com");
    assert_eq!(m.subject, "[sev 2] db1");
    assert_eq!(m.body.trim_end(), "db1 says: disk full");
    assert_eq!(m.envelope_from, "alerts@example.com");
    let mut rcpt = m.envelope_to.clone();
    rcpt.sort();
    assert_eq!(
        rcpt,
        [
            "audit@example.com",
            "bob@example.com",
            "lead@example.com",
            "oncall@example.com"
        ]
    );
    assert!(m.header("Bcc").is_none(), "Bcc stays out of the message");
    assert_eq!(
        m.header("Message-ID"),
        ok[0].attr("email.message.id"),
        "the id we recorded is the one delivered"
    );
}

#[tokio::test]
async fn html_bodies() {
    let smtp = SmtpServer::start().await.unwrap();
    let r = runner(
        "PutEmail",
        &props(
            &smtp,
            "starttls: none\nfrom: a@example.com\nto: b@example.com\nbody_type: html\nbody: \"<h1>{{host}}</h1><p>{{content}}</p>\"\n",
        ),
    );
    r.schedule().await.unwrap();
    r.enqueue("5 < 6", &[("host", "web&db")]);
    r.run_once().await.unwrap();
    assert_eq!(r.take("success").len(), 1);
    let m = &smtp.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert!(m.header("Content-Type").unwrap().starts_with("text/html"));
    assert_eq!(m.body.trim_end(), "<h1>web&amp;db</h1><p>5 &lt; 6</p>");
}

#[tokio::test]
async fn starttls_required_with_the_servers_ca() {
    let smtp = SmtpServer::start_with_starttls().await.unwrap();
    let ca = smtp.tls_cert.clone().unwrap();
    let r = runner(
        "PutEmail",
        &props(
            &smtp,
            &format!(
                "starttls: required\nca_file: {}\nfrom: a@example.com\nto: b@example.com\nsubject: over TLS\n",
                ca.display()
            ),
        ),
    );
    r.schedule().await.unwrap();
    r.enqueue("secret stuff", &[]);
    r.run_once().await.unwrap();
    assert_eq!(r.take("success").len(), 1, "{:?}", r.take("failure"));
    let m = &smtp.wait_for_messages(1, WAIT).await.unwrap()[0];
    assert_eq!(m.subject, "over TLS");
}

#[tokio::test]
async fn starttls_problems_go_to_failure() {
    let smtp = SmtpServer::start_with_starttls().await.unwrap();
    // The server insists on STARTTLS: sending in clear is refused (530).
    let clear = runner(
        "PutEmail",
        &props(
            &smtp,
            "starttls: none\nfrom: a@example.com\nto: b@example.com\n",
        ),
    );
    clear.schedule().await.unwrap();
    clear.enqueue("x", &[]);
    clear.run_once().await.unwrap();
    let failed = clear.take("failure");
    assert_eq!(failed.len(), 1);
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.contains("530"), "{why}");
    // Its certificate is self-signed: without its CA, TLS is refused.
    let untrusted = runner(
        "PutEmail",
        &props(
            &smtp,
            "starttls: required\nfrom: a@example.com\nto: b@example.com\n",
        ),
    );
    untrusted.schedule().await.unwrap();
    untrusted.enqueue("x", &[]);
    untrusted.run_once().await.unwrap();
    let failed = untrusted.take("failure");
    assert_eq!(failed.len(), 1, "{:?}", untrusted.take_input());
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.starts_with("TLS:"), "{why}");
    assert_eq!(smtp.message_count(), 0);
}

#[tokio::test]
async fn required_starttls_against_a_server_without_it_is_refused() {
    let smtp = SmtpServer::start().await.unwrap();
    let r = runner(
        "PutEmail",
        &props(
            &smtp,
            "starttls: required\nfrom: a@example.com\nto: b@example.com\n",
        ),
    );
    r.schedule().await.unwrap();
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    let failed = r.take("failure");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].attr("put.error").unwrap().contains("STARTTLS"),
        "{:?}",
        failed[0].attr("put.error")
    );
    assert_eq!(smtp.message_count(), 0, "nothing sent in clear");
}

/// The server is down: the queue fills, the source is held back; the server
/// returns and every mail arrives, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_back_pressures_the_source_then_every_mail_arrives() {
    let mut smtp = SmtpServer::start().await.unwrap();
    smtp.stop();
    let total = 25;
    let sink = format!(
        "  sink:
    type: PutEmail
    properties:
      host: 127.0.0.1
      port: {}
      starttls: none
      from: alerts@example.com
      to: oncall@example.com
      subject: \"alert {{{{seq}}}}\"
      timeout: 5s
      backoff_initial: 50ms
      backoff_max: 200ms
    auto_terminate: [success, failure]",
        smtp.addr.port()
    );
    let engine = start_flow(&fault_flow(total, 5, &sink)).await;
    let maildir = smtp.maildir.clone();
    let count = move || {
        let n: usize = ["new", "cur"]
            .iter()
            .filter_map(|sub| std::fs::read_dir(maildir.join(sub)).ok())
            .map(Iterator::count)
            .sum();
        async move { n }
    };
    down_then_back(&engine, total, 5, count, || async {
        smtp.start_again().await.unwrap();
    })
    .await;
    let mut subjects: Vec<String> = smtp
        .messages()
        .unwrap()
        .into_iter()
        .map(|m| m.subject)
        .collect();
    subjects.sort();
    let mut expected: Vec<String> = (0..total).map(|n| format!("alert {n}")).collect();
    expected.sort();
    assert_eq!(subjects, expected, "each alert exactly once");
    engine.shutdown(Duration::from_secs(5)).await;
}
