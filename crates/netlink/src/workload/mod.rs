//! A workload's (pod's) network interface, plumbed the way Calico's CNI
//! plugin does it:
//!
//! - a veth pair, the pod end named as the runtime asked (`eth0`), the host
//!   end `cali…` with the fixed MAC `ee:ee:ee:ee:ee:ee`;
//! - on the host end: proxy ARP and forwarding for IPv4, proxy NDP and
//!   forwarding for IPv6, no router advertisements, no DAD;
//! - in the pod: the addresses as /32 and /128, a link-scope route to the
//!   dummy next hop `169.254.1.1` and the default route via it; for IPv6 the
//!   default route goes via the host end's link-local address;
//! - on the host: a /32 (/128) route to each pod address through the
//!   `cali…` device.
//!
//! [`HostNetwork::add_workload`] either completes or removes what it
//! created; [`remove_pod_interface`] is idempotent;
//! [`HostNetwork::check_workload`] reports every difference it finds.

mod check;
mod setup;
mod teardown;

use std::net::{IpAddr, Ipv4Addr};

use ipnet::IpNet;

use crate::link::{Link, Mac};
use crate::netns::{NetNs, NetNsError};
use crate::socket::{Netlink, NetlinkError};

pub use check::CheckError;
pub use setup::SetupError;
pub use teardown::{Removed, TeardownError, remove_pod_interface};

/// The MAC of every host-side workload interface. Pods always see the same
/// gateway MAC, so they survive a veth being recreated.
pub const HOST_SIDE_MAC: Mac = [0xee; 6];

/// The next hop pods use for IPv4. It is never assigned anywhere: the host
/// end answers ARP for it by proxy ARP.
pub const IPV4_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);

/// The interface to create for one workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadInterface {
    /// Host end, `cali` + 11 hex characters.
    pub host_ifname: String,
    /// Pod end, the runtime's `CNI_IFNAME`.
    pub pod_ifname: String,
    /// Addresses for the pod; installed as /32 and /128 whatever prefix
    /// the IPAM returned.
    pub addresses: Vec<IpAddr>,
    /// Destinations routed out of the pod via the gateway; the families
    /// without an address are skipped. Calico's default is `0.0.0.0/0` and
    /// `::/0` ([`default_routes`]).
    pub routes: Vec<IpNet>,
    /// MTU of both ends; `None` leaves the kernel default.
    pub mtu: Option<u32>,
    /// Transmit and receive queues of both ends (Calico's `num_queues`);
    /// `None` leaves one.
    pub queues: Option<u32>,
    /// A fixed MAC for the pod end (Calico's `cni.projectcalico.org/hwAddr`
    /// annotation); `None` keeps the kernel's random one.
    pub pod_mac: Option<Mac>,
    /// Whether the pod may forward packets (`container_settings`).
    pub allow_ip_forwarding: bool,
    /// Whether to program the host-side routes to the pod addresses (Calico
    /// skips them when the agent will program them).
    pub host_routes: bool,
}

impl WorkloadInterface {
    pub fn has_ipv4(&self) -> bool {
        self.addresses.iter().any(IpAddr::is_ipv4)
    }

    pub fn has_ipv6(&self) -> bool {
        self.addresses.iter().any(IpAddr::is_ipv6)
    }

    /// The pod addresses as the host routes and the pod interface carry
    /// them: /32 for IPv4, /128 for IPv6.
    pub fn host_prefixes(&self) -> Vec<IpNet> {
        self.addresses.iter().map(|ip| IpNet::from(*ip)).collect()
    }
}

/// Calico's default pod routes: everything, via the gateway.
pub fn default_routes() -> Vec<IpNet> {
    vec![
        "0.0.0.0/0".parse().expect("valid prefix"),
        "::/0".parse().expect("valid prefix"),
    ]
}

/// Both ends of a workload interface after setup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadLinks {
    pub host: Link,
    pub pod: Link,
}

/// The host namespace (the node's own, or a simulated one in tests) with a
/// netlink socket open inside it.
#[derive(Debug)]
pub struct HostNetwork {
    ns: NetNs,
    netlink: Netlink,
}

impl HostNetwork {
    /// The namespace the calling thread is in: what the CNI plugin uses, as
    /// the runtime runs it in the host namespace.
    pub fn current() -> Result<Self, NetlinkError> {
        let ns = NetNs::current().map_err(|source| NetlinkError::Namespace { source })?;
        Self::new(ns)
    }

    /// Another namespace acting as the host (a simulated node).
    pub fn new(ns: NetNs) -> Result<Self, NetlinkError> {
        let netlink = Netlink::open_in(&ns)?;
        Ok(HostNetwork { ns, netlink })
    }

    pub fn netns(&self) -> &NetNs {
        &self.ns
    }

    /// The socket in the host namespace, for callers that need more than
    /// this module offers.
    pub fn netlink(&mut self) -> &mut Netlink {
        &mut self.netlink
    }
}

/// Opens the pod's namespace and a socket inside it, with one trip into the
/// namespace that also applies `sysctls`.
fn enter_pod(
    pod: &NetNs,
    sysctls: &[crate::sysctl::Sysctl],
) -> Result<(Netlink, Vec<crate::sysctl::SysctlError>), PodEntryError> {
    // On the calling thread: a thread of its own would cost more than the
    // few writes and the socket (the CNI plugin does this for every pod).
    pod.run_here(|| {
        let mut warnings = Vec::new();
        for setting in sysctls {
            match crate::sysctl::write(&setting.key, setting.value) {
                Ok(()) => {}
                Err(e) if setting.optional => warnings.push(e),
                Err(e) => return Err(PodEntryError::Sysctl(e)),
            }
        }
        let netlink = Netlink::open().map_err(PodEntryError::Netlink)?;
        Ok((netlink, warnings))
    })
    .map_err(PodEntryError::Namespace)?
}

#[derive(Debug, thiserror::Error)]
enum PodEntryError {
    #[error(transparent)]
    Namespace(NetNsError),
    #[error(transparent)]
    Sysctl(crate::sysctl::SysctlError),
    #[error(transparent)]
    Netlink(NetlinkError),
}
