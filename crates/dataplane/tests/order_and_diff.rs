//! The generated ruleset depends only on the state, not on the order the
//! engine learned it in; and a change to one policy changes only that
//! policy's chain.

mod support;

use calico_dataplane::{DataplaneConfig, generate};
use calico_model::Port;
use calico_nftables::{Op, Ruleset, Statement, Transaction, Verdict};
use calico_policy::{EngineConfig, PolicyEngine, Update};
use support::cluster::{Cluster, NODE};
use support::rng::Rng;

fn engine() -> PolicyEngine {
    PolicyEngine::new(EngineConfig {
        local_node: Some(NODE.into()),
        ..Default::default()
    })
}

fn ruleset_of(updates: impl IntoIterator<Item = Update>, config: &DataplaneConfig) -> Ruleset {
    let mut engine = engine();
    let (_, errors) = engine.apply_all(updates);
    assert!(errors.is_empty(), "{errors:?}");
    generate(&engine.snapshot(), config)
}

/// What the generator is given, in shuffled orders, one update at a time
/// or in random batches, and with some policies deleted and re-added: the
/// ruleset is always the same.
#[test]
fn ruleset_does_not_depend_on_update_order() {
    let config = DataplaneConfig::default();
    let mut inputs: Vec<(String, Vec<Update>)> = (1..=4u64)
        .map(|seed| {
            let cluster = Cluster::new(seed, 12, 4, 12);
            (format!("random cluster {seed}"), cluster.updates())
        })
        .collect();
    for fixture in support::fixtures::all() {
        inputs.push((fixture.name.to_string(), fixture.updates));
    }
    let mut rng = Rng::new(7);
    for (name, updates) in inputs {
        let reference = ruleset_of(updates.clone(), &config);
        assert!(reference.validate().is_empty());
        for attempt in 0..15 {
            let mut shuffled = updates.clone();
            rng.shuffle(&mut shuffled);
            let mut engine = engine();
            if attempt % 2 == 0 {
                for u in shuffled.iter().cloned() {
                    engine.apply(u).expect("valid update");
                }
            } else {
                let mut rest = shuffled.as_slice();
                while !rest.is_empty() {
                    let n = 1 + rng.below(rest.len());
                    let (batch, tail) = rest.split_at(n);
                    let (_, errors) = engine.apply_all(batch.to_vec());
                    assert!(errors.is_empty());
                    rest = tail;
                }
            }
            // Delete some policies and add them back.
            let policies: Vec<Update> = shuffled
                .iter()
                .filter(|u| matches!(u, Update::NetworkPolicy(_) | Update::GlobalNetworkPolicy(_)))
                .take(3)
                .cloned()
                .collect();
            for p in &policies {
                let delete = match p {
                    Update::NetworkPolicy(p) => Update::DeleteNetworkPolicy {
                        namespace: p.metadata.namespace.clone(),
                        name: p.metadata.name.clone(),
                    },
                    Update::GlobalNetworkPolicy(p) => Update::DeleteGlobalNetworkPolicy {
                        name: p.metadata.name.clone(),
                    },
                    _ => unreachable!(),
                };
                engine.apply(delete).expect("delete");
            }
            for p in policies {
                engine.apply(p).expect("re-add");
            }
            let got = generate(&engine.snapshot(), &config);
            if got != reference {
                let diff = Transaction::diff(&reference, &got).render();
                panic!("{name}, shuffle {attempt}: the ruleset differs:\n{diff}");
            }
        }
    }
}

/// Each policy has one chain per table and direction, whatever the number
/// of endpoints using it.
#[test]
fn a_policy_is_rendered_once_and_shared() {
    let fixture = support::fixtures::workloads();
    let ruleset = generate(&fixture.dataplane(), &fixture.config);
    // Three local pods have IPv4 addresses, one has IPv6 too.
    for (table, users) in ruleset.tables.values().zip([3, 1]) {
        let chain = "cali-pi-gnp.security.blocklist";
        assert!(table.chains.contains_key(chain));
        let jumps = table
            .chains
            .values()
            .flat_map(|c| &c.rules)
            .flat_map(|r| &r.statements)
            .filter(|s| matches!(s, Statement::Verdict(Verdict::Jump(t)) if t == chain))
            .count();
        assert_eq!(jumps, users, "every local pod's ingress chain jumps to it");
    }
}

fn op_object(op: &Op) -> String {
    match op {
        Op::AddTable(t) | Op::DeleteTable(t) => format!("table {t}"),
        Op::AddChain { chain, .. }
        | Op::FlushChain { chain, .. }
        | Op::DeleteChain { chain, .. }
        | Op::AddRule { chain, .. } => format!("chain {chain}"),
        Op::AddSet { set, .. }
        | Op::FlushSet { set, .. }
        | Op::DeleteSet { set, .. }
        | Op::AddElements { set, .. }
        | Op::DeleteElements { set, .. } => format!("set {set}"),
        Op::AddMap { map, .. }
        | Op::FlushMap { map, .. }
        | Op::DeleteMap { map, .. }
        | Op::AddMapEntries { map, .. }
        | Op::DeleteMapEntries { map, .. } => format!("map {map}"),
    }
}

/// Changing a port in one rule of one policy rewrites that policy's chain
/// and nothing else.
#[test]
fn a_one_policy_change_touches_only_its_chain() {
    let fixture = support::fixtures::workloads();
    let before = generate(&fixture.dataplane(), &fixture.config);
    let mut updates = fixture.updates.clone();
    let mut changed = false;
    for u in &mut updates {
        if let Update::NetworkPolicy(p) = u {
            if p.metadata.name == "web-ingress" {
                p.spec.ingress[0].destination.ports[0] = Port::single(8443);
                changed = true;
            }
        }
    }
    assert!(changed);
    let after = ruleset_of(updates, &fixture.config);
    let diff = Transaction::diff(&before, &after);
    assert!(!diff.is_empty());
    let touched: std::collections::BTreeSet<String> = diff.ops.iter().map(op_object).collect();
    assert_eq!(
        touched,
        ["chain cali-pi-np.prod.web-ingress".to_string()].into(),
        "{}",
        diff.render()
    );
    // Flushed and refilled in each table, nothing more.
    let rules: usize = after
        .tables
        .values()
        .map(|t| t.chains["cali-pi-np.prod.web-ingress"].rules.len())
        .sum();
    assert_eq!(diff.len(), after.tables.len() + rules);
}

/// A new pod matching a rule's selector adds its address to the set; no
/// existing chain is rewritten.
#[test]
fn a_new_endpoint_adds_set_members_and_its_own_chains() {
    let fixture = support::fixtures::workloads();
    let before = generate(&fixture.dataplane(), &fixture.config);
    let mut updates = fixture.updates.clone();
    updates.push(
        support::fixtures::pod(
            "prod",
            "db2",
            "cali00000000db2",
            &["10.65.0.4/32"],
            &[("app", "db")],
        )
        .into(),
    );
    let after = ruleset_of(updates, &fixture.config);
    let diff = Transaction::diff(&before, &after);
    for op in &diff.ops {
        match op {
            Op::FlushChain { chain, .. } | Op::DeleteChain { chain, .. } => {
                panic!("existing chain {chain} rewritten:\n{}", diff.render())
            }
            Op::AddRule { chain, .. } => assert!(
                chain.ends_with("cali00000000db2"),
                "rule added to {chain}:\n{}",
                diff.render()
            ),
            Op::DeleteElements { .. } | Op::DeleteMapEntries { .. } | Op::DeleteSet { .. } => {
                panic!("nothing is removed:\n{}", diff.render())
            }
            _ => {}
        }
    }
    let elements: usize = diff
        .ops
        .iter()
        .filter(|op| matches!(op, Op::AddElements { .. }))
        .count();
    assert!(elements >= 1, "the db selector set gains the address");
    let map_entries = diff
        .ops
        .iter()
        .filter(|op| matches!(op, Op::AddMapEntries { .. }))
        .count();
    assert_eq!(map_entries, 4, "from and to dispatch entries in each table");
}
