//! Removing a workload interface: idempotent, "already gone" is success.

use std::path::{Path, PathBuf};

use super::HostNetwork;
use crate::netns::{NetNs, NetNsError};
use crate::socket::{Netlink, NetlinkError};

/// What removing a workload interface found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removed {
    /// The interface was there and has been deleted (with its peer, its
    /// addresses and every route through either end).
    Deleted,
    /// The namespace exists but has no such interface.
    AlreadyGone,
    /// The namespace itself is gone, and the kernel destroyed its
    /// interfaces with it.
    NetnsGone,
}

#[derive(Debug, thiserror::Error)]
pub enum TeardownError {
    #[error("opening the pod's network namespace {}", netns.display())]
    Netns {
        netns: PathBuf,
        #[source]
        source: NetNsError,
    },
    #[error("opening a netlink socket in the pod's network namespace {}", netns.display())]
    Socket {
        netns: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("deleting interface {name} in the pod's network namespace {}", netns.display())]
    Delete {
        name: String,
        netns: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("deleting host interface {name}")]
    DeleteHost {
        name: String,
        #[source]
        source: NetlinkError,
    },
}

/// Deletes interface `ifname` inside the network namespace at `netns`.
/// Deleting the pod end of a veth pair removes the host end and the host
/// routes through it as well. A missing namespace or interface is success.
pub fn remove_pod_interface(netns: &Path, ifname: &str) -> Result<Removed, TeardownError> {
    let ns = match NetNs::open(netns) {
        Ok(ns) => ns,
        Err(e) if e.is_not_found() => return Ok(Removed::NetnsGone),
        Err(source) => {
            return Err(TeardownError::Netns {
                netns: netns.to_path_buf(),
                source,
            });
        }
    };
    let mut netlink = Netlink::open_in(&ns).map_err(|source| TeardownError::Socket {
        netns: netns.to_path_buf(),
        source,
    })?;
    match netlink.delete_link_by_name(ifname) {
        Ok(true) => Ok(Removed::Deleted),
        Ok(false) => Ok(Removed::AlreadyGone),
        Err(source) => Err(TeardownError::Delete {
            name: ifname.to_string(),
            netns: netns.to_path_buf(),
            source,
        }),
    }
}

impl HostNetwork {
    /// Deletes a host-side interface by name; already gone is success.
    pub fn remove_host_interface(&mut self, name: &str) -> Result<Removed, TeardownError> {
        match self.netlink.delete_link_by_name(name) {
            Ok(true) => Ok(Removed::Deleted),
            Ok(false) => Ok(Removed::AlreadyGone),
            Err(source) => Err(TeardownError::DeleteHost {
                name: name.to_string(),
                source,
            }),
        }
    }
}
