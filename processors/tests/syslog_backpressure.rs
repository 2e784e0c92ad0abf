//! A slow sink: ListenSyslog feeds a processor that is stopped, behind a
//! small connection threshold. The TCP senders must block (the listener
//! stops reading, nothing is dropped) while the process's memory stays
//! bounded; once the sink runs again every message arrives.
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failing test

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sluice_runtime::{Engine, EngineOptions, parse_flow};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

const SENDERS: usize = 2;
const PER_SENDER: usize = 20_000;
const MESSAGE_SIZE: usize = 4_000;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn message(sender: usize, seq: usize) -> Vec<u8> {
    let head = format!("<13>Mar 10 10:00:00 host{sender} app: s={sender} n={seq} ");
    let mut m = head.into_bytes();
    m.resize(MESSAGE_SIZE - 1, b'x');
    m.push(b'\n');
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_senders_block_while_memory_stays_bounded_then_all_arrive() {
    let port = sluice_testkit::free_port();
    let flow = format!(
        r#"
name: slow-sink
processors:
  listen:
    type: ListenSyslog
    properties: {{ bind: 127.0.0.1, port: {port}, queue_size: 100 }}
    auto_terminate: [invalid]
  sink:
    type: UpdateAttribute
    properties:
      set: {{ seen: "yes" }}
    auto_terminate: [success]
connections:
  - {{ from: listen, relationship: success, to: sink, back_pressure: {{ max_count: 200 }} }}
"#
    );
    let registry = sluice_processors::registry();
    let spec = parse_flow(&flow, Path::new("slow-sink.yaml"), &registry, &|_| None).unwrap();
    let engine = Engine::start(spec, EngineOptions::default()).await.unwrap();
    assert!(engine.set_running("sink", false));
    let baseline = rss_bytes();

    let written = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for s in 0..SENDERS {
        let written = written.clone();
        writers.push(tokio::spawn(async move {
            let socket = TcpSocket::new_v4().unwrap();
            socket.set_send_buffer_size(16 * 1024).unwrap();
            let mut c = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
            for n in 0..PER_SENDER {
                c.write_all(&message(s, n)).await.unwrap();
                written.fetch_add(MESSAGE_SIZE as u64, Ordering::Relaxed);
            }
            c.shutdown().await.unwrap();
        }));
    }
    let offered = (SENDERS * PER_SENDER * MESSAGE_SIZE) as u64;

    // Wait until the senders stall: no progress for a second while the
    // connection to the stopped sink is at its threshold.
    let deadline = Instant::now() + Duration::from_mins(2);
    let (mut last, mut still) = (u64::MAX, 0);
    loop {
        assert!(Instant::now() < deadline, "senders never blocked");
        tokio::time::sleep(Duration::from_millis(100)).await;
        let now = written.load(Ordering::Relaxed);
        let status = engine.status();
        let queued = status.connections[0].queued_count;
        still = if now == last && queued >= 200 {
            still + 1
        } else {
            0
        };
        last = now;
        if still >= 10 {
            break;
        }
    }
    let status = engine.status();
    let grown = rss_bytes().saturating_sub(baseline);
    eprintln!(
        "blocked after {} of {} bytes; queue {}; RSS grew {} KB",
        last,
        offered,
        status.connections[0].queued_count,
        grown / 1024
    );
    assert!(
        writers.iter().all(|w| !w.is_finished()),
        "senders are blocked, not done"
    );
    assert!(
        last < offered,
        "every byte was taken although the sink is stopped"
    );
    // Held in Sluice: the connection (threshold + one batch) and the
    // listener's queue, a few MB; the rest waits in the senders' kernels.
    assert!(status.connections[0].queued_count <= 200 + 1000);
    assert!(status.connections[0].back_pressured);
    assert!(
        grown < 48 * 1024 * 1024,
        "RSS grew by {} MB while {} MB were offered",
        grown >> 20,
        offered >> 20
    );
    let listen = &status.processors[0];
    assert_eq!(listen.counters.get("udp.dropped").copied().unwrap_or(0), 0);

    // The sink resumes: everything arrives, nothing was dropped.
    assert!(engine.set_running("sink", true));
    let total = (SENDERS * PER_SENDER) as u64;
    let deadline = Instant::now() + Duration::from_mins(4);
    loop {
        let st = engine.status();
        let sink_in = st.processors[1].flowfiles_in;
        if sink_in == total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {sink_in} of {total} messages reached the sink"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for w in writers {
        w.await.unwrap();
    }
    let st = engine.status();
    assert_eq!(
        st.processors[0].flowfiles_dropped, 0,
        "no message went to invalid"
    );
    assert_eq!(st.processors[0].flowfiles_created, total);
    engine.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_drops_under_back_pressure_are_counted_in_the_status() {
    const SENT: usize = 300;
    let port = sluice_testkit::free_port();
    let flow = format!(
        r"
name: slow-sink-udp
processors:
  listen:
    type: ListenSyslog
    properties: {{ protocol: udp, bind: 127.0.0.1, port: {port}, queue_size: 10 }}
    scheduling: {{ batch_size: 10 }}
    auto_terminate: [invalid]
  sink:
    type: UpdateAttribute
    auto_terminate: [success]
connections:
  - {{ from: listen, relationship: success, to: sink, back_pressure: {{ max_count: 20 }} }}
"
    );
    let registry = sluice_processors::registry();
    let spec = parse_flow(&flow, Path::new("slow-sink-udp.yaml"), &registry, &|_| None).unwrap();
    let engine = Engine::start(spec, EngineOptions::default()).await.unwrap();
    assert!(engine.set_running("sink", false));
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..SENT {
        socket
            .send_to(
                format!("<13>Mar 10 10:00:00 h app: {i}").as_bytes(),
                ("127.0.0.1", port),
            )
            .await
            .unwrap();
        tokio::task::yield_now().await;
    }
    // Every datagram is either in a FlowFile, in the listener's queue (at
    // most 10), dropped and counted by the listener, or dropped by the
    // kernel before the listener read it (the socket's `drops` in
    // /proc/net/udp), which this test counts too so the sum is exact.
    let dropped = |e: &Engine| {
        e.status().processors[0]
            .counters
            .get("udp.dropped")
            .copied()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = engine.status();
        let created = st.processors[0].flowfiles_created;
        if dropped(&engine) > 0
            && created + dropped(&engine) + kernel_drops(port) + 10 >= SENT as u64
        {
            break;
        }
        assert!(Instant::now() < deadline, "drops not counted: {st:#?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The status line prints counters named *dropped*.
    assert!(
        engine.status().processors[0]
            .counters
            .contains_key("udp.dropped")
    );
    assert!(engine.set_running("sink", true));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let st = engine.status();
        let arrived = st.processors[1].flowfiles_in;
        let lost = dropped(&engine) + kernel_drops(port);
        if arrived + lost == SENT as u64 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{arrived} arrived + {lost} dropped != {SENT} sent"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    engine.shutdown(Duration::from_secs(5)).await;
}

/// Datagrams the kernel dropped on the UDP socket bound to 127.0.0.1:`port`.
fn kernel_drops(port: u16) -> u64 {
    let table = std::fs::read_to_string("/proc/net/udp").unwrap();
    let local = format!("0100007F:{port:04X}");
    table
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols.get(1) == Some(&local.as_str())).then(|| cols.last()?.parse::<u64>().ok())?
        })
        .sum()
}
