//! One real round trip per server, with a minimal client. These fail (never skip) when a
//! server is missing or broken: run `bash scripts/install-test-deps.sh` first.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use sluice_testkit::{
    FtpServer, HttpReceiver, KafkaBroker, LoggerTransport, Rsyslog, S3Server, SlackMessageKind,
    SlackReceiver, SmtpServer, SyslogFormat, SyslogForward, SyslogNg, free_port, logger,
    wait_for_port,
};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const IO_TIMEOUT: Duration = Duration::from_secs(15);

fn run(cmd: &mut Command) -> std::process::Output {
    cmd.output().expect("command starts")
}

fn curl() -> Command {
    let mut c = Command::new("curl");
    c.args(["--silent", "--show-error", "--max-time", "15"]);
    c
}

// ------------------------------------------------------------------------------------ FTP

fn ftp_upload(server: &FtpServer, local: &Path, remote: &str) -> std::process::Output {
    run(curl()
        .arg("-T")
        .arg(local)
        .arg(format!("{}{remote}", server.url())))
}

#[tokio::test]
async fn ftp_upload_appears_in_root_and_survives_restart() {
    let mut ftp = FtpServer::start().await.expect("pure-ftpd starts");
    let dir = tempfile::tempdir().expect("tempdir");
    let local = dir.path().join("hello.bin");
    std::fs::write(&local, b"line one\nline two\n\x00\xff").expect("write");

    let out = ftp_upload(&ftp, &local, "hello.bin");
    assert!(out.status.success(), "curl upload: {out:?}");
    assert_eq!(
        std::fs::read(ftp.root.join("hello.bin")).expect("uploaded file"),
        b"line one\nline two\n\x00\xff"
    );

    // a wrong password is refused
    let out = run(curl()
        .arg("-T")
        .arg(&local)
        .arg(format!("ftp://{}:wrong@{}/x.bin", ftp.user, ftp.addr)));
    assert!(!out.status.success(), "login with a wrong password worked");

    // down: uploads fail; back on the same port: they work again and old files are there
    let addr = ftp.addr;
    ftp.stop();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    assert!(!ftp_upload(&ftp, &local, "while-down.bin").status.success());
    ftp.start_again().await.expect("restart");
    assert_eq!(ftp.addr, addr);
    let out = ftp_upload(&ftp, &local, "after.bin");
    assert!(out.status.success(), "upload after restart: {out:?}");
    assert!(ftp.root.join("hello.bin").exists() && ftp.root.join("after.bin").exists());
}

// ----------------------------------------------------------------------------------- SMTP

/// Reads one (possibly multi-line) SMTP reply and returns its code.
async fn smtp_reply(reader: &mut BufReader<TcpStream>) -> u16 {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(IO_TIMEOUT, reader.read_line(&mut line))
            .await
            .expect("SMTP reply in time")
            .expect("read");
        assert!(n > 0, "SMTP server closed the connection");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line[..3].parse().expect("reply code");
        }
    }
}

async fn smtp_send(addr: SocketAddr, from: &str, to: &[&str], data: &str) {
    let mut s = BufReader::new(TcpStream::connect(addr).await.expect("connect"));
    assert_eq!(smtp_reply(&mut s).await, 220);
    for (line, want) in [
        ("EHLO test.invalid\r\n".to_string(), 250),
        (format!("MAIL FROM:<{from}>\r\n"), 250),
    ] {
        s.get_mut().write_all(line.as_bytes()).await.expect("write");
        assert_eq!(smtp_reply(&mut s).await, want, "after {line:?}");
    }
    for rcpt in to {
        s.get_mut()
            .write_all(format!("RCPT TO:<{rcpt}>\r\n").as_bytes())
            .await
            .expect("write");
        assert_eq!(smtp_reply(&mut s).await, 250);
    }
    s.get_mut().write_all(b"DATA\r\n").await.expect("write");
    assert_eq!(smtp_reply(&mut s).await, 354);
    s.get_mut()
        .write_all(format!("{data}\r\n.\r\n").as_bytes())
        .await
        .expect("write");
    assert_eq!(smtp_reply(&mut s).await, 250);
    s.get_mut().write_all(b"QUIT\r\n").await.expect("write");
    assert_eq!(smtp_reply(&mut s).await, 221);
}

#[tokio::test]
async fn smtp_message_is_stored_and_parsed() {
    let mut smtp = SmtpServer::start().await.expect("aiosmtpd starts");
    smtp_send(
        smtp.addr,
        "flow@sluice.test",
        &["ops@example.test", "audit@example.test"],
        "From: Sluice <flow@sluice.test>\r\nTo: ops@example.test\r\n\
         Subject: =?utf-8?q?Disk_=C3=BCber_90=25?=\r\n\
         Content-Type: text/plain; charset=utf-8\r\n\r\nfirst line\r\nsecond line",
    )
    .await;
    let mails = smtp
        .wait_for_messages(1, IO_TIMEOUT)
        .await
        .expect("one message");
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(m.envelope_from, "flow@sluice.test");
    assert_eq!(m.envelope_to, ["ops@example.test", "audit@example.test"]);
    assert_eq!(m.from, "Sluice <flow@sluice.test>");
    assert_eq!(m.to, "ops@example.test");
    assert_eq!(m.subject, "Disk über 90%");
    assert_eq!(m.body.replace("\r\n", "\n"), "first line\nsecond line\n");
    assert!(
        m.header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        m.headers
    );

    let addr = smtp.addr;
    smtp.stop();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    smtp.start_again().await.expect("restart");
    smtp_send(
        addr,
        "a@b.test",
        &["c@d.test"],
        "Subject: two\r\n\r\nbody two",
    )
    .await;
    let mails = smtp.wait_for_messages(2, IO_TIMEOUT).await.expect("two");
    assert_eq!(mails[1].subject, "two");
    assert_eq!(mails[1].body.trim_end(), "body two");
}

#[tokio::test]
async fn smtp_starttls_is_offered_and_required() {
    let smtp = SmtpServer::start_with_starttls()
        .await
        .expect("aiosmtpd starts");
    assert!(smtp.tls_cert.as_ref().is_some_and(|c| c.exists()));
    let mut s = BufReader::new(TcpStream::connect(smtp.addr).await.expect("connect"));
    assert_eq!(smtp_reply(&mut s).await, 220);
    s.get_mut().write_all(b"EHLO t\r\n").await.expect("write");
    let mut ehlo = String::new();
    loop {
        let mut line = String::new();
        tokio::time::timeout(IO_TIMEOUT, s.read_line(&mut line))
            .await
            .expect("in time")
            .expect("read");
        ehlo.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            break;
        }
    }
    assert!(ehlo.contains("STARTTLS"), "EHLO answer: {ehlo}");
    s.get_mut()
        .write_all(b"MAIL FROM:<a@b.test>\r\n")
        .await
        .expect("write");
    assert_eq!(
        smtp_reply(&mut s).await,
        530,
        "MAIL before STARTTLS accepted"
    );
}

// ------------------------------------------------------------------------------------- S3

fn s3_curl(s3: &S3Server) -> Command {
    let mut c = curl();
    c.arg("--aws-sigv4")
        .arg(format!("aws:amz:{}:s3", s3.region))
        .arg("--user")
        .arg(format!("{}:{}", s3.access_key, s3.secret_key))
        .args(["--write-out", "\n%{http_code}"]);
    c
}

fn status_and_body(out: &std::process::Output) -> (u16, String) {
    assert!(out.status.success(), "curl failed: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().expect("status"), body.to_string())
}

#[tokio::test]
async fn s3_put_and_get_an_object() {
    let mut s3 = S3Server::start().await.expect("moto starts");
    let bucket = format!("{}/sluice-bucket", s3.endpoint);
    let (code, _) = status_and_body(&run(s3_curl(&s3).args(["-X", "PUT"]).arg(&bucket)));
    assert_eq!(code, 200, "create bucket");
    let (code, _) = status_and_body(&run(s3_curl(&s3)
        // curl's default form content type would make moto read the body as a form
        .args(["-X", "PUT", "-H", "content-type: application/octet-stream"])
        .args(["--data-binary", "hello s3"])
        .arg(s3.object_url("sluice-bucket", "dir/obj.txt"))));
    assert_eq!(code, 200, "put object");
    let (code, body) = status_and_body(&run(
        s3_curl(&s3).arg(s3.object_url("sluice-bucket", "dir/obj.txt"))
    ));
    assert_eq!((code, body.as_str()), (200, "hello s3"));

    // moto is in memory: a restart on the same port comes back empty
    let endpoint = s3.endpoint.clone();
    s3.stop();
    s3.start_again().await.expect("restart");
    assert_eq!(s3.endpoint, endpoint);
    let (code, _) = status_and_body(&run(
        s3_curl(&s3).arg(s3.object_url("sluice-bucket", "dir/obj.txt"))
    ));
    assert_eq!(code, 404, "object survived a restart of in-memory moto");
}

// ---------------------------------------------------------------------------------- Kafka

#[tokio::test]
async fn kafka_round_trip_with_rdkafka() {
    use rdkafka::ClientConfig;
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use rdkafka::{Offset, TopicPartitionList};

    let broker = KafkaBroker::start().await.expect("tansu starts");
    broker
        .create_topic("sluice-test", 3)
        .await
        .expect("create topic");
    assert_eq!(broker.topics().await.expect("list"), ["sluice-test"]);
    assert!(
        broker.create_topic("sluice-test", 3).await.is_err(),
        "creating an existing topic should fail"
    );
    // seeding with tansu's own producer
    broker
        .produce_json("sluice-test", 0, &[json!({"key": "k0", "value": "seeded"})])
        .await
        .expect("tansu cat produce");

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("message.timeout.ms", "10000")
        .create()
        .expect("producer");
    for i in 0..3 {
        let payload = format!("record-{i}");
        producer
            .send(
                FutureRecord::to("sluice-test")
                    .partition(1)
                    .key("k")
                    .payload(&payload),
                Duration::from_secs(10),
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("produce: {e}; broker log:\n{}", broker.log()));
    }

    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &broker.bootstrap)
        .set("group.id", "sluice-testkit")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut assignment = TopicPartitionList::new();
    for partition in [0, 1] {
        assignment
            .add_partition_offset("sluice-test", partition, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&assignment).expect("assign");
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + IO_TIMEOUT;
    while got.len() < 4 && std::time::Instant::now() < deadline {
        if let Some(message) = consumer.poll(Duration::from_millis(200)) {
            let message = message.expect("consume");
            got.push((
                message.partition(),
                String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned(),
            ));
        }
    }
    got.sort();
    assert_eq!(
        got,
        [
            (0, "\"seeded\"".to_string()),
            (1, "record-0".to_string()),
            (1, "record-1".to_string()),
            (1, "record-2".to_string()),
        ],
        "broker log:\n{}",
        broker.log()
    );
}

// ---------------------------------------------------------------------------- Slack, HTTP

#[tokio::test]
async fn slack_webhook_and_post_message() {
    let slack = SlackReceiver::start().await.expect("slack receiver");
    let http = reqwest::Client::new();

    // incoming webhook
    let r = http
        .post(slack.webhook_url())
        .json(&json!({"text": "disk full", "attachments": [{"color": "danger", "text": "sda1"}]}))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "ok");

    for (body, want) in [
        ("not json", "invalid_payload"),
        ("{}", "no_text"),
        (r#"{"text":""}"#, "no_text"),
        (r#"{"blocks":[{"text":"x"}]}"#, "invalid_blocks"),
        (r#"{"blocks":[{"type":"section"}]}"#, "invalid_blocks"),
        (
            r#"{"attachments":[{"color":"purple","text":"x"}]}"#,
            "invalid_attachments",
        ),
    ] {
        let r = http
            .post(slack.webhook_url())
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status(), 400, "{body}");
        assert_eq!(r.text().await.expect("body"), want, "{body}");
    }

    // Web API
    let post = |token: Option<&str>, body: serde_json::Value| {
        let mut req = http
            .post(format!("{}chat.postMessage", slack.api_url()))
            .json(&body);
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        req.send()
    };
    let ok: serde_json::Value = post(
        Some(&slack.token),
        json!({"channel": "#ops", "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": "Alert"}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "*disk* full"}}
        ]}),
    )
    .await
    .expect("post")
    .json()
    .await
    .expect("json");
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["channel"], "#ops");
    for (token, body, want) in [
        (None, json!({"channel": "c", "text": "t"}), "not_authed"),
        (
            Some("xoxb-wrong"),
            json!({"channel": "c", "text": "t"}),
            "invalid_auth",
        ),
        (
            Some(slack.token.as_str()),
            json!({"text": "t"}),
            "channel_not_found",
        ),
        (
            Some(slack.token.as_str()),
            json!({"channel": "c"}),
            "no_text",
        ),
    ] {
        let r = post(token, body).await.expect("post");
        assert_eq!(r.status(), 200);
        let v: serde_json::Value = r.json().await.expect("json");
        assert_eq!(v, json!({"ok": false, "error": want}));
    }

    let msgs = slack.messages();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert_eq!(msgs[0].kind, SlackMessageKind::Webhook);
    assert_eq!(msgs[0].text.as_deref(), Some("disk full"));
    assert_eq!(msgs[1].kind, SlackMessageKind::PostMessage);
    assert_eq!(msgs[1].channel.as_deref(), Some("#ops"));
}

#[tokio::test]
async fn slack_rate_limits_and_errors() {
    let slack = SlackReceiver::start().await.expect("slack receiver");
    let http = reqwest::Client::new();
    slack.rate_limit_next(2, 7);
    slack.fail_next(1, 503);
    let send = || {
        http.post(slack.webhook_url())
            .json(&json!({"text": "x"}))
            .send()
    };
    for _ in 0..2 {
        let r = send().await.expect("post");
        assert_eq!(r.status(), 429);
        assert_eq!(r.headers()["retry-after"], "7");
    }
    assert_eq!(send().await.expect("post").status(), 503);
    assert_eq!(send().await.expect("post").status(), 200);
    slack.fail_for(Duration::from_mins(1), sluice_testkit::Fault::status(500));
    assert_eq!(send().await.expect("post").status(), 500);
    slack.clear_faults();
    assert_eq!(send().await.expect("post").status(), 200);
    let statuses: Vec<u16> = slack.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 429, 503, 200, 500, 200]);
    assert_eq!(slack.messages().len(), 2);
}

#[tokio::test]
async fn http_receiver_records_and_restarts() {
    let mut rx = HttpReceiver::start().await.expect("receiver");
    rx.set_response(201, "application/json", r#"{"id":1}"#);
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/hook/a?x=1", rx.url()))
        .header("x-sluice", "yes")
        .body("payload")
        .send()
        .await
        .expect("put");
    assert_eq!(r.status(), 201);
    assert_eq!(r.text().await.expect("body"), r#"{"id":1}"#);
    let reqs = rx.wait_for_requests(1, IO_TIMEOUT).await.expect("one");
    assert_eq!(reqs[0].method, "PUT");
    assert_eq!(reqs[0].path, "/hook/a");
    assert_eq!(reqs[0].query, "x=1");
    assert_eq!(reqs[0].header("X-Sluice"), Some("yes"));
    assert_eq!(reqs[0].body_str(), "payload");

    let addr = rx.addr;
    rx.stop();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
    rx.start_again().await.expect("restart");
    wait_for_port(addr, IO_TIMEOUT)
        .await
        .expect("listening again");
    let r = http.get(rx.url()).send().await.expect("get");
    assert_eq!(r.status(), 201);
    assert_eq!(rx.requests().len(), 2);
}

// --------------------------------------------------------------------------------- syslog

/// Reads one RFC 6587 octet-counted frame.
async fn read_octet_counted(stream: &mut BufReader<TcpStream>) -> String {
    let mut len = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, stream.read_until(b' ', &mut len))
        .await
        .expect("frame in time")
        .expect("read");
    let len: usize = std::str::from_utf8(&len[..len.len() - 1])
        .expect("utf8")
        .parse()
        .unwrap_or_else(|_| panic!("not octet-counted: {len:?}"));
    let mut msg = vec![0; len];
    tokio::time::timeout(IO_TIMEOUT, stream.read_exact(&mut msg))
        .await
        .expect("frame body in time")
        .expect("read");
    String::from_utf8(msg).expect("utf8")
}

async fn read_line(stream: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    tokio::time::timeout(IO_TIMEOUT, stream.read_line(&mut line))
        .await
        .expect("line in time")
        .expect("read");
    line
}

async fn recv_udp(socket: &UdpSocket) -> String {
    let mut buf = vec![0; 65536];
    let n = tokio::time::timeout(IO_TIMEOUT, socket.recv(&mut buf))
        .await
        .expect("datagram in time")
        .expect("recv");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn accept(listener: &TcpListener) -> BufReader<TcpStream> {
    let (stream, _) = tokio::time::timeout(IO_TIMEOUT, listener.accept())
        .await
        .expect("daemon connected in time")
        .expect("accept");
    BufReader::new(stream)
}

#[tokio::test]
async fn rsyslog_forwards_rfc5424_octet_counted() {
    let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rsyslog = Rsyslog::start(SyslogForward::tcp_5424(target.local_addr().expect("addr")))
        .await
        .expect("rsyslogd starts");
    logger(
        rsyslog.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc5424,
        "sluicetest",
        "hello from rsyslog",
    )
    .expect("logger");
    let mut conn = accept(&target).await;
    let frame = read_octet_counted(&mut conn).await;
    assert!(frame.starts_with("<13>1 "), "{frame:?}");
    assert!(frame.contains(" sluicetest "), "{frame:?}");
    assert!(
        frame.trim_end().ends_with("hello from rsyslog"),
        "{frame:?}"
    );

    // TCP input, RFC 3164 in; still 5424 out
    logger(
        rsyslog.tcp_input,
        LoggerTransport::Tcp,
        SyslogFormat::Rfc3164,
        "second",
        "via tcp",
    )
    .expect("logger");
    let frame = read_octet_counted(&mut conn).await;
    assert!(frame.starts_with("<13>1 "), "{frame:?}");
    assert!(frame.trim_end().ends_with("via tcp"), "{frame:?}");
}

#[tokio::test]
async fn rsyslog_forwards_rfc3164_over_udp_and_tcp() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let rsyslog = Rsyslog::start(SyslogForward::udp_3164(udp.local_addr().expect("addr")))
        .await
        .expect("rsyslogd starts");
    logger(
        rsyslog.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc5424,
        "udptag",
        "over udp",
    )
    .expect("logger");
    let datagram = recv_udp(&udp).await;
    assert!(datagram.starts_with("<13>"), "{datagram:?}");
    assert!(datagram.contains("udptag"), "{datagram:?}");
    assert!(datagram.ends_with("over udp"), "{datagram:?}");
    drop(rsyslog);

    let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let rsyslog = Rsyslog::start(SyslogForward::tcp_3164(target.local_addr().expect("addr")))
        .await
        .expect("rsyslogd starts");
    logger(
        rsyslog.tcp_input,
        LoggerTransport::TcpOctetCount,
        SyslogFormat::Rfc5424,
        "tcptag",
        "lf framed",
    )
    .expect("logger");
    let mut conn = accept(&target).await;
    let line = read_line(&mut conn).await;
    assert!(line.starts_with("<13>"), "{line:?}");
    assert!(line.contains("tcptag"), "{line:?}");
    assert!(line.ends_with("lf framed\n"), "{line:?}");
}

#[tokio::test]
async fn rsyslog_delivers_after_the_target_comes_back() {
    let port = free_port();
    let target_addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let rsyslog = Rsyslog::start(SyslogForward::tcp_5424(target_addr))
        .await
        .expect("rsyslogd starts");
    // nothing listens yet: the action suspends and keeps the message queued
    logger(
        rsyslog.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc5424,
        "queued",
        "sent while down",
    )
    .expect("logger");
    let target = TcpListener::bind(target_addr).await.expect("bind");
    let mut conn = accept(&target).await;
    let frame = read_octet_counted(&mut conn).await;
    assert!(frame.trim_end().ends_with("sent while down"), "{frame:?}");
}

#[tokio::test]
async fn syslog_ng_forwards_rfc5424_octet_counted() {
    let target = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sng = SyslogNg::start(SyslogForward::tcp_5424(target.local_addr().expect("addr")))
        .await
        .expect("syslog-ng starts");
    logger(
        sng.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc5424,
        "ngtag",
        "hello from syslog-ng",
    )
    .expect("logger");
    let mut conn = accept(&target).await;
    let frame = read_octet_counted(&mut conn).await;
    assert!(frame.starts_with("<13>1 "), "{frame:?}");
    assert!(frame.contains(" ngtag "), "{frame:?}");
    assert!(
        frame.trim_end().ends_with("hello from syslog-ng"),
        "{frame:?}; log:\n{}",
        sng.internal_log()
    );

    logger(
        sng.tcp_input,
        LoggerTransport::Tcp,
        SyslogFormat::Rfc3164,
        "ngtcp",
        "tcp in",
    )
    .expect("logger");
    let frame = read_octet_counted(&mut conn).await;
    assert!(frame.contains("ngtcp"), "{frame:?}");
    assert!(frame.trim_end().ends_with("tcp in"), "{frame:?}");
}

#[tokio::test]
async fn syslog_ng_forwards_rfc3164_over_udp() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let sng = SyslogNg::start(SyslogForward::udp_3164(udp.local_addr().expect("addr")))
        .await
        .expect("syslog-ng starts");
    logger(
        sng.udp_input,
        LoggerTransport::Udp,
        SyslogFormat::Rfc3164,
        "nglegacy",
        "legacy out",
    )
    .expect("logger");
    let datagram = recv_udp(&udp).await;
    assert!(datagram.starts_with("<13>"), "{datagram:?}");
    assert!(datagram.contains("nglegacy"), "{datagram:?}");
    assert!(datagram.trim_end().ends_with("legacy out"), "{datagram:?}");
}

#[tokio::test]
async fn logger_sends_every_transport_and_format() {
    let udp = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let udp_addr = udp.local_addr().expect("addr");
    logger(
        udp_addr,
        LoggerTransport::Udp,
        SyslogFormat::Rfc3164,
        "t3164",
        "m1",
    )
    .expect("logger");
    let d = recv_udp(&udp).await;
    assert!(d.starts_with("<13>") && !d.starts_with("<13>1 "), "{d:?}");
    assert!(d.contains("t3164") && d.ends_with("m1"), "{d:?}");
    logger(
        udp_addr,
        LoggerTransport::Udp,
        SyslogFormat::Rfc5424,
        "t5424",
        "m2",
    )
    .expect("logger");
    let d = recv_udp(&udp).await;
    assert!(d.starts_with("<13>1 ") && d.ends_with("m2"), "{d:?}");

    let tcp = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let tcp_addr = tcp.local_addr().expect("addr");
    let send = tokio::task::spawn_blocking(move || {
        logger(
            tcp_addr,
            LoggerTransport::TcpOctetCount,
            SyslogFormat::Rfc5424,
            "toc",
            "m3",
        )
    });
    let mut conn = accept(&tcp).await;
    let frame = read_octet_counted(&mut conn).await;
    send.await.expect("join").expect("logger");
    assert!(
        frame.starts_with("<13>1 ") && frame.ends_with("m3"),
        "{frame:?}"
    );

    let send = tokio::task::spawn_blocking(move || {
        logger(
            tcp_addr,
            LoggerTransport::Tcp,
            SyslogFormat::Rfc3164,
            "tlf",
            "m4",
        )
    });
    let mut conn = accept(&tcp).await;
    let line = read_line(&mut conn).await;
    send.await.expect("join").expect("logger");
    assert!(
        line.starts_with("<13>") && line.ends_with("m4\n"),
        "{line:?}"
    );
}

// -------------------------------------------------------------------------------- browser

#[tokio::test]
async fn chromium_via_playwright_loads_a_local_page() {
    let page = HttpReceiver::start().await.expect("receiver");
    page.set_response(
        200,
        "text/html",
        "<html><head><title>sluice page</title></head><body><p id=x>ok</p></body></html>",
    );
    let script = r"
const { chromium } = require('playwright-core');
(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
  });
  const p = await browser.newPage();
  await p.goto(process.env.URL);
  console.log(await p.title() + '|' + await p.textContent('#x'));
  await browser.close();
})().catch(e => { console.error(e); process.exit(1); });
";
    let out = tokio::process::Command::new("node")
        .arg("-e")
        .arg(script)
        .env(
            "NODE_PATH",
            sluice_testkit::playwright_node_path().expect("playwright-core"),
        )
        .env("CHROMIUM", sluice_testkit::chromium().expect("chromium"))
        .env("URL", format!("{}/index.html", page.url()))
        .output()
        .await
        .expect("node runs");
    assert!(out.status.success(), "node: {out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "sluice page|ok"
    );
    assert!(
        page.requests().iter().any(|r| r.path == "/index.html"),
        "{:?}",
        page.requests()
    );
}
