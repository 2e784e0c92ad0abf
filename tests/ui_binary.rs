//! The API served by the real binary (`sluice run --ui`): health, status,
//! flow with secrets redacted, Prometheus metrics, and the token on writes.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_testkit::{free_port, wait_for_port, wait_until_async};

async fn get_text(c: &reqwest::Client, url: &str) -> String {
    c.get(url).send().await.unwrap().text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_serves_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        "name: ui-binary
processors:
  gen:
    type: GenerateFlowFile
    properties: { count: 50, content: \"hello {{seq}}\" }
  tag:
    type: UpdateAttribute
    properties: { set: { secret_ref: \"${env:SLUICE_UI_TEST_SECRET}\" } }
    auto_terminate: [success]
connections:
  - { from: gen, relationship: success, to: tag }
",
    )
    .unwrap();
    let port = free_port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args([
            "run",
            "--no-repository",
            "--ui",
            &format!("127.0.0.1:{port}"),
            "--ui-token",
            "t0ken-for-test",
        ])
        .arg(&flow)
        .env("SLUICE_UI_TEST_SECRET", "hunter2-very-secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    wait_for_port(
        format!("127.0.0.1:{port}").parse().unwrap(),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    let c = reqwest::Client::new();
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    wait_until_async(Duration::from_secs(30), || {
        let c = c.clone();
        let url = format!("{base}/api/status");
        async move {
            let v: serde_json::Value = c.get(url).send().await.unwrap().json().await.unwrap();
            v.to_string().contains("\"flowfiles_dropped\":50")
        }
    })
    .await
    .unwrap();
    let flow_json = get_text(&c, &format!("{base}/api/flow")).await;
    assert!(
        flow_json.contains("${env:SLUICE_UI_TEST_SECRET}"),
        "{flow_json}"
    );
    assert!(!flow_json.contains("hunter2-very-secret"));
    let metrics = get_text(&c, &format!("{base}/metrics")).await;
    assert!(metrics.contains("# TYPE"), "{metrics}");
    assert!(metrics.contains("processor=\"gen\""), "{metrics}");
    let denied = c
        .post(format!("{base}/api/processors/tag/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let ok = c
        .post(format!("{base}/api/processors/tag/stop"))
        .bearer_auth("t0ken-for-test")
        .send()
        .await
        .unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    let status = get_text(&c, &format!("{base}/api/status")).await;
    assert!(status.contains("\"stopped\""), "{status}");
    child.kill().unwrap();
    child.wait().unwrap();
}
