//! The `calico-lab` binary end to end, as a user runs it: real labs (node
//! namespaces, calico-node agents, pods through the calico CNI plugin)
//! built, checked, changed and taken down. Each test uses its own lab
//! directory and takes its lab down even when it fails. Needs root.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Once;
use std::time::Duration;

use calico_lab::state::State;
use calico_netlink::NetNs;

const LAB: &str = env!("CARGO_BIN_EXE_calico-lab");

/// The directory holding calico-lab, where the other binaries are built
/// too; builds `calico-node` and the CNI plugin there once if a run of
/// only this package's tests has not.
fn bin_dir() -> PathBuf {
    static BUILD: Once = Once::new();
    let dir = Path::new(LAB).parent().unwrap().to_path_buf();
    BUILD.call_once(|| {
        if ["calico-node", "calico", "calico-ipam", "calicoctl"]
            .iter()
            .all(|b| dir.join(b).is_file())
        {
            return;
        }
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut command = Command::new(cargo);
        command.args([
            "build",
            "-p",
            "calico-node",
            "-p",
            "calico-cni",
            "-p",
            "calicoctl",
        ]);
        if dir.ends_with("release") {
            command.arg("--release");
        }
        let status = command.status().expect("running cargo build");
        assert!(
            status.success(),
            "building calico-node, calico-cni and calicoctl failed"
        );
    });
    dir
}

/// A lab in its own directory; taken down on drop.
struct Lab {
    dir: tempfile::TempDir,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            dir: tempfile::Builder::new()
                .prefix("calico-lab-test-")
                .tempdir()
                .unwrap(),
        }
    }

    fn run(&self, args: &[&str]) -> Output {
        let output = Command::new(LAB)
            .arg("--dir")
            .arg(self.dir.path())
            .args(args)
            .env("CALICO_LAB_BIN_DIR", bin_dir())
            .env_remove("CALICO_IPV4POOL_VXLAN")
            .env_remove("CALICO_IPV4POOL_IPIP")
            .env_remove("CALICO_IPV4POOL_CIDR")
            .output()
            .expect("running calico-lab");
        eprintln!(
            "$ calico-lab {}\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "calico-lab {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    fn state(&self) -> State {
        State::require(self.dir.path()).unwrap()
    }

    fn exec(&self, target: &str, command: &[&str]) -> String {
        let mut args = vec!["exec", target, "--"];
        args.extend_from_slice(command);
        self.ok(&args)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let _ = Command::new(LAB)
            .arg("--dir")
            .arg(self.dir.path())
            .arg("down")
            .output();
    }
}

/// The matrices printed by `up` or `check`, as rows of cells.
fn matrices(text: &str) -> Vec<Vec<Vec<String>>> {
    let mut out = Vec::new();
    let mut current: Option<Vec<Vec<String>>> = None;
    for line in text.lines() {
        if line.starts_with("from \\ to") {
            if let Some(m) = current.take() {
                out.push(m);
            }
            current = Some(Vec::new());
            continue;
        }
        let Some(matrix) = current.as_mut() else {
            continue;
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() > 2 && fields[0].parse::<usize>().is_ok() && fields[1].contains('/') {
            matrix.push(fields[2..].iter().map(|s| s.to_string()).collect());
        } else {
            out.push(current.take().unwrap());
        }
    }
    out.extend(current);
    out
}

fn namespaces_with(prefix: &str) -> BTreeSet<String> {
    std::fs::read_dir("/var/run/netns")
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with(prefix))
                .collect()
        })
        .unwrap_or_default()
}

fn host_links() -> String {
    let output = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    // Counters and carrier state may change; names and indexes may not.
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Applies a manifest to the lab's datastore through the client, as
/// calicoctl apply would.
fn apply(lab: &Lab, yaml: &str) {
    let state = lab.state();
    let store = calico_lab::datastore::Store::connect(state.datastore.as_ref().unwrap()).unwrap();
    calico_lab::kube::apply_manifest(&store, "test manifest", yaml).unwrap();
}

#[test]
fn vxlan_always_three_nodes_policy_everywhere_and_a_clean_down() {
    let links_before = host_links();
    let lab = Lab::new();
    let up = lab.ok(&["up", "--nodes", "3", "--pods-per-node", "2"]);
    let state = lab.state();
    assert_eq!(state.nodes.len(), 3);
    assert_eq!(state.pods.len(), 6);

    // Before the policy every pod reaches every other; after it, prod
    // accepts only prod. `up` succeeds only when both agree with explain.
    let printed = matrices(&up);
    assert_eq!(printed.len(), 2, "{up}");
    let before = &printed[0];
    assert!(
        before.iter().flatten().all(|c| c == "ok" || c == "."),
        "{up}"
    );
    let after = &printed[1];
    for (i, from) in state.pods.iter().enumerate() {
        for (j, to) in state.pods.iter().enumerate() {
            if i == j {
                continue;
            }
            let expected = if to.namespace == "prod" && from.namespace != "prod" {
                "x"
            } else {
                "ok"
            };
            assert_eq!(
                after[i][j],
                expected,
                "{} -> {}:\n{up}",
                from.key(),
                to.key()
            );
        }
    }
    // Pods on every node are behind the VXLAN device.
    for node in &state.nodes {
        let link = lab.exec(&node.name, &["ip", "-d", "link", "show", "vxlan.calico"]);
        assert!(link.contains("vxlan id 4096"), "{link}");
        assert!(link.contains("mtu 1450"), "{link}");
    }
    // Kubernetes identities are on the endpoints.
    let store = calico_lab::datastore::Store::connect(state.datastore.as_ref().unwrap()).unwrap();
    let wep: calico_model::WorkloadEndpoint = store
        .run(
            store
                .client
                .get_typed("prod", &state.pod("prod/web-1").unwrap().endpoint),
        )
        .unwrap();
    assert_eq!(wep.metadata.labels["app"], "web");
    assert_eq!(
        wep.metadata.labels["projectcalico.org/serviceaccount"],
        "web"
    );
    assert_eq!(wep.spec.profiles, vec!["kns.prod", "ksa.prod.web"]);

    // A Calico policy through the client takes effect on every node:
    // nothing may reach dev/web-2 (on node-2) any more, from any node.
    apply(
        &lab,
        "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: lock-web-2
spec:
  selector: projectcalico.org/namespace == 'dev' && app == 'web'
  types: [Ingress]
  ingress:
  - action: Allow
    source:
      selector: projectcalico.org/namespace == 'prod'
",
    );
    let check = lab.ok(&["check"]);
    assert!(check.contains("check passed: 30 flows"), "{check}");
    let after = &matrices(&check)[0];
    for (i, from) in state.pods.iter().enumerate() {
        for (j, to) in state.pods.iter().enumerate() {
            if i != j && to.namespace == "dev" {
                let expected = if from.namespace == "prod" { "ok" } else { "x" };
                assert_eq!(
                    after[i][j],
                    expected,
                    "{} -> {}:\n{check}",
                    from.key(),
                    to.key()
                );
            }
        }
    }

    // A pod added later joins the mesh and the policy.
    lab.ok(&[
        "pod",
        "add",
        "prod/db-3",
        "--node",
        "node-3",
        "--labels",
        "app=db",
    ]);
    let check = lab.ok(&["check"]);
    assert!(check.contains("check passed: 42 flows"), "{check}");
    lab.ok(&["pod", "del", "prod/db-3"]);
    assert!(lab.state().pod("prod/db-3").is_none());

    let status = lab.ok(&["status"]);
    assert_eq!(status.matches(" ready").count(), 3, "{status}");

    // Down leaves no namespace, process or file, and the host's links as
    // they were.
    let state = lab.state();
    let prefix = state.netns_name("");
    assert!(!namespaces_with(&prefix).is_empty());
    let processes: Vec<_> = state.processes().into_iter().cloned().collect();
    assert_eq!(processes.len(), 3);
    let down = lab.ok(&["down"]);
    assert!(down.contains("3 process(es) stopped"), "{down}");
    assert!(namespaces_with(&prefix).is_empty());
    for process in &processes {
        assert!(!calico_lab::system::is_running(process), "{process:?}");
    }
    assert!(
        std::fs::read_dir(lab.dir.path()).unwrap().next().is_none(),
        "the lab directory is empty"
    );
    assert_eq!(host_links(), links_before);
    // And down is safe to run again.
    assert!(lab.ok(&["down"]).contains("no lab is up"));
}

/// Connects from inside `from` (a namespace path) to `to` and checks an
/// echo.
fn reaches(from: &Path, to: SocketAddr) -> bool {
    let ns = NetNs::open(from).unwrap();
    let Ok(Ok(mut stream)) = ns.run(|| TcpStream::connect_timeout(&to, Duration::from_secs(2)))
    else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    if stream.write_all(b"hi").is_err() {
        return false;
    }
    let mut reply = [0u8; 2];
    stream.read_exact(&mut reply).is_ok() && &reply == b"hi"
}

/// An echo listener at `address` inside a namespace, for one connection
/// at a time, until the returned listener is dropped.
fn echo_in(netns: &Path, address: SocketAddr) -> TcpListener {
    let listener = NetNs::open(netns)
        .unwrap()
        .run(|| TcpListener::bind(address))
        .unwrap()
        .unwrap();
    let serving = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for stream in serving.incoming() {
            let Ok(mut stream) = stream else { return };
            let mut buffer = [0u8; 2];
            if stream.read_exact(&mut buffer).is_ok() {
                let _ = stream.write_all(&buffer);
            }
        }
    });
    listener
}

#[test]
fn cross_subnet_on_two_subnets_with_etcd_and_nat_outgoing() {
    let lab = Lab::new();
    lab.ok(&[
        "up",
        "--nodes",
        "3",
        "--pods-per-node",
        "1",
        "--subnets",
        "2",
        "--encapsulation-type",
        "CALICO_IPV4POOL_VXLAN",
        "--encapsulation-mode",
        "CrossSubnet",
        "--datastore",
        "etcd",
        "--nat-outgoing",
        "--no-demo",
    ]);
    let check = lab.ok(&["check"]);
    assert!(
        check.contains("check passed: 6 flows, 6 allowed"),
        "{check}"
    );

    // node-1 and node-2 share subnet 1; node-3 is on subnet 2.
    let state = lab.state();
    let block_of = |node: &str| {
        let pod = state.pods.iter().find(|p| p.node == node).unwrap();
        let ip: std::net::Ipv4Addr = pod.ip.parse().unwrap();
        ipnet::Ipv4Net::new(ip, 26).unwrap().trunc().to_string()
    };
    let routes = lab.exec("node-1", &["ip", "route"]);
    assert!(
        routes.contains(&format!("{} via 10.11.1.12 dev eth0", block_of("node-2"))),
        "{routes}"
    );
    assert!(
        routes.contains(&format!("{} via", block_of("node-3")))
            && routes.lines().any(|l| l.starts_with(&block_of("node-3"))
                && l.contains("dev vxlan.calico")
                && l.split_whitespace().any(|w| w == "onlink")),
        "{routes}"
    );

    // NAT outgoing: a pod reaches the router's address on the other
    // subnet, which has no route back to the pool.
    let router = calico_lab::system::netns_path(&state.netns_name("router"));
    let outside: SocketAddr = "10.11.2.1:9000".parse().unwrap();
    let _listener = echo_in(&router, outside);
    let pod = state.pods.iter().find(|p| p.node == "node-1").unwrap();
    assert!(reaches(
        &calico_lab::system::netns_path(&pod.netns),
        outside
    ));

    // The CNI plugin reached etcd from inside the node namespaces, and so
    // does a command run there.
    let env = lab.ok(&["env"]);
    assert!(env.contains("export DATASTORE_TYPE=etcdv3"), "{env}");
    lab.ok(&["down"]);
    assert!(namespaces_with(&state.netns_name("")).is_empty());
}

/// `calicoctl node status` on a lab node, as an operator runs it there.
fn node_status(lab: &Lab, node: &str) -> String {
    let calicoctl = bin_dir().join("calicoctl");
    lab.exec(node, &[calicoctl.to_str().unwrap(), "node", "status"])
}

/// The rows of `calicoctl node status`'s IPv4 table: address, type, state,
/// since, info.
fn bgp_peers(status: &str) -> Vec<Vec<String>> {
    status
        .lines()
        .skip_while(|l| *l != "IPv4 BGP status")
        .take_while(|l| *l != "IPv6 BGP status")
        .filter(|l| l.starts_with("| ") && !l.starts_with("| PEER ADDRESS"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

/// Waits until `node`'s BGP peers are exactly `expected` (address, type),
/// all Established.
fn wait_for_peers(lab: &Lab, node: &str, expected: &[(&str, &str)]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let status = node_status(lab, node);
        let peers: Vec<(String, String, String)> = bgp_peers(&status)
            .into_iter()
            .map(|row| (row[0].clone(), row[1].clone(), row[4].clone()))
            .collect();
        let wanted: Vec<(String, String, String)> = expected
            .iter()
            .map(|(a, t)| (a.to_string(), t.to_string(), "Established".to_string()))
            .collect();
        if peers == wanted {
            return status;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{node}'s BGP peers are not {expected:?}:\n{status}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The routes a node's BGP speaker installed (protocol 196).
fn bgp_routes(lab: &Lab, node: &str) -> String {
    lab.exec(node, &["ip", "-4", "route", "show", "proto", "196"])
}

/// Changes the `default` BGPConfiguration of a lab.
fn change_bgp_configuration(
    store: &calico_lab::datastore::Store,
    change: impl FnOnce(&mut calico_model::bgp::BgpConfigurationSpec),
) {
    let mut config = store
        .run(
            store
                .client
                .get_typed::<calico_model::BgpConfiguration>("", "default"),
        )
        .unwrap();
    change(&mut config.spec);
    store.run(store.client.update_typed(config)).unwrap();
}

/// Labels a lab node and changes its BGP settings.
fn change_node(
    store: &calico_lab::datastore::Store,
    name: &str,
    label: (&str, &str),
    change: impl FnOnce(&mut calico_model::node::NodeBgpSpec),
) {
    let mut node = store
        .run(store.client.get_typed::<calico_model::Node>("", name))
        .unwrap();
    node.metadata.labels.insert(label.0.into(), label.1.into());
    change(
        node.spec
            .bgp
            .as_mut()
            .expect("registered with BGP settings"),
    );
    store.run(store.client.update_typed(node)).unwrap();
}

/// The /26 block holding a pod's address.
fn block_of(pod: &calico_lab::state::PodState) -> ipnet::Ipv4Net {
    ipnet::Ipv4Net::new(pod.ip.parse().unwrap(), 26)
        .unwrap()
        .trunc()
}

/// Waits until `node`'s BGP speaker installed `route` (as `ip route`
/// prints it); `context` explains a time-out.
fn wait_for_bgp_route(lab: &Lab, node: &str, route: &str, context: impl Fn() -> String) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !bgp_routes(lab, node).contains(route) {
        assert!(
            std::time::Instant::now() < deadline,
            "{node} has no {route}:\n{}\n{}",
            bgp_routes(lab, node),
            context()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn bgp_mesh_without_overlay_on_one_subnet() {
    let lab = Lab::new();
    lab.ok(&[
        "up",
        "--nodes",
        "2",
        "--encapsulation-mode",
        "Never",
        "--no-demo",
    ]);
    // The full node-to-node mesh, as Calico's default.
    let status = wait_for_peers(&lab, "node-1", &[("10.11.1.12", "node-to-node mesh")]);
    assert!(status.starts_with("Calico process is running."), "{status}");
    wait_for_peers(&lab, "node-2", &[("10.11.1.11", "node-to-node mesh")]);
    let check = lab.ok(&["check"]);
    assert!(
        check.contains("check passed: 12 flows, 12 allowed"),
        "{check}"
    );
    let links = lab.exec("node-1", &["ip", "-o", "link"]);
    assert!(!links.contains("vxlan.calico"), "{links}");
    // node-2's pods are reached through the route node-2 advertised.
    let state = lab.state();
    let pod = state.pods.iter().find(|p| p.node == "node-2").unwrap();
    let routes = bgp_routes(&lab, "node-1");
    let block = block_of(pod);
    assert!(
        routes.contains(&format!("{block} via 10.11.1.12 dev eth0")),
        "{routes}"
    );

    // A mesh password from a secret (the lab's secrets directory plays the
    // Kubernetes secret): the sessions come back signed with TCP MD5, and
    // the password appears in no log.
    let password = "mesh-Pa55word";
    let secret = calico_lab::agent::secrets_dir(&state).join("bgp-secrets");
    std::fs::create_dir_all(&secret).unwrap();
    std::fs::write(secret.join("mesh-password"), password).unwrap();
    let store = calico_lab::datastore::Store::connect(state.datastore.as_ref().unwrap()).unwrap();
    change_bgp_configuration(&store, |spec| {
        spec.node_mesh_password = Some(
            serde_json::from_value(serde_json::json!({
                "secretKeyRef": {"name": "bgp-secrets", "key": "mesh-password"}
            }))
            .unwrap(),
        )
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let sockets = lab.exec("node-1", &["ss", "-tnie", "sport = :179 or dport = :179"]);
        let signed = sockets.contains("ESTAB") && sockets.contains("md5keys:10.11.1.12/32");
        if signed && node_status(&lab, "node-1").contains("Established") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{sockets}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let check = lab.ok(&["check"]);
    assert!(
        check.contains("check passed: 12 flows, 12 allowed"),
        "{check}"
    );
    for node in &state.nodes {
        let log = std::fs::read_to_string(node.agent.as_ref().unwrap().log.clone()).unwrap();
        assert!(
            !log.contains(password),
            "{}'s log holds the password",
            node.name
        );
    }
}

#[test]
fn bgp_route_reflectors_replace_the_mesh() {
    let lab = Lab::new();
    lab.ok(&[
        "up",
        "--nodes",
        "4",
        "--pods-per-node",
        "1",
        "--encapsulation-mode",
        "Never",
        "--no-demo",
    ]);
    wait_for_peers(
        &lab,
        "node-3",
        &[
            ("10.11.1.11", "node-to-node mesh"),
            ("10.11.1.12", "node-to-node mesh"),
            ("10.11.1.14", "node-to-node mesh"),
        ],
    );

    // Calico's route reflector recipe: two nodes get a cluster ID and a
    // label, every node peers with the labelled ones, the mesh goes.
    let state = lab.state();
    let store = calico_lab::datastore::Store::connect(state.datastore.as_ref().unwrap()).unwrap();
    for name in ["node-1", "node-2"] {
        change_node(&store, name, ("route-reflector", "true"), |bgp| {
            bgp.route_reflector_cluster_id = "244.0.0.1".into()
        });
    }
    apply(
        &lab,
        "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: peer-with-route-reflectors
spec:
  nodeSelector: all()
  peerSelector: route-reflector == 'true'
",
    );
    change_bgp_configuration(&store, |spec| spec.node_to_node_mesh_enabled = Some(false));

    // Clients peer with both reflectors only; the reflectors with each
    // other and every client.
    // A BGPPeer with a nodeSelector is per node: "node specific", as
    // Calico's status shows it.
    let client_peers = [
        ("10.11.1.11", "node specific"),
        ("10.11.1.12", "node specific"),
    ];
    wait_for_peers(&lab, "node-3", &client_peers);
    wait_for_peers(&lab, "node-4", &client_peers);
    wait_for_peers(
        &lab,
        "node-1",
        &[
            ("10.11.1.12", "node specific"),
            ("10.11.1.13", "node specific"),
            ("10.11.1.14", "node specific"),
        ],
    );
    // node-4's block reaches node-3 through a reflector, with node-4 kept
    // as the next hop, and every pod still reaches every other.
    let pod = state.pods.iter().find(|p| p.node == "node-4").unwrap();
    let route = format!("{} via 10.11.1.14 dev eth0", block_of(pod));
    wait_for_bgp_route(&lab, "node-3", &route, String::new);
    let check = lab.ok(&["check", "--timeout-seconds", "30"]);
    assert!(
        check.contains("check passed: 12 flows, 12 allowed"),
        "{check}"
    );
}

#[test]
fn ipip_is_refused_before_anything_is_built_on_a_kernel_without_it() {
    // Ask the kernel the way an operator would: can an ipip device be made?
    let scratch = format!("cl-ipip-test-{}", std::process::id());
    calico_lab::system::create_netns(&scratch).unwrap();
    let kernel_has_ipip =
        calico_lab::system::ip_in(&scratch, &["link", "add", "t0", "type", "ipip"]).is_ok()
            || calico_lab::system::ip_in(&scratch, &["link", "show", "tunl0"]).is_ok();
    calico_lab::system::delete_netns(&scratch).unwrap();

    let lab = Lab::new();
    let output = lab.run(&[
        "up",
        "--encapsulation-type",
        "IPIP",
        "--nodes",
        "1",
        "--pods-per-node",
        "0",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if kernel_has_ipip {
        assert!(output.status.success(), "{stderr}");
        assert!(!stderr.contains("no IPIP support"), "{stderr}");
    } else {
        assert!(!output.status.success());
        assert!(
            stderr.contains("this kernel has no IPIP support"),
            "{stderr}"
        );
        assert!(stderr.contains("--encapsulation-type VXLAN"), "{stderr}");
        assert!(State::load(lab.dir.path()).unwrap().is_none());
    }
}

#[test]
fn commands_without_a_lab_say_how_to_start_one() {
    let lab = Lab::new();
    assert!(lab.ok(&["down"]).contains("no lab is up"));
    let output = lab.run(&["status"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("calico-lab up"));
    let output = lab.run(&["up", "--subnets", "3"]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--subnets 3 must be 1 or 2"));
}

/// BIRD 2 running inside a lab namespace, stopped by its PID on drop.
struct Bird {
    child: std::process::Child,
    dir: tempfile::TempDir,
}

impl Bird {
    fn start(netns: &str, config: &str) -> Bird {
        let bird = calico_testutil::require_binary("bird", "bird2");
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("bird.conf");
        std::fs::write(&conf, config).unwrap();
        let log = std::fs::File::create(dir.path().join("bird.log")).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", netns])
            .arg(bird)
            .arg("-f")
            .arg("-c")
            .arg(&conf)
            .arg("-s")
            .arg(dir.path().join("bird.ctl"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting bird");
        Bird { child, dir }
    }

    fn birdc(&self, command: &str) -> String {
        let output = Command::new("birdc")
            .arg("-s")
            .arg(self.dir.path().join("bird.ctl"))
            .args(command.split_whitespace())
            .output()
            .expect("running birdc");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn bgp_as_per_rack_with_a_bird_top_of_rack_router() {
    let lab = Lab::new();
    lab.ok(&[
        "up",
        "--nodes",
        "2",
        "--subnets",
        "2",
        "--encapsulation-mode",
        "Never",
        "--no-demo",
    ]);
    let state = lab.state();
    let router = state.netns_name("router");
    // The router between the two racks (subnets) speaks eBGP from AS
    // 65000 to each rack's nodes, and installs what it learns.
    let bird = Bird::start(
        &router,
        "router id 10.11.1.1;
protocol device {}
protocol kernel { ipv4 { import none; export all; }; }
protocol bgp rack_a {
  local 10.11.1.1 as 65000; neighbor 10.11.1.11 as 65001;
  ipv4 { import all; export all; };
}
protocol bgp rack_b {
  local 10.11.2.1 as 65000; neighbor 10.11.2.12 as 65002;
  ipv4 { import all; export all; };
}
",
    );

    // Calico's AS-per-rack recipe: an AS and a rack label per node, a
    // BGPPeer per rack to its top-of-rack router, no mesh.
    let store = calico_lab::datastore::Store::connect(state.datastore.as_ref().unwrap()).unwrap();
    for (name, rack, asn) in [("node-1", "a", "65001"), ("node-2", "b", "65002")] {
        change_node(&store, name, ("rack", rack), |bgp| {
            bgp.as_number = calico_model::AsNumber::parse(asn)
        });
    }
    apply(
        &lab,
        "apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack-a-tor
spec:
  nodeSelector: rack == 'a'
  peerIP: 10.11.1.1
  asNumber: 65000
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata:
  name: rack-b-tor
spec:
  nodeSelector: rack == 'b'
  peerIP: 10.11.2.1
  asNumber: 65000
",
    );
    change_bgp_configuration(&store, |spec| spec.node_to_node_mesh_enabled = Some(false));

    wait_for_peers(&lab, "node-1", &[("10.11.1.1", "node specific")]);
    wait_for_peers(&lab, "node-2", &[("10.11.2.1", "node specific")]);

    // node-2's block reaches node-1 from the router (eBGP: next hop the
    // router), having crossed AS 65000 from AS 65002.
    let pod = state.pods.iter().find(|p| p.node == "node-2").unwrap();
    let block = block_of(pod);
    let route = format!("{block} via 10.11.1.1 dev eth0");
    wait_for_bgp_route(&lab, "node-1", &route, || bird.birdc("show route all"));
    let routes = bird.birdc(&format!("show route {block} all"));
    assert!(routes.contains("BGP.as_path: 65002"), "{routes}");
    let check = lab.ok(&["check", "--timeout-seconds", "30"]);
    assert!(
        check.contains("check passed: 12 flows, 12 allowed"),
        "{check}"
    );
}
