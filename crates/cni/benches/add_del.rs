//! ADD and DEL latency of the `calico` binary, as a runtime sees it (fork,
//! exec, datastore, IPAM, kernel), side by side with the reference `ptp`
//! plugin with `host-local` IPAM in the same run, interleaved.
//!
//!     cargo bench -p calico-cni --bench add_del [-- ITERATIONS]
//!
//! Needs root and containernetworking-plugins in /usr/lib/cni. Calico runs
//! with its own IPAM against an embedded datastore file in a temporary
//! directory (a pool, the node and ClusterInformation prepared first).

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_client::Client;
use calico_datastore::EmbeddedBackend;
use calico_model::{IpPool, IpPoolSpec, Node, ObjectMeta};
use calico_netlink::testing::ScratchNetns;

fn main() {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(50);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("calico.db");
    prepare(&db);
    let node = common::node_namespace();
    let pod = ScratchNetns::new("benchpod");
    let netns = pod.path().display().to_string();

    let calico_conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
        "log_level": "error", "nodename": "node-1", "mtu": 1450,
        "ipam": {"type": "calico-ipam"},
    });
    let ptp_conf = serde_json::json!({
        "cniVersion": "1.0.0", "name": "bench-ptp", "type": "ptp", "mtu": 1450,
        "ipam": {"type": "host-local", "dataDir": dir.path().join("host-local"),
                 "ranges": [[{"subnet": "10.88.0.0/16"}]]},
    });
    let calico = env!("CARGO_BIN_EXE_calico");
    let mut rows: Vec<(&str, Vec<Duration>)> = vec![
        ("calico ADD", Vec::new()),
        ("calico DEL", Vec::new()),
        ("ptp+host-local ADD", Vec::new()),
        ("ptp+host-local DEL", Vec::new()),
    ];
    let args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=bench;K8S_POD_INFRA_CONTAINER_ID=bench;K8S_POD_UID=u";
    for i in 0..iterations {
        let id = format!("bench{i}");
        for (slot, binary, conf) in [
            (0, calico, &calico_conf),
            (2, "/usr/lib/cni/ptp", &ptp_conf),
        ] {
            for (offset, command) in [(0, "ADD"), (1, "DEL")] {
                let elapsed = invoke(binary, &node, &db, command, &id, &netns, args, conf);
                rows[slot + offset].1.push(elapsed);
            }
        }
    }
    println!("CNI ADD/DEL through the binaries, {iterations} iterations (median / p90):");
    for (name, mut times) in rows {
        times.sort();
        println!(
            "  {name:<20} {:>8.2} ms  {:>8.2} ms",
            times[times.len() / 2].as_secs_f64() * 1e3,
            times[times.len() * 9 / 10].as_secs_f64() * 1e3
        );
    }
}

#[allow(clippy::too_many_arguments)]
fn invoke(
    binary: &str,
    node: &ScratchNetns,
    db: &std::path::Path,
    command: &str,
    id: &str,
    netns: &str,
    args: &str,
    conf: &serde_json::Value,
) -> Duration {
    // The plugin is exec'd from a thread already inside the node's
    // namespace, as a runtime on the node would; entering it is not timed.
    let stdin = conf.to_string();
    let (output, elapsed) = node
        .netns()
        .run(|| {
            let start = Instant::now();
            let mut child = Command::new(binary)
                .env_clear()
                .env("CNI_COMMAND", command)
                .env("CNI_CONTAINERID", id)
                .env("CNI_NETNS", netns)
                .env("CNI_IFNAME", "eth0")
                .env("CNI_PATH", "/usr/lib/cni")
                .env("CNI_ARGS", args)
                .env("EMBEDDED_DATASTORE_PATH", db)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawning the plugin");
            child
                .stdin
                .take()
                .unwrap()
                .write_all(stdin.as_bytes())
                .unwrap();
            let output = child.wait_with_output().unwrap();
            (output, start.elapsed())
        })
        .expect("entering the node namespace");
    assert!(
        output.status.success(),
        "{binary} {command} failed: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    elapsed
}

fn prepare(db: &std::path::Path) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = Client::new(EmbeddedBackend::open(db).await.unwrap());
        client.ensure_initialized("v3.30.0", "k8s").await.unwrap();
        let pool = IpPool {
            metadata: ObjectMeta::named("default-ipv4-ippool"),
            spec: IpPoolSpec {
                cidr: "10.66.0.0/16".into(),
                block_size: 26,
                ..Default::default()
            },
            ..Default::default()
        };
        client.create_typed(pool).await.unwrap();
        let node = Node {
            metadata: ObjectMeta::named("node-1"),
            ..Default::default()
        };
        client.create_typed(node).await.unwrap();
    });
}
