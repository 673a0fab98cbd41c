//! IPAM throughput and latency on each engine, side by side with the
//! engine's own limits measured in the same run: an allocation is at
//! least two conditional writes (the handle and the block), so the
//! engine's raw write throughput at the same concurrency, halved, bounds
//! allocation throughput, and one compare-and-swap write's latency is the
//! floor under a single allocation's.
//!
//! - Throughput: `--addresses` (default 10,000) single-address
//!   allocations from `--nodes` (default 10) simulated nodes, each running
//!   `--workers` (default 4) concurrent requests, into one fresh
//!   datastore. Repeated `--rounds` times (default 3) on fresh
//!   datastores; the median round is reported.
//! - Latency: `--samples` (default 500) sequential single-address
//!   `auto_assign` calls from one node (p50, p95), and the same number of
//!   `release_by_handle` calls.
//!
//! Run: `cargo bench -p calico-ipam --bench ipam -- [--engines embedded,etcd]
//! [--addresses 10000] [--nodes 10] [--workers 4] [--rounds 3] [--samples 500]`

use std::time::{Duration, Instant};

use calico_datastore::{AnyBackend, Backend, EmbeddedBackend, EtcdBackend, EtcdConfig};
use calico_ipam::{AutoAssignArgs, Ipam};
use calico_testutil::Etcd;

struct Args {
    engines: Vec<String>,
    addresses: usize,
    nodes: usize,
    workers: usize,
    rounds: usize,
    samples: usize,
}

fn parse_args() -> Args {
    let mut a = Args {
        engines: vec!["embedded".into(), "etcd".into()],
        addresses: 10_000,
        nodes: 10,
        workers: 4,
        rounds: 3,
        samples: 500,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--engines" => a.engines = value().split(',').map(str::to_owned).collect(),
            "--addresses" => a.addresses = value().parse().expect("--addresses: a number"),
            "--nodes" => a.nodes = value().parse().expect("--nodes: a number"),
            "--workers" => a.workers = value().parse().expect("--workers: a number"),
            "--rounds" => a.rounds = value().parse().expect("--rounds: a number"),
            "--samples" => a.samples = value().parse().expect("--samples: a number"),
            // cargo bench passes --bench through.
            "--bench" => {}
            other => panic!("unknown argument {other}"),
        }
    }
    a
}

/// A fresh, empty datastore of one engine. The guard keeps the file or the
/// etcd process alive.
enum Guard {
    Dir(#[allow(dead_code)] tempfile::TempDir),
    Etcd(#[allow(dead_code)] Etcd),
}

async fn fresh(engine: &str) -> (AnyBackend, Guard) {
    match engine {
        "embedded" => {
            let dir = tempfile::tempdir().unwrap();
            let b = EmbeddedBackend::open(dir.path().join("calico.db"))
                .await
                .unwrap();
            (AnyBackend::Embedded(b), Guard::Dir(dir))
        }
        "etcd" => {
            let etcd = Etcd::start();
            let b = EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()]))
                .await
                .unwrap();
            (AnyBackend::Etcd(b), Guard::Etcd(etcd))
        }
        other => panic!("unknown engine {other} (embedded or etcd)"),
    }
}

const RESOURCES: &str = "/calico/resources/v3/projectcalico.org/";

async fn setup(ds: &AnyBackend, nodes: usize) {
    ds.put(
        &format!("{RESOURCES}ippools/bench-pool"),
        br#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"bench-pool"},"spec":{"cidr":"10.0.0.0/16","blockSize":26,"ipipMode":"Never","vxlanMode":"Never","natOutgoing":true}}"#,
    )
    .await
    .unwrap();
    for n in 0..nodes {
        let name = node(n);
        let json = format!(
            r#"{{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{{"name":"{name}"}},"spec":{{}}}}"#
        );
        ds.put(&format!("{RESOURCES}nodes/{name}"), json.as_bytes())
            .await
            .unwrap();
    }
}

fn node(n: usize) -> String {
    format!("bench-node-{n:02}")
}

fn args_for(node: &str, handle: String) -> AutoAssignArgs {
    AutoAssignArgs {
        num4: 1,
        attrs: [
            ("namespace".to_owned(), "bench".to_owned()),
            ("node".to_owned(), node.to_owned()),
            ("pod".to_owned(), handle.clone()),
        ]
        .into(),
        handle: Some(handle),
        hostname: node.to_owned(),
        ..Default::default()
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// Sequential compare-and-swap updates of one key: the engine's floor.
async fn cas_floor(ds: &AnyBackend, samples: usize) -> Duration {
    let key = "/calico/bench/cas-floor";
    let mut rev = ds.put(key, b"{}").await.unwrap().mod_revision;
    let mut times = Vec::with_capacity(samples);
    for i in 0..samples {
        let start = Instant::now();
        rev = ds
            .update(key, format!("{{\"i\":{i}}}").as_bytes(), rev)
            .await
            .unwrap()
            .mod_revision;
        times.push(start.elapsed());
    }
    times.sort();
    percentile(&times, 0.5)
}

/// The engine's write throughput at the same concurrency: as many
/// creates of distinct keys as the allocations need writes (two each:
/// the handle and the block). Returns the wall time.
async fn write_round(engine: &str, a: &Args) -> Duration {
    let (ds, _guard) = fresh(engine).await;
    let tasks_n = a.nodes * a.workers;
    let per_task = (2 * a.addresses).div_ceil(tasks_n);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for t in 0..tasks_n {
        let ds = ds.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_task {
                ds.create(
                    &format!("/calico/bench/writes/{t}/{i}"),
                    br#"{"block":{"10.0.0.0/26":1},"deleted":false}"#,
                )
                .await
                .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    start.elapsed()
}

/// One throughput round: returns the wall time for all allocations.
async fn throughput_round(engine: &str, a: &Args) -> Duration {
    let (ds, _guard) = fresh(engine).await;
    setup(&ds, a.nodes).await;
    let per_worker = a.addresses.div_ceil(a.nodes * a.workers);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..a.nodes {
        // One IPAM per node, shared by its workers: requests of one node
        // take turns, as Calico's CNI plugin serialises them with a
        // host-wide lock.
        let ipam = Ipam::new(ds.clone());
        for w in 0..a.workers {
            let ipam = ipam.clone();
            let name = node(n);
            tasks.push(tokio::spawn(async move {
                let mut addrs = Vec::with_capacity(per_worker);
                for i in 0..per_worker {
                    let got = ipam
                        .auto_assign(&args_for(&name, format!("k8s-pod-network.{name}-{w}-{i}")))
                        .await
                        .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                    assert_eq!(got.v4.ips.len(), 1, "{name}: {:?}", got.v4.messages);
                    addrs.push(got.v4.ips[0].addr());
                }
                addrs
            }));
        }
    }
    let mut all = std::collections::BTreeSet::new();
    let mut count = 0;
    for t in tasks {
        for addr in t.await.unwrap() {
            all.insert(addr);
            count += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(all.len(), count, "an address was handed out twice");
    elapsed
}

async fn latency(engine: &str, samples: usize) -> (Vec<Duration>, Vec<Duration>) {
    let (ds, _guard) = fresh(engine).await;
    setup(&ds, 1).await;
    let ipam = Ipam::new(ds.clone());
    let name = node(0);
    // Warm up: the first call claims the node's block.
    ipam.auto_assign(&args_for(&name, "warm-up".into()))
        .await
        .unwrap();
    let mut assign = Vec::with_capacity(samples);
    for i in 0..samples {
        let start = Instant::now();
        let got = ipam
            .auto_assign(&args_for(&name, format!("lat-{i}")))
            .await
            .unwrap();
        assign.push(start.elapsed());
        assert_eq!(got.v4.ips.len(), 1);
    }
    let mut release = Vec::with_capacity(samples);
    for i in 0..samples {
        let start = Instant::now();
        assert_eq!(
            ipam.release_by_handle(&format!("lat-{i}")).await.unwrap(),
            1
        );
        release.push(start.elapsed());
    }
    assign.sort();
    release.sort();
    (assign, release)
}

fn main() {
    let a = parse_args();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "| engine | {} allocations, {} nodes x {} workers (median of {} rounds) | floor: {} raw writes at the same concurrency | auto_assign p50 | auto_assign p95 | one CAS write p50 | release_by_handle p50 | release_by_handle p95 |",
        a.addresses,
        a.nodes,
        a.workers,
        a.rounds,
        2 * a.addresses
    );
    println!("|---|---|---|---|---|---|---|---|");
    for engine in &a.engines {
        rt.block_on(async {
            let floor = {
                let (ds, _guard) = fresh(engine).await;
                cas_floor(&ds, a.samples).await
            };
            let mut rounds = Vec::new();
            let mut writes = Vec::new();
            for r in 0..a.rounds.max(1) {
                let raw = write_round(engine, &a).await;
                let wall = throughput_round(engine, &a).await;
                eprintln!(
                    "{engine}: round {r}: {} allocations in {:.2} s; {} raw writes in {:.2} s",
                    a.addresses,
                    wall.as_secs_f64(),
                    2 * a.addresses,
                    raw.as_secs_f64()
                );
                rounds.push(wall);
                writes.push(raw);
            }
            rounds.sort();
            writes.sort();
            let median = rounds[rounds.len() / 2];
            let raw = writes[writes.len() / 2];
            let (assign, release) = latency(engine, a.samples).await;
            println!(
                "| {engine} | {:.2} s = {:.0} allocations/s | {:.2} s = {:.0} writes/s, so at most {:.0} allocations/s | {} | {} | {} | {} | {} |",
                median.as_secs_f64(),
                a.addresses as f64 / median.as_secs_f64(),
                raw.as_secs_f64(),
                2.0 * a.addresses as f64 / raw.as_secs_f64(),
                a.addresses as f64 / raw.as_secs_f64(),
                ms(percentile(&assign, 0.5)),
                ms(percentile(&assign, 0.95)),
                ms(floor),
                ms(percentile(&release, 0.5)),
                ms(percentile(&release, 0.95)),
            );
        });
    }
}
