//! Workload plumbing against the real kernel, in scratch namespaces: one
//! namespace plays the node ("host"), others play pods. Needs root.

use std::net::{IpAddr, SocketAddr};

use calico_netlink::testing::ScratchNetns;
use calico_netlink::{
    HOST_SIDE_MAC, HostNetwork, Removed, SetupError, WorkloadInterface, default_routes, format_mac,
    remove_pod_interface,
};

/// A simulated node: a namespace with an "uplink" (a veth pair with both
/// ends inside it, since this kernel has no dummy devices) carrying the
/// node's own addresses and the default routes, and forwarding enabled the
/// way the node agent enables it.
struct Node {
    ns: ScratchNetns,
    host: HostNetwork,
}

const NODE_V4: &str = "10.99.0.1";
const NODE_V6: &str = "fd00:99::1";

impl Node {
    fn new() -> Self {
        let ns = ScratchNetns::new("node");
        for cmd in [
            "ip link add uplink0 type veth peer name uplink1",
            "ip link set uplink0 up",
            "ip link set uplink1 up",
            "ip addr add 10.99.0.1/32 dev uplink0",
            "ip -6 addr add fd00:99::1/128 dev uplink0 nodad",
            "ip route add default dev uplink0",
            "ip -6 route add default dev uplink0",
            "sysctl -q -w net.ipv4.ip_forward=1",
            "sysctl -q -w net.ipv6.conf.all.forwarding=1",
        ] {
            ns.exec(&cmd.split(' ').collect::<Vec<_>>())
                .expect("node setup");
        }
        let host = HostNetwork::new(ns.open()).expect("socket in node namespace");
        Node { ns, host }
    }
}

fn workload(host_ifname: &str, addresses: &[&str]) -> WorkloadInterface {
    WorkloadInterface {
        host_ifname: host_ifname.into(),
        pod_ifname: "eth0".into(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        routes: default_routes(),
        mtu: Some(1400),
        queues: None,
        pod_mac: None,
        allow_ip_forwarding: false,
        host_routes: true,
    }
}

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn pods_reach_the_host_and_each_other_over_ipv4() {
    let mut node = Node::new();
    let pod_a = ScratchNetns::new("poda");
    let pod_b = ScratchNetns::new("podb");
    let links_a = node
        .host
        .add_workload(pod_a.netns(), &workload("cali0000000000a", &["10.65.0.1"]))
        .expect("pod A plumbed");
    node.host
        .add_workload(pod_b.netns(), &workload("cali0000000000b", &["10.65.0.2"]))
        .expect("pod B plumbed");

    assert_eq!(links_a.host.mac, Some(HOST_SIDE_MAC));
    assert_eq!(links_a.host.mtu, Some(1400));
    assert_eq!(links_a.pod.name, "eth0");
    assert!(links_a.host.up && links_a.pod.up);

    let pod_routes = pod_a.exec(&["ip", "route"]).unwrap();
    assert!(
        pod_routes.contains("default via 169.254.1.1 dev eth0"),
        "{pod_routes}"
    );
    assert!(
        pod_routes.contains("169.254.1.1 dev eth0 scope link"),
        "{pod_routes}"
    );
    let pod_addrs = pod_a.exec(&["ip", "-4", "addr", "show", "eth0"]).unwrap();
    assert!(pod_addrs.contains("inet 10.65.0.1/32"), "{pod_addrs}");
    assert!(pod_addrs.contains("mtu 1400"), "{pod_addrs}");
    let host_routes = node.ns.exec(&["ip", "route"]).unwrap();
    assert!(
        host_routes.contains("10.65.0.1 dev cali0000000000a"),
        "{host_routes}"
    );
    let proxy_arp = node
        .ns
        .exec(&["cat", "/proc/sys/net/ipv4/conf/cali0000000000a/proxy_arp"])
        .unwrap();
    assert_eq!(proxy_arp.trim(), "1");

    let host_server = node.ns.tcp_echo(ip(NODE_V4));
    pod_a
        .tcp_probe(host_server.address)
        .expect("pod A reaches the host");
    let server_a = pod_a.tcp_echo(ip("10.65.0.1"));
    pod_b
        .tcp_probe(server_a.address)
        .expect("pod B reaches pod A");
    node.ns
        .tcp_probe(SocketAddr::new(ip("10.65.0.1"), server_a.address.port()))
        .expect("host reaches pod A");
}

#[test]
fn dual_stack_pods_reach_the_host_and_each_other() {
    let mut node = Node::new();
    let pod_a = ScratchNetns::new("poda6");
    let pod_b = ScratchNetns::new("podb6");
    node.host
        .add_workload(
            pod_a.netns(),
            &workload("cali000000006a", &["10.65.1.1", "fd00:65::1"]),
        )
        .expect("pod A plumbed");
    node.host
        .add_workload(
            pod_b.netns(),
            &workload("cali000000006b", &["10.65.1.2", "fd00:65::2"]),
        )
        .expect("pod B plumbed");

    let routes6 = pod_a.exec(&["ip", "-6", "route"]).unwrap();
    // The IPv6 next hop is the host end's link-local address, derived from
    // the fixed MAC ee:ee:ee:ee:ee:ee.
    assert!(
        routes6.contains("default via fe80::ecee:eeff:feee:eeee dev eth0"),
        "{routes6}"
    );
    let addrs6 = pod_a.exec(&["ip", "-6", "addr", "show", "eth0"]).unwrap();
    assert!(addrs6.contains("inet6 fd00:65::1/128"), "{addrs6}");
    let host_routes6 = node.ns.exec(&["ip", "-6", "route"]).unwrap();
    assert!(
        host_routes6.contains("fd00:65::1 dev cali000000006a"),
        "{host_routes6}"
    );

    let server_a6 = pod_a.tcp_echo(ip("fd00:65::1"));
    pod_b
        .tcp_probe(server_a6.address)
        .expect("pod B reaches pod A over IPv6");
    let server_a4 = pod_a.tcp_echo(ip("10.65.1.1"));
    pod_b
        .tcp_probe(server_a4.address)
        .expect("pod B reaches pod A over IPv4");
    let host6 = node.ns.tcp_echo(ip(NODE_V6));
    pod_b
        .tcp_probe(host6.address)
        .expect("pod B reaches the host over IPv6");
}

#[test]
fn taken_pod_interface_name_creates_nothing() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("taken");
    pod.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
    ])
    .unwrap();
    let before = pod.link_names();

    let error = node
        .host
        .add_workload(pod.netns(), &workload("cali00000000tkn", &["10.65.2.1"]))
        .unwrap_err();
    assert!(
        matches!(error, SetupError::PodInterfaceExists { ref name, .. } if name == "eth0"),
        "{error:?}"
    );
    assert!(error.to_string().contains("eth0 already exists"), "{error}");
    assert!(!node.ns.link_names().iter().any(|n| n.starts_with("cali")));
    assert_eq!(
        pod.link_names(),
        before,
        "the pod's own interfaces are untouched"
    );
}

#[test]
fn bad_mtu_creates_nothing() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("mtu");
    let mut spec = workload("cali00000000mtu", &["10.65.3.1"]);
    spec.mtu = Some(70_000);
    let error = node.host.add_workload(pod.netns(), &spec).unwrap_err();
    assert!(
        matches!(
            error,
            SetupError::CreateVeth {
                mtu: Some(70_000),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(error.to_string().contains("MTU 70000"), "{error}");
    assert!(!node.ns.link_names().iter().any(|n| n.starts_with("cali")));
    assert_eq!(pod.link_names(), vec!["lo".to_string()]);
}

#[test]
fn failure_after_creation_rolls_everything_back() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("conflict");
    // Another interface already routes the pod's address: found only after
    // the veth, its sysctls, the pod's addresses and routes are in place.
    node.ns
        .exec(&["ip", "route", "add", "10.65.4.1/32", "dev", "uplink1"])
        .unwrap();
    let error = node
        .host
        .add_workload(pod.netns(), &workload("cali00000000cfl", &["10.65.4.1"]))
        .unwrap_err();
    assert!(
        matches!(error, SetupError::HostRouteConflict { ref other, .. } if other == "uplink1"),
        "{error:?}"
    );
    assert!(!node.ns.link_names().iter().any(|n| n.starts_with("cali")));
    assert_eq!(
        pod.link_names(),
        vec!["lo".to_string()],
        "no eth0 left in the pod"
    );
    let routes = node.ns.exec(&["ip", "route"]).unwrap();
    assert!(
        routes.contains("10.65.4.1 dev uplink1"),
        "the other route is untouched: {routes}"
    );
}

#[test]
fn removal_is_idempotent_and_takes_the_host_side_with_it() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("del");
    node.host
        .add_workload(
            pod.netns(),
            &workload("cali00000000del", &["10.65.5.1", "fd00:65::5"]),
        )
        .unwrap();

    assert_eq!(
        remove_pod_interface(&pod.path(), "eth0").unwrap(),
        Removed::Deleted
    );
    assert!(!node.ns.link_names().iter().any(|n| n.starts_with("cali")));
    let routes = node.ns.exec(&["ip", "route"]).unwrap();
    assert!(!routes.contains("10.65.5.1"), "{routes}");
    assert_eq!(
        remove_pod_interface(&pod.path(), "eth0").unwrap(),
        Removed::AlreadyGone
    );
    let path = pod.path();
    drop(pod);
    assert_eq!(
        remove_pod_interface(&path, "eth0").unwrap(),
        Removed::NetnsGone
    );
    assert_eq!(
        node.host.remove_host_interface("cali00000000del").unwrap(),
        Removed::AlreadyGone
    );
}

#[test]
fn stale_host_interface_is_replaced() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("stale");
    node.ns
        .exec(&[
            "ip",
            "link",
            "add",
            "cali0000000stal",
            "type",
            "veth",
            "peer",
            "name",
            "leftover",
        ])
        .unwrap();
    let links = node
        .host
        .add_workload(pod.netns(), &workload("cali0000000stal", &["10.65.6.1"]))
        .expect("stale interface replaced");
    assert_eq!(links.host.mac, Some(HOST_SIDE_MAC));
    assert!(!node.ns.link_names().contains(&"leftover".to_string()));
}

#[test]
fn requested_pod_mac_is_used() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("mac");
    let mut spec = workload("cali00000000mac", &["10.65.7.1"]);
    spec.pod_mac = Some([0x02, 0x42, 0x0a, 0x41, 0x07, 0x01]);
    let links = node.host.add_workload(pod.netns(), &spec).unwrap();
    assert_eq!(
        links.pod.mac.as_ref().map(format_mac).as_deref(),
        Some("02:42:0a:41:07:01")
    );
    let shown = pod.exec(&["ip", "link", "show", "eth0"]).unwrap();
    assert!(shown.contains("02:42:0a:41:07:01"), "{shown}");
}

#[test]
fn check_reports_every_missing_piece() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("check");
    let spec = workload("cali00000000chk", &["10.65.8.1"]);
    node.host.add_workload(pod.netns(), &spec).unwrap();
    node.host
        .check_workload(pod.netns(), &spec)
        .expect("fresh workload checks out");

    pod.exec(&["ip", "addr", "del", "10.65.8.1/32", "dev", "eth0"])
        .unwrap();
    node.ns
        .exec(&[
            "ip",
            "route",
            "del",
            "10.65.8.1/32",
            "dev",
            "cali00000000chk",
        ])
        .unwrap();
    let error = node.host.check_workload(pod.netns(), &spec).unwrap_err();
    let text = error.to_string();
    assert!(text.contains("address 10.65.8.1/32 is missing"), "{text}");
    assert!(
        text.contains("host route 10.65.8.1/32 dev cali00000000chk is missing"),
        "{text}"
    );

    remove_pod_interface(&pod.path(), "eth0").unwrap();
    let error = node.host.check_workload(pod.netns(), &spec).unwrap_err();
    assert!(error.to_string().contains("eth0 is missing"), "{error}");
}

#[test]
fn queues_and_mtu_apply_to_both_ends() {
    let mut node = Node::new();
    let pod = ScratchNetns::new("queues");
    let mut spec = workload("cali0000000000q", &["10.65.9.1"]);
    spec.queues = Some(4);
    spec.mtu = Some(9000);
    node.host.add_workload(pod.netns(), &spec).unwrap();
    for shown in [
        pod.exec(&["ip", "-d", "link", "show", "eth0"]).unwrap(),
        node.ns
            .exec(&["ip", "-d", "link", "show", "cali0000000000q"])
            .unwrap(),
    ] {
        assert!(shown.contains("numtxqueues 4 numrxqueues 4"), "{shown}");
        assert!(shown.contains("mtu 9000"), "{shown}");
    }
}
