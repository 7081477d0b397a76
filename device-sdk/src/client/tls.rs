//! TLS for `wss://` relays: rustls (ring) trusting Mozilla's root certificates (webpki-roots)
//! and any PEM root certificates the application adds, such as a private relay's CA.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use super::ClientError;

/// The TLS settings every `wss://` connection of a client uses.
pub(super) fn client_config(extra_roots: &[PathBuf]) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|e| bad_root(path, e))?;
        if certs.is_empty() {
            return Err(bad_root(path, "no PEM CERTIFICATE block in it"));
        }
        for cert in certs {
            roots.add(cert).map_err(|e| bad_root(path, e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports TLS 1.2 and 1.3")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn bad_root(path: &Path, reason: impl std::fmt::Display) -> ClientError {
    ClientError::Tls { path: path.to_path_buf(), reason: reason.to_string() }
}
