//! BGP networking end to end (root): two simulated nodes, each a network
//! namespace on a shared underlay (a veth pair, 10.99.0.0/24), each running
//! the `calico-node` binary against one embedded datastore with Calico's
//! defaults (BIRD backend, full node-to-node mesh, AS 64512).
//!
//! Checked: the mesh session comes up; a block affine to node A becomes a
//! route in B's kernel via A's address and goes when the affinity is
//! released; an unusable BGPPeer is skipped while the mesh stays up;
//! `calicoctl node status` prints the peers as Calico does; a
//! CalicoNodeStatus for A gets its status filled.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use calico_client::Client;
use calico_datastore::{AnyBackend, Backend};
use calico_model::ipam::{BlockAffinity, BlockAffinityKey, BlockAffinityState};
use calico_model::node::CalicoNodeStatus;
use calico_model::{Kind, ObjectMeta};
use calico_netlink::testing::ScratchNetns;
use ipnet::IpNet;
use support::{AgentProcess, Store, Underlay, http_get, runtime, start_node, wait_for};

const WAIT: Duration = Duration::from_secs(60);
const A_IP: &str = "10.99.0.1";
const B_IP: &str = "10.99.0.2";

/// The `calicoctl` binary of this build (built here, once, if no earlier
/// step built it: `cargo test --workspace` does).
fn calicoctl() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY.get_or_init(find_or_build_calicoctl).clone()
}

fn find_or_build_calicoctl() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> → target/<profile>/calicoctl
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target directory");
    let binary = profile_dir.join("calicoctl");
    if !binary.exists() {
        let target_dir = profile_dir.parent().expect("target directory");
        let status = Command::new(env!("CARGO"))
            .args(["build", "-p", "calicoctl"])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("running cargo build -p calicoctl");
        assert!(status.success(), "building calicoctl failed");
    }
    binary
}

/// `calicoctl node status` against an agent's socket.
fn node_status(socket: &Path) -> Output {
    Command::new(calicoctl())
        .args(["node", "status"])
        .env("CALICO_BGP_STATUS_SOCKET", socket)
        .output()
        .expect("running calicoctl")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The cells of the status table row for `peer`, if there is one.
fn peer_row(text: &str, peer: &str) -> Option<Vec<String>> {
    let row = text
        .lines()
        .find(|l| l.starts_with(&format!("| {peer} ")))?;
    Some(
        row.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_owned())
            .collect(),
    )
}

fn established(socket: &Path, peer: &str) -> bool {
    let output = node_status(socket);
    output.status.success()
        && peer_row(&stdout(&output), peer).is_some_and(|cells| {
            cells[1] == "node-to-node mesh" && cells[2] == "up" && cells[4] == "Established"
        })
}

/// The route to `prefix` that the BGP speaker installed (`ip` names
/// unknown protocol numbers oddly, so the number is asked for).
fn bgp_route(ns: &ScratchNetns, prefix: &str) -> String {
    let protocol = calico_bgp::sink::ROUTE_PROTOCOL.to_string();
    ns.exec(&["ip", "route", "show", prefix, "proto", &protocol])
        .unwrap_or_default()
}

fn all_routes(ns: &ScratchNetns) -> String {
    ns.exec(&["ip", "-4", "route", "show", "table", "main"])
        .unwrap_or_default()
}

fn route(ns: &ScratchNetns, prefix: &str) -> String {
    ns.exec(&["ip", "route", "show", prefix])
        .unwrap_or_default()
}

struct Cluster {
    rt: tokio::runtime::Runtime,
    store: Store,
    backend: AnyBackend,
    client: Client<AnyBackend>,
    net: Underlay,
}

impl Cluster {
    fn new() -> Cluster {
        let rt = runtime();
        let store = Store::embedded();
        let backend = store.backend(&rt);
        let client = Client::new(backend.clone());
        Cluster {
            rt,
            store,
            backend,
            client,
            net: Underlay::new("bgp", A_IP, B_IP),
        }
    }

    fn start(&self, name: &str, ns: &ScratchNetns, ip: &str, backend: &str) -> AgentProcess {
        start_node(
            &self.store,
            name,
            ns,
            ip,
            &[("CALICO_NETWORKING_BACKEND", backend)],
        )
    }

    fn affinity_key(node: &str, block: &str) -> String {
        BlockAffinityKey::host(node, block.parse::<IpNet>().unwrap()).key()
    }

    /// What Calico's IPAM writes when it claims a block for a node.
    fn claim(&self, node: &str, block: &str) {
        let value = serde_json::to_vec(&BlockAffinity {
            state: BlockAffinityState::Confirmed,
            deleted: false,
        })
        .unwrap();
        self.rt
            .block_on(
                self.backend
                    .create(&Self::affinity_key(node, block), &value),
            )
            .expect("writing a block affinity");
    }

    fn release(&self, node: &str, block: &str) {
        self.rt
            .block_on(self.backend.delete(&Self::affinity_key(node, block), None))
            .expect("deleting a block affinity");
    }

    fn node_status_resource(&self, name: &str) -> CalicoNodeStatus {
        self.rt
            .block_on(self.client.get_typed::<CalicoNodeStatus>("", name))
            .expect("reading the CalicoNodeStatus")
    }
}

#[test]
fn two_nodes_mesh_exchange_blocks_and_report_status() {
    // Found (or built) before any clock starts.
    calicoctl();
    let cluster = Cluster::new();
    let agent_a = cluster.start("node-a", &cluster.net.a, A_IP, "bird");
    let agent_b = cluster.start("node-b", &cluster.net.b, B_IP, "bird");
    let (sock_a, sock_b) = (agent_a.status_socket(), agent_b.status_socket());
    let logs = || {
        format!(
            "--- node-a\n{}\n--- node-b\n{}",
            agent_a.log(),
            agent_b.log()
        )
    };

    // The default full mesh comes up both ways.
    wait_for(
        WAIT,
        "node-a's session with node-b",
        || established(&sock_a, B_IP),
        logs,
    );
    wait_for(
        WAIT,
        "node-b's session with node-a",
        || established(&sock_b, A_IP),
        logs,
    );

    // calicoctl prints what Calico prints: the running line, the IPv4
    // table with the one mesh peer, no IPv6 peers.
    let output = node_status(&sock_a);
    assert!(output.status.success(), "{output:?}");
    let text = stdout(&output);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..4],
        [
            "Calico process is running.",
            "",
            "IPv4 BGP status",
            "+--------------+-------------------+-------+----------+-------------+"
        ],
        "{text}"
    );
    assert_eq!(
        lines[4], "| PEER ADDRESS |     PEER TYPE     | STATE |  SINCE   |    INFO     |",
        "{text}"
    );
    // Rule, heading, rule, the one row, rule.
    assert_eq!(lines.len(), 12, "{text}");
    assert_eq!((lines[5], lines[7]), (lines[3], lines[3]), "{text}");
    assert!(lines[6].starts_with(&format!("| {B_IP} ")), "{text}");
    let row = peer_row(&text, B_IP).unwrap_or_else(|| panic!("{text}"));
    assert_eq!(row.len(), 5, "{text}");
    assert!(
        row[3].len() == 8 && row[3].chars().filter(|c| *c == ':').count() == 2,
        "since is a time of day: {text}"
    );
    assert_eq!(
        lines[lines.len() - 4..],
        ["", "IPv6 BGP status", "No IPv6 peers found.", ""],
        "{text}"
    );
    assert!(text.ends_with("No IPv6 peers found.\n\n"), "{text:?}");

    // A block affine to node-a reaches node-b's kernel via node-a...
    cluster.claim("node-a", "192.168.10.0/26");
    wait_for(
        WAIT,
        "node-a's block in node-b's kernel",
        || bgp_route(&cluster.net.b, "192.168.10.0/26").contains(&format!("via {A_IP}")),
        || {
            format!(
                "node-b routes:\n{}\nnode-a routes:\n{}\n{}",
                all_routes(&cluster.net.b),
                all_routes(&cluster.net.a),
                logs()
            )
        },
    );
    // ... while node-a itself holds it as a blackhole (its own block).
    assert!(
        route(&cluster.net.a, "192.168.10.0/26").contains("blackhole"),
        "{}",
        route(&cluster.net.a, "192.168.10.0/26")
    );
    // ... and releasing the affinity withdraws it.
    cluster.release("node-a", "192.168.10.0/26");
    wait_for(
        WAIT,
        "the released block to leave node-b's kernel",
        || {
            bgp_route(&cluster.net.b, "192.168.10.0/26")
                .trim()
                .is_empty()
        },
        || format!("{}\n{}", route(&cluster.net.b, "192.168.10.0/26"), logs()),
    );

    // A BGPPeer the speaker cannot use (as a datastore can hold it when
    // written around validation) is skipped; the mesh stays up.
    let bad_peer = serde_json::json!({
        "kind": "BGPPeer",
        "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "unusable-peer", "uid": "0b7a4b4e-0000-4000-8000-000000000001"},
        "spec": {"peerIP": "300.1.2.3", "asNumber": 64513}
    });
    let key = calico_model::keys::resource_key(Kind::BgpPeer, "", "unusable-peer");
    cluster
        .rt
        .block_on(
            cluster
                .backend
                .create(&key, bad_peer.to_string().as_bytes()),
        )
        .expect("writing the BGPPeer");
    wait_for(
        WAIT,
        "node-a to log that it skips the unusable peer",
        || agent_a.log().contains("BGPPeer unusable-peer: peerIP"),
        logs,
    );
    // Something node-b now originates still arrives: the session carries
    // on after the bad peer.
    cluster.claim("node-b", "192.168.20.0/26");
    wait_for(
        WAIT,
        "node-b's block in node-a's kernel",
        || bgp_route(&cluster.net.a, "192.168.20.0/26").contains(&format!("via {B_IP}")),
        logs,
    );
    assert!(
        established(&sock_a, B_IP),
        "{}",
        stdout(&node_status(&sock_a))
    );
    assert!(
        established(&sock_b, A_IP),
        "{}",
        stdout(&node_status(&sock_b))
    );
    let text = stdout(&node_status(&sock_a));
    assert!(!text.contains("300.1.2.3"), "{text}");

    // node-a's own resource made unusable for BGP (a cluster id that is
    // not an address) is logged and the agent carries on; fixed, the
    // settings apply again and the mesh is back.
    let node_key = calico_model::keys::resource_key(Kind::Node, "", "node-a");
    let original = cluster
        .rt
        .block_on(cluster.backend.get(&node_key))
        .expect("reading node-a")
        .expect("node-a exists")
        .value;
    let mut broken: serde_json::Value = serde_json::from_slice(&original).unwrap();
    broken["spec"]["bgp"]["routeReflectorClusterID"] = "not-an-address".into();
    let put = |value: &[u8]| {
        cluster
            .rt
            .block_on(cluster.backend.put(&node_key, value))
            .expect("writing node-a");
    };
    put(broken.to_string().as_bytes());
    wait_for(
        WAIT,
        "node-a to log that it cannot compute its BGP settings",
        || {
            agent_a
                .log()
                .contains("cannot compute this node's BGP settings")
        },
        logs,
    );
    let health = "127.0.0.1:9099".parse().unwrap();
    assert!(
        matches!(http_get(&cluster.net.a, health, "/liveness"), Ok((200, _))),
        "{}",
        agent_a.log()
    );
    put(&original);
    wait_for(
        WAIT,
        "node-a to compute its BGP settings again",
        || agent_a.log().contains("BGP settings can be computed again"),
        logs,
    );
    wait_for(
        WAIT,
        "the mesh after node-a is fixed",
        || established(&sock_a, B_IP) && established(&sock_b, A_IP),
        logs,
    );

    // A CalicoNodeStatus for node-a gets its status filled.
    let mut request = CalicoNodeStatus {
        metadata: ObjectMeta::named("node-a-status"),
        ..CalicoNodeStatus::default()
    };
    request.spec.node = "node-a".into();
    request.spec.classes = vec!["Agent".into(), "BGP".into(), "Routes".into()];
    request.spec.update_period_seconds = Some(1);
    cluster
        .rt
        .block_on(cluster.client.create_typed(request))
        .expect("creating the CalicoNodeStatus");
    let filled = |s: &CalicoNodeStatus| {
        let st = &s.status;
        st.last_updated.is_some()
            && st.agent.bird_v4.state == "Ready"
            && st.agent.bird_v4.router_id == A_IP
            && st.bgp.number_established_v4 == 1
            && st.bgp.peers_v4.len() == 1
            && st.bgp.peers_v4[0].peer_ip == B_IP
            && st.bgp.peers_v4[0].peer_type == "NodeMesh"
            && st.bgp.peers_v4[0].state == "Established"
            && st.routes.routes_v4.iter().any(|r| {
                r.destination == "192.168.20.0/26"
                    && r.gateway == B_IP
                    && r.learned_from.source_type == "NodeMesh"
                    && r.learned_from.peer_ip == B_IP
            })
    };
    wait_for(
        WAIT,
        "node-a to fill its CalicoNodeStatus",
        || filled(&cluster.node_status_resource("node-a-status")),
        || {
            format!(
                "{:#?}\n{}",
                cluster.node_status_resource("node-a-status").status,
                logs()
            )
        },
    );

    // The status follows the node every period without the resource
    // changing: a block node-b claims now shows up among node-a's routes.
    let lists_block = |s: &CalicoNodeStatus| {
        s.status
            .routes
            .routes_v4
            .iter()
            .any(|r| r.destination == "192.168.30.0/26" && r.gateway == B_IP)
    };
    assert!(!lists_block(&cluster.node_status_resource("node-a-status")));
    cluster.claim("node-b", "192.168.30.0/26");
    wait_for(
        WAIT,
        "the next period's status to list node-b's new block",
        || lists_block(&cluster.node_status_resource("node-a-status")),
        || {
            format!(
                "{:#?}\n{}",
                cluster.node_status_resource("node-a-status").status,
                logs()
            )
        },
    );

    // With no agent answering, calicoctl says so and fails.
    let output = node_status(&sock_a.with_file_name("nobody.ctl"));
    assert!(!output.status.success(), "{output:?}");
    assert_eq!(stdout(&output), "");
    assert_eq!(
        String::from_utf8_lossy(&output.stderr),
        "Calico process is not running.\n"
    );

    let (mut agent_a, mut agent_b) = (agent_a, agent_b);
    assert!(agent_a.terminate(), "{}", agent_a.log());
    assert!(agent_b.terminate(), "{}", agent_b.log());
}

#[test]
fn vxlan_backend_runs_no_speaker() {
    // Found (or built) before any clock starts.
    calicoctl();
    let cluster = Cluster::new();
    let agent = cluster.start("node-a", &cluster.net.a, A_IP, "vxlan");
    let output = node_status(&agent.status_socket());
    assert!(output.status.success(), "{output:?}\n{}", agent.log());
    assert_eq!(
        stdout(&output),
        "Calico process is running.\n\nNone of the BGP backend processes (BIRD or GoBGP) are running.\n\n"
    );
    // Nothing listens for BGP in the node's namespace.
    let listening = cluster
        .net
        .a
        .exec(&["ss", "-Hltn", "sport = :179"])
        .unwrap_or_default();
    assert!(listening.trim().is_empty(), "{listening}");
}
