//! The default IP pools start-up creates, read from Calico's environment
//! variables: `NO_DEFAULT_POOLS`, `CALICO_IPV4POOL_CIDR` (default
//! 192.168.0.0/16, or the first free 172.16-31.0.0/16 when the host
//! already uses it), `CALICO_IPV4POOL_BLOCK_SIZE` (26),
//! `CALICO_IPV4POOL_IPIP` and `CALICO_IPV4POOL_VXLAN` (`Never`,
//! `CrossSubnet`, `Always`), `CALICO_IPV4POOL_NAT_OUTGOING` (true),
//! `CALICO_IPV4POOL_NODE_SELECTOR`, `CALICO_IPV4POOL_DISABLE_BGP_EXPORT`,
//! and the `CALICO_IPV6POOL_*` equivalents (a random ULA /48, block size
//! 122, NAT off, no IPIP). A CIDR of `none` skips that family. Pure: the
//! caller supplies the host's addresses and the random bytes.

use std::net::{IpAddr, Ipv6Addr};

use calico_model::{EncapMode, IpPool, IpPoolSpec, ObjectMeta};
use ipnet::IpNet;

use crate::env::Env;

pub const DEFAULT_IPV4_POOL_NAME: &str = "default-ipv4-ippool";
pub const DEFAULT_IPV6_POOL_NAME: &str = "default-ipv6-ippool";
pub const DEFAULT_IPV4_POOL_CIDR: &str = "192.168.0.0/16";
pub const DEFAULT_IPV4_BLOCK_SIZE: u8 = 26;
pub const DEFAULT_IPV6_BLOCK_SIZE: u8 = 122;

/// A start-up setting that cannot be used; start-up stops, as Calico's
/// does.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolConfigError {
    #[error(
        "NO_DEFAULT_POOLS=true cannot be combined with CALICO_IPV4POOL_CIDR or CALICO_IPV6POOL_CIDR; remove one of them"
    )]
    NoPoolsWithCidr,
    #[error("{variable}={value:?} is not an IPv{version} CIDR")]
    Cidr {
        variable: String,
        value: String,
        version: u8,
    },
    #[error("{variable}={value:?} is not a block size (IPv4: 20-32, IPv6: 116-128)")]
    BlockSize { variable: String, value: String },
    #[error("{variable}={value:?} is not an encapsulation mode (Never, CrossSubnet, Always)")]
    Encapsulation { variable: String, value: String },
    #[error("{variable}={value:?} is not a valid selector: {reason}")]
    NodeSelector {
        variable: String,
        value: String,
        reason: String,
    },
}

/// One pool to create if no pool of its family exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPlan {
    pub name: &'static str,
    pub cidr: IpNet,
    pub ipip: EncapMode,
    pub vxlan: EncapMode,
    pub nat_outgoing: bool,
    pub block_size: u8,
    pub node_selector: String,
    pub disable_bgp_export: bool,
}

impl PoolPlan {
    pub fn version(&self) -> u8 {
        if self.cidr.addr().is_ipv4() { 4 } else { 6 }
    }

    /// The IPPool resource to create.
    pub fn to_resource(&self) -> IpPool {
        IpPool {
            metadata: ObjectMeta::named(self.name),
            spec: IpPoolSpec {
                cidr: self.cidr.to_string(),
                ipip_mode: Some(self.ipip),
                vxlan_mode: Some(self.vxlan),
                nat_outgoing: self.nat_outgoing,
                block_size: i64::from(self.block_size),
                node_selector: self.node_selector.clone(),
                disable_bgp_export: self.disable_bgp_export,
                ..IpPoolSpec::default()
            },
            status: None,
        }
    }
}

/// Calico's spelling of encapsulation modes (`off` and `cross-subnet`
/// too, any case); unset is `Never`.
pub fn parse_encap(variable: &str, value: Option<&str>) -> Result<EncapMode, PoolConfigError> {
    match value.map(str::to_ascii_lowercase).as_deref() {
        None | Some("") | Some("off") | Some("never") => Ok(EncapMode::Never),
        Some("crosssubnet") | Some("cross-subnet") => Ok(EncapMode::CrossSubnet),
        Some("always") => Ok(EncapMode::Always),
        Some(_) => Err(PoolConfigError::Encapsulation {
            variable: variable.to_owned(),
            value: value.unwrap_or_default().to_owned(),
        }),
    }
}

fn block_size(env: &Env, version: u8) -> Result<u8, PoolConfigError> {
    let variable = format!("CALICO_IPV{version}POOL_BLOCK_SIZE");
    let (default, range) = if version == 4 {
        (DEFAULT_IPV4_BLOCK_SIZE, 20..=32)
    } else {
        (DEFAULT_IPV6_BLOCK_SIZE, 116..=128)
    };
    let Some(value) = env.get(&variable) else {
        return Ok(default);
    };
    value
        .parse::<u8>()
        .ok()
        .filter(|b| range.contains(b))
        .ok_or_else(|| PoolConfigError::BlockSize {
            variable,
            value: value.to_owned(),
        })
}

fn node_selector(env: &Env, version: u8) -> Result<String, PoolConfigError> {
    let variable = format!("CALICO_IPV{version}POOL_NODE_SELECTOR");
    let value = env.get(&variable).unwrap_or_default().to_owned();
    if !value.is_empty() {
        calico_selector::Selector::parse(&value).map_err(|e| PoolConfigError::NodeSelector {
            variable,
            value: value.clone(),
            reason: e.to_string(),
        })?;
    }
    Ok(value)
}

fn parse_cidr(variable: &str, value: &str, version: u8) -> Result<IpNet, PoolConfigError> {
    value
        .parse::<IpNet>()
        .ok()
        .filter(|n| (n.addr().is_ipv4()) == (version == 4))
        .map(|n| n.trunc())
        .ok_or_else(|| PoolConfigError::Cidr {
            variable: variable.to_owned(),
            value: value.to_owned(),
            version,
        })
}

/// 192.168.0.0/16 unless a host address is inside it; then the first of
/// 172.16.0.0/16 … 172.31.0.0/16 that holds none; if all do, the
/// preferred pool anyway (as Calico).
pub fn default_ipv4_cidr(host_addresses: &[IpAddr]) -> IpNet {
    let preferred: IpNet = DEFAULT_IPV4_POOL_CIDR.parse().expect("valid");
    let free = |pool: &IpNet| !host_addresses.iter().any(|a| pool.contains(a));
    if free(&preferred) {
        return preferred;
    }
    (16..=31)
        .map(|i| format!("172.{i}.0.0/16").parse::<IpNet>().expect("valid"))
        .find(free)
        .unwrap_or(preferred)
}

/// A ULA /48 (`fdXX:XXXX:XXXX::/48`) from 40 random bits (RFC 4193).
pub fn ula_prefix(random: [u8; 5]) -> IpNet {
    let mut bytes = [0u8; 16];
    bytes[0] = 0xfd;
    bytes[1..6].copy_from_slice(&random);
    IpNet::new(IpAddr::V6(Ipv6Addr::from(bytes)), 48).expect("48 is a valid IPv6 prefix")
}

/// The default pools to create, one per family that is not turned off.
/// `ipv6_supported`: IPv6 is on in the agent and the kernel has it.
pub fn plan_default_pools(
    env: &Env,
    host_addresses: &[IpAddr],
    ipv6_supported: bool,
    random: [u8; 5],
) -> Result<Vec<PoolPlan>, PoolConfigError> {
    let v4_cidr = env.get("CALICO_IPV4POOL_CIDR");
    let v6_cidr = env.get("CALICO_IPV6POOL_CIDR");
    if env
        .get("NO_DEFAULT_POOLS")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        if v4_cidr.is_some() || v6_cidr.is_some() {
            return Err(PoolConfigError::NoPoolsWithCidr);
        }
        return Ok(Vec::new());
    }
    let mut plans = Vec::new();
    if v4_cidr != Some("none") {
        let ipip = parse_encap("CALICO_IPV4POOL_IPIP", env.get("CALICO_IPV4POOL_IPIP"))?;
        let vxlan = parse_encap("CALICO_IPV4POOL_VXLAN", env.get("CALICO_IPV4POOL_VXLAN"))?;
        let block_size = block_size(env, 4)?;
        let node_selector = node_selector(env, 4)?;
        let cidr = match v4_cidr {
            Some(value) => parse_cidr("CALICO_IPV4POOL_CIDR", value, 4)?,
            None => default_ipv4_cidr(host_addresses),
        };
        plans.push(PoolPlan {
            name: DEFAULT_IPV4_POOL_NAME,
            cidr,
            ipip,
            vxlan,
            nat_outgoing: env.flag("CALICO_IPV4POOL_NAT_OUTGOING", true),
            block_size,
            node_selector,
            disable_bgp_export: env.flag("CALICO_IPV4POOL_DISABLE_BGP_EXPORT", false),
        });
    }
    if v6_cidr != Some("none") {
        let vxlan = parse_encap("CALICO_IPV6POOL_VXLAN", env.get("CALICO_IPV6POOL_VXLAN"))?;
        let block_size = block_size(env, 6)?;
        let node_selector = node_selector(env, 6)?;
        let cidr = match v6_cidr {
            Some(value) => parse_cidr("CALICO_IPV6POOL_CIDR", value, 6)?,
            None => ula_prefix(random),
        };
        if ipv6_supported {
            plans.push(PoolPlan {
                name: DEFAULT_IPV6_POOL_NAME,
                cidr,
                ipip: EncapMode::Never,
                vxlan,
                nat_outgoing: env.flag("CALICO_IPV6POOL_NAT_OUTGOING", false),
                block_size,
                node_selector,
                disable_bgp_export: env.flag("CALICO_IPV6POOL_DISABLE_BGP_EXPORT", false),
            });
        }
    }
    Ok(plans)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pairs: &[(&str, &str)]) -> Result<Vec<PoolPlan>, PoolConfigError> {
        plan_default_pools(
            &Env::from_pairs(pairs.iter().copied()),
            &[],
            true,
            [1, 2, 3, 4, 5],
        )
    }

    #[test]
    fn defaults_are_calicos() {
        let plans = plan(&[]).unwrap();
        assert_eq!(plans.len(), 2);
        let v4 = &plans[0];
        assert_eq!(v4.name, "default-ipv4-ippool");
        assert_eq!(v4.cidr.to_string(), "192.168.0.0/16");
        assert_eq!(
            (v4.ipip, v4.vxlan, v4.nat_outgoing, v4.block_size),
            (EncapMode::Never, EncapMode::Never, true, 26)
        );
        let v6 = &plans[1];
        assert_eq!(v6.name, "default-ipv6-ippool");
        assert_eq!(v6.cidr.to_string(), "fd01:203:405::/48");
        assert_eq!((v6.nat_outgoing, v6.block_size), (false, 122));
        let resource = v4.to_resource();
        assert_eq!(resource.spec.block_size, 26);
        assert_eq!(resource.spec.ipip_mode, Some(EncapMode::Never));
    }

    #[test]
    fn every_variable_is_read() {
        let plans = plan(&[
            ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
            ("CALICO_IPV4POOL_BLOCK_SIZE", "24"),
            ("CALICO_IPV4POOL_IPIP", "CrossSubnet"),
            ("CALICO_IPV4POOL_VXLAN", "always"),
            ("CALICO_IPV4POOL_NAT_OUTGOING", "false"),
            ("CALICO_IPV4POOL_NODE_SELECTOR", "zone == 'a'"),
            ("CALICO_IPV4POOL_DISABLE_BGP_EXPORT", "true"),
            ("CALICO_IPV6POOL_CIDR", "fd10::/64"),
            ("CALICO_IPV6POOL_BLOCK_SIZE", "120"),
            ("CALICO_IPV6POOL_VXLAN", "cross-subnet"),
            ("CALICO_IPV6POOL_NAT_OUTGOING", "true"),
        ])
        .unwrap();
        assert_eq!(
            plans[0],
            PoolPlan {
                name: DEFAULT_IPV4_POOL_NAME,
                cidr: "10.244.0.0/16".parse().unwrap(),
                ipip: EncapMode::CrossSubnet,
                vxlan: EncapMode::Always,
                nat_outgoing: false,
                block_size: 24,
                node_selector: "zone == 'a'".into(),
                disable_bgp_export: true,
            }
        );
        assert_eq!(plans[1].cidr.to_string(), "fd10::/64");
        assert_eq!(plans[1].vxlan, EncapMode::CrossSubnet);
        assert!(plans[1].nat_outgoing);
        assert_eq!(plans[1].block_size, 120);
    }

    #[test]
    fn families_can_be_turned_off() {
        assert!(plan(&[("NO_DEFAULT_POOLS", "true")]).unwrap().is_empty());
        assert_eq!(
            plan(&[
                ("NO_DEFAULT_POOLS", "true"),
                ("CALICO_IPV4POOL_CIDR", "10.0.0.0/8")
            ]),
            Err(PoolConfigError::NoPoolsWithCidr)
        );
        let v4_only = plan(&[("CALICO_IPV6POOL_CIDR", "none")]).unwrap();
        assert_eq!(v4_only.len(), 1);
        assert_eq!(v4_only[0].version(), 4);
        let v6_only = plan(&[("CALICO_IPV4POOL_CIDR", "none")]).unwrap();
        assert_eq!(v6_only[0].version(), 6);
        let no_v6 = plan_default_pools(&Env::default(), &[], false, [0; 5]).unwrap();
        assert_eq!(no_v6.len(), 1);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("CALICO_IPV4POOL_CIDR", "10.0.0.0/33"),
            ("CALICO_IPV4POOL_CIDR", "fd00::/64"),
            ("CALICO_IPV4POOL_BLOCK_SIZE", "19"),
            ("CALICO_IPV6POOL_BLOCK_SIZE", "64"),
            ("CALICO_IPV4POOL_IPIP", "sometimes"),
            ("CALICO_IPV4POOL_NODE_SELECTOR", "a ==="),
        ] {
            let err = plan(&[(var, value)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn default_v4_pool_avoids_host_addresses() {
        let host = |a: &[&str]| {
            a.iter()
                .map(|s| s.parse().unwrap())
                .collect::<Vec<IpAddr>>()
        };
        assert_eq!(
            default_ipv4_cidr(&host(&["10.0.0.1"])).to_string(),
            "192.168.0.0/16"
        );
        assert_eq!(
            default_ipv4_cidr(&host(&["192.168.1.5", "172.16.0.9"])).to_string(),
            "172.17.0.0/16"
        );
    }
}
