//! The value model: a [`Ruleset`] is the complete state of the tables the
//! agent owns. Everything is kept in `BTreeMap`s so that rendering, diffing
//! and golden files are deterministic.
//!
//! Chains, sets and maps are held behind [`Arc`]: cloning a ruleset copies
//! pointers, and two rulesets that share a chain (the same allocation) are
//! known to agree on it without looking at its rules. A generator that
//! keeps the chains it did not change from one generation to the next
//! makes the reconciler's diff, validation and copy of the applied state
//! cost in proportion to what changed ([`Arc::ptr_eq`] is the test). To
//! edit a chain in place, use [`Arc::make_mut`].

pub mod rule;
pub mod value;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

pub use rule::{IpFamily, Key, Log, Match, PortProto, Rhs, Rule, Statement, Verdict};
pub use value::{CtState, DataType, Value};

/// The address family of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Family {
    /// IPv4 and IPv6 together.
    Inet,
    Ip,
    Ip6,
}

impl Family {
    pub fn nft_name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }

    pub fn from_nft_name(name: &str) -> Option<Family> {
        match name {
            "inet" => Some(Family::Inet),
            "ip" => Some(Family::Ip),
            "ip6" => Some(Family::Ip6),
            _ => None,
        }
    }
}

/// A table's identity: family and name, e.g. `inet calico`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableId {
    pub family: Family,
    pub name: String,
}

impl TableId {
    pub fn new(family: Family, name: impl Into<String>) -> TableId {
        TableId {
            family,
            name: name.into(),
        }
    }

    /// `inet <name>`.
    pub fn inet(name: impl Into<String>) -> TableId {
        TableId::new(Family::Inet, name)
    }
}

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.family.nft_name(), self.name)
    }
}

/// The tables the agent owns, and everything in them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ruleset {
    pub tables: BTreeMap<TableId, Table>,
}

impl Ruleset {
    pub fn new() -> Ruleset {
        Ruleset::default()
    }

    /// The table `id`, created empty if absent.
    pub fn table_mut(&mut self, id: TableId) -> &mut Table {
        self.tables.entry(id).or_default()
    }

    /// Adds or replaces a table.
    pub fn with_table(mut self, id: TableId, table: Table) -> Ruleset {
        self.tables.insert(id, table);
        self
    }
}

/// A table's chains, sets and verdict maps. Sets and maps share one
/// namespace in the kernel: a name may be used by only one of them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    pub chains: BTreeMap<String, Arc<Chain>>,
    pub sets: BTreeMap<String, Arc<Set>>,
    pub maps: BTreeMap<String, Arc<Map>>,
}

impl Table {
    pub fn new() -> Table {
        Table::default()
    }

    pub fn with_chain(mut self, name: impl Into<String>, chain: Chain) -> Table {
        self.chains.insert(name.into(), Arc::new(chain));
        self
    }

    pub fn with_set(mut self, name: impl Into<String>, set: Set) -> Table {
        self.sets.insert(name.into(), Arc::new(set));
        self
    }

    pub fn with_map(mut self, name: impl Into<String>, map: Map) -> Table {
        self.maps.insert(name.into(), Arc::new(map));
        self
    }
}

/// The kind of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    /// Like filter, but re-routes the packet if marks or addresses changed
    /// (output hook only).
    Route,
}

impl ChainType {
    pub fn nft_name(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }

    pub fn from_nft_name(name: &str) -> Option<ChainType> {
        match name {
            "filter" => Some(ChainType::Filter),
            "nat" => Some(ChainType::Nat),
            "route" => Some(ChainType::Route),
            _ => None,
        }
    }
}

/// Where in the packet path a base chain is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    pub fn nft_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }

    pub fn from_nft_name(name: &str) -> Option<Hook> {
        match name {
            "prerouting" => Some(Hook::Prerouting),
            "input" => Some(Hook::Input),
            "forward" => Some(Hook::Forward),
            "output" => Some(Hook::Output),
            "postrouting" => Some(Hook::Postrouting),
            _ => None,
        }
    }
}

/// What a base chain does with a packet no rule decided on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn nft_name(self) -> &'static str {
        match self {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        }
    }
}

/// The attachment of a base chain: type, hook, priority and policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    /// Lower runs first; `filter` is 0, `mangle` -150, `raw` -300.
    pub priority: i32,
    pub policy: Policy,
}

impl BaseChain {
    pub fn filter(hook: Hook, priority: i32, policy: Policy) -> BaseChain {
        BaseChain {
            kind: ChainType::Filter,
            hook,
            priority,
            policy,
        }
    }

    /// Whether `other` differs from this only in policy, which the kernel
    /// can change in place (type, hook and priority cannot be changed).
    pub fn same_attachment(&self, other: &BaseChain) -> bool {
        self.kind == other.kind && self.hook == other.hook && self.priority == other.priority
    }
}

/// A chain: a base chain (attached to a hook) or a regular chain (reached
/// by jump, goto or a verdict map).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

impl Chain {
    /// A regular chain with `rules`.
    pub fn regular(rules: impl IntoIterator<Item = Rule>) -> Chain {
        Chain {
            base: None,
            rules: rules.into_iter().collect(),
        }
    }

    /// A base chain with `rules`.
    pub fn base(base: BaseChain, rules: impl IntoIterator<Item = Rule>) -> Chain {
        Chain {
            base: Some(base),
            rules: rules.into_iter().collect(),
        }
    }
}

/// A named set. Prefixes, ranges and wildcards need `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Set {
    pub key: DataType,
    pub interval: bool,
    pub elements: BTreeSet<Value>,
}

impl Set {
    pub fn new(key: DataType, interval: bool) -> Set {
        Set {
            key,
            interval,
            elements: BTreeSet::new(),
        }
    }

    /// Adds elements in the form nft prints them back in.
    pub fn with_elements(mut self, elements: impl IntoIterator<Item = Value>) -> Set {
        self.elements
            .extend(elements.into_iter().map(|v| v.canonical_element()));
        self
    }

    /// Whether `other` has the same definition (type and flags), so that
    /// one can become the other by changing elements only.
    pub fn same_definition(&self, other: &Set) -> bool {
        self.key == other.key && self.interval == other.interval
    }
}

/// A named verdict map, e.g. interface name → `goto` the interface's chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    pub key: DataType,
    pub interval: bool,
    pub entries: BTreeMap<Value, Verdict>,
}

impl Map {
    pub fn new(key: DataType, interval: bool) -> Map {
        Map {
            key,
            interval,
            entries: BTreeMap::new(),
        }
    }

    pub fn with_entries(mut self, entries: impl IntoIterator<Item = (Value, Verdict)>) -> Map {
        self.entries
            .extend(entries.into_iter().map(|(k, v)| (k.canonical_element(), v)));
        self
    }

    pub fn same_definition(&self, other: &Map) -> bool {
        self.key == other.key && self.interval == other.interval
    }
}

/// One name of two sorted maps walked side by side.
pub(crate) enum Paired<'a, T> {
    Before(&'a str),
    After(&'a str, &'a T),
    Both(&'a str, &'a T, &'a T),
}

/// The names of `before` and `after` in order, each with what the two maps
/// hold for it: one pass over both, without a lookup per name.
pub(crate) fn paired<'a, T>(
    before: &'a BTreeMap<String, T>,
    after: &'a BTreeMap<String, T>,
) -> impl Iterator<Item = Paired<'a, T>> {
    let mut b = before.iter().peekable();
    let mut a = after.iter().peekable();
    std::iter::from_fn(move || match (b.peek(), a.peek()) {
        (None, None) => None,
        (Some(_), None) => b.next().map(|(n, _)| Paired::Before(n)),
        (None, Some(_)) => a.next().map(|(n, v)| Paired::After(n, v)),
        (Some((bn, _)), Some((an, _))) => match bn.cmp(an) {
            std::cmp::Ordering::Less => b.next().map(|(n, _)| Paired::Before(n)),
            std::cmp::Ordering::Greater => a.next().map(|(n, v)| Paired::After(n, v)),
            std::cmp::Ordering::Equal => {
                let (n, bv) = b.next()?;
                let (_, av) = a.next()?;
                Some(Paired::Both(n, bv, av))
            }
        },
    })
}
