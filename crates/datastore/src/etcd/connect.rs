//! Connecting to etcd: endpoints, TLS material, credentials, the start-up
//! check, and turning client errors into [`Error`]s that say what failed.

use std::time::Duration;

use etcd_client::{Client, ConnectOptions, GetOptions};
use tokio::net::TcpStream;

use super::EtcdBackend;
use super::tls::TlsMaterial;
use crate::config::{ConfigError, EtcdConfig};
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
    let tls = if endpoints.iter().any(|e| e.starts_with("https://")) {
        Some(TlsMaterial::load(config)?)
    } else {
        None
    };
    let target = endpoints.join(",");
    let identity = match (&config.username, &config.cert) {
        (Some(user), _) => format!("user {user}"),
        (None, Some(cert)) => format!("client certificate {}", cert.describe()),
        (None, None) => "an anonymous client".to_owned(),
    };

    let mut options = ConnectOptions::new()
        .with_connect_timeout(config.connect_timeout)
        .with_keep_alive(KEEPALIVE_INTERVAL, KEEPALIVE_TIMEOUT);
    if let Some(tls) = &tls {
        options = options.with_tls(tls.options(config.connect_timeout));
    }
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        options = options.with_user(user.clone(), password.expose().to_owned());
    }

    // The client connects lazily and, when no endpoint can be reached,
    // requests wait for one: the log-in and a first read share one deadline.
    let deadline = tokio::time::Instant::now() + config.connect_timeout;
    let attempt = async {
        let client = Client::connect(&endpoints, Some(options))
            .await
            .map_err(|e| classify(&target, &identity, "connect", "", e))?;
        probe_revision(&client, &target, &identity, config.connect_timeout).await?;
        Ok::<_, Error>(client)
    };
    let failure = match tokio::time::timeout_at(deadline, attempt).await {
        Ok(Ok(client)) => {
            tracing::debug!(target = %target, identity = %identity, "connected to etcd");
            return Ok(EtcdBackend {
                client: std::sync::Arc::new(client),
                target,
                identity,
                request_timeout: config.request_timeout,
                list_page: super::LIST_PAGE,
            });
        }
        // The server answered and said no: that is the whole story.
        Ok(Err(e @ (Error::Auth { .. } | Error::Config(_)))) => return Err(e),
        Ok(Err(e)) => e,
        Err(_) => Error::Timeout {
            target: target.clone(),
            operation: "connect",
            after: config.connect_timeout,
        },
    };
    Err(explain(&endpoints, tls.as_ref(), failure).await)
}

/// Time allowed for finding out why a connection failed.
const DIAGNOSIS_TIMEOUT: Duration = Duration::from_millis(1000);

/// Finds out per endpoint why the cluster could not be used: refused,
/// unroutable, a TLS session the server or we reject, or a server that
/// accepts connections but does not answer. Returns `failure` unchanged
/// when no endpoint shows a problem.
async fn explain(endpoints: &[String], tls: Option<&TlsMaterial>, failure: Error) -> Error {
    let checks = endpoints.iter().map(|endpoint| async move {
        let (scheme, authority) = endpoint.split_once("://").unwrap_or(("http", endpoint.as_str()));
        let authority = authority.trim_end_matches('/');
        let reason = match tokio::time::timeout(DIAGNOSIS_TIMEOUT, TcpStream::connect(authority)).await {
            Ok(Err(e)) => Some(format!("cannot connect: {e}")),
            Err(_) => Some(format!("no TCP connection within {DIAGNOSIS_TIMEOUT:?}")),
            Ok(Ok(tcp)) => match (scheme, tls) {
                ("https", Some(tls)) => tls.explain_failure(authority, DIAGNOSIS_TIMEOUT).await,
                ("http", _) => super::tls::speaks_tls(tcp, DIAGNOSIS_TIMEOUT).await.then(|| {
                    "the server expects TLS: use an https:// endpoint with the etcd CA certificate".to_owned()
                }),
                _ => None,
            },
        };
        reason.map(|r| format!("{endpoint}: {r}"))
    });
    let reasons: Vec<String> = futures::future::join_all(checks)
        .await
        .into_iter()
        .flatten()
        .collect();
    if reasons.is_empty() {
        if let Error::Timeout { target, after, .. } = &failure {
            // Reachable, yet silent: not an etcd answering gRPC.
            return Error::Unavailable {
                target: target.clone(),
                source: Box::new(Message(format!(
                    "connections are accepted but no etcd answer came within {after:?} \
                     (is this an etcd client URL, with the right http/https scheme?)"
                ))),
            };
        }
        return failure;
    }
    Error::Unavailable {
        target: endpoints.join(","),
        source: Box::new(Message(reasons.join("; "))),
    }
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
    const CANCELLED: i32 = 1;
    const UNKNOWN: i32 = 2;
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
            // "Cancelled" is what the client reports when the server drops
            // the connection under it.
            UNAVAILABLE | CANCELLED => unavailable(e),
            UNKNOWN if status.message().contains("transport error") => unavailable(e),
            UNAUTHENTICATED | PERMISSION_DENIED => refused(e),
            // The server rejects a wrong user name or password at log-in.
            INVALID_ARGUMENT
                if status.message().contains("authentication failed")
                    || status.message().contains("user name is empty") =>
            {
                refused(e)
            }
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
