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
    WatchStream, display_chain,
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

/// Times `a(i)` and `b(i)` alternately, `n` times each, swapping which goes
/// first on every round so that load on the machine hits both alike.
async fn interleaved<FA, FutA, FB, FutB>(n: usize, mut a: FA, mut b: FB) -> (Stats, Stats)
where
    FA: FnMut(usize) -> FutA,
    FutA: std::future::Future<Output = ()>,
    FB: FnMut(usize) -> FutB,
    FutB: std::future::Future<Output = ()>,
{
    let (mut sa, mut sb) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for i in 0..n {
        if i % 2 == 0 {
            let t = Instant::now();
            a(i).await;
            sa.push(t.elapsed());
            let t = Instant::now();
            b(i).await;
            sb.push(t.elapsed());
        } else {
            let t = Instant::now();
            b(i).await;
            sb.push(t.elapsed());
            let t = Instant::now();
            a(i).await;
            sa.push(t.elapsed());
        }
    }
    (stats(sa), stats(sb))
}

fn must<T>(r: Result<T, calico_datastore::Error>) -> T {
    r.unwrap_or_else(|e| panic!("{}", display_chain(&e)))
}

/// Fills the store with `n` keys, `parallel` writes in flight; returns the
/// mod revision of each key.
async fn populate<B: Backend + Clone + 'static>(
    backend: &B,
    n: usize,
    parallel: usize,
) -> (Duration, Vec<i64>) {
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
    let elapsed = start.elapsed();
    let listing = must(backend.list(PREFIX).await);
    assert_eq!(listing.kvs.len(), n, "store not filled");
    (
        elapsed,
        listing.kvs.iter().map(|kv| kv.mod_revision).collect(),
    )
}

/// Put-to-event latency of one write, seen by `stream`.
async fn watch_once<B: Backend>(backend: &B, stream: &mut WatchStream, key: &str, v: &[u8]) {
    must(backend.put(key, v).await);
    match tokio::time::timeout(Duration::from_secs(10), stream.recv()).await {
        Ok(Some(Ok(Event::Put { kv, .. }))) if kv.key == key => {}
        other => panic!("watch delivered {other:?}"),
    }
}

struct Results {
    rows: Vec<(String, Stats, Stats)>,
}

/// Every in-process measurement, embedded and etcd interleaved.
async fn measure(
    embedded: &EmbeddedBackend,
    etcd: &EtcdBackend,
    n: usize,
    samples: usize,
    e_revs: &[i64],
    x_revs: &[i64],
) -> Results {
    let mut rows = Vec::new();
    let (e, x) = interleaved(
        samples,
        |i| async move {
            must(embedded.create(&key(n + i), &value(n + i)).await);
        },
        |i| async move {
            must(etcd.create(&key(n + i), &value(n + i)).await);
        },
    )
    .await;
    rows.push(("create".to_owned(), e, x));

    // Spread reads and writes over the whole key space.
    let stride = (n / samples).max(1);
    let (e, x) = interleaved(
        samples,
        |i| async move {
            assert!(must(embedded.get(&key((i * stride) % n)).await).is_some());
        },
        |i| async move {
            assert!(must(etcd.get(&key((i * stride) % n)).await).is_some());
        },
    )
    .await;
    rows.push(("get".to_owned(), e, x));

    let (e, x) = interleaved(
        samples,
        |i| {
            let idx = (i * stride) % n;
            async move {
                must(
                    embedded
                        .update(&key(idx), &value(idx + 1), e_revs[idx])
                        .await,
                );
            }
        },
        |i| {
            let idx = (i * stride) % n;
            async move {
                must(etcd.update(&key(idx), &value(idx + 1), x_revs[idx]).await);
            }
        },
    )
    .await;
    rows.push(("update (compare-and-swap)".to_owned(), e, x));

    let list_samples = if n >= 100_000 { 5 } else { 15 };
    let (e, x) = interleaved(
        list_samples,
        |_| async move {
            assert!(must(embedded.list(PREFIX).await).kvs.len() >= n);
        },
        |_| async move {
            assert!(must(etcd.list(PREFIX).await).kvs.len() >= n);
        },
    )
    .await;
    rows.push((format!("list {n} keys"), e, x));

    let watch_prefix = "/calico/resources/v3/projectcalico.org/watchbench/";
    let mut e_stream = must(
        embedded
            .watch(watch_prefix, must(embedded.revision().await))
            .await,
    );
    let mut x_stream = must(etcd.watch(watch_prefix, must(etcd.revision().await)).await);
    let (mut se, mut sx) = (Vec::new(), Vec::new());
    for i in 0..samples {
        let k = format!("{watch_prefix}k{}", i % 16);
        for which in [i % 2, 1 - i % 2] {
            let t = Instant::now();
            if which == 0 {
                watch_once(embedded, &mut e_stream, &k, &value(i)).await;
                se.push(t.elapsed());
            } else {
                watch_once(etcd, &mut x_stream, &k, &value(i)).await;
                sx.push(t.elapsed());
            }
        }
    }
    rows.push((
        "watch latency (put -> event)".to_owned(),
        stats(se),
        stats(sx),
    ));
    Results { rows }
}

/// Runs the commands round-robin (rotating which goes first), `n` rounds;
/// wall time per invocation for each.
fn time_processes(n: usize, commands: &mut [&mut dyn FnMut(usize) -> Command]) -> Vec<Stats> {
    let k = commands.len();
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(n); k];
    for i in 0..n {
        for j in 0..k {
            let which = (i + j) % k;
            let mut c = (commands[which])(i);
            c.stdout(Stdio::null()).stderr(Stdio::piped());
            let start = Instant::now();
            let out = c.output().expect("run command");
            samples[which].push(start.elapsed());
            assert!(
                out.status.success(),
                "{c:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    samples.into_iter().map(stats).collect()
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

        let (e_fill, e_revs) = populate(&embedded, n, 1).await;
        let (x_fill, x_revs) = populate(&etcd_backend, n, 32).await;
        let results = measure(&embedded, &etcd_backend, n, args.samples, &e_revs, &x_revs).await;

        println!();
        println!("### {n} keys (values ~{} bytes)", value(n).len());
        println!();
        println!(
            "Filled in: embedded {:.1} s (one writer, one transaction per key), etcd {:.1} s (32 writes in flight).",
            e_fill.as_secs_f64(),
            x_fill.as_secs_f64()
        );
        println!();
        println!("In-process client, one operation at a time, engines interleaved (ms):");
        println!();
        println!(
            "| {:<34} | {:>9} | {:>9} | {:>9} | {:>9} | {:>8} |",
            "operation", "embedded", "emb p99", "etcd", "etcd p99", "etcd/emb"
        );
        println!(
            "|{:-<36}|{:->11}|{:->11}|{:->11}|{:->11}|{:->10}|",
            "", "", "", "", "", ""
        );
        for (name, e, x) in &results.rows {
            row(name, *e, *x);
        }

        // One process per operation, all kinds interleaved.
        let cli = (args.samples / 3).max(20);
        let spec_embedded = format!("embedded:{}", db.display());
        let spec_etcd = format!("etcdv3:{}", etcd.endpoint());
        let mut etcdctl_put = |i: usize| {
            let mut c = etcd.etcdctl();
            c.arg("put")
                .arg(key(4 * n + i))
                .arg(String::from_utf8(value(i)).unwrap());
            c
        };
        let mut ours_put_embedded =
            |i: usize| oneshot(&exe, &spec_embedded, "put", &key(3 * n + i));
        let mut ours_put_etcd = |i: usize| oneshot(&exe, &spec_etcd, "put", &key(3 * n + i));
        let mut etcdctl_get = |i: usize| {
            let mut c = etcd.etcdctl();
            c.arg("get").arg(key(i % n));
            c
        };
        let mut ours_get_embedded = |i: usize| oneshot(&exe, &spec_embedded, "get", &key(i % n));
        let mut ours_get_etcd = |i: usize| oneshot(&exe, &spec_etcd, "get", &key(i % n));
        let puts = time_processes(
            cli,
            &mut [&mut etcdctl_put, &mut ours_put_embedded, &mut ours_put_etcd],
        );
        let gets = time_processes(
            cli,
            &mut [&mut etcdctl_get, &mut ours_get_embedded, &mut ours_get_etcd],
        );
        let mut etcdctl_list = |_| {
            let mut c = etcd.etcdctl();
            c.args(["get", "--prefix", PREFIX]);
            c
        };
        let etcdctl_list = time_processes(5, &mut [&mut etcdctl_list])[0];
        let etcdctl_txn = etcdctl_batched_put(&etcd, 10, 100, 5 * n);

        println!();
        println!("One process per operation, interleaved (ms; ratio to etcdctl on the same etcd):");
        println!();
        println!(
            "| {:<52} | {:>9} | {:>9} | {:>9} |",
            "command", "median", "p99", "ratio"
        );
        println!("|{:-<54}|{:->11}|{:->11}|{:->11}|", "", "", "", "");
        cli_row("etcdctl put (ETCDCTL_API=3)", puts[0], None);
        cli_row(
            "calico-rs client, embedded engine: put",
            puts[1],
            Some(puts[0]),
        );
        cli_row("calico-rs client, etcd engine: put", puts[2], Some(puts[0]));
        cli_row("etcdctl get", gets[0], None);
        cli_row(
            "calico-rs client, embedded engine: get",
            gets[1],
            Some(gets[0]),
        );
        cli_row("calico-rs client, etcd engine: get", gets[2], Some(gets[0]));
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
        cli_row(
            &format!("calico-rs etcd engine, list {n} keys in-process"),
            results.rows[3].2,
            Some(etcdctl_list),
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
