//! The difference between two rulesets as one transaction.
//!
//! Only what changed is sent: set and map elements are added and removed
//! one by one; a chain whose rules changed is flushed and refilled within
//! the same transaction (so there is no moment without its rules); chains,
//! sets and maps are created and deleted as needed. Base chains whose hook,
//! type or priority changed, and sets or maps whose type or flags changed,
//! are deleted and re-created.
//!
//! Statements are ordered in phases so that everything exists before it is
//! referred to and every reference is gone before its target is deleted:
//!
//! 1. declare new tables, chains, sets and maps (and update base-chain policies);
//! 2. flush chains whose rules change, and chains about to be deleted;
//! 3. remove stale map entries and set elements (or flush unreadable ones);
//! 4. delete maps, sets and chains that go away or must be re-created;
//! 5. re-create the ones whose definition changed;
//! 6. add set elements and map entries;
//! 7. add the rules of new and changed chains.
//!
//! Tables are handled one after the other; nftables has no references
//! between tables.

use std::collections::{BTreeMap, BTreeSet};

use std::sync::Arc;

use crate::model::{Chain, Map, Paired, Ruleset, Set, Table, TableId, Value, paired};
use crate::parse::{Observed, Unreadable};
use crate::transaction::{Op, Transaction};

impl Transaction {
    /// The transaction from `current` to `desired`. Tables in `current` that
    /// are not in `desired` are deleted.
    pub fn diff(current: &Ruleset, desired: &Ruleset) -> Transaction {
        diff_with(current, &BTreeMap::new(), desired)
    }

    /// The transaction from what was read from the kernel to `desired`;
    /// whatever could not be read is overwritten.
    pub fn diff_observed(current: &Observed, desired: &Ruleset) -> Transaction {
        diff_with(&current.ruleset, &current.unreadable, desired)
    }

    /// Creates `desired` in a kernel that has none of its tables.
    pub fn create(desired: &Ruleset) -> Transaction {
        Transaction::diff(&Ruleset::default(), desired)
    }

    /// Deletes and re-creates every table of `desired` in one transaction:
    /// what a driver without a diff would send on every change.
    pub fn replace_all(desired: &Ruleset) -> Transaction {
        let mut ops = Vec::new();
        for (id, table) in &desired.tables {
            // `add` first so that `delete` cannot fail on a missing table.
            ops.push(Op::AddTable(id.clone()));
            ops.push(Op::DeleteTable(id.clone()));
            ops.push(Op::AddTable(id.clone()));
            TableDiff::new(id, &Table::default(), table, &BTreeMap::new()).write(&mut ops);
        }
        Transaction { ops }
    }
}

fn diff_with(
    current: &Ruleset,
    unreadable: &BTreeMap<Unreadable, String>,
    desired: &Ruleset,
) -> Transaction {
    let mut ops = Vec::new();
    let empty = Table::default();
    for id in current.tables.keys() {
        if !desired.tables.contains_key(id) {
            ops.push(Op::DeleteTable(id.clone()));
        }
    }
    for (id, want) in &desired.tables {
        match current.tables.get(id) {
            None => {
                ops.push(Op::AddTable(id.clone()));
                TableDiff::new(id, &empty, want, unreadable).write(&mut ops);
            }
            Some(_) if unreadable.contains_key(&Unreadable::Table(id.clone())) => {
                ops.push(Op::DeleteTable(id.clone()));
                ops.push(Op::AddTable(id.clone()));
                TableDiff::new(id, &empty, want, unreadable).write(&mut ops);
            }
            Some(have) => TableDiff::new(id, have, want, unreadable).write(&mut ops),
        }
    }
    Transaction { ops }
}

/// What happens to one set, map or chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    /// Only in the desired table.
    Create,
    /// Only in the current table.
    Remove,
    /// In both with different definitions: delete, then create.
    Recreate,
    /// Same definition; contents updated incrementally.
    Update,
    /// The very same object (shared with the current state): nothing to
    /// compare or send.
    Unchanged,
    /// Same definition; contents unreadable or references must be dropped:
    /// flush, then fill with the desired contents.
    Refill,
}

struct TableDiff<'a> {
    id: &'a TableId,
    have: &'a Table,
    want: &'a Table,
    sets: BTreeMap<&'a str, Plan>,
    maps: BTreeMap<&'a str, Plan>,
    chains: BTreeMap<&'a str, Plan>,
}

fn plan_objects<'a, T>(
    have: &'a BTreeMap<String, Arc<T>>,
    want: &'a BTreeMap<String, Arc<T>>,
    same_definition: impl Fn(&T, &T) -> bool,
    unreadable: impl Fn(&str) -> bool,
) -> BTreeMap<&'a str, Plan> {
    paired(have, want)
        .map(|pair| match pair {
            Paired::Before(name) => (name, Plan::Remove),
            Paired::After(name, _) => (name, Plan::Create),
            Paired::Both(name, h, w) => {
                let plan = if !same_definition(h, w) {
                    Plan::Recreate
                } else if unreadable(name) {
                    Plan::Refill
                } else if Arc::ptr_eq(h, w) {
                    Plan::Unchanged
                } else {
                    Plan::Update
                };
                (name, plan)
            }
        })
        .collect()
}

impl<'a> TableDiff<'a> {
    fn new(
        id: &'a TableId,
        have: &'a Table,
        want: &'a Table,
        unreadable: &BTreeMap<Unreadable, String>,
    ) -> TableDiff<'a> {
        let is = |u: Unreadable| !unreadable.is_empty() && unreadable.contains_key(&u);
        let sets = plan_objects(&have.sets, &want.sets, Set::same_definition, |n| {
            is(Unreadable::SetElements(id.clone(), n.to_string()))
        });
        let maps = plan_objects(&have.maps, &want.maps, Map::same_definition, |n| {
            is(Unreadable::MapEntries(id.clone(), n.to_string()))
        });
        // A chain's definition is its base-chain attachment; a policy change
        // alone is applied in place.
        let same_chain = |h: &Chain, w: &Chain| match (&h.base, &w.base) {
            (None, None) => true,
            (Some(h), Some(w)) => h.same_attachment(w),
            _ => false,
        };
        let mut chains = plan_objects(&have.chains, &want.chains, same_chain, |_| false);

        // With interface wildcards in an interval set, nft 1.0.6 refuses to
        // delete a wildcard ("element does not exist") and the kernel
        // refuses some additions next to one ("interval overlaps"); filling
        // such a set from empty in the same transaction always works.
        let mut sets = sets;
        for (name, plan) in sets.iter_mut() {
            if *plan == Plan::Update {
                let (h, w) = (&have.sets[*name], &want.sets[*name]);
                let wild = h
                    .elements
                    .iter()
                    .chain(&w.elements)
                    .any(Value::has_wildcard);
                if wild && h.elements != w.elements {
                    *plan = Plan::Refill;
                }
            }
        }
        let mut maps = maps;
        for (name, plan) in maps.iter_mut() {
            if *plan == Plan::Update {
                let (h, w) = (&have.maps[*name], &want.maps[*name]);
                let wild = h
                    .entries
                    .keys()
                    .chain(w.entries.keys())
                    .any(Value::has_wildcard);
                if wild && h.entries != w.entries {
                    *plan = Plan::Refill;
                }
            }
        }

        // Sets and maps that are deleted (for good or to be re-created)
        // must first lose every rule that refers to them.
        let doomed: BTreeSet<&str> = sets
            .iter()
            .chain(maps.iter())
            .filter(|(_, p)| matches!(p, Plan::Remove | Plan::Recreate))
            .map(|(n, _)| *n)
            .collect();
        for (name, plan) in chains.iter_mut() {
            let untouched = *plan == Plan::Unchanged && doomed.is_empty() && unreadable.is_empty();
            if untouched || !matches!(plan, Plan::Update | Plan::Unchanged) {
                continue;
            }
            let (h, w) = (&have.chains[*name], &want.chains[*name]);
            let refers_to_doomed = !doomed.is_empty()
                && h.rules
                    .iter()
                    .flat_map(|r| r.set_refs())
                    .any(|s| doomed.contains(s));
            let unreadable_rules = is(Unreadable::ChainRules(id.clone(), name.to_string()));
            let changed = *plan == Plan::Update && h.rules != w.rules;
            if changed || refers_to_doomed || unreadable_rules {
                *plan = Plan::Refill;
            }
        }
        TableDiff {
            id,
            have,
            want,
            sets,
            maps,
            chains,
        }
    }

    fn write(&self, ops: &mut Vec<Op>) {
        let table = || self.id.clone();
        let named = |plans: &BTreeMap<&'a str, Plan>, which: &[Plan]| -> Vec<&'a str> {
            plans
                .iter()
                .filter(|(_, p)| which.contains(p))
                .map(|(n, _)| *n)
                .collect()
        };
        // A new set or map whose name the current table uses for the other
        // kind can only be created after that one is deleted.
        let name_in_use =
            |n: &str| self.have.sets.contains_key(n) || self.have.maps.contains_key(n);

        // 1. Declarations.
        for name in named(&self.chains, &[Plan::Create]) {
            ops.push(Op::AddChain {
                table: table(),
                chain: name.to_string(),
                base: self.want.chains[name].base,
            });
        }
        for name in named(&self.chains, &[Plan::Update, Plan::Refill]) {
            let (h, w) = (&self.have.chains[name], &self.want.chains[name]);
            if let (Some(hb), Some(wb)) = (h.base, w.base) {
                if hb.policy != wb.policy {
                    ops.push(Op::AddChain {
                        table: table(),
                        chain: name.to_string(),
                        base: Some(wb),
                    });
                }
            }
        }
        let early = |n: &&str| !name_in_use(n);
        for name in named(&self.sets, &[Plan::Create]).into_iter().filter(early) {
            ops.push(self.add_set(name));
        }
        for name in named(&self.maps, &[Plan::Create]).into_iter().filter(early) {
            ops.push(self.add_map(name));
        }

        // 2. Drop the rules of chains that change or go away.
        for name in named(&self.chains, &[Plan::Refill, Plan::Recreate, Plan::Remove]) {
            ops.push(Op::FlushChain {
                table: table(),
                chain: name.to_string(),
            });
        }

        // 3. Remove stale contents.
        for (name, plan) in &self.maps {
            match plan {
                Plan::Update => {
                    let (h, w) = (&self.have.maps[*name], &self.want.maps[*name]);
                    let keys: Vec<_> = h
                        .entries
                        .iter()
                        .filter(|(k, v)| w.entries.get(*k) != Some(*v))
                        .map(|(k, _)| k.clone())
                        .collect();
                    if !keys.is_empty() {
                        ops.push(Op::DeleteMapEntries {
                            table: table(),
                            map: name.to_string(),
                            keys,
                        });
                    }
                }
                Plan::Refill => ops.push(Op::FlushMap {
                    table: table(),
                    map: name.to_string(),
                }),
                _ => {}
            }
        }
        for (name, plan) in &self.sets {
            match plan {
                Plan::Update => {
                    let (h, w) = (&self.have.sets[*name], &self.want.sets[*name]);
                    let elements: Vec<_> = h.elements.difference(&w.elements).cloned().collect();
                    if !elements.is_empty() {
                        ops.push(Op::DeleteElements {
                            table: table(),
                            set: name.to_string(),
                            elements,
                        });
                    }
                }
                Plan::Refill => ops.push(Op::FlushSet {
                    table: table(),
                    set: name.to_string(),
                }),
                _ => {}
            }
        }

        // 4. Delete what goes away or is re-created: maps first (their
        // entries refer to chains), chains last.
        for name in named(&self.maps, &[Plan::Remove, Plan::Recreate]) {
            ops.push(Op::DeleteMap {
                table: table(),
                map: name.to_string(),
            });
        }
        for name in named(&self.sets, &[Plan::Remove, Plan::Recreate]) {
            ops.push(Op::DeleteSet {
                table: table(),
                set: name.to_string(),
            });
        }
        for name in named(&self.chains, &[Plan::Remove, Plan::Recreate]) {
            ops.push(Op::DeleteChain {
                table: table(),
                chain: name.to_string(),
            });
        }

        // 5. Re-create.
        for name in named(&self.chains, &[Plan::Recreate]) {
            ops.push(Op::AddChain {
                table: table(),
                chain: name.to_string(),
                base: self.want.chains[name].base,
            });
        }
        let late = |n: &&str| name_in_use(n);
        for name in named(&self.sets, &[Plan::Recreate])
            .into_iter()
            .chain(named(&self.sets, &[Plan::Create]).into_iter().filter(late))
        {
            ops.push(self.add_set(name));
        }
        for name in named(&self.maps, &[Plan::Recreate])
            .into_iter()
            .chain(named(&self.maps, &[Plan::Create]).into_iter().filter(late))
        {
            ops.push(self.add_map(name));
        }

        // 6. Fill sets and maps.
        for (name, plan) in &self.sets {
            let w = match plan {
                Plan::Remove | Plan::Unchanged => continue,
                _ => &self.want.sets[*name],
            };
            let elements: Vec<_> = match plan {
                Plan::Update => w
                    .elements
                    .difference(&self.have.sets[*name].elements)
                    .cloned()
                    .collect(),
                _ => w.elements.iter().cloned().collect(),
            };
            if !elements.is_empty() {
                ops.push(Op::AddElements {
                    table: table(),
                    set: name.to_string(),
                    elements,
                });
            }
        }
        for (name, plan) in &self.maps {
            let w = match plan {
                Plan::Remove | Plan::Unchanged => continue,
                _ => &self.want.maps[*name],
            };
            let entries: Vec<_> = match plan {
                Plan::Update => {
                    let h = &self.have.maps[*name];
                    w.entries
                        .iter()
                        .filter(|(k, v)| h.entries.get(*k) != Some(*v))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect()
                }
                _ => w
                    .entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            };
            if !entries.is_empty() {
                ops.push(Op::AddMapEntries {
                    table: table(),
                    map: name.to_string(),
                    entries,
                });
            }
        }

        // 7. Rules of new and changed chains.
        for name in named(&self.chains, &[Plan::Create, Plan::Recreate, Plan::Refill]) {
            for rule in &self.want.chains[name].rules {
                ops.push(Op::AddRule {
                    table: table(),
                    chain: name.to_string(),
                    rule: rule.clone(),
                });
            }
        }
    }

    fn add_set(&self, name: &str) -> Op {
        let set = &self.want.sets[name];
        Op::AddSet {
            table: self.id.clone(),
            set: name.to_string(),
            key: set.key.clone(),
            interval: set.interval,
        }
    }

    fn add_map(&self, name: &str) -> Op {
        let map = &self.want.maps[name];
        Op::AddMap {
            table: self.id.clone(),
            map: name.to_string(),
            key: map.key.clone(),
            interval: map.interval,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BaseChain, DataType, Hook, IpFamily, Key, Policy, Rhs, Rule, Verdict};

    fn id() -> TableId {
        TableId::inet("t")
    }

    fn ip(last: u8) -> Value {
        Value::addr([10, 0, 0, last])
    }

    fn set(elements: &[u8]) -> Set {
        Set::new(DataType::Ipv4Addr, false).with_elements(elements.iter().map(|e| ip(*e)))
    }

    fn ruleset(table: Table) -> Ruleset {
        Ruleset::new().with_table(id(), table)
    }

    fn jump(to: &str) -> Rule {
        Rule::new().jump(to)
    }

    fn base(policy: Policy, priority: i32, rules: Vec<Rule>) -> Chain {
        Chain::base(BaseChain::filter(Hook::Forward, priority, policy), rules)
    }

    fn dispatch(entries: &[(&str, &str)]) -> Map {
        Map::new(DataType::IfName, false).with_entries(
            entries
                .iter()
                .map(|(k, v)| (Value::name(*k), Verdict::goto(*v))),
        )
    }

    fn lines(t: &Transaction) -> Vec<String> {
        t.ops.iter().map(|o| o.to_string()).collect()
    }

    #[test]
    fn diffs_are_minimal_and_ordered() {
        let accept = || Rule::new().accept();
        let cases: Vec<(&str, Table, Table, Vec<&str>)> = vec![
            (
                "nothing changed",
                Table::new()
                    .with_set("s", set(&[1, 2]))
                    .with_chain("a", Chain::regular([accept()])),
                Table::new()
                    .with_set("s", set(&[1, 2]))
                    .with_chain("a", Chain::regular([accept()])),
                vec![],
            ),
            (
                "element added",
                Table::new().with_set("s", set(&[1, 2])),
                Table::new().with_set("s", set(&[1, 2, 3])),
                vec!["add element inet t s { 10.0.0.3 }"],
            ),
            (
                "elements removed and added: removals first",
                Table::new().with_set("s", set(&[1, 2, 3])),
                Table::new().with_set("s", set(&[2, 4, 5])),
                vec![
                    "delete element inet t s { 10.0.0.1, 10.0.0.3 }",
                    "add element inet t s { 10.0.0.4, 10.0.0.5 }",
                ],
            ),
            (
                "changed chain is flushed and refilled; others untouched",
                Table::new()
                    .with_chain("a", Chain::regular([accept()]))
                    .with_chain("b", Chain::regular([accept()])),
                Table::new()
                    .with_chain(
                        "a",
                        Chain::regular([Rule::new().counter().drop(), accept()]),
                    )
                    .with_chain("b", Chain::regular([accept()])),
                vec![
                    "flush chain inet t a",
                    "add rule inet t a counter drop",
                    "add rule inet t a accept",
                ],
            ),
            (
                "new chain is declared before the jump to it",
                Table::new().with_chain("a", Chain::regular([accept()])),
                Table::new()
                    .with_chain("a", Chain::regular([jump("z")]))
                    .with_chain("z", Chain::regular([accept()])),
                vec![
                    "add chain inet t z",
                    "flush chain inet t a",
                    "add rule inet t a jump z",
                    "add rule inet t z accept",
                ],
            ),
            (
                "removed chain is deleted after the jump to it is gone",
                Table::new()
                    .with_chain("a", Chain::regular([jump("b"), accept()]))
                    .with_chain("b", Chain::regular([jump("c")]))
                    .with_chain("c", Chain::regular([accept()])),
                Table::new()
                    .with_chain("a", Chain::regular([accept()]))
                    .with_chain("c", Chain::regular([accept()])),
                vec![
                    "flush chain inet t a",
                    "flush chain inet t b",
                    "delete chain inet t b",
                    "add rule inet t a accept",
                ],
            ),
            (
                "map entries: added, removed, retargeted",
                Table::new()
                    .with_map("m", dispatch(&[("cali1", "x"), ("cali2", "x")]))
                    .with_chain("x", Chain::regular([accept()]))
                    .with_chain("y", Chain::regular([accept()])),
                Table::new()
                    .with_map("m", dispatch(&[("cali2", "y"), ("cali3", "x")]))
                    .with_chain("x", Chain::regular([accept()]))
                    .with_chain("y", Chain::regular([accept()])),
                vec![
                    r#"delete element inet t m { "cali1", "cali2" }"#,
                    r#"add element inet t m { "cali2" : goto y, "cali3" : goto x }"#,
                ],
            ),
            (
                "workload removed: entry, then its chain",
                Table::new()
                    .with_map(
                        "m",
                        dispatch(&[("cali1", "tw-cali1"), ("cali2", "tw-cali2")]),
                    )
                    .with_chain("tw-cali1", Chain::regular([accept()]))
                    .with_chain("tw-cali2", Chain::regular([accept()]))
                    .with_chain(
                        "fwd",
                        base(Policy::Accept, 0, vec![Rule::new().vmap(Key::Oifname, "m")]),
                    ),
                Table::new()
                    .with_map("m", dispatch(&[("cali2", "tw-cali2")]))
                    .with_chain("tw-cali2", Chain::regular([accept()]))
                    .with_chain(
                        "fwd",
                        base(Policy::Accept, 0, vec![Rule::new().vmap(Key::Oifname, "m")]),
                    ),
                vec![
                    "flush chain inet t tw-cali1",
                    r#"delete element inet t m { "cali1" }"#,
                    "delete chain inet t tw-cali1",
                ],
            ),
            (
                "set type changed: referring chain refilled around the re-creation",
                Table::new().with_set("s", set(&[1])).with_chain(
                    "a",
                    Chain::regular([Rule::new()
                        .matching(Key::Saddr(IpFamily::V4), Rhs::set("s"))
                        .accept()]),
                ),
                Table::new()
                    .with_set(
                        "s",
                        Set::new(DataType::Ipv4Addr, true).with_elements([Value::net(
                            "10.1.0.0/16".parse::<ipnet::IpNet>().unwrap(),
                        )]),
                    )
                    .with_chain(
                        "a",
                        Chain::regular([Rule::new()
                            .matching(Key::Saddr(IpFamily::V4), Rhs::set("s"))
                            .accept()]),
                    ),
                vec![
                    "flush chain inet t a",
                    "delete set inet t s",
                    "add set inet t s { type ipv4_addr; flags interval; }",
                    "add element inet t s { 10.1.0.0/16 }",
                    "add rule inet t a ip saddr @s accept",
                ],
            ),
            (
                "base chain policy changes in place",
                Table::new().with_chain("fwd", base(Policy::Accept, 0, vec![accept()])),
                Table::new().with_chain("fwd", base(Policy::Drop, 0, vec![accept()])),
                vec!["add chain inet t fwd { type filter hook forward priority 0; policy drop; }"],
            ),
            (
                "base chain priority change re-creates it",
                Table::new().with_chain("fwd", base(Policy::Accept, 0, vec![accept()])),
                Table::new().with_chain("fwd", base(Policy::Accept, -150, vec![accept()])),
                vec![
                    "flush chain inet t fwd",
                    "delete chain inet t fwd",
                    "add chain inet t fwd { type filter hook forward priority -150; policy accept; }",
                    "add rule inet t fwd accept",
                ],
            ),
            (
                "a set becomes a map of the same name",
                Table::new().with_set("x", set(&[1])),
                Table::new()
                    .with_map("x", dispatch(&[("cali1", "c")]))
                    .with_chain("c", Chain::regular([accept()])),
                vec![
                    "add chain inet t c",
                    "delete set inet t x",
                    "add map inet t x { type ifname : verdict; }",
                    r#"add element inet t x { "cali1" : goto c }"#,
                    "add rule inet t c accept",
                ],
            ),
            (
                "changing a set of interface wildcards refills it",
                Table::new().with_set(
                    "w",
                    Set::new(DataType::IfName, true)
                        .with_elements([Value::name("cali*"), Value::name("eth0")]),
                ),
                Table::new().with_set(
                    "w",
                    Set::new(DataType::IfName, true).with_elements([Value::name("eth0")]),
                ),
                vec!["flush set inet t w", r#"add element inet t w { "eth0" }"#],
            ),
        ];
        for (name, have, want, expected) in cases {
            let t = Transaction::diff(&ruleset(have), &ruleset(want.clone()));
            assert_eq!(lines(&t), expected, "case: {name}");
            assert!(
                ruleset(want).validate().is_empty(),
                "case {name} uses an invalid ruleset"
            );
        }
    }

    #[test]
    fn tables_are_created_and_deleted_whole() {
        let a = TableId::inet("a");
        let b = TableId::new(crate::model::Family::Ip, "b");
        let current =
            Ruleset::new().with_table(a.clone(), Table::new().with_chain("c", Chain::default()));
        let desired =
            Ruleset::new().with_table(b.clone(), Table::new().with_chain("c", Chain::default()));
        assert_eq!(
            lines(&Transaction::diff(&current, &desired)),
            vec!["delete table inet a", "add table ip b", "add chain ip b c"]
        );
    }

    #[test]
    fn unreadable_state_is_overwritten() {
        let table = Table::new()
            .with_set("s", set(&[1]))
            .with_chain("a", Chain::regular([Rule::new().accept()]));
        let desired = ruleset(table.clone());
        let mut observed = Observed {
            ruleset: desired.clone(),
            unreadable: BTreeMap::new(),
        };
        observed.unreadable.insert(
            Unreadable::ChainRules(id(), "a".into()),
            "masquerade".into(),
        );
        observed.unreadable.insert(
            Unreadable::SetElements(id(), "s".into()),
            "element with comment".into(),
        );
        assert_eq!(
            lines(&Transaction::diff_observed(&observed, &desired)),
            vec![
                "flush chain inet t a",
                "flush set inet t s",
                "add element inet t s { 10.0.0.1 }",
                "add rule inet t a accept",
            ]
        );
        observed
            .unreadable
            .insert(Unreadable::Table(id()), "a flowtable".into());
        assert_eq!(
            lines(&Transaction::diff_observed(&observed, &desired)),
            vec![
                "delete table inet t",
                "add table inet t",
                "add chain inet t a",
                "add set inet t s { type ipv4_addr; }",
                "add element inet t s { 10.0.0.1 }",
                "add rule inet t a accept",
            ]
        );
    }

    #[test]
    fn diff_applied_to_current_gives_desired() {
        // Re-diffing from the target of a diff finds nothing to do, for
        // every pair of the sample tables in both directions.
        let tables = [
            Table::new(),
            Table::new()
                .with_set("s", set(&[1, 2]))
                .with_chain("a", Chain::regular([jump("b")]))
                .with_chain("b", Chain::default()),
            Table::new()
                .with_set("s", set(&[3]))
                .with_chain("b", Chain::regular([Rule::new().drop()])),
        ];
        for from in &tables {
            for to in &tables {
                let (from, to) = (ruleset(from.clone()), ruleset(to.clone()));
                assert!(Transaction::diff(&to, &to).is_empty());
                let t = Transaction::diff(&from, &to);
                assert_eq!(from == to, t.is_empty());
            }
        }
    }

    /// Objects shared with the current ruleset (the same `Arc`) send
    /// nothing, except a shared chain that refers to a set being re-created,
    /// which must lose its rules first and get them back after.
    #[test]
    fn shared_objects_are_skipped_unless_their_references_go() {
        let current = ruleset(
            Table::new()
                .with_set("s", set(&[1, 2]))
                .with_chain(
                    "a",
                    Chain::regular([Rule::new()
                        .matching(Key::Saddr(IpFamily::V4), Rhs::set("s"))
                        .accept()]),
                )
                .with_chain("b", Chain::regular([jump("a")]))
                .with_map("m", dispatch(&[("cali1", "a")])),
        );
        let shared = current.clone();
        assert!(Transaction::diff(&current, &shared).ops.is_empty());

        let mut desired = current.clone();
        let table = desired.tables.get_mut(&id()).unwrap();
        table
            .chains
            .insert("b".into(), Arc::new(Chain::regular([jump("a"), jump("a")])));
        assert_eq!(
            lines(&Transaction::diff(&current, &desired)),
            vec![
                "flush chain inet t b",
                "add rule inet t b jump a",
                "add rule inet t b jump a",
            ]
        );

        let table = desired.tables.get_mut(&id()).unwrap();
        table
            .sets
            .insert("s".into(), Arc::new(Set::new(DataType::Ipv4Addr, true)));
        let ops = lines(&Transaction::diff(&current, &desired));
        assert!(ops.contains(&"flush chain inet t a".to_string()), "{ops:?}");
        assert!(ops.contains(&"delete set inet t s".to_string()), "{ops:?}");
        assert!(
            ops.iter().any(|o| o.starts_with("add rule inet t a ")),
            "{ops:?}"
        );
    }
}
