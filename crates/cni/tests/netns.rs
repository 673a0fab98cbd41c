//! The plugin flow against the real kernel: a simulated node namespace,
//! pod namespaces, the netlink dataplane; IPAM and the datastore are test
//! doubles. Needs root.

mod common;

use std::net::SocketAddr;

use calico_cni::dataplane::NetlinkDataplane;
use calico_cni::endpoint::NoPodInfo;
use calico_cni::ipam::CalicoIpam;
use calico_cni::plugin::{Services, cmd_add, cmd_check, cmd_del};
use calico_cni::result::CniResult;
use calico_netlink::testing::ScratchNetns;
use common::*;

struct Node {
    ns: ScratchNetns,
    dataplane: NetlinkDataplane,
    store: MemoryStore,
    ipam: CalicoIpam<TestAllocator>,
}

impl Node {
    fn new() -> Self {
        let ns = node_namespace();
        let dataplane = NetlinkDataplane::with_host(ns.open()).expect("node dataplane");
        Node {
            ns,
            dataplane,
            store: MemoryStore::default(),
            ipam: CalicoIpam::new(TestAllocator::default()),
        }
    }

    fn services(&self) -> Services<'_> {
        Services {
            ipam: &self.ipam,
            store: &self.store,
            dataplane: &self.dataplane,
            pods: &NoPodInfo,
        }
    }

    fn cali_links(&self) -> Vec<String> {
        self.ns
            .link_names()
            .into_iter()
            .filter(|n| n.starts_with("cali"))
            .collect()
    }
}

fn path(pod: &ScratchNetns) -> String {
    pod.path().display().to_string()
}

async fn add(node: &Node, pod: &ScratchNetns, name: &str, conf: &serde_json::Value) -> CniResult {
    let inv = invocation(
        "ADD",
        name,
        Some(&path(pod)),
        &pod_args("default", name, name),
        conf,
    );
    cmd_add(&inv, &node.services()).await.expect("ADD")
}

#[tokio::test]
async fn pods_added_by_the_plugin_talk_and_del_cleans_up_twice() {
    let node = Node::new();
    let pod_a = ScratchNetns::new("cnipoda");
    let pod_b = ScratchNetns::new("cnipodb");
    let conf = calico_conf("1.0.0");
    let result_a = add(&node, &pod_a, "pod-a", &conf).await;
    let result_b = add(&node, &pod_b, "pod-b", &conf).await;

    let host_a = &result_a.interfaces[0].name;
    assert!(
        node.cali_links().contains(host_a),
        "{:?}",
        node.cali_links()
    );
    let mtu = pod_a.exec(&["ip", "link", "show", "eth0"]).unwrap();
    assert!(mtu.contains("mtu 1440"), "{mtu}");
    let address_a = result_a.ips[0].address.addr();
    let address_b = result_b.ips[0].address.addr();
    let server = pod_a.tcp_echo(address_a);
    pod_b
        .tcp_probe(SocketAddr::new(address_a, server.address.port()))
        .expect("pod B reaches pod A");
    let host = node.ns.tcp_echo("10.99.0.1".parse().unwrap());
    pod_b
        .tcp_probe(host.address)
        .expect("pod B reaches the node");
    assert_ne!(address_a, address_b);

    // CHECK with the ADD's result passes against the real kernel.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = result_b.to_value("1.0.0".parse().unwrap()).unwrap();
    let check = invocation(
        "CHECK",
        "pod-b",
        Some(&path(&pod_b)),
        &pod_args("default", "pod-b", "pod-b"),
        &check_conf,
    );
    cmd_check(&check, &node.services())
        .await
        .expect("CHECK passes");
    pod_b
        .exec(&["ip", "route", "del", "default", "dev", "eth0"])
        .unwrap();
    let error = cmd_check(&check, &node.services()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("pod route 0.0.0.0/0 via 169.254.1.1 is missing"),
        "{error}"
    );

    drop(server);
    let del = invocation(
        "DEL",
        "pod-a",
        Some(&path(&pod_a)),
        &pod_args("default", "pod-a", "pod-a"),
        &conf,
    );
    cmd_del(&del, &node.services()).await.expect("first DEL");
    assert!(!node.cali_links().contains(host_a));
    assert_eq!(pod_a.link_names(), vec!["lo".to_string()]);
    assert!(
        node.store
            .endpoint("default", "node--1-k8s-pod--a-eth0")
            .is_none()
    );
    assert!(
        !node
            .ipam
            .allocator()
            .held()
            .contains_key("k8s-pod-network.pod-a")
    );
    cmd_del(&del, &node.services()).await.expect("second DEL");
    let routes = node.ns.exec(&["ip", "route"]).unwrap();
    assert!(!routes.contains(&address_a.to_string()), "{routes}");
}

#[tokio::test]
async fn dual_stack_pods_talk_over_ipv6() {
    let node = Node::new();
    let pod_a = ScratchNetns::new("cnipoda6");
    let pod_b = ScratchNetns::new("cnipodb6");
    let mut conf = calico_conf("0.3.1");
    conf["ipam"]["assign_ipv6"] = "true".into();
    let result_a = add(&node, &pod_a, "pod-a6", &conf).await;
    add(&node, &pod_b, "pod-b6", &conf).await;
    let v6 = result_a
        .ips
        .iter()
        .find(|ip| ip.address.addr().is_ipv6())
        .unwrap();
    assert_eq!(v6.address.prefix_len(), 128);
    let server = pod_a.tcp_echo(v6.address.addr());
    pod_b
        .tcp_probe(server.address)
        .expect("pod B reaches pod A over IPv6");
}

#[tokio::test]
async fn a_failure_after_the_veth_exists_undoes_everything() {
    let node = Node::new();
    let pod = ScratchNetns::new("cnifail");
    // The first address the test allocator hands out is already routed
    // elsewhere on the node: found only after the veth, addresses and pod
    // routes are in place.
    node.ns
        .exec(&["ip", "route", "add", "10.65.0.1/32", "dev", "uplink1"])
        .unwrap();
    let inv = invocation(
        "ADD",
        "fail",
        Some(&path(&pod)),
        &pod_args("default", "fail", "fail"),
        &calico_conf("1.0.0"),
    );
    let error = cmd_add(&inv, &node.services()).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("a route to 10.65.0.1/32 already exists through interface uplink1"),
        "{error}"
    );
    assert!(node.cali_links().is_empty(), "{:?}", node.cali_links());
    assert_eq!(pod.link_names(), vec!["lo".to_string()]);
    assert!(node.ipam.allocator().held().is_empty());
    assert!(node.store.endpoint_names().is_empty());
}

#[tokio::test]
async fn an_existing_interface_name_in_the_pod_is_an_error_that_changes_nothing() {
    let node = Node::new();
    let pod = ScratchNetns::new("cnitaken");
    pod.exec(&[
        "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "mine",
    ])
    .unwrap();
    let inv = invocation("ADD", "taken", Some(&path(&pod)), "", &calico_conf("1.0.0"));
    let error = cmd_add(&inv, &node.services()).await.unwrap_err();
    assert!(
        error.to_string().contains("interface eth0 already exists"),
        "{error}"
    );
    assert!(node.cali_links().is_empty());
    assert!(
        pod.link_names().contains(&"mine".to_string()),
        "the pod's own interfaces stay"
    );
    assert!(node.ipam.allocator().held().is_empty());
}

#[tokio::test]
async fn del_after_the_namespace_is_gone_succeeds() {
    let node = Node::new();
    let pod = ScratchNetns::new("cnigone");
    let conf = calico_conf("1.0.0");
    add(&node, &pod, "gone", &conf).await;
    let netns = path(&pod);
    drop(pod);
    let del = invocation(
        "DEL",
        "gone",
        Some(&netns),
        &pod_args("default", "gone", "gone"),
        &conf,
    );
    cmd_del(&del, &node.services())
        .await
        .expect("DEL with the namespace gone");
    assert!(node.ipam.allocator().held().is_empty());
    // The kernel destroys a namespace (and the veth ends in it) in the
    // background; the host end follows shortly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !node.cali_links().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        node.cali_links().is_empty(),
        "the kernel took the host end with the namespace"
    );
    assert!(node.store.endpoint_names().is_empty());
}
