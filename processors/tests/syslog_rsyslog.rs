//! A real rsyslogd forwarding to ListenSyslog with `omfwd` over TCP,
//! octet-counted, with the RFC 5424 template (`RSYSLOG_SyslogProtocol23Format`,
//! whose trailing LF is inside the octet count). Known messages go into
//! rsyslog's TCP input (and `logger` into its UDP input); every field of what
//! comes out is checked. Needs `scripts/install-test-deps.sh`.
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failing test

mod syslog_common;

use sluice_runtime::testing::TestRunner;
use sluice_testkit::{LoggerTransport, Rsyslog, SyslogFormat, SyslogForward, logger};
use syslog_common::{attrs, collect, hostname, listen, map, sender};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn rsyslog_omfwd_tcp_octet_counted_rfc5424() {
    let (r, addr) = listen("protocol: tcp\ntimezone: UTC").await;
    let rsyslog = Rsyslog::start(SyslogForward::tcp_5424(addr))
        .await
        .expect("rsyslogd starts (scripts/install-test-deps.sh)");
    let mut input = tokio::net::TcpStream::connect(rsyslog.tcp_input)
        .await
        .unwrap();
    let lines = [
        "<165>1 2026-03-10T22:14:15.003Z web01 nginx 811 ACCESS [req@32473 id=\"7\" path=\"/a b\"] GET /index.html 200",
        "<11>Mar 10 22:14:16 db01 postgres[99]: connection refused for user \"app\"",
        "<4>1 2026-03-10T22:14:17.250+02:00 fw01 kernel - - - DROP IN=eth0 SRC=10.0.0.9",
    ];
    for l in lines {
        input.write_all(format!("{l}\n").as_bytes()).await.unwrap();
    }
    input.flush().await.unwrap();
    let (ok, bad) = collect(&r, lines.len()).await;
    assert!(bad.is_empty(), "{bad:?}\n{}", rsyslog.internal_log());
    let tcp = sender(addr, "tcp");
    let with = |pairs: &[(&str, &str)]| {
        let mut m = tcp.clone();
        m.extend(map(pairs));
        m
    };
    assert_eq!(
        attrs(&ok[0]),
        with(&[
            ("syslog.priority", "165"),
            ("syslog.severity", "5"),
            ("syslog.severity.name", "notice"),
            ("syslog.facility", "20"),
            ("syslog.facility.name", "local4"),
            ("syslog.version", "1"),
            ("syslog.timestamp", "2026-03-10T22:14:15.003Z"),
            ("syslog.hostname", "web01"),
            ("syslog.appname", "nginx"),
            ("syslog.procid", "811"),
            ("syslog.msgid", "ACCESS"),
            ("syslog.sd.req@32473.id", "7"),
            ("syslog.sd.req@32473.path", "/a b"),
        ])
    );
    assert_eq!(TestRunner::text(&ok[0]), "GET /index.html 200");
    assert_eq!(
        attrs(&ok[1]),
        with(&[
            ("syslog.priority", "11"),
            ("syslog.severity", "3"),
            ("syslog.severity.name", "err"),
            ("syslog.facility", "1"),
            ("syslog.facility.name", "user"),
            ("syslog.version", "1"),
            ("syslog.timestamp", "2026-03-10T22:14:16Z"),
            ("syslog.hostname", "db01"),
            ("syslog.appname", "postgres"),
            ("syslog.procid", "99"),
        ])
    );
    assert_eq!(
        TestRunner::text(&ok[1]),
        "connection refused for user \"app\""
    );
    assert_eq!(
        attrs(&ok[2]),
        with(&[
            ("syslog.priority", "4"),
            ("syslog.severity", "4"),
            ("syslog.severity.name", "warning"),
            ("syslog.facility", "0"),
            ("syslog.facility.name", "kern"),
            ("syslog.version", "1"),
            ("syslog.timestamp", "2026-03-10T22:14:17.250+02:00"),
            ("syslog.hostname", "fw01"),
            ("syslog.appname", "kernel"),
        ])
    );
    assert_eq!(TestRunner::text(&ok[2]), "DROP IN=eth0 SRC=10.0.0.9");

    // logger into rsyslog's UDP input, forwarded the same way.
    logger(
        rsyslog.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc3164,
        "backup",
        "done: 12 GB",
    )
    .unwrap();
    let (ok, bad) = collect(&r, 1).await;
    assert!(bad.is_empty());
    let mut got = attrs(&ok[0]);
    syslog_common::assert_recent(&got.remove("syslog.timestamp").unwrap());
    assert_eq!(
        got,
        with(&[
            ("syslog.priority", "13"),
            ("syslog.severity", "5"),
            ("syslog.severity.name", "notice"),
            ("syslog.facility", "1"),
            ("syslog.facility.name", "user"),
            ("syslog.version", "1"),
            ("syslog.hostname", &hostname()),
            ("syslog.appname", "backup"),
        ])
    );
    assert_eq!(TestRunner::text(&ok[0]), "done: 12 GB");
}
