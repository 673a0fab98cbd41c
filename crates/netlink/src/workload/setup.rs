//! Creating a workload interface, with rollback.

use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use ipnet::IpNet;

use super::{
    HOST_SIDE_MAC, HostNetwork, IPV4_GATEWAY, PodEntryError, WorkloadInterface, WorkloadLinks,
    enter_pod,
};
use crate::link::{Link, VethSpec, format_mac};
use crate::netns::{NetNs, NetNsError};
use crate::route::Route;
use crate::socket::{Netlink, NetlinkError};
use crate::sysctl::{Sysctl, SysctlError};

/// How long to wait for the host end to get its IPv6 link-local address
/// (the pod's IPv6 next hop) once both ends are up.
const LINK_LOCAL_WAIT: Duration = Duration::from_secs(2);

/// Why a workload interface could not be set up. When one of these is
/// returned, everything the attempt created has been removed again, unless
/// the error is [`SetupError::RollbackFailed`].
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("no addresses to configure on {pod_ifname}")]
    NoAddresses { pod_ifname: String },
    #[error("removing the stale host interface {name}")]
    RemoveStale {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("interface {name} already exists in the pod's network namespace {}", netns.display())]
    PodInterfaceExists { name: String, netns: PathBuf },
    #[error("creating veth pair {host} (host end) / {pod} (pod end){}", mtu.map(|m| format!(" with MTU {m}")).unwrap_or_default())]
    CreateVeth {
        host: String,
        pod: String,
        mtu: Option<u32>,
        #[source]
        source: NetlinkError,
    },
    #[error("looking up interface {name}")]
    Lookup {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("interface {name} disappeared during setup")]
    Vanished { name: String },
    #[error("setting the MAC of {name} to {mac}")]
    SetMac {
        name: String,
        mac: String,
        #[source]
        source: NetlinkError,
    },
    #[error("configuring sysctls for host interface {name}")]
    HostSysctl {
        name: String,
        #[source]
        source: SysctlError,
    },
    #[error("entering the pod's network namespace {}", netns.display())]
    EnterPod {
        netns: PathBuf,
        #[source]
        source: NetNsError,
    },
    #[error("configuring sysctls in the pod's network namespace {}", netns.display())]
    PodSysctl {
        netns: PathBuf,
        #[source]
        source: SysctlError,
    },
    #[error("opening a netlink socket in the pod's network namespace {}", netns.display())]
    PodSocket {
        netns: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("setting {name} up")]
    SetUp {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error(
        "host interface {name} got no IPv6 link-local address within {waited:?} (the pod's IPv6 next hop); is IPv6 enabled on the host?"
    )]
    NoLinkLocal { name: String, waited: Duration },
    #[error("reading the addresses of {name}")]
    ListAddresses {
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("adding route {route} inside the pod")]
    PodRoute {
        route: String,
        #[source]
        source: NetlinkError,
    },
    #[error("adding address {address} to {name} inside the pod")]
    Address {
        name: String,
        address: IpNet,
        #[source]
        source: NetlinkError,
    },
    #[error("adding host route {destination} dev {name}")]
    HostRoute {
        destination: IpNet,
        name: String,
        #[source]
        source: NetlinkError,
    },
    #[error("a route to {destination} already exists through interface {other}, not {name}")]
    HostRouteConflict {
        destination: IpNet,
        name: String,
        other: String,
    },
    #[error("setup failed and the half-created interface {name} could not be removed ({rollback})")]
    RollbackFailed {
        name: String,
        rollback: NetlinkError,
        #[source]
        cause: Box<SetupError>,
    },
}

impl HostNetwork {
    /// Creates and configures the workload interface described by `spec`
    /// between this host namespace and `pod`. On failure everything created
    /// is removed before the error is returned.
    pub fn add_workload(
        &mut self,
        pod: &NetNs,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, SetupError> {
        if spec.addresses.is_empty() {
            return Err(SetupError::NoAddresses {
                pod_ifname: spec.pod_ifname.clone(),
            });
        }
        // A host end left over from an earlier attempt for the same
        // workload (the name is derived from it) is ours to replace.
        self.netlink
            .delete_link_by_name(&spec.host_ifname)
            .map_err(|source| SetupError::RemoveStale {
                name: spec.host_ifname.clone(),
                source,
            })?;

        let veth = VethSpec {
            name: &spec.host_ifname,
            mac: Some(HOST_SIDE_MAC),
            peer_name: &spec.pod_ifname,
            peer_mac: spec.pod_mac,
            peer_netns: Some(pod.as_fd()),
            mtu: spec.mtu,
            queues: spec.queues,
        };
        if let Err(source) = self.netlink.add_veth(&veth) {
            // Creation is atomic: on failure neither end exists. EEXIST
            // after the host name was freed means the pod name is taken.
            let host_taken = matches!(self.netlink.link_by_name(&spec.host_ifname), Ok(Some(_)));
            if source.is_exists() && !host_taken {
                return Err(SetupError::PodInterfaceExists {
                    name: spec.pod_ifname.clone(),
                    netns: pod.path().to_path_buf(),
                });
            }
            return Err(SetupError::CreateVeth {
                host: spec.host_ifname.clone(),
                pod: spec.pod_ifname.clone(),
                mtu: spec.mtu,
                source,
            });
        }

        match self.configure(pod, spec) {
            Ok(links) => Ok(links),
            Err(cause) => match self.netlink.delete_link_by_name(&spec.host_ifname) {
                Ok(_) => Err(cause),
                Err(rollback) => Err(SetupError::RollbackFailed {
                    name: spec.host_ifname.clone(),
                    rollback,
                    cause: Box::new(cause),
                }),
            },
        }
    }

    fn configure(
        &mut self,
        pod: &NetNs,
        spec: &WorkloadInterface,
    ) -> Result<WorkloadLinks, SetupError> {
        let mut host = self.lookup_host(&spec.host_ifname)?;
        if host.mac != Some(HOST_SIDE_MAC) {
            // Some kernels ignore the MAC given at creation; set it again.
            self.netlink
                .set_link_mac(host.index, HOST_SIDE_MAC)
                .map_err(|source| SetupError::SetMac {
                    name: host.name.clone(),
                    mac: format_mac(&HOST_SIDE_MAC),
                    source,
                })?;
            host = self.lookup_host(&spec.host_ifname)?;
            if host.mac != Some(HOST_SIDE_MAC) {
                tracing::warn!(interface = %host.name, "kernel kept its own MAC for the host end");
            }
        }

        for warning in crate::sysctl::write_in(&self.ns, &host_sysctls(spec)).map_err(|source| {
            SetupError::HostSysctl {
                name: host.name.clone(),
                source,
            }
        })? {
            tracing::warn!(error = %warning, "optional sysctl not set");
        }

        let netns = pod.path().to_path_buf();
        let (mut pod_netlink, warnings) =
            enter_pod(pod, &pod_sysctls(spec)).map_err(|e| match e {
                PodEntryError::Namespace(source) => SetupError::EnterPod {
                    netns: netns.clone(),
                    source,
                },
                PodEntryError::Sysctl(source) => SetupError::PodSysctl {
                    netns: netns.clone(),
                    source,
                },
                PodEntryError::Netlink(source) => SetupError::PodSocket {
                    netns: netns.clone(),
                    source,
                },
            })?;
        for warning in warnings {
            tracing::warn!(error = %warning, "optional sysctl not set in pod");
        }

        self.netlink
            .set_link_up(host.index)
            .map_err(|source| SetupError::SetUp {
                name: host.name.clone(),
                source,
            })?;
        host.up = true;
        let mut pod_link = lookup(&mut pod_netlink, &spec.pod_ifname)?;
        pod_netlink
            .set_link_up(pod_link.index)
            .map_err(|source| SetupError::SetUp {
                name: pod_link.name.clone(),
                source,
            })?;
        pod_link.up = true;

        if spec.has_ipv4() {
            let gateway = IpNet::from(IpAddr::V4(IPV4_GATEWAY));
            add_pod_route(&mut pod_netlink, &Route::direct(gateway, pod_link.index))?;
            for destination in spec.routes.iter().filter(|r| r.addr().is_ipv4()) {
                let route = Route::via(*destination, IpAddr::V4(IPV4_GATEWAY), pod_link.index);
                add_pod_route(&mut pod_netlink, &route)?;
            }
        }
        if spec.has_ipv6() {
            let gateway = self.wait_for_link_local(&host)?;
            for destination in spec.routes.iter().filter(|r| r.addr().is_ipv6()) {
                let route = Route::via(*destination, gateway, pod_link.index);
                add_pod_route(&mut pod_netlink, &route)?;
            }
        }

        for address in spec.host_prefixes() {
            pod_netlink
                .add_address(pod_link.index, address)
                .map_err(|source| SetupError::Address {
                    name: pod_link.name.clone(),
                    address,
                    source,
                })?;
        }

        if spec.host_routes {
            for destination in spec.host_prefixes() {
                self.add_host_route(destination, &host)?;
            }
        }
        Ok(WorkloadLinks {
            host,
            pod: pod_link,
        })
    }

    fn lookup_host(&mut self, name: &str) -> Result<Link, SetupError> {
        lookup(&mut self.netlink, name)
    }

    /// The host end's IPv6 link-local address: the pod's IPv6 next hop. The
    /// kernel assigns it once both ends are up, possibly a moment later.
    fn wait_for_link_local(&mut self, host: &Link) -> Result<IpAddr, SetupError> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            let addresses =
                self.netlink
                    .addresses(host.index)
                    .map_err(|source| SetupError::ListAddresses {
                        name: host.name.clone(),
                        source,
                    })?;
            if let Some(ll) = addresses
                .iter()
                .find(|a| a.address.addr().is_ipv6() && a.link_scope && !a.tentative)
            {
                return Ok(ll.address.addr());
            }
            if start.elapsed() >= LINK_LOCAL_WAIT {
                return Err(SetupError::NoLinkLocal {
                    name: host.name.clone(),
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(50));
        }
    }

    /// Adds the host route to a pod address. A route that is already there
    /// through the same interface (the agent may have been quicker) is
    /// fine; one through another interface is a conflict to report.
    fn add_host_route(&mut self, destination: IpNet, host: &Link) -> Result<(), SetupError> {
        let route = Route::direct(destination, host.index);
        let error = match self.netlink.add_route(&route) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if !error.is_exists() {
            return Err(SetupError::HostRoute {
                destination,
                name: host.name.clone(),
                source: error,
            });
        }
        let existing = self
            .netlink
            .routes(destination.addr().is_ipv6(), None)
            .map_err(|source| SetupError::HostRoute {
                destination,
                name: host.name.clone(),
                source,
            })?;
        match existing.iter().find(|r| r.destination == destination) {
            Some(r) if r.interface == host.index => Ok(()),
            Some(r) => {
                let other = match self.netlink.link_by_index(r.interface) {
                    Ok(Some(link)) => link.name,
                    _ => format!("#{}", r.interface),
                };
                Err(SetupError::HostRouteConflict {
                    destination,
                    name: host.name.clone(),
                    other,
                })
            }
            None => Err(SetupError::HostRoute {
                destination,
                name: host.name.clone(),
                source: error,
            }),
        }
    }
}

fn lookup(netlink: &mut Netlink, name: &str) -> Result<Link, SetupError> {
    netlink
        .link_by_name(name)
        .map_err(|source| SetupError::Lookup {
            name: name.to_string(),
            source,
        })?
        .ok_or_else(|| SetupError::Vanished {
            name: name.to_string(),
        })
}

fn add_pod_route(netlink: &mut Netlink, route: &Route) -> Result<(), SetupError> {
    netlink
        .add_route(route)
        .map_err(|source| SetupError::PodRoute {
            route: describe(route),
            source,
        })
}

fn describe(route: &Route) -> String {
    match route.gateway {
        Some(gateway) => format!("{} via {gateway}", route.destination),
        None => format!("{} scope link", route.destination),
    }
}

/// The host end's sysctls, as Calico sets them.
fn host_sysctls(spec: &WorkloadInterface) -> Vec<Sysctl> {
    let name = &spec.host_ifname;
    let mut settings = Vec::new();
    if spec.has_ipv4() {
        // Lets traffic be NATed to the host's own addresses.
        settings.push(Sysctl::required(
            format!("net/ipv4/conf/{name}/route_localnet"),
            "1",
        ));
        // No delay before answering by proxy ARP: nothing else answers.
        settings.push(Sysctl::optional(
            format!("net/ipv4/neigh/{name}/proxy_delay"),
            "0",
        ));
        // The host answers ARP for the gateway address, which exists nowhere.
        settings.push(Sysctl::required(
            format!("net/ipv4/conf/{name}/proxy_arp"),
            "1",
        ));
        settings.push(Sysctl::required(
            format!("net/ipv4/conf/{name}/forwarding"),
            "1",
        ));
    }
    if spec.has_ipv6() {
        settings.push(Sysctl::required(
            format!("net/ipv6/conf/{name}/accept_dad"),
            "0",
        ));
        settings.push(Sysctl::required(
            format!("net/ipv6/conf/{name}/disable_ipv6"),
            "0",
        ));
        settings.push(Sysctl::required(
            format!("net/ipv6/conf/{name}/proxy_ndp"),
            "1",
        ));
        settings.push(Sysctl::required(
            format!("net/ipv6/conf/{name}/forwarding"),
            "1",
        ));
    }
    settings.push(Sysctl::optional(
        format!("net/ipv6/conf/{name}/accept_ra"),
        "0",
    ));
    settings
}

/// The pod namespace's sysctls, as Calico sets them.
fn pod_sysctls(spec: &WorkloadInterface) -> Vec<Sysctl> {
    let forwarding = if spec.allow_ip_forwarding { "1" } else { "0" };
    let mut settings = Vec::new();
    if spec.has_ipv6() {
        // Duplicate address detection would hold the address back for up
        // to a second on a link where nothing can clash.
        settings.push(Sysctl::required(
            format!("net/ipv6/conf/{}/accept_dad", spec.pod_ifname),
            "0",
        ));
        for scope in ["all", "default", "lo"] {
            settings.push(Sysctl::required(
                format!("net/ipv6/conf/{scope}/disable_ipv6"),
                "0",
            ));
        }
        settings.push(Sysctl::required("net/ipv6/conf/all/forwarding", forwarding));
    }
    if spec.has_ipv4() {
        settings.push(Sysctl::required("net/ipv4/ip_forward", forwarding));
    }
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(addresses: &[&str]) -> WorkloadInterface {
        WorkloadInterface {
            host_ifname: "cali0123456789a".into(),
            pod_ifname: "eth0".into(),
            addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
            routes: super::super::default_routes(),
            mtu: None,
            queues: None,
            pod_mac: None,
            allow_ip_forwarding: false,
            host_routes: true,
        }
    }

    fn keys(settings: &[Sysctl]) -> Vec<(&str, &str, bool)> {
        settings
            .iter()
            .map(|s| (s.key.as_str(), s.value, s.optional))
            .collect()
    }

    #[test]
    fn host_sysctls_follow_the_families_present() {
        assert_eq!(
            keys(&host_sysctls(&spec(&["10.0.0.1"]))),
            vec![
                ("net/ipv4/conf/cali0123456789a/route_localnet", "1", false),
                ("net/ipv4/neigh/cali0123456789a/proxy_delay", "0", true),
                ("net/ipv4/conf/cali0123456789a/proxy_arp", "1", false),
                ("net/ipv4/conf/cali0123456789a/forwarding", "1", false),
                ("net/ipv6/conf/cali0123456789a/accept_ra", "0", true),
            ]
        );
        assert_eq!(
            keys(&host_sysctls(&spec(&["fd00::1"]))),
            vec![
                ("net/ipv6/conf/cali0123456789a/accept_dad", "0", false),
                ("net/ipv6/conf/cali0123456789a/disable_ipv6", "0", false),
                ("net/ipv6/conf/cali0123456789a/proxy_ndp", "1", false),
                ("net/ipv6/conf/cali0123456789a/forwarding", "1", false),
                ("net/ipv6/conf/cali0123456789a/accept_ra", "0", true),
            ]
        );
    }

    #[test]
    fn pod_sysctls_disable_forwarding_unless_allowed() {
        let mut dual = spec(&["10.0.0.1", "fd00::1"]);
        let settings = pod_sysctls(&dual);
        assert!(settings.contains(&Sysctl::required("net/ipv4/ip_forward", "0")));
        assert!(settings.contains(&Sysctl::required("net/ipv6/conf/all/forwarding", "0")));
        assert!(settings.contains(&Sysctl::required("net/ipv6/conf/eth0/accept_dad", "0")));
        dual.allow_ip_forwarding = true;
        let settings = pod_sysctls(&dual);
        assert!(settings.contains(&Sysctl::required("net/ipv4/ip_forward", "1")));
        assert!(settings.contains(&Sysctl::required("net/ipv6/conf/all/forwarding", "1")));
        assert_eq!(pod_sysctls(&spec(&["10.0.0.1"])).len(), 1);
    }
}
