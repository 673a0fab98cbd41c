//! From [`RoutingInput`] to [`Desired`]: pure, no I/O.
//!
//! The rules, as Calico's agent applies them for IPv4:
//!
//! - a VXLAN device exists when any pool has `vxlanMode` other than
//!   `Never` and this node has a VXLAN tunnel address and an IPv4
//!   address; every remote node with both becomes a VTEP (ARP and FDB
//!   entries);
//! - an IPIP device likewise for `ipipMode`;
//! - each block belongs to the pool containing it; a block of this node's
//!   gets a blackhole route; a remote block is routed by its pool's mode:
//!   `Always` through the tunnel, `CrossSubnet` through the tunnel only
//!   when the owner's address is outside this node's subnet and straight
//!   to the owner's address otherwise, `Never` straight to the owner's
//!   address (which must then be on a local link);
//! - VXLAN wins over IPIP if a pool (invalidly) names both;
//! - NAT outgoing masquerades traffic from the `natOutgoing` pools to
//!   anything outside all pools.

use calico_model::EncapMode;

use crate::desired::{Desired, IpipDevice, Problem, Via, Vtep, VxlanDevice};
use crate::input::{IPIP_DEVICE, NodeInfo, PoolInfo, RoutingInput, VXLAN_DEVICE};

/// This node's desired routing state.
pub fn compute(input: &RoutingInput) -> Desired {
    let mut desired = Desired::default();
    let me = input.nodes.get(&input.node);
    let my_subnet = me.and_then(|n| n.address).map(|a| a.trunc());
    let my_address = me.and_then(|n| n.address).map(|a| a.addr());
    desired.local = my_address;
    if my_address.is_none() {
        desired.problems.insert(Problem::LocalAddressUnknown);
    }

    let vxlan_in_use = input.pools.iter().any(|p| p.vxlan != EncapMode::Never);
    let ipip_in_use = input.pools.iter().any(|p| p.ipip != EncapMode::Never);

    if vxlan_in_use {
        match me.and_then(|n| n.vxlan_tunnel_address) {
            None => {
                desired.problems.insert(Problem::LocalVxlanAddressUnknown);
            }
            Some(address) => {
                if let (Some(me), Some(local)) = (me, my_address) {
                    desired.vxlan = Some(VxlanDevice {
                        name: VXLAN_DEVICE.to_string(),
                        vni: input.settings.vxlan_vni,
                        port: input.settings.vxlan_port,
                        mtu: input.settings.vxlan_device_mtu(),
                        mac: me.vxlan_mac,
                        address,
                        local,
                    });
                }
            }
        }
        for node in input.nodes.values().filter(|n| n.name != input.node) {
            if let (Some(tunnel_address), Some(address)) = (node.vxlan_tunnel_address, node.address)
            {
                desired.vteps.insert(
                    node.name.clone(),
                    Vtep {
                        node: node.name.clone(),
                        tunnel_address,
                        mac: node.vxlan_mac,
                        node_address: address.addr(),
                    },
                );
            }
        }
    }

    if ipip_in_use {
        match me.and_then(|n| n.ipip_tunnel_address) {
            None => {
                desired.problems.insert(Problem::LocalIpipAddressUnknown);
            }
            Some(address) => {
                desired.ipip = Some(IpipDevice {
                    name: IPIP_DEVICE.to_string(),
                    mtu: input.settings.ipip_device_mtu(),
                    address,
                });
            }
        }
    }

    for pool in &input.pools {
        desired.nat.all_pools.insert(pool.cidr);
        if pool.nat_outgoing {
            desired.nat.masquerade.insert(pool.cidr);
        }
    }

    let mut blocks = input.blocks.clone();
    blocks.sort();
    for block in &blocks {
        let Some(pool) = pool_of(&input.pools, block.cidr) else {
            desired
                .problems
                .insert(Problem::BlockWithoutPool { block: block.cidr });
            continue;
        };
        if block.node == input.node {
            // A /32 block would blackhole the one workload the plugin
            // routes to it; Calico skips those too.
            if block.cidr.prefix_len() < 32 {
                desired.routes.insert(block.cidr, Via::Blackhole);
            }
            continue;
        }
        let Some(owner) = input.nodes.get(&block.node) else {
            desired.problems.insert(Problem::UnknownNode {
                node: block.node.clone(),
                block: block.cidr,
            });
            continue;
        };
        let Some(owner_address) = owner.address.map(|a| a.addr()) else {
            desired.problems.insert(Problem::RemoteAddressUnknown {
                node: owner.name.clone(),
                block: block.cidr,
            });
            continue;
        };
        let same_subnet = my_subnet.is_some_and(|s| s.contains(&owner_address));
        let tunnel = |mode: EncapMode| match mode {
            EncapMode::Always => true,
            EncapMode::CrossSubnet => !same_subnet,
            EncapMode::Never => false,
        };
        let via = if tunnel(pool.vxlan) {
            vxlan_route(&mut desired, owner, block.cidr)
        } else if tunnel(pool.ipip) {
            desired.ipip.as_ref().map(|_| Via::Ipip {
                gateway: owner_address,
            })
        } else if same_subnet {
            Some(Via::Underlay {
                gateway: owner_address,
            })
        } else {
            if my_subnet.is_some() {
                desired.problems.insert(Problem::NotOnLink {
                    node: owner.name.clone(),
                    block: block.cidr,
                    gateway: owner_address,
                });
            }
            None
        };
        if let Some(via) = via {
            desired.routes.insert(block.cidr, via);
        }
    }
    desired
}

/// The pool containing `block` (the most specific, should pools nest).
fn pool_of(pools: &[PoolInfo], block: ipnet::Ipv4Net) -> Option<&PoolInfo> {
    pools
        .iter()
        .filter(|p| p.cidr.contains(&block))
        .max_by_key(|p| p.cidr.prefix_len())
}

/// A route through the VXLAN device to `owner`'s VTEP, if both ends are
/// known.
fn vxlan_route(desired: &mut Desired, owner: &NodeInfo, block: ipnet::Ipv4Net) -> Option<Via> {
    desired.vxlan.as_ref()?;
    match desired.vteps.get(&owner.name) {
        Some(vtep) => Some(Via::Vxlan {
            gateway: vtep.tunnel_address,
        }),
        None => {
            desired.problems.insert(Problem::RemoteVtepUnknown {
                node: owner.name.clone(),
                block,
            });
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{BlockInfo, Settings, vtep_mac};
    use std::collections::BTreeMap;

    /// Nodes `a` (10.0.1.11/24), `b` (10.0.1.12/24, same subnet) and `c`
    /// (10.0.2.13/24, other subnet), each with a VXLAN and an IPIP tunnel
    /// address and one /26 of 192.168.0.0/16.
    fn cluster(vxlan: EncapMode, ipip: EncapMode, nat: bool) -> RoutingInput {
        let mut nodes = BTreeMap::new();
        for (name, address, block) in [
            ("a", "10.0.1.11/24", 0u8),
            ("b", "10.0.1.12/24", 1),
            ("c", "10.0.2.13/24", 2),
        ] {
            let mut node = NodeInfo::named(name);
            node.address = Some(address.parse().unwrap());
            node.vxlan_tunnel_address = Some(format!("192.168.{block}.1").parse().unwrap());
            node.ipip_tunnel_address = Some(format!("192.168.{block}.2").parse().unwrap());
            nodes.insert(name.to_string(), node);
        }
        let mut pool = PoolInfo::new("default-ipv4-ippool", "192.168.0.0/16".parse().unwrap());
        pool.vxlan = vxlan;
        pool.ipip = ipip;
        pool.nat_outgoing = nat;
        RoutingInput {
            node: "a".into(),
            nodes,
            pools: vec![pool],
            blocks: ["a", "b", "c"]
                .iter()
                .enumerate()
                .map(|(i, n)| BlockInfo {
                    cidr: format!("192.168.{i}.0/26").parse().unwrap(),
                    node: n.to_string(),
                })
                .collect(),
            settings: Settings {
                host_mtu: 1500,
                ..Settings::default()
            },
        }
    }

    fn lines(desired: &Desired) -> Vec<String> {
        desired.describe()
    }

    fn mac(name: &str) -> String {
        calico_netlink::format_mac(&vtep_mac(name))
    }

    /// Every mode of a one-pool cluster, seen from node `a`.
    #[test]
    fn routes_for_every_mode() {
        use EncapMode::*;
        let vtep_lines = || {
            vec![
                format!("vtep b 192.168.1.1 lladdr {} dst 10.0.1.12", mac("b")),
                format!("vtep c 192.168.2.1 lladdr {} dst 10.0.2.13", mac("c")),
            ]
        };
        let vxlan_device = format!(
            "device vxlan.calico vxlan id 4096 port 4789 mtu 1450 mac {} address 192.168.0.1/32 local 10.0.1.11",
            mac("a")
        );
        let ipip_device = "device tunl0 ipip mtu 1480 address 192.168.0.2/32".to_string();
        let blackhole = "route 192.168.0.0/26 blackhole".to_string();
        let cases: Vec<(EncapMode, EncapMode, Vec<String>)> = vec![
            (Always, Never, {
                let mut l = vec![vxlan_device.clone()];
                l.extend(vtep_lines());
                l.extend([
                    blackhole.clone(),
                    "route 192.168.1.0/26 via 192.168.1.1 dev vxlan (onlink)".into(),
                    "route 192.168.2.0/26 via 192.168.2.1 dev vxlan (onlink)".into(),
                ]);
                l
            }),
            (CrossSubnet, Never, {
                let mut l = vec![vxlan_device.clone()];
                l.extend(vtep_lines());
                l.extend([
                    blackhole.clone(),
                    "route 192.168.1.0/26 via 10.0.1.12 dev underlay".into(),
                    "route 192.168.2.0/26 via 192.168.2.1 dev vxlan (onlink)".into(),
                ]);
                l
            }),
            (
                Never,
                Never,
                vec![
                    blackhole.clone(),
                    "route 192.168.1.0/26 via 10.0.1.12 dev underlay".into(),
                ],
            ),
            (
                Never,
                Always,
                vec![
                    ipip_device.clone(),
                    blackhole.clone(),
                    "route 192.168.1.0/26 via 10.0.1.12 dev ipip (onlink)".into(),
                    "route 192.168.2.0/26 via 10.0.2.13 dev ipip (onlink)".into(),
                ],
            ),
            (
                Never,
                CrossSubnet,
                vec![
                    ipip_device.clone(),
                    blackhole.clone(),
                    "route 192.168.1.0/26 via 10.0.1.12 dev underlay".into(),
                    "route 192.168.2.0/26 via 10.0.2.13 dev ipip (onlink)".into(),
                ],
            ),
        ];
        for (vxlan, ipip, expected) in cases {
            let desired = compute(&cluster(vxlan, ipip, false));
            assert_eq!(lines(&desired), expected, "vxlan {vxlan:?} ipip {ipip:?}");
            let expected_problems: Vec<Problem> = if (vxlan, ipip) == (Never, Never) {
                vec![Problem::NotOnLink {
                    node: "c".into(),
                    block: "192.168.2.0/26".parse().unwrap(),
                    gateway: "10.0.2.13".parse().unwrap(),
                }]
            } else {
                vec![]
            };
            assert_eq!(
                desired.problems.into_iter().collect::<Vec<_>>(),
                expected_problems,
                "vxlan {vxlan:?} ipip {ipip:?}"
            );
        }
    }

    #[test]
    fn nat_outgoing_masquerades_only_its_pools() {
        let mut input = cluster(EncapMode::Always, EncapMode::Never, true);
        input
            .pools
            .push(PoolInfo::new("other", "10.244.0.0/16".parse().unwrap()));
        let desired = compute(&input);
        assert_eq!(
            desired
                .nat
                .masquerade
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["192.168.0.0/16"]
        );
        assert_eq!(
            desired
                .nat
                .all_pools
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["10.244.0.0/16", "192.168.0.0/16"]
        );
        let without = compute(&cluster(EncapMode::Always, EncapMode::Never, false));
        assert!(without.nat.is_empty());
    }

    #[test]
    fn missing_information_is_reported_not_guessed() {
        let mut input = cluster(EncapMode::Always, EncapMode::Never, false);
        input.nodes.get_mut("b").unwrap().vxlan_tunnel_address = None;
        input.nodes.get_mut("c").unwrap().address = None;
        input.blocks.push(BlockInfo {
            cidr: "192.168.3.0/26".parse().unwrap(),
            node: "gone".into(),
        });
        input.blocks.push(BlockInfo {
            cidr: "172.16.0.0/26".parse().unwrap(),
            node: "b".into(),
        });
        let desired = compute(&input);
        assert_eq!(
            desired
                .routes
                .keys()
                .map(|n| n.to_string())
                .collect::<Vec<_>>(),
            vec!["192.168.0.0/26"],
            "only the local blackhole can be programmed"
        );
        assert!(desired.vteps.is_empty());
        let problems: Vec<String> = desired.problems.iter().map(|p| p.to_string()).collect();
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("node b has no VXLAN tunnel address"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("node c has no IPv4 address"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("node gone, which has no Node resource"))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("172.16.0.0/26 is in no IP pool"))
        );
    }

    #[test]
    fn no_local_tunnel_address_means_no_device_and_no_tunnel_routes() {
        let mut input = cluster(EncapMode::Always, EncapMode::Never, false);
        input.nodes.get_mut("a").unwrap().vxlan_tunnel_address = None;
        let desired = compute(&input);
        assert_eq!(desired.vxlan, None);
        assert!(
            desired
                .problems
                .contains(&Problem::LocalVxlanAddressUnknown),
            "{:?}",
            desired.problems
        );
        assert_eq!(desired.routes.len(), 1, "the local blackhole only");

        let mut input = cluster(EncapMode::Never, EncapMode::Always, false);
        input.nodes.get_mut("a").unwrap().ipip_tunnel_address = None;
        let desired = compute(&input);
        assert_eq!(desired.ipip, None);
        assert!(desired.problems.contains(&Problem::LocalIpipAddressUnknown));
        assert_eq!(desired.routes.len(), 1);
    }

    #[test]
    fn unknown_local_address_blocks_tunnels_and_subnet_decisions() {
        let mut input = cluster(EncapMode::CrossSubnet, EncapMode::Never, false);
        input.nodes.get_mut("a").unwrap().address = None;
        let desired = compute(&input);
        assert!(desired.problems.contains(&Problem::LocalAddressUnknown));
        assert_eq!(desired.vxlan, None);
        assert_eq!(desired.routes.len(), 1);
    }

    #[test]
    fn configured_mtu_vni_and_port_win() {
        let mut input = cluster(EncapMode::Always, EncapMode::Never, false);
        input.settings.vxlan_mtu = Some(1370);
        input.settings.vxlan_vni = 42;
        input.settings.vxlan_port = 8472;
        let device = compute(&input).vxlan.unwrap();
        assert_eq!((device.mtu, device.vni, device.port), (1370, 42, 8472));
        input.settings.vxlan_mtu = None;
        input.settings.host_mtu = 9000;
        assert_eq!(compute(&input).vxlan.unwrap().mtu, 8950);
    }

    #[test]
    fn pools_per_mode_side_by_side() {
        // One VXLAN pool, one unencapsulated pool: each block follows its
        // own pool.
        let mut input = cluster(EncapMode::Always, EncapMode::Never, false);
        input
            .pools
            .push(PoolInfo::new("plain", "10.244.0.0/16".parse().unwrap()));
        input.blocks.push(BlockInfo {
            cidr: "10.244.1.0/26".parse().unwrap(),
            node: "b".into(),
        });
        let desired = compute(&input);
        assert_eq!(
            desired.routes[&"10.244.1.0/26".parse().unwrap()],
            Via::Underlay {
                gateway: "10.0.1.12".parse().unwrap()
            }
        );
        assert_eq!(
            desired.routes[&"192.168.1.0/26".parse().unwrap()],
            Via::Vxlan {
                gateway: "192.168.1.1".parse().unwrap()
            }
        );
    }

    #[test]
    fn result_does_not_depend_on_input_order() {
        let input = cluster(EncapMode::CrossSubnet, EncapMode::Never, true);
        let mut shuffled = input.clone();
        shuffled.blocks.reverse();
        shuffled.pools.reverse();
        assert_eq!(compute(&input), compute(&shuffled));
    }
}
