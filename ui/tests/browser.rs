//! The visualizer in a real browser: starts a flow and `serve` on port 0, then
//! runs `tests/browser/visualizer.mjs` (headless Debian Chromium driven by
//! playwright-core from npm, both installed by scripts/install-test-deps.sh).
//! The script checks the page and saves `target/ui-artifacts/visualizer.png`.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::{TOKEN, start};
use sluice_ui::{UiConfig, serve};

const FLOW: &str = r#"name: visualizer-test
description: Browser test flow
processors:
  gen:
    type: TestSource
    properties:
      batch: 2
      password: not-for-your-eyes
    scheduling: { run_schedule: 50ms }
  tag:
    type: UpdateAttribute
    properties:
      set:
        label: "<script>window.__pwned=1</script>"
        note: <img src=x onerror="window.__pwned=2">
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
  '<script>window.__pwned=3</script>':
    type: UpdateAttribute
    auto_terminate: [success]
  alarm:
    type: TestAlarm
    properties: { message: "disk full on <b>/var</b>" }
    auto_terminate: [success]
    scheduling: { yield: 1s }
connections:
  - { from: gen, relationship: success, to: tag }
  - { from: tag, relationship: success, to: sink, back_pressure: { max_count: 40 } }
  - from: tag
    relationship: success
    to: '<script>window.__pwned=3</script>'
    back_pressure: { max_count: 400 }
"#;

fn workspace_target() -> PathBuf {
    std::env::var("CARGO_TARGET_DIR").map_or_else(
        |_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

#[tokio::test]
async fn visualizer_shows_the_flow_live() {
    let modules = sluice_testkit::playwright_node_path().unwrap();
    let chromium = sluice_testkit::chromium().unwrap();

    let engine = start(FLOW).await;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let config = UiConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        token: Some(TOKEN.into()),
        open_reads: true,
    };
    let addr = serve(engine.clone(), config, async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    let (closed_tx, closed_rx) = tokio::sync::oneshot::channel::<()>();
    let closed = UiConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        token: Some(TOKEN.into()),
        open_reads: false,
    };
    let closed_addr = serve(engine.clone(), closed, async move {
        let _ = closed_rx.await;
    })
    .await
    .unwrap();

    let artifacts = workspace_target().join("ui-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let screenshot = artifacts.join("visualizer.png");
    let _ = std::fs::remove_file(&screenshot);
    let profile = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/browser/visualizer.mjs");
    let child = tokio::process::Command::new("node")
        .arg(&script)
        .env("BASE_URL", format!("http://{addr}"))
        .env("CLOSED_URL", format!("http://{closed_addr}"))
        .env("TOKEN", TOKEN)
        .env("PLAYWRIGHT_DIR", &modules)
        .env("USER_DATA_DIR", profile.path())
        .env("SCREENSHOT", &screenshot)
        .env("CHROMIUM", &chromium)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node is installed");
    let out = tokio::time::timeout(Duration::from_mins(3), child.wait_with_output())
        .await
        .expect("the browser script finished within 3 minutes")
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    assert!(
        out.status.success(),
        "the browser checks failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("turned red"), "{stdout}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");

    let _ = stop_tx.send(());
    let _ = closed_tx.send(());
    engine.shutdown(Duration::from_secs(5)).await;
}
