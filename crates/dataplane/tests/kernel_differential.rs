//! The differential test: the kernel enforces exactly what the policy
//! engine's reference evaluator says. Needs root.
//!
//! One namespace plays the node and eight play dual-stack pods, attached
//! the Calico way (calico-netlink's workload plumbing). Every pod listens
//! on TCP and UDP on the probed ports. For each seed, a random cluster of
//! resources is fed through the policy engine; the generated ruleset is
//! reconciled into the node namespace; then every ordered pair of pods is
//! probed on every port over TCP and UDP and with an echo request, IPv4
//! and IPv6, each probe from its own, never reused, source
//! port (so conntrack never carries a verdict from one round into the
//! next), and what the kernel did is compared with `calico_policy::explain`
//! (straight from the resources) for the same packet. Between rounds one
//! random change is made (a policy replaced, added or deleted, a tier
//! changed, a pod relabelled) and only the difference is applied.
//!
//! Each pair is also probed with an ICMP (ICMPv6) echo request from a raw
//! socket, whose identifier is never reused either.
//!
//! Replay one seed with `DIFFERENTIAL_SEED=<seed>`; more rounds with
//! `DIFFERENTIAL_ROUNDS=<n>`.

mod support;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use calico_dataplane::{DataplaneConfig, Direction, generate, workload_chain};
use calico_nftables::{Ruleset, TableId, Transaction};
use calico_policy::eval::{self, Flow, Packet, Verdict};
use calico_policy::explain::{self, ResourceSet};
use calico_policy::program::Failsafe;
use calico_policy::{EngineConfig, PolicyEngine, Update};
use support::cluster::{Cluster, NODE, PROBE_PORTS, SRC_PORT_BASE, pod_iface, pod_ip, pod_ip6};
use support::node::{Listeners, Node, Outcome, Probe, Transport, run_probes};

const LOCAL_PODS: usize = 8;
const REMOTE_PODS: usize = 2;
const POLICIES: usize = 6;
const DEFAULT_ROUNDS: usize = 6;
/// Seeds whose random policies allow between a third and two thirds of
/// the probes, so that both kinds of mistake would show.
const DEFAULT_SEEDS: [u64; 3] = [11, 24, 40];
/// How long a denied probe waits. Probes run in parallel, so a round costs
/// about this much however many probes it has.
const TIMEOUT: Duration = Duration::from_millis(700);

/// The policy engine and the reference evaluator's resources, fed the same
/// updates.
struct Model {
    engine: PolicyEngine,
    resources: ResourceSet,
}

impl Model {
    fn new() -> Model {
        Model {
            engine: PolicyEngine::new(EngineConfig {
                local_node: Some(NODE.into()),
                failsafe: Failsafe::default(),
            }),
            resources: ResourceSet::new(),
        }
    }

    fn apply(&mut self, update: Update) {
        let engine = self.engine.apply(update.clone());
        let reference = self.resources.apply(update.clone());
        assert_eq!(
            engine.is_ok(),
            reference.is_ok(),
            "the engine and the reference disagree on accepting {}: {engine:?} / {reference:?}",
            update.describe()
        );
    }
}

/// Every ordered pair of pods, every port, TCP and UDP, both families.
fn probes(node: &Node, next_port: &mut u16) -> Vec<Probe> {
    let mut out = Vec::new();
    for src in 0..node.pods.len() {
        for (dst, pod) in node.pods.iter().enumerate() {
            if src == dst {
                continue;
            }
            let addrs = [IpAddr::V4(pod.ip), IpAddr::V6(pod.ip6.expect("dual stack"))];
            for addr in addrs {
                for transport in [Transport::Tcp, Transport::Udp] {
                    for port in PROBE_PORTS {
                        out.push(Probe {
                            src_pod: src,
                            transport,
                            src_port: *next_port,
                            dst: SocketAddr::new(addr, port),
                        });
                        *next_port += 1;
                    }
                }
                out.push(Probe {
                    src_pod: src,
                    transport: Transport::IcmpEcho,
                    src_port: *next_port,
                    dst: SocketAddr::new(addr, 0),
                });
                *next_port += 1;
            }
        }
    }
    out
}

fn packet(node: &Node, probe: &Probe) -> Packet {
    let src = node.pods[probe.src_pod]
        .source()
        .address_for(probe.dst.ip());
    match probe.transport {
        Transport::Tcp => Packet::tcp(src, probe.src_port, probe.dst.ip(), probe.dst.port()),
        Transport::Udp => Packet::udp(src, probe.src_port, probe.dst.ip(), probe.dst.port()),
        Transport::IcmpEcho => {
            let echo_request = if src.is_ipv6() { 128 } else { 8 };
            Packet::icmp(src, probe.dst.ip(), echo_request, 0)
        }
    }
}

/// The chains a flow from `src` to `dst` passes, for a failure report.
fn chains_for(ruleset: &Ruleset, table: &TableId, src: &str, dst: &str) -> String {
    let Some(t) = ruleset.tables.get(table) else {
        return String::new();
    };
    let mut names: Vec<String> = [
        workload_chain(t, src, Direction::Egress),
        workload_chain(t, dst, Direction::Ingress),
    ]
    .into_iter()
    .flatten()
    .map(str::to_string)
    .collect();
    let mut out = String::new();
    let mut i = 0;
    while i < names.len() {
        let name = names[i].clone();
        i += 1;
        let Some(chain) = t.chains.get(&name) else {
            continue;
        };
        out.push_str(&format!("  chain {name}\n"));
        for rule in &chain.rules {
            out.push_str(&format!("    {rule}\n"));
            for target in rule.chain_refs() {
                if !names.iter().any(|n| n == target) {
                    names.push(target.to_string());
                }
            }
        }
    }
    out
}

#[derive(Debug, Default)]
struct Tally {
    probes: usize,
    allowed: usize,
    denied: usize,
    rounds: usize,
    incremental_statements: usize,
    full_statements: usize,
}

#[test]
fn kernel_enforces_what_the_reference_evaluator_says() {
    let replay = std::env::var("DIFFERENTIAL_SEED").ok();
    let seeds: Vec<u64> = match &replay {
        Some(s) => vec![
            s.trim_start_matches("0x")
                .parse::<u64>()
                .ok()
                .or_else(|| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok())
                .expect("DIFFERENTIAL_SEED is a number"),
        ],
        None => DEFAULT_SEEDS.to_vec(),
    };
    let rounds: usize = std::env::var("DIFFERENTIAL_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(DEFAULT_ROUNDS);
    let started = Instant::now();

    let mut node = Node::new("dpnode");
    for i in 0..LOCAL_PODS {
        node.add_dual_stack_pod("dppod", &pod_iface(i), pod_ip(i), Some(pod_ip6(i)));
    }
    let _listeners: Vec<Listeners> = node
        .pods
        .iter()
        .map(|p| Listeners::start(p.source(), &PROBE_PORTS))
        .collect();
    let config = DataplaneConfig::default();
    let tables = config.tables();
    let mut reconciler = node.reconciler(config.tables());
    let mut next_port = SRC_PORT_BASE;

    // Without the agent's tables every probe is answered: the plumbing
    // works (and neighbour caches are warm).
    let warmup = probes(&node, &mut next_port);
    let outcomes = run_probes(&node.sources(), &warmup, TIMEOUT * 3);
    for (probe, outcome) in warmup.iter().zip(&outcomes) {
        assert_eq!(
            *outcome,
            Outcome::Answered,
            "without policy, {probe:?} must be answered"
        );
    }

    let mut tally = Tally::default();
    let mut failures: Vec<String> = Vec::new();
    let mut last = Ruleset::default();
    for seed in seeds {
        let mut cluster = Cluster::new(seed, LOCAL_PODS, REMOTE_PODS, POLICIES);
        let mut model = Model::new();
        for update in cluster.updates() {
            model.apply(update);
        }
        for round in 0..rounds {
            let mut changed = Vec::new();
            if round > 0 {
                for update in cluster.change() {
                    changed.push(update.describe());
                    model.apply(update);
                }
            }
            let dp = model.engine.snapshot();
            let desired = generate(&dp, &config);
            let problems = desired.validate();
            assert!(
                problems.is_empty(),
                "seed {seed:#x} round {round}: generated an invalid ruleset: {problems:?}"
            );
            let report = reconciler
                .apply_blocking(&desired)
                .unwrap_or_else(|e| panic!("seed {seed:#x} round {round}: applying: {e}"));
            if round > 0 {
                tally.incremental_statements += report.statements;
                tally.full_statements += Transaction::create(&desired).len();
                assert_eq!(
                    report.statements,
                    Transaction::diff(&last, &desired).len(),
                    "only the difference is sent"
                );
            }
            last = desired.clone();

            let round_probes = probes(&node, &mut next_port);
            let outcomes = run_probes(&node.sources(), &round_probes, TIMEOUT);
            for (probe, outcome) in round_probes.iter().zip(outcomes) {
                let src = &cluster.pods[probe.src_pod];
                let dst_index = node
                    .pods
                    .iter()
                    .position(|p| {
                        IpAddr::V4(p.ip) == probe.dst.ip()
                            || p.ip6.map(IpAddr::V6) == Some(probe.dst.ip())
                    })
                    .expect("probe to a pod");
                let dst = &cluster.pods[dst_index];
                let flow = Flow {
                    src_endpoint: Some(src.key.clone()),
                    dst_endpoint: Some(dst.key.clone()),
                    packet: packet(&node, probe),
                };
                let reference = explain::explain(&model.resources, &Failsafe::default(), &flow);
                let program = eval::evaluate_flow(&dp, &flow);
                let observed = match &outcome {
                    Outcome::Answered => Verdict::Allow,
                    Outcome::Silent => Verdict::Deny,
                    Outcome::Failed(e) => panic!("seed {seed:#x} round {round}: {probe:?}: {e}"),
                };
                tally.probes += 1;
                match reference.verdict {
                    Verdict::Allow => tally.allowed += 1,
                    Verdict::Deny => tally.denied += 1,
                }
                if observed != reference.verdict || program.verdict != reference.verdict {
                    failures.push(format!(
                        "seed {seed:#x} round {round} (after {changed:?}): {:?} {}:{} -> {} \
                         ({} -> {}): kernel {observed:?}, reference {:?} (egress: {}; ingress: {}), \
                         program evaluator {:?}\n{}",
                        probe.transport,
                        flow.packet.src,
                        probe.src_port,
                        probe.dst,
                        src.key,
                        dst.key,
                        reference.verdict,
                        reference.egress.decided_by,
                        reference.ingress.decided_by,
                        program.verdict,
                        chains_for(
                            &desired,
                            &tables[usize::from(probe.dst.is_ipv6())],
                            &src.iface,
                            &dst.iface
                        ),
                    ));
                }
            }
            tally.rounds += 1;
        }
    }

    // What the kernel holds lists back as exactly what was generated.
    let repair = reconciler.repair_blocking(&last).expect("repair");
    assert_eq!(
        repair.statements, 0,
        "the kernel's tables differ from the generated ones: {repair:?}"
    );
    reconciler
        .remove_all_blocking()
        .expect("removing the tables");

    eprintln!(
        "differential: {} probes in {} rounds ({} allowed, {} denied), {} mismatches, \
         {} statements sent for changes (a full load would be {}), {:.1?}",
        tally.probes,
        tally.rounds,
        tally.allowed,
        tally.denied,
        failures.len(),
        tally.incremental_statements,
        tally.full_statements,
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {} probes disagree with the reference (replay with DIFFERENTIAL_SEED):\n{}",
        failures.len(),
        tally.probes,
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    if replay.is_none() {
        assert!(
            tally.allowed * 10 > tally.probes && tally.denied * 10 > tally.probes,
            "the random policies must both allow and deny a fair share: {tally:?}"
        );
    }
    assert!(
        tally.incremental_statements < tally.full_statements,
        "changes must be applied as differences: {tally:?}"
    );
}
