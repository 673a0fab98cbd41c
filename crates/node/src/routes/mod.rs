//! The agent's routes: a /32 (/128) to each local workload through its
//! `cali…` interface, and a blackhole route for each IPAM block affine to
//! this node (so traffic to an unused address of a local block is dropped
//! here rather than sent back towards the network). [`desired`] computes
//! them as a value; [`kernel::RouteDriver`] makes the main table match.
//!
//! The agent's routes carry a protocol number of its own (Calico's 80, or
//! `deviceRouteProtocol` when set to something other than `boot`): routes
//! with any other protocol are never deleted, only replaced when the agent
//! needs the same destination (as Calico does with the CNI plugin's
//! routes).

pub mod kernel;

use std::collections::{BTreeMap, BTreeSet};

use calico_policy::EndpointKey;
use calico_policy::program::Dataplane;
use ipnet::IpNet;

/// Calico's protocol number for routes only it programs.
pub const CALICO_ROUTE_PROTOCOL: u8 = 80;

/// The kernel's `boot` protocol, Calico's default `deviceRouteProtocol`.
pub const RTPROT_BOOT: u8 = 3;

/// The protocol the agent tags its routes with: Calico's own unless
/// `deviceRouteProtocol` names another (non-`boot`) one.
pub fn route_protocol(device_route_protocol: u8) -> u8 {
    if device_route_protocol == RTPROT_BOOT || device_route_protocol == 0 {
        CALICO_ROUTE_PROTOCOL
    } else {
        device_route_protocol
    }
}

/// Where a route sends traffic.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Target {
    /// Straight out of this interface (link scope for IPv4).
    Interface(String),
    /// Drop it.
    Blackhole,
}

/// The routes the agent wants, by destination.
pub type DesiredRoutes = BTreeMap<IpNet, Target>;

/// Workload routes for every local workload endpoint's addresses, and
/// blackhole routes for the affine blocks. A block as long as an address
/// (/32, /128) gets none: it would shadow the workload's own route. Where a
/// workload route and a block share a destination, the workload wins.
pub fn desired(
    dataplane: &Dataplane,
    affine_blocks: &BTreeSet<IpNet>,
    ipv6: bool,
) -> DesiredRoutes {
    let mut routes = DesiredRoutes::new();
    for block in affine_blocks {
        let full = if block.addr().is_ipv4() { 32 } else { 128 };
        if block.prefix_len() < full && (ipv6 || block.addr().is_ipv4()) {
            routes.insert(block.trunc(), Target::Blackhole);
        }
    }
    for (key, program) in &dataplane.endpoints {
        if !matches!(key, EndpointKey::Workload { .. }) || program.interface_name.is_empty() {
            continue;
        }
        for address in &program.addresses {
            if ipv6 || address.addr().is_ipv4() {
                routes.insert(
                    address.trunc(),
                    Target::Interface(program.interface_name.clone()),
                );
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_policy::program::{Chains, EndpointProgram};

    fn workload(name: &str, iface: &str, addrs: &[&str]) -> (EndpointKey, EndpointProgram) {
        let key = EndpointKey::workload("ns", name);
        (
            key.clone(),
            EndpointProgram {
                key,
                interface_name: iface.into(),
                addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
                normal: Chains::default(),
                untracked: Chains::default(),
                pre_dnat: Chains::default(),
                forward: Chains::default(),
                profiles: Vec::new(),
            },
        )
    }

    #[test]
    fn workload_and_blackhole_routes() {
        let mut dp = Dataplane::default();
        dp.endpoints.extend([
            workload("a", "cali0000000000a", &["10.65.0.1/32", "fd00::1/128"]),
            workload("b", "cali0000000000b", &["10.65.0.2/32"]),
        ]);
        let host = EndpointKey::host("eth0");
        let mut hep = workload("h", "eth0", &["10.0.0.1/32"]).1;
        hep.key = host.clone();
        dp.endpoints.insert(host, hep);
        let blocks: BTreeSet<IpNet> = ["10.65.0.0/26", "10.66.0.7/32", "fd00::/122"]
            .iter()
            .map(|b| b.parse().unwrap())
            .collect();

        let routes = desired(&dp, &blocks, true);
        let text: Vec<String> = routes.iter().map(|(d, t)| format!("{d} {t:?}")).collect();
        assert_eq!(
            text,
            vec![
                "10.65.0.0/26 Blackhole",
                "10.65.0.1/32 Interface(\"cali0000000000a\")",
                "10.65.0.2/32 Interface(\"cali0000000000b\")",
                "fd00::/122 Blackhole",
                "fd00::1/128 Interface(\"cali0000000000a\")",
            ]
        );
        let v4_only = desired(&dp, &blocks, false);
        assert!(v4_only.keys().all(|d| d.addr().is_ipv4()));
        assert_eq!(v4_only.len(), 3);
    }

    #[test]
    fn protocol_is_calicos_unless_configured() {
        assert_eq!(route_protocol(3), 80);
        assert_eq!(route_protocol(0), 80);
        assert_eq!(route_protocol(99), 99);
    }
}
