//! The agent end to end, at scale (root): the time from a datastore write
//! to the rule being enforced in the kernel, with 1k and 10k local
//! endpoints and 1k policies, and the agent's resident memory.
//!
//! ```text
//! cargo bench -p calico-node --bench node -- [ITERATIONS] [SCALES]
//! cargo bench -p calico-node --bench node -- 100 1000,10000
//! cargo bench -p calico-node --bench node -- 50 10000 --distinct
//! ```
//!
//! With `--distinct`, each synthetic endpoint also names a (rule-less)
//! profile of its own, as a per-service-account profile would be: no two
//! endpoints then share a program, so none share their chains.
//!
//! Per scale: a real etcd; a node namespace with two real pods `a` and
//! `b` (plumbed as the CNI plugin plumbs them) and N-2 further local
//! WorkloadEndpoints whose interfaces do not exist (their chains and
//! dispatch entries are generated all the same); 1,000 NetworkPolicies,
//! each selecting one of 100 endpoint groups and allowing one of 10 source
//! roles on its own port; a policy denying ingress to `b`, and the
//! measured policy `toggle` in front of it. The `calico-node` binary
//! (release build) runs against the node namespace.
//!
//! One iteration: `toggle`'s rule is written as Allow (one etcd put, the
//! stored form calico-client writes), then a TCP probe from `a` to `b`
//! retries every 2 ms until the handshake completes: that is the write-to-
//! enforced latency. Then it is written back to Deny and the probe waits
//! for the handshake to fail (this direction includes one 2 ms probe
//! timeout, and probes that succeed are 1 ms apart so that they do not
//! keep a core busy). The agent's own metrics give the split: policy engine and
//! generation (`felix_calc_graph_update_time_seconds`) and the nftables
//! transaction (`felix_int_dataplane_apply_time_seconds`). After each
//! iteration, two floors replace the one rule of a chain of the bench's
//! own in the agent's table: the `nft` program started through `nsenter`,
//! and nft's library in this process (what the agent uses).

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use calico_client::Client;
use calico_datastore::{AnyBackend, Backend};
use calico_model::numorstring::{Port, Protocol};
use calico_model::resource::AnyResource;
use calico_model::{
    Action, EntityRule, NetworkPolicy, ObjectMeta, PolicyType, Rule, WorkloadEndpoint,
};
use support::{AgentProcess, EchoServer, Node, Store, http_get, namespace_profile, runtime};

const NODE: &str = "node1";
const NS: &str = "bench";
const POLICIES: usize = 1000;
const GROUPS: usize = 100;
const PROBE_TIMEOUT: Duration = Duration::from_millis(2);

/// The profile only synthetic endpoint `i` names with `--distinct`, as
/// Calico's per-service-account profiles are named.
fn own_profile(i: usize) -> String {
    format!("ksa.{NS}.s{i}")
}

fn synthetic_endpoint(i: usize, distinct: bool) -> WorkloadEndpoint {
    let mut wep = WorkloadEndpoint {
        metadata: ObjectMeta::namespaced(NS, format!("{NODE}-k8s-s{i}-eth0")),
        ..WorkloadEndpoint::default()
    };
    let labels = &mut wep.metadata.labels;
    labels.insert("projectcalico.org/namespace".into(), NS.into());
    labels.insert("projectcalico.org/orchestrator".into(), "k8s".into());
    labels.insert("group".into(), format!("g{}", i % GROUPS));
    labels.insert("role".into(), format!("r{}", i % 10));
    wep.spec.orchestrator = "k8s".into();
    wep.spec.node = NODE.into();
    wep.spec.pod = format!("s{i}");
    wep.spec.endpoint = "eth0".into();
    wep.spec.ip_networks = vec![format!("10.70.{}.{}/32", i / 256, i % 256)];
    wep.spec.profiles = vec![format!("kns.{NS}")];
    if distinct {
        wep.spec.profiles.push(own_profile(i));
    }
    wep.spec.interface_name = format!("cali{i:011x}");
    wep
}

fn policy(i: usize) -> NetworkPolicy {
    let mut p = NetworkPolicy {
        metadata: ObjectMeta::namespaced(NS, format!("p{i}")),
        ..NetworkPolicy::default()
    };
    p.spec.selector = format!("group == 'g{}'", i % GROUPS);
    p.spec.types = vec![PolicyType::Ingress];
    p.spec.order = Some(100.0 + i as f64);
    let mut rule = Rule::new(Action::Allow);
    rule.protocol = Some(Protocol::tcp());
    rule.source = EntityRule {
        selector: format!("role == 'r{}'", (i / GROUPS) % 10),
        ..EntityRule::default()
    };
    rule.destination.ports = vec![Port::single(1000 + i as u16)];
    p.spec.ingress = vec![rule];
    p
}

fn toggle(action: Action) -> NetworkPolicy {
    let mut p = NetworkPolicy {
        metadata: ObjectMeta::namespaced(NS, "toggle"),
        ..NetworkPolicy::default()
    };
    p.spec.selector = "app == 'b'".into();
    p.spec.types = vec![PolicyType::Ingress];
    p.spec.order = Some(1.0);
    let mut rule = Rule::new(action);
    rule.source.selector = "app == 'a'".into();
    p.spec.ingress = vec![rule];
    p
}

fn base_deny() -> NetworkPolicy {
    let mut p = NetworkPolicy {
        metadata: ObjectMeta::namespaced(NS, "deny-b"),
        ..NetworkPolicy::default()
    };
    p.spec.selector = "app == 'b'".into();
    p.spec.types = vec![PolicyType::Ingress];
    p.spec.order = Some(2.0);
    p.spec.ingress = vec![Rule::new(Action::Deny)];
    p
}

/// Writes every resource, 64 at a time.
fn create_all(rt: &tokio::runtime::Runtime, client: &Client<AnyBackend>, all: Vec<AnyResource>) {
    for chunk in all.chunks(64) {
        let writes = chunk.iter().map(|r| client.create(r.clone()));
        for result in rt.block_on(futures::future::join_all(writes)) {
            result.expect("creating a benchmark resource");
        }
    }
}

/// The key and the exact bytes calico-client stores for a resource.
fn stored(resource: AnyResource) -> (String, String) {
    let resource = calico_client::validate(resource).expect("a valid resource");
    (
        calico_model::keys::key_of(&resource),
        calico_model::keys::to_etcd_value(&resource),
    )
}

fn probe(pod: &support::Pod, to: SocketAddr) -> bool {
    pod.ns
        .netns()
        .run(|| TcpStream::connect_timeout(&to, PROBE_TIMEOUT).is_ok())
        .expect("entering the pod namespace")
}

/// `nft -f` of `script` inside the node's namespace, as the agent runs
/// it; how long it took.
fn nft(netns: &str, script: &str) -> Duration {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let t = Instant::now();
    let mut child = Command::new("nsenter")
        .arg(format!("--net={netns}"))
        .args(["nft", "-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .expect("running nft");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(script.as_bytes())
        .expect("writing the script");
    assert!(
        child.wait().expect("nft").success(),
        "nft -f failed: {script}"
    );
    t.elapsed()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(f64::NAN)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

struct Result {
    endpoints: usize,
    sync: Duration,
    rss_sync_mib: f64,
    rss_end_mib: f64,
    allow: Vec<Duration>,
    deny: Vec<Duration>,
    floor: Vec<Duration>,
    lib_floor: Vec<Duration>,
    calc_mean: f64,
    apply_mean: f64,
    rules: f64,
}

/// The agent's pipeline for one toggle, in process and without the kernel,
/// as the agent runs it: the policy engine and the agent's copy of its
/// output (`Mirror`), the generation patched from the last one, and the
/// reconciler's validation (of what is not shared with the applied
/// ruleset), diff and copy of the ruleset. Mean milliseconds of each step.
fn in_process(resources: &[AnyResource], iterations: usize) -> [f64; 5] {
    use calico_nftables::Transaction;
    use calico_node::agent::mirror::Mirror;
    use calico_policy::{EngineConfig, PolicyEngine};
    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some(NODE.into()),
        ..EngineConfig::default()
    });
    let mut mirror = Mirror::default();
    mirror.reset(&engine);
    let updates = resources
        .iter()
        .filter_map(|r| calico_node::agent::resources::to_update(r.clone()).map(|(u, _)| u));
    let (changes, errors) = engine.apply_all(updates);
    assert!(errors.is_empty(), "{errors:?}");
    mirror.update(&engine, &changes);
    let config = calico_dataplane::DataplaneConfig {
        ipv6: false,
        ..calico_dataplane::DataplaneConfig::default()
    };
    let t = Instant::now();
    let mut previous = mirror.generate(&config).ruleset;
    let first = t.elapsed();
    let t = Instant::now();
    let whole = calico_dataplane::generate(&mirror.dataplane, &config);
    let whole_time = t.elapsed();
    assert_eq!(whole, previous);
    eprintln!(
        "first generation (ms): generator {}, whole generate {}",
        ms(first),
        ms(whole_time)
    );
    let mut totals = [0.0f64; 5];
    for i in 0..iterations {
        let action = if i % 2 == 0 {
            Action::Allow
        } else {
            Action::Deny
        };
        let t = Instant::now();
        let changes = engine.apply(toggle(action).into()).expect("toggle");
        mirror.update(&engine, &changes);
        totals[0] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let ruleset = mirror.generate(&config).ruleset;
        totals[1] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        assert!(ruleset.validate_against(&previous).is_empty());
        totals[2] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        let diff = Transaction::diff(&previous, &ruleset);
        assert!(!diff.is_empty());
        totals[3] += t.elapsed().as_secs_f64();
        let t = Instant::now();
        previous = ruleset.clone();
        totals[4] += t.elapsed().as_secs_f64();
    }
    totals.map(|t| t * 1e3 / iterations as f64)
}

/// What nft's own cost for one chain depends on, measured after the
/// run (the agent's table still in place): the floor's change as is, the
/// same with `add rule` alone (no flush), and the floor's change on a
/// near-empty table of its own in the same namespace. Medians of 20.
fn floor_variants(netns: &str, endpoints: usize) {
    nft(
        netns,
        "add table ip bench-small\nadd chain ip bench-small c\n",
    );
    let variants: [(&str, &dyn Fn(usize) -> String); 3] = [
        ("flush and add, agent's table", &|i| {
            format!(
                "flush chain ip calico bench-floor\nadd rule ip calico bench-floor tcp dport {} accept\n",
                2000 + i
            )
        }),
        ("add only, agent's table", &|i| {
            format!(
                "add rule ip calico bench-floor tcp dport {} accept\n",
                3000 + i
            )
        }),
        ("flush and add, small table", &|i| {
            format!(
                "flush chain ip bench-small c\nadd rule ip bench-small c tcp dport {} accept\n",
                4000 + i
            )
        }),
    ];
    let mut report = Vec::new();
    for (name, script) in variants {
        let mut times: Vec<Duration> = (0..20).map(|i| nft(netns, &script(i))).collect();
        times.sort();
        report.push(format!("{name} {}", ms(percentile(&times, 50.0))));
    }
    nft(netns, "delete table ip bench-small\n");
    eprintln!(
        "scale {endpoints}: nft one-chain p50 (ms): {}",
        report.join(", ")
    );
}

fn run_scale(endpoints: usize, iterations: usize, distinct: bool) -> Result {
    let rt = runtime();
    let store = Store::etcd();
    let client = store.client(&rt);
    let backend = store.backend(&rt);
    rt.block_on(client.ensure_initialized("v0.0.0", ""))
        .expect("initializing the datastore");

    let mut node = Node::new("bn");
    node.add_pod("a", "cali0000000000a", "10.65.0.2".parse().unwrap());
    node.add_pod("b", "cali0000000000b", "10.65.0.3".parse().unwrap());
    let server = EchoServer::start(&node.pods[1], 8080);

    eprintln!("scale {endpoints}: writing {endpoints} endpoints and {POLICIES} policies");
    let mut resources: Vec<AnyResource> = vec![namespace_profile(NS).into()];
    for pod in &node.pods {
        resources.push(support::workload_endpoint(NODE, NS, pod).into());
    }
    let synthetic = 0..endpoints.saturating_sub(2);
    resources.extend(
        synthetic
            .clone()
            .map(|i| synthetic_endpoint(i, distinct).into()),
    );
    if distinct {
        resources.extend(synthetic.map(|i| {
            AnyResource::from(calico_model::Profile {
                metadata: ObjectMeta::named(own_profile(i)),
                ..calico_model::Profile::default()
            })
        }));
    }
    resources.extend((0..POLICIES).map(|i| policy(i).into()));
    resources.push(base_deny().into());
    resources.push(toggle(Action::Deny).into());
    let steps = in_process(&resources, 10);
    eprintln!(
        "scale {endpoints}: in process (ms): engine+mirror {:.2}, generate {:.2}, validate {:.2}, diff {:.2}, clone {:.2}",
        steps[0], steps[1], steps[2], steps[3], steps[4]
    );
    create_all(&rt, &client, resources);

    let mut env = store.env();
    for (k, v) in [
        ("NODENAME", NODE),
        ("FELIX_HEALTHENABLED", "true"),
        ("FELIX_PROMETHEUSMETRICSENABLED", "true"),
        ("FELIX_IPV6SUPPORT", "false"),
        ("FELIX_NFTABLESREFRESHINTERVAL", "0"),
        ("LOG_LEVEL", "warn"),
    ] {
        env.push((k.into(), v.into()));
    }
    let netns = node.path().display().to_string();
    let started = Instant::now();
    let agent = AgentProcess::start(&["-felix", "--netns", &netns], &env);
    let health: SocketAddr = "127.0.0.1:9099".parse().unwrap();
    support::wait_for(
        Duration::from_secs(600),
        "the agent to be ready",
        || matches!(http_get(&node.ns, health, "/readiness"), Ok((200, _))),
        || agent.log(),
    );
    let sync = started.elapsed();
    let rss_sync_mib = rss_kib(agent.pid()) as f64 / 1024.0;
    eprintln!("scale {endpoints}: ready after {sync:?}, RSS {rss_sync_mib:.1} MiB");

    let metrics_address: SocketAddr = "127.0.0.1:9091".parse().unwrap();
    let read_metrics = || {
        http_get(&node.ns, metrics_address, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default()
    };
    let (a, target) = (&node.pods[0], server.address);
    assert!(!probe(a, target), "b must start denied");
    let (allow_key, allow_value) = stored(toggle(Action::Allow).into());
    let (deny_key, deny_value) = stored(toggle(Action::Deny).into());
    assert_eq!(allow_key, deny_key);

    // The floor, measured between iterations: nft changing one chain of
    // the same table (a chain of the benchmark's own in the agent's table;
    // the agent's drift repair is off for the run).
    nft(&netns, "add chain ip calico bench-floor\n");
    let mut floor = Vec::new();
    use calico_nftables::BlockingNft as _;
    let library = calico_nftables::NftLib::open(Some(node.ns.netns()))
        .expect("libnftables (installed with nftables)");
    let mut lib_floor = Vec::new();

    // One warm-up round, not measured.
    let before = read_metrics();
    let mut allow = Vec::new();
    let mut deny = Vec::new();
    for i in 0..=iterations {
        let t0 = Instant::now();
        rt.block_on(backend.put(&allow_key, allow_value.as_bytes()))
            .expect("writing Allow");
        while !probe(a, target) {
            assert!(
                t0.elapsed() < Duration::from_secs(30),
                "allow not enforced:\n{}",
                agent.log()
            );
        }
        let allowed = t0.elapsed();
        let t1 = Instant::now();
        rt.block_on(backend.put(&deny_key, deny_value.as_bytes()))
            .expect("writing Deny");
        while probe(a, target) {
            // A probe that is let through completes in a fraction of a
            // millisecond; back to back they would keep a core busy with
            // connections and slow the agent being measured.
            std::thread::sleep(PROBE_TIMEOUT / 2);
            assert!(
                t1.elapsed() < Duration::from_secs(30),
                "deny not enforced:\n{}",
                agent.log()
            );
        }
        let denied = t1.elapsed();
        let floored = nft(
            &netns,
            &format!(
                "flush chain ip calico bench-floor\nadd rule ip calico bench-floor tcp dport {} accept\n",
                1000 + i % 1000
            ),
        );
        let t = Instant::now();
        library
            .apply_blocking(&format!(
                "flush chain ip calico bench-floor\nadd rule ip calico bench-floor tcp dport {} accept\n",
                2000 + i % 1000
            ))
            .expect("libnftables floor");
        let lib_floored = t.elapsed();
        if i > 0 {
            allow.push(allowed);
            deny.push(denied);
            floor.push(floored);
            lib_floor.push(lib_floored);
        }
    }
    let after = read_metrics();
    floor_variants(&netns, endpoints);
    let mean = |name: &str| {
        let count =
            metric(&after, &format!("{name}_count")) - metric(&before, &format!("{name}_count"));
        let sum = metric(&after, &format!("{name}_sum")) - metric(&before, &format!("{name}_sum"));
        sum / count
    };
    let result = Result {
        endpoints,
        sync,
        rss_sync_mib,
        rss_end_mib: rss_kib(agent.pid()) as f64 / 1024.0,
        calc_mean: mean("felix_calc_graph_update_time_seconds"),
        apply_mean: mean("felix_int_dataplane_apply_time_seconds"),
        rules: metric(&after, "felix_nft_rules"),
        allow,
        deny,
        floor,
        lib_floor,
    };
    drop(agent);
    result
}

fn main() {
    let mut args = std::env::args().skip(1).filter(|a| !a.starts_with("--"));
    let iterations: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let scales: Vec<usize> = args
        .next()
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![1000, 10000]);

    let distinct = std::env::args().any(|a| a == "--distinct");
    if distinct {
        println!(
            "Every synthetic endpoint also names a profile of its own: no two endpoints share a program."
        );
    }
    let mut results = Vec::new();
    for &scale in &scales {
        results.push(run_scale(scale, iterations, distinct));
    }
    println!(
        "| local endpoints | policies | write → allowed p50 / p90 / p99 / max (ms) | write → denied p50 / p99 (ms) | floor: one chain, nft program p50 / p99 (ms) | floor: one chain, libnftables p50 / p99 (ms) | engine+generate mean (ms) | reconcile mean (ms) | rules | ready after (s) | RSS ready / end (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &mut results {
        r.allow.sort();
        r.deny.sort();
        r.floor.sort();
        r.lib_floor.sort();
        println!(
            "| {} | {} | {} / {} / {} / {} | {} / {} | {} / {} | {} / {} | {:.2} | {:.2} | {} | {:.1} | {:.1} / {:.1} |",
            r.endpoints,
            POLICIES,
            ms(percentile(&r.allow, 50.0)),
            ms(percentile(&r.allow, 90.0)),
            ms(percentile(&r.allow, 99.0)),
            ms(*r.allow.last().unwrap_or(&Duration::ZERO)),
            ms(percentile(&r.deny, 50.0)),
            ms(percentile(&r.deny, 99.0)),
            ms(percentile(&r.floor, 50.0)),
            ms(percentile(&r.floor, 99.0)),
            ms(percentile(&r.lib_floor, 50.0)),
            ms(percentile(&r.lib_floor, 99.0)),
            r.calc_mean * 1e3,
            r.apply_mean * 1e3,
            r.rules,
            r.sync.as_secs_f64(),
            r.rss_sync_mib,
            r.rss_end_mib,
        );
    }
}
