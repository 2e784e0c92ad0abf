//! ListenSyslog over TLS (RFC 5425) with certificates generated here: a CA,
//! a server certificate for 127.0.0.1 and a client certificate. A rustls
//! client sends octet-counted RFC 5424; with `tls_client_ca` set, a client
//! without a certificate is turned away and counted.
#![allow(clippy::unwrap_used)] // test helpers: a panic is a failing test

mod syslog_common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use sluice_runtime::testing::TestRunner;
use syslog_common::{attrs, collect, listen, map, sender};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

struct Pki {
    ca: String,
    client_cert: String,
    client_key: String,
}

/// Writes ca.pem, server.pem and server.key into `dir`.
fn make_pki(dir: &Path) -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client = CertificateParams::new(vec!["sender.example".to_string()])
        .unwrap()
        .signed_by(&client_key, &ca)
        .unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("server.pem"), server.pem()).unwrap();
    std::fs::write(dir.join("server.key"), server_key.serialize_pem()).unwrap();
    Pki {
        ca: ca.pem(),
        client_cert: client.pem(),
        client_key: client_key.serialize_pem(),
    }
}

fn connector(pki: &Pki, with_client_cert: bool) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
        .unwrap();
    let builder = ClientConfig::builder_with_provider(Arc::new(aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = if with_client_cert {
        builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(pki.client_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.client_key.as_bytes()).unwrap(),
            )
            .unwrap()
    } else {
        builder.with_no_client_auth()
    };
    TlsConnector::from(Arc::new(config))
}

fn tls_yaml(dir: &Path, client_ca: bool) -> String {
    let mut y = format!(
        "protocol: tls\ntimezone: UTC\ntls_certificate: {}\ntls_private_key: {}\n",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    );
    if client_ca {
        use std::fmt::Write as _;
        let _ = writeln!(y, "tls_client_ca: {}", dir.join("ca.pem").display());
    }
    y
}

const MSGS: [&str; 2] = [
    "<134>1 2026-03-10T09:30:00.000001Z lb01 haproxy 2001 HTTP [conn@1 src=\"10.9.8.7\" port=\"51234\"] 200 GET /health",
    "<26>Mar 10 09:30:01 sw-core-1 ospfd[77]: neighbour 10.0.0.2 down",
];

async fn send_and_check(r: &TestRunner, addr: std::net::SocketAddr, conn: TlsConnector) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = conn
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
        .unwrap();
    for m in MSGS {
        tls.write_all(format!("{} {m}", m.len()).as_bytes())
            .await
            .unwrap();
    }
    tls.flush().await.unwrap();
    let (ok, bad) = collect(r, MSGS.len()).await;
    assert!(bad.is_empty(), "{bad:?}");
    let mut want = sender(addr, "tls");
    want.extend(map(&[
        ("syslog.priority", "134"),
        ("syslog.severity", "6"),
        ("syslog.severity.name", "info"),
        ("syslog.facility", "16"),
        ("syslog.facility.name", "local0"),
        ("syslog.version", "1"),
        ("syslog.timestamp", "2026-03-10T09:30:00.000001Z"),
        ("syslog.hostname", "lb01"),
        ("syslog.appname", "haproxy"),
        ("syslog.procid", "2001"),
        ("syslog.msgid", "HTTP"),
        ("syslog.sd.conn@1.src", "10.9.8.7"),
        ("syslog.sd.conn@1.port", "51234"),
    ]));
    assert_eq!(attrs(&ok[0]), want);
    assert_eq!(TestRunner::text(&ok[0]), "200 GET /health");
    let mut want = sender(addr, "tls");
    want.extend(map(&[
        ("syslog.priority", "26"),
        ("syslog.severity", "2"),
        ("syslog.severity.name", "crit"),
        ("syslog.facility", "3"),
        ("syslog.facility.name", "daemon"),
        ("syslog.timestamp", "2026-03-10T09:30:01Z"),
        ("syslog.hostname", "sw-core-1"),
        ("syslog.appname", "ospfd"),
        ("syslog.procid", "77"),
    ]));
    assert_eq!(attrs(&ok[1]), want);
    assert_eq!(TestRunner::text(&ok[1]), "neighbour 10.0.0.2 down");
}

#[tokio::test]
async fn tls_with_a_generated_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (r, addr) = listen(&tls_yaml(dir.path(), false)).await;
    send_and_check(&r, addr, connector(&pki, false)).await;
}

#[tokio::test]
async fn tls_client_certificates_are_verified() {
    let dir = tempfile::tempdir().unwrap();
    let pki = make_pki(dir.path());
    let (r, addr) = listen(&tls_yaml(dir.path(), true)).await;
    send_and_check(&r, addr, connector(&pki, true)).await;

    // Without a client certificate the server ends the handshake.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let refused = match connector(&pki, false)
        .connect(ServerName::try_from("127.0.0.1").unwrap(), tcp)
        .await
    {
        Err(_) => true,
        // TLS 1.3: the client finishes first and learns on its first read.
        Ok(mut s) => {
            let _ = s.write_all(b"20 <13>1 - - - - - - x").await;
            let mut b = [0u8; 8];
            matches!(s.read(&mut b).await, Err(_) | Ok(0))
        }
    };
    assert!(refused);
    let failed = r.ctx.counter("tls.handshake_failed");
    sluice_testkit::wait_until(syslog_common::DEADLINE, || {
        failed.load(Ordering::Relaxed) == 1
    })
    .await
    .unwrap();
    r.run_once().await.unwrap();
    assert!(r.take("success").is_empty() && r.take("invalid").is_empty());
}

#[test]
fn unusable_pem_files_fail_the_build_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    make_pki(dir.path());
    std::fs::write(dir.path().join("server.key"), "not a key").unwrap();
    let registry = sluice_processors::registry();
    let kind = registry.get("ListenSyslog").unwrap().clone();
    let yaml = format!("port: 6514\n{}", tls_yaml(dir.path(), false));
    let props = sluice_runtime::testing::props_from_yaml(&*kind, &registry, &yaml).unwrap();
    let err = match kind.build(&props, &sluice_runtime::BuildContext::default()) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("built with a broken key"),
    };
    assert!(
        err.contains("tls_private_key") && err.contains("server.key"),
        "{err}"
    );
}
