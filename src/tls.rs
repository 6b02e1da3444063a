//! TLS termination with rustls from PEM files (ALPN h2 and http/1.1).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read certificate chain {path}: {source}")]
    Certs {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("no certificate in {0}")]
    NoCerts(String),
    #[error("cannot read private key {path}: {source}")]
    Key {
        path: String,
        source: rustls_pki_types::pem::Error,
    },
    #[error("the private key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: String, key: String },
    #[error("TLS configuration rejected: {0}")]
    Rustls(#[from] rustls::Error),
}

impl Error {
    /// The configuration key the problem is about.
    pub fn key(&self) -> &'static str {
        match self {
            Error::Certs { .. } | Error::NoCerts(_) => "server.tls_cert",
            Error::Key { .. } | Error::KeyMismatch { .. } => "server.tls_key",
            Error::Rustls(_) => "server.tls_cert",
        }
    }
}

pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|source| Error::Certs {
            path: cert.display().to_string(),
            source,
        })?;
    if certs.is_empty() {
        return Err(Error::NoCerts(cert.display().to_string()));
    }
    let key_path = key;
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| Error::Key {
        path: key_path.display().to_string(),
        source,
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => Error::KeyMismatch {
                cert: cert.display().to_string(),
                key: key_path.display().to_string(),
            },
            other => Error::Rustls(other),
        })?;
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(cfg)))
}
