//! The `calico` and `calico-ipam` binaries as a runtime runs them: CNI_*
//! variables, configuration on stdin, result or error on stdout. The
//! binary runs inside a simulated node namespace (`ip netns exec`) against
//! an embedded datastore file prepared with a pool, the node and
//! ClusterInformation. Needs root.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use calico_netlink::testing::ScratchNetns;
use common::datastore::Datastore;
use common::node_namespace;

const CALICO: &str = env!("CARGO_BIN_EXE_calico");
const CALICO_IPAM: &str = env!("CARGO_BIN_EXE_calico-ipam");

struct Outcome {
    success: bool,
    stdout: String,
}

impl Outcome {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("{e}: {:?}", self.stdout))
    }
}

/// Runs a plugin binary inside `node` the way a runtime does.
fn run(
    binary: &str,
    node: &ScratchNetns,
    store: &Datastore,
    vars: &[(&str, &str)],
    stdin: &serde_json::Value,
) -> Outcome {
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", node.name(), binary])
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("DATASTORE_TYPE", "embedded")
        .env("EMBEDDED_DATASTORE_PATH", store.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in vars {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("running the plugin");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let outcome = Outcome {
        success: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    };
    if !outcome.success {
        eprintln!("plugin stderr: {}", String::from_utf8_lossy(&output.stderr));
    }
    outcome
}

fn conf(version: &str, ipam: serde_json::Value) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": version,
        "name": "k8s-pod-network",
        "type": "calico",
        "log_level": "warning",
        "nodename": "node-1",
        "mtu": 1400,
        "ipam": ipam,
    })
}

fn attachment<'a>(
    command: &'a str,
    container: &'a str,
    netns: &'a str,
    args: &'a str,
) -> Vec<(&'a str, &'a str)> {
    let mut vars = vec![
        ("CNI_COMMAND", command),
        ("CNI_CONTAINERID", container),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/usr/lib/cni"),
        ("CNI_ARGS", args),
    ];
    if !netns.is_empty() {
        vars.push(("CNI_NETNS", netns));
    }
    vars
}

#[test]
fn add_check_del_with_calico_ipam() {
    let store = Datastore::new();
    let node = node_namespace();
    let pod = ScratchNetns::new("binpod");
    let netns = pod.path().display().to_string();
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web-0;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=u1";
    let mut config = conf(
        "1.0.0",
        serde_json::json!({"type": "calico-ipam", "assign_ipv6": "true"}),
    );

    let add = run(
        CALICO,
        &node,
        &store,
        &attachment("ADD", "abc123", &netns, args),
        &config,
    );
    assert!(add.success, "ADD failed: {}", add.stdout);
    let result = add.json();
    assert_eq!(result["cniVersion"], "1.0.0");
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["sandbox"], netns);
    let v4 = result["ips"][0]["address"].as_str().unwrap().to_string();
    let v6 = result["ips"][1]["address"].as_str().unwrap().to_string();
    assert!(v4.starts_with("10.66.") && v4.ends_with("/32"), "{v4}");
    assert!(v6.starts_with("fd00:66:") && v6.ends_with("/128"), "{v6}");
    let shown = pod.exec(&["ip", "addr", "show", "eth0"]).unwrap();
    assert!(shown.contains(&v4) && shown.contains(&v6), "{shown}");

    let endpoint = store
        .endpoint("default", "node--1-k8s-web--0-eth0")
        .expect("endpoint stored");
    assert_eq!(endpoint.spec.ip_networks, vec![v4.clone(), v6.clone()]);
    assert_eq!(endpoint.spec.container_id, "abc123");
    assert_eq!(store.handle_addresses("k8s-pod-network.abc123").len(), 2);

    config["prevResult"] = result.clone();
    let check = run(
        CALICO,
        &node,
        &store,
        &attachment("CHECK", "abc123", &netns, args),
        &config,
    );
    assert!(check.success, "CHECK failed: {}", check.stdout);
    assert!(check.stdout.is_empty());

    let del = run(
        CALICO,
        &node,
        &store,
        &attachment("DEL", "abc123", &netns, args),
        &config,
    );
    assert!(del.success, "DEL failed: {}", del.stdout);
    assert!(
        store
            .endpoint("default", "node--1-k8s-web--0-eth0")
            .is_none()
    );
    assert!(store.handle_addresses("k8s-pod-network.abc123").is_empty());
    assert_eq!(pod.link_names(), vec!["lo".to_string()]);
    // containerd calls DEL again, the second time without a namespace.
    let again = run(
        CALICO,
        &node,
        &store,
        &attachment("DEL", "abc123", &netns, args),
        &config,
    );
    assert!(again.success, "second DEL failed: {}", again.stdout);
    let no_netns = run(
        CALICO,
        &node,
        &store,
        &attachment("DEL", "abc123", "", args),
        &config,
    );
    assert!(
        no_netns.success,
        "DEL without netns failed: {}",
        no_netns.stdout
    );
}

#[test]
fn add_and_del_with_delegated_host_local_ipam() {
    let store = Datastore::new();
    let node = node_namespace();
    let pod_a = ScratchNetns::new("binhla");
    let pod_b = ScratchNetns::new("binhlb");
    let data_dir = tempfile::tempdir().unwrap();
    let config = conf(
        "0.3.1",
        serde_json::json!({
            "type": "host-local",
            "dataDir": data_dir.path(),
            "ranges": [[{"subnet": "10.77.0.0/24"}]],
        }),
    );
    let mut addresses = Vec::new();
    for (pod, id) in [(&pod_a, "hla"), (&pod_b, "hlb")] {
        let netns = pod.path().display().to_string();
        let add = run(
            CALICO,
            &node,
            &store,
            &attachment("ADD", id, &netns, ""),
            &config,
        );
        assert!(add.success, "ADD failed: {}", add.stdout);
        let result = add.json();
        assert_eq!(result["ips"][0]["version"], "4", "0.3.1 shape");
        let address: std::net::IpAddr = result["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        addresses.push(address);
    }
    let server = pod_a.tcp_echo(addresses[0]);
    pod_b
        .tcp_probe(server.address)
        .expect("pod B reaches pod A");
    drop(server);

    let netns = pod_a.path().display().to_string();
    for _ in 0..2 {
        let del = run(
            CALICO,
            &node,
            &store,
            &attachment("DEL", "hla", &netns, ""),
            &config,
        );
        assert!(del.success, "DEL failed: {}", del.stdout);
    }
    assert!(store.endpoint("default", "node--1-cni-hla-eth0").is_none());
    let leases: Vec<String> = std::fs::read_dir(data_dir.path().join("k8s-pod-network"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !leases.contains(&addresses[0].to_string()),
        "host-local released {}: {leases:?}",
        addresses[0]
    );
    assert!(leases.contains(&addresses[1].to_string()), "{leases:?}");
}

#[test]
fn calico_ipam_binary_assigns_and_releases() {
    let store = Datastore::new();
    let node = node_namespace();
    let config = conf("1.0.0", serde_json::json!({"type": "calico-ipam"}));
    let vars = attachment("ADD", "ipamonly", "/var/run/netns/unused", "");
    let add = run(CALICO_IPAM, &node, &store, &vars, &config);
    assert!(add.success, "{}", add.stdout);
    let result = add.json();
    let address = result["ips"][0]["address"].as_str().unwrap();
    assert!(
        address.starts_with("10.66.") && address.ends_with("/26"),
        "block prefix kept: {address}"
    );
    assert_eq!(
        result["routes"][0]["dst"], address,
        "one route per address, as Calico's IPAM"
    );
    assert!(result.get("interfaces").is_none());
    assert_eq!(store.handle_addresses("k8s-pod-network.ipamonly").len(), 1);
    let del = run(
        CALICO_IPAM,
        &node,
        &store,
        &attachment("DEL", "ipamonly", "", ""),
        &config,
    );
    assert!(del.success, "{}", del.stdout);
    assert!(
        store
            .handle_addresses("k8s-pod-network.ipamonly")
            .is_empty()
    );
}

#[test]
fn errors_name_what_was_wrong() {
    let store = Datastore::new();
    let node = node_namespace();
    let mut bad_mtu = conf("1.0.0", serde_json::json!({"type": "calico-ipam"}));
    bad_mtu["mtu"] = 70000.into();
    let out = run(
        CALICO,
        &node,
        &store,
        &attachment("ADD", "e1", "/var/run/netns/x", ""),
        &bad_mtu,
    );
    assert!(!out.success);
    let error = out.json();
    assert_eq!(error["code"], 7);
    assert_eq!(error["cniVersion"], "1.0.0");
    assert!(
        error["msg"]
            .as_str()
            .unwrap()
            .contains("mtu 70000 is out of range"),
        "{error}"
    );

    let out = run(CALICO, &node, &store, &[("CNI_COMMAND", "ADD")], &bad_mtu);
    assert_eq!(out.json()["code"], 4);
    assert!(
        out.json()["msg"]
            .as_str()
            .unwrap()
            .contains("CNI_CONTAINERID"),
        "{}",
        out.stdout
    );

    let gone = run(
        CALICO,
        &node,
        &store,
        &attachment("ADD", "e2", "/var/run/netns/does-not-exist", ""),
        &conf("1.0.0", serde_json::json!({"type": "calico-ipam"})),
    );
    assert!(!gone.success);
    assert!(gone.stdout.contains("does not exist"), "{}", gone.stdout);
    assert!(
        store.handle_addresses("k8s-pod-network.e2").is_empty(),
        "addresses given back"
    );

    let version = run(
        CALICO,
        &node,
        &store,
        &[("CNI_COMMAND", "VERSION")],
        &serde_json::json!({"cniVersion": "0.4.0"}),
    );
    assert!(version.success);
    assert_eq!(version.json()["cniVersion"], "0.4.0");
    assert_eq!(
        version.json()["supportedVersions"]
            .as_array()
            .unwrap()
            .len(),
        7
    );
}

/// The plugin against etcd (`datastore_type: etcdv3` in the configuration,
/// which wins over the environment's embedded store): the address comes
/// from the pool in etcd, the endpoint is written there, DEL releases both.
/// etcd runs inside the simulated node's namespace, on its loopback, where
/// the plugin runs.
#[test]
fn add_and_del_against_etcd() {
    use calico_model::WorkloadEndpoint;

    let node = node_namespace();
    // Started from a thread inside the node's namespace, etcd lives there.
    let etcd = node.netns().run(calico_testutil::Etcd::start).unwrap();
    in_namespace(&node, &etcd, |client| async move {
        common::datastore::seed(&client, &[("etcd-pool", "10.67.0.0/16", 26)]).await;
    });
    // The embedded file the environment names must stay untouched.
    let unused = Datastore::with_pools(&[]);
    let pod = ScratchNetns::new("binetcd");
    let netns = pod.path().display().to_string();
    let mut config = conf("1.0.0", serde_json::json!({"type": "calico-ipam"}));
    config["datastore_type"] = "etcdv3".into();
    config["etcd_endpoints"] = etcd.endpoint().into();
    let name = "node--1-cni-etcdpod-eth0";

    let add = run(
        CALICO,
        &node,
        &unused,
        &attachment("ADD", "etcdpod", &netns, ""),
        &config,
    );
    assert!(add.success, "ADD failed: {}", add.stdout);
    let address = add.json()["ips"][0]["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(address.starts_with("10.67."), "{address}");
    let recorded = address.clone();
    in_namespace(&node, &etcd, |client| async move {
        let endpoint = client
            .get_typed::<WorkloadEndpoint>("default", name)
            .await
            .expect("the endpoint is in etcd");
        assert_eq!(endpoint.spec.ip_networks, vec![recorded]);
    });
    assert!(unused.endpoints().is_empty());

    let del = run(
        CALICO,
        &node,
        &unused,
        &attachment("DEL", "etcdpod", &netns, ""),
        &config,
    );
    assert!(del.success, "DEL failed: {}", del.stdout);
    in_namespace(&node, &etcd, |client| async move {
        assert!(
            client
                .get_typed::<WorkloadEndpoint>("default", name)
                .await
                .is_err()
        );
        let ipam = calico_ipam::Ipam::new(client.backend().clone());
        let held = ipam
            .get_ips_by_handle("k8s-pod-network.etcdpod")
            .await
            .unwrap();
        assert!(held.is_empty(), "{held:?}");
    });
}

/// Runs `work` with a client of `etcd`, from a thread inside `ns` (where
/// etcd listens).
fn in_namespace<F, Fut>(ns: &ScratchNetns, etcd: &calico_testutil::Etcd, work: F)
where
    F: FnOnce(calico_client::Client<calico_datastore::EtcdBackend>) -> Fut + Send,
    Fut: std::future::Future<Output = ()>,
{
    use calico_datastore::{EtcdBackend, EtcdConfig};
    let endpoint = etcd.endpoint().to_string();
    ns.netns()
        .run(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(async {
                    let backend = EtcdBackend::connect(&EtcdConfig::new([endpoint]))
                        .await
                        .unwrap();
                    work(calico_client::Client::new(backend)).await;
                })
        })
        .unwrap();
}
