//! TLS for `ListenSyslog` (RFC 5425): a rustls server configuration on
//! aws-lc-rs from PEM files, optionally requiring client certificates signed
//! by a given CA.

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::crypto::aws_lc_rs;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{RootCertStore, ServerConfig};

/// Reads the certificate chain, the key and (optionally) the client CA, and
/// builds an acceptor. Errors name the file and what is wrong with it.
///
/// # Errors
/// A file cannot be read, holds no usable PEM item, or rustls refuses the
/// combination (a key that does not match the certificate).
pub(super) fn acceptor(
    certificate: &Path,
    private_key: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, String> {
    let chain = certificates(certificate)?;
    let key = PrivateKeyDer::from_pem_file(private_key)
        .map_err(|e| format!("tls_private_key {}: {e}", private_key.display()))?;
    let provider = Arc::new(aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(ca)? {
                roots
                    .add(c)
                    .map_err(|e| format!("tls_client_ca {}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| format!("tls_client_ca {}: {e}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder.with_single_cert(chain, key).map_err(|e| {
        format!(
            "{} and {} do not make a usable certificate and key: {e}",
            certificate.display(),
            private_key.display()
        )
    })?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{}: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate in the file",
            path.display()
        ));
    }
    Ok(certs)
}
