//! The root certificates the upstream's TLS connections trust: the public ones (the webpki
//! roots, as reqwest's `rustls-tls` uses) and, with `ca-file`, those of a PEM file on top.

use std::path::Path;

use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::error::ClientError;

/// The certificates of the PEM file at `path`, in DER.
///
/// # Errors
///
/// [`ClientError::CaFile`] when the file cannot be read, is not PEM, holds no certificate, or
/// holds one that cannot be a root.
pub(super) fn extra(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |reason: String| ClientError::CaFile {
        path: path.to_owned(),
        reason,
    };
    let text = std::fs::read(path).map_err(|error| bad(error.to_string()))?;
    let certificates = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(format!("not a PEM certificate file ({error})")))?;
    if certificates.is_empty() {
        return Err(bad("no CERTIFICATE block in it".to_owned()));
    }
    // Checked here, naming the file, before either HTTP client gets them.
    store(&certificates, path)?;
    Ok(certificates)
}

/// The webpki roots and `extra`.
///
/// # Errors
///
/// [`ClientError::CaFile`] naming `path` when one of `extra` is not a usable certificate.
pub(super) fn store(
    extra: &[CertificateDer<'static>],
    path: &Path,
) -> Result<RootCertStore, ClientError> {
    let mut store = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for certificate in extra {
        store
            .add(certificate.clone())
            .map_err(|error| ClientError::CaFile {
                path: path.to_owned(),
                reason: format!("a certificate in it cannot be a root ({error})"),
            })?;
    }
    Ok(store)
}
