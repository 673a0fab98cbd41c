//! TLS material for etcd: read and checked up front (so a bad file is named
//! before any connection), handed to the gRPC client, and used to explain a
//! failed TLS session (the gRPC client only reports "connection closed").

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Certificate, Identity, TlsOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{ClientConfig, RootCertStore, crypto};

use crate::Error;
use crate::config::{ConfigError, EtcdConfig, PemSource};
use crate::error::Message;

/// The CA, client certificate and key, read and parsed.
#[derive(Clone)]
pub(super) struct TlsMaterial {
    ca_pem: Option<String>,
    ca: Vec<CertificateDer<'static>>,
    identity: Option<ClientIdentity>,
}

#[derive(Clone)]
struct ClientIdentity {
    cert_pem: String,
    key_pem: String,
    chain: Vec<CertificateDer<'static>>,
}

impl TlsMaterial {
    /// Reads and checks the configured files (or inline PEM).
    pub(super) fn load(config: &EtcdConfig) -> Result<TlsMaterial, Error> {
        let (ca_pem, ca) = match &config.ca_cert {
            Some(source) => {
                let pem = read(source, "CA certificate")?;
                let certs = certificates(source, "CA certificate", &pem)?;
                (Some(pem), certs)
            }
            None => (None, Vec::new()),
        };
        let identity = match (&config.cert, &config.key) {
            (Some(cert), Some(key)) => {
                let cert_pem = read(cert, "client certificate")?;
                let chain = certificates(cert, "client certificate", &cert_pem)?;
                let key_pem = read(key, "client key")?;
                PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| Error::Tls {
                    file: key.describe(),
                    what: "client key",
                    source: Box::new(Message(format!("no usable private key in the PEM: {e}"))),
                })?;
                Some(ClientIdentity {
                    cert_pem,
                    key_pem,
                    chain,
                })
            }
            (None, None) => None,
            (Some(_), None) | (None, Some(_)) => {
                let cert = config.cert.is_some();
                return Err(ConfigError::IncompleteClientCert {
                    origin: "etcd configuration".into(),
                    present: if cert {
                        "the client certificate"
                    } else {
                        "the client key"
                    },
                    missing: if cert {
                        "the client key"
                    } else {
                        "the client certificate"
                    },
                }
                .into());
            }
        };
        Ok(TlsMaterial {
            ca_pem,
            ca,
            identity,
        })
    }

    pub(super) fn has_client_certificate(&self) -> bool {
        self.identity.is_some()
    }

    /// Settings for the gRPC client. Without a CA, the system's roots are
    /// trusted.
    pub(super) fn options(&self, handshake_timeout: Duration) -> TlsOptions {
        let mut tls = TlsOptions::new().timeout(handshake_timeout);
        tls = match &self.ca_pem {
            Some(pem) => tls.ca_certificate(Certificate::from_pem(pem)),
            None => tls.with_native_roots(),
        };
        if let Some(identity) = &self.identity {
            tls = tls.identity(Identity::from_pem(&identity.cert_pem, &identity.key_pem));
        }
        tls
    }

    /// Opens a TLS session to `authority` (host:port) the way the gRPC
    /// client would, and reports why it fails, if it does. `None` when the
    /// session works (or when it cannot be checked without a CA file).
    pub(super) async fn explain_failure(
        &self,
        authority: &str,
        timeout: Duration,
    ) -> Option<String> {
        if self.ca.is_empty() {
            return None;
        }
        let host = match authority.rsplit_once(':') {
            Some((host, _)) => host.trim_start_matches('[').trim_end_matches(']'),
            None => authority,
        };
        let server_name = ServerName::try_from(host.to_owned()).ok()?;
        let config = self.client_config().ok()?;
        let attempt = async {
            let tcp = TcpStream::connect(authority)
                .await
                .map_err(|e| format!("cannot connect: {e}"))?;
            let mut stream = TlsConnector::from(Arc::new(config))
                .connect(server_name, tcp)
                .await
                .map_err(|e| self.describe(&e.to_string()))?;
            // TLS 1.3 servers check the client certificate after the
            // handshake; their verdict arrives with the first read.
            stream
                .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
                .await
                .map_err(|e| self.describe(&e.to_string()))?;
            let mut buf = [0u8; 64];
            match stream.read(&mut buf).await {
                Ok(0) => Err(self.describe("the server closed the connection")),
                Ok(_) => Ok(()),
                Err(e) => Err(self.describe(&e.to_string())),
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(())) => None,
            Ok(Err(reason)) => Some(reason),
            Err(_) => Some(format!("no TLS session within {timeout:?}")),
        }
    }

    fn client_config(&self) -> Result<ClientConfig, tokio_rustls::rustls::Error> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca {
            roots.add(cert.clone())?;
        }
        let builder =
            ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots);
        let mut config = match &self.identity {
            Some(identity) => {
                let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
                    .map_err(|e| tokio_rustls::rustls::Error::General(e.to_string()))?;
                builder.with_client_auth_cert(identity.chain.clone(), key)?
            }
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(config)
    }

    /// A TLS failure with a hint at the usual cause.
    fn describe(&self, failure: &str) -> String {
        let no_client_certificate = !self.has_client_certificate()
            && [
                "CertificateRequired",
                "HandshakeFailure",
                "BadCertificate",
                "closed",
            ]
            .iter()
            .any(|alert| failure.contains(alert));
        let hint = if failure.contains("UnknownIssuer") || failure.contains("BadSignature") {
            "the server's certificate is not signed by the configured CA certificate"
        } else if failure.contains("NotValidForName") {
            "the server's certificate does not name the host in the endpoint"
        } else if failure.contains("Expired") || failure.contains("NotValidYet") {
            "a certificate is outside its validity period"
        } else if no_client_certificate {
            "the server requires a client certificate: set the etcd certificate and key files"
        } else if failure.contains("BadCertificate") || failure.contains("UnknownCA") {
            "the server does not accept the client certificate; is it signed by the CA the server trusts?"
        } else {
            ""
        };
        if hint.is_empty() {
            format!("TLS session failed: {failure}")
        } else {
            format!("TLS session failed: {failure} ({hint})")
        }
    }
}

/// Whether the server on `tcp` answers a TLS greeting (an https server
/// reached through an http:// endpoint). Plain etcd ignores or rejects it
/// without a TLS record.
pub(super) async fn speaks_tls(mut tcp: TcpStream, timeout: Duration) -> bool {
    let Ok(builder) =
        ClientConfig::builder_with_provider(Arc::new(crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
    else {
        return false;
    };
    let config = builder
        .with_root_certificates(RootCertStore::empty())
        .with_no_client_auth();
    let Ok(mut connection) = tokio_rustls::rustls::ClientConnection::new(
        Arc::new(config),
        ServerName::from(std::net::Ipv4Addr::LOCALHOST),
    ) else {
        return false;
    };
    let mut hello = Vec::new();
    if connection.write_tls(&mut hello).is_err() {
        return false;
    }
    let exchange = async {
        tcp.write_all(&hello).await.ok()?;
        let mut first = [0u8; 1];
        tcp.read_exact(&mut first).await.ok()?;
        // TLS record types: 0x15 alert, 0x16 handshake.
        Some(matches!(first[0], 0x15 | 0x16))
    };
    matches!(
        tokio::time::timeout(timeout, exchange).await,
        Ok(Some(true))
    )
}

fn read(source: &PemSource, what: &'static str) -> Result<String, Error> {
    match source {
        PemSource::File(path) => std::fs::read_to_string(path).map_err(|e| Error::Tls {
            file: path.display().to_string(),
            what,
            source: Box::new(e),
        }),
        PemSource::Inline { pem, .. } => Ok(pem.expose().to_owned()),
    }
}

fn certificates(
    source: &PemSource,
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, Error> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls {
            file: source.describe(),
            what,
            source: Box::new(Message(format!("invalid PEM: {e}"))),
        })?;
    if certs.is_empty() {
        return Err(Error::Tls {
            file: source.describe(),
            what,
            source: Box::new(Message(
                "no PEM certificate (-----BEGIN CERTIFICATE-----) found".into(),
            )),
        });
    }
    Ok(certs)
}
