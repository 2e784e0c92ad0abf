//! End to end through the real binary: ListenHTTP -> UpdateAttribute ->
//! RouteOnAttribute -> AttributesToJSON -> PutFile. Real HTTP requests go in;
//! the test reads the files, their JSON, and which route each took. Then
//! SIGTERM stops it cleanly with a summary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Stdio};
use std::time::Duration;

use sluice_testkit::{finished_files, free_port, wait_for_port, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_to_routed_json_files() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let port = free_port();
    let flow = format!(
        r#"name: e2e
processors:
  listen: {{ type: ListenHTTP, properties: {{ port: {port}, path: /ingest }} }}
  tag:
    type: UpdateAttribute
    properties:
      set: {{ env: prod, request: "{{{{http.header.x-request-id}}}}" }}
  route:
    type: RouteOnAttribute
    properties:
      routes:
        errors: '"http.header.x-level" in attr && attr["http.header.x-level"] == "error"'
  to_json:
    type: AttributesToJSON
    properties: {{ include: [env, request, route.name, http.method], include_content: true }}
    auto_terminate: [failure]
  save:
    type: PutFile
    properties: {{ directory: "{out}/{{{{route.name}}}}", filename: "{{{{request}}}}.json" }}
    auto_terminate: [success, failure]
connections:
  - {{ from: listen, relationship: success, to: tag }}
  - {{ from: tag, relationship: success, to: route }}
  - {{ from: route, relationships: [errors, unmatched], to: to_json }}
  - {{ from: to_json, relationship: success, to: save }}
"#,
        out = out.display()
    );
    let flow_path = dir.path().join("flow.yaml");
    std::fs::write(&flow_path, flow).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", "--no-ui", "--status-interval", "1s", "--repository"])
        .arg(dir.path().join("repo"))
        .arg(&flow_path)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_for_port(addr, Duration::from_secs(30)).await.unwrap();
    let client = reqwest::Client::new();
    let url = format!("http://{addr}/ingest");
    for i in 0..10 {
        let level = if i % 3 == 0 { "error" } else { "info" };
        let resp = client
            .post(&url)
            .header("x-level", level)
            .header("x-request-id", format!("req-{i}"))
            .body(format!("message {i} with \"quotes\"\n"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "request {i}");
    }
    // A wrong path is refused and nothing is written for it.
    let resp = client
        .post(format!("http://{addr}/other"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    let (errors, others) = (out.join("errors"), out.join("unmatched"));
    wait_until(Duration::from_secs(30), || {
        finished_files(&errors).len() + finished_files(&others).len() == 10
    })
    .await
    .unwrap();
    for i in 0..10 {
        let (route, dirname) = if i % 3 == 0 {
            ("errors", &errors)
        } else {
            ("unmatched", &others)
        };
        let path = dirname.join(format!("req-{i}.json"));
        let v: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        )
        .unwrap();
        assert_eq!(v["env"], "prod");
        assert_eq!(v["request"], format!("req-{i}"));
        assert_eq!(v["route.name"], route);
        assert_eq!(v["http.method"], "POST");
        assert_eq!(v["content"], format!("message {i} with \"quotes\"\n"));
    }
    assert_eq!(finished_files(&errors).len(), 4);

    // SIGTERM: a clean stop with a summary on stderr.
    let pid = child.id().to_string();
    assert!(
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let output = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "exit: {:?}", output.status);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("summary: flow `e2e`"), "{stderr}");
    assert!(stderr.contains("still queued: 0"), "{stderr}");
}
