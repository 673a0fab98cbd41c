//! Side-by-side latency of the two engines and of `etcdctl`, against the
//! same etcd in the same run.
//!
//! For each store size (default 10k and 100k keys) it starts a fresh etcd
//! and a fresh embedded file, fills both with the same keys, then measures
//! one operation at a time (so the figures are latencies, not throughput):
//! create, get, update (compare-and-swap), list of the whole prefix, and
//! watch latency (write to event delivered). For CLI-style use it also
//! measures one process per operation: `etcdctl put/get` against the etcd,
//! and this binary re-invoked as a one-shot client against each engine.
//!
//! Run: `cargo bench -p calico-datastore --bench datastore -- [--sizes 10000,100000] [--samples 300]`

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use calico_datastore::config::EtcdConfig;
use calico_datastore::{
    AnyBackend, Backend, DatastoreConfig, EmbeddedBackend, EmbeddedConfig, EtcdBackend, Event,
    display_chain,
};
use calico_testutil::Etcd;

const PREFIX: &str = "/calico/resources/v3/projectcalico.org/workloadendpoints/bench/";

/// A value the size of a typical workload endpoint resource.
fn value(i: usize) -> Vec<u8> {
    format!(
        r#"{{"kind":"WorkloadEndpoint","apiVersion":"projectcalico.org/v3","metadata":{{"name":"node--k8s-pod{i}-eth0","namespace":"bench","labels":{{"app":"bench","projectcalico.org/namespace":"bench"}}}},"spec":{{"node":"node","pod":"pod{i}","endpoint":"eth0","interfaceName":"cali{i:011x}","ipNetworks":["10.{}.{}.{}/32"],"profiles":["kns.bench"]}}}}"#,
        (i >> 16) & 255,
        (i >> 8) & 255,
        i & 255
    )
    .into_bytes()
}

fn key(i: usize) -> String {
    format!("{PREFIX}pod{i:08}")
}

struct Args {
    sizes: Vec<usize>,
    samples: usize,
}

fn parse_args() -> Args {
    let mut args = Args {
        sizes: vec![10_000, 100_000],
        samples: 300,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--sizes" => {
                args.sizes = it
                    .next()
                    .expect("--sizes needs a value")
                    .split(',')
                    .map(|s| s.trim().parse().expect("--sizes: numbers"))
                    .collect();
            }
            "--samples" => {
                args.samples = it
                    .next()
                    .expect("--samples needs a value")
                    .parse()
                    .expect("number")
            }
            // cargo bench passes --bench; ignore it and any filter.
            _ => {}
        }
    }
    args
}

/// Milliseconds: median and 99th percentile of the samples.
#[derive(Clone, Copy)]
struct Stats {
    median: f64,
    p99: f64,
}

fn stats(mut samples: Vec<Duration>) -> Stats {
    assert!(!samples.is_empty());
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1000.0;
    Stats {
        median: at(0.5),
        p99: at(0.99),
    }
}

async fn time<F, Fut>(n: usize, mut f: F) -> Stats
where
    F: FnMut(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(i).await;
        samples.push(start.elapsed());
    }
    stats(samples)
}

fn must<T>(r: Result<T, calico_datastore::Error>) -> T {
    r.unwrap_or_else(|e| panic!("{}", display_chain(&e)))
}

/// Fills the store with `n` keys, `parallel` writes in flight.
async fn populate<B: Backend + Clone + 'static>(
    backend: &B,
    n: usize,
    parallel: usize,
) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for worker in 0..parallel {
        let b = backend.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = worker;
            while i < n {
                must(b.create(&key(i), &value(i)).await);
                i += parallel;
            }
        }));
    }
    for t in tasks {
        t.await.expect("populate task");
    }
    start.elapsed()
}

struct EngineResults {
    create: Stats,
    get: Stats,
    update: Stats,
    list: Stats,
    watch: Stats,
    populate: Duration,
}

async fn measure<B: Backend + Clone + 'static>(
    backend: &B,
    n: usize,
    samples: usize,
    parallel: usize,
) -> EngineResults {
    let populate = populate(backend, n, parallel).await;
    let listing = must(backend.list(PREFIX).await);
    assert_eq!(listing.kvs.len(), n, "store not filled");
    let revisions: Vec<i64> = listing.kvs.iter().map(|kv| kv.mod_revision).collect();

    let create = time(samples, |i| async move {
        must(backend.create(&key(n + i), &value(n + i)).await);
    })
    .await;
    // Spread reads and writes over the whole key space.
    let stride = (n / samples).max(1);
    let get = time(samples, |i| async move {
        let kv = must(backend.get(&key((i * stride) % n)).await);
        assert!(kv.is_some());
    })
    .await;
    let update = time(samples, |i| {
        let idx = (i * stride) % n;
        let expected = revisions[idx];
        async move {
            must(backend.update(&key(idx), &value(idx + 1), expected).await);
        }
    })
    .await;
    let list_samples = if n >= 100_000 { 5 } else { 15 };
    let list = time(list_samples, |_| async move {
        let listing = must(backend.list(PREFIX).await);
        assert!(listing.kvs.len() >= n);
    })
    .await;

    let watch_prefix = "/calico/resources/v3/projectcalico.org/watchbench/";
    let start = must(backend.revision().await);
    let mut stream = must(backend.watch(watch_prefix, start).await);
    let mut watch_samples = Vec::with_capacity(samples);
    for i in 0..samples {
        let k = format!("{watch_prefix}k{}", i % 16);
        let begin = Instant::now();
        must(backend.put(&k, &value(i)).await);
        match tokio::time::timeout(Duration::from_secs(10), stream.recv()).await {
            Ok(Some(Ok(Event::Put { kv, .. }))) if kv.key == k => {}
            other => panic!("watch delivered {other:?}"),
        }
        watch_samples.push(begin.elapsed());
    }
    EngineResults {
        create,
        get,
        update,
        list,
        watch: stats(watch_samples),
        populate,
    }
}

/// Runs `command` `n` times, returning the wall time per invocation.
fn time_processes(n: usize, mut command: impl FnMut(usize) -> Command) -> Stats {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = command(i);
        c.stdout(Stdio::null()).stderr(Stdio::piped());
        let start = Instant::now();
        let out = c.output().expect("run command");
        samples.push(start.elapsed());
        assert!(
            out.status.success(),
            "{c:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stats(samples)
}

/// `etcdctl txn` with `batch` puts read from stdin; time per key.
fn etcdctl_batched_put(etcd: &Etcd, batches: usize, batch: usize, base: usize) -> Stats {
    let mut samples = Vec::new();
    for b in 0..batches {
        // Empty compare list, the puts, empty failure list.
        let mut script = String::from("\n");
        let mut success = String::new();
        for j in 0..batch {
            let i = base + b * batch + j;
            let v = String::from_utf8(value(i)).unwrap().replace('\'', "");
            success.push_str(&format!("put {} '{}'\n", key(i), v));
        }
        script.push_str(&success);
        script.push_str("\n\n");
        let mut c = etcd.etcdctl();
        c.args(["txn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let start = Instant::now();
        let mut child = c.spawn().expect("etcdctl txn");
        {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(script.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        samples.push(start.elapsed() / batch as u32);
        assert!(
            out.status.success(),
            "etcdctl txn: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    stats(samples)
}

fn oneshot(exe: &Path, spec: &str, op: &str, key: &str) -> Command {
    let mut c = Command::new(exe);
    c.args(["--oneshot", spec, op, key]);
    c
}

/// `--oneshot SPEC get|put KEY`: one client process doing one operation,
/// as calicoctl or a CNI plugin invocation would.
async fn run_oneshot(spec: &str, op: &str, key: &str) {
    let config = match spec.split_once(':') {
        Some(("embedded", path)) => DatastoreConfig::Embedded(EmbeddedConfig { path: path.into() }),
        Some(("etcdv3", endpoint)) => DatastoreConfig::Etcd(EtcdConfig::new([endpoint])),
        _ => panic!("bad spec {spec}"),
    };
    let backend: AnyBackend = must(calico_datastore::connect(&config).await);
    match op {
        "get" => assert!(must(backend.get(key).await).is_some()),
        "put" => {
            must(backend.put(key, &value(7)).await);
        }
        _ => panic!("bad op {op}"),
    }
}

fn row(name: &str, embedded: Stats, etcd: Stats) {
    println!(
        "| {name:<34} | {:>9.3} | {:>9.3} | {:>9.3} | {:>9.3} | {:>7.1}x |",
        embedded.median,
        embedded.p99,
        etcd.median,
        etcd.p99,
        etcd.median / embedded.median
    );
}

fn cli_row(name: &str, s: Stats, reference: Option<Stats>) {
    let ratio = reference.map_or(String::from("-"), |r| {
        format!("{:.2}x", s.median / r.median)
    });
    println!(
        "| {name:<52} | {:>9.3} | {:>9.3} | {ratio:>9} |",
        s.median, s.p99
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("--oneshot") {
        run_oneshot(&argv[2], &argv[3], &argv[4]).await;
        return;
    }
    let args = parse_args();
    let exe = std::env::current_exe().expect("own path");
    println!(
        "datastore benchmark: sizes {:?}, {} samples per operation",
        args.sizes, args.samples
    );
    println!("etcd: {}", version("etcd"));
    for &n in &args.sizes {
        let dir = tempfile::tempdir().expect("tempdir");
        let db: PathBuf = dir.path().join("calico.db");
        let embedded = must(EmbeddedBackend::open(&db).await);
        let etcd = tokio::task::spawn_blocking(Etcd::start).await.unwrap();
        let etcd_backend = must(EtcdBackend::connect(&EtcdConfig::new([etcd.endpoint()])).await);

        let e = measure(&embedded, n, args.samples, 1).await;
        let x = measure(&etcd_backend, n, args.samples, 32).await;

        println!();
        println!("### {n} keys (values ~{} bytes)", value(n).len());
        println!();
        println!(
            "filled in: embedded {:.1} s (1 writer), etcd {:.1} s (32 writers in flight)",
            e.populate.as_secs_f64(),
            x.populate.as_secs_f64()
        );
        println!();
        println!("In-process client, one operation at a time (ms):");
        println!();
        println!(
            "| {:<34} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} |",
            "operation", "embedded", "emb p99", "etcd", "etcd p99", "etcd/emb"
        );
        println!(
            "|{:-<36}|{:->11}|{:->11}|{:->11}|{:->11}|{:->10}|",
            "", "", "", "", "", ""
        );
        row("create", e.create, x.create);
        row("get", e.get, x.get);
        row("update (compare-and-swap)", e.update, x.update);
        row(&format!("list {n} keys"), e.list, x.list);
        row("watch latency (put -> event)", e.watch, x.watch);

        // One process per operation.
        let cli = (args.samples / 3).max(20);
        let spec_embedded = format!("embedded:{}", db.display());
        let spec_etcd = format!("etcdv3:{}", etcd.endpoint());
        let ours_put_embedded = time_processes(cli, |i| {
            oneshot(&exe, &spec_embedded, "put", &key(3 * n + i))
        });
        let ours_get_embedded =
            time_processes(cli, |i| oneshot(&exe, &spec_embedded, "get", &key(i % n)));
        let ours_put_etcd =
            time_processes(cli, |i| oneshot(&exe, &spec_etcd, "put", &key(3 * n + i)));
        let ours_get_etcd = time_processes(cli, |i| oneshot(&exe, &spec_etcd, "get", &key(i % n)));
        let etcdctl_put = time_processes(cli, |i| {
            let mut c = etcd.etcdctl();
            c.arg("put")
                .arg(key(4 * n + i))
                .arg(String::from_utf8(value(i)).unwrap());
            c
        });
        let etcdctl_get = time_processes(cli, |i| {
            let mut c = etcd.etcdctl();
            c.arg("get").arg(key(i % n));
            c
        });
        let etcdctl_list = time_processes(5, |_| {
            let mut c = etcd.etcdctl();
            c.args(["get", "--prefix", PREFIX]);
            c
        });
        let etcdctl_txn = etcdctl_batched_put(&etcd, 10, 100, 5 * n);

        println!();
        println!("One process per operation (ms; ratio to etcdctl on the same etcd):");
        println!();
        println!(
            "| {:<52} | {:>9} | {:>9} | {:>9} |",
            "command", "median", "p99", "ratio"
        );
        println!("|{:-<54}|{:->11}|{:->11}|{:->11}|", "", "", "", "");
        cli_row("etcdctl put (ETCDCTL_API=3)", etcdctl_put, None);
        cli_row(
            "calico-rs client, embedded engine: put",
            ours_put_embedded,
            Some(etcdctl_put),
        );
        cli_row(
            "calico-rs client, etcd engine: put",
            ours_put_etcd,
            Some(etcdctl_put),
        );
        cli_row("etcdctl get", etcdctl_get, None);
        cli_row(
            "calico-rs client, embedded engine: get",
            ours_get_embedded,
            Some(etcdctl_get),
        );
        cli_row(
            "calico-rs client, etcd engine: get",
            ours_get_etcd,
            Some(etcdctl_get),
        );
        cli_row(
            "etcdctl txn, 100 puts per invocation (per key)",
            etcdctl_txn,
            None,
        );
        cli_row(
            &format!("etcdctl get --prefix ({n} keys)"),
            etcdctl_list,
            None,
        );
        drop(etcd_backend);
        drop(etcd);
    }
}

fn version(binary: &str) -> String {
    Command::new(binary)
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned()
        })
        .unwrap_or_else(|e| format!("not runnable: {e}"))
}
