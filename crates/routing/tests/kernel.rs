//! The driver against this machine's kernel, in a lab of namespaces
//! (see `common`). Needs root.

mod common;

use std::net::{IpAddr, TcpListener, TcpStream};
use std::time::Duration;

use calico_model::EncapMode;
use calico_netlink::testing::ScratchNetns;
use calico_routing::{Desired, Reconciler, StepError, Via};
use common::{Lab, PoolModes, all_pairs_reach, sh, tx_packets};

fn vxlan_tx_packets(ns: &ScratchNetns) -> u64 {
    tx_packets(ns, "vxlan.calico")
}

#[test]
fn vxlan_always_carries_pod_traffic_between_two_nodes() {
    let mut lab = Lab::new(&[("a", 1, 11), ("b", 1, 12)], false);
    lab.add_pod("a", "192.168.0.5");
    lab.add_pod("b", "192.168.1.5");
    assert!(
        !lab.reaches(("a", 0), ("b", 0)),
        "without routes the pods cannot reach each other"
    );

    let desired = lab.program(PoolModes::vxlan(EncapMode::Always, false));
    assert!(lab.reaches(("a", 0), ("b", 0)));
    assert!(lab.reaches(("b", 0), ("a", 0)));

    let a = &lab.node("a").ns;
    let link = sh(a, "ip -d link show vxlan.calico");
    assert!(link.contains("vxlan id 4096"), "{link}");
    assert!(link.contains("dstport 4789"), "{link}");
    assert!(link.contains("mtu 1450"), "host MTU 1500 less 50: {link}");
    let routes = sh(a, "ip route show proto 80");
    assert!(
        routes.contains("192.168.1.0/26 via 192.168.1.1 dev vxlan.calico onlink"),
        "{routes}"
    );
    assert!(routes.contains("blackhole 192.168.0.0/26"), "{routes}");
    let mac_b = calico_netlink::format_mac(&calico_routing::vtep_mac("b"));
    let neighbours = sh(a, "ip neigh show dev vxlan.calico");
    assert!(
        neighbours.contains(&format!("192.168.1.1 lladdr {mac_b} PERMANENT")),
        "{neighbours}"
    );
    let fdb = sh(a, "bridge fdb show dev vxlan.calico");
    assert!(
        fdb.contains(&format!("{mac_b} dst 10.0.1.12 self permanent")),
        "{fdb}"
    );
    let sent = vxlan_tx_packets(a);
    assert!(lab.reaches(("a", 0), ("b", 0)));
    assert!(
        vxlan_tx_packets(a) > sent,
        "the traffic went through vxlan.calico"
    );

    // Applying the same state again changes nothing.
    let mut again = Reconciler::open_default(&a.path()).unwrap();
    assert_eq!(again.apply(&desired["a"]).unwrap(), Vec::<String>::new());
}

#[test]
fn drift_is_repaired_and_foreign_routes_are_left_alone() {
    let mut lab = Lab::new(&[("a", 1, 11), ("b", 1, 12)], false);
    lab.add_pod("a", "192.168.0.5");
    lab.add_pod("b", "192.168.1.5");
    let desired = lab.program(PoolModes::vxlan(EncapMode::Always, false));
    let a = &lab.node("a").ns;
    // Someone else's routes, including one with the boot protocol the CNI
    // plugin uses and a static one into the pool.
    sh(a, "ip route add 10.99.0.0/24 via 10.0.1.12 proto static");
    sh(a, "ip route add 192.168.7.0/26 via 10.0.1.12 proto boot");
    // Drift: our route deleted, a stale one of ours added, an ARP entry
    // changed, the device's MTU changed.
    sh(a, "ip route del 192.168.1.0/26");
    sh(a, "ip route add 192.168.9.0/26 via 10.0.1.12 proto 80");
    sh(
        a,
        "ip neigh replace 192.168.1.1 lladdr 66:00:00:00:00:01 dev vxlan.calico nud permanent",
    );
    sh(a, "ip link set vxlan.calico mtu 1300");
    assert!(!lab.reaches(("a", 0), ("b", 0)));

    let mut reconciler = Reconciler::open_default(&a.path()).unwrap();
    let changes = reconciler.apply(&desired["a"]).unwrap();
    assert!(
        changes.iter().any(|c| c == "vxlan.calico mtu 1450"),
        "{changes:#?}"
    );
    assert!(
        changes.iter().any(|c| c == "removed route 192.168.9.0/26"),
        "{changes:#?}"
    );
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("route 192.168.1.0/26 via 192.168.1.1")),
        "{changes:#?}"
    );
    assert!(lab.reaches(("a", 0), ("b", 0)));
    let routes = sh(a, "ip route show");
    assert!(
        routes.contains("10.99.0.0/24 via 10.0.1.12 dev eth0 proto static"),
        "{routes}"
    );
    let boot = sh(a, "ip route show proto boot");
    assert!(
        boot.contains("192.168.7.0/26 via 10.0.1.12 dev eth0"),
        "{boot}"
    );

    // Removing everything takes only what is ours.
    reconciler.remove_all().unwrap();
    assert!(!a.link_names().iter().any(|l| l == "vxlan.calico"));
    assert_eq!(sh(a, "ip route show proto 80"), "");
    let routes = sh(a, "ip route show");
    assert!(routes.contains("10.99.0.0/24"), "{routes}");
    assert!(routes.contains("192.168.7.0/26"), "{routes}");
    // And twice is fine.
    reconciler.remove_all().unwrap();
}

#[test]
fn cross_subnet_tunnels_only_between_subnets() {
    let mut lab = Lab::new(&[("a", 1, 11), ("b", 1, 12), ("c", 2, 13)], true);
    lab.add_pod("a", "192.168.0.5");
    lab.add_pod("b", "192.168.1.5");
    lab.add_pod("c", "192.168.2.5");
    let desired = lab.program(PoolModes::vxlan(EncapMode::CrossSubnet, false));
    assert_eq!(
        desired["a"].routes[&"192.168.1.0/26".parse().unwrap()],
        Via::Underlay {
            gateway: "10.0.1.12".parse().unwrap()
        }
    );
    let a = &lab.node("a").ns;
    let routes = sh(a, "ip route show proto 80");
    assert!(
        routes.contains("192.168.1.0/26 via 10.0.1.12 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("192.168.2.0/26 via 192.168.2.1 dev vxlan.calico onlink"),
        "{routes}"
    );

    all_pairs_reach(&lab);
    // Within the subnet nothing is encapsulated; across it, everything is.
    let before = vxlan_tx_packets(a);
    assert!(lab.reaches(("a", 0), ("b", 0)));
    assert_eq!(vxlan_tx_packets(a), before, "same subnet: no VXLAN");
    assert!(lab.reaches(("a", 0), ("c", 0)));
    assert!(vxlan_tx_packets(a) > before, "other subnet: VXLAN");
}

#[test]
fn nat_outgoing_lets_pods_reach_the_outside() {
    let mut lab = Lab::new(&[("a", 1, 11), ("b", 2, 12)], true);
    lab.add_pod("a", "192.168.0.5");
    lab.add_pod("b", "192.168.1.5");
    let router = lab.router.as_ref().unwrap();
    let outside = router.tcp_echo("10.0.2.1".parse().unwrap());
    let probe = |lab: &Lab| lab.pod("a", 0).0.tcp_probe(outside.address).is_ok();

    lab.program(PoolModes::vxlan(EncapMode::Always, false));
    assert!(
        !probe(&lab),
        "the router has no route back to the pod without NAT"
    );
    lab.program(PoolModes::vxlan(EncapMode::Always, true));
    assert!(probe(&lab), "masqueraded as node a's address");
    let table = sh(&lab.node("a").ns, "nft list table ip calico-nat");
    assert!(table.contains("masquerade"), "{table}");
    // Pod to pod is not translated: b sees a's pod address as the peer.
    let (b_pod, b_ip) = lab.pod("b", 0);
    let listener = b_pod
        .netns()
        .run(|| TcpListener::bind((*b_ip, 0)))
        .unwrap()
        .unwrap();
    let target = listener.local_addr().unwrap();
    let accepted = std::thread::spawn(move || listener.accept().map(|(_, peer)| peer));
    let (a_pod, a_ip) = lab.pod("a", 0);
    let _stream = a_pod
        .netns()
        .run(|| TcpStream::connect_timeout(&target, Duration::from_secs(3)))
        .unwrap()
        .unwrap();
    let peer = accepted.join().unwrap().unwrap();
    assert_eq!(peer.ip(), IpAddr::V4(*a_ip), "pod to pod keeps its source");

    lab.program(PoolModes::vxlan(EncapMode::Always, false));
    let tables = sh(&lab.node("a").ns, "nft list tables");
    assert!(!tables.contains("calico-nat"), "{tables}");
    assert!(!probe(&lab));
}

#[test]
fn ipip_on_a_kernel_without_it_is_reported_clearly() {
    let ns = ScratchNetns::new("rt-ipip");
    let kernel_has_ipip = ns
        .exec(&["ip", "link", "add", "probe0", "type", "ipip"])
        .is_ok()
        || ns.link_names().iter().any(|l| l == "tunl0");
    let _ = ns.exec(&["ip", "link", "del", "probe0"]);
    let mut reconciler = Reconciler::open_default(&ns.path()).unwrap();
    assert_eq!(reconciler.ipip_supported().unwrap(), kernel_has_ipip);

    let desired = Desired {
        ipip: Some(calico_routing::IpipDevice {
            name: "tunl0".into(),
            mtu: 1480,
            address: "192.168.0.2".parse().unwrap(),
        }),
        ..Default::default()
    };
    let outcome = reconciler.apply(&desired);
    if kernel_has_ipip {
        outcome.unwrap();
        assert!(sh(&ns, "ip addr show tunl0").contains("192.168.0.2/32"));
    } else {
        let error = outcome.unwrap_err();
        assert!(
            matches!(error.failures[..], [StepError::IpipUnsupported { .. }]),
            "{error}"
        );
        let message = error.to_string();
        assert!(
            message.contains("this kernel has no IPIP support")
                && message.contains("ipipMode Always or CrossSubnet"),
            "{error}"
        );
    }
}
