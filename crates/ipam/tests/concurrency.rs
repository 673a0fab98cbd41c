//! Many hosts allocating at once from one datastore, with no lock: 200
//! allocations in parallel from 4 simulated nodes, on the embedded engine
//! (in one process, and from 4 OS processes sharing the file) and on a
//! real etcd. Afterwards: no address twice, every block affine to exactly
//! one node and (strict affinity) holding only that node's addresses, and
//! nothing left behind once everything is released.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_datastore::{Backend, EmbeddedBackend, EtcdBackend, EtcdConfig};
use calico_ipam::{AutoAssignArgs, Ipam, IpamConfig};
use common::*;

const NODES: usize = 4;
const PER_NODE: usize = 50;

fn node_name(i: usize) -> String {
    format!("node-{i}")
}

fn handle(node: &str, i: usize) -> String {
    format!("k8s-pod-network.{node}-{i:03}")
}

async fn setup<B: Backend + Clone>(ds: &B) {
    put_pool(ds, "default-ipv4-ippool", "10.200.0.0/16", 26, |_| {}).await;
    for n in 0..NODES {
        put_node(ds, &node_name(n), &[]).await;
    }
    Ipam::new(ds.clone())
        .set_config(&IpamConfig {
            strict_affinity: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

/// `PER_NODE` allocations for one node, all in flight at once.
async fn allocate_for_node<B: Backend + Clone + 'static>(
    ipam: Ipam<B>,
    node: String,
) -> Vec<(String, IpAddr)> {
    let mut tasks = Vec::new();
    for i in 0..PER_NODE {
        let ipam = ipam.clone();
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            let h = handle(&node, i);
            let got = ipam
                .auto_assign(&AutoAssignArgs {
                    num4: 1,
                    handle: Some(h.clone()),
                    attrs: pod_attrs(&node, &h),
                    hostname: node.clone(),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("{node} allocation {i}: {e:?}"));
            assert_eq!(
                got.v4.ips.len(),
                1,
                "{node} allocation {i}: {:?}",
                got.v4.messages
            );
            (h, got.v4.ips[0].addr())
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// Checks the datastore after the allocations: the invariants of the
/// module documentation.
async fn verify_allocated<B: Backend>(ds: &B, allocated: &[(String, String, IpAddr)]) {
    let unique: BTreeSet<IpAddr> = allocated.iter().map(|(_, _, a)| *a).collect();
    assert_eq!(
        unique.len(),
        NODES * PER_NODE,
        "an address was handed out twice"
    );

    let stored = dump(ds, "/calico/ipam/v2/").await;
    let mut affinity_owners: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (key, value) in &stored {
        if let Some(rest) = key.strip_prefix("/calico/ipam/v2/host/") {
            let parts: Vec<&str> = rest.split('/').collect();
            assert_eq!(value["state"], "confirmed", "{key} left unconfirmed");
            affinity_owners
                .entry(parts[3].to_owned())
                .or_default()
                .push(parts[0].to_owned());
        }
    }
    let mut blocks = 0;
    let owner_of: BTreeMap<IpAddr, &str> =
        allocated.iter().map(|(n, _, a)| (*a, n.as_str())).collect();
    for (key, block) in stored.iter().filter(|(k, _)| k.contains("/assignment/")) {
        blocks += 1;
        let segment = key.rsplit('/').next().unwrap();
        let owners = &affinity_owners[segment];
        assert_eq!(owners.len(), 1, "block {segment} affine to {owners:?}");
        let host = block["affinity"]
            .as_str()
            .unwrap()
            .strip_prefix("host:")
            .unwrap();
        assert_eq!(host, owners[0], "block {segment} and its affinity disagree");
        let cidr: ipnet::IpNet = block["cidr"].as_str().unwrap().parse().unwrap();
        for (ordinal, attr) in block["allocations"].as_array().unwrap().iter().enumerate() {
            let Some(idx) = attr.as_u64() else { continue };
            let addr = calico_ipam::cidr::address_at(&cidr, ordinal);
            assert_eq!(
                owner_of.get(&addr).copied(),
                Some(host),
                "{addr} in {host}'s block"
            );
            assert_eq!(block["attributes"][idx as usize]["secondary"]["node"], host);
        }
    }
    assert_eq!(blocks, affinity_owners.len(), "an affinity without a block");
    let handles = stored.keys().filter(|k| k.contains("/handle/")).count();
    assert_eq!(handles, NODES * PER_NODE);
}

/// Releases everything, concurrently, and checks that nothing is left but
/// the nodes' (empty) blocks.
async fn release_all_and_verify<B: Backend + Clone + 'static>(
    ds: &B,
    allocated: &[(String, String, IpAddr)],
) {
    let mut tasks = Vec::new();
    for (_, h, _) in allocated {
        let ipam = Ipam::new(ds.clone());
        let h = h.clone();
        tasks.push(tokio::spawn(async move {
            ipam.release_by_handle(&h).await.unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    let stored = dump(ds, "/calico/ipam/v2/").await;
    assert!(
        !stored.keys().any(|k| k.contains("/handle/")),
        "handles left behind"
    );
    for (key, block) in stored.iter().filter(|(k, _)| k.contains("/assignment/")) {
        assert!(
            block["allocations"]
                .as_array()
                .unwrap()
                .iter()
                .all(|a| a.is_null()),
            "{key} still has allocations"
        );
    }
    let ipam = Ipam::new(ds.clone());
    let input = calico_ipam::report::CheckInput {
        nodes: ipam.list_nodes().await.unwrap(),
        ..Default::default()
    };
    let report = ipam.check(&input).await.unwrap();
    assert_eq!(report.problems(), 0, "{}", report.render(false, false));
}

async fn run_in_process<B: Backend + Clone + 'static>(backends: Vec<B>) {
    let started = Instant::now();
    let mut nodes = Vec::new();
    for (i, b) in backends.iter().enumerate() {
        let ipam = Ipam::new(b.clone());
        nodes.push(tokio::spawn(allocate_for_node(ipam, node_name(i))));
    }
    let mut allocated = Vec::new();
    for (i, n) in nodes.into_iter().enumerate() {
        for (h, a) in n.await.unwrap() {
            allocated.push((node_name(i), h, a));
        }
    }
    eprintln!(
        "{} allocations from {NODES} nodes in {:?}",
        allocated.len(),
        started.elapsed()
    );
    verify_allocated(&backends[0], &allocated).await;
    release_all_and_verify(&backends[0], &allocated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_nodes_on_the_embedded_engine() {
    let (dir, first) = embedded().await;
    setup(&first).await;
    // Each node has its own handle on the file, as separate agents would.
    let mut backends = vec![first];
    for _ in 1..NODES {
        backends.push(
            EmbeddedBackend::open(dir.path().join("calico.db"))
                .await
                .unwrap(),
        );
    }
    run_in_process(backends).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_nodes_on_etcd() {
    let etcd = calico_testutil::Etcd::start();
    let mut backends = Vec::new();
    for _ in 0..NODES {
        backends.push(
            EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
                .await
                .unwrap(),
        );
    }
    setup(&backends[0]).await;
    run_in_process(backends).await;
}

const WORKER_DB: &str = "CALICO_IPAM_TEST_WORKER_DB";
const WORKER_NODE: &str = "CALICO_IPAM_TEST_WORKER_NODE";

/// One simulated node in its own OS process: allocates `PER_NODE`
/// addresses concurrently from the shared file and prints them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a worker process of parallel_processes_on_the_embedded_engine, which starts it"]
async fn worker_process() {
    let db = std::env::var(WORKER_DB).expect("started without the datastore path");
    let node = std::env::var(WORKER_NODE).expect("started without a node name");
    let ds = EmbeddedBackend::open(db).await.unwrap();
    for (h, a) in allocate_for_node(Ipam::new(ds), node).await {
        println!("ALLOCATED {h} {a}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_processes_on_the_embedded_engine() {
    let (dir, ds) = embedded().await;
    setup(&ds).await;
    let db = dir.path().join("calico.db");
    let exe = std::env::current_exe().unwrap();
    let started = Instant::now();
    let mut children = Vec::new();
    for i in 0..NODES {
        let child = Command::new(&exe)
            .args([
                "worker_process",
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WORKER_DB, &db)
            .env(WORKER_NODE, node_name(i))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        children.push((i, child));
    }
    let mut allocated = Vec::new();
    for (i, mut child) in children {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            // Stop our own child by its PID.
            let _ = Command::new("kill").arg(child.id().to_string()).status();
        }
        let out = child.wait_with_output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "worker {i} failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // The test harness's own "test worker_process ... " may share a
        // line with the first result.
        for line in stdout
            .lines()
            .filter_map(|l| l.find("ALLOCATED ").map(|i| &l[i + 10..]))
        {
            let (h, a) = line.split_once(' ').unwrap();
            allocated.push((node_name(i), h.to_owned(), a.parse().unwrap()));
        }
    }
    eprintln!(
        "{} allocations from {NODES} processes in {:?}",
        allocated.len(),
        started.elapsed()
    );
    assert_eq!(allocated.len(), NODES * PER_NODE);
    verify_allocated(&ds, &allocated).await;
    release_all_and_verify(&ds, &allocated).await;
}
