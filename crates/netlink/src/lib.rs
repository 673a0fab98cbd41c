//! calico-netlink: the kernel side of pod networking.
//!
//! This crate owns every interaction with network namespaces, links,
//! addresses, routes and sysctls that the CNI plugin needs, and it is the
//! only crate in the workspace that enters network namespaces. It decides
//! nothing about policy or addressing: callers say which interface, which
//! addresses and which routes, and this crate makes the kernel match.
//!
//! It is also the one crate where `unsafe` is denied rather than forbidden,
//! for the system calls no safe wrapper offers (setting TCP MD5 keys) and
//! the calls into libnftables; each block is allowed on its own and says
//! why it is sound.
//!
//! Where to start:
//! - [`workload`]: a pod's veth pair, addresses and routes, set up the way
//!   Calico's CNI plugin does it, with rollback ([`HostNetwork::add_workload`]),
//!   idempotent removal ([`remove_pod_interface`]) and checking
//!   ([`HostNetwork::check_workload`]);
//! - [`netns`]: namespace handles and the single place that calls `setns`,
//!   always on a dedicated short-lived thread;
//! - [`Netlink`]: a synchronous rtnetlink socket (built on
//!   `netlink-packet-route` and `netlink-sys`) that stays bound to the
//!   namespace it was opened in, whichever thread uses it;
//! - [`tcp_md5`]: TCP MD5 signature keys (RFC 2385, BGP passwords) on a
//!   socket, for the BGP speaker;
//! - [`libnftables`]: nft's library in process, on a thread inside the
//!   namespace it serves, for the node agent's nftables writes.
//!
//! The sockets are synchronous on purpose: the plugin is a short-lived
//! process making a dozen sequential requests, and without an async runtime
//! there is no worker thread that could end up in the wrong namespace.
//!
//! With the `testing` feature, the `testing` module offers scratch namespaces for
//! tests (created with `ip netns add`, removed on drop).

pub mod address;
pub mod libnftables;
pub mod link;
pub mod netns;
pub mod route;
pub mod socket;
pub mod sysctl;
pub mod tcp_md5;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod workload;

pub use address::Address;
pub use link::{Link, Mac, VethSpec, format_mac, parse_mac};
pub use netns::{NetNs, NetNsError};
pub use route::Route;
pub use socket::{Netlink, NetlinkError};
pub use workload::{
    CheckError, HOST_SIDE_MAC, HostNetwork, IPV4_GATEWAY, Removed, SetupError, TeardownError,
    WorkloadInterface, WorkloadLinks, default_routes, remove_pod_interface,
};
