//! Manifests as users write them, in; peers and exports, out.

use std::collections::BTreeMap;

use calico_model::resource::AnyResource;
use proptest::prelude::*;

use super::*;

/// Resources parsed from a manifest.
#[derive(Default)]
struct Cluster {
    nodes: Vec<Node>,
    configurations: Vec<BgpConfiguration>,
    peers: Vec<BgpPeer>,
    pools: Vec<IpPool>,
    blocks: Vec<IpNet>,
    secrets: BTreeMap<(String, String), String>,
}

impl Cluster {
    fn from_yaml(yaml: &str) -> Cluster {
        let mut c = Cluster::default();
        for doc in calico_model::parse_documents("test.yaml", yaml).expect("manifest parses") {
            match doc.resource {
                AnyResource::Node(n) => c.nodes.push(n),
                AnyResource::BgpConfiguration(b) => c.configurations.push(b),
                AnyResource::BgpPeer(p) => c.peers.push(p),
                AnyResource::IpPool(p) => c.pools.push(p),
                other => panic!("unexpected {:?}", other.kind()),
            }
        }
        c
    }

    fn desired(&self, node: &str) -> Result<Desired, ConfigError> {
        desired(&Inputs {
            node_name: node,
            nodes: &self.nodes,
            configurations: &self.configurations,
            peers: &self.peers,
            pools: &self.pools,
            blocks: &self.blocks,
            secrets: &self.secrets,
            router_id: None,
        })
    }

    fn peers_of(&self, node: &str) -> BTreeMap<String, PeerConfig> {
        let d = self.desired(node).unwrap();
        d.peers.into_iter().map(|p| (p.name.clone(), p)).collect()
    }
}

fn node(name: &str, v4: &str, extra: &str) -> String {
    format!(
        "---
apiVersion: projectcalico.org/v3
kind: Node
metadata:
  name: {name}
  labels:
    kubernetes.io/hostname: {name}
spec:
  bgp:
    ipv4Address: {v4}/24
{extra}"
    )
}

fn three_nodes() -> String {
    [
        node("node-a", "10.0.0.1", ""),
        node("node-b", "10.0.0.2", ""),
        node("node-c", "10.0.0.10", ""),
    ]
    .concat()
}

#[test]
fn the_default_mesh_peers_every_node_in_as_64512() {
    let c = Cluster::from_yaml(&three_nodes());
    let d = c.desired("node-a").unwrap();
    assert_eq!(d.speaker.local_as, 64512);
    assert_eq!(d.speaker.router_id, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(d.speaker.cluster_id, None);
    assert_eq!(d.listen_port, 179);
    let names: Vec<&str> = d.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["Mesh_10_0_0_10", "Mesh_10_0_0_2"]);
    for p in &d.peers {
        assert_eq!(p.remote_as, 64512);
        assert_eq!(p.port, 179);
        assert_eq!(
            p.source_address,
            Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
        );
        assert_eq!(p.hold_time, 240);
        assert!(!p.rr_client);
    }
    assert!(d.warnings.is_empty(), "{:?}", d.warnings);
}

#[test]
fn the_higher_address_as_a_string_waits() {
    let c = Cluster::from_yaml(&three_nodes());
    // "10.0.0.10" sorts before "10.0.0.2" as text.
    let cases = [
        ("node-a", "Mesh_10_0_0_2", true),
        ("node-a", "Mesh_10_0_0_10", true),
        ("node-b", "Mesh_10_0_0_1", false),
        ("node-b", "Mesh_10_0_0_10", false),
        ("node-c", "Mesh_10_0_0_2", true),
        ("node-c", "Mesh_10_0_0_1", false),
    ];
    for (node, peer, passive) in cases {
        assert_eq!(c.peers_of(node)[peer].passive, passive, "{node} -> {peer}");
    }
}

#[test]
fn mesh_settings_come_from_the_default_configuration() {
    let yaml = three_nodes()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  asNumber: 65100
  listenPort: 1790
  nodeMeshMaxRestartTime: 300s
  nodeMeshPassword:
    secretKeyRef:
      name: bgp-secrets
      key: mesh
";
    let mut c = Cluster::from_yaml(&yaml);
    c.secrets
        .insert(("bgp-secrets".into(), "mesh".into()), "s3cret".into());
    let d = c.desired("node-b").unwrap();
    assert_eq!(d.speaker.local_as, 65100);
    assert_eq!(d.listen_port, 1790);
    for p in &d.peers {
        assert_eq!(p.remote_as, 65100);
        assert_eq!(p.port, 1790);
        assert_eq!(p.password.as_deref(), Some("s3cret"));
        assert_eq!(p.graceful_restart.as_ref().unwrap().restart_time, 300);
    }
}

#[test]
fn the_mesh_can_be_turned_off() {
    let yaml = three_nodes()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
";
    assert!(
        Cluster::from_yaml(&yaml)
            .desired("node-a")
            .unwrap()
            .peers
            .is_empty()
    );
}

#[test]
fn per_node_as_numbers_and_ports() {
    let yaml = [
        node("node-a", "10.0.0.1", "    asNumber: 65001\n"),
        node("node-b", "10.0.0.2", ""),
    ]
    .concat()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.node-a
spec:
  listenPort: 1179
";
    let c = Cluster::from_yaml(&yaml);
    let a = c.desired("node-a").unwrap();
    assert_eq!(a.speaker.local_as, 65001);
    assert_eq!(a.listen_port, 1179);
    assert_eq!(a.peers[0].remote_as, 64512);
    let b = c.desired("node-b").unwrap();
    assert_eq!(b.peers[0].remote_as, 65001, "the peer's own AS");
    assert_eq!(b.peers[0].port, 1179, "the peer's own listen port");
}

const RR_SETUP: &str = "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
";

fn rr_cluster() -> Cluster {
    let yaml = [
        node(
            "rr-1",
            "10.0.0.100",
            "    routeReflectorClusterID: 244.0.0.1\n",
        ),
        node("node-a", "10.0.0.1", ""),
        node("node-b", "10.0.0.2", ""),
    ]
    .concat()
    .replace(
        "  labels:\n    kubernetes.io/hostname: rr-1\n",
        "  labels:\n    kubernetes.io/hostname: rr-1\n    route-reflector: 'true'\n",
    ) + RR_SETUP;
    Cluster::from_yaml(&yaml)
}

#[test]
fn route_reflector_clients_peer_with_the_reflector_only() {
    let c = rr_cluster();
    let a = c.peers_of("node-a");
    assert_eq!(a.keys().collect::<Vec<_>>(), ["Node_10_0_0_100"]);
    let to_rr = &a["Node_10_0_0_100"];
    assert!(!to_rr.rr_client);
    assert!(!to_rr.passive, "node-specific peerings always connect");
    let rr = c.desired("rr-1").unwrap();
    assert_eq!(rr.speaker.cluster_id, Some(Ipv4Addr::new(244, 0, 0, 1)));
    let names: Vec<&str> = rr.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["Node_10_0_0_1", "Node_10_0_0_2"],
        "reverse peerings"
    );
    assert!(rr.peers.iter().all(|p| p.rr_client));
}

#[test]
fn with_the_mesh_on_reflectors_stay_out_of_it() {
    let c = Cluster::from_yaml(
        &[
            node(
                "rr-1",
                "10.0.0.100",
                "    routeReflectorClusterID: 244.0.0.1\n",
            ),
            node("node-a", "10.0.0.1", ""),
            node("node-b", "10.0.0.2", ""),
        ]
        .concat(),
    );
    assert!(c.desired("rr-1").unwrap().peers.is_empty());
    assert_eq!(
        c.peers_of("node-a").keys().collect::<Vec<_>>(),
        ["Mesh_10_0_0_2"]
    );
}

#[test]
fn explicit_peers_with_every_field() {
    let yaml = three_nodes()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: tor
spec:
  peerIP: 10.1.1.1:1790
  asNumber: 65000
  keepOriginalNextHop: true
  maxRestartTime: 5m
  keepaliveTime: 10s
  password:
    secretKeyRef:
      name: bgp-secrets
      key: tor
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: only-node-b
spec:
  node: node-b
  peerIP: 10.1.1.2
  asNumber: 64512
  sourceAddress: None
  nextHopMode: Self
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: by-label
spec:
  nodeSelector: kubernetes.io/hostname == 'node-c'
  peerIP: fd00::99
  asNumber: 65009
";
    let mut c = Cluster::from_yaml(&yaml);
    c.secrets
        .insert(("bgp-secrets".into(), "tor".into()), "torpass".into());
    let a = c.peers_of("node-a");
    let tor = &a["Global_10_1_1_1_port_1790"];
    assert_eq!(tor.port, 1790);
    assert_eq!(tor.remote_as, 65000);
    assert!(tor.keep_next_hop);
    assert_eq!(tor.password.as_deref(), Some("torpass"));
    assert_eq!(tor.graceful_restart.as_ref().unwrap().restart_time, 300);
    assert_eq!(tor.keepalive_time, Some(10));
    assert_eq!(
        tor.source_address,
        Some(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)))
    );
    assert!(!a.contains_key("Node_10_1_1_2"), "node-b's peer only");
    let b = c.peers_of("node-b");
    let own = &b["Node_10_1_1_2"];
    assert_eq!(own.source_address, None);
    assert!(own.next_hop_self);
    assert!(!own.keep_next_hop, "keepOriginalNextHop is for eBGP only");
    let c_peers = c.peers_of("node-c");
    assert!(c_peers.contains_key("Node_fd00__99"));
    assert!(!b.contains_key("Node_fd00__99"));
}

#[test]
fn a_peer_ip_that_is_a_calico_node_uses_its_listen_port() {
    let yaml = [
        node("node-a", "10.0.0.1", ""),
        node("node-b", "10.0.0.2", ""),
    ]
    .concat()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.node-b
spec:
  listenPort: 1790
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: a-to-b
spec:
  node: node-a
  peerIP: 10.0.0.2
  asNumber: 64512
";
    let c = Cluster::from_yaml(&yaml);
    let a = c.peers_of("node-a");
    assert_eq!(a["Node_10_0_0_2_port_1790"].port, 1790);
    // And node-b peers back automatically, on node-a's port.
    let b = c.peers_of("node-b");
    assert_eq!(b.keys().collect::<Vec<_>>(), ["Node_10_0_0_1"]);
}

#[test]
fn manual_reverse_peering_is_not_implied() {
    let yaml = [
        node("node-a", "10.0.0.1", ""),
        node("node-b", "10.0.0.2", ""),
    ]
    .concat()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  nodeToNodeMeshEnabled: false
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: a-to-b
spec:
  node: node-a
  peerIP: 10.0.0.2
  asNumber: 64512
  reversePeering: Manual
";
    let c = Cluster::from_yaml(&yaml);
    assert!(c.peers_of("node-b").is_empty());
}

#[test]
fn bad_resources_are_skipped_with_a_warning() {
    let yaml = three_nodes()
        + "---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: bad-selector
spec:
  nodeSelector: has(
  peerIP: 10.9.9.9
  asNumber: 65000
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: good
spec:
  peerIP: 10.9.9.8
  asNumber: 65000
";
    let mut c = Cluster::from_yaml(&yaml);
    // A peer whose address is not one (the model accepts any string).
    let mut bad_ip = c.peers[1].clone();
    bad_ip.metadata.name = "bad-ip".into();
    bad_ip.spec.peer_ip = "10.9.9".into();
    c.peers.push(bad_ip);
    let d = c.desired("node-a").unwrap();
    assert!(d.peers.iter().any(|p| p.name == "Global_10_9_9_8"));
    assert!(
        d.warnings.iter().any(|w| w.contains("bad-selector")),
        "{:?}",
        d.warnings
    );
    assert!(
        d.warnings
            .iter()
            .any(|w| w.contains("bad-ip") && w.contains("\"10.9.9\"")),
        "{:?}",
        d.warnings
    );
}

#[test]
fn nodes_that_cannot_run_bgp_are_errors() {
    let c = Cluster::from_yaml(&three_nodes());
    assert_eq!(
        c.desired("node-z"),
        Err(ConfigError::NoSuchNode {
            node: "node-z".into()
        })
    );
    let mut c = Cluster::from_yaml(&three_nodes());
    c.nodes[0].spec.bgp = None;
    assert_eq!(
        c.desired("node-a"),
        Err(ConfigError::NoBgp {
            node: "node-a".into()
        })
    );
    let c = Cluster::from_yaml(&node(
        "node-a",
        "10.0.0.1",
        "    routeReflectorClusterID: cluster-1\n",
    ));
    assert!(matches!(
        c.desired("node-a"),
        Err(ConfigError::BadClusterId { .. })
    ));
}

#[test]
fn ipv6_nodes_mesh_over_ipv6() {
    let yaml = [
        node("node-a", "10.0.0.1", "    ipv6Address: fd00::1/64\n"),
        node("node-b", "10.0.0.2", "    ipv6Address: fd00::2/64\n"),
    ]
    .concat();
    let c = Cluster::from_yaml(&yaml);
    let a = c.peers_of("node-a");
    assert_eq!(
        a.keys().collect::<Vec<_>>(),
        ["Mesh_10_0_0_2", "Mesh_fd00__2"]
    );
    let v6 = &a["Mesh_fd00__2"];
    assert_eq!(v6.families, vec![crate::wire::Family::IPV6_UNICAST]);
    assert_eq!(v6.source_address, Some("fd00::1".parse().unwrap()));
}

const EXPORTS: &str = "---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: default-ipv4-ippool
spec:
  cidr: 192.168.0.0/16
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: private
spec:
  cidr: 172.30.0.0/16
  disableBGPExport: true
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: default
spec:
  serviceClusterIPs:
  - cidr: 10.96.0.0/12
  serviceExternalIPs:
  - cidr: 203.0.113.0/24
  serviceLoadBalancerIPs:
  - cidr: 198.51.100.0/24
  communities:
  - name: bgp-large-community
    value: 63400:300:100
  prefixAdvertisements:
  - cidr: 192.168.0.0/16
    communities:
    - bgp-large-community
    - 63400:120
  - cidr: 10.96.0.0/12
    communities:
    - 63400:200
";

#[test]
fn exports_are_blocks_in_exported_pools_and_service_ranges_with_communities() {
    let mut c = Cluster::from_yaml(&(three_nodes() + EXPORTS));
    c.blocks = vec![
        "192.168.10.0/26".parse().unwrap(),
        "172.30.1.0/26".parse().unwrap(),
        "10.200.0.0/26".parse().unwrap(),
    ];
    let d = c.desired("node-a").unwrap();
    let exported: BTreeMap<String, &Origination> = d
        .originations
        .iter()
        .map(|o| (o.prefix.to_string(), o))
        .collect();
    assert_eq!(
        exported.keys().collect::<Vec<_>>(),
        [
            "10.96.0.0/12",
            "192.168.10.0/26",
            "198.51.100.0/24",
            "203.0.113.0/24"
        ],
        "not the block of the pool with BGP export disabled, nor one outside every pool"
    );
    let block = exported["192.168.10.0/26"];
    assert_eq!(block.communities, vec![(63400 << 16) | 120]);
    assert_eq!(
        block.large_communities,
        vec![LargeCommunity {
            global_admin: 63400,
            local_1: 300,
            local_2: 100
        }]
    );
    assert_eq!(block.local_pref, Some(2_147_482_623));
    assert_eq!(
        exported["10.96.0.0/12"].communities,
        vec![(63400 << 16) | 200]
    );
    assert!(exported["203.0.113.0/24"].communities.is_empty());
    // Learned routes go on only inside exported pools.
    assert_eq!(
        d.peers[0].learned,
        LearnedFilter::Within(vec!["192.168.0.0/16".parse().unwrap()])
    );
}

#[test]
fn a_nodes_own_prefix_advertisements_replace_the_defaults() {
    let yaml = three_nodes()
        + EXPORTS
        + "---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata:
  name: node.node-a
spec:
  prefixAdvertisements:
  - cidr: 192.168.10.0/24
    communities:
    - 65535:65281
";
    let mut c = Cluster::from_yaml(&yaml);
    c.blocks = vec!["192.168.10.0/26".parse().unwrap()];
    let a = c.desired("node-a").unwrap();
    let block = a
        .originations
        .iter()
        .find(|o| o.prefix.to_string() == "192.168.10.0/26")
        .unwrap();
    assert_eq!(
        block.communities,
        vec![crate::attributes::community::NO_EXPORT]
    );
    assert!(block.large_communities.is_empty());
    // node-b, without blocks of its own, exports only service ranges.
    c.blocks.clear();
    let b = c.desired("node-b").unwrap();
    assert!(
        b.originations
            .iter()
            .all(|o| o.prefix.to_string() != "192.168.10.0/26"),
        "node-b has no blocks"
    );
}

#[test]
fn community_values_parse_like_calico_writes_them() {
    assert_eq!(parse_community("65000:100"), Some(Ok((65000 << 16) | 100)));
    assert_eq!(
        parse_community("4200000000:1:2"),
        Some(Err(LargeCommunity {
            global_admin: 4_200_000_000,
            local_1: 1,
            local_2: 2
        }))
    );
    for bad in ["", "65000", "70000:1", "a:b", "1:2:3:4"] {
        assert_eq!(parse_community(bad), None, "{bad}");
    }
}

proptest! {
    /// Whatever the addresses, mesh peerings are symmetric and exactly one
    /// end of each waits.
    #[test]
    fn mesh_peerings_are_symmetric_with_one_passive_end(
        hosts in prop::collection::btree_set(1u32..2000, 2..7)
    ) {
        let yaml: String = hosts
            .iter()
            .map(|h| node(&format!("n{h}"), &std::net::Ipv4Addr::from(0x0a00_0000 + h).to_string(), ""))
            .collect();
        let c = Cluster::from_yaml(&yaml);
        let by_node: BTreeMap<u32, Vec<PeerConfig>> = hosts
            .iter()
            .map(|h| (*h, c.desired(&format!("n{h}")).unwrap().peers))
            .collect();
        for (h, peers) in &by_node {
            prop_assert_eq!(peers.len(), hosts.len() - 1);
            let me = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + h));
            for p in peers {
                let IpAddr::V4(v4) = p.address else { unreachable!() };
                let other = u32::from(v4) - 0x0a00_0000;
                let back = by_node[&other].iter().find(|q| q.address == me).unwrap();
                prop_assert_ne!(p.passive, back.passive);
            }
        }
    }
}
