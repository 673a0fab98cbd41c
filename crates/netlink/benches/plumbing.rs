//! The floor for CNI ADD/DEL latency: the kernel work alone (veth pair,
//! sysctls, addresses, routes; then deleting it), no IPAM, no datastore.
//!
//!     cargo bench -p calico-netlink --bench plumbing [-- ITERATIONS]
//!
//! Needs root. Runs in scratch namespaces (a simulated node and one pod),
//! interleaving the variants so drift affects them alike, and prints the
//! median and 90th percentile of each step. The first rows are the raw
//! create and delete of a bare veth pair over the same socket: the
//! physical floor the plumbing is compared with.
//!
//! Deleting a network device waits for RCU grace periods while holding the
//! kernel's rtnl lock, and the sysctl writes of the next add retry until
//! that lock is free; so back-to-back add/remove measures adds under churn.
//! `SETTLE=1` pauses 50 ms after each removal to measure adds on a quiet
//! kernel instead.

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

use calico_netlink::testing::ScratchNetns;
use calico_netlink::{
    HostNetwork, VethSpec, WorkloadInterface, default_routes, remove_pod_interface,
};

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200);
    let settle = std::env::var_os("SETTLE").is_some();

    let node = ScratchNetns::new("bench-node");
    for cmd in [
        "ip link add uplink0 type veth peer name uplink1",
        "ip link set uplink0 up",
        "ip route add default dev uplink0",
        "ip -6 route add default dev uplink0",
    ] {
        node.exec(&cmd.split(' ').collect::<Vec<_>>())
            .expect("node setup");
    }
    let pod = ScratchNetns::new("bench-pod");
    let mut host = HostNetwork::new(node.open()).expect("socket in node namespace");

    let v4 = workload(&["10.70.0.1"]);
    let dual = workload(&["10.70.0.1", "fd00:70::1"]);
    let mut samples: Vec<(&str, Vec<Duration>)> = vec![
        ("bare veth create", Vec::new()),
        ("bare veth delete", Vec::new()),
        ("IPv4 workload add", Vec::new()),
        ("IPv4 workload remove", Vec::new()),
        ("dual-stack workload add", Vec::new()),
        ("dual-stack workload remove", Vec::new()),
    ];

    for _ in 0..iterations {
        let start = Instant::now();
        host.netlink()
            .add_veth(&VethSpec {
                name: "calibenchbare",
                mac: None,
                peer_name: "eth0",
                peer_mac: None,
                peer_netns: Some(pod.netns().as_fd()),
                mtu: None,
                queues: None,
            })
            .expect("bare veth");
        samples[0].1.push(start.elapsed());
        let start = Instant::now();
        host.netlink()
            .delete_link_by_name("calibenchbare")
            .expect("bare delete");
        samples[1].1.push(start.elapsed());

        for (slot, spec) in [(2, &v4), (4, &dual)] {
            let start = Instant::now();
            host.add_workload(pod.netns(), spec).expect("workload add");
            samples[slot].1.push(start.elapsed());
            let start = Instant::now();
            remove_pod_interface(&pod.path(), "eth0").expect("workload remove");
            samples[slot + 1].1.push(start.elapsed());
            if settle {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }

    println!("calico-netlink plumbing, {iterations} iterations (median / p90):");
    for (name, mut times) in samples {
        times.sort();
        let median = times[times.len() / 2];
        let p90 = times[times.len() * 9 / 10];
        println!("  {name:<28} {:>8.3} ms  {:>8.3} ms", ms(median), ms(p90));
    }
}

fn workload(addresses: &[&str]) -> WorkloadInterface {
    WorkloadInterface {
        host_ifname: "calibench00001".into(),
        pod_ifname: "eth0".into(),
        addresses: addresses.iter().map(|a| a.parse().unwrap()).collect(),
        routes: default_routes(),
        mtu: Some(1450),
        queues: None,
        pod_mac: None,
        allow_ip_forwarding: false,
        host_routes: true,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
