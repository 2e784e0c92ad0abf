//! util-linux `logger` sending to ListenSyslog over UDP, TCP and TCP with
//! octet counting, in RFC 3164 and RFC 5424. Needs `scripts/install-test-deps.sh`.
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failing test

mod syslog_common;

use sluice_runtime::testing::TestRunner;
use sluice_testkit::{LoggerTransport, SyslogFormat, logger};
use syslog_common::{assert_recent, attrs, collect, hostname, listen, map, sender};

async fn one_way(protocol: &str, transport: LoggerTransport) {
    let (r, addr) = listen(&format!("protocol: {protocol}")).await;
    let cases = [
        (
            SyslogFormat::Rfc5424,
            "billing",
            "invoice 1234 paid: 99.50 EUR",
        ),
        (SyslogFormat::Rfc3164, "cron", "job backup finished in 12s"),
    ];
    for (format, tag, text) in cases {
        logger(addr, transport, format, tag, text).expect("logger runs");
    }
    let (ok, bad) = collect(&r, cases.len()).await;
    assert!(bad.is_empty(), "{bad:?}");
    for (ff, (format, tag, text)) in ok.iter().zip(cases) {
        let mut got = attrs(ff);
        let ts = got.remove("syslog.timestamp").expect("timestamp");
        assert_recent(&ts);
        let mut want = sender(addr, protocol);
        want.extend(map(&[
            ("syslog.priority", "13"),
            ("syslog.severity", "5"),
            ("syslog.severity.name", "notice"),
            ("syslog.facility", "1"),
            ("syslog.facility.name", "user"),
            ("syslog.hostname", &hostname()),
            ("syslog.appname", tag),
        ]));
        if format == SyslogFormat::Rfc5424 {
            // logger adds its time-quality element and no PID.
            let tq = got.remove("syslog.sd.timeQuality.isSynced");
            assert!(matches!(tq.as_deref(), Some("0" | "1")), "{tq:?}");
            got.remove("syslog.sd.timeQuality.syncAccuracy");
            want.extend(map(&[
                ("syslog.version", "1"),
                ("syslog.sd.timeQuality.tzKnown", "1"),
            ]));
        }
        assert_eq!(got, want, "{format:?}");
        assert_eq!(TestRunner::text(ff), text);
    }
}

#[tokio::test]
async fn logger_over_udp() {
    one_way("udp", LoggerTransport::Udp).await;
}

#[tokio::test]
async fn logger_over_tcp() {
    one_way("tcp", LoggerTransport::Tcp).await;
}

#[tokio::test]
async fn logger_over_tcp_with_octet_counting() {
    one_way("tcp", LoggerTransport::TcpOctetCount).await;
}
