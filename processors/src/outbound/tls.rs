//! TLS settings shared by sinks: the `tls_insecure` and `ca_file` properties,
//! loading a PEM CA bundle, and client configurations built from them for
//! reqwest (PutHTTP, PutSlack) and rustls (PutFTP). PutEmail hands the same
//! certificates to lettre.
//!
//! Without `ca_file` the platform's trust store is used. With it, only the
//! CAs in the file are trusted. `tls_insecure` accepts any certificate (for
//! tests and self-signed lab servers only; a bulletin-worthy choice).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sluice_runtime::{BuildContext, PropKind, Properties, PropertyDescriptor, PropertyError};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, pki_types};

/// Accept any server certificate.
pub const TLS_INSECURE: PropertyDescriptor = PropertyDescriptor::optional(
    "tls_insecure",
    PropKind::Bool,
    Some("false"),
    "Accept any TLS certificate, even self-signed or for another host (lab use only).",
);
/// Trust only these CAs.
pub const CA_FILE: PropertyDescriptor = PropertyDescriptor::optional(
    "ca_file",
    PropKind::Text,
    None,
    "PEM file of the CA certificates to trust instead of the system's (relative to the flow file).",
);

/// TLS options as configured.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Accept any certificate.
    pub insecure: bool,
    /// Trust only these CAs (DER), when set.
    pub ca: Option<Vec<pki_types::CertificateDer<'static>>>,
}

/// A TLS setting could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("ca_file {path}: {message}")]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// A client could not be built.
    #[error("TLS client: {0}")]
    Client(String),
}

impl TlsOptions {
    /// Reads [`TLS_INSECURE`] and [`CA_FILE`] (reading the file; call from `build`).
    ///
    /// # Errors
    /// A property is unusable or the CA file is unreadable or empty.
    pub fn from_props(props: &Properties, ctx: &BuildContext) -> Result<Self, TlsOptionsError> {
        let insecure = props.bool(TLS_INSECURE.name)?;
        let Some(file) = props
            .str_opt(CA_FILE.name)?
            .filter(|s| !s.trim().is_empty())
        else {
            return Ok(Self {
                insecure,
                ..Self::default()
            });
        };
        let path = ctx.base_dir.join(file.trim());
        let ca = read_ca_file(&path)?;
        Ok(Self {
            insecure,
            ca: Some(ca),
        })
    }

    /// A rustls client configuration with these options (FTPS).
    ///
    /// # Errors
    /// The platform verifier or the roots could not be set up.
    pub fn rustls_config(&self) -> Result<Arc<ClientConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Client(e.to_string()))?;
        let config = if self.insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else if let Some(ca) = &self.ca {
            let mut roots = RootCertStore::empty();
            for c in ca {
                roots
                    .add(c.clone())
                    .map_err(|e| TlsError::Client(format!("CA certificate: {e}")))?;
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        } else {
            let verifier = rustls_platform_verifier::Verifier::new(provider)
                .map_err(|e| TlsError::Client(e.to_string()))?;
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(verifier))
                .with_no_client_auth()
        };
        Ok(Arc::new(config))
    }

    /// A pooled reqwest client with these options and timeouts.
    ///
    /// # Errors
    /// The CA certificates or the TLS stack could not be set up.
    pub fn reqwest_client(
        &self,
        connect_timeout: Duration,
        read_timeout: Duration,
    ) -> Result<reqwest::Client, TlsError> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .tls_danger_accept_invalid_certs(self.insecure);
        if let Some(ca) = &self.ca {
            let certs = ca
                .iter()
                .map(|c| reqwest::Certificate::from_der(c))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsError::Client(e.to_string()))?;
            b = b.tls_certs_only(certs);
        }
        b.build().map_err(|e| TlsError::Client(e.to_string()))
    }
}

/// [`TlsOptions::from_props`] failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsOptionsError {
    /// A property.
    #[error(transparent)]
    Property(#[from] PropertyError),
    /// The CA file.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl From<TlsOptionsError> for sluice_runtime::BuildError {
    fn from(e: TlsOptionsError) -> Self {
        match e {
            TlsOptionsError::Property(p) => Self::Property(p),
            TlsOptionsError::Tls(t) => Self::Other(t.to_string()),
        }
    }
}

impl From<TlsError> for sluice_runtime::BuildError {
    fn from(e: TlsError) -> Self {
        Self::Other(e.to_string())
    }
}

/// Every certificate of a PEM file.
///
/// # Errors
/// Unreadable, not PEM, or no certificate in it.
pub fn read_ca_file(path: &Path) -> Result<Vec<pki_types::CertificateDer<'static>>, TlsError> {
    use pki_types::pem::PemObject;
    let err = |message: String| TlsError::CaFile {
        path: path.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = pki_types::CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("not a PEM certificate file: {e}")))?;
    if certs.is_empty() {
        return Err(err("no CERTIFICATE block in it".into()));
    }
    Ok(certs)
}

/// Accepts every server certificate (`tls_insecure`), still checking the
/// handshake signatures so the connection is at least encrypted.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &pki_types::CertificateDer<'_>,
        _intermediates: &[pki_types::CertificateDer<'_>],
        _server_name: &pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_say_what_and_where() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.pem");
        let e = read_ca_file(&missing).unwrap_err().to_string();
        assert!(e.contains("none.pem"), "{e}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "hello\n").unwrap();
        let e = read_ca_file(&empty).unwrap_err().to_string();
        assert!(e.contains("no CERTIFICATE"), "{e}");
        let good = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        assert_eq!(read_ca_file(&good).unwrap().len(), 1);
    }

    #[test]
    fn configs_build_for_every_mode() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("ca.pem");
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&good, cert.cert.pem()).unwrap();
        for opts in [
            TlsOptions::default(),
            TlsOptions {
                insecure: true,
                ..TlsOptions::default()
            },
            TlsOptions {
                ca: Some(read_ca_file(&good).unwrap()),
                insecure: false,
            },
        ] {
            opts.rustls_config().unwrap();
            opts.reqwest_client(Duration::from_secs(1), Duration::from_secs(1))
                .unwrap();
        }
    }
}
