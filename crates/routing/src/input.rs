//! What the computation needs to know, as plain values: every node's
//! addresses and tunnel endpoint, the IP pools' encapsulation modes, which
//! block belongs to which node, and the agent's settings. Built from
//! Calico's resources by [`RoutingInput::from_resources`], or directly in
//! tests.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use calico_model::ipam::AllocationBlock;
use calico_model::{EncapMode, FelixConfigurationSpec, IpPool, Node};
use calico_netlink::{Mac, parse_mac};
use ipnet::{IpNet, Ipv4Net};
use sha1::{Digest, Sha1};

/// The name Calico gives the VXLAN device.
pub const VXLAN_DEVICE: &str = "vxlan.calico";
/// The name of the kernel's IPIP fallback device, which Calico uses.
pub const IPIP_DEVICE: &str = "tunl0";
/// Calico's default VXLAN network identifier.
pub const DEFAULT_VXLAN_VNI: u32 = 4096;
/// The IANA VXLAN port, Calico's default.
pub const DEFAULT_VXLAN_PORT: u16 = 4789;
/// Bytes VXLAN adds to every packet (outer IPv4, UDP, VXLAN, Ethernet).
pub const VXLAN_OVERHEAD: u32 = 50;
/// Bytes IPIP adds (an outer IPv4 header).
pub const IPIP_OVERHEAD: u32 = 20;
/// The protocol number on the routes this crate owns: what Calico's agent
/// uses for its tunnel, same-subnet and blackhole routes when
/// `deviceRouteProtocol` is left at `boot` (3), which others use too.
pub const DEFAULT_ROUTE_PROTOCOL: u8 = 80;
/// `boot`: Calico's default `deviceRouteProtocol`, used for workload routes.
const RTPROT_BOOT: i64 = 3;

/// One node as routing sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NodeInfo {
    pub name: String,
    /// The node's IPv4 address with its subnet (`bgp.ipv4Address`): the
    /// underlay address tunnels start and end at, and the subnet that
    /// decides CrossSubnet.
    pub address: Option<Ipv4Net>,
    /// The address of its VXLAN device (`ipv4VXLANTunnelAddr`).
    pub vxlan_tunnel_address: Option<Ipv4Addr>,
    /// The MAC of its VXLAN device: `vxlanTunnelMACAddr`, or the one
    /// derived from the node's name when that is unset ([`vtep_mac`]).
    pub vxlan_mac: Mac,
    /// The address of its IPIP device (`bgp.ipv4IPIPTunnelAddr`).
    pub ipip_tunnel_address: Option<Ipv4Addr>,
}

impl NodeInfo {
    /// A node with only a name (no addresses yet) and its derived MAC.
    pub fn named(name: impl Into<String>) -> NodeInfo {
        let name = name.into();
        NodeInfo {
            vxlan_mac: vtep_mac(&name),
            name,
            ..NodeInfo::default()
        }
    }
}

/// An IPv4 pool's routing-relevant settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolInfo {
    pub name: String,
    pub cidr: Ipv4Net,
    pub vxlan: EncapMode,
    pub ipip: EncapMode,
    pub nat_outgoing: bool,
}

impl PoolInfo {
    /// A pool without encapsulation or NAT.
    pub fn new(name: impl Into<String>, cidr: Ipv4Net) -> PoolInfo {
        PoolInfo {
            name: name.into(),
            cidr,
            vxlan: EncapMode::Never,
            ipip: EncapMode::Never,
            nat_outgoing: false,
        }
    }
}

/// A block of addresses and the node it is affine to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct BlockInfo {
    pub cidr: Ipv4Net,
    pub node: String,
}

/// The agent's settings that shape routing (what Calico reads from
/// FelixConfiguration), with Calico's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub vxlan_vni: u32,
    pub vxlan_port: u16,
    /// `vxlanMTU`; `None`: the host MTU less [`VXLAN_OVERHEAD`].
    pub vxlan_mtu: Option<u32>,
    /// `ipipMTU`; `None`: the host MTU less [`IPIP_OVERHEAD`].
    pub ipip_mtu: Option<u32>,
    /// The smallest MTU of the host's uplinks ([`crate::mtu::host_mtu`]).
    pub host_mtu: u32,
    /// Protocol number on the routes this crate programs.
    pub route_protocol: u8,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            vxlan_vni: DEFAULT_VXLAN_VNI,
            vxlan_port: DEFAULT_VXLAN_PORT,
            vxlan_mtu: None,
            ipip_mtu: None,
            host_mtu: crate::mtu::FALLBACK_HOST_MTU,
            route_protocol: DEFAULT_ROUTE_PROTOCOL,
        }
    }
}

impl Settings {
    /// Applies the fields a FelixConfiguration sets; call it with the
    /// global configuration first, then the node's own. Values out of
    /// range are ignored (the agent's configuration layer reports them).
    pub fn apply_felix(&mut self, spec: &FelixConfigurationSpec) {
        if let Some(vni) = spec.vxlan_vni.and_then(|v| u32::try_from(v).ok())
            && (1..1 << 24).contains(&vni)
        {
            self.vxlan_vni = vni;
        }
        if let Some(port) = spec
            .vxlan_port
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p > 0)
        {
            self.vxlan_port = port;
        }
        if let Some(mtu) = spec
            .vxlan_mtu
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| *m > 0)
        {
            self.vxlan_mtu = Some(mtu);
        }
        if let Some(mtu) = spec
            .ipip_mtu
            .and_then(|m| u32::try_from(m).ok())
            .filter(|m| *m > 0)
        {
            self.ipip_mtu = Some(mtu);
        }
        // As Calico: `boot` is shared with others, so routes keep a
        // protocol of their own unless another one is configured.
        if let Some(protocol) = spec.device_route_protocol
            && protocol != RTPROT_BOOT
            && let Ok(protocol) = u8::try_from(protocol)
            && protocol > 0
        {
            self.route_protocol = protocol;
        }
    }

    /// The VXLAN device's MTU.
    pub fn vxlan_device_mtu(&self) -> u32 {
        self.vxlan_mtu
            .unwrap_or_else(|| self.host_mtu.saturating_sub(VXLAN_OVERHEAD))
    }

    /// The IPIP device's MTU.
    pub fn ipip_device_mtu(&self) -> u32 {
        self.ipip_mtu
            .unwrap_or_else(|| self.host_mtu.saturating_sub(IPIP_OVERHEAD))
    }
}

/// Everything the computation reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RoutingInput {
    /// The node being programmed.
    pub node: String,
    /// Every node, this one included, by name.
    pub nodes: BTreeMap<String, NodeInfo>,
    /// Enabled IPv4 pools. Disabled pools still route (their addresses
    /// stay in use) and are listed too.
    pub pools: Vec<PoolInfo>,
    pub blocks: Vec<BlockInfo>,
    pub settings: Settings,
}

/// The deterministic MAC Calico gives a node's VXLAN device when its Node
/// resource names none: `0x66` ('f', a locally administered unicast
/// prefix) followed by the first five bytes of the SHA-1 of the node name.
pub fn vtep_mac(node: &str) -> Mac {
    let digest = Sha1::digest(node.as_bytes());
    let mut mac = [0u8; 6];
    mac[0] = b'f';
    mac[1..].copy_from_slice(&digest[..5]);
    mac
}

impl RoutingInput {
    /// Builds the input from Calico's resources as stored: Nodes, IP pools
    /// (IPv6 pools are left out), IPAM blocks (their `host:` affinity)
    /// and FelixConfiguration specs in priority order (global first).
    /// Fields that do not parse are left unset; what that leads to shows
    /// up in [`crate::Desired::problems`].
    pub fn from_resources<'a>(
        node: &str,
        nodes: &[Node],
        pools: &[IpPool],
        blocks: &[AllocationBlock],
        felix: impl IntoIterator<Item = &'a FelixConfigurationSpec>,
        host_mtu: u32,
    ) -> RoutingInput {
        let mut settings = Settings {
            host_mtu,
            ..Settings::default()
        };
        for spec in felix {
            settings.apply_felix(spec);
        }
        RoutingInput {
            node: node.to_string(),
            nodes: nodes
                .iter()
                .map(|n| (n.metadata.name.clone(), node_info(n)))
                .collect(),
            pools: pools.iter().filter_map(pool_info).collect(),
            blocks: blocks
                .iter()
                .filter(|b| !b.deleted)
                .filter_map(|b| {
                    let IpNet::V4(cidr) = b.cidr else { return None };
                    Some(BlockInfo {
                        cidr: cidr.trunc(),
                        node: b.host()?.to_string(),
                    })
                })
                .collect(),
            settings,
        }
    }
}

fn node_info(node: &Node) -> NodeInfo {
    let mut info = NodeInfo::named(&node.metadata.name);
    let spec = &node.spec;
    if let Some(bgp) = &spec.bgp {
        info.address = parse_v4_net(&bgp.ipv4_address);
        info.ipip_tunnel_address = parse_v4_addr(&bgp.ipv4_ipip_tunnel_addr);
    }
    info.vxlan_tunnel_address = parse_v4_addr(&spec.ipv4_vxlan_tunnel_addr);
    if let Some(mac) = parse_mac(&spec.vxlan_tunnel_mac_addr) {
        info.vxlan_mac = mac;
    }
    info
}

fn pool_info(pool: &IpPool) -> Option<PoolInfo> {
    let IpNet::V4(cidr) = pool.spec.network()? else {
        return None;
    };
    Some(PoolInfo {
        name: pool.metadata.name.clone(),
        cidr: cidr.trunc(),
        vxlan: pool.spec.vxlan_mode.unwrap_or(EncapMode::Never),
        ipip: pool.spec.ipip_mode.unwrap_or(EncapMode::Never),
        nat_outgoing: pool.spec.nat_outgoing,
    })
}

/// `10.0.0.5/24` (the subnet is kept) or a bare `10.0.0.5` (a /32).
fn parse_v4_net(text: &str) -> Option<Ipv4Net> {
    let text = text.trim();
    text.parse::<Ipv4Net>()
        .ok()
        .or_else(|| text.parse::<Ipv4Addr>().ok().map(Ipv4Net::from))
}

/// An address, with or without a prefix length.
fn parse_v4_addr(text: &str) -> Option<Ipv4Addr> {
    parse_v4_net(text).map(|n| n.addr())
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::node::NodeBgpSpec;
    use calico_model::{IpPoolSpec, ObjectMeta};

    #[test]
    fn vtep_mac_matches_calicos_derivation() {
        // sha1("node-1") = 1d2f8e3a8a...; the MAC is 0x66 and its first
        // five bytes.
        let mac = vtep_mac("node-1");
        assert_eq!(mac[0], 0x66);
        let digest = Sha1::digest(b"node-1");
        assert_eq!(&mac[1..], &digest[..5]);
        assert_ne!(vtep_mac("node-1"), vtep_mac("node-2"));
        // Locally administered, unicast.
        assert_eq!(mac[0] & 0b11, 0b10);
    }

    #[test]
    fn resources_become_input() {
        let mut node = Node {
            metadata: ObjectMeta::named("node-1"),
            ..Default::default()
        };
        node.spec.bgp = Some(NodeBgpSpec {
            ipv4_address: "10.0.1.11/24".into(),
            ..Default::default()
        });
        node.spec.ipv4_vxlan_tunnel_addr = "192.168.0.1".into();
        node.spec.vxlan_tunnel_mac_addr = "66:aa:bb:cc:dd:ee".into();
        let bare = Node {
            metadata: ObjectMeta::named("node-2"),
            ..Default::default()
        };
        let pool = IpPool {
            metadata: ObjectMeta::named("p"),
            spec: IpPoolSpec {
                cidr: "192.168.0.0/16".into(),
                vxlan_mode: Some(EncapMode::CrossSubnet),
                nat_outgoing: true,
                ..Default::default()
            },
            ..Default::default()
        };
        let v6 = IpPool {
            metadata: ObjectMeta::named("v6"),
            spec: IpPoolSpec {
                cidr: "fd00::/48".into(),
                ..Default::default()
            },
            ..Default::default()
        };
        let block = AllocationBlock::new(
            "192.168.0.0/26".parse().unwrap(),
            Some("host:node-1".into()),
            0,
        );
        let unclaimed = AllocationBlock::new("192.168.0.64/26".parse().unwrap(), None, 0);
        let felix = FelixConfigurationSpec {
            vxlan_mtu: Some(1400),
            vxlan_vni: Some(7),
            ..Default::default()
        };
        let input = RoutingInput::from_resources(
            "node-1",
            &[node, bare],
            &[pool, v6],
            &[block, unclaimed],
            [&felix],
            1500,
        );
        let n1 = &input.nodes["node-1"];
        assert_eq!(n1.address, Some("10.0.1.11/24".parse().unwrap()));
        assert_eq!(
            n1.vxlan_tunnel_address,
            Some("192.168.0.1".parse().unwrap())
        );
        assert_eq!(n1.vxlan_mac, [0x66, 0xaa, 0xbb, 0xcc, 0xdd, 0xee]);
        let n2 = &input.nodes["node-2"];
        assert_eq!(n2.address, None);
        assert_eq!(n2.vxlan_mac, vtep_mac("node-2"));
        assert_eq!(input.pools.len(), 1, "IPv6 pools are left out");
        assert_eq!(input.pools[0].vxlan, EncapMode::CrossSubnet);
        assert!(input.pools[0].nat_outgoing);
        assert_eq!(
            input.blocks,
            vec![BlockInfo {
                cidr: "192.168.0.0/26".parse().unwrap(),
                node: "node-1".into()
            }]
        );
        assert_eq!(input.settings.vxlan_device_mtu(), 1400);
        assert_eq!(input.settings.vxlan_vni, 7);
        assert_eq!(input.settings.ipip_device_mtu(), 1480);
    }

    #[test]
    fn felix_settings_apply_in_order_and_skip_nonsense() {
        let mut settings = Settings::default();
        settings.apply_felix(&FelixConfigurationSpec {
            vxlan_port: Some(8472),
            device_route_protocol: Some(3),
            vxlan_vni: Some(1 << 24),
            ..Default::default()
        });
        assert_eq!(settings.vxlan_port, 8472);
        assert_eq!(settings.vxlan_vni, DEFAULT_VXLAN_VNI, "VNI beyond 24 bits");
        assert_eq!(
            settings.route_protocol, DEFAULT_ROUTE_PROTOCOL,
            "boot is shared, so our own protocol stays"
        );
        settings.apply_felix(&FelixConfigurationSpec {
            device_route_protocol: Some(99),
            vxlan_port: Some(0),
            ..Default::default()
        });
        assert_eq!(settings.route_protocol, 99);
        assert_eq!(settings.vxlan_port, 8472);
    }
}
