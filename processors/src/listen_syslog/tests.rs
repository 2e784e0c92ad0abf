//! In-process clients over real loopback sockets. Real syslog daemons and
//! `logger` are in `processors/tests/syslog_*.rs`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;
use sluice_runtime::testing::{TestRunner, check_type_contract};
use sluice_runtime::{FlowFile, Scheduling};
use sluice_testkit::free_port;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

use super::*;
use crate::listen_syslog::framing::Decoder;

const DEADLINE: Duration = Duration::from_secs(20);

async fn listener(yaml: &str) -> (TestRunner, SocketAddr) {
    let port = free_port();
    let yaml = format!("bind: 127.0.0.1\nport: {port}\n{yaml}");
    let props = crate::test_props(&ListenSyslogType, &yaml);
    let r = TestRunner::with_properties(&ListenSyslogType, props, Scheduling::default()).unwrap();
    r.schedule().await.unwrap();
    (r, SocketAddr::from(([127, 0, 0, 1], port)))
}

/// Triggers until `n` FlowFiles came out (success + invalid) or the deadline.
async fn collect(r: &TestRunner, n: usize) -> (Vec<FlowFile>, Vec<FlowFile>) {
    let (mut ok, mut bad) = (Vec::new(), Vec::new());
    let deadline = Instant::now() + DEADLINE;
    while ok.len() + bad.len() < n {
        assert!(
            Instant::now() < deadline,
            "only {} of {n} messages arrived",
            ok.len() + bad.len()
        );
        r.run_once().await.unwrap();
        ok.extend(r.take(SUCCESS));
        bad.extend(r.take(INVALID));
        if ok.len() + bad.len() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    (ok, bad)
}

async fn wait_counter(r: &TestRunner, name: &str, want: u64) {
    let c = r.ctx.counter(name);
    let deadline = Instant::now() + DEADLINE;
    while c.load(Ordering::Relaxed) != want {
        assert!(
            Instant::now() < deadline,
            "counter {name} is {}, expected {want}",
            c.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn attrs(ff: &FlowFile) -> BTreeMap<String, String> {
    ff.attributes
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn raw(ff: &FlowFile) -> Bytes {
    match &ff.content {
        Content::Memory(b) => b.clone(),
        Content::Stored(s) => s.read().unwrap(),
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect()
}

#[test]
fn contract() {
    check_type_contract(&ListenSyslogType, &crate::registry()).unwrap();
}

#[test]
fn validation_names_each_problem() {
    let props = Properties::from_pairs(
        &[
            ("port", "514"),
            ("protocol", "tls"),
            ("timezone", "Mars/Olympus"),
            ("bind", "localhost"),
        ],
        PROPERTIES,
    );
    let errs: Vec<String> = ListenSyslogType
        .validate(&props)
        .iter()
        .map(ToString::to_string)
        .collect();
    let all = errs.join("\n");
    assert!(all.contains("property `bind`"), "{all}");
    assert!(all.contains("property `timezone`"), "{all}");
    assert!(
        all.contains("property `tls_certificate`: is required with protocol tls"),
        "{all}"
    );
    assert!(all.contains("property `tls_private_key`"), "{all}");
    let props = Properties::from_pairs(
        &[
            ("port", "514"),
            ("tls_client_ca", "ca.pem"),
            ("allowed_senders", "10.0.0.0/33"),
        ],
        PROPERTIES,
    );
    let all: Vec<String> = ListenSyslogType
        .validate(&props)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
}

#[tokio::test]
async fn tcp_mixed_framings_every_field_and_invalid() {
    let (r, addr) = listener("timezone: UTC").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let local = c.local_addr().unwrap();
    let m5424 = "<165>1 2026-03-10T22:14:15.003Z web01 nginx 811 ACCESS [req@32473 id=\"7\"] GET /index.html\n";
    let stream = format!(
        "{} {m5424}<11>Mar 10 22:14:16 db01 postgres[99]: connection refused\nthis is not syslog\n",
        m5424.len()
    );
    c.write_all(stream.as_bytes()).await.unwrap();
    let (ok, bad) = collect(&r, 3).await;
    let sender = [
        ("syslog.sender", "127.0.0.1"),
        ("syslog.port", &*addr.port().to_string()),
        ("syslog.protocol", "tcp"),
    ];
    let mut want = map(&sender);
    want.extend(map(&[
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
    ]));
    assert_eq!(ok.len(), 2, "{bad:?}");
    assert_eq!(attrs(&ok[0]), want);
    assert_eq!(TestRunner::text(&ok[0]), "GET /index.html");
    assert_eq!(ok[1].attr("syslog.hostname"), Some("db01"));
    assert_eq!(ok[1].attr("syslog.appname"), Some("postgres"));
    assert_eq!(ok[1].attr("syslog.severity.name"), Some("err"));
    assert_eq!(
        ok[1]
            .attr("syslog.timestamp")
            .map(|t| t.ends_with("-03-10T22:14:16Z")),
        Some(true)
    );
    assert_eq!(TestRunner::text(&ok[1]), "connection refused");
    let mut want = map(&sender);
    want.insert(
        "syslog.error".into(),
        "not an RFC 5424 or RFC 3164 syslog message".into(),
    );
    assert_eq!(attrs(&bad[0]), want);
    assert_eq!(TestRunner::text(&bad[0]), "this is not syslog");
    // Provenance names the connection.
    let events = r.provenance.lineage(ok[0].id);
    assert!(
        events.iter().any(|e| e.details == format!("tcp://{local}")),
        "{events:?}"
    );
}

#[tokio::test]
async fn udp_datagrams_are_messages() {
    let (r, addr) = listener("protocol: udp\ntimezone: UTC").await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(b"<14>1 2026-03-10T10:00:00Z h1 app - - - one\n", addr)
        .await
        .unwrap();
    c.send_to(b"<30>Mar 10 10:00:01 h2 ntpd[5]: two", addr)
        .await
        .unwrap();
    c.send_to(b"\xff\xfe garbage", addr).await.unwrap();
    let (ok, bad) = collect(&r, 3).await;
    assert_eq!(TestRunner::text(&ok[0]), "one");
    assert_eq!(ok[0].attr("syslog.protocol"), Some("udp"));
    assert_eq!(ok[0].attr("syslog.sender"), Some("127.0.0.1"));
    assert_eq!(ok[0].attr("syslog.port"), Some(&*addr.port().to_string()));
    assert_eq!(ok[1].attr("syslog.appname"), Some("ntpd"));
    assert_eq!(TestRunner::text(&ok[1]), "two");
    assert_eq!(bad.len(), 1);
    assert_eq!(raw(&bad[0]), b"\xff\xfe garbage".as_slice());
    assert_eq!(bad[0].attr("syslog.sender"), Some("127.0.0.1"));
}

#[tokio::test]
async fn parse_false_forwards_raw_messages_with_sender_attributes() {
    let (r, addr) = listener("protocol: tcp\nparse: false").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"<11>1 2026-03-10T10:00:00Z h1 app - - - one\n\xff\xfe not syslog\n")
        .await
        .unwrap();
    let (ok, bad) = collect(&r, 2).await;
    assert!(bad.is_empty(), "nothing is invalid when not parsing");
    assert_eq!(
        raw(&ok[0]),
        b"<11>1 2026-03-10T10:00:00Z h1 app - - - one".as_slice()
    );
    assert_eq!(raw(&ok[1]), b"\xff\xfe not syslog".as_slice());
    assert_eq!(ok[0].attr("syslog.sender"), Some("127.0.0.1"));
    assert_eq!(ok[0].attr("syslog.protocol"), Some("tcp"));
    assert_eq!(ok[0].attr("syslog.severity"), None);
}

#[tokio::test]
async fn oversize_truncated_is_marked_and_counted() {
    let (r, addr) = listener("max_message_size: 64\ntimezone: UTC").await;
    let long = format!("<13>Mar 10 10:00:00 h app: {}", "x".repeat(200));
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(format!("{long}\n<13>Mar 10 10:00:00 h app: short\n").as_bytes())
        .await
        .unwrap();
    let (ok, bad) = collect(&r, 2).await;
    assert!(bad.is_empty());
    assert_eq!(ok[0].attr("syslog.truncated"), Some("true"));
    assert_eq!(
        ok[0].attr("syslog.original.size"),
        Some(&*long.len().to_string())
    );
    assert_eq!(TestRunner::text(&ok[0]), "x".repeat(64 - 27));
    assert_eq!(ok[1].attr("syslog.truncated"), None);
    assert_eq!(
        r.ctx.counter("oversize.truncated").load(Ordering::Relaxed),
        1
    );
}

#[tokio::test]
async fn oversize_invalid_goes_whole_to_invalid() {
    let (r, addr) = listener("protocol: udp\nmax_message_size: 64\noversize: invalid").await;
    let long = format!("<13>Mar 10 10:00:00 h app: {}", "y".repeat(200));
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(long.as_bytes(), addr).await.unwrap();
    let (ok, bad) = collect(&r, 1).await;
    assert!(ok.is_empty());
    assert_eq!(TestRunner::text(&bad[0]), long);
    assert_eq!(
        bad[0].attr("syslog.error"),
        Some(&*format!(
            "message of {} bytes is above max_message_size (64 bytes)",
            long.len()
        ))
    );
    assert_eq!(r.ctx.counter("oversize.invalid").load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn senders_outside_the_allow_list_are_refused_and_counted() {
    let (r, addr) = listener("allowed_senders: [10.0.0.0/8, 192.168.1.7]").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(b"<13>Mar 10 10:00:00 h app: hi\n").await;
    let mut buf = [0u8; 16];
    // The server closes the connection without reading.
    let n = tokio::time::timeout(DEADLINE, c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    wait_counter(&r, "senders.rejected", 1).await;
    r.run_once().await.unwrap();
    assert!(r.take(SUCCESS).is_empty());

    let (r, addr) = listener("protocol: udp\nallowed_senders: [10.0.0.0/8]").await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    c.send_to(b"<13>Mar 10 10:00:00 h app: hi", addr)
        .await
        .unwrap();
    wait_counter(&r, "senders.rejected", 1).await;
    r.run_once().await.unwrap();
    assert!(r.take(SUCCESS).is_empty());

    let (r, addr) = listener("protocol: udp\nallowed_senders: [127.0.0.1/32]").await;
    c.send_to(b"<13>Mar 10 10:00:00 h app: hi", addr)
        .await
        .unwrap();
    let (ok, _) = collect(&r, 1).await;
    assert_eq!(TestRunner::text(&ok[0]), "hi");
}

#[tokio::test]
async fn idle_connections_are_closed() {
    let (r, addr) = listener("idle_timeout: 300ms").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(b"<13>Mar 10 10:00:00 h app: before idle\n")
        .await
        .unwrap();
    let mut buf = [0u8; 16];
    let n = tokio::time::timeout(DEADLINE, c.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "server closed the idle connection");
    wait_counter(&r, "connections.idle_closed", 1).await;
    let (ok, _) = collect(&r, 1).await;
    assert_eq!(TestRunner::text(&ok[0]), "before idle");
}

#[tokio::test]
async fn a_thousand_concurrent_connections() {
    const N: usize = 1000;
    let (r, addr) = listener("").await;
    let mut clients = Vec::with_capacity(N);
    for _ in 0..N {
        clients.push(TcpStream::connect(addr).await.unwrap());
    }
    wait_counter(&r, "connections.open", N as u64).await;
    for (i, c) in clients.iter_mut().enumerate() {
        c.write_all(format!("<13>Mar 10 10:00:00 h app: client {i}\n").as_bytes())
            .await
            .unwrap();
    }
    let (ok, bad) = collect(&r, N).await;
    assert!(bad.is_empty());
    let got: BTreeSet<String> = ok.iter().map(TestRunner::text).collect();
    let want: BTreeSet<String> = (0..N).map(|i| format!("client {i}")).collect();
    assert_eq!(got, want);
    // All still connected while their messages went through.
    assert_eq!(
        r.ctx.counter("connections.open").load(Ordering::Relaxed),
        N as u64
    );
    drop(clients);
    wait_counter(&r, "connections.open", 0).await;
}

#[tokio::test]
async fn connections_over_the_limit_are_refused() {
    let (r, addr) = listener("max_connections: 2").await;
    let _a = TcpStream::connect(addr).await.unwrap();
    let _b = TcpStream::connect(addr).await.unwrap();
    wait_counter(&r, "connections.open", 2).await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 4];
    let n = tokio::time::timeout(DEADLINE, c.read(&mut buf))
        .await
        .unwrap()
        .unwrap_or(0);
    assert_eq!(n, 0);
    wait_counter(&r, "connections.refused", 1).await;
}

#[tokio::test]
async fn udp_drops_are_counted_when_the_queue_is_full() {
    let (r, addr) = listener("protocol: udp\nqueue_size: 5").await;
    let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..20 {
        c.send_to(format!("<13>Mar 10 10:00:00 h app: {i}").as_bytes(), addr)
            .await
            .unwrap();
    }
    wait_counter(&r, "udp.dropped", 15).await;
    let (ok, _) = collect(&r, 5).await;
    let got: Vec<String> = ok.iter().map(TestRunner::text).collect();
    assert_eq!(got, ["0", "1", "2", "3", "4"]);
}

#[tokio::test]
async fn tcp_waits_for_room_instead_of_dropping() {
    // A queue of 3 and a sender of 500 messages: the sender is held back
    // until the flow takes messages, and every one arrives in order.
    let (r, addr) = listener("queue_size: 3").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    let writer = tokio::spawn(async move {
        for i in 0..500 {
            c.write_all(format!("<13>Mar 10 10:00:00 h app: {i}\n").as_bytes())
                .await
                .unwrap();
        }
        c
    });
    let (ok, _) = collect(&r, 500).await;
    let got: Vec<String> = ok.iter().map(TestRunner::text).collect();
    let want: Vec<String> = (0..500).map(|i| i.to_string()).collect();
    assert_eq!(got, want);
    writer.await.unwrap();
}

#[tokio::test]
async fn garbage_streams_are_fully_accounted() {
    // Random bytes over TCP: every frame the decoder finds comes out as
    // exactly one FlowFile, parsed or invalid.
    let mut rng_state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    let mut stream = Vec::new();
    for _ in 0..400 {
        let len = (next() % 120) as usize;
        match next() % 4 {
            0 => stream.extend(format!("<{}>", next() % 300).as_bytes()),
            1 => stream.extend(format!("{len} ").as_bytes()),
            _ => {}
        }
        stream.extend((0..len).map(|_| (next() % 256) as u8));
        stream.push(b'\n');
    }
    let mut dec = Decoder::new(8192, 8192, false);
    let mut buf = BytesMut::from(&stream[..]);
    let mut frames = 0;
    while dec.decode(&mut buf).is_some() {
        frames += 1;
    }
    frames += usize::from(dec.finish(&mut buf).is_some());
    let (r, addr) = listener("").await;
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(&stream).await.unwrap();
    c.shutdown().await.unwrap();
    let (ok, bad) = collect(&r, frames).await;
    assert_eq!(ok.len() + bad.len(), frames);
    assert!(bad.iter().all(|f| f.attr("syslog.error").is_some()));
    r.run_once().await.unwrap();
    assert!(r.take(SUCCESS).is_empty() && r.take(INVALID).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes in arbitrary chunks: no panic, and every byte is
    /// either in a message or framing.
    #[test]
    fn framing_accounts_for_every_byte(
        input in proptest::collection::vec(any::<u8>(), 0..2048),
        chunk in 1usize..300,
        max in 1usize..200,
        invalid_mode in any::<bool>(),
        nul in any::<bool>(),
    ) {
        let keep = if invalid_mode { max * 4 } else { max };
        let mut dec = Decoder::new(max, keep, nul);
        let mut buf = BytesMut::new();
        let mut msgs = Vec::new();
        for part in input.chunks(chunk) {
            buf.extend_from_slice(part);
            while let Some(f) = dec.decode(&mut buf) {
                msgs.push(f);
            }
        }
        if let Some(f) = dec.finish(&mut buf) {
            msgs.push(f);
        }
        prop_assert!(buf.is_empty());
        let total: usize = msgs.iter().map(|f| f.original_len).sum();
        prop_assert_eq!(total + dec.framing_bytes(), input.len());
        for f in &msgs {
            prop_assert!(f.data.len() <= f.original_len);
            prop_assert!(f.data.len() <= keep + 1);
        }
    }

    /// Messages framed either way, in any mix, come back as they were sent.
    #[test]
    fn framed_messages_round_trip(
        msgs in proptest::collection::vec(("<[0-9]{1,3}>[ -~]{0,60}", any::<bool>()), 1..20),
        chunk in 1usize..64,
    ) {
        let mut wire = Vec::new();
        for (m, counted) in &msgs {
            if *counted {
                wire.extend(format!("{} {m}", m.len()).as_bytes());
            } else {
                wire.extend(m.as_bytes());
                wire.push(b'\n');
            }
        }
        let mut dec = Decoder::new(4096, 4096, false);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for part in wire.chunks(chunk) {
            buf.extend_from_slice(part);
            while let Some(f) = dec.decode(&mut buf) {
                got.push(String::from_utf8(f.data.to_vec()).unwrap());
            }
        }
        if let Some(f) = dec.finish(&mut buf) {
            got.push(String::from_utf8(f.data.to_vec()).unwrap());
        }
        // A message ending in spaces or CR loses nothing but LF/CR handling:
        // compare what a reader sees.
        let want: Vec<String> = msgs.iter().map(|(m, _)| m.clone()).collect();
        prop_assert_eq!(got, want);
    }

    /// The parser never panics and either parses (body inside the input) or
    /// says why not.
    #[test]
    fn parser_takes_any_bytes(input in proptest::collection::vec(any::<u8>(), 0..512)) {
        let raw = Bytes::from(input);
        let mut attrs = Vec::new();
        match SyslogParser::new(Zone::Local).parse(
            &raw,
            Utc::now(),
            &mut crate::intern::Interner::default(),
            &mut attrs,
        ) {
            Ok(body) => {
                prop_assert!(body.len() <= raw.len());
                prop_assert!(attrs.iter().any(|(k, _)| &**k == "syslog.severity"));
            }
            Err(e) => {
                prop_assert!(attrs.is_empty());
                prop_assert!(!e.to_string().is_empty());
            }
        }
    }
}

/// Messages waiting in the channel are taken in one run, up to the limit,
/// even when the task has spent its cooperative budget (then tokio's
/// `recv_many` alone would say "not ready", and nothing would wake the
/// listener while the senders wait for room).
#[tokio::test]
async fn waiting_messages_are_taken_even_with_the_budget_spent() {
    let (tx, mut rx) = mpsc::channel::<u32>(1000);
    for i in 0..600 {
        tx.try_send(i).expect("room");
    }
    // Spend the budget: each ready receive uses one unit (128 a poll).
    let mut seen = 0;
    for _ in 0..128 {
        rx.recv().await.expect("a message");
        seen += 1;
    }
    let mut taken = Vec::new();
    assert_eq!(take_ready(&mut rx, &mut taken, 250), 250);
    assert_eq!(taken.first(), Some(&seen));
    assert_eq!(taken.len(), 250);
    taken.clear();
    assert_eq!(take_ready(&mut rx, &mut taken, 1000), 600 - 128 - 250);
    assert_eq!(
        take_ready(&mut rx, &mut taken, 1000),
        0,
        "empty: none, no wait"
    );
}
