//! Cross-node routing end to end (root): two simulated nodes on one
//! underlay subnet (a veth pair, 10.98.0.0/24), each running the
//! `calico-node` binary (start-up and agent) with Calico's VXLAN backend
//! (`CALICO_NETWORKING_BACKEND=vxlan`) and a default pool with
//! `CALICO_IPV4POOL_VXLAN=Always`, sharing one embedded datastore.
//!
//! Checked: start-up gives each node a VXLAN tunnel address through IPAM
//! and records it on its Node; the agent makes `vxlan.calico` (VNI 4096,
//! port 4789), routes the other node's blocks through it, and TCP reaches
//! an address of the other node's block through the tunnel; the pod MTU
//! file says 1450; switching the pool to `vxlanMode: Never` replaces the
//! tunnel routes with same-subnet routes, removes the device and writes
//! 1500.

mod support;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use calico_client::Client;
use calico_datastore::AnyBackend;
use calico_ipam::{AutoAssignArgs, Ipam};
use calico_model::{EncapMode, IpPool, Node};
use calico_netlink::testing::ScratchNetns;
use support::{AgentProcess, Store, Underlay, runtime, start_node, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const A_IP: &str = "10.98.0.1";
const B_IP: &str = "10.98.0.2";
const POOL: &str = "10.70.0.0/16";
const OVERLAY_PROTOCOL: &str = "81";

fn start(store: &Store, name: &str, ns: &ScratchNetns, ip: &str) -> AgentProcess {
    start_node(
        store,
        name,
        ns,
        ip,
        &[
            ("CALICO_NETWORKING_BACKEND", "vxlan"),
            ("CALICO_IPV4POOL_CIDR", POOL),
            ("CALICO_IPV4POOL_VXLAN", "Always"),
        ],
    )
}

/// Cross-node routes the agent programmed in a namespace.
fn overlay_routes(ns: &ScratchNetns) -> String {
    ns.exec(&["ip", "-4", "route", "show", "proto", OVERLAY_PROTOCOL])
        .unwrap_or_default()
}

fn block_of(ip: IpAddr) -> String {
    let IpAddr::V4(v4) = ip else { panic!("{ip}") };
    let net = ipnet::Ipv4Net::new(v4, 26).unwrap().trunc();
    net.to_string()
}

#[test]
fn vxlan_tunnels_between_two_nodes_then_same_subnet_routes() {
    let rt = runtime();
    let store = Store::embedded();
    let backend: AnyBackend = store.backend(&rt);
    let client = Client::new(backend.clone());
    let net = Underlay::new("ovl", A_IP, B_IP);
    let agent_a = start(&store, "node-a", &net.a, A_IP);
    let agent_b = start(&store, "node-b", &net.b, B_IP);
    let logs = || {
        format!(
            "--- node-a\n{}\n--- node-b\n{}",
            agent_a.log(),
            agent_b.log()
        )
    };

    // Start-up recorded a tunnel address from the pool on each Node.
    let node = |name: &str| rt.block_on(client.get_typed::<Node>("", name)).unwrap();
    let pool: ipnet::IpNet = POOL.parse().unwrap();
    let tunnel = |name: &str| -> IpAddr {
        let address = node(name).spec.ipv4_vxlan_tunnel_addr;
        address
            .parse()
            .unwrap_or_else(|_| panic!("{name} has no VXLAN tunnel address: {address:?}"))
    };
    let (tunnel_a, tunnel_b) = (tunnel("node-a"), tunnel("node-b"));
    assert!(pool.contains(&tunnel_a) && pool.contains(&tunnel_b));
    assert_ne!(tunnel_a, tunnel_b);
    let ipam = Ipam::new(backend.clone());
    assert_eq!(
        rt.block_on(ipam.get_ips_by_handle("vxlan-tunnel-addr-node-b"))
            .unwrap(),
        vec![tunnel_b]
    );

    // The device, as Calico makes it.
    let device = net
        .a
        .exec(&["ip", "-d", "link", "show", "vxlan.calico"])
        .unwrap_or_else(|e| panic!("no vxlan.calico on node-a: {e}\n{}", logs()));
    assert!(device.contains("vxlan id 4096"), "{device}");
    assert!(device.contains("dstport 4789"), "{device}");
    assert!(device.contains("mtu 1450"), "{device}");

    // node-b's block is routed through the tunnel to node-b's VTEP.
    let block_b = block_of(tunnel_b);
    let expected = format!("{block_b} via {tunnel_b} dev vxlan.calico onlink");
    wait_for(
        WAIT,
        "node-a's tunnel route to node-b's block",
        || overlay_routes(&net.a).contains(&expected),
        || format!("{}\n{}", overlay_routes(&net.a), logs()),
    );

    // An address of node-b's block, held on node-b, is reached from
    // node-a through the tunnel (and answers back through it).
    let args = AutoAssignArgs {
        num4: 1,
        handle: Some("test-pod".into()),
        attrs: BTreeMap::new(),
        hostname: "node-b".into(),
        ..AutoAssignArgs::default()
    };
    let assigned = rt.block_on(ipam.auto_assign(&args)).unwrap();
    let pod_b = assigned.v4.addresses()[0];
    assert_eq!(block_of(pod_b), block_b, "node-b's pod is in its block");
    net.b
        .exec(&["ip", "addr", "add", &format!("{pod_b}/32"), "dev", "lo"])
        .unwrap();
    let echo = net.b.tcp_echo(pod_b);
    wait_for(
        WAIT,
        "TCP from node-a to node-b's pod address through vxlan.calico",
        || net.a.tcp_probe(echo.address).is_ok(),
        logs,
    );
    let through: SocketAddr = echo.address;
    assert!(pool.contains(&through.ip()));

    // The pod MTU leaves room for VXLAN.
    wait_for(
        WAIT,
        "node-a's MTU file",
        || std::fs::read_to_string(agent_a.mtu_file()).is_ok_and(|m| m == "1450\n"),
        logs,
    );

    // The pool stops encapsulating: same-subnet routes replace the tunnel,
    // the device goes, pods get the whole MTU.
    let mut pools = rt
        .block_on(client.list_typed::<IpPool>(None, None))
        .unwrap();
    assert_eq!(pools.len(), 1, "one default pool");
    let mut default_pool = pools.remove(0);
    default_pool.spec.vxlan_mode = Some(EncapMode::Never);
    rt.block_on(client.update_typed(default_pool)).unwrap();
    let direct = format!("{block_b} via {B_IP} dev eth0");
    wait_for(
        WAIT,
        "node-a's same-subnet route to node-b's block",
        || overlay_routes(&net.a).contains(&direct),
        || format!("{}\n{}", overlay_routes(&net.a), logs()),
    );
    wait_for(
        WAIT,
        "vxlan.calico to be removed",
        || net.a.exec(&["ip", "link", "show", "vxlan.calico"]).is_err(),
        logs,
    );
    wait_for(
        WAIT,
        "node-a's MTU file to say 1500",
        || std::fs::read_to_string(agent_a.mtu_file()).is_ok_and(|m| m == "1500\n"),
        logs,
    );
    assert!(
        !overlay_routes(&net.a).contains("vxlan.calico"),
        "{}",
        overlay_routes(&net.a)
    );
}
