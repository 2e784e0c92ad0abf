//! PutS3Object against a real S3 API: moto_server (testkit's `S3Server`) on
//! loopback. One test points the sink at testkit's `HttpReceiver` instead, to
//! see which credentials the AWS chain signed with (moto accepts any).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{down_then_back, fault_flow, runner, sent_to, start_flow};
use sluice_testkit::{HttpReceiver, S3Server};

fn props(s3: &S3Server, extra: &str) -> String {
    format!(
        "endpoint_url: {}\npath_style: true\nregion: {}\naccess_key_id: {}\nsecret_access_key: {}\n{extra}",
        s3.endpoint, s3.region, s3.access_key, s3.secret_key
    )
}

async fn keys(c: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token = None;
    loop {
        let Ok(page) = c
            .list_objects_v2()
            .bucket(bucket)
            .set_continuation_token(token.clone())
            .send()
            .await
        else {
            return out;
        };
        out.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return out;
        }
    }
}

async fn body(c: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = c.get_object().bucket(bucket).key(key).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
async fn stores_objects_with_templated_keys_content_type_and_metadata() {
    let s3 = S3Server::start().await.unwrap();
    let c = s3.client();
    c.create_bucket().bucket("archive").send().await.unwrap();
    let r = runner(
        "PutS3Object",
        &props(
            &s3,
            "bucket: \"{{target}}\"\nkey: \"/{{host}}/{{filename}}\"\ncontent_type: \"text/plain; charset=utf-8\"\nmetadata_attributes: [host]\nmetadata_prefix: \"s3.meta.\"\n",
        ),
    );
    r.schedule().await.unwrap();
    r.enqueue(
        "disk full on /var\n",
        &[
            ("target", "archive"),
            ("host", "db1"),
            ("filename", "x.log"),
            ("s3.meta.owner", "ops"),
        ],
    );
    r.run_once().await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 1, "failures: {:?}", r.take("failure"));
    assert_eq!(ok[0].attr("s3.bucket"), Some("archive"));
    assert_eq!(ok[0].attr("s3.key"), Some("db1/x.log"));
    assert!(ok[0].attr("s3.etag").is_some_and(|e| !e.is_empty()));
    assert_eq!(
        sent_to(&r, &ok[0]),
        vec!["s3://archive/db1/x.log".to_string()]
    );
    assert_eq!(
        body(&c, "archive", "db1/x.log").await,
        b"disk full on /var\n"
    );
    let head = c
        .head_object()
        .bucket("archive")
        .key("db1/x.log")
        .send()
        .await
        .unwrap();
    assert_eq!(head.content_type(), Some("text/plain; charset=utf-8"));
    let meta = head.metadata().unwrap();
    assert_eq!(meta.get("host").map(String::as_str), Some("db1"));
    assert_eq!(meta.get("owner").map(String::as_str), Some("ops"));
    assert_eq!(meta.len(), 2, "{meta:?}");
}

#[tokio::test]
async fn content_above_the_threshold_goes_in_parts() {
    let s3 = S3Server::start().await.unwrap();
    let c = s3.client();
    c.create_bucket().bucket("big").send().await.unwrap();
    let r = runner(
        "PutS3Object",
        &props(
            &s3,
            "bucket: big\nkey: \"{{name}}\"\nmultipart_threshold: 6 MiB\nmultipart_part_size: 5 MiB\n",
        ),
    );
    r.schedule().await.unwrap();
    let content: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    r.enqueue(content.clone(), &[("name", "blob.bin")]);
    r.enqueue("small", &[("name", "small.txt")]);
    r.run_until_idle(10).await.unwrap();
    let ok = r.take("success");
    assert_eq!(ok.len(), 2, "failures: {:?}", r.take("failure"));
    assert_eq!(ok[0].attr("s3.parts"), Some("3"), "5 + 5 + 2 MiB");
    assert_eq!(ok[1].attr("s3.parts"), None, "small content in one PUT");
    assert!(
        body(&c, "big", "blob.bin").await == content,
        "parts joined in order"
    );
    assert_eq!(body(&c, "big", "small.txt").await, b"small");
    let pending = c
        .list_multipart_uploads()
        .bucket("big")
        .send()
        .await
        .unwrap();
    assert!(pending.uploads().is_empty(), "no unfinished uploads left");
}

#[tokio::test]
async fn a_missing_bucket_goes_to_failure() {
    let s3 = S3Server::start().await.unwrap();
    let r = runner("PutS3Object", &props(&s3, "bucket: nowhere\nkey: k\n"));
    r.schedule().await.unwrap();
    r.enqueue("x", &[]);
    r.run_once().await.unwrap();
    let failed = r.take("failure");
    assert_eq!(failed.len(), 1);
    let why = failed[0].attr("put.error").unwrap();
    assert!(why.contains("404") && why.contains("NoSuchBucket"), "{why}");
    assert!(!why.contains(&s3.secret_key), "{why}");
}

/// Credentials from the AWS chain (here: the environment). Runs itself again
/// as a child process with `AWS_*` set, since the environment of this one
/// must not be changed under other tests.
#[tokio::test]
async fn credentials_from_the_aws_chain() {
    if std::env::var_os("SLUICE_S3_CHAIN_CHILD").is_some() {
        let rx = HttpReceiver::start().await.unwrap();
        let r = runner(
            "PutS3Object",
            &format!(
                "endpoint_url: {}\npath_style: true\nbucket: b\nkey: k\n",
                rx.url()
            ),
        );
        r.schedule().await.unwrap();
        r.enqueue("x", &[]);
        r.run_once().await.unwrap();
        assert_eq!(r.take("success").len(), 1, "{:?}", r.take("failure"));
        let reqs = rx.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].method, "PUT");
        assert_eq!(reqs[0].path, "/b/k");
        let auth = reqs[0].header("authorization").unwrap();
        assert!(
            auth.contains("Credential=AKIDCHAINTEST/") && auth.contains("/eu-north-1/s3/"),
            "signed with the environment's key and region: {auth}"
        );
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "credentials_from_the_aws_chain", "--nocapture"])
        .env("SLUICE_S3_CHAIN_CHILD", "1")
        .env("AWS_ACCESS_KEY_ID", "AKIDCHAINTEST")
        .env("AWS_SECRET_ACCESS_KEY", "chain-secret")
        .env("AWS_REGION", "eu-north-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_CONFIG_FILE", "/nonexistent/sluice-test/config")
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            "/nonexistent/sluice-test/credentials",
        )
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(text.contains("1 passed"), "the child ran the test:\n{text}");
}

/// The store is down: the queue fills, the source is held back; the store
/// returns (moto restarts empty, so the bucket is created again while the
/// sink is paused) and every object arrives.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_down_back_pressures_the_source_then_everything_arrives() {
    let mut s3 = S3Server::start().await.unwrap();
    s3.stop();
    let total = 30;
    let sink = format!(
        "  sink:
    type: PutS3Object
    properties:
      endpoint_url: {}
      path_style: true
      region: {}
      access_key_id: {}
      secret_access_key: {}
      bucket: alerts
      key: \"{{{{filename}}}}\"
      connect_timeout: 2s
      backoff_initial: 50ms
      backoff_max: 200ms
    auto_terminate: [success, failure]",
        s3.endpoint, s3.region, s3.access_key, s3.secret_key
    );
    let engine = start_flow(&fault_flow(total, 5, &sink)).await;
    let c = s3.client();
    let count = || {
        let c = c.clone();
        async move { keys(&c, "alerts").await.len() }
    };
    down_then_back(&engine, total, 5, count, || async {
        // Pause the sink so it does not meet the restarted, still empty store.
        engine.set_running("sink", false);
        common::wait_for(
            &engine,
            "the sink to be idle",
            Duration::from_secs(30),
            || common::processor(&engine, "sink").active_tasks == 0,
        )
        .await;
        s3.start_again().await.unwrap();
        c.create_bucket().bucket("alerts").send().await.unwrap();
        engine.set_running("sink", true);
    })
    .await;
    let mut got = keys(&c, "alerts").await;
    got.sort();
    let expected: Vec<String> = (0..total).map(|n| format!("msg-{n:04}.txt")).collect();
    assert_eq!(got, expected);
    assert_eq!(body(&c, "alerts", "msg-0007.txt").await, b"message 0007\n");
    engine.shutdown(Duration::from_secs(5)).await;
}
