//! Checking that a workload interface is still as it was set up (CNI CHECK).

use std::net::IpAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::{HOST_SIDE_MAC, HostNetwork, IPV4_GATEWAY, WorkloadInterface, WorkloadLinks};
use crate::link::format_mac;
use crate::netns::NetNs;
use crate::socket::{Netlink, NetlinkError};

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("opening a netlink socket in the pod's network namespace {}", netns.display())]
    PodSocket {
        netns: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("reading the {what}")]
    Read {
        what: String,
        #[source]
        source: NetlinkError,
    },
    /// Everything that differs, each as a sentence.
    #[error("the workload interface is not as set up: {}", problems.join("; "))]
    Mismatch { problems: Vec<String> },
}

impl HostNetwork {
    /// Compares the kernel's state with `spec` on both sides and reports
    /// every difference at once. Routes added by later plugins are allowed;
    /// only missing ones count.
    pub fn check_workload(
        &mut self,
        pod: &NetNs,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, CheckError> {
        let mut problems = Vec::new();
        let mut pod_netlink = Netlink::open_in(pod).map_err(|source| CheckError::PodSocket {
            netns: pod.path().to_path_buf(),
            source,
        })?;

        let pod_link = pod_netlink
            .link_by_name(&spec.pod_ifname)
            .map_err(|source| read_error(format!("pod interface {}", spec.pod_ifname), source))?;
        let host_link = self
            .netlink
            .link_by_name(&spec.host_ifname)
            .map_err(|source| read_error(format!("host interface {}", spec.host_ifname), source))?;

        let Some(pod_link) = pod_link else {
            problems.push(format!(
                "interface {} is missing from the pod",
                spec.pod_ifname
            ));
            if host_link.is_none() {
                problems.push(format!("host interface {} is missing", spec.host_ifname));
            }
            return Err(CheckError::Mismatch { problems });
        };
        if !pod_link.up {
            problems.push(format!("pod interface {} is down", pod_link.name));
        }
        if let Some(mtu) = spec.mtu
            && pod_link.mtu != Some(mtu)
        {
            problems.push(format!(
                "pod interface {} has MTU {}, expected {mtu}",
                pod_link.name,
                pod_link
                    .mtu
                    .map(|m| m.to_string())
                    .unwrap_or_else(|| "unknown".into())
            ));
        }

        let pod_addresses = pod_netlink.addresses(pod_link.index).map_err(|source| {
            read_error(
                format!("addresses of pod interface {}", pod_link.name),
                source,
            )
        })?;
        for expected in spec.host_prefixes() {
            if !pod_addresses.iter().any(|a| a.address == expected) {
                problems.push(format!(
                    "address {expected} is missing from pod interface {}",
                    pod_link.name
                ));
            }
        }

        if spec.has_ipv4() {
            let routes = pod_netlink
                .routes(false, Some(pod_link.index))
                .map_err(|source| read_error("pod's IPv4 routes".into(), source))?;
            let gateway = IpNet::from(IpAddr::V4(IPV4_GATEWAY));
            if !routes
                .iter()
                .any(|r| r.destination == gateway && r.gateway.is_none())
            {
                problems.push(format!(
                    "pod route {gateway} dev {} is missing",
                    pod_link.name
                ));
            }
            for destination in spec.routes.iter().filter(|r| r.addr().is_ipv4()) {
                if !routes.iter().any(|r| {
                    r.destination == destination.trunc()
                        && r.gateway == Some(IpAddr::V4(IPV4_GATEWAY))
                }) {
                    problems.push(format!(
                        "pod route {destination} via {IPV4_GATEWAY} is missing"
                    ));
                }
            }
        }
        if spec.has_ipv6() {
            let routes = pod_netlink
                .routes(true, Some(pod_link.index))
                .map_err(|source| read_error("pod's IPv6 routes".into(), source))?;
            for destination in spec.routes.iter().filter(|r| r.addr().is_ipv6()) {
                let present = routes.iter().any(|r| {
                    r.destination == destination.trunc()
                        && matches!(r.gateway, Some(IpAddr::V6(gw)) if gw.is_unicast_link_local())
                });
                if !present {
                    problems.push(format!(
                        "pod route {destination} via the host's link-local address is missing"
                    ));
                }
            }
        }

        match &host_link {
            None => problems.push(format!("host interface {} is missing", spec.host_ifname)),
            Some(host) => {
                if !host.up {
                    problems.push(format!("host interface {} is down", host.name));
                }
                if host.mac != Some(HOST_SIDE_MAC) {
                    problems.push(format!(
                        "host interface {} has MAC {}, expected {}",
                        host.name,
                        host.mac
                            .as_ref()
                            .map(format_mac)
                            .unwrap_or_else(|| "none".into()),
                        format_mac(&HOST_SIDE_MAC)
                    ));
                }
                if spec.host_routes {
                    for family_v6 in [false, true] {
                        let wanted: Vec<IpNet> = spec
                            .host_prefixes()
                            .into_iter()
                            .filter(|p| p.addr().is_ipv6() == family_v6)
                            .collect();
                        if wanted.is_empty() {
                            continue;
                        }
                        let routes =
                            self.netlink
                                .routes(family_v6, Some(host.index))
                                .map_err(|source| {
                                    read_error(format!("host routes through {}", host.name), source)
                                })?;
                        for destination in wanted {
                            if !routes.iter().any(|r| r.destination == destination) {
                                problems.push(format!(
                                    "host route {destination} dev {} is missing",
                                    host.name
                                ));
                            }
                        }
                    }
                }
            }
        }

        match host_link {
            Some(host) if problems.is_empty() => Ok(WorkloadLinks {
                host,
                pod: pod_link,
            }),
            _ => Err(CheckError::Mismatch { problems }),
        }
    }
}

fn read_error(what: String, source: NetlinkError) -> CheckError {
    CheckError::Read { what, source }
}
