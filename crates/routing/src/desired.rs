//! The desired routing state of one node, as values: what the driver
//! makes the kernel match, and what tests compare.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::Ipv4Addr;

use calico_netlink::{Mac, format_mac};
use ipnet::Ipv4Net;

use crate::nat::NatOutgoing;

/// The VXLAN device (what Calico calls `vxlan.calico`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VxlanDevice {
    pub name: String,
    pub vni: u32,
    pub port: u16,
    pub mtu: u32,
    pub mac: Mac,
    /// The device's own address (the node's VXLAN tunnel address), as a /32.
    pub address: Ipv4Addr,
    /// The underlay address packets leave from; its interface is the
    /// device's parent.
    pub local: Ipv4Addr,
}

/// The IPIP device (`tunl0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpipDevice {
    pub name: String,
    pub mtu: u32,
    /// The node's IPIP tunnel address, as a /32.
    pub address: Ipv4Addr,
}

/// A remote tunnel endpoint: a permanent ARP entry (tunnel address to
/// MAC) and a permanent FDB entry (MAC to the node's underlay address) on
/// the VXLAN device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Vtep {
    pub node: String,
    pub tunnel_address: Ipv4Addr,
    pub mac: Mac,
    pub node_address: Ipv4Addr,
}

/// How a route leaves the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Via {
    /// `via <remote tunnel address> dev vxlan.calico onlink`.
    Vxlan { gateway: Ipv4Addr },
    /// `via <remote node address> dev tunl0 onlink`.
    Ipip { gateway: Ipv4Addr },
    /// Unencapsulated: `via <remote node address> dev <parent>`, the
    /// interface holding this node's own address (same subnet).
    Underlay { gateway: Ipv4Addr },
    /// `blackhole`: a block of this node's; addresses in it that no local
    /// workload holds go nowhere rather than out of the default route.
    Blackhole,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Via::Vxlan { gateway } => write!(f, "via {gateway} dev vxlan (onlink)"),
            Via::Ipip { gateway } => write!(f, "via {gateway} dev ipip (onlink)"),
            Via::Underlay { gateway } => write!(f, "via {gateway} dev underlay"),
            Via::Blackhole => f.write_str("blackhole"),
        }
    }
}

/// Something in the input that keeps a route or a device from being
/// programmed; reported, never fatal.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Problem {
    /// This node's Node resource has no IPv4 address: no tunnel can start
    /// and CrossSubnet cannot tell subnets apart.
    LocalAddressUnknown,
    /// A VXLAN pool exists but this node has no VXLAN tunnel address yet.
    LocalVxlanAddressUnknown,
    /// An IPIP pool exists but this node has no IPIP tunnel address yet.
    LocalIpipAddressUnknown,
    /// The Node resource of a block's owner is missing.
    UnknownNode { node: String, block: Ipv4Net },
    /// A remote node has no IPv4 address, so its blocks cannot be reached.
    RemoteAddressUnknown { node: String, block: Ipv4Net },
    /// A remote node has no VXLAN tunnel address yet.
    RemoteVtepUnknown { node: String, block: Ipv4Net },
    /// An unencapsulated route to a node in another subnet: its address is
    /// not on a local link, so only BGP could route there.
    NotOnLink {
        node: String,
        block: Ipv4Net,
        gateway: Ipv4Addr,
    },
    /// A block outside every pool (its pool was deleted).
    BlockWithoutPool { block: Ipv4Net },
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::LocalAddressUnknown => f.write_str(
                "this node's Node resource has no IPv4 address (spec.bgp.ipv4Address): no tunnel or same-subnet route can be programmed",
            ),
            Problem::LocalVxlanAddressUnknown => f.write_str(
                "a VXLAN pool exists but this node has no VXLAN tunnel address (spec.ipv4VXLANTunnelAddr) yet",
            ),
            Problem::LocalIpipAddressUnknown => f.write_str(
                "an IPIP pool exists but this node has no IPIP tunnel address (spec.bgp.ipv4IPIPTunnelAddr) yet",
            ),
            Problem::UnknownNode { node, block } => {
                write!(f, "block {block} belongs to node {node}, which has no Node resource")
            }
            Problem::RemoteAddressUnknown { node, block } => write!(
                f,
                "node {node} has no IPv4 address, so its block {block} is not routed"
            ),
            Problem::RemoteVtepUnknown { node, block } => write!(
                f,
                "node {node} has no VXLAN tunnel address yet, so its block {block} is not routed"
            ),
            Problem::NotOnLink {
                node,
                block,
                gateway,
            } => write!(
                f,
                "block {block} of node {node} needs an unencapsulated route via {gateway}, which is not in this node's subnet (use VXLAN or IPIP CrossSubnet, or BGP)"
            ),
            Problem::BlockWithoutPool { block } => {
                write!(f, "block {block} is in no IP pool; it is not routed")
            }
        }
    }
}

/// This node's desired routing state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Desired {
    /// This node's own underlay address: its interface is the VXLAN
    /// device's parent and the one same-subnet routes leave by.
    pub local: Option<Ipv4Addr>,
    /// `None`: no VXLAN pool, or not enough known to build the device;
    /// the driver then removes a device of that name.
    pub vxlan: Option<VxlanDevice>,
    pub ipip: Option<IpipDevice>,
    /// Remote VTEPs by node name.
    pub vteps: BTreeMap<String, Vtep>,
    /// Routes by destination.
    pub routes: BTreeMap<Ipv4Net, Via>,
    pub nat: NatOutgoing,
    pub problems: BTreeSet<Problem>,
}

impl Desired {
    /// One line per device, VTEP and route, in a stable order: for logs
    /// and golden tests.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Some(v) = &self.vxlan {
            out.push(format!(
                "device {} vxlan id {} port {} mtu {} mac {} address {}/32 local {}",
                v.name,
                v.vni,
                v.port,
                v.mtu,
                format_mac(&v.mac),
                v.address,
                v.local
            ));
        }
        if let Some(d) = &self.ipip {
            out.push(format!(
                "device {} ipip mtu {} address {}/32",
                d.name, d.mtu, d.address
            ));
        }
        for vtep in self.vteps.values() {
            out.push(format!(
                "vtep {} {} lladdr {} dst {}",
                vtep.node,
                vtep.tunnel_address,
                format_mac(&vtep.mac),
                vtep.node_address
            ));
        }
        for (destination, via) in &self.routes {
            out.push(format!("route {destination} {via}"));
        }
        for pool in &self.nat.masquerade {
            out.push(format!("masquerade from {pool} to outside all pools"));
        }
        out
    }
}
