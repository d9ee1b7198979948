//! The rustls client configuration for `transport = "tls"`: trusted roots (a CA
//! file or the system's), an optional client certificate, and the opt-in
//! `insecure_skip_verify`. The aws-lc-rs provider is passed explicitly, so the
//! process needs no default provider even when another one is linked in.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::config::TlsConfig;
use super::SinkError;

/// Builds the client configuration; every file problem names the file.
pub(crate) fn client_config(tls: &TlsConfig) -> Result<Arc<ClientConfig>, SinkError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| SinkError::Tls(format!("protocol versions: {err}")))?;
    let builder = if tls.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
    } else {
        builder.with_root_certificates(roots(tls)?)
    };
    let config = match (&tls.cert_file, &tls.key_file) {
        (Some(cert_file), Some(key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| {
                    SinkError::Tls(format!(
                        "cannot read cert_file {}: {err}",
                        cert_file.display()
                    ))
                })?;
            if chain.is_empty() {
                return Err(SinkError::Tls(format!(
                    "cert_file {} holds no certificate",
                    cert_file.display()
                )));
            }
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|err| {
                SinkError::Tls(format!(
                    "cannot read key_file {}: {err}",
                    key_file.display()
                ))
            })?;
            builder.with_client_auth_cert(chain, key).map_err(|err| {
                SinkError::Tls(format!(
                    "client certificate {} and key {} do not fit: {err}",
                    cert_file.display(),
                    key_file.display()
                ))
            })?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

fn roots(tls: &TlsConfig) -> Result<RootCertStore, SinkError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(ca_file) => {
            let certs = CertificateDer::pem_file_iter(ca_file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|err| {
                    SinkError::Tls(format!("cannot read ca_file {}: {err}", ca_file.display()))
                })?;
            for cert in certs {
                roots.add(cert).map_err(|err| {
                    SinkError::Tls(format!(
                        "bad certificate in ca_file {}: {err}",
                        ca_file.display()
                    ))
                })?;
            }
            if roots.is_empty() {
                return Err(SinkError::Tls(format!(
                    "ca_file {} holds no certificate",
                    ca_file.display()
                )));
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            let (added, _ignored) = roots.add_parsable_certificates(native.certs);
            if added == 0 {
                let errors: Vec<String> = native.errors.iter().map(|e| e.to_string()).collect();
                return Err(SinkError::Tls(format!(
                    "no trusted root certificates found on this system ({}): set sink.tls.ca_file",
                    errors.join("; ")
                )));
            }
        }
    }
    Ok(roots)
}

/// The name the receiver's certificate must carry: `server_name`, or the host.
pub(crate) fn server_name(tls: &TlsConfig, host: &str) -> Result<ServerName<'static>, String> {
    let name = tls.server_name.as_deref().unwrap_or(host);
    ServerName::try_from(name.to_owned())
        .map_err(|err| format!("invalid server name {name:?}: {err}"))
}

/// `insecure_skip_verify`: accepts any certificate, still checking that the
/// handshake signatures are made with the certificate's key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
