//! The HTTP API, through `router(state)` without a socket (and `serve` once
//! with one), against real engines running YAML flows.

// Metric values compared here are small whole numbers, exact in f64.
#![allow(clippy::unwrap_used, clippy::float_cmp)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use axum::http::{StatusCode, header};
use common::*;
use futures::StreamExt;
use serde_json::Value;
use sluice_ui::{Access, UiConfig, route_table, router, serve};

/// The main test flow. `gen` and `vault` carry secrets (one literal, one from
/// the environment) and leak them into a bulletin and attributes.
const FLOW: &str = r#"name: ui-test
description: API test flow
processors:
  gen:
    type: TestSource
    properties:
      batch: 5
      url: ${env:UI_TEST_URL}
      password: hunter2-literal-secret
      leak: true
    scheduling: { run_schedule: 20ms }
  vault:
    type: TestSource
    properties:
      count: 3
      password: ${env:UI_TEST_SECRET}
      leak: true
  tag:
    type: UpdateAttribute
    properties:
      set:
        label: "<script>alert(1)</script>"
        api_token: abc-not-a-real-token
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
  vault_sink:
    type: UpdateAttribute
    auto_terminate: [success]
connections:
  - { from: gen, relationship: success, to: tag }
  - { from: tag, relationship: success, to: sink, back_pressure: { max_count: 50 } }
  - name: vault-out
    from: vault
    relationship: success
    to: vault_sink
    when_full: drop-oldest
    prioritizer: oldest-first
    expiration: 1m
"#;

const TAG_TO_SINK: &str = "tag.success->sink";

#[tokio::test]
async fn flow_describes_the_graph_with_properties_redacted() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    let flow = get_json(&app, "/api/flow").await;
    assert_eq!(flow["name"], "ui-test");
    assert_eq!(flow["file"], "ui-test.yaml");
    let ids: Vec<&str> = flow["processors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["gen", "vault", "tag", "sink", "vault_sink"]);

    let gen_def = &flow["processors"][0];
    assert_eq!(gen_def["type"], "TestSource");
    assert_eq!(gen_def["input"], "forbidden");
    assert_eq!(gen_def["scheduling"]["run_schedule_ms"], 20);
    let prop = |p: &Value, name: &str| -> Value {
        p["properties"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == name)
            .cloned()
            .unwrap()
    };
    let pw = prop(gen_def, "password");
    assert_eq!(pw["sensitive"], true);
    assert_eq!(pw["value"], "***");
    let url = prop(gen_def, "url");
    assert_eq!(
        url["value"], "${env:UI_TEST_URL}",
        "env references show as written"
    );
    assert_eq!(url["from_env"], true);
    assert_eq!(prop(gen_def, "batch")["value"], "5");
    assert_eq!(prop(gen_def, "count")["value"], Value::Null);
    assert_eq!(prop(gen_def, "count")["default"], "0");
    assert_eq!(prop(&flow["processors"][1], "password")["value"], "***");
    let set = prop(&flow["processors"][2], "set");
    assert_eq!(set["value"]["label"], "<script>alert(1)</script>");
    let sink = &flow["processors"][3];
    assert_eq!(sink["relationships"][0]["name"], "success");
    assert_eq!(sink["relationships"][0]["auto_terminated"], true);

    let conns = flow["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 3);
    assert_eq!(conns[1]["id"], TAG_TO_SINK);
    assert_eq!(conns[1]["from"], "tag");
    assert_eq!(conns[1]["to"], "sink");
    assert_eq!(conns[1]["relationships"][0], "success");
    assert_eq!(conns[1]["max_count"], 50);
    assert_eq!(conns[1]["max_bytes"], 1_000_000_000u64);
    assert_eq!(conns[1]["when_full"], "block");
    assert_eq!(conns[2]["id"], "vault-out");
    assert_eq!(conns[2]["when_full"], "drop-oldest");
    assert_eq!(conns[2]["prioritizer"], "oldest-first");
    assert_eq!(conns[2]["expiration_ms"], 60_000);

    // The source: the literal secret's line is masked after its key, the
    // rest (env references included) is as written.
    let source = flow["source"].as_str().unwrap();
    assert!(source.contains("      password: ***\n"), "{source}");
    assert!(
        source.contains("password: ${env:UI_TEST_SECRET}"),
        "{source}"
    );
    assert!(source.contains("url: ${env:UI_TEST_URL}"), "{source}");
    assert_eq!(source.lines().count(), FLOW.lines().count());
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn no_secret_appears_in_any_response() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    // Data with the secrets in it is queued: stop the sinks.
    for p in ["sink", "vault_sink"] {
        let r = call(
            &app,
            post(&format!("/api/processors/{p}/stop"), Some(TOKEN)),
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    eventually(20, "secrets queued in both connections", || async {
        let s = engine.status();
        let queued = |id: &str| {
            s.connections
                .iter()
                .find(|c| c.id == id)
                .unwrap()
                .queued_count
        };
        (queued(TAG_TO_SINK) > 0 && queued("vault-out") == 3).then_some(())
    })
    .await;
    // The engine itself holds the secrets (so the checks below can fail)...
    let raw_bulletins: String = engine
        .status()
        .processors
        .iter()
        .flat_map(|p| p.bulletins.iter().map(|b| b.message.clone()))
        .collect();
    for secret in [LITERAL_SECRET, ENV_SECRET, ENV_URL] {
        assert!(raw_bulletins.contains(secret), "{raw_bulletins}");
    }
    let raw_queue = format!("{:?}", engine.connection("vault-out").unwrap().listing(10));
    assert!(raw_queue.contains(ENV_SECRET), "{raw_queue}");

    // ...and no answer does.
    let first = engine.connection(TAG_TO_SINK).unwrap().listing(1)[0].id;
    let mut bodies = Vec::new();
    for uri in [
        "/api/flow".to_string(),
        "/api/status".into(),
        "/metrics".into(),
        "/healthz".into(),
        format!("/api/connections/{}/queue", enc(TAG_TO_SINK)),
        "/api/connections/vault-out/queue".into(),
        format!("/api/provenance?flowfile={first}"),
        "/api/provenance?attribute=seq&value=1".into(),
        format!("/api/provenance?attribute=login.password&value={ENV_SECRET}"),
    ] {
        bodies.push((uri.clone(), get_text(&app, &uri).await));
    }
    // The event stream's first event (the whole status, bulletins included).
    let resp = call(&app, get("/api/events")).await;
    let mut stream = resp.into_body().into_data_stream();
    let mut events = String::new();
    while !events.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        events.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(events.contains("logged in to"), "{events}");
    bodies.push(("/api/events".into(), events));
    for (uri, text) in &bodies {
        for secret in [LITERAL_SECRET, ENV_SECRET, ENV_URL] {
            assert!(!text.contains(secret), "{uri} shows {secret}:\n{text}");
        }
    }
    // Scrubbed, not dropped: the bulletin and attributes are still there.
    let status = &bodies[1].1;
    assert!(status.contains("with password ***"), "{status}");
    let vault_queue: Value = serde_json::from_str(&bodies[5].1).unwrap();
    let attrs = &vault_queue["flowfiles"][0]["attributes"];
    assert_eq!(attrs["login.password"], "***");
    assert_eq!(attrs["note"], "logged in with ***");
    engine.shutdown(Duration::from_secs(5)).await;
}

const SLACK: &str = r"name: slack-alerts
processors:
  gen:
    type: TestSource
    properties: { count: 2 }
  chatops:
    type: PutSlack
    properties:
      webhook_url: ${env:UI_TEST_SLACK}
      text: 'alert {{seq}}'
    auto_terminate: [success, failure]
connections:
  - { from: gen, relationship: success, to: chatops }
";

#[tokio::test]
async fn a_real_slack_sink_keeps_its_webhook_secret() {
    let engine = start(SLACK).await;
    let app = app(&engine);
    // Deliveries fail (nothing listens) and are retried: the sink has tried.
    eventually(20, "a delivery attempt", || async {
        let s = engine.status();
        (s.processors[1].invocations > 0 && s.connections[0].queued_count > 0).then_some(())
    })
    .await;
    let flow = get_json(&app, "/api/flow").await;
    let webhook = flow["processors"][1]["properties"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhook_url")
        .unwrap()
        .clone();
    assert_eq!(webhook["sensitive"], true);
    assert_eq!(webhook["value"], "***");
    for uri in [
        "/api/flow",
        "/api/status",
        "/metrics",
        "/api/connections/gen.success-%3Echatops/queue",
        "/api/provenance?attribute=seq&value=1",
    ] {
        let text = get_text(&app, uri).await;
        assert!(!text.contains("xoxSecretWebhookPart"), "{uri}: {text}");
        assert!(!text.contains(SLACK_WEBHOOK), "{uri}: {text}");
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn status_shows_counts_rates_and_queues() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    let status = eventually(20, "a non-zero rate into the sink", || async {
        let s = get_json(&app, "/api/status").await;
        (processor(&s, "sink")["rates"]["flowfiles_in"]
            .as_f64()
            .unwrap()
            > 0.0)
            .then_some(s)
    })
    .await;
    assert_eq!(status["name"], "ui-test");
    let sink = processor(&status, "sink");
    assert_eq!(sink["type"], "UpdateAttribute");
    assert_eq!(sink["state"], "running");
    assert!(sink["flowfiles_in"].as_u64().unwrap() > 0);
    assert!(sink["bytes_in"].as_u64().unwrap() >= 16);
    for field in [
        "invocations",
        "active_tasks",
        "errors",
        "flowfiles_out",
        "bytes_out",
    ] {
        assert!(sink[field].is_u64(), "{field} in {sink}");
    }
    let gen_status = processor(&status, "gen");
    assert!(gen_status["counters"]["generated"].as_u64().unwrap() > 0);
    assert!(gen_status["rates"]["flowfiles_out"].as_f64().unwrap() > 0.0);
    let c = connection(&status, TAG_TO_SINK);
    assert_eq!(c["max_count"], 50);
    assert!(c["fill"].is_f64());
    assert_eq!(c["back_pressured"], false);
    assert!(c["queued_count"].is_u64() && c["queued_bytes"].is_u64());
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn stop_and_start_need_the_bearer_token() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    let running = || engine.node("sink").unwrap().is_running();
    for (what, req) in [
        ("no header", post("/api/processors/sink/stop", None)),
        (
            "wrong token",
            post("/api/processors/sink/stop", Some("nope")),
        ),
        (
            "a prefix of the token",
            post("/api/processors/sink/stop", Some(&TOKEN[..10])),
        ),
        (
            "token in the query",
            post(
                &format!("/api/processors/sink/stop?access_token={TOKEN}"),
                None,
            ),
        ),
        (
            "basic auth",
            axum::http::Request::post("/api/processors/sink/stop")
                .header("authorization", format!("Basic {TOKEN}"))
                .body(axum::body::Body::empty())
                .unwrap(),
        ),
        // Unknown ids are not revealed without the token.
        ("unknown id", post("/api/processors/nope/stop", None)),
    ] {
        let resp = call(&app, req).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer", "{what}");
        let b: Value = serde_json::from_slice(&body(resp).await).unwrap();
        assert!(
            b["error"].as_str().unwrap().contains("Bearer"),
            "{what}: {b}"
        );
        assert!(running(), "{what} stopped the processor");
    }
    let resp = call(&app, post("/api/processors/sink/stop", Some(TOKEN))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let b: Value = serde_json::from_slice(&body(resp).await).unwrap();
    assert_eq!(b["state"], "stopped");
    assert!(!running());
    let s = get_json(&app, "/api/status").await;
    assert_eq!(processor(&s, "sink")["state"], "stopped");
    let resp = call(&app, post("/api/processors/sink/start", Some(TOKEN))).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(running());
    let resp = call(&app, post("/api/processors/nope/stop", Some(TOKEN))).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    // Reads are open by default.
    assert_eq!(call(&app, get("/api/flow")).await.status(), StatusCode::OK);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn closed_reads_need_the_token_by_header_or_query() {
    let engine = start(FLOW).await;
    let app = router(state(&engine, false));
    for d in route_table() {
        let uri = d
            .path
            .replace("{id}", "sink")
            .replace("{*path}", "style.css");
        let req = match d.method {
            "GET" => get(&uri),
            _ => post(&uri, None),
        };
        let status = call(&app, req).await.status();
        match d.access {
            Access::Open => assert_eq!(status, StatusCode::OK, "{uri}"),
            Access::Read | Access::Write => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
            }
        }
    }
    let with_header = axum::http::Request::get("/api/status")
        .header("authorization", format!("Bearer {TOKEN}"))
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(call(&app, with_header).await.status(), StatusCode::OK);
    let q = format!("/api/flow?access_token={TOKEN}");
    assert_eq!(call(&app, get(&q)).await.status(), StatusCode::OK);
    let wrong = "/api/flow?access_token=wrong";
    assert_eq!(
        call(&app, get(wrong)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn queue_lists_the_first_flowfiles_with_attributes() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    call(&app, post("/api/processors/sink/stop", Some(TOKEN))).await;
    let uri = format!("/api/connections/{}/queue?limit=3", enc(TAG_TO_SINK));
    let listing = eventually(20, "three queued FlowFiles", || async {
        let l = get_json(&app, &uri).await;
        (l["flowfiles"].as_array().unwrap().len() == 3).then_some(l)
    })
    .await;
    assert_eq!(listing["connection"], TAG_TO_SINK);
    assert!(listing["queued_count"].as_u64().unwrap() >= 3);
    let ff = &listing["flowfiles"][0];
    assert_eq!(ff["size"], 16);
    assert!(ff["id"].as_u64().unwrap() > 0);
    assert!(ff["entry_date"].as_u64().unwrap() > 0);
    let attrs = &ff["attributes"];
    assert_eq!(attrs["label"], "<script>alert(1)</script>");
    assert_eq!(
        attrs["api_token"], "***",
        "credential-like names are masked"
    );
    // FIFO: the oldest first.
    let seq = |i: usize| {
        listing["flowfiles"][i]["attributes"]["seq"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
    };
    assert!(seq(0) < seq(1) && seq(1) < seq(2));

    let bad = call(
        &app,
        get(&format!(
            "/api/connections/{}/queue?limit=0",
            enc(TAG_TO_SINK)
        )),
    )
    .await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let b: Value = serde_json::from_slice(&body(bad).await).unwrap();
    assert!(b["error"].as_str().unwrap().contains("limit"), "{b}");
    let missing = call(&app, get("/api/connections/nope/queue")).await;
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn provenance_says_where_a_flowfile_went() {
    let engine = start(FLOW).await;
    let app = app(&engine);
    // FlowFile seq=2 of `gen` goes gen -> tag -> sink (auto-terminated).
    let trace = eventually(20, "seq 2 dropped at the sink", || async {
        let t = get_json(&app, "/api/provenance?attribute=seq&value=2").await;
        let done = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "DROP" && e["component"] == "sink");
        done.then_some(t)
    })
    .await;
    // The gen FlowFile (the vault's seq=2 is another one).
    let id = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["component"] == "sink")
        .unwrap()["flowfile"]
        .as_u64()
        .unwrap();
    assert!(
        trace["flowfiles"]
            .as_array()
            .unwrap()
            .contains(&Value::from(id))
    );
    let kinds: Vec<(String, String)> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["flowfile"] == id)
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["component"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let k = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        kinds,
        [
            k("CREATE", "gen"),
            k("ROUTE", "gen"),
            k("ROUTE", "tag"),
            k("DROP", "sink")
        ],
        "gen -> tag -> sink"
    );
    let seqs: Vec<u64> = trace["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "in order: {seqs:?}");

    // By id: the same story for that FlowFile alone.
    let by_id = get_json(&app, &format!("/api/provenance?flowfile={id}")).await;
    assert_eq!(by_id["flowfiles"], serde_json::json!([id]));
    assert_eq!(by_id["events"][0]["kind"], "CREATE");
    assert_eq!(
        by_id["events"].as_array().unwrap().last().unwrap()["kind"],
        "DROP"
    );

    for (uri, needle) in [
        ("/api/provenance?flowfile=abc", "flowfile"),
        ("/api/provenance", "flowfile=ID"),
        ("/api/provenance?attribute=seq", "value"),
    ] {
        let r = call(&app, get(uri)).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{uri}");
        let b: Value = serde_json::from_slice(&body(r).await).unwrap();
        assert!(b["error"].as_str().unwrap().contains(needle), "{uri}: {b}");
    }
    let none = get_json(&app, "/api/provenance?flowfile=999999999").await;
    assert_eq!(none["events"], serde_json::json!([]));
    engine.shutdown(Duration::from_secs(5)).await;
}

const FAN_OUT: &str = r"name: fan-out
processors:
  gen:
    type: TestSource
    properties: { count: 1 }
  left:
    type: UpdateAttribute
    auto_terminate: [success]
  right:
    type: UpdateAttribute
    auto_terminate: [success]
connections:
  - { from: gen, relationship: success, to: left }
  - { from: gen, relationship: success, to: right }
";

#[tokio::test]
async fn provenance_follows_the_copies_a_fan_out_makes() {
    let engine = start(FAN_OUT).await;
    let app = app(&engine);
    let trace = eventually(20, "both copies dropped", || async {
        let t = get_json(&app, "/api/provenance?attribute=seq&value=1").await;
        let drops = t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "DROP")
            .count();
        (drops == 2).then_some(t)
    })
    .await;
    let events = trace["events"].as_array().unwrap();
    let original = events[0]["flowfile"].as_u64().unwrap();
    assert_eq!(events[0]["kind"], "CREATE");
    let fork = events.iter().find(|e| e["kind"] == "FORK").unwrap();
    assert_eq!(fork["parents"], serde_json::json!([original]));
    let copy = fork["flowfile"].as_u64().unwrap();
    assert_ne!(copy, original);
    // Asked by the original's id alone, the lineage reaches both sinks.
    let by_id = get_json(&app, &format!("/api/provenance?flowfile={original}")).await;
    let mut dropped_at: Vec<&str> = by_id["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "DROP")
        .map(|e| e["component"].as_str().unwrap())
        .collect();
    dropped_at.sort_unstable();
    assert_eq!(dropped_at, ["left", "right"]);
    assert_eq!(by_id["flowfiles"].as_array().unwrap().len(), 2);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// A flow that settles: 30 FlowFiles, then nothing moves.
const COUNTED: &str = r"name: counted
processors:
  gen:
    type: TestSource
    properties: { count: 30, batch: 5 }
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
connections:
  - { from: gen, relationship: success, to: sink, back_pressure: { max_count: 10 } }
";

fn scrape(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

fn sample(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let found: Vec<_> = s
        .samples
        .iter()
        .filter(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .collect();
    assert_eq!(found.len(), 1, "{name}{labels:?}: {found:?}");
    match found[0].value {
        prometheus_parse::Value::Counter(v)
        | prometheus_parse::Value::Gauge(v)
        | prometheus_parse::Value::Untyped(v) => v,
        ref other => panic!("{name}: {other:?}"),
    }
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_stable_names() {
    let engine = start(COUNTED).await;
    let app = app(&engine);
    call(&app, post("/api/processors/sink/stop", Some(TOKEN))).await;
    eventually(20, "the connection to back-pressure", || async {
        engine.status().connections[0].back_pressured.then_some(())
    })
    .await;
    let resp = call(&app, get("/metrics")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = String::from_utf8(body(resp).await.to_vec()).unwrap();
    // Every sample line has a HELP and a TYPE line before it, once per family.
    let mut helped = BTreeSet::new();
    let mut typed = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(
                helped.insert(rest.split(' ').next().unwrap().to_string()),
                "{line}"
            );
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            assert!(matches!(parts.next(), Some("counter" | "gauge")), "{line}");
            assert!(typed.insert(name), "{line}");
        } else {
            let name = line.split(['{', ' ']).next().unwrap();
            assert!(helped.contains(name) && typed.contains(name), "{line}");
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }
    let s = scrape(&text);
    assert!(s.docs.contains_key("sluice_processor_flowfiles_in_total"));
    let c = [
        ("connection", "gen.success->sink"),
        ("from", "gen"),
        ("to", "sink"),
    ];
    assert_eq!(sample(&s, "sluice_connection_back_pressured", &c), 1.0);
    let status = engine.status();
    let queued = status.connections[0].queued_count;
    #[allow(clippy::cast_precision_loss)]
    let queued_f = queued as f64;
    assert!(queued >= 10);
    assert_eq!(sample(&s, "sluice_connection_queued", &c), queued_f);
    assert_eq!(sample(&s, "sluice_connection_max_count", &c), 10.0);
    assert!(sample(&s, "sluice_connection_fill_ratio", &c) >= 1.0);
    let g = [("processor", "gen"), ("type", "TestSource")];
    assert_eq!(sample(&s, "sluice_processor_back_pressured", &g), 1.0);
    assert_eq!(
        sample(&s, "sluice_processor_running", &[("processor", "sink")]),
        0.0
    );
    assert_eq!(
        sample(
            &s,
            "sluice_processor_counter_total",
            &[("processor", "gen"), ("name", "generated")]
        ),
        queued_f
    );
    assert_eq!(
        sample(
            &s,
            "sluice_connection_dropped_total",
            &[("connection", "gen.success->sink"), ("reason", "overflow")]
        ),
        0.0
    );

    // Drain: every counter settles at 30.
    call(&app, post("/api/processors/sink/start", Some(TOKEN))).await;
    eventually(20, "all 30 through the sink", || async {
        (engine.status().processors[1].flowfiles_in == 30).then_some(())
    })
    .await;
    let s = scrape(&get_text(&app, "/metrics").await);
    let k = [("processor", "sink"), ("type", "UpdateAttribute")];
    assert_eq!(sample(&s, "sluice_processor_flowfiles_in_total", &k), 30.0);
    assert_eq!(
        sample(&s, "sluice_processor_bytes_in_total", &k),
        30.0 * 16.0
    );
    assert_eq!(
        sample(&s, "sluice_processor_flowfiles_dropped_total", &k),
        30.0
    );
    assert_eq!(
        sample(&s, "sluice_processor_flowfiles_created_total", &g),
        30.0
    );
    assert_eq!(sample(&s, "sluice_processor_flowfiles_out_total", &g), 30.0);
    assert_eq!(
        sample(
            &s,
            "sluice_processor_counter_total",
            &[("processor", "gen"), ("name", "generated")]
        ),
        30.0
    );
    assert_eq!(sample(&s, "sluice_connection_queued", &c), 0.0);
    assert_eq!(sample(&s, "sluice_connection_back_pressured", &c), 0.0);
    assert_eq!(sample(&s, "sluice_connection_enqueued_total", &c), 30.0);
    assert_eq!(sample(&s, "sluice_connection_dequeued_total", &c), 30.0);
    assert_eq!(sample(&s, "sluice_flow_info", &[("flow", "counted")]), 1.0);
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Reads server-sent events from a body stream.
struct Events<S> {
    stream: S,
    buf: String,
}

impl<S, E> Events<S>
where
    S: futures::Stream<Item = Result<axum::body::Bytes, E>> + Unpin,
    E: std::fmt::Debug,
{
    /// The next (event name, JSON data), waiting at most 10 s.
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(n) = line.strip_prefix("event: ") {
                        name = n.to_string();
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data.push_str(d);
                    }
                }
                if data.is_empty() {
                    continue; // keep-alive comment
                }
                return (name, serde_json::from_str(&data).unwrap());
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("the stream is open")
                .unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Skips events until `pred` accepts one (at most 30 events).
    async fn until(&mut self, what: &str, pred: impl Fn(&str, &Value) -> bool) -> Value {
        for _ in 0..30 {
            let (name, data) = self.next().await;
            if pred(&name, &data) {
                return data;
            }
        }
        panic!("no {what} event");
    }
}

const ALARMED: &str = r#"name: alarmed
processors:
  gen:
    type: TestSource
    properties: { batch: 5 }
    scheduling: { run_schedule: 20ms }
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
  alarm:
    type: TestAlarm
    properties: { message: "cannot reach the <b>server</b>" }
    auto_terminate: [success]
    scheduling: { yield: 300ms }
connections:
  - { from: gen, relationship: success, to: sink }
"#;

#[tokio::test]
async fn events_stream_status_deltas_and_bulletins() {
    let engine = start(ALARMED).await;
    let app = app(&engine);
    let resp = call(&app, get("/api/events")).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut ev = Events {
        stream: resp.into_body().into_data_stream(),
        buf: String::new(),
    };
    let (name, first) = ev.next().await;
    assert_eq!(name, "status");
    assert_eq!(first["processors"].as_array().unwrap().len(), 3);
    assert_eq!(first["connections"][0]["id"], "gen.success->sink");
    let first_in = processor(&first, "sink")["flowfiles_in"].as_u64().unwrap();

    // A delta carries the sink's rising count (and only changed entries).
    let delta = ev
        .until("delta with the sink", |n, d| {
            n == "delta"
                && d["processors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|p| p["id"] == "sink" && p["flowfiles_in"].as_u64().unwrap() > first_in)
        })
        .await;
    assert!(delta["uptime_ms"].as_u64().unwrap() > 0);
    let sink = processor(&delta, "sink");
    assert!(
        sink["rates"]["flowfiles_in"].as_f64().unwrap() > 0.0,
        "{sink}"
    );

    // The alarm's failures arrive as bulletins.
    let b = ev
        .until("error bulletin", |n, d| {
            n == "bulletin" && d["processor"] == "alarm"
        })
        .await;
    assert_eq!(b["level"], "error");
    assert_eq!(b["message"], "cannot reach the <b>server</b>");

    // An operator stop: a bulletin, then the state in a delta.
    call(&app, post("/api/processors/sink/stop", Some(TOKEN))).await;
    ev.until("stop bulletin", |n, d| {
        n == "bulletin" && d["processor"] == "sink" && d["message"] == "stopped by operator"
    })
    .await;
    ev.until("stopped state", |n, d| {
        n == "delta"
            && d["processors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["id"] == "sink" && p["state"] == "stopped")
    })
    .await;
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn a_reload_is_announced_and_redaction_follows_the_new_flow() {
    let engine = start(ALARMED).await;
    let app = app(&engine);
    let resp = call(&app, get("/api/events")).await;
    let mut ev = Events {
        stream: resp.into_body().into_data_stream(),
        buf: String::new(),
    };
    assert_eq!(ev.next().await.0, "status");
    // The new flow adds a source whose literal password leaks into a bulletin.
    let reloaded = ALARMED.replace(
        "connections:",
        "  vault:\n    type: TestSource\n    properties: { count: 1, password: hunter2-literal-secret, leak: true }\n    auto_terminate: [success]\nconnections:",
    );
    engine.reload(spec(&reloaded)).await.unwrap();
    ev.until("flow", |n, _| n == "flow").await;
    let whole = ev.until("status", |n, _| n == "status").await;
    assert!(
        whole["processors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["id"] == "vault")
    );
    let flow = get_text(&app, "/api/flow").await;
    assert!(flow.contains("\"vault\""), "{flow}");
    let status = get_text(&app, "/api/status").await;
    assert!(status.contains("with password ***"), "{status}");
    assert!(!status.contains(LITERAL_SECRET) && !flow.contains(LITERAL_SECRET));
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn openapi_document_lists_every_route() {
    let engine = start(COUNTED).await;
    let app = app(&engine);
    let doc = get_json(&app, "/api/openapi.json").await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = BTreeSet::new();
    for (path, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let mut routed = BTreeSet::new();
    for d in route_table() {
        let path = d.path.replace("{*", "{");
        let op = &doc["paths"][&path][d.method.to_lowercase()];
        assert!(
            op.is_object(),
            "{} {} is not in the OpenAPI document",
            d.method,
            path
        );
        assert!(
            op["responses"]["200"].is_object(),
            "{} {path}: no 200",
            d.method
        );
        let security = &op["security"];
        match d.access {
            Access::Open => assert_eq!(security, &serde_json::json!([]), "{path}"),
            Access::Read => {
                let s = security.as_array().unwrap();
                assert!(
                    s.contains(&serde_json::json!({}))
                        && s.contains(&serde_json::json!({"bearer": []})),
                    "{path}"
                );
                assert!(op["responses"]["401"].is_object(), "{path}");
            }
            Access::Write => {
                assert_eq!(security, &serde_json::json!([{"bearer": []}]), "{path}");
                assert!(op["responses"]["401"].is_object(), "{path}");
            }
        }
        routed.insert((d.method.to_string(), path));
    }
    assert_eq!(
        documented, routed,
        "the document lists a route the router does not have"
    );
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", part.split('"').next().unwrap());
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn health_page_and_assets() {
    let engine = start(COUNTED).await;
    let app = app(&engine);
    let h = get_json(&app, "/healthz").await;
    assert_eq!(h["status"], "ok");
    assert_eq!(h["flow"], "counted");
    let page = call(&app, get("/")).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(
        page.headers()[header::CONTENT_TYPE],
        "text/html; charset=utf-8"
    );
    let csp = page.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    let html = String::from_utf8(body(page).await.to_vec()).unwrap();
    assert!(html.contains("/assets/vendor/dagre.min.js"));
    for asset in [
        "app.js",
        "graph.js",
        "panel.js",
        "api.js",
        "dom.js",
        "style.css",
        "vendor/dagre.min.js",
        "vendor/dagre.LICENSE",
    ] {
        let r = call(&app, get(&format!("/assets/{asset}"))).await;
        assert_eq!(r.status(), StatusCode::OK, "{asset}");
        assert!(!body(r).await.is_empty(), "{asset}");
    }
    let js = call(&app, get("/assets/app.js")).await;
    assert_eq!(
        js.headers()[header::CONTENT_TYPE],
        "text/javascript; charset=utf-8"
    );
    assert_eq!(
        call(&app, get("/assets/nope.js")).await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        call(&app, get("/nope")).await.status(),
        StatusCode::NOT_FOUND
    );
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test]
async fn serve_binds_port_zero_and_stops_on_shutdown() {
    let engine = start(COUNTED).await;
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
    assert!(addr.ip().is_loopback());
    assert_ne!(addr.port(), 0);
    let http = reqwest::Client::new();
    let base = format!("http://{addr}");
    let h: Value = http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(h["status"], "ok");
    let denied = http
        .post(format!("{base}/api/processors/sink/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), reqwest::StatusCode::UNAUTHORIZED);
    let ok = http
        .post(format!("{base}/api/processors/sink/stop"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), reqwest::StatusCode::OK);
    assert!(!engine.node("sink").unwrap().is_running());

    // The same address cannot be bound twice: a typed error naming it.
    let again = UiConfig {
        address: addr,
        token: Some(TOKEN.into()),
        open_reads: true,
    };
    let err = serve(engine.clone(), again, std::future::pending())
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&addr.to_string()), "{err}");
    let empty = UiConfig {
        address: "127.0.0.1:0".parse().unwrap(),
        token: Some(String::new()),
        open_reads: true,
    };
    assert!(
        serve(engine.clone(), empty, std::future::pending())
            .await
            .is_err()
    );

    // An open event stream does not keep the server from stopping.
    let mut events = http.get(format!("{base}/api/events")).send().await.unwrap();
    assert!(events.chunk().await.unwrap().is_some());
    stop_tx.send(()).unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while events.chunk().await.ok().flatten().is_some() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream did not end on shutdown");
    eventually(10, "the server to stop accepting", || async {
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .is_err()
            .then_some(())
    })
    .await;
    engine.shutdown(Duration::from_secs(5)).await;
}
