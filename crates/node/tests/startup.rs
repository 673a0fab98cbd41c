//! Start-up against a real datastore (root): node registration with each
//! autodetection method in a namespace with known interfaces, and the
//! default pools as the environment asks for them.

mod support;

use std::path::Path;

use calico_client::Client;
use calico_datastore::AnyBackend;
use calico_model::{
    AsNumber, ClusterInformation, EncapMode, FelixConfiguration, IpPool, IpPoolSpec, Node,
    ObjectMeta, Tier,
};
use calico_netlink::testing::ScratchNetns;
use calico_node::env::Env;
use calico_node::startup::{self, StartupError, host::HostNetns};
use support::{AgentProcess, Store, runtime};

/// A host with known interfaces, created in this order (so walked in the
/// reverse order by first-found):
/// - `eth0` 10.10.0.5/24 (a route to 203.0.113.0/24 goes out of it)
/// - `ens5` 172.30.1.9/24, fd00:5::9/64
/// - `docker0` 192.168.99.1/24 (excluded by default)
fn host() -> ScratchNetns {
    let ns = ScratchNetns::new("st");
    for cmd in [
        "ip link add eth0 type veth peer name peer0",
        "ip link add ens5 type veth peer name peer5",
        "ip link add docker0 type veth peer name peerd",
        "ip addr add 10.10.0.5/24 dev eth0",
        "ip addr add 172.30.1.9/24 dev ens5",
        "ip addr add fd00:5::9/64 dev ens5 nodad",
        "ip addr add 192.168.99.1/24 dev docker0",
        "ip link set eth0 up",
        "ip link set peer0 up",
        "ip link set ens5 up",
        "ip link set peer5 up",
        "ip link set docker0 up",
        "ip link set peerd up",
        "ip route add 203.0.113.0/24 dev eth0",
    ] {
        ns.exec(&cmd.split(' ').collect::<Vec<_>>())
            .unwrap_or_else(|e| panic!("`{cmd}`: {e}"));
    }
    ns
}

fn env(dir: &Path, pairs: &[(&str, &str)]) -> Env {
    let mut env = Env::from_pairs(pairs.iter().copied());
    env.set(
        "CALICO_NODENAME_FILE",
        dir.join("nodename").display().to_string(),
    );
    env
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    // Kept alive for the datastore's lifetime.
    _store: Store,
    client: Client<AnyBackend>,
    host: ScratchNetns,
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new(store: Store) -> Fixture {
        let rt = runtime();
        let client = store.client(&rt);
        Fixture {
            rt,
            _store: store,
            client,
            host: host(),
            dir: tempfile::tempdir().unwrap(),
        }
    }

    fn start(
        &self,
        node: &str,
        pairs: &[(&str, &str)],
    ) -> Result<startup::StartupOutcome, StartupError> {
        let env = env(self.dir.path(), pairs);
        self.rt.block_on(startup::run(
            &self.client,
            &env,
            node,
            &HostNetns::at(self.host.path()),
        ))
    }

    fn node(&self, name: &str) -> Node {
        self.rt
            .block_on(self.client.get_typed::<Node>("", name))
            .expect("reading the node")
    }

    fn pools(&self) -> Vec<IpPool> {
        self.rt
            .block_on(self.client.list_typed::<IpPool>(None, None))
            .expect("listing pools")
    }
}

#[test]
fn each_autodetection_method_registers_the_expected_address() {
    let f = Fixture::new(Store::embedded());
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let cases: &[Case] = &[
        ("first", &[], "172.30.1.9/24"),
        (
            "first-found",
            &[("IP_AUTODETECTION_METHOD", "first-found")],
            "172.30.1.9/24",
        ),
        (
            "iface",
            &[("IP_AUTODETECTION_METHOD", "interface=eth.*")],
            "10.10.0.5/24",
        ),
        (
            "iface-docker",
            &[("IP_AUTODETECTION_METHOD", "interface=docker0")],
            "192.168.99.1/24",
        ),
        (
            "skip",
            &[("IP_AUTODETECTION_METHOD", "skip-interface=ens5")],
            "10.10.0.5/24",
        ),
        (
            "cidr",
            &[("IP_AUTODETECTION_METHOD", "cidr=10.10.0.0/16")],
            "10.10.0.5/24",
        ),
        (
            "reach",
            &[("IP_AUTODETECTION_METHOD", "can-reach=203.0.113.7")],
            "10.10.0.5/24",
        ),
        ("explicit", &[("IP", "10.10.0.5")], "10.10.0.5/24"),
        ("explicit-cidr", &[("IP", "10.20.0.1/16")], "10.20.0.1/16"),
    ];
    for (i, (node, pairs, want)) in cases.iter().enumerate() {
        let mut pairs = pairs.to_vec();
        pairs.push(("NO_DEFAULT_POOLS", "true"));
        // Distinct nodes may not share an address.
        pairs.push(("DISABLE_NODE_IP_CHECK", "true"));
        f.start(node, &pairs)
            .unwrap_or_else(|e| panic!("case {i} ({node}): {e}"));
        let bgp = f.node(node).spec.bgp.expect("BGP spec");
        assert_eq!(bgp.ipv4_address, *want, "case {node}");
    }

    // IPv6 on request, an AS number, and the node's interfaces when the
    // address is given explicitly.
    f.start(
        "dual",
        &[
            ("IP", "autodetect"),
            ("IP6", "autodetect"),
            ("AS", "65001"),
            ("NO_DEFAULT_POOLS", "true"),
            ("DISABLE_NODE_IP_CHECK", "true"),
        ],
    )
    .unwrap();
    let dual = f.node("dual");
    let bgp = dual.spec.bgp.clone().unwrap();
    assert_eq!(bgp.ipv6_address, "fd00:5::9/64");
    assert_eq!(bgp.as_number, Some(AsNumber(65001)));
    let names: Vec<&str> = dual
        .spec
        .interfaces
        .iter()
        .map(|i| i.name.as_str())
        .collect();
    assert!(
        names.contains(&"eth0") && names.contains(&"ens5"),
        "{names:?}"
    );
    assert!(!names.contains(&"docker0"), "{names:?}");

    // The stored node name.
    assert_eq!(
        std::fs::read_to_string(f.dir.path().join("nodename")).unwrap(),
        "dual"
    );
}

#[test]
fn bad_inputs_and_conflicts_stop_start_up() {
    let f = Fixture::new(Store::embedded());
    let no_pools = ("NO_DEFAULT_POOLS", "true");
    for (pairs, expect) in [
        (
            vec![("IP_AUTODETECTION_METHOD", "first")],
            "not an autodetection method",
        ),
        (
            vec![("IP_AUTODETECTION_METHOD", "cidr=10.250.0.0/16")],
            "no IPv4 address",
        ),
        (vec![("IP", "10.0.0.300")], "IP=\"10.0.0.300\""),
        (vec![("AS", "x")], "AS=\"x\""),
        (
            vec![("CALICO_IPV4POOL_BLOCK_SIZE", "8")],
            "CALICO_IPV4POOL_BLOCK_SIZE",
        ),
        (
            vec![
                ("NO_DEFAULT_POOLS", "true"),
                ("CALICO_IPV4POOL_CIDR", "10.1.0.0/16"),
            ],
            "NO_DEFAULT_POOLS",
        ),
    ] {
        let mut with = pairs.clone();
        if !pairs.iter().any(|(k, _)| k.contains("POOL")) {
            with.push(no_pools);
        }
        let err = f.start("bad", &with).expect_err("start-up must refuse");
        assert!(err.to_string().contains(expect), "{pairs:?}: {err}");
    }
    assert!(
        f.rt.block_on(f.client.get_typed::<Node>("", "bad"))
            .is_err(),
        "nothing is registered for bad input"
    );

    f.start("one", &[("IP", "10.10.0.5"), no_pools]).unwrap();
    let err = f
        .start("two", &[("IP", "10.10.0.5"), no_pools])
        .expect_err("two nodes cannot share an address");
    assert!(matches!(err, StartupError::AddressConflict { .. }), "{err}");
    assert!(err.to_string().contains("node one"), "{err}");
}

#[test]
fn default_pools_follow_the_environment_on_etcd() {
    let f = Fixture::new(Store::etcd());
    let pairs = [
        ("CALICO_IPV4POOL_CIDR", "10.244.0.0/16"),
        ("CALICO_IPV4POOL_BLOCK_SIZE", "24"),
        ("CALICO_IPV4POOL_IPIP", "Always"),
        ("CALICO_IPV4POOL_NAT_OUTGOING", "false"),
        ("CALICO_IPV4POOL_NODE_SELECTOR", "zone == 'a'"),
        ("CALICO_IPV4POOL_DISABLE_BGP_EXPORT", "true"),
        ("CALICO_IPV6POOL_CIDR", "fd10::/64"),
        ("CALICO_IPV6POOL_VXLAN", "CrossSubnet"),
        ("CALICO_IPV6POOL_BLOCK_SIZE", "120"),
    ];
    let outcome = f.start("node1", &pairs).unwrap();
    assert_eq!(
        outcome.pools_created,
        vec!["default-ipv4-ippool", "default-ipv6-ippool"]
    );
    let pools = f.pools();
    assert_eq!(pools.len(), 2);
    let v4 = pools
        .iter()
        .find(|p| p.metadata.name == "default-ipv4-ippool")
        .unwrap();
    assert_eq!(v4.spec.cidr, "10.244.0.0/16");
    assert_eq!(v4.spec.block_size, 24);
    assert_eq!(v4.spec.ipip_mode, Some(EncapMode::Always));
    assert_eq!(v4.spec.vxlan_mode, Some(EncapMode::Never));
    assert!(!v4.spec.nat_outgoing);
    assert_eq!(v4.spec.node_selector, "zone == 'a'");
    assert!(v4.spec.disable_bgp_export);
    let v6 = pools
        .iter()
        .find(|p| p.metadata.name == "default-ipv6-ippool")
        .unwrap();
    assert_eq!(v6.spec.cidr, "fd10::/64");
    assert_eq!(v6.spec.vxlan_mode, Some(EncapMode::CrossSubnet));
    assert_eq!(v6.spec.block_size, 120);

    // What every Calico datastore holds afterwards.
    let info =
        f.rt.block_on(f.client.get_typed::<ClusterInformation>("", "default"))
            .unwrap();
    assert_eq!(info.spec.datastore_ready, Some(true));
    assert!(!info.spec.cluster_guid.is_empty());
    for tier in ["default", "kube-admin", "kube-baseline"] {
        f.rt.block_on(f.client.get_typed::<Tier>("", tier)).unwrap();
    }
    let global =
        f.rt.block_on(f.client.get_typed::<FelixConfiguration>("", "default"))
            .unwrap();
    assert_eq!(global.spec.log_severity_screen.as_deref(), Some("Info"));
    let per_node =
        f.rt.block_on(f.client.get_typed::<FelixConfiguration>("", "node.node1"))
            .unwrap();
    assert_eq!(
        per_node.spec.default_endpoint_to_host_action.as_deref(),
        Some("Return")
    );

    // A restart with other settings neither duplicates nor changes them;
    // the node keeps its registration.
    let node_before = f.node("node1");
    let again = f
        .start("node1", &[("CALICO_IPV4POOL_CIDR", "10.99.0.0/16")])
        .unwrap();
    assert!(again.pools_created.is_empty());
    assert_eq!(f.pools(), pools);
    let node_after = f.node("node1");
    assert_eq!(node_after.spec, node_before.spec);
    assert_eq!(
        node_after.metadata.resource_version, node_before.metadata.resource_version,
        "an unchanged node is not rewritten"
    );
}

#[test]
fn no_default_pools_and_existing_pools() {
    let f = Fixture::new(Store::embedded());
    f.start("node1", &[("NO_DEFAULT_POOLS", "true")]).unwrap();
    assert!(f.pools().is_empty());

    // An existing pool of a family means no default pool for it.
    let custom = IpPool {
        metadata: ObjectMeta::named("custom"),
        spec: IpPoolSpec {
            cidr: "10.50.0.0/16".into(),
            ..IpPoolSpec::default()
        },
        status: None,
    };
    f.rt.block_on(f.client.create_typed(custom)).unwrap();
    let outcome = f.start("node1", &[]).unwrap();
    assert_eq!(outcome.pools_created, vec!["default-ipv6-ippool"]);
    let names: Vec<String> = f.pools().into_iter().map(|p| p.metadata.name).collect();
    assert_eq!(names, vec!["custom", "default-ipv6-ippool"]);
    let v6 = f.pools().pop().unwrap();
    assert!(
        v6.spec.cidr.starts_with("fd"),
        "a ULA pool: {}",
        v6.spec.cidr
    );
    assert!(v6.spec.cidr.ends_with("::/48"), "{}", v6.spec.cidr);
}

#[test]
fn the_binary_runs_start_up_alone() {
    let store = Store::etcd();
    let host = host();
    let mut env = store.env();
    env.push(("NODENAME".into(), "bin-node".into()));
    env.push(("IP_AUTODETECTION_METHOD".into(), "interface=eth0".into()));
    let netns = host.path().display().to_string();
    let mut process = AgentProcess::start(&["-startup", "--netns", &netns], &env);
    let status = process
        .wait(std::time::Duration::from_secs(30))
        .expect("start-up finishes");
    assert!(status.success(), "{}", process.log());
    let rt = runtime();
    let client = store.client(&rt);
    let node = rt
        .block_on(client.get_typed::<Node>("", "bin-node"))
        .unwrap();
    assert_eq!(node.spec.bgp.unwrap().ipv4_address, "10.10.0.5/24");
    let pools = rt
        .block_on(client.list_typed::<IpPool>(None, None))
        .unwrap();
    let v4 = pools
        .iter()
        .find(|p| p.metadata.name == "default-ipv4-ippool")
        .unwrap();
    // 192.168.0.0/16 holds docker0's address: Calico's fallback applies.
    assert_eq!(v4.spec.cidr, "172.16.0.0/16");
    assert_eq!(v4.spec.block_size, 26);
    assert!(v4.spec.nat_outgoing);

    // A bad variable: start-up exits non-zero, naming it.
    env.push(("CALICO_IPV4POOL_IPIP".into(), "sometimes".into()));
    let mut bad = AgentProcess::start(&["-startup", "--netns", &netns], &env);
    let status = bad.wait(std::time::Duration::from_secs(30)).unwrap();
    assert!(!status.success());
    assert!(bad.log().contains("CALICO_IPV4POOL_IPIP"), "{}", bad.log());
}
