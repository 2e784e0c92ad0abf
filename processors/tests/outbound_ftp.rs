//! PutFTP against a real pure-ftpd (testkit's `FtpServer`) on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{down_then_back, fault_flow, runner, sent_to, start_flow};
use sluice_testkit::{FtpServer, finished_files};

fn props(ftp: &FtpServer, extra: &str) -> String {
    format!(
        "host: 127.0.0.1\nport: {}\nusername: {}\npassword: {}\n{extra}",
        ftp.addr.port(),
        ftp.user,
        ftp.password
    )
}

/// Every file under `dir`, relative, sorted.
fn files(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[tokio::test]
async fn uploads_binary_content_into_new_directories_then_renames() {
    let ftp = FtpServer::start().await.unwrap();
    let r = runner(
        "PutFTP",
        &props(&ftp, "remote_path: \"/in/{{dir}}/{{filename}}\"\n"),
    );
    // Line endings and bytes an ASCII-mode transfer would mangle.
    let binary: Vec<u8> = b"line one\nline two\r\n\0\xff\xfe end\n".to_vec();
    r.enqueue(binary.clone(), &[("dir", "a/b"), ("filename", "x.bin")]);
    r.enqueue("second\n", &[("dir", "a"), ("filename", "y.txt")]);
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 2, "failures: {:?}", r.take("failure"));
    assert_eq!(
        std::fs::read(ftp.root.join("in/a/b/x.bin")).unwrap(),
        binary,
        "stored byte for byte (binary mode)"
    );
    assert_eq!(
        std::fs::read(ftp.root.join("in/a/y.txt")).unwrap(),
        b"second\n"
    );
    assert_eq!(
        files(&ftp.root),
        vec!["in/a/b/x.bin".to_string(), "in/a/y.txt".to_string()],
        "no temporary .part file left behind"
    );
    assert_eq!(ok[0].attr("ftp.remote.path"), Some("/in/a/b/x.bin"));
    assert_eq!(
        sent_to(&r, &ok[0]),
        vec![format!("ftp://127.0.0.1:{}/in/a/b/x.bin", ftp.addr.port())]
    );
}

#[tokio::test]
async fn reuses_one_control_connection_across_triggers() {
    let ftp = FtpServer::start().await.unwrap();
    let r = runner("PutFTP", &props(&ftp, "remote_path: \"{{filename}}\"\n"));
    for i in 0..5 {
        r.enqueue(format!("file {i}"), &[("filename", &format!("f{i}.txt"))]);
        r.run_once().await.unwrap();
    }
    assert_eq!(r.take("success").len(), 5);
    assert_eq!(files(&ftp.root).len(), 5);
    assert_eq!(
        r.ctx.counter("ftp.connections").load(Ordering::Relaxed),
        1,
        "one login for five uploads"
    );
}

#[tokio::test]
async fn replaces_an_existing_file() {
    let ftp = FtpServer::start().await.unwrap();
    let r = runner("PutFTP", &props(&ftp, "remote_path: /same.txt\n"));
    r.enqueue("old", &[]);
    r.run_once().await.unwrap();
    r.enqueue("new", &[]);
    r.run_once().await.unwrap();
    assert_eq!(
        r.take("success").len(),
        2,
        "failures: {:?}",
        r.take("failure")
    );
    assert_eq!(std::fs::read(ftp.root.join("same.txt")).unwrap(), b"new");
    assert_eq!(files(&ftp.root), vec!["same.txt".to_string()]);
}

#[tokio::test]
async fn a_wrong_password_goes_to_failure_with_the_reply() {
    let ftp = FtpServer::start().await.unwrap();
    let yaml = format!(
        "host: 127.0.0.1\nport: {}\nusername: {}\npassword: not-the-password\nremote_path: x.txt\n",
        ftp.addr.port(),
        ftp.user
    );
    let r = runner("PutFTP", &yaml);
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    let failed = r.take("failure");
    assert_eq!(failed.len(), 1);
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.contains("login") && why.contains("530"), "{why}");
    assert!(!why.contains("not-the-password"), "{why}");
    assert!(files(&ftp.root).is_empty());
}

#[tokio::test]
async fn a_refused_connection_keeps_the_flowfile_queued() {
    let mut ftp = FtpServer::start().await.unwrap();
    ftp.stop();
    let r = runner("PutFTP", &props(&ftp, "remote_path: x.txt\n"));
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    assert!(r.take("failure").is_empty());
    let back = r.take_input();
    assert_eq!(back.len(), 1);
    let why = back[0].attr("put.error").unwrap();
    assert!(why.contains("connect"), "{why}");
    assert_eq!(back[0].attr("put.attempts"), Some("1"));
}

/// The server is down: the queue fills, the source is held back; the server
/// returns and every file arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_down_back_pressures_the_source_then_everything_arrives() {
    let mut ftp = FtpServer::start().await.unwrap();
    ftp.stop();
    let total = 40;
    let sink = format!(
        "  sink:
    type: PutFTP
    properties:
      host: 127.0.0.1
      port: {}
      username: {}
      password: {}
      remote_path: \"/out/{{{{filename}}}}\"
      connect_timeout: 2s
      backoff_initial: 50ms
      backoff_max: 200ms
    auto_terminate: [success, failure]",
        ftp.addr.port(),
        ftp.user,
        ftp.password
    );
    let engine = start_flow(&fault_flow(total, 5, &sink)).await;
    let out = ftp.root.join("out");
    let count = || {
        let n = finished_files(&out).len();
        async move { n }
    };
    down_then_back(&engine, total, 5, count, || async {
        ftp.start_again().await.unwrap();
    })
    .await;
    let names: Vec<String> = finished_files(&out)
        .iter()
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let expected: Vec<String> = (0..total).map(|n| format!("msg-{n:04}.txt")).collect();
    assert_eq!(names, expected);
    for n in [0, total - 1] {
        assert_eq!(
            std::fs::read_to_string(out.join(format!("msg-{n:04}.txt"))).unwrap(),
            format!("message {n:04}\n")
        );
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn explicit_ftps_with_the_servers_ca() {
    // This server refuses logins that did not switch to TLS first.
    let ftp = FtpServer::start_with_tls().await.unwrap();
    let ca = ftp.tls_cert.clone().unwrap();
    let r = runner(
        "PutFTP",
        &props(
            &ftp,
            &format!(
                "tls: explicit\nca_file: {}\nremote_path: /secure/{{{{filename}}}}\n",
                ca.display()
            ),
        ),
    );
    r.enqueue(b"over TLS\r\n\x00".to_vec(), &[("filename", "a.bin")]);
    r.enqueue("second", &[("filename", "b.txt")]);
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 2, "failures: {:?}", r.take("failure"));
    assert_eq!(
        std::fs::read(ftp.root.join("secure/a.bin")).unwrap(),
        b"over TLS\r\n\x00"
    );
    assert_eq!(
        sent_to(&r, &ok[0]),
        vec![format!("ftps://127.0.0.1:{}/secure/a.bin", ftp.addr.port())]
    );
    assert_eq!(r.ctx.counter("ftp.connections").load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn ftps_without_trusting_the_certificate_goes_to_failure() {
    let ftp = FtpServer::start_with_tls().await.unwrap();
    let r = runner(
        "PutFTP",
        &props(&ftp, "tls: explicit\nremote_path: x.txt\n"),
    );
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    let failed = r.take("failure");
    assert_eq!(failed.len(), 1, "{:?}", r.take_input());
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.contains("TLS"), "{why}");
    assert!(files(&ftp.root).is_empty());
}

#[tokio::test]
async fn active_mode_upload() {
    let ftp = FtpServer::start().await.unwrap();
    let r = runner(
        "PutFTP",
        &props(&ftp, "passive: false\nremote_path: /active/{{filename}}\n"),
    );
    r.enqueue("the server connected back", &[("filename", "a.txt")]);
    r.run_once().await.unwrap();
    assert_eq!(r.take("success").len(), 1, "{:?}", r.take("failure"));
    assert_eq!(
        std::fs::read(ftp.root.join("active/a.txt")).unwrap(),
        b"the server connected back"
    );
}
