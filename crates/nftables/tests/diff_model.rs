//! Property: the diff takes any valid ruleset to any other, and its
//! statements are in an order the kernel accepts. Checked without a kernel
//! by a small model of the nf_tables rules that matter for ordering:
//! references must exist when a rule or map entry is added; a chain must be
//! empty and unreferenced to be deleted, a set or map unreferenced; an
//! element must exist to be deleted; a map key cannot be re-added with
//! another verdict.

use std::collections::BTreeSet;

use calico_nftables::{
    BaseChain, Chain, DataType, Hook, IpFamily, Key, Map, Op, Policy, Rhs, Rule, Ruleset, Set,
    Table, TableId, Transaction, Value, Verdict,
};
use proptest::prelude::*;

fn check_unreferenced(table: &Table, name: &str, what: &str) -> Result<(), String> {
    for (chain_name, chain) in &table.chains {
        for rule in &chain.rules {
            if rule.set_refs().any(|r| r == name) || rule.chain_refs().any(|r| r == name) {
                return Err(format!("{what} {name} is still used by chain {chain_name}"));
            }
        }
    }
    if what == "chain" {
        for (map_name, map) in &table.maps {
            if map.entries.values().any(|v| v.target() == Some(name)) {
                return Err(format!("chain {name} is still used by map {map_name}"));
            }
        }
    }
    Ok(())
}

/// Applies `op` the way the kernel would, or says why it would refuse.
fn apply(ruleset: &mut Ruleset, op: &Op) -> Result<(), String> {
    fn table<'a>(rs: &'a mut Ruleset, id: &TableId) -> Result<&'a mut Table, String> {
        rs.tables
            .get_mut(id)
            .ok_or_else(|| format!("no table {id}"))
    }
    match op {
        Op::AddTable(id) => {
            ruleset.tables.entry(id.clone()).or_default();
        }
        Op::DeleteTable(id) => {
            ruleset
                .tables
                .remove(id)
                .ok_or_else(|| format!("no table {id}"))?;
        }
        Op::AddChain {
            table: id,
            chain,
            base,
        } => {
            let t = table(ruleset, id)?;
            match t.chains.get_mut(chain).map(std::sync::Arc::make_mut) {
                None => {
                    t.chains.insert(
                        chain.clone(),
                        std::sync::Arc::new(Chain {
                            base: *base,
                            rules: vec![],
                        }),
                    );
                }
                Some(existing) => match (&mut existing.base, base) {
                    (Some(have), Some(want)) if have.same_attachment(want) => {
                        have.policy = want.policy
                    }
                    (None, None) => {}
                    _ => return Err(format!("chain {chain} exists with another attachment")),
                },
            }
        }
        Op::FlushChain { table: id, chain } => {
            table(ruleset, id)?
                .chains
                .get_mut(chain)
                .map(std::sync::Arc::make_mut)
                .ok_or_else(|| format!("flush: no chain {chain}"))?
                .rules
                .clear();
        }
        Op::DeleteChain { table: id, chain } => {
            let t = table(ruleset, id)?;
            let c = t
                .chains
                .get(chain)
                .ok_or_else(|| format!("delete: no chain {chain}"))?;
            if !c.rules.is_empty() {
                return Err(format!("chain {chain} is not empty"));
            }
            check_unreferenced(t, chain, "chain")?;
            t.chains.remove(chain);
        }
        Op::AddRule {
            table: id,
            chain,
            rule,
        } => {
            let t = table(ruleset, id)?;
            for r in rule.set_refs() {
                if !t.sets.contains_key(r) && !t.maps.contains_key(r) {
                    return Err(format!("rule refers to missing set {r}"));
                }
            }
            for r in rule.chain_refs() {
                if !t.chains.contains_key(r) {
                    return Err(format!("rule jumps to missing chain {r}"));
                }
            }
            t.chains
                .get_mut(chain)
                .map(std::sync::Arc::make_mut)
                .ok_or_else(|| format!("add rule: no chain {chain}"))?
                .rules
                .push(rule.clone());
        }
        Op::AddSet {
            table: id,
            set,
            key,
            interval,
        } => {
            let t = table(ruleset, id)?;
            if t.maps.contains_key(set) {
                return Err(format!("name {set} is used by a map"));
            }
            match t.sets.get(set) {
                Some(s) if s.key != *key || s.interval != *interval => {
                    return Err(format!("set {set} exists with another definition"));
                }
                Some(_) => {}
                None => {
                    t.sets.insert(
                        set.clone(),
                        std::sync::Arc::new(Set::new(key.clone(), *interval)),
                    );
                }
            }
        }
        Op::AddMap {
            table: id,
            map,
            key,
            interval,
        } => {
            let t = table(ruleset, id)?;
            if t.sets.contains_key(map) {
                return Err(format!("name {map} is used by a set"));
            }
            match t.maps.get(map) {
                Some(m) if m.key != *key || m.interval != *interval => {
                    return Err(format!("map {map} exists with another definition"));
                }
                Some(_) => {}
                None => {
                    t.maps.insert(
                        map.clone(),
                        std::sync::Arc::new(Map::new(key.clone(), *interval)),
                    );
                }
            }
        }
        Op::FlushSet { table: id, set } => {
            table(ruleset, id)?
                .sets
                .get_mut(set)
                .map(std::sync::Arc::make_mut)
                .ok_or("flush: no set")?
                .elements
                .clear();
        }
        Op::FlushMap { table: id, map } => {
            table(ruleset, id)?
                .maps
                .get_mut(map)
                .map(std::sync::Arc::make_mut)
                .ok_or("flush: no map")?
                .entries
                .clear();
        }
        Op::DeleteSet { table: id, set } => {
            let t = table(ruleset, id)?;
            check_unreferenced(t, set, "set")?;
            t.sets.remove(set).ok_or("delete: no set")?;
        }
        Op::DeleteMap { table: id, map } => {
            let t = table(ruleset, id)?;
            check_unreferenced(t, map, "map")?;
            t.maps.remove(map).ok_or("delete: no map")?;
        }
        Op::AddElements {
            table: id,
            set,
            elements,
        } => {
            let s = table(ruleset, id)?
                .sets
                .get_mut(set)
                .map(std::sync::Arc::make_mut)
                .ok_or("add element: no set")?;
            s.elements.extend(elements.iter().cloned());
        }
        Op::DeleteElements {
            table: id,
            set,
            elements,
        } => {
            let s = table(ruleset, id)?
                .sets
                .get_mut(set)
                .map(std::sync::Arc::make_mut)
                .ok_or("delete element: no set")?;
            for e in elements {
                if !s.elements.remove(e) {
                    return Err(format!("element {e} does not exist"));
                }
            }
        }
        Op::AddMapEntries {
            table: id,
            map,
            entries,
        } => {
            let t = table(ruleset, id)?;
            for (_, v) in entries {
                if let Some(target) = v.target() {
                    if !t.chains.contains_key(target) {
                        return Err(format!("entry jumps to missing chain {target}"));
                    }
                }
            }
            let m = t
                .maps
                .get_mut(map)
                .map(std::sync::Arc::make_mut)
                .ok_or("add element: no map")?;
            for (k, v) in entries {
                if let Some(old) = m.entries.insert(k.clone(), v.clone()) {
                    if &old != v {
                        return Err(format!("key {k} exists with another verdict"));
                    }
                }
            }
        }
        Op::DeleteMapEntries {
            table: id,
            map,
            keys,
        } => {
            let m = table(ruleset, id)?
                .maps
                .get_mut(map)
                .map(std::sync::Arc::make_mut)
                .ok_or("delete element: no map")?;
            for k in keys {
                m.entries
                    .remove(k)
                    .ok_or_else(|| format!("key {k} does not exist"))?;
            }
        }
    }
    Ok(())
}

const CHAINS: [&str; 4] = ["a", "b", "c", "fwd"];

fn table() -> impl Strategy<Value = Table> {
    let chains = prop::sample::subsequence(CHAINS.to_vec(), 0..=4);
    let set_s = prop::option::of((any::<bool>(), prop::collection::btree_set(0u8..8, 0..5)));
    // "x" is a set in some tables and a map in others.
    let x_kind = prop_oneof![Just(0u8), Just(1), Just(2)];
    let prio = prop_oneof![Just(0), Just(-150)];
    let policy = prop_oneof![Just(Policy::Accept), Just(Policy::Drop)];
    (
        chains,
        set_s,
        x_kind,
        prio,
        policy,
        prop::collection::vec((0usize..8, 0usize..8, any::<bool>()), 0..12),
    )
        .prop_map(|(chains, set_s, x_kind, prio, policy, picks)| {
            let mut table = Table::new();
            if let Some((interval, elems)) = set_s {
                table.sets.insert(
                    "s".into(),
                    std::sync::Arc::new(
                        Set::new(DataType::Ipv4Addr, interval)
                            .with_elements(elems.into_iter().map(|e| Value::addr([10, 0, 0, e]))),
                    ),
                );
            }
            let regular: Vec<&str> = chains.iter().copied().filter(|c| *c != "fwd").collect();
            for c in &chains {
                let chain = if *c == "fwd" {
                    Chain::base(BaseChain::filter(Hook::Forward, prio, policy), [])
                } else {
                    Chain::default()
                };
                table
                    .chains
                    .insert(c.to_string(), std::sync::Arc::new(chain));
            }
            match (x_kind, regular.first()) {
                (1, _) => {
                    table.sets.insert(
                        "x".into(),
                        std::sync::Arc::new(
                            Set::new(DataType::IfName, false).with_elements([Value::name("eth0")]),
                        ),
                    );
                }
                (2, Some(target)) => {
                    table.maps.insert(
                        "x".into(),
                        std::sync::Arc::new(
                            Map::new(DataType::IfName, false).with_entries(
                                regular
                                    .iter()
                                    .enumerate()
                                    .map(|(i, t)| {
                                        (Value::name(format!("cali{i}")), Verdict::goto(*t))
                                    })
                                    .chain([(Value::name("eth0"), Verdict::jump(*target))]),
                            ),
                        ),
                    );
                }
                _ => {}
            }
            // Rules: jumps to later regular chains (no loops), set lookups.
            for (from, to, lookup) in picks {
                let Some(from_name) = chains.get(from % chains.len().max(1)).copied() else {
                    continue;
                };
                let mut rule = Rule::new();
                if lookup && table.sets.contains_key("s") {
                    rule = rule.matching(Key::Saddr(IpFamily::V4), Rhs::set("s"));
                }
                if lookup && table.maps.contains_key("x") {
                    rule = rule.vmap(Key::Iifname, "x");
                } else {
                    let later: Vec<&&str> = regular
                        .iter()
                        .filter(|c| from_name == "fwd" || **c > from_name)
                        .collect();
                    rule = match later.get(to % later.len().max(1)) {
                        Some(target) => rule.jump(**target),
                        None => rule.accept(),
                    };
                }
                table
                    .chains
                    .get_mut(from_name)
                    .map(std::sync::Arc::make_mut)
                    .expect("chain")
                    .rules
                    .push(rule);
            }
            table
        })
}

fn ruleset() -> impl Strategy<Value = Ruleset> {
    prop::option::weighted(0.9, table()).prop_map(|t| match t {
        Some(t) => Ruleset::new().with_table(TableId::inet("t"), t),
        None => Ruleset::new(),
    })
}

fn rulesets() -> impl Strategy<Value = (Ruleset, Ruleset)> {
    (ruleset(), ruleset())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn diff_takes_any_ruleset_to_any_other((current, desired) in rulesets()) {
        prop_assert!(current.validate().is_empty(), "{:?}", current.validate());
        prop_assert!(desired.validate().is_empty(), "{:?}", desired.validate());
        let transaction = Transaction::diff(&current, &desired);
        let mut state = current.clone();
        for (i, op) in transaction.ops.iter().enumerate() {
            if let Err(why) = apply(&mut state, op) {
                return Err(TestCaseError::fail(format!("statement {} `{op}` refused: {why}\n{}", i + 1, transaction.render())));
            }
        }
        prop_assert_eq!(&state, &desired);
        prop_assert!(Transaction::diff(&desired, &desired).is_empty());

        // Nothing is deleted and re-added that did not change.
        let deleted: BTreeSet<String> = transaction.ops.iter().filter_map(|op| match op {
            Op::DeleteChain { chain, .. } => Some(chain.clone()),
            Op::DeleteSet { set, .. } => Some(set.clone()),
            _ => None,
        }).collect();
        for name in deleted {
            let (t, d) = (&current.tables[&TableId::inet("t")], desired.tables.get(&TableId::inet("t")));
            if let (Some(h), Some(w)) = (t.chains.get(&name), d.and_then(|d| d.chains.get(&name))) {
                prop_assert!(h.base.map(|b| (b.kind, b.hook, b.priority)) != w.base.map(|b| (b.kind, b.hook, b.priority)), "chain {} re-created needlessly", name);
            }
        }
    }
}
