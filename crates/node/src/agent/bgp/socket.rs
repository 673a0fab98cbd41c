//! The BGP status socket, what Calico's BIRD control socket
//! (`/var/run/calico/bird.ctl`) is to `calicoctl node status`.
//!
//! A client connects, writes one request line and reads the answer until
//! the agent closes the connection. The one request is `show protocols`;
//! the answer is what calicoctl prints after "Calico process is running.":
//! the IPv4 and IPv6 peer tables (rendered by `calico_bgp::status`), or
//! Calico's line saying that no BGP daemon runs. Anything else gets a line
//! starting with `error:`.
//!
//! The socket is a file, so it is reachable from any network namespace;
//! each agent on a machine needs its own path (`CALICO_BGP_STATUS_SOCKET`).

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use super::runner::Running;

/// The request `calicoctl node status` sends.
pub const SHOW_PROTOCOLS: &str = "show protocols";
/// What Calico prints when no BGP daemon runs (after its own newline).
pub const NO_BGP: &str = "\nNone of the BGP backend processes (BIRD or GoBGP) are running.\n\n";

/// How long a client has to send its request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the socket could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("creating the directory {}", path.display())]
    Directory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("another agent answers on {}; set CALICO_BGP_STATUS_SOCKET to a path of this node's own", path.display())]
    InUse { path: PathBuf },
    #[error("removing the stale socket {}", path.display())]
    Stale {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("listening on {}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The running server; stops and removes its socket file on drop.
#[derive(Debug)]
pub struct StatusServer {
    path: PathBuf,
    task: JoinHandle<()>,
}

impl Drop for StatusServer {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_file(&self.path);
    }
}

impl StatusServer {
    /// Listens on `path` (replacing a stale socket nobody answers on) and
    /// answers from the speaker published in `running`.
    pub fn start(
        path: &Path,
        running: watch::Receiver<Option<Running>>,
    ) -> Result<StatusServer, SocketError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| SocketError::Directory {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if path.exists() {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(|source| SocketError::Stale {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let listener = UnixListener::bind(path).map_err(|source| SocketError::Bind {
            path: path.to_path_buf(),
            source,
        })?;
        let task = tokio::spawn(serve(listener, running));
        Ok(StatusServer {
            path: path.to_path_buf(),
            task,
        })
    }
}

async fn serve(listener: UnixListener, running: watch::Receiver<Option<Running>>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let running = running.borrow().clone();
                tokio::spawn(async move {
                    if let Err(e) = answer(stream, running).await {
                        debug!(error = %e, "status client went away");
                    }
                });
            }
            Err(e) => {
                warn!(error = %e, "accepting a status connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn answer(stream: UnixStream, running: Option<Running>) -> io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut request = String::new();
    tokio::time::timeout(
        REQUEST_TIMEOUT,
        BufReader::new(read).read_line(&mut request),
    )
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "no request"))??;
    let reply = match request.trim() {
        SHOW_PROTOCOLS => peer_tables(running).await,
        other => {
            format!("error: unknown request {other:?}; the one request is {SHOW_PROTOCOLS:?}\n")
        }
    };
    write.write_all(reply.as_bytes()).await?;
    write.shutdown().await
}

/// The peer tables of the running speaker, or Calico's "no BGP" line.
pub async fn peer_tables(running: Option<Running>) -> String {
    let Some(running) = running else {
        return NO_BGP.to_owned();
    };
    match running.handle.status().await {
        Ok(report) => calico_bgp::status::format_peer_tables(&report),
        Err(_) => NO_BGP.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn ask(path: &Path, request: &str) -> String {
        use tokio::io::AsyncReadExt;
        let mut stream = UnixStream::connect(path).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        reply
    }

    #[tokio::test]
    async fn answers_without_a_speaker_and_refuses_to_share_its_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run").join("bgp.ctl");
        let (_tx, rx) = watch::channel(None);
        let server = StatusServer::start(&path, rx.clone()).unwrap();
        assert_eq!(ask(&path, "show protocols\n").await, NO_BGP);
        assert!(ask(&path, "show route\n").await.starts_with("error:"));
        assert!(matches!(
            StatusServer::start(&path, rx.clone()),
            Err(SocketError::InUse { .. })
        ));
        drop(server);
        assert!(!path.exists(), "the socket file is removed on drop");

        // A stale file (nobody answering) is replaced.
        std::fs::write(&path, b"").unwrap();
        let _server = StatusServer::start(&path, rx).unwrap();
        assert_eq!(ask(&path, "show protocols\n").await, NO_BGP);
    }
}
