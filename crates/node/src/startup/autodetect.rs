//! Choosing the node's address the way Calico's start-up does
//! (`IP_AUTODETECTION_METHOD`, `IP6_AUTODETECTION_METHOD`): pure logic
//! over a list of interfaces; the one method that asks the kernel
//! (`can-reach=`) is given the answer by the caller.

use std::net::IpAddr;

use ipnet::IpNet;
use regex::Regex;

use super::host::HostInterface;

/// Interfaces `first-found` and `skip-interface=` never look at: bridges,
/// container and overlay devices, Calico's own (Calico's list).
pub const DEFAULT_INTERFACES_TO_EXCLUDE: &[&str] = &[
    "^docker.*",
    "^cbr.*",
    "^dummy.*",
    "^podman.*",
    "^virbr.*",
    "^lxcbr.*",
    "^veth.*",
    "^lo",
    "^br-.*",
    "^cali.*",
    "^tunl.*",
    "^flannel.*",
    "^kube-ipvs.*",
    "^cni.*",
    "^vxlan\\.calico.*",
    "^vxlan-v6\\.calico.*",
    "^wireguard\\.cali.*",
    "^wg-v6\\.cali.*",
    "^nodelocaldns.*",
];

/// An autodetection method.
#[derive(Debug, Clone)]
pub enum Method {
    /// The first global unicast address on an interface not excluded by
    /// default (the default method).
    FirstFound,
    /// The address the kernel uses as source towards this destination.
    CanReach(String),
    /// The first address on an interface whose name matches one of these
    /// patterns.
    Interface(Vec<String>),
    /// Like first-found, also skipping interfaces matching these patterns.
    SkipInterface(Vec<String>),
    /// The first address inside one of these networks.
    Cidr(Vec<IpNet>),
    /// The Kubernetes node's InternalIP (needs the Kubernetes API).
    KubernetesInternalIp,
}

/// Why no address was found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AutodetectError {
    #[error(
        "{variable}={value:?} is not an autodetection method (first-found, can-reach=DEST, interface=REGEX, skip-interface=REGEX, cidr=CIDR)"
    )]
    UnknownMethod {
        variable: &'static str,
        value: String,
    },
    #[error("{variable}: {pattern:?} is not a valid interface pattern: {reason}")]
    BadPattern {
        variable: &'static str,
        pattern: String,
        reason: String,
    },
    #[error("{variable}: {value:?} is not a CIDR")]
    BadCidr {
        variable: &'static str,
        value: String,
    },
    #[error(
        "{variable}=kubernetes-internal-ip needs the Kubernetes API, which this datastore does not have"
    )]
    NeedsKubernetes { variable: &'static str },
    #[error("no IPv{version} address found on the host interfaces ({method})")]
    NotFound { version: u8, method: String },
    #[error(
        "the address {address} used to reach {destination} is not on any interface of this host"
    )]
    ReachNotLocal {
        destination: String,
        address: IpAddr,
    },
}

/// The environment variable holding the method for an IP version.
pub fn method_variable(version: u8) -> &'static str {
    if version == 6 {
        "IP6_AUTODETECTION_METHOD"
    } else {
        "IP_AUTODETECTION_METHOD"
    }
}

impl Method {
    /// Parses a method as Calico spells it; empty means first-found.
    pub fn parse(variable: &'static str, value: &str) -> Result<Method, AutodetectError> {
        let split = |list: &str| -> Vec<String> {
            list.split(',')
                .map(|p| p.trim().to_owned())
                .collect::<Vec<_>>()
        };
        let value = value.trim();
        if value.is_empty() || value == "first-found" {
            return Ok(Method::FirstFound);
        }
        let method = if let Some(dest) = value.strip_prefix("can-reach=") {
            Method::CanReach(dest.trim().to_owned())
        } else if let Some(list) = value.strip_prefix("interface=") {
            Method::Interface(split(list))
        } else if let Some(list) = value.strip_prefix("skip-interface=") {
            Method::SkipInterface(split(list))
        } else if let Some(list) = value.strip_prefix("cidr=") {
            let cidrs = split(list)
                .into_iter()
                .map(|c| {
                    c.parse::<IpNet>()
                        .map(|n| n.trunc())
                        .map_err(|_| AutodetectError::BadCidr {
                            variable,
                            value: c.clone(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            Method::Cidr(cidrs)
        } else if value.starts_with("kubernetes-internal-ip") {
            Method::KubernetesInternalIp
        } else {
            return Err(AutodetectError::UnknownMethod {
                variable,
                value: value.to_owned(),
            });
        };
        // Check the patterns now, so a typo is reported as such.
        if let Method::Interface(p) | Method::SkipInterface(p) = &method {
            combine(variable, p)?;
        }
        Ok(method)
    }
}

/// One regular expression matching any of `patterns` anywhere in a name,
/// as Calico combines them (`(a)|(b)`); `None` for no patterns.
fn combine(variable: &'static str, patterns: &[String]) -> Result<Option<Regex>, AutodetectError> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        Regex::new(p).map_err(|e| AutodetectError::BadPattern {
            variable,
            pattern: p.clone(),
            reason: e.to_string(),
        })?;
    }
    let joined = format!("({})", patterns.join(")|("));
    Regex::new(&joined)
        .map(Some)
        .map_err(|e| AutodetectError::BadPattern {
            variable,
            pattern: joined,
            reason: e.to_string(),
        })
}

/// One pattern matching every interface excluded by default.
pub fn default_exclusions() -> Regex {
    combine("", &default_excludes())
        .ok()
        .flatten()
        .expect("the default exclusions are valid patterns")
}

fn default_excludes() -> Vec<String> {
    DEFAULT_INTERFACES_TO_EXCLUDE
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// What Go's `IP.IsGlobalUnicast` accepts: not unspecified, loopback,
/// multicast, link-local or the IPv4 broadcast address (private ranges
/// count as global).
pub fn is_global_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            !(v4.is_unspecified()
                || v4.is_loopback()
                || v4.is_multicast()
                || v4.is_link_local()
                || v4.is_broadcast())
        }
        IpAddr::V6(v6) => {
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || v6.is_unicast_link_local())
        }
    }
}

fn version_of(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 4 } else { 6 }
}

/// The interfaces whose names pass the filters, with only their addresses
/// of `version`.
pub fn filter_interfaces(
    interfaces: &[HostInterface],
    include: Option<&Regex>,
    exclude: Option<&Regex>,
    version: u8,
) -> Vec<HostInterface> {
    interfaces
        .iter()
        .filter(|i| include.is_none_or(|r| r.is_match(&i.name)))
        .filter(|i| !exclude.is_some_and(|r| r.is_match(&i.name)))
        .map(|i| HostInterface {
            index: i.index,
            name: i.name.clone(),
            addresses: i
                .addresses
                .iter()
                .filter(|a| version_of(a.addr()) == version)
                .copied()
                .collect(),
        })
        .collect()
}

/// The first global unicast address (inside one of `cidrs`, when given).
fn first_address(
    interfaces: &[HostInterface],
    include: Option<&Regex>,
    exclude: Option<&Regex>,
    cidrs: &[IpNet],
    version: u8,
) -> Option<(String, IpNet)> {
    filter_interfaces(interfaces, include, exclude, version)
        .into_iter()
        .find_map(|i| {
            let found = i.addresses.iter().copied().find(|a| {
                is_global_unicast(a.addr())
                    && (cidrs.is_empty() || cidrs.iter().any(|c| c.contains(&a.addr())))
            });
            found.map(|a| (i.name.clone(), a))
        })
}

/// The address `method` picks for `version`, with its subnet length
/// (e.g. `10.0.0.5/24`), and the interface it is on. `reach` answers
/// `can-reach=`: the source address towards a destination.
pub fn detect(
    method: &Method,
    version: u8,
    interfaces: &[HostInterface],
    reach: impl FnOnce(&str) -> Result<IpAddr, String>,
) -> Result<(String, IpNet), AutodetectError> {
    let variable = method_variable(version);
    let not_found = |method: String| AutodetectError::NotFound { version, method };
    match method {
        Method::FirstFound => {
            let exclude = combine(variable, &default_excludes())?;
            first_address(interfaces, None, exclude.as_ref(), &[], version)
                .ok_or_else(|| not_found("first-found".into()))
        }
        Method::Interface(patterns) => {
            let include = combine(variable, patterns)?;
            first_address(interfaces, include.as_ref(), None, &[], version)
                .ok_or_else(|| not_found(format!("interface={}", patterns.join(","))))
        }
        Method::SkipInterface(patterns) => {
            let mut excludes = default_excludes();
            excludes.extend(patterns.iter().cloned());
            let exclude = combine(variable, &excludes)?;
            first_address(interfaces, None, exclude.as_ref(), &[], version)
                .ok_or_else(|| not_found(format!("skip-interface={}", patterns.join(","))))
        }
        Method::Cidr(cidrs) => {
            first_address(interfaces, None, None, cidrs, version).ok_or_else(|| {
                not_found(format!(
                    "cidr={}",
                    cidrs
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(",")
                ))
            })
        }
        Method::CanReach(destination) => {
            let address =
                reach(destination).map_err(|_| not_found(format!("can-reach={destination}")))?;
            local_cidr(interfaces, address).ok_or(AutodetectError::ReachNotLocal {
                destination: destination.clone(),
                address,
            })
        }
        Method::KubernetesInternalIp => Err(AutodetectError::NeedsKubernetes { variable }),
    }
}

/// The interface address equal to `ip`, with its subnet length.
pub fn local_cidr(interfaces: &[HostInterface], ip: IpAddr) -> Option<(String, IpNet)> {
    interfaces.iter().find_map(|i| {
        i.addresses
            .iter()
            .find(|a| a.addr() == ip)
            .map(|a| (i.name.clone(), *a))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn iface(index: u32, name: &str, addrs: &[&str]) -> HostInterface {
        HostInterface {
            index,
            name: name.into(),
            addresses: addrs.iter().map(|a| a.parse().unwrap()).collect(),
        }
    }

    /// In Calico's walking order: highest index first.
    fn host() -> Vec<HostInterface> {
        vec![
            iface(6, "cali12345", &["169.254.1.1/32"]),
            iface(5, "docker0", &["172.17.0.1/16"]),
            iface(
                4,
                "eth1",
                &["192.168.50.7/24", "fd00:50::7/64", "fe80::1/64"],
            ),
            iface(3, "eth0", &["10.0.0.5/24", "fe80::2/64"]),
            iface(2, "ens3", &["169.254.9.9/16"]),
            iface(1, "lo", &["127.0.0.1/8", "::1/128"]),
        ]
    }

    fn run(method: &str, version: u8) -> Result<(String, IpNet), AutodetectError> {
        let m = Method::parse(method_variable(version), method)?;
        detect(&m, version, &host(), |_| {
            Ok("10.0.0.5".parse::<IpAddr>().unwrap())
        })
    }

    #[test]
    fn each_method_picks_as_calico_does() {
        let pick = |m: &str, v| {
            run(m, v)
                .map(|(i, a)| format!("{i} {a}"))
                .unwrap_or_else(|e| e.to_string())
        };
        assert_eq!(pick("", 4), "eth1 192.168.50.7/24");
        assert_eq!(pick("first-found", 6), "eth1 fd00:50::7/64");
        assert_eq!(pick("interface=eth0", 4), "eth0 10.0.0.5/24");
        assert_eq!(pick("interface=nomatch, eth.*", 4), "eth1 192.168.50.7/24");
        // An explicit interface pattern may pick what first-found skips.
        assert_eq!(pick("interface=docker0", 4), "docker0 172.17.0.1/16");
        assert_eq!(pick("skip-interface=eth1", 4), "eth0 10.0.0.5/24");
        assert_eq!(pick("cidr=10.0.0.0/8", 4), "eth0 10.0.0.5/24");
        assert_eq!(
            pick("cidr=10.9.0.0/16, 192.168.0.0/16", 4),
            "eth1 192.168.50.7/24"
        );
        assert_eq!(pick("can-reach=10.0.0.1", 4), "eth0 10.0.0.5/24");
        assert!(pick("interface=eth0", 6).contains("no IPv6 address"));
        assert!(pick("skip-interface=eth.*", 4).contains("no IPv4 address"));
    }

    #[test]
    fn bad_methods_are_named() {
        assert!(matches!(
            Method::parse("IP_AUTODETECTION_METHOD", "first"),
            Err(AutodetectError::UnknownMethod { .. })
        ));
        assert!(matches!(
            Method::parse("IP_AUTODETECTION_METHOD", "interface=eth[0"),
            Err(AutodetectError::BadPattern { .. })
        ));
        assert!(matches!(
            Method::parse("IP_AUTODETECTION_METHOD", "cidr=10.0.0.0/33"),
            Err(AutodetectError::BadCidr { .. })
        ));
        let reach_elsewhere = detect(&Method::CanReach("8.8.8.8".into()), 4, &host(), |_| {
            Ok("10.1.1.1".parse().unwrap())
        });
        assert!(matches!(
            reach_elsewhere,
            Err(AutodetectError::ReachNotLocal { .. })
        ));
    }

    #[test]
    fn global_unicast_as_go_defines_it() {
        for (ip, global) in [
            ("10.0.0.1", true),
            ("192.168.1.1", true),
            ("169.254.1.1", false),
            ("127.0.0.1", false),
            ("0.0.0.0", false),
            ("255.255.255.255", false),
            ("224.0.0.1", false),
            ("fd00::1", true),
            ("fe80::1", false),
            ("::1", false),
            ("ff02::1", false),
        ] {
            assert_eq!(is_global_unicast(ip.parse().unwrap()), global, "{ip}");
        }
    }
}
