//! A lab for the driver tests: "nodes" are network namespaces on a
//! veth/bridge underlay, "pods" are namespaces behind them wired as
//! Calico's CNI plugin wires them (a /32 on the pod's eth0, a gateway at
//! 169.254.1.1 answered by proxy ARP). Every namespace is removed on drop,
//! even when a test fails. Needs root. Shared by the tests against this
//! machine's kernel and the IPIP tests inside a VM.

// Each test binary uses its own part of the lab.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};

use calico_model::ipam::AllocationBlock;
use calico_model::node::NodeBgpSpec;
use calico_model::{EncapMode, IpPool, IpPoolSpec, Node, ObjectMeta};
use calico_netlink::sysctl::Sysctl;
use calico_netlink::testing::ScratchNetns;
use calico_routing::{Desired, Reconciler, RoutingInput, compute};

pub fn sh(ns: &ScratchNetns, command: &str) -> String {
    let argv: Vec<&str> = command.split_whitespace().collect();
    ns.exec(&argv).unwrap_or_else(|e| panic!("{command}: {e}"))
}

/// Runs `ip` commands (without the leading `ip`) inside a namespace, in
/// one process: `ip -n NAME -batch -`. Process start-ups are most of a
/// lab's set-up time, in an emulated guest above all.
pub fn ip(ns: &ScratchNetns, commands: &[String]) {
    let mut child = Command::new("ip")
        .args(["-n", ns.name(), "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running ip");
    let script = commands.join("\n") + "\n";
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(script.as_bytes())
        .expect("writing to ip");
    let output = child.wait_with_output().expect("waiting for ip");
    assert!(
        output.status.success(),
        "ip -n {} -batch failed: {}\n{script}",
        ns.name(),
        String::from_utf8_lossy(&output.stderr).trim()
    );
}

/// Sets a sysctl to 1 inside a namespace (through /proc/sys, no tools).
pub fn sysctl(ns: &ScratchNetns, key: &str) {
    calico_netlink::sysctl::write_in(ns.netns(), &[Sysctl::required(key, "1")])
        .unwrap_or_else(|e| panic!("{key}: {e}"));
}

/// Packets sent by `device` in `ns` so far.
pub fn tx_packets(ns: &ScratchNetns, device: &str) -> u64 {
    let json = sh(ns, &format!("ip -s -j link show {device}"));
    let value: serde_json::Value = serde_json::from_str(&json).unwrap();
    value[0]["stats64"]["tx"]["packets"].as_u64().unwrap()
}

/// The IP pool's encapsulation: `vxlanMode`, `ipipMode`, `natOutgoing`.
#[derive(Debug, Clone, Copy)]
pub struct PoolModes {
    pub vxlan: EncapMode,
    pub ipip: EncapMode,
    pub nat: bool,
}

impl PoolModes {
    pub fn vxlan(vxlan: EncapMode, nat: bool) -> PoolModes {
        PoolModes {
            vxlan,
            ipip: EncapMode::Never,
            nat,
        }
    }

    pub fn ipip(ipip: EncapMode) -> PoolModes {
        PoolModes {
            vxlan: EncapMode::Never,
            ipip,
            nat: false,
        }
    }
}

/// A node namespace with `eth0` on a bridge in `fabric`, and its pods.
pub struct TestNode {
    pub name: String,
    pub ns: ScratchNetns,
    pub address: String,
    pub pods: Vec<(ScratchNetns, Ipv4Addr)>,
}

/// Bridges (one per subnet) live in `fabric`; with two subnets a router
/// namespace joins them at .1 of each.
pub struct Lab {
    pub fabric: ScratchNetns,
    pub router: Option<ScratchNetns>,
    pub nodes: Vec<TestNode>,
}

impl Lab {
    /// `nodes`: (name, subnet index 1 or 2, host part).
    pub fn new(nodes: &[(&str, u8, u8)], router: bool) -> Lab {
        let fabric = ScratchNetns::new("rt-fabric");
        ip(
            &fabric,
            &[1, 2]
                .iter()
                .flat_map(|subnet| {
                    [
                        format!("link add br{subnet} type bridge"),
                        format!("link set br{subnet} up"),
                    ]
                })
                .collect::<Vec<_>>(),
        );
        let router = router.then(|| {
            let r = ScratchNetns::new("rt-router");
            for subnet in [1, 2] {
                attach(
                    &fabric,
                    &r,
                    subnet,
                    &format!("r{subnet}"),
                    &format!("eth{subnet}"),
                    &format!("10.0.{subnet}.1/24"),
                );
            }
            sysctl(&r, "net/ipv4/ip_forward");
            r
        });
        let mut lab = Lab {
            fabric,
            router,
            nodes: Vec::new(),
        };
        for (name, subnet, host) in nodes {
            let ns = ScratchNetns::new("rt-node");
            let address = format!("10.0.{subnet}.{host}/24");
            attach(
                &lab.fabric,
                &ns,
                *subnet,
                &format!("port-{name}"),
                "eth0",
                &address,
            );
            ip(&ns, &[format!("route add default via 10.0.{subnet}.1")]);
            sysctl(&ns, "net/ipv4/ip_forward");
            lab.nodes.push(TestNode {
                name: name.to_string(),
                ns,
                address,
                pods: Vec::new(),
            });
        }
        lab
    }

    pub fn node(&self, name: &str) -> &TestNode {
        self.nodes.iter().find(|n| n.name == name).unwrap()
    }

    /// A pod behind `node` at `ip`, wired as the CNI plugin does.
    pub fn add_pod(&mut self, node: &str, address: &str) {
        let index = self.nodes.iter().position(|n| n.name == node).unwrap();
        let pod = ScratchNetns::new("rt-pod");
        let n = &self.nodes[index];
        let host_if = format!("cali{}", n.pods.len());
        ip(
            &n.ns,
            &[
                format!(
                    "link add {host_if} type veth peer name eth0 netns {}",
                    pod.name()
                ),
                format!("link set {host_if} up"),
                format!("route add {address}/32 dev {host_if} scope link"),
            ],
        );
        sysctl(&n.ns, &format!("net/ipv4/conf/{host_if}/proxy_arp"));
        ip(
            &pod,
            &[
                format!("addr add {address}/32 dev eth0"),
                "link set eth0 up".into(),
                "route add 169.254.1.1 dev eth0 scope link".into(),
                "route add default via 169.254.1.1 dev eth0".into(),
            ],
        );
        self.nodes[index].pods.push((pod, address.parse().unwrap()));
    }

    pub fn pod(&self, node: &str, index: usize) -> &(ScratchNetns, Ipv4Addr) {
        &self.node(node).pods[index]
    }

    /// Can pod `from` reach pod `to` over TCP (and back)?
    pub fn reaches(&self, from: (&str, usize), to: (&str, usize)) -> bool {
        let (source, _) = self.pod(from.0, from.1);
        let (target, ip) = self.pod(to.0, to.1);
        let server = target.tcp_echo(IpAddr::V4(*ip));
        source.tcp_probe(server.address).is_ok()
    }

    /// Node resources with their tunnel addresses (VXLAN .1, IPIP .2 of
    /// each node's block), one pool, one /26 per node: 192.168.<i>.0/26
    /// for node i.
    pub fn input(&self, me: &str, modes: PoolModes, host_mtu: u32) -> RoutingInput {
        let mut nodes = Vec::new();
        let mut blocks = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            let mut node = Node {
                metadata: ObjectMeta::named(&n.name),
                ..Default::default()
            };
            node.spec.bgp = Some(NodeBgpSpec {
                ipv4_address: n.address.clone(),
                ipv4_ipip_tunnel_addr: format!("192.168.{i}.2"),
                ..Default::default()
            });
            node.spec.ipv4_vxlan_tunnel_addr = format!("192.168.{i}.1");
            nodes.push(node);
            blocks.push(AllocationBlock::new(
                format!("192.168.{i}.0/26").parse().unwrap(),
                Some(format!("host:{}", n.name)),
                0,
            ));
        }
        let pool = IpPool {
            metadata: ObjectMeta::named("default-ipv4-ippool"),
            spec: IpPoolSpec {
                cidr: "192.168.0.0/16".into(),
                vxlan_mode: Some(modes.vxlan),
                ipip_mode: Some(modes.ipip),
                nat_outgoing: modes.nat,
                ..Default::default()
            },
            ..Default::default()
        };
        RoutingInput::from_resources(me, &nodes, &[pool], &blocks, [], host_mtu)
    }

    /// Computes and applies every node's routing; returns each node's
    /// desired state.
    pub fn program(&self, modes: PoolModes) -> BTreeMap<String, Desired> {
        let mut out = BTreeMap::new();
        for n in &self.nodes {
            let mut reconciler = Reconciler::open_default(&n.ns.path()).unwrap();
            let mtu = reconciler
                .host_mtu(&calico_routing::mtu::default_pattern())
                .unwrap();
            let desired = compute(&self.input(&n.name, modes, mtu));
            assert!(desired.problems.is_empty(), "{:?}", desired.problems);
            reconciler
                .apply(&desired)
                .unwrap_or_else(|e| panic!("{}: {e}", n.name));
            out.insert(n.name.clone(), desired);
        }
        out
    }
}

/// A veth from `ns` (as `inner`) to bridge `br<subnet>` in `fabric`.
fn attach(
    fabric: &ScratchNetns,
    ns: &ScratchNetns,
    subnet: u8,
    port: &str,
    inner: &str,
    address: &str,
) {
    ip(
        fabric,
        &[
            format!(
                "link add {port} type veth peer name {inner} netns {}",
                ns.name()
            ),
            format!("link set {port} master br{subnet} up"),
        ],
    );
    ip(
        ns,
        &[
            format!("addr add {address} dev {inner}"),
            format!("link set {inner} up"),
        ],
    );
}

/// TCP from each node's first pod to every other node's.
pub fn all_pairs_reach(lab: &Lab) {
    for (from, to) in [
        ("a", "b"),
        ("b", "a"),
        ("a", "c"),
        ("c", "a"),
        ("b", "c"),
        ("c", "b"),
    ] {
        assert!(lab.reaches((from, 0), (to, 0)), "{from} -> {to}");
    }
}
