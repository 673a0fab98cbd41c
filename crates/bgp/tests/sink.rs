//! The netlink sink in a scratch namespace: routes in bulk, a next hop
//! behind a gateway resolved the way BIRD's `gateway recursive` does,
//! removals, flushing only our own routes. Needs root.

use std::net::{IpAddr, Ipv4Addr};

use calico_bgp::sink::{NetlinkSink, ROUTE_PROTOCOL, RouteSink};
use calico_bgp::speaker::RouteChange;
use calico_netlink::testing::ScratchNetns;
use ipnet::IpNet;

fn ours(ns: &ScratchNetns) -> String {
    ns.exec(&[
        "ip",
        "-4",
        "route",
        "show",
        "proto",
        &ROUTE_PROTOCOL.to_string(),
    ])
    .unwrap()
}

fn replace(prefix: IpNet, next_hop: Ipv4Addr) -> RouteChange {
    RouteChange::Replace {
        prefix,
        next_hop: IpAddr::V4(next_hop),
        link_local: None,
        peer: IpAddr::V4(next_hop),
    }
}

#[test]
fn routes_go_in_and_out_in_bulk_and_next_hops_resolve() {
    let ns = ScratchNetns::new("bgsink");
    for cmd in [
        "ip link add d0 type veth peer name d1",
        "ip link set d1 up",
        "ip addr add 10.50.0.1/24 dev d0",
        "ip link set d0 up",
        // A network behind a gateway, and a route that is not ours.
        "ip route add 10.60.0.0/24 via 10.50.0.2 proto static",
        "ip route add 10.70.0.0/24 via 10.50.0.3",
    ] {
        ns.exec(&cmd.split_whitespace().collect::<Vec<_>>())
            .unwrap();
    }
    let mut sink = NetlinkSink::open(Some(&ns.path())).expect("sink");
    let gateway = Ipv4Addr::new(10, 50, 0, 2);
    let many: Vec<IpNet> = (0..5000u32)
        .map(|i| IpNet::new(IpAddr::V4(Ipv4Addr::from(0xac10_0000 + (i << 6))), 26).unwrap())
        .collect();
    let mut batch: Vec<RouteChange> = many.iter().map(|p| replace(*p, gateway)).collect();
    // A next hop that is not on a connected network: reached through the
    // route to 10.60.0.0/24.
    batch.push(replace(
        "192.168.77.0/24".parse().unwrap(),
        Ipv4Addr::new(10, 60, 0, 5),
    ));
    sink.apply(batch);
    assert_eq!(sink.failed().count(), 0);
    let table = sink.kernel_routes().unwrap();
    assert_eq!(table.len(), 5001);
    assert_eq!(table[&many[4999]], Some(IpAddr::V4(gateway)));
    assert!(
        ours(&ns).contains("192.168.77.0/24 via 10.50.0.2"),
        "resolved through the gateway: {}",
        ours(&ns)
    );

    // Changing a next hop replaces the route; removing, removes it.
    sink.apply(vec![
        replace(many[0], Ipv4Addr::new(10, 50, 0, 9)),
        RouteChange::Remove { prefix: many[1] },
        // Removing what is not there is not a failure.
        RouteChange::Remove {
            prefix: "192.168.200.0/24".parse().unwrap(),
        },
    ]);
    assert_eq!(sink.failed().count(), 0);
    let table = sink.kernel_routes().unwrap();
    assert_eq!(
        table[&many[0]],
        Some(IpAddr::V4(Ipv4Addr::new(10, 50, 0, 9)))
    );
    assert!(!table.contains_key(&many[1]));

    // An unreachable next hop fails, and is retried on later batches.
    sink.apply(vec![replace(
        "192.168.88.0/24".parse().unwrap(),
        Ipv4Addr::new(10, 99, 99, 99),
    )]);
    assert_eq!(sink.failed().count(), 1);
    ns.exec(&["ip", "route", "add", "10.99.99.0/24", "via", "10.50.0.4"])
        .unwrap();
    sink.apply(Vec::new());
    assert_eq!(sink.failed().count(), 0);
    assert!(
        ours(&ns).contains("192.168.88.0/24 via 10.50.0.4"),
        "{}",
        ours(&ns)
    );

    // Flushing takes only ours.
    assert_eq!(sink.flush().unwrap(), 4999 + 2);
    assert!(ours(&ns).trim().is_empty());
    let all = ns.exec(&["ip", "-4", "route", "show"]).unwrap();
    assert!(all.contains("10.70.0.0/24 via 10.50.0.3"), "{all}");
    assert!(all.contains("10.60.0.0/24 via 10.50.0.2"), "{all}");
}
