//! Connecting to etcd: endpoints, TLS material, credentials, the start-up
//! check, and turning client errors into [`Error`]s that say what failed.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, GetOptions, Identity, TlsOptions};
use tokio::net::TcpStream;

use super::EtcdBackend;
use crate::config::{ConfigError, EtcdConfig, PemSource};
use crate::error::Message;
use crate::{Error, Revision};

/// How often HTTP/2 pings check an idle connection, and how long a ping
/// may go unanswered (Calico's etcd client uses the same values).
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);
const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A key read (count only) to learn the store's revision: inside the
/// `/calico/` tree, which any Calico etcd role may read.
const REVISION_PROBE_KEY: &str = "/calico/";

pub(super) async fn connect(config: &EtcdConfig) -> Result<EtcdBackend, Error> {
    if config.endpoints.is_empty() {
        return Err(ConfigError::NoEtcdEndpoints {
            origin: "etcd configuration".into(),
            field: "endpoints",
        }
        .into());
    }
    let endpoints = endpoint_urls(config)?;
    let tls = tls_options(config, endpoints.iter().any(|e| e.starts_with("https://")))?;
    let target = endpoints.join(",");
    let identity = match (&config.username, &config.cert) {
        (Some(user), _) => format!("user {user}"),
        (None, Some(cert)) => format!("client certificate {}", cert.describe()),
        (None, None) => "an anonymous client".to_owned(),
    };

    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout)
        .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
    if let Some(tls) = tls.clone() {
        options = options.with_tls(tls);
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options = options.with_user(user.clone(), password.expose().to_owned());
    }

    // The client connects lazily and, when no endpoint can be reached,
    // requests wait for one: bound both the log-in and a first read.
    let connected = tokio::time::timeout(
        config.connect_timeout,
        Client::connect(&endpoints, Some(options)),
    )
    .await;
    let client = match connected {
        Ok(Ok(client)) => client,
        Ok(Err(e)) => return Err(classify(&target, &identity, "connect", "", e)),
        Err(_) => return Err(unreachable(&endpoints, tls.as_ref(), config.connect_timeout).await),
    };
    match probe_revision(&client, &target, &identity, config.connect_timeout).await {
        Ok(_) => {}
        Err(Error::Timeout { .. }) => {
            return Err(unreachable(&endpoints, tls.as_ref(), config.connect_timeout).await);
        }
        Err(e) => return Err(e),
    }
    tracing::debug!(target = %target, identity = %identity, "connected to etcd");
    Ok(EtcdBackend {
        client: std::sync::Arc::new(client),
        target,
        identity,
        request_timeout: config.request_timeout,
    })
}

/// The store's current revision, from a linearizable count-only read.
pub(super) async fn probe_revision(
    client: &Client,
    target: &str,
    identity: &str,
    timeout: Duration,
) -> Result<Revision, Error> {
    let mut kv = client.kv_client();
    let request = kv.get(
        REVISION_PROBE_KEY,
        Some(GetOptions::new().with_count_only()),
    );
    match tokio::time::timeout(timeout, request).await {
        Ok(Ok(response)) => Ok(response.header().map_or(0, |h| h.revision())),
        Ok(Err(e)) => Err(classify(target, identity, "revision", "", e)),
        Err(_) => Err(Error::Timeout {
            target: target.to_owned(),
            operation: "revision",
            after: timeout,
        }),
    }
}

/// Sorts a client error into unavailable / refused credentials / other.
pub(super) fn classify(
    target: &str,
    identity: &str,
    operation: &'static str,
    key: &str,
    e: etcd_client::Error,
) -> Error {
    // gRPC status codes (tonic's `Code` as numbers, to avoid naming tonic).
    const INVALID_ARGUMENT: i32 = 3;
    const PERMISSION_DENIED: i32 = 7;
    const UNAVAILABLE: i32 = 14;
    const UNAUTHENTICATED: i32 = 16;
    let unavailable = |e| Error::Unavailable {
        target: target.to_owned(),
        source: Box::new(e),
    };
    let refused = |e| Error::Auth {
        target: target.to_owned(),
        identity: identity.to_owned(),
        source: Box::new(e),
    };
    match &e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => unavailable(e),
        etcd_client::Error::GRpcStatus(status) => match status.code() as i32 {
            UNAVAILABLE => unavailable(e),
            UNAUTHENTICATED | PERMISSION_DENIED => refused(e),
            // The server rejects a wrong user name or password at log-in.
            INVALID_ARGUMENT if status.message().contains("authentication failed") => refused(e),
            _ => Error::Operation {
                target: target.to_owned(),
                operation,
                key: key.to_owned(),
                source: Box::new(e),
            },
        },
        _ => Error::Operation {
            target: target.to_owned(),
            operation,
            key: key.to_owned(),
            source: Box::new(e),
        },
    }
}

/// Builds the error for a cluster that did not answer in time, finding out
/// per endpoint why: refused, unroutable, or reachable but not completing
/// the TLS/gRPC handshake.
async fn unreachable(endpoints: &[String], tls: Option<&TlsOptions>, timeout: Duration) -> Error {
    let mut reasons = Vec::new();
    for endpoint in endpoints {
        let authority = endpoint
            .split_once("://")
            .map_or(endpoint.as_str(), |(_, rest)| rest)
            .trim_end_matches('/');
        let reason = match tokio::time::timeout(timeout, TcpStream::connect(authority)).await {
            Ok(Ok(_)) if tls.is_some() => format!(
                "TCP connection works but no TLS/gRPC session within {timeout:?}: check that the server \
                 certificate is signed by the configured CA and names this host, and that the client \
                 certificate is accepted"
            ),
            Ok(Ok(_)) => format!(
                "TCP connection works but no etcd answer within {timeout:?} (is it etcd, and is it healthy?)"
            ),
            Ok(Err(e)) => format!("cannot connect: {e}"),
            Err(_) => format!("no TCP connection within {timeout:?}"),
        };
        reasons.push(format!("{endpoint}: {reason}"));
    }
    Error::Unavailable {
        target: endpoints.join(","),
        source: Box::new(Message(reasons.join("; "))),
    }
}

/// Full URLs for the client: a bare `host:port` gets https when TLS is
/// configured, http otherwise. TLS applies to every endpoint, so mixing
/// http:// and https:// is refused.
fn endpoint_urls(config: &EtcdConfig) -> Result<Vec<String>, Error> {
    let tls = config.has_tls();
    let urls: Vec<String> = config
        .endpoints
        .iter()
        .map(|e| {
            let e = e.trim().trim_end_matches('/');
            if e.starts_with("http://") || e.starts_with("https://") {
                e.to_owned()
            } else if tls {
                format!("https://{e}")
            } else {
                format!("http://{e}")
            }
        })
        .collect();
    let secure = urls.iter().filter(|u| u.starts_with("https://")).count();
    if secure > 0 && secure < urls.len() {
        return Err(ConfigError::Endpoint {
            origin: "etcd configuration".into(),
            endpoint: urls
                .iter()
                .find(|u| u.starts_with("http://"))
                .cloned()
                .unwrap_or_default(),
            reason: "the other endpoints use https://; use https:// for every endpoint or for none",
        }
        .into());
    }
    if tls && secure == 0 {
        // Calico's etcd client ignores certificates for http:// endpoints;
        // do the same, but say so.
        tracing::warn!(
            endpoints = %urls.join(","),
            "etcd TLS certificates are configured but the endpoints use http://; connecting without TLS"
        );
    }
    Ok(urls)
}

fn read_pem(source: &PemSource, what: &'static str) -> Result<String, Error> {
    let text = match source {
        PemSource::File(path) => std::fs::read_to_string(path).map_err(|e| Error::Tls {
            file: path.display().to_string(),
            what,
            source: Box::new(e),
        })?,
        PemSource::Inline { pem, .. } => pem.expose().to_owned(),
    };
    if !text.contains("-----BEGIN ") {
        return Err(Error::Tls {
            file: source.describe(),
            what,
            source: Box::new(Message("no PEM block (-----BEGIN ...) found".into())),
        });
    }
    Ok(text)
}

/// TLS settings from the configured CA, certificate and key for https
/// endpoints (`None` for http). Without a CA, the system's roots are
/// trusted.
fn tls_options(config: &EtcdConfig, https: bool) -> Result<Option<TlsOptions>, Error> {
    if !https {
        return Ok(None);
    }
    let mut tls = TlsOptions::new().timeout(config.connect_timeout);
    tls = match &config.ca_cert {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(read_pem(ca, "CA certificate")?)),
        None => tls.with_native_roots(),
    };
    match (&config.cert, &config.key) {
        (Some(cert), Some(key)) => {
            let cert = read_pem(cert, "client certificate")?;
            let key_pem = read_pem(key, "client key")?;
            if !key_pem.contains("PRIVATE KEY-----") {
                return Err(Error::Tls {
                    file: key.describe(),
                    what: "client key",
                    source: Box::new(Message("the PEM holds no private key".into())),
                });
            }
            tls = tls.identity(Identity::from_pem(cert, key_pem));
        }
        (None, None) => {}
        (Some(_), None) | (None, Some(_)) => {
            return Err(ConfigError::IncompleteClientCert {
                origin: "etcd configuration".into(),
                present: if config.cert.is_some() {
                    "the client certificate"
                } else {
                    "the client key"
                },
                missing: if config.cert.is_some() {
                    "the client key"
                } else {
                    "the client certificate"
                },
            }
            .into());
        }
    }
    Ok(Some(tls))
}
