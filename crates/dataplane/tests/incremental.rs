//! The incremental generator ([`Generator`]) gives exactly what a whole
//! generation gives, after any sequence of changes; and what it did not
//! change it hands back as the very same chains and sets, which the
//! reconciler then neither checks nor sends.

mod support;

use std::sync::Arc;

use calico_dataplane::{DataplaneConfig, Dirty, Generator, generate_with_report};
use calico_model::{HostEndpoint, ObjectMeta};
use calico_nftables::{Op, Ruleset, Transaction};
use calico_policy::{EngineConfig, PolicyEngine, Update};
use proptest::prelude::*;
use support::cluster::{Cluster, NODE};
use support::rng::Rng;

fn engine() -> PolicyEngine {
    PolicyEngine::new(EngineConfig {
        local_node: Some(NODE.into()),
        ..Default::default()
    })
}

fn apply(engine: &mut PolicyEngine, dirty: &mut Dirty, updates: Vec<Update>) {
    for update in updates {
        let changes = engine.apply(update).expect("valid update");
        dirty.record(&changes);
    }
}

/// A random change: the cluster's own (policies, tiers, pod labels), or a
/// pod, profile or network set going away and coming back, a pod taking
/// another pod's interface, a pod losing its IPv6 address, or a host
/// endpoint coming and going.
fn change(cluster: &mut Cluster, rng: &mut Rng, removed: &mut Vec<Update>) -> Vec<Update> {
    let pods = cluster.pods.len();
    match rng.below(12) {
        0 if !removed.is_empty() => {
            let i = rng.below(removed.len());
            vec![removed.swap_remove(i)]
        }
        1 => {
            let pod = cluster.pods[rng.below(pods)].endpoint.clone();
            removed.push(pod.clone().into());
            vec![Update::DeleteWorkloadEndpoint {
                namespace: pod.metadata.namespace,
                name: pod.metadata.name,
            }]
        }
        2 => {
            let mut pod = cluster.pods[rng.below(pods)].endpoint.clone();
            let other = &cluster.pods[rng.below(pods)];
            removed.push(pod.clone().into());
            pod.spec.interface_name = other.iface.clone();
            vec![pod.into()]
        }
        3 => {
            let mut pod = cluster.pods[rng.below(pods)].endpoint.clone();
            removed.push(pod.clone().into());
            pod.spec.ip_networks.truncate(1);
            vec![pod.into()]
        }
        4 => {
            let key = if rng.chance(0.5) {
                "profile/"
            } else {
                "netset/"
            };
            let found: Vec<Update> = cluster
                .resources
                .iter()
                .filter(|(k, _)| k.starts_with(key))
                .map(|(_, u)| u.clone())
                .collect();
            let update = rng.pick(&found).clone();
            let delete = match &update {
                Update::Profile(p) => Update::DeleteProfile {
                    name: p.metadata.name.clone(),
                },
                Update::GlobalNetworkSet(s) => Update::DeleteGlobalNetworkSet {
                    name: s.metadata.name.clone(),
                },
                other => panic!("unexpected resource {}", other.describe()),
            };
            removed.push(update);
            vec![delete]
        }
        5 if rng.chance(0.3) => {
            let mut hep = HostEndpoint {
                metadata: ObjectMeta::named("eth0"),
                ..Default::default()
            };
            hep.spec.node = NODE.into();
            hep.spec.interface_name = "eth0".into();
            hep.spec.expected_ips = vec!["192.0.2.10".into()];
            removed.push(Update::DeleteHostEndpoint {
                name: "eth0".into(),
            });
            vec![hep.into()]
        }
        _ => cluster.change(),
    }
}

/// Runs `steps` random changes in random batches through a [`Generator`]
/// and checks every generation against a whole one.
fn check(seed: u64, steps: usize, config: &DataplaneConfig) {
    let mut cluster = Cluster::new(seed, 8, 4, 8);
    let mut rng = Rng::new(seed ^ 0x5eed);
    let mut engine = engine();
    let mut generator = Generator::new(config.clone());
    let mut dirty = Dirty::default();
    let mut removed = Vec::new();
    apply(&mut engine, &mut dirty, cluster.updates());
    for step in 0..=steps {
        if step > 0 {
            for _ in 0..1 + rng.below(3) {
                let updates = change(&mut cluster, &mut rng, &mut removed);
                apply(&mut engine, &mut dirty, updates);
            }
        }
        let dp = engine.snapshot();
        let patched = generator.generate(&dp, &std::mem::take(&mut dirty));
        let whole = generate_with_report(&dp, config);
        assert_eq!(patched, whole, "seed {seed}, step {step}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn patched_generation_equals_a_whole_one(seed in any::<u64>(), steps in 1..25usize) {
        check(seed, steps, &DataplaneConfig::default());
    }

    #[test]
    fn patched_generation_equals_a_whole_one_in_both_families(
        seed in any::<u64>(),
        steps in 1..25usize,
    ) {
        let config = DataplaneConfig {
            ipv6: true,
            ..DataplaneConfig::default()
        };
        check(seed, steps, &config);
    }
}

fn shared(a: &Ruleset, b: &Ruleset) -> (usize, usize) {
    let mut same = 0;
    let mut other = 0;
    for (id, table) in &b.tables {
        let before = &a.tables[id];
        for (name, chain) in &table.chains {
            match before.chains.get(name) {
                Some(old) if Arc::ptr_eq(old, chain) => same += 1,
                _ => other += 1,
            }
        }
        for (name, set) in &table.sets {
            match before.sets.get(name) {
                Some(old) if Arc::ptr_eq(old, set) => same += 1,
                _ => other += 1,
            }
        }
    }
    (same, other)
}

/// A change to one policy's rules gives a new chain for that policy and
/// the very same objects for everything else: the reconciler's diff sends
/// that one chain, and its validation looks at nothing else.
#[test]
fn an_unchanged_chain_is_shared_and_not_sent() {
    let config = DataplaneConfig::default();
    let mut cluster = Cluster::new(3, 12, 4, 12);
    let mut engine = engine();
    let mut generator = Generator::new(config.clone());
    let mut dirty = Dirty::default();
    apply(&mut engine, &mut dirty, cluster.updates());
    let first = generator
        .generate(&engine.snapshot(), &std::mem::take(&mut dirty))
        .ruleset;

    // Nothing changed: everything is shared and nothing is sent.
    let again = generator
        .generate(&engine.snapshot(), &Dirty::default())
        .ruleset;
    assert_eq!(shared(&first, &again).1, 0);
    assert!(Transaction::diff(&first, &again).ops.is_empty());

    // Change policies until one changes a chain; only its chains differ.
    let mut previous = first;
    for _ in 0..50 {
        let updates = cluster.change();
        apply(&mut engine, &mut dirty, updates);
        if dirty.endpoints.is_empty() && dirty.policies.len() == 1 && dirty.ip_sets.is_empty() {
            let next = generator
                .generate(&engine.snapshot(), &std::mem::take(&mut dirty))
                .ruleset;
            let (same, other) = shared(&previous, &next);
            assert!(other <= 2, "{other} objects remade for one policy");
            assert!(same > 20);
            let diff = Transaction::diff(&previous, &next);
            let chains: std::collections::BTreeSet<&str> = diff
                .ops
                .iter()
                .filter_map(|op| match op {
                    Op::AddRule { chain, .. } | Op::FlushChain { chain, .. } => {
                        Some(chain.as_str())
                    }
                    _ => None,
                })
                .collect();
            let policy = dirty_policy_chains(&previous, &next);
            assert!(
                chains.iter().all(|c| policy.iter().any(|p| p == c)),
                "{chains:?}"
            );
            assert_eq!(next.validate_against(&previous), next.validate());
            previous = next;
        } else {
            previous = generator
                .generate(&engine.snapshot(), &std::mem::take(&mut dirty))
                .ruleset;
        }
    }
}

/// The chains of `next` that are not shared with `previous`.
fn dirty_policy_chains(previous: &Ruleset, next: &Ruleset) -> Vec<String> {
    let mut out = Vec::new();
    for (id, table) in &next.tables {
        for (name, chain) in &table.chains {
            if !previous.tables[id]
                .chains
                .get(name)
                .is_some_and(|c| Arc::ptr_eq(c, chain))
            {
                out.push(name.clone());
            }
        }
    }
    out
}
