//! The agent's HTTP endpoints: `/liveness` and `/readiness` on the health
//! port (Calico's 9099 on localhost), `/metrics` on the Prometheus port
//! (9091). Both listen inside the node's network namespace, as Calico's
//! agent listens on its host's network.
//!
//! The event loop publishes a [`HealthStatus`] value on a watch channel;
//! the handlers only read it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener as StdListener, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use calico_netlink::NetNs;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::metrics::Metrics;

/// The event loop stops being live when it has not reported for this long.
pub const LOOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The dataplane thread stops being live when one update takes this long.
pub const DATAPLANE_TIMEOUT: Duration = Duration::from_secs(90);

/// What the event loop reports about itself.
#[derive(Debug, Clone)]
pub struct HealthStatus {
    /// When the loop last reported.
    pub heartbeat: Instant,
    /// In sync with the datastore and the dataplane programmed.
    pub ready: bool,
    /// Why not ready, for the response body.
    pub reason: String,
    /// Since when the dataplane thread has been busy with one update.
    pub applying_since: Option<Instant>,
}

impl HealthStatus {
    pub fn starting() -> HealthStatus {
        HealthStatus {
            heartbeat: Instant::now(),
            ready: false,
            reason: "starting".into(),
            applying_since: None,
        }
    }

    /// Live: the loop reports and the dataplane is not stuck.
    pub fn live(&self, now: Instant) -> Result<(), String> {
        let silent = now.saturating_duration_since(self.heartbeat);
        if silent > LOOP_TIMEOUT {
            return Err(format!("the event loop has not reported for {silent:?}"));
        }
        if let Some(since) = self.applying_since {
            let busy = now.saturating_duration_since(since);
            if busy > DATAPLANE_TIMEOUT {
                return Err(format!("a dataplane update has been running for {busy:?}"));
            }
        }
        Ok(())
    }
}

/// Resolves Calico's host setting: empty for every address, `localhost`,
/// an address, or a name.
pub fn resolve_host(host: &str, port: u16) -> io::Result<SocketAddr> {
    match host.trim() {
        "" => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)),
        "localhost" => Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)),
        other => match other.parse::<IpAddr>() {
            Ok(ip) => Ok(SocketAddr::new(ip, port)),
            Err(_) => (other, port).to_socket_addrs()?.next().ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("{other} has no address"))
            }),
        },
    }
}

/// A listening socket on `address` inside the namespace at `netns` (the
/// process's own when `None`), opened on a short-lived thread so no
/// runtime thread changes namespace.
pub fn bind(netns: Option<&Path>, address: SocketAddr) -> io::Result<StdListener> {
    let listen = move || {
        let listener = StdListener::bind(address)?;
        listener.set_nonblocking(true)?;
        Ok(listener)
    };
    match netns {
        None => listen(),
        Some(path) => NetNs::open(path)
            .map_err(io::Error::other)?
            .run(listen)
            .map_err(io::Error::other)?,
    }
}

fn serve(listener: StdListener, router: Router) -> io::Result<JoinHandle<()>> {
    let listener = tokio::net::TcpListener::from_std(listener)?;
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::warn!(error = %e, "HTTP server stopped");
        }
    }))
}

/// Serves `/liveness` and `/readiness` (200 or 503, with the reason).
pub fn spawn_health(
    listener: StdListener,
    status: watch::Receiver<HealthStatus>,
) -> io::Result<JoinHandle<()>> {
    async fn liveness(State(status): State<watch::Receiver<HealthStatus>>) -> impl IntoResponse {
        match status.borrow().live(Instant::now()) {
            Ok(()) => (StatusCode::OK, "live\n".to_string()),
            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        }
    }
    async fn readiness(State(status): State<watch::Receiver<HealthStatus>>) -> impl IntoResponse {
        let status = status.borrow();
        match status.live(Instant::now()) {
            Err(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
            Ok(()) if status.ready => (StatusCode::OK, "ready\n".to_string()),
            Ok(()) => (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{}\n", status.reason),
            ),
        }
    }
    let router = Router::new()
        .route("/liveness", get(liveness))
        .route("/readiness", get(readiness))
        .with_state(status);
    serve(listener, router)
}

/// Serves `/metrics` in Prometheus' text format.
pub fn spawn_metrics(listener: StdListener, metrics: Arc<Metrics>) -> io::Result<JoinHandle<()>> {
    async fn encode(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
        (
            [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
            metrics.encode(),
        )
    }
    let router = Router::new()
        .route("/metrics", get(encode))
        .with_state(metrics);
    serve(listener, router)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_needs_a_recent_heartbeat_and_no_stuck_update() {
        let now = Instant::now();
        let mut status = HealthStatus::starting();
        assert!(status.live(now).is_ok());
        status.applying_since = Some(now);
        assert!(status.live(now + Duration::from_secs(10)).is_ok());
        let later = now + DATAPLANE_TIMEOUT + Duration::from_secs(1);
        status.heartbeat = later;
        assert!(status.live(later).unwrap_err().contains("dataplane"));
        status.applying_since = None;
        assert!(
            status
                .live(later + LOOP_TIMEOUT + Duration::from_secs(1))
                .unwrap_err()
                .contains("event loop")
        );
    }

    #[test]
    fn hosts_resolve_as_calico_names_them() {
        assert_eq!(
            resolve_host("localhost", 9099).unwrap(),
            "127.0.0.1:9099".parse().unwrap()
        );
        assert_eq!(
            resolve_host("", 9091).unwrap(),
            "0.0.0.0:9091".parse().unwrap()
        );
        assert_eq!(resolve_host("::1", 1).unwrap(), "[::1]:1".parse().unwrap());
    }
}
