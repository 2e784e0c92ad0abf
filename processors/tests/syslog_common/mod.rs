//! Shared by the syslog integration tests: a ListenSyslog under test on a
//! free loopback port, and collecting what it emits with a deadline.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sluice_runtime::testing::{TestRunner, props_from_yaml};
use sluice_runtime::{FlowFile, Scheduling};

/// How long a test waits for messages.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A ListenSyslog on 127.0.0.1 with `yaml` properties (without bind/port).
pub async fn listen(yaml: &str) -> (TestRunner, SocketAddr) {
    let port = sluice_testkit::free_port();
    let registry = sluice_processors::registry();
    let kind = registry.get("ListenSyslog").expect("registered").clone();
    let yaml = format!("bind: 127.0.0.1\nport: {port}\n{yaml}");
    let props = props_from_yaml(&*kind, &registry, &yaml).expect("valid properties");
    let r = TestRunner::with_properties(&*kind, props, Scheduling::default()).expect("builds");
    r.schedule().await.expect("listens");
    (r, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Triggers until `n` FlowFiles came out of `success` and `invalid`.
pub async fn collect(r: &TestRunner, n: usize) -> (Vec<FlowFile>, Vec<FlowFile>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    while ok.len() + bad.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived: {ok:?} {bad:?}",
            ok.len() + bad.len()
        );
        r.run_once().await.expect("trigger");
        ok.extend(r.take("success"));
        bad.extend(r.take("invalid"));
        if ok.len() + bad.len() < n {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    (ok, bad)
}

/// Every attribute of a FlowFile.
pub fn attrs(ff: &FlowFile) -> BTreeMap<String, String> {
    ff.attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A map from pairs.
pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

/// This machine's host name, as logger and the daemons write it.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("hostname")
        .trim()
        .to_string()
}

/// Asserts `ts` is an RFC 3339 time within two minutes of now.
pub fn assert_recent(ts: &str) {
    let t = chrono::DateTime::parse_from_rfc3339(ts).unwrap_or_else(|e| panic!("{ts}: {e}"));
    let age = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .abs();
    assert!(age < 120, "timestamp {ts} is {age}s away from now");
}

/// The attributes every message from the sender at 127.0.0.1 has.
pub fn sender(addr: SocketAddr, protocol: &str) -> BTreeMap<String, String> {
    map(&[
        ("syslog.sender", "127.0.0.1"),
        ("syslog.port", &addr.port().to_string()),
        ("syslog.protocol", protocol),
    ])
}
