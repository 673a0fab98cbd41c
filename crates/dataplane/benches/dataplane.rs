//! The policy dataplane benchmark (harness = false; the throughput part
//! needs root, iperf3 and nft):
//!
//! 1. Single-stream TCP throughput between two pods on one simulated node
//!    (calico-netlink plumbing, traffic forwarded through the node
//!    namespace) with: no ruleset at all; 10,000 policy rules as the
//!    generator renders them; the same 10,000 rules as one linear nftables
//!    chain. The three are interleaved round by round in one run, so load
//!    on the shared machine hits all alike; medians and ratios.
//! 2. Generation time: `generate` on a Dataplane of 10,000 endpoints and
//!    1,000 policies (built once through the policy engine).
//!
//! With `--write` the results replace the "## Policy dataplane" section of
//! `bench/RESULTS.md` (other sections are kept). `--rounds N` (default 7),
//! `--seconds S` per iperf3 run (default 3), `--skip-throughput`.

#[allow(dead_code)]
#[path = "../tests/support/node.rs"]
mod node;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use calico_dataplane::{DataplaneConfig, generate};
use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, ObjectMeta, PolicyType, Port, Profile, Protocol, Rule,
    WorkloadEndpoint,
};
use calico_nftables::{
    BaseChain, Chain, Hook, Key, NftCli, NftCommand, Policy, Reconciler, Rule as NftRule, Ruleset,
    Table, TableId, Value,
};
use calico_policy::program::Dataplane;
use calico_policy::{EngineConfig, PolicyEngine, Update};
use node::Node;

const NODE: &str = "node1";
const RULES: usize = 10_000;
const RULES_PER_POLICY: usize = 100;
const IPERF_PORT: u16 = 5201;

fn arg<T: std::str::FromStr>(name: &str, default: T) -> T {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn pod(name: &str, iface: &str, ip: Ipv4Addr, app: &str) -> WorkloadEndpoint {
    let mut w = WorkloadEndpoint {
        metadata: ObjectMeta::named(format!("{NODE}-k8s-{name}-eth0")),
        ..Default::default()
    };
    w.metadata.namespace = "bench".into();
    w.metadata.labels = [("app".to_string(), app.to_string())].into();
    w.spec.node = NODE.into();
    w.spec.orchestrator = "k8s".into();
    w.spec.pod = name.into();
    w.spec.endpoint = "eth0".into();
    w.spec.interface_name = iface.into();
    w.spec.ip_networks = vec![format!("{ip}/32")];
    w.spec.profiles = vec!["kns.bench".into()];
    w
}

fn allow_all_profile(name: &str) -> Profile {
    let mut p = Profile {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    p.spec.ingress = vec![Rule::new(Action::Allow)];
    p.spec.egress = vec![Rule::new(Action::Allow)];
    p
}

/// The i-th blocked source: 172.16.0.0/16 onwards, never a pod.
fn blocked(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(0xac10_0000u32 + i as u32)
}

/// 10,000 Deny rules, each for one source address and the iperf3 port,
/// in 100 policies selecting the server, then a policy allowing the rest.
fn throughput_policies() -> Vec<Update> {
    let mut out = Vec::new();
    for p in 0..RULES / RULES_PER_POLICY {
        let mut policy = GlobalNetworkPolicy {
            metadata: ObjectMeta::named(format!("blocklist-{p:03}")),
            ..Default::default()
        };
        policy.spec.order = Some(p as f64);
        policy.spec.selector = "app == 'server'".into();
        policy.spec.types = vec![PolicyType::Ingress];
        policy.spec.ingress = (0..RULES_PER_POLICY)
            .map(|r| {
                let mut rule = Rule::new(Action::Deny);
                rule.protocol = Some(Protocol::tcp());
                rule.source = EntityRule {
                    nets: vec![format!("{}/32", blocked(p * RULES_PER_POLICY + r))],
                    ..Default::default()
                };
                rule.destination = EntityRule {
                    ports: vec![Port::single(IPERF_PORT)],
                    ..Default::default()
                };
                rule
            })
            .collect();
        out.push(policy.into());
    }
    let mut allow = GlobalNetworkPolicy {
        metadata: ObjectMeta::named("allow-rest"),
        ..Default::default()
    };
    allow.spec.order = Some(1e6);
    allow.spec.selector = "all()".into();
    allow.spec.types = vec![PolicyType::Ingress, PolicyType::Egress];
    allow.spec.ingress = vec![Rule::new(Action::Allow)];
    allow.spec.egress = vec![Rule::new(Action::Allow)];
    out.push(allow.into());
    out
}

/// The same 10,000 rules as one chain evaluated for every packet.
fn linear_ruleset() -> Ruleset {
    let mut rules: Vec<NftRule> = (0..RULES)
        .map(|i| {
            NftRule::new()
                .matching(
                    Key::Saddr(calico_nftables::IpFamily::V4),
                    Value::addr(blocked(i)),
                )
                .matching(
                    Key::Dport(calico_nftables::PortProto::Tcp),
                    Value::port(IPERF_PORT),
                )
                .drop()
        })
        .collect();
    rules.push(NftRule::new().accept());
    Ruleset::new().with_table(
        TableId::new(calico_nftables::Family::Ip, "linear"),
        Table::new().with_chain(
            "forward",
            Chain::base(BaseChain::filter(Hook::Forward, 0, Policy::Accept), rules),
        ),
    )
}

struct Iperf {
    child: Child,
}

impl Drop for Iperf {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn iperf_server(ns: &str) -> Iperf {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "iperf3", "-s", "-p"])
        .arg(IPERF_PORT.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting iperf3 -s (apt-get install iperf3, or scripts/setup.sh)");
    std::thread::sleep(Duration::from_millis(300));
    Iperf { child }
}

/// One single-stream run; bits per second received.
fn iperf_client(ns: &str, server: Ipv4Addr, seconds: u32) -> f64 {
    for _ in 0..3 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "iperf3", "-J", "-c"])
            .arg(server.to_string())
            .args(["-p", &IPERF_PORT.to_string(), "-t", &seconds.to_string()])
            .output()
            .expect("running iperf3 -c");
        let json: serde_json::Value = match serde_json::from_slice(&out.stdout) {
            Ok(j) => j,
            Err(_) => continue,
        };
        if let Some(bps) = json["end"]["sum_received"]["bits_per_second"].as_f64() {
            return bps;
        }
        // The server is busy finishing the previous test: try again.
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("iperf3 gave no result");
}

struct Throughput {
    rounds: usize,
    seconds: u32,
    medians: BTreeMap<&'static str, f64>,
    samples: BTreeMap<&'static str, Vec<f64>>,
    generated_rules: usize,
    generated_chains: usize,
    generated_apply: Duration,
    linear_apply: Duration,
}

fn throughput(rounds: usize, seconds: u32) -> Throughput {
    let mut node = Node::new("dpbench");
    let client_ip = Ipv4Addr::new(10, 65, 0, 1);
    let server_ip = Ipv4Addr::new(10, 65, 0, 2);
    node.add_pod("dpbcli", "cali0000000cli1", client_ip);
    node.add_pod("dpbsrv", "cali0000000srv1", server_ip);
    let _server = iperf_server(node.pods[1].ns.name());

    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some(NODE.into()),
        ..Default::default()
    });
    let mut updates: Vec<Update> = vec![
        allow_all_profile("kns.bench").into(),
        pod("client", "cali0000000cli1", client_ip, "client").into(),
        pod("server", "cali0000000srv1", server_ip, "server").into(),
    ];
    updates.extend(throughput_policies());
    let (_, errors) = engine.apply_all(updates);
    assert!(errors.is_empty(), "{errors:?}");
    let config = DataplaneConfig {
        ipv6: false,
        ..Default::default()
    };
    let generated = generate(&engine.snapshot(), &config);
    let generated_rules = generated
        .tables
        .values()
        .flat_map(|t| t.chains.values())
        .map(|c| c.rules.len())
        .sum();
    let generated_chains = generated.tables.values().map(|t| t.chains.len()).sum();
    let linear = linear_ruleset();
    let mut owned = config.tables();
    owned.extend(linear.tables.keys().cloned());
    let mut reconciler: Reconciler<NftCli> =
        Reconciler::new(NftCli::new(NftCommand::in_netns(node.ns.path())), owned);

    let configurations: [(&'static str, &Ruleset); 3] = [
        ("no rules", &Ruleset::default()),
        ("generated", &generated),
        ("linear", &linear),
    ];
    let mut samples: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
    let mut generated_apply = Duration::ZERO;
    let mut linear_apply = Duration::ZERO;
    // A first run of each, not counted, to warm caches and neighbours.
    for round in 0..=rounds {
        for (name, ruleset) in configurations {
            let start = Instant::now();
            reconciler.apply_blocking(ruleset).expect("applying");
            let took = start.elapsed();
            match name {
                "generated" => generated_apply = generated_apply.max(took),
                "linear" => linear_apply = linear_apply.max(took),
                _ => {}
            }
            let bps = iperf_client(node.pods[0].ns.name(), server_ip, seconds);
            if round > 0 {
                samples.entry(name).or_default().push(bps);
            }
            eprintln!("round {round} {name}: {:.2} Gbit/s", bps / 1e9);
        }
    }
    reconciler.remove_all_blocking().expect("cleanup");
    let medians = samples
        .iter()
        .map(|(k, v)| (*k, median(&mut v.clone())))
        .collect();
    Throughput {
        rounds,
        seconds,
        medians,
        samples,
        generated_rules,
        generated_chains,
        generated_apply,
        linear_apply,
    }
}

struct Generation {
    cluster_endpoints: usize,
    endpoints: usize,
    policies: usize,
    engine_load: Duration,
    samples: Vec<f64>,
    tables_rules: usize,
    tables_chains: usize,
    sets: usize,
    set_elements: usize,
}

/// 10,000 local endpoints in 100 namespaces with 100 app labels, and
/// 1,000 policies: each selects one app in one namespace or cluster-wide
/// and allows from one or two other apps (selector sets) on a port.
fn big_dataplane(endpoints: usize, policies: usize, local: usize) -> (Dataplane, Duration) {
    let mut updates: Vec<Update> = Vec::new();
    for ns in 0..100 {
        updates.push(allow_all_profile(&format!("kns.ns{ns}")).into());
    }
    for i in 0..endpoints {
        let ns = i % 100;
        let mut w = pod(
            &format!("p{i}"),
            &format!("cali{i:011x}"),
            Ipv4Addr::from(0x0a40_0000u32 + i as u32),
            &format!("app{}", (i / 100) % 100),
        );
        w.metadata.namespace = format!("ns{ns}");
        w.spec.profiles = vec![format!("kns.ns{ns}")];
        // Local pods are spread over every namespace and app.
        if i % (endpoints / local) != 0 {
            w.spec.node = "elsewhere".into();
            w.metadata.name = format!("elsewhere-k8s-p{i}-eth0");
        }
        updates.push(w.into());
    }
    for p in 0..policies {
        let mut policy = GlobalNetworkPolicy {
            metadata: ObjectMeta::named(format!("policy{p}")),
            ..Default::default()
        };
        policy.spec.order = Some(p as f64);
        policy.spec.selector = format!("app == 'app{}'", p % 100);
        if p % 3 == 0 {
            policy.spec.namespace_selector = format!("projectcalico.org/name == 'ns{}'", p % 100);
        }
        policy.spec.types = vec![PolicyType::Ingress, PolicyType::Egress];
        let mut allow = Rule::new(Action::Allow);
        allow.protocol = Some(Protocol::tcp());
        allow.source = EntityRule {
            selector: format!("app in {{'app{}', 'app{}'}}", (p + 1) % 100, (p + 7) % 100),
            ..Default::default()
        };
        allow.destination = EntityRule {
            ports: vec![Port::single(8000 + (p % 50) as u16)],
            ..Default::default()
        };
        let mut deny = Rule::new(Action::Deny);
        deny.source = EntityRule {
            nets: vec![format!("172.{}.0.0/16", 16 + p % 16)],
            ..Default::default()
        };
        policy.spec.ingress = vec![deny, allow];
        let mut egress = Rule::new(Action::Allow);
        egress.destination = EntityRule {
            selector: format!("app == 'app{}'", (p + 3) % 100),
            ..Default::default()
        };
        policy.spec.egress = vec![egress, Rule::new(Action::Pass)];
        updates.push(policy.into());
    }
    let start = Instant::now();
    let mut engine = PolicyEngine::new(EngineConfig {
        local_node: Some(NODE.into()),
        ..Default::default()
    });
    let (_, errors) = engine.apply_all(updates);
    assert!(errors.is_empty(), "{:?}", errors.first());
    let dp = engine.snapshot();
    (dp, start.elapsed())
}

fn generation(samples: usize, local: usize) -> Generation {
    let (endpoints, policies) = (10_000, 1_000);
    let (dp, engine_load) = big_dataplane(endpoints, policies, local);
    let config = DataplaneConfig::default();
    let mut times = Vec::new();
    let mut last = Ruleset::default();
    for _ in 0..samples {
        let start = Instant::now();
        let ruleset = generate(&dp, &config);
        times.push(start.elapsed().as_secs_f64() * 1e3);
        last = ruleset;
    }
    let tables = last.tables.values();
    Generation {
        cluster_endpoints: endpoints,
        endpoints: dp.endpoints.len(),
        policies: dp.policies.len(),
        engine_load,
        samples: times,
        tables_rules: tables
            .clone()
            .flat_map(|t| t.chains.values())
            .map(|c| c.rules.len())
            .sum(),
        tables_chains: tables.clone().map(|t| t.chains.len()).sum(),
        sets: tables.clone().map(|t| t.sets.len()).sum(),
        set_elements: tables
            .flat_map(|t| t.sets.values())
            .map(|s| s.elements.len())
            .sum(),
    }
}

fn report(t: Option<&Throughput>, gs: &[Generation], commit: &str) -> String {
    let mut out = String::new();
    out.push_str("## Policy dataplane\n\n");
    out.push_str("Command (from the repository root, as root):\n\n");
    out.push_str("    cargo bench -p calico-dataplane --bench dataplane -- --write\n\n");
    if let Some(t) = t {
        let none = t.medians["no rules"];
        let row = |name: &str| {
            let m = t.medians[name];
            let samples: Vec<String> = t.samples[name]
                .iter()
                .map(|s| format!("{:.2}", s / 1e9))
                .collect();
            format!(
                "| {name} | {:.2} | {:.0}% | {} |\n",
                m / 1e9,
                100.0 * m / none,
                samples.join(", ")
            )
        };
        out.push_str(&wrap(&format!(
            "What it does: two pods on one simulated node (network namespaces \
             plumbed by calico-netlink as Calico's CNI plugin does: `cali…` veth, /32 \
             route, proxy ARP), traffic forwarded through the node namespace. One \
             iperf3 TCP stream in {}-second runs, client pod to server pod. Three \
             configurations interleaved round by round ({} rounds after one warm-up \
             round): no nftables table at all; the generator's ruleset for 10,000 \
             policy rules (100 GlobalNetworkPolicies of 100 Deny rules each, every \
             rule one blocked source /32 and the iperf3 port, all selecting the \
             server, then an allow-all policy; {} chains, {} rules in the `ip calico` \
             table); and the same 10,000 rules as one linear chain in a forward base \
             chain (`ip saddr X tcp dport 5201 drop` × 10,000, then accept), which is \
             what a dataplane without a connection-tracking fast path and per-endpoint \
             dispatch evaluates for every packet. Applying the generated ruleset \
             from empty took {:.0} ms, the linear one {:.0} ms (one nft transaction \
             each).",
            t.seconds,
            t.rounds,
            t.generated_chains,
            t.generated_rules,
            t.generated_apply.as_secs_f64() * 1e3,
            t.linear_apply.as_secs_f64() * 1e3,
        )));
        out.push_str("\n\n");
        out.push_str("| configuration | median Gbit/s | of no rules | samples (Gbit/s) |\n");
        out.push_str("| --- | ---: | ---: | --- |\n");
        out.push_str(&row("no rules"));
        out.push_str(&row("generated"));
        out.push_str(&row("linear"));
        let ratios: Vec<f64> = t.samples["generated"]
            .iter()
            .zip(&t.samples["no rules"])
            .map(|(g, n)| g / n)
            .collect();
        out.push('\n');
        out.push_str(&wrap(&format!(
            "Generated / linear: {:.1}×; generated / no rules, round by round: {} \
             (median {:.0}%). What the generated ruleset costs per packet is the \
             connection tracking it turns on (a namespace with no table has none) and \
             the one `ct state established,related accept` rule that every packet \
             after a connection's first meets at the top of the forward chain. The \
             first packet of a connection finds each endpoint's chain with one \
             verdict-map lookup and walks only the policies selecting that endpoint \
             (here all 10,000 rules of the server's 100 policy chains); address lists \
             a rule names as one selector or nets list are one set lookup. The linear \
             chain is walked by every packet; TESTBED.md records about 10% of the \
             plain figure for 10,000 linear rules in an `inet` table, this run kept \
             {:.0}%.",
            t.medians["generated"] / t.medians["linear"],
            ratios
                .iter()
                .map(|r| format!("{:.0}%", r * 100.0))
                .collect::<Vec<_>>()
                .join(", "),
            median(&mut ratios.clone()) * 100.0,
            100.0 * t.medians["linear"] / none,
        )));
        out.push_str("\n\n");
    } else {
        out.push_str("(Throughput not measured in this run: `--skip-throughput`.)\n\n");
    }
    out.push_str(&wrap(
        "Generation: `generate()` timed on Dataplanes built once by the policy engine \
         from 10,000 WorkloadEndpoints in 100 namespaces (labels: one of 100 apps) and \
         1,000 GlobalNetworkPolicies, each selecting one app (a third of them also one \
         namespace) with a Deny rule on a /16, an Allow rule from a two-app selector on \
         a port, and egress to a third app then Pass. Endpoints are IPv4 only, so the \
         `ip6` table has their dispatch entries (drop) but no chains. All endpoints \
         on the node is the worst case; a node of 200 pods in a cluster of 10,000 is \
         the usual one (the sets still hold every matching address in the \
         cluster). The generator is pure and single-threaded; the agent runs it on \
         a snapshot after each batch of engine updates.",
    ));
    out.push_str("\n\n");
    out.push_str("| endpoints (local / cluster) | policies in use | engine load s | chains | rules | sets | set elements | generate median ms | slowest ms |\n");
    out.push_str("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for g in gs {
        let mut s = g.samples.clone();
        let med = median(&mut s);
        let max = s.iter().cloned().fold(0.0, f64::max);
        out.push_str(&format!(
            "| {} / {} | {} | {:.1} | {} | {} | {} | {} | {:.0} | {:.0} |\n",
            g.endpoints,
            g.cluster_endpoints,
            g.policies,
            g.engine_load.as_secs_f64(),
            g.tables_chains,
            g.tables_rules,
            g.sets,
            g.set_elements,
            med,
            max,
        ));
    }
    out.push('\n');
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    out.push_str(&wrap(&format!(
        "Run with the code of commit {commit}; load average at the end {} (other \
         crates' builds and benchmarks share the 2 cores, so compare within a \
         round).",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )));
    out.push('\n');
    out
}

/// Wraps a paragraph at 76 columns, as the rest of RESULTS.md is.
fn wrap(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + 1 + word.len() > 76 {
            out.push_str(&line);
            out.push('\n');
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

fn write_section(section: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/RESULTS.md");
    let current = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Benchmark results\n".into());
    let start = current.find("## Policy dataplane\n");
    let updated = match start {
        Some(start) => {
            let rest = &current[start + 1..];
            let end = rest
                .find("\n## ")
                .map(|i| start + 1 + i + 1)
                .unwrap_or(current.len());
            format!("{}{}{}", &current[..start], section, {
                let tail = &current[end..];
                if tail.is_empty() {
                    String::new()
                } else {
                    format!("\n{tail}")
                }
            })
        }
        None => format!(
            "{}\n{}",
            current.trim_end_matches('\n').to_string() + "\n",
            section
        ),
    };
    std::fs::write(&path, updated).expect("writing bench/RESULTS.md");
    eprintln!("wrote {}", path.display());
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this too
    // and must stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        let (dp, _) = big_dataplane(200, 20, 50);
        assert_eq!(dp.endpoints.len(), 50);
        let ruleset = generate(&dp, &DataplaneConfig::default());
        assert!(ruleset.validate().is_empty());
        return;
    }
    let rounds = arg("--rounds", 7usize);
    let seconds = arg("--seconds", 3u32);
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let t = (!flag("--skip-throughput")).then(|| throughput(rounds, seconds));
    let gs = [generation(5, 10_000), generation(9, 200)];
    let section = report(t.as_ref(), &gs, &commit);
    println!("{section}");
    if flag("--write") {
        write_section(&section);
    }
}
