//! Policy engine benchmarks.
//!
//! - `label_index/*`: the bare label index with 100k labelled items (in
//!   1,000 namespaces) and 10k selectors: build, then one item relabel, one
//!   selector change, one namespace (parent) relabel.
//! - `engine_node/*`: the engine as one node's agent sees a 100k-endpoint
//!   cluster (1,000 endpoints local) with 5k NetworkPolicies (10k distinct
//!   selectors): per-update latency for the common updates.
//! - `engine_full/resolve_10k_endpoints_1k_policies`: every endpoint local,
//!   everything resolved from scratch.
//!
//! Memory per endpoint is printed before the benchmarks run, from the
//! resident set size before and after loading 100k endpoints.
//!
//! Run: `cargo bench -p calico-policy --bench engine`

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use calico_model::{
    Action, EntityRule, NetworkPolicy, ObjectMeta, PolicyType, Port, Profile, Protocol, Rule,
    WorkloadEndpoint,
};
use calico_policy::index::{LabelIndex, MatchEvent};
use calico_policy::{EngineConfig, PolicyEngine, Update};
use calico_selector::Selector;
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};

const NAMESPACES: usize = 1_000;
const APPS: usize = 2_000;
const NODES: usize = 100;

/// Deterministic pseudo-random numbers (xorshift64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn pod_labels(i: usize) -> BTreeMap<String, String> {
    let tiers = ["web", "db", "cache", "queue"];
    BTreeMap::from([
        ("app".to_string(), format!("app{}", i % APPS)),
        ("tier".to_string(), tiers[i % tiers.len()].to_string()),
        ("version".to_string(), format!("v{}", i % 3)),
        (
            "pod-template-hash".to_string(),
            format!("{:x}", i * 2654435761 % 1_000_000_007),
        ),
    ])
}

/// Pods are spread over nodes by a hash, so each node hosts a mix of apps
/// and namespaces.
fn node_of(i: usize) -> usize {
    ((i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as usize % NODES
}

fn pod(i: usize) -> WorkloadEndpoint {
    let ns = i % NAMESPACES;
    let node = node_of(i);
    let mut w = WorkloadEndpoint {
        metadata: ObjectMeta::namespaced(format!("ns{ns}"), format!("node{node}-k8s-pod{i}-eth0")),
        ..Default::default()
    };
    w.metadata.labels = pod_labels(i);
    w.spec.orchestrator = "k8s".into();
    w.spec.node = format!("node{node}");
    w.spec.pod = format!("pod{i}");
    w.spec.endpoint = "eth0".into();
    w.spec.interface_name = format!("cali{i:011x}");
    w.spec.ip_networks = vec![format!("10.{}.{}.{}/32", i >> 16, (i >> 8) & 255, i & 255)];
    w.spec.profiles = vec![format!("kns.ns{ns}"), format!("ksa.ns{ns}.default")];
    w.spec.service_account_name = "default".into();
    w
}

fn namespace(ns: usize, team: usize) -> Profile {
    let mut p = Profile {
        metadata: ObjectMeta::named(format!("kns.ns{ns}")),
        ..Default::default()
    };
    p.spec.ingress = vec![Rule::new(Action::Allow)];
    p.spec.egress = vec![Rule::new(Action::Allow)];
    p.spec.labels_to_apply = BTreeMap::from([
        ("pcns.projectcalico.org/name".to_string(), format!("ns{ns}")),
        ("pcns.team".to_string(), format!("team{team}")),
    ]);
    p
}

/// A Kubernetes-style policy: select one app in a namespace, allow another
/// app (sometimes from labelled namespaces) on a port.
fn policy(i: usize, rng: &mut Rng) -> NetworkPolicy {
    let ns = i % NAMESPACES;
    let mut p = NetworkPolicy {
        metadata: ObjectMeta::namespaced(format!("ns{ns}"), format!("policy{i}")),
        ..Default::default()
    };
    // Apps in this namespace are those with app index ≡ ns (mod 1000).
    let app = ns + NAMESPACES * rng.below(APPS / NAMESPACES);
    let peer = ns + NAMESPACES * rng.below(APPS / NAMESPACES);
    p.spec.order = Some(1000.0);
    p.spec.selector = format!("projectcalico.org/orchestrator == 'k8s' && app == 'app{app}'");
    p.spec.types = vec![PolicyType::Ingress];
    let mut source = EntityRule {
        selector: format!(
            "projectcalico.org/orchestrator == 'k8s' && app == 'app{peer}' && tier == 'web'"
        ),
        ..Default::default()
    };
    if i % 4 == 0 {
        source.namespace_selector = format!("team == 'team{}'", i % 20);
    }
    let mut r = Rule::new(Action::Allow);
    r.protocol = Some(Protocol::tcp());
    r.source = source;
    r.destination.ports = vec![Port::single(80), Port::Named("http".into())];
    p.spec.ingress = vec![r];
    p
}

fn index_selector(i: usize, rng: &mut Rng) -> Selector {
    let text = match i % 20 {
        0..=11 => format!(
            "projectcalico.org/orchestrator == 'k8s' && app == 'app{}' && projectcalico.org/namespace == 'ns{}'",
            rng.below(APPS),
            rng.below(NAMESPACES)
        ),
        12..=15 => format!(
            "app in {{'app{}', 'app{}'}} && tier == 'web'",
            rng.below(APPS),
            rng.below(APPS)
        ),
        16..=17 => format!("has(version) && pcns.team == 'team{}'", rng.below(20)),
        18 => format!(
            "projectcalico.org/namespace == 'ns{}'",
            rng.below(NAMESPACES)
        ),
        _ => format!("pcns.team == 'team{}' && tier != 'db'", rng.below(20)),
    };
    Selector::parse(&text).unwrap()
}

type Index = LabelIndex<u32, u32>;

fn build_index(
    items: &[(u32, BTreeMap<String, String>, [String; 1])],
    selectors: &[Selector],
) -> Index {
    let mut idx = Index::new();
    let mut events: Vec<MatchEvent<u32, u32>> = Vec::new();
    for ns in 0..NAMESPACES {
        idx.update_parent(
            &format!("kns.ns{ns}"),
            [
                ("pcns.projectcalico.org/name".to_string(), format!("ns{ns}")),
                ("pcns.team".to_string(), format!("team{}", ns % 20)),
            ],
            &mut events,
        );
    }
    for (i, s) in selectors.iter().enumerate() {
        idx.update_selector(i as u32, s.clone(), &mut events);
    }
    for (id, labels, parents) in items {
        idx.update_item(*id, labels, parents, &mut events);
        events.clear();
    }
    idx
}

fn index_items(n: usize) -> Vec<(u32, BTreeMap<String, String>, [String; 1])> {
    (0..n)
        .map(|i| {
            let mut l = pod_labels(i);
            l.insert("projectcalico.org/orchestrator".into(), "k8s".into());
            l.insert(
                "projectcalico.org/namespace".into(),
                format!("ns{}", i % NAMESPACES),
            );
            (i as u32, l, [format!("kns.ns{}", i % NAMESPACES)])
        })
        .collect()
}

fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn node_cluster_updates(pods: usize, policies: usize) -> (Vec<Update>, Vec<Update>) {
    let mut rng = Rng(0x5eed);
    let mut base: Vec<Update> = (0..NAMESPACES)
        .map(|ns| namespace(ns, ns % 20).into())
        .collect();
    base.extend((0..policies).map(|i| Update::from(policy(i, &mut rng))));
    let endpoints = (0..pods).map(|i| pod(i).into()).collect();
    (base, endpoints)
}

/// Memory per endpoint of a node engine: RSS growth while 100k endpoints
/// are loaded into an engine already holding 5k policies.
fn measure_engine_memory() {
    let (base, endpoints) = node_cluster_updates(100_000, 5_000);
    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some("node0".into()),
        ..Default::default()
    });
    let (_, errors) = engine.apply_all(base);
    assert!(errors.is_empty());
    let before = rss_kib().unwrap_or(0);
    let start = Instant::now();
    let (_, errors) = engine.apply_all(endpoints);
    let load = start.elapsed();
    assert!(errors.is_empty());
    let after = rss_kib().unwrap_or(0);
    let stats = engine.stats();
    println!(
        "memory: {} bytes per endpoint (RSS {before} KiB -> {after} KiB loading 100k endpoints into a node engine \
         with 5k policies; {} local; {} IP sets, {} members; load took {load:.2?})",
        (after.saturating_sub(before) * 1024) / 100_000,
        stats.local_endpoints,
        stats.ip_sets,
        stats.ip_set_members,
    );
}

/// Memory per item of the bare label index (100k items, 10k selectors).
fn measure_index_memory() {
    let items = index_items(100_000);
    let mut rng = Rng(7);
    let selectors: Vec<Selector> = (0..10_000).map(|i| index_selector(i, &mut rng)).collect();
    let before = rss_kib().unwrap_or(0);
    let idx = build_index(&items, &selectors);
    let after = rss_kib().unwrap_or(0);
    println!(
        "memory: {} bytes per item in the bare label index (100k items, 10k selectors, {} scan selectors, \
         {} matching pairs, each held from both sides)",
        (after.saturating_sub(before) * 1024) / 100_000,
        idx.scan_selector_count(),
        idx.match_count()
    );
}

/// Each measurement runs in a fresh process (this benchmark binary, asked
/// through an environment variable), so memory freed by one cannot hide
/// the growth of the next.
fn report_memory() {
    const VAR: &str = "CALICO_POLICY_BENCH_MEMORY";
    match std::env::var(VAR).as_deref() {
        Ok("engine") => {
            measure_engine_memory();
            std::process::exit(0);
        }
        Ok("index") => {
            measure_index_memory();
            std::process::exit(0);
        }
        _ => {}
    }
    let Ok(me) = std::env::current_exe() else {
        return;
    };
    for which in ["engine", "index"] {
        match std::process::Command::new(&me)
            .env(VAR, which)
            .arg("--bench")
            .output()
        {
            Ok(out) => print!("{}", String::from_utf8_lossy(&out.stdout)),
            Err(e) => println!("memory: could not run the {which} measurement: {e}"),
        }
    }
}

fn bench_label_index(c: &mut Criterion) {
    let items = index_items(100_000);
    let mut rng = Rng(7);
    let selectors: Vec<Selector> = (0..10_000).map(|i| index_selector(i, &mut rng)).collect();

    let mut g = c.benchmark_group("label_index");
    g.sample_size(10);
    g.bench_function("build_100k_items_10k_selectors", |b| {
        b.iter(|| black_box(build_index(&items, &selectors)))
    });

    let mut idx = build_index(&items, &selectors);
    let mut events = Vec::new();
    g.sample_size(100);
    let mut n = 0usize;
    g.bench_function("item_relabel", |b| {
        b.iter(|| {
            n += 1;
            let i = (n * 7919) % items.len();
            let (id, labels, parents) = &items[i];
            let mut l = labels.clone();
            l.insert("app".into(), format!("app{}", n % APPS));
            idx.update_item(*id, &l, parents, &mut events);
            events.clear();
        })
    });
    let mut n = 0usize;
    g.bench_function("selector_change", |b| {
        b.iter(|| {
            n += 1;
            let s = index_selector(n % 12, &mut rng);
            idx.update_selector((n % selectors.len()) as u32, s, &mut events);
            events.clear();
        })
    });
    let mut n = 0usize;
    g.bench_function("namespace_relabel_100_items", |b| {
        b.iter(|| {
            n += 1;
            let ns = n % NAMESPACES;
            idx.update_parent(
                &format!("kns.ns{ns}"),
                [
                    ("pcns.projectcalico.org/name".to_string(), format!("ns{ns}")),
                    (
                        "pcns.team".to_string(),
                        format!("team{}", (ns + n / NAMESPACES + 1) % 20),
                    ),
                ],
                &mut events,
            );
            events.clear();
        })
    });
    g.finish();
}

fn bench_engine_node(c: &mut Criterion) {
    let (base, endpoints) = node_cluster_updates(100_000, 5_000);
    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some("node0".into()),
        ..Default::default()
    });
    engine.apply_all(base);
    engine.apply_all(endpoints);

    let local: Vec<usize> = (0..100_000).filter(|&i| node_of(i) == 0).collect();
    let remote: Vec<usize> = (0..100_000).filter(|&i| node_of(i) != 0).collect();
    let mut g = c.benchmark_group("engine_node");
    let mut n = 0usize;
    g.bench_function("remote_endpoint_relabel", |b| {
        b.iter(|| {
            n += 1;
            let i = remote[(n * 7919) % remote.len()];
            let mut w = pod(i);
            w.metadata
                .labels
                .insert("app".into(), format!("app{}", n % APPS));
            black_box(engine.apply(w.into()).unwrap());
        })
    });
    let mut n = 0usize;
    g.bench_function("local_endpoint_relabel", |b| {
        b.iter(|| {
            n += 1;
            let i = local[(n * 7919) % local.len()];
            let mut w = pod(i);
            w.metadata
                .labels
                .insert("app".into(), format!("app{}", (n * 31) % APPS));
            black_box(engine.apply(w.into()).unwrap());
        })
    });
    let mut rng = Rng(99);
    let mut n = 0usize;
    g.bench_function("policy_rule_change", |b| {
        b.iter(|| {
            n += 1;
            let mut p = policy(n % 5_000, &mut Rng(0x5eed + n as u64));
            p.spec.ingress[0].destination.ports = vec![Port::single(1000 + (n % 1000) as u16)];
            black_box(engine.apply(p.into()).unwrap());
        })
    });
    let mut n = 0usize;
    g.bench_function("policy_selector_change", |b| {
        b.iter(|| {
            n += 1;
            black_box(engine.apply(policy(n % 5_000, &mut rng).into()).unwrap());
        })
    });
    let mut n = 0usize;
    g.bench_function("namespace_relabel_100_endpoints", |b| {
        b.iter(|| {
            n += 1;
            // A new team for the namespace on every visit.
            let ns = n % NAMESPACES;
            let team = (ns + n / NAMESPACES + 1) % 20;
            black_box(engine.apply(namespace(ns, team).into()).unwrap());
        })
    });
    g.finish();
}

fn bench_engine_full(c: &mut Criterion) {
    let (base, endpoints) = node_cluster_updates(10_000, 1_000);
    let all: Vec<Update> = base.into_iter().chain(endpoints).collect();
    let mut g = c.benchmark_group("engine_full");
    g.sample_size(10);
    g.bench_function("resolve_10k_endpoints_1k_policies", |b| {
        b.iter_batched(
            || all.clone(),
            |updates| {
                let mut engine = PolicyEngine::new(EngineConfig::default());
                let (changes, errors) = engine.apply_all(updates);
                assert!(errors.is_empty());
                assert_eq!(changes.endpoints_updated.len(), 10_000);
                black_box(engine)
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

/// Runs unless a benchmark filter that excludes "memory" is given.
fn memory(_: &mut Criterion) {
    let mut filters = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    if filters.all(|f| "memory".contains(f.as_str())) {
        report_memory();
    }
}

criterion_group!(
    benches,
    memory,
    bench_label_index,
    bench_engine_node,
    bench_engine_full
);
criterion_main!(benches);
