//! PutHTTP against testkit's `HttpReceiver` (a real HTTP server on loopback
//! that records what it got and answers as told), and against a small HTTPS
//! server of the test's own (tokio-rustls, certificate from rcgen) for the TLS
//! options.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{down_then_back, fault_flow, runner, sent_to, start_flow};
use sluice_testkit::{Fault, HttpReceiver};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio_rustls::rustls;

#[tokio::test]
async fn sends_content_with_method_url_and_header_templates() {
    let rx = HttpReceiver::start().await.unwrap();
    rx.set_response(201, "application/json", r#"{"id":7}"#);
    let r = runner(
        "PutHTTP",
        "url: \"{{base}}/hooks/{{host}}?token=abc\"
method: \"{{verb}}\"
headers:
  X-Severity: \"{{sev}}\"
authorization: Bearer tok-123
content_type: application/json
",
    );
    r.enqueue(
        r#"{"alert":"disk full"}"#,
        &[
            ("base", &rx.url()),
            ("host", "db1"),
            ("verb", "put"),
            ("sev", "3"),
        ],
    );
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 1, "failures: {:?}", r.take("failure"));
    let reqs = rx.requests();
    assert_eq!(reqs.len(), 1);
    let q = &reqs[0];
    assert_eq!(q.method, "PUT");
    assert_eq!(q.path, "/hooks/db1");
    assert_eq!(q.query, "token=abc");
    assert_eq!(q.header("x-severity"), Some("3"));
    assert_eq!(q.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(q.header("content-type"), Some("application/json"));
    assert_eq!(q.body_str(), r#"{"alert":"disk full"}"#);
    let ff = &ok[0];
    assert_eq!(ff.attr("http.status.code"), Some("201"));
    assert_eq!(ff.attr("http.status.message"), Some("Created"));
    assert_eq!(ff.attr("http.response.body"), Some(r#"{"id":7}"#));
    assert_eq!(
        ff.attr("http.response.header.content-type"),
        Some("application/json")
    );
    assert_eq!(
        sent_to(&r, ff),
        vec![format!("{}/hooks/db1", rx.url())],
        "provenance shows the URL without its query"
    );
}

#[tokio::test]
async fn get_sends_no_body() {
    let rx = HttpReceiver::start().await.unwrap();
    let r = runner("PutHTTP", &format!("url: {}/ping\nmethod: GET\n", rx.url()));
    r.enqueue("ignored", &[]);
    r.run_once().await.unwrap();
    assert_eq!(r.take("success").len(), 1);
    let q = &rx.requests()[0];
    assert_eq!(q.method, "GET");
    assert!(q.body.is_empty());
}

#[tokio::test]
async fn refused_statuses_go_to_failure_with_the_reason() {
    let rx = HttpReceiver::start().await.unwrap();
    let r = runner("PutHTTP", &format!("url: {}/x\n", rx.url()));
    for status in [400, 401, 404, 422] {
        rx.set_response(status, "text/plain", "no such thing");
        r.enqueue("x", &[]);
        r.run_once().await.unwrap();
        let failed = r.take("failure");
        assert_eq!(failed.len(), 1, "status {status}");
        assert_eq!(
            failed[0].attr("http.status.code"),
            Some(status.to_string().as_str())
        );
        assert_eq!(failed[0].attr("http.response.body"), Some("no such thing"));
        let why = failed[0].attr("put.error").unwrap();
        assert!(
            why.starts_with(&format!("POST {}/x: HTTP {status}", rx.url())),
            "{why}"
        );
        assert!(r.take("success").is_empty());
    }
    assert_eq!(r.ctx.counter("retries").load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn server_errors_and_429_stay_queued_and_retry_after_is_honoured() {
    let rx = HttpReceiver::start().await.unwrap();
    rx.push_fault(Fault::status(503), 1);
    rx.push_fault(Fault::rate_limited(1), 1);
    let r = runner(
        "PutHTTP",
        &format!("url: {}/x\nbackoff_initial: 50ms\n", rx.url()),
    );
    r.enqueue("payload", &[]);
    // 503: kept queued, penalised for the back-off.
    r.run_once().await.unwrap();
    assert!(r.take("success").is_empty() && r.take("failure").is_empty());
    assert_eq!(r.input_queued(), 1);
    // Then 429 with Retry-After: 1 s. Poll until it is delivered, noting when
    // each request went out.
    let start = Instant::now();
    let mut sent_at = Vec::new();
    let mut delivered = Vec::new();
    while delivered.is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "not delivered");
        let before = rx.requests().len();
        let t = Instant::now();
        r.run_once().await.unwrap();
        if rx.requests().len() > before {
            sent_at.push(t);
        }
        delivered = r.take("success");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let reqs = rx.requests();
    assert_eq!(
        reqs.iter().map(|q| q.status).collect::<Vec<_>>(),
        vec![503, 429, 200]
    );
    assert_eq!(sent_at.len(), 2, "the 429 and the success");
    let gap = sent_at[1].duration_since(sent_at[0]);
    assert!(gap >= Duration::from_secs(1), "sent {gap:?} after the 429");
    assert!(
        gap < Duration::from_secs(3),
        "waited far longer than asked: {gap:?}"
    );
    assert_eq!(r.ctx.counter("retries").load(Ordering::Relaxed), 2);
    assert_eq!(delivered[0].attr("put.error"), None);
}

#[tokio::test]
async fn gives_up_to_retry_after_max_attempts() {
    let rx = HttpReceiver::start().await.unwrap();
    rx.fail_next(10, 502);
    let r = runner(
        "PutHTTP",
        &format!(
            "url: {}/x\nbackoff_initial: 0s\nmax_attempts: 2\n",
            rx.url()
        ),
    );
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    let mut back = r.take_input();
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].attr("http.status.code"), Some("502"));
    let mut ff = back.pop().unwrap();
    ff.penalized_until = 0;
    r.enqueue_flowfile(ff);
    r.run_once().await.unwrap();
    let gave_up = r.take("retry");
    assert_eq!(gave_up.len(), 1);
    assert_eq!(gave_up[0].attr("put.attempts"), Some("2"));
    assert!(gave_up[0].attr("put.error").unwrap().contains("HTTP 502"));
}

/// An HTTPS server answering 200 to everything, with a fresh self-signed
/// certificate for 127.0.0.1; returns its port, the CA file to trust, and a
/// request counter.
async fn https_server() -> (u16, tempfile::TempDir, Arc<AtomicUsize>) {
    let ck = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ck.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(ck.signing_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![ck.cert.der().clone()], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let served = Arc::new(AtomicUsize::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut s = BufReader::new(tls);
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if s.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let l = line.trim_end().to_ascii_lowercase();
                    if l.is_empty() {
                        break;
                    }
                    if let Some(v) = l.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if s.read_exact(&mut body).await.is_err() {
                    return;
                }
                count.fetch_add(1, Ordering::SeqCst);
                let _ = s
                    .get_mut()
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = s.get_mut().shutdown().await;
            });
        }
    });
    (port, dir, served)
}

#[tokio::test]
async fn https_with_a_ca_file_without_it_and_insecure() {
    let (port, dir, served) = https_server().await;
    let url = format!("https://127.0.0.1:{port}/in");
    let ca = dir.path().join("ca.pem");

    let trusted = runner(
        "PutHTTP",
        &format!("url: {url}\nca_file: {}\n", ca.display()),
    );
    trusted.enqueue("x", &[]);
    trusted.run_once().await.unwrap();
    let ok = trusted.take("success");
    assert_eq!(ok.len(), 1, "{:?}", trusted.take("failure"));
    assert_eq!(ok[0].attr("http.response.body"), Some("ok"));

    // The system roots do not know this certificate: a configuration
    // problem, so failure, not retry.
    let untrusted = runner("PutHTTP", &format!("url: {url}\n"));
    untrusted.enqueue("x", &[]);
    untrusted.run_once().await.unwrap();
    let failed = untrusted.take("failure");
    assert_eq!(failed.len(), 1, "{:?}", untrusted.take_input());
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.contains("TLS"), "{why}");

    let insecure = runner("PutHTTP", &format!("url: {url}\ntls_insecure: true\n"));
    insecure.enqueue("x", &[]);
    insecure.run_once().await.unwrap();
    assert_eq!(insecure.take("success").len(), 1);
    assert_eq!(
        served.load(Ordering::SeqCst),
        2,
        "the untrusted attempt sent nothing"
    );
}

/// The receiver is down: the queue fills, the source is held back; the
/// receiver returns and every FlowFile arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_down_back_pressures_the_source_then_everything_arrives() {
    let mut rx = HttpReceiver::start().await.unwrap();
    let url = rx.url();
    rx.stop();
    let total = 40;
    let sink = format!(
        "  sink:
    type: PutHTTP
    properties:
      url: \"{url}/ingest/{{{{seq}}}}\"
      connect_timeout: 2s
      backoff_initial: 50ms
      backoff_max: 200ms
    auto_terminate: [success, retry, failure]"
    );
    let engine = start_flow(&fault_flow(total, 5, &sink)).await;
    // `delivered` reads the receiver while `bring_back` restarts it: hand it
    // over through a cell (never borrowed across an await).
    let cell = std::cell::RefCell::new(Some(rx));
    let delivered = || {
        let n = cell.borrow().as_ref().map_or(0, |rx| {
            rx.requests().iter().filter(|q| q.status == 200).count()
        });
        async move { n }
    };
    down_then_back(&engine, total, 5, delivered, || async {
        let mut rx = cell.borrow_mut().take().unwrap();
        rx.start_again().await.unwrap();
        *cell.borrow_mut() = Some(rx);
    })
    .await;
    engine.shutdown(Duration::from_secs(5)).await;
    let rx = cell.into_inner().unwrap();
    let mut paths: Vec<String> = rx.requests().into_iter().map(|q| q.path).collect();
    paths.sort_by_key(|p| p.rsplit('/').next().unwrap().parse::<u64>().unwrap());
    let expected: Vec<String> = (0..total).map(|n| format!("/ingest/{n}")).collect();
    assert_eq!(paths, expected, "each exactly once");
}
