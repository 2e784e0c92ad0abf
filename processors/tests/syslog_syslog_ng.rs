//! A real syslog-ng forwarding to ListenSyslog: RFC 5424 over TCP with octet
//! counting (`syslog(transport("tcp"))`) and RFC 3164 over TCP with LF
//! framing (`network()`). Known messages go into syslog-ng's TCP input;
//! every field of what comes out is checked. Needs
//! `scripts/install-test-deps.sh` (syslog-ng is unpacked into the cache).
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failing test

mod syslog_common;

use std::collections::BTreeMap;

use sluice_runtime::testing::TestRunner;
use sluice_testkit::{SyslogForward, SyslogNg};
use syslog_common::{attrs, collect, listen, map, sender};
use tokio::io::AsyncWriteExt;

// syslog-ng's `network()` source reads RFC 3164, so that is what goes in;
// what comes out is RFC 5424 or RFC 3164 by the destination.
const LINES: [&str; 2] = [
    "<165>Mar 10 22:14:15 web01 nginx[811]: GET /index.html 200",
    "<11>Mar 10 22:14:16 db01 postgres[99]: connection refused",
];

async fn forward(
    forward: impl Fn(std::net::SocketAddr) -> SyslogForward,
) -> (
    Vec<BTreeMap<String, String>>,
    Vec<String>,
    std::net::SocketAddr,
) {
    let (r, addr) = listen("protocol: tcp\ntimezone: UTC").await;
    let ng = SyslogNg::start(forward(addr))
        .await
        .expect("syslog-ng starts (scripts/install-test-deps.sh)");
    let mut input = tokio::net::TcpStream::connect(ng.tcp_input).await.unwrap();
    for l in LINES {
        input.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    input.flush().await.unwrap();
    let (ok, bad) = collect(&r, LINES.len()).await;
    assert!(bad.is_empty(), "{bad:?}\n{}", ng.internal_log());
    (
        ok.iter().map(attrs).collect(),
        ok.iter().map(TestRunner::text).collect(),
        addr,
    )
}

fn expected(addr: std::net::SocketAddr, rfc5424: bool) -> Vec<BTreeMap<String, String>> {
    let fields: [&[(&str, &str)]; 2] = [
        &[
            ("syslog.priority", "165"),
            ("syslog.severity", "5"),
            ("syslog.severity.name", "notice"),
            ("syslog.facility", "20"),
            ("syslog.facility.name", "local4"),
            ("syslog.timestamp", "2026-03-10T22:14:15Z"),
            ("syslog.hostname", "web01"),
            ("syslog.appname", "nginx"),
            ("syslog.procid", "811"),
        ],
        &[
            ("syslog.priority", "11"),
            ("syslog.severity", "3"),
            ("syslog.severity.name", "err"),
            ("syslog.facility", "1"),
            ("syslog.facility.name", "user"),
            ("syslog.timestamp", "2026-03-10T22:14:16Z"),
            ("syslog.hostname", "db01"),
            ("syslog.appname", "postgres"),
            ("syslog.procid", "99"),
        ],
    ];
    fields
        .iter()
        .map(|f| {
            let mut m = sender(addr, "tcp");
            m.extend(map(f));
            if rfc5424 {
                m.insert("syslog.version".into(), "1".into());
            }
            m
        })
        .collect()
}

#[tokio::test]
async fn syslog_ng_rfc5424_octet_counted() {
    let (got, bodies, addr) = forward(SyslogForward::tcp_5424).await;
    assert_eq!(got, expected(addr, true));
    assert_eq!(bodies, ["GET /index.html 200", "connection refused"]);
}

#[tokio::test]
async fn syslog_ng_rfc3164_lf_framed() {
    let (got, bodies, addr) = forward(SyslogForward::tcp_3164).await;
    assert_eq!(got, expected(addr, false));
    assert_eq!(bodies, ["GET /index.html 200", "connection refused"]);
}
