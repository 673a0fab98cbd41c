//! The kernel side, behind [`Dataplane`] so the plugin flow can be tested
//! without root; [`NetlinkDataplane`] is the real one.
//!
//! The calls are synchronous and short (a few milliseconds of netlink
//! requests); the plugin runs them from a single-threaded runtime where
//! nothing else is waiting.

use std::path::Path;
use std::sync::Mutex;

use calico_netlink::{
    HostNetwork, NetNs, NetNsError, NetlinkError, Removed, WorkloadInterface, WorkloadLinks,
    remove_pod_interface,
};

#[derive(Debug, thiserror::Error)]
pub enum DataplaneError {
    /// The pod's namespace does not exist (any more).
    #[error("the pod's network namespace {} does not exist", path.display())]
    NetnsMissing { path: std::path::PathBuf },
    #[error("opening the pod's network namespace")]
    Netns(#[source] NetNsError),
    #[error("opening a netlink socket in the host namespace")]
    Host(#[source] NetlinkError),
    #[error(transparent)]
    Setup(#[from] calico_netlink::SetupError),
    #[error(transparent)]
    Teardown(#[from] calico_netlink::TeardownError),
    #[error(transparent)]
    Check(#[from] calico_netlink::CheckError),
    /// Test doubles and other dataplanes.
    #[error("{0}")]
    Other(String),
}

/// Creating, removing and checking a workload's interface.
pub trait Dataplane: Send + Sync {
    /// Creates the interface in the pod's namespace at `netns`; on failure
    /// nothing is left behind.
    fn add(&self, netns: &Path, spec: &WorkloadInterface) -> Result<WorkloadLinks, DataplaneError>;

    /// Removes the pod's interface (and so the host end and its routes).
    /// A missing namespace or interface is success.
    fn remove(&self, netns: &Path, pod_ifname: &str) -> Result<Removed, DataplaneError>;

    /// Reports every difference between the kernel and `spec`.
    fn check(
        &self,
        netns: &Path,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, DataplaneError>;
}

/// The dataplane over netlink, with the host namespace of the calling
/// process (or a simulated node's namespace in tests).
#[derive(Debug)]
pub struct NetlinkDataplane {
    host: Mutex<HostNetwork>,
}

impl NetlinkDataplane {
    /// Works in the caller's network namespace, as the plugin does.
    pub fn current() -> Result<Self, DataplaneError> {
        Ok(NetlinkDataplane {
            host: Mutex::new(HostNetwork::current().map_err(DataplaneError::Host)?),
        })
    }

    /// Works with `host` as the node's namespace.
    pub fn with_host(host: NetNs) -> Result<Self, DataplaneError> {
        Ok(NetlinkDataplane {
            host: Mutex::new(HostNetwork::new(host).map_err(DataplaneError::Host)?),
        })
    }

    fn host(&self) -> std::sync::MutexGuard<'_, HostNetwork> {
        // A panic while holding the lock leaves nothing half-updated in
        // the guard itself: every call re-reads the kernel.
        self.host.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn open_pod(netns: &Path) -> Result<NetNs, DataplaneError> {
    NetNs::open(netns).map_err(|e| {
        if e.is_not_found() {
            DataplaneError::NetnsMissing {
                path: netns.to_path_buf(),
            }
        } else {
            DataplaneError::Netns(e)
        }
    })
}

impl Dataplane for NetlinkDataplane {
    fn add(&self, netns: &Path, spec: &WorkloadInterface) -> Result<WorkloadLinks, DataplaneError> {
        let pod = open_pod(netns)?;
        Ok(self.host().add_workload(&pod, spec)?)
    }

    fn remove(&self, netns: &Path, pod_ifname: &str) -> Result<Removed, DataplaneError> {
        Ok(remove_pod_interface(netns, pod_ifname)?)
    }

    fn check(
        &self,
        netns: &Path,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, DataplaneError> {
        let pod = open_pod(netns)?;
        Ok(self.host().check_workload(&pod, spec)?)
    }
}
