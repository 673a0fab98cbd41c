//! The cross-node routing thread: what Calico's agent does for overlays
//! (its VXLAN and IPIP route managers) and NAT outgoing, through
//! `calico-routing`'s [`Reconciler`] inside the node's namespace.
//!
//! The event loop computes a [`Desired`] value (see `agent::overlay`) and
//! sends it here; this thread makes the kernel match it (tunnel devices,
//! VTEP entries, routes to other nodes' blocks, the NAT table) and reports
//! what changed or failed. It also writes the MTU file the CNI plugin
//! reads when its configuration gives no MTU.
//!
//! Like the dataplane thread it never changes namespace: the reconciler's
//! netlink socket is opened inside the namespace once, and `nft` runs
//! there through `nsenter`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Sender};
use std::thread::JoinHandle;

use calico_routing::{Desired, Reconciler};
use tracing::{debug, info, warn};

/// Where the pod MTU is written unless `CALICO_MTU_FILE` says otherwise:
/// where Calico's CNI plugin looks for it.
pub const DEFAULT_MTU_FILE: &str = "/var/lib/calico/mtu";

/// The namespace of this process, for a node that is the host itself.
const OWN_NETNS: &str = "/proc/self/ns/net";

/// Work for the thread.
#[derive(Debug, Clone)]
pub struct OverlayJob {
    pub desired: Arc<Desired>,
    /// The MTU pods should use, written to the MTU file when it changes.
    pub pod_mtu: u32,
}

/// What the thread did with a job.
#[derive(Debug, Clone)]
pub struct OverlayOutcome {
    /// One line per change made.
    pub changes: Vec<String>,
    /// Every step that failed, on one line; `None` when all went well.
    pub error: Option<String>,
}

/// Could not start the thread.
#[derive(Debug, thiserror::Error)]
pub enum OverlayStartError {
    #[error("opening the routing reconciler")]
    Open(#[source] calico_routing::OpenError),
    #[error("detecting the host MTU")]
    Mtu(#[source] Box<calico_routing::StepError>),
    #[error("starting the routing thread")]
    Thread(#[source] std::io::Error),
}

/// The running thread; dropping it stops the thread after its current job.
#[derive(Debug)]
pub struct Overlay {
    jobs: Option<Sender<OverlayJob>>,
    thread: Option<JoinHandle<()>>,
    /// The smallest MTU of the node's uplinks, read at start.
    pub host_mtu: u32,
}

impl Overlay {
    /// Starts the thread for the namespace at `netns` (the process's own
    /// when `None`), owning routes with `protocol`.
    pub fn start(
        netns: Option<&Path>,
        protocol: u8,
        mtu_file: PathBuf,
        report: impl Fn(OverlayOutcome) + Send + 'static,
    ) -> Result<Overlay, OverlayStartError> {
        let netns = netns.unwrap_or(Path::new(OWN_NETNS));
        let mut reconciler = Reconciler::open(netns, protocol).map_err(OverlayStartError::Open)?;
        let host_mtu = reconciler
            .host_mtu(&calico_routing::mtu::default_pattern())
            .map_err(|e| OverlayStartError::Mtu(Box::new(e)))?;
        let (tx, rx) = mpsc::channel::<OverlayJob>();
        let thread = std::thread::Builder::new()
            .name("routing".into())
            .spawn(move || {
                let mut written: Option<u32> = None;
                while let Ok(mut job) = rx.recv() {
                    // Only the newest desired state matters.
                    while let Ok(later) = rx.try_recv() {
                        job = later;
                    }
                    let outcome = match reconciler.apply(&job.desired) {
                        Ok(changes) => OverlayOutcome {
                            changes,
                            error: None,
                        },
                        Err(e) => OverlayOutcome {
                            changes: e.changes.clone(),
                            error: Some(e.to_string()),
                        },
                    };
                    if written != Some(job.pod_mtu) {
                        match write_mtu_file(&mtu_file, job.pod_mtu) {
                            Ok(()) => {
                                info!(mtu = job.pod_mtu, file = %mtu_file.display(), "pod MTU written");
                                written = Some(job.pod_mtu);
                            }
                            Err(e) => {
                                warn!(file = %mtu_file.display(), error = %e, "cannot write the pod MTU file")
                            }
                        }
                    }
                    report(outcome);
                }
                debug!("routing thread stopping");
            })
            .map_err(OverlayStartError::Thread)?;
        Ok(Overlay {
            jobs: Some(tx),
            thread: Some(thread),
            host_mtu,
        })
    }

    /// Hands a desired state to the thread; `false` when it has stopped.
    pub fn send(&self, job: OverlayJob) -> bool {
        self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Writes the MTU file atomically (a reader never sees it half-written).
fn write_mtu_file(path: &Path, mtu: u32) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{mtu}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mtu_file_is_replaced_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("calico/mtu");
        write_mtu_file(&path, 1450).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1450\n");
        write_mtu_file(&path, 1500).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "1500\n");
        assert!(!path.with_extension("tmp").exists());
    }
}
