//! Checks a desired ruleset before anything is sent to the kernel.
//!
//! Two kinds of problem are caught here. Some would make nft reject the
//! whole transaction (a jump to a chain that does not exist, a prefix in a
//! set without the interval flag); catching them here gives a message that
//! names the rule. Others nft would accept but store in a different form
//! than written (an anonymous set of adjacent prefixes is merged; a
//! `meta l4proto tcp` before `th dport` is folded into `tcp dport`): the
//! ruleset read back would never equal the desired one, and every repair
//! would rewrite the chain. Those forms are rejected with the canonical
//! spelling to use instead.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use ipnet::IpNet;

use crate::model::value::{Interval, merge_anonymous};
use crate::model::{
    Chain, ChainType, DataType, Hook, IpFamily, Key, Map, Match, PortProto, Rhs, Rule, Ruleset,
    Set, Statement, Table, TableId, Value, Verdict,
};
use crate::model::{Paired, paired};

/// Longest name of a table, chain, set or map nft accepts.
pub const MAX_NAME_LEN: usize = 255;
/// Longest rule comment the kernel stores.
pub const MAX_COMMENT_LEN: usize = 128;
/// Longest log prefix the kernel accepts.
pub const MAX_LOG_PREFIX_LEN: usize = 127;
/// Longest interface name (IFNAMSIZ - 1).
pub const MAX_IFNAME_LEN: usize = 15;

/// Where in the ruleset a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub table: TableId,
    /// `chain NAME`, `set NAME` or `map NAME`, if the problem is inside one.
    pub object: Option<String>,
    /// The 1-based position of the rule in its chain.
    pub rule: Option<usize>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "table {}", self.table)?;
        if let Some(object) = &self.object {
            write!(f, ", {object}")?;
        }
        if let Some(rule) = self.rule {
            write!(f, ", rule {rule}")?;
        }
        Ok(())
    }
}

/// One thing wrong with a ruleset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{location}: {message}")]
pub struct Problem {
    pub location: Location,
    pub message: String,
}

impl Ruleset {
    /// Every problem found, in ruleset order; empty if the ruleset is valid.
    pub fn validate(&self) -> Vec<Problem> {
        let mut problems = Vec::new();
        for (id, table) in &self.tables {
            let mut v = Validator {
                table_id: id,
                table,
                location: Location {
                    table: id.clone(),
                    object: None,
                    rule: None,
                },
                problems: &mut problems,
            };
            v.table();
        }
        problems
    }

    /// [`Ruleset::validate`] for a ruleset that differs from `previous`, a
    /// ruleset known to be valid (one that passed validation), in a few
    /// chains, sets and maps: only those not shared with `previous` (the
    /// same allocation, [`Arc::ptr_eq`]) are checked, so the cost follows
    /// the change. What an unchanged chain refers to is checked again only
    /// when a chain, set or map was removed or its kind changed (a chain
    /// became a base chain, a set another type); then, and whenever a
    /// problem is found, the whole ruleset is validated, so the problems
    /// and their order are always those of [`Ruleset::validate`].
    pub fn validate_against(&self, previous: &Ruleset) -> Vec<Problem> {
        let quick = self
            .tables
            .iter()
            .all(|(id, table)| match previous.tables.get(id) {
                None => false,
                Some(before) => table_changes_are_valid(id, table, before),
            });
        if quick { Vec::new() } else { self.validate() }
    }
}

/// Whether `table` is valid given that `before` (the same table) was:
/// `false` if something is wrong or cannot be decided without a full check.
fn table_changes_are_valid(id: &TableId, table: &Table, before: &Table) -> bool {
    let mut problems = Vec::new();
    let mut v = Validator {
        table_id: id,
        table,
        location: Location {
            table: id.clone(),
            object: None,
            rule: None,
        },
        problems: &mut problems,
    };
    // Anything gone, or changed in a way an unchanged reference to it
    // could notice (a set's type, a chain becoming a base chain, a new
    // set or map taking the other kind's name), needs the full check.
    let sets = changed_objects(
        &before.sets,
        &table.sets,
        |name, old, set| old.map_or(table.maps.contains_key(name), |old| old.key != set.key),
        |name, set| {
            v.location.object = Some(format!("set {name}"));
            v.set(name, set);
        },
    );
    let maps = sets
        && changed_objects(
            &before.maps,
            &table.maps,
            |name, old, map| old.map_or(table.sets.contains_key(name), |old| old.key != map.key),
            |name, map| {
                v.location.object = Some(format!("map {name}"));
                v.map(name, map);
            },
        );
    let chains = maps
        && changed_objects(
            &before.chains,
            &table.chains,
            |_, old, chain| old.is_some_and(|old| old.base.is_some() != chain.base.is_some()),
            |name, chain| {
                v.location.object = Some(format!("chain {name}"));
                v.chain(name, chain);
            },
        );
    chains && problems.is_empty()
}

/// One kind of object from `before` to `after`: `false` if one is gone or
/// `incompatible` with what it was (`None`: it is new); otherwise `check`s
/// every one that is not shared with `before`.
fn changed_objects<T>(
    before: &BTreeMap<String, Arc<T>>,
    after: &BTreeMap<String, Arc<T>>,
    incompatible: impl Fn(&str, Option<&T>, &T) -> bool,
    mut check: impl FnMut(&str, &T),
) -> bool {
    for pair in paired(before, after) {
        let (name, old, new) = match pair {
            Paired::Before(..) => return false,
            Paired::Both(_, old, new) if Arc::ptr_eq(old, new) => continue,
            Paired::Both(name, old, new) => (name, Some(&**old), new),
            Paired::After(name, new) => (name, None, new),
        };
        if incompatible(name, old, new) {
            return false;
        }
        check(name, new);
    }
    true
}

struct Validator<'a> {
    table_id: &'a TableId,
    table: &'a Table,
    location: Location,
    problems: &'a mut Vec<Problem>,
}

/// Whether `name` is an identifier nft's scanner reads as one word (nft
/// 1.0 does not accept quoted names for tables, chains, sets and maps).
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && name.len() <= MAX_NAME_LEN
}

/// Why `s` cannot go between double quotes in an nft script, if it cannot
/// (nft has no escape for `"`).
fn string_problem(s: &str, max: usize, what: &str) -> Option<String> {
    if s.is_empty() {
        return Some(format!("{what} is empty"));
    }
    if s.len() > max {
        return Some(format!("{what} {s:?} is longer than {max} bytes"));
    }
    if s.chars().any(|c| c == '"' || c.is_control()) {
        return Some(format!(
            "{what} {s:?} contains a double quote or a control character, which nft cannot quote"
        ));
    }
    None
}

impl Validator<'_> {
    fn problem(&mut self, message: impl Into<String>) {
        self.problems.push(Problem {
            location: self.location.clone(),
            message: message.into(),
        });
    }

    fn table(&mut self) {
        if !is_identifier(&self.table_id.name) {
            self.problem(format!(
                "table name {:?} is not an nft identifier",
                self.table_id.name
            ));
        }
        for name in self.table.sets.keys() {
            if self.table.maps.contains_key(name) {
                self.location.object = Some(format!("set {name}"));
                self.problem("a set and a map have this name; they share one namespace");
            }
        }
        for (name, set) in &self.table.sets {
            self.location.object = Some(format!("set {name}"));
            self.set(name, set);
        }
        for (name, map) in &self.table.maps {
            self.location.object = Some(format!("map {name}"));
            self.map(name, map);
        }
        for (name, chain) in &self.table.chains {
            self.location.object = Some(format!("chain {name}"));
            self.chain(name, chain);
        }
        self.location.object = None;
    }

    fn name(&mut self, what: &str, name: &str) {
        if !is_identifier(name) {
            self.problem(format!(
                "{what} name {name:?} is not an nft identifier (a letter or `_`, then letters, \
                 digits, `_`, `-` or `.`, at most {MAX_NAME_LEN} bytes)"
            ));
        }
    }

    fn key_type(&mut self, key: &DataType) {
        if let DataType::Concat(parts) = key {
            if parts.len() < 2 {
                self.problem("a concatenated type needs at least two parts");
            }
            if parts.iter().any(|p| matches!(p, DataType::Concat(_))) {
                self.problem("concatenations cannot be nested");
            }
        }
    }

    fn set(&mut self, name: &str, set: &Set) {
        self.name("set", name);
        self.key_type(&set.key);
        for element in &set.elements {
            self.element(&set.key, set.interval, element);
        }
        if set.interval {
            self.no_overlaps(set.elements.iter());
        }
    }

    fn map(&mut self, name: &str, map: &Map) {
        self.name("map", name);
        self.key_type(&map.key);
        for (key, verdict) in &map.entries {
            self.element(&map.key, map.interval, key);
            self.verdict_target(verdict);
        }
        if map.interval {
            self.no_overlaps(map.entries.keys());
        }
    }

    fn element(&mut self, key: &DataType, interval: bool, element: &Value) {
        if let Err(message) = conforms(element, key) {
            self.problem(format!("element {element}: {message}"));
            return;
        }
        if !interval && element.is_interval() {
            self.problem(format!(
                "element {element} is a prefix, range or wildcard: the set needs the interval flag"
            ));
        }
        let canonical = element.canonical_element();
        if &canonical != element {
            self.problem(format!(
                "element {element} is listed back by nft as {canonical}; write it that way"
            ));
        }
    }

    /// nft refuses overlapping intervals in a set without auto-merge.
    fn no_overlaps<'v>(&mut self, elements: impl Iterator<Item = &'v Value>) {
        let mut intervals: Vec<(Interval, &Value)> = elements
            .filter_map(|v| Interval::of(v).map(|i| (i, v)))
            .collect();
        intervals.sort_by_key(|(interval, _)| *interval);
        for pair in intervals.windows(2) {
            let ((a, av), (b, bv)) = (&pair[0], &pair[1]);
            if a.kind == b.kind && b.lo <= a.hi {
                self.problem(format!("elements {av} and {bv} overlap"));
            }
        }
    }

    fn verdict_target(&mut self, verdict: &Verdict) {
        let Some(target) = verdict.target() else {
            return;
        };
        match self.table.chains.get(target).map(|c| &**c) {
            None => self.problem(format!(
                "`{verdict}`: there is no chain {target} in this table"
            )),
            Some(Chain { base: Some(_), .. }) => self.problem(format!(
                "`{verdict}`: {target} is a base chain, which cannot be a target"
            )),
            Some(_) => {}
        }
    }

    fn chain(&mut self, name: &str, chain: &Chain) {
        self.name("chain", name);
        if let Some(base) = &chain.base {
            match (base.kind, base.hook) {
                (ChainType::Route, hook) if hook != Hook::Output => {
                    self.problem("route chains can only hook output")
                }
                (ChainType::Nat, Hook::Forward) => self.problem("nat chains cannot hook forward"),
                _ => {}
            }
        }
        for (i, rule) in chain.rules.iter().enumerate() {
            self.location.rule = Some(i + 1);
            self.rule(rule);
        }
        self.location.rule = None;
    }

    fn rule(&mut self, rule: &Rule) {
        if rule.statements.is_empty() {
            self.problem("a rule needs at least one statement");
        }
        if let Some(comment) = &rule.comment {
            if let Some(p) = string_problem(comment, MAX_COMMENT_LEN, "comment") {
                self.problem(p);
            }
        }
        self.adjacent_fields(rule);
        let last = rule.statements.len().saturating_sub(1);
        let mut l4proto_literal = false;
        for (i, statement) in rule.statements.iter().enumerate() {
            if statement.is_terminal() && i != last {
                self.problem(format!(
                    "`{statement}` ends the rule but is followed by more statements"
                ));
            }
            match statement {
                Statement::Match(m) => {
                    if l4proto_literal && m.key.reads_transport_header() {
                        self.transport_after_l4proto(statement);
                    }
                    if m.key == Key::L4Proto && !m.negate && matches!(m.rhs, Rhs::One(_)) {
                        l4proto_literal = true;
                    }
                    self.matcher(m);
                }
                Statement::Counter => {}
                Statement::Log(log) => {
                    if let Some(prefix) = &log.prefix {
                        if let Some(p) = string_problem(prefix, MAX_LOG_PREFIX_LEN, "log prefix") {
                            self.problem(p);
                        }
                    }
                }
                Statement::SetMark { mask, value } => {
                    if *mask == 0 {
                        self.problem("`meta mark set` with an empty mask changes nothing");
                    }
                    if value & !mask != 0 {
                        self.problem(format!(
                            "`meta mark set`: value 0x{value:08x} has bits outside mask 0x{mask:08x}"
                        ));
                    }
                }
                Statement::Verdict(verdict) => self.verdict_target(verdict),
                Statement::Vmap { key, map } => {
                    if l4proto_literal && key.reads_transport_header() {
                        self.transport_after_l4proto(statement);
                    }
                    self.key(key);
                    match self.table.maps.get(map) {
                        None => self.problem(format!(
                            "`{statement}`: there is no map {map} in this table"
                        )),
                        Some(m) if m.key != key.data_type() => self.problem(format!(
                            "`{statement}`: map {map} has keys of type {}, the lookup key is {}",
                            m.key,
                            key.data_type()
                        )),
                        Some(_) => {}
                    }
                }
            }
        }
    }

    /// nft (1.0.6) merges point tests on adjacent transport-header fields
    /// (source and destination port; ICMP type and code) into one
    /// comparison, wherever they are in the rule. Only the forms that keep
    /// their meaning and list back unchanged are allowed.
    fn adjacent_fields(&mut self, rule: &Rule) {
        let points: Vec<(usize, &Match, (u8, bool))> = rule
            .statements
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s {
                Statement::Match(
                    m @ Match {
                        rhs: Rhs::One(Value::Int(_)),
                        ..
                    },
                ) => transport_field(&m.key).map(|f| (i, m, f)),
                _ => None,
            })
            .collect();
        for (i, low, (group, high)) in &points {
            if *high {
                continue;
            }
            for (j, upper, (g, h)) in &points {
                if g != group || !*h || low.negate != upper.negate {
                    continue;
                }
                if low.negate {
                    self.problem(format!(
                        "`{low}` and `{upper}`: nft merges two `!=` tests on adjacent header fields \
                         into one that matches unless both are equal; write one value as a \
                         one-value range (Value::Range(n, n)), which nft keeps separate"
                    ));
                } else if matches!(low.key, Key::Sport(PortProto::Th)) {
                    self.problem(format!(
                        "`{low}` and `{upper}`: nft merges these into a raw payload match it \
                         cannot list back; name the protocol (tcp, udp, sctp) or write one value \
                         as a one-value range (Value::Range(n, n))"
                    ));
                } else if *j != i + 1 {
                    self.problem(format!(
                        "`{low}` and `{upper}`: nft merges these into one comparison placed where \
                         `{low}` is; write `{upper}` right after `{low}`"
                    ));
                }
            }
        }
    }

    fn transport_after_l4proto(&mut self, statement: &Statement) {
        self.problem(format!(
            "`{statement}` follows a `meta l4proto` match, which nft folds into the port or ICMP \
             match and lists differently; name the protocol in the key instead (e.g. \
             Key::Dport(PortProto::Tcp) for `tcp dport`) and drop the l4proto match"
        ));
    }

    fn key(&mut self, key: &Key) {
        match key {
            Key::Mark { mask: 0 } => self.problem("`meta mark & 0` matches nothing useful"),
            Key::Concat(parts) => {
                if parts.len() < 2 {
                    self.problem("a concatenation needs at least two parts");
                }
                for part in parts {
                    if matches!(part, Key::Concat(_) | Key::CtState)
                        || matches!(part, Key::Mark { mask } if *mask != u32::MAX)
                    {
                        self.problem(format!("`{part}` cannot be part of a concatenation"));
                    }
                }
            }
            _ => {}
        }
    }

    fn matcher(&mut self, m: &Match) {
        self.key(&m.key);
        let ty = m.key.data_type();
        let statement = Statement::Match(m.clone());
        match &m.rhs {
            Rhs::One(value) => {
                if matches!(m.key, Key::Concat(_)) {
                    self.problem(format!(
                        "`{statement}`: a concatenation can only be compared with a set"
                    ));
                    return;
                }
                if let Err(message) = conforms(value, &ty) {
                    self.problem(format!("`{statement}`: {message}"));
                }
                if let (Key::Mark { mask }, Value::Int(v)) = (&m.key, value) {
                    if v & !mask != 0 {
                        self.problem(format!(
                            "`{statement}` can never match: the value has bits outside the mask"
                        ));
                    }
                }
            }
            Rhs::AnyOf(values) => {
                if m.key == Key::CtState {
                    self.problem(format!(
                        "`{statement}`: list the states in one value (CtState::A | CtState::B) instead of a set"
                    ));
                    return;
                }
                if values.is_empty() {
                    self.problem(format!("`{statement}`: an anonymous set cannot be empty"));
                    return;
                }
                for value in values {
                    if let Err(message) = conforms(value, &ty) {
                        self.problem(format!("`{statement}`: element {value}: {message}"));
                        return;
                    }
                }
                match merge_anonymous(values) {
                    Err(message) => self.problem(format!("`{statement}`: {message}")),
                    Ok(merged) => {
                        let canonical = Rhs::from_merged(merged);
                        if canonical != m.rhs {
                            let mut fixed = m.clone();
                            fixed.rhs = canonical;
                            self.problem(format!(
                                "`{statement}` is stored by nft as `{fixed}`; build the set with Rhs::any_of"
                            ));
                        }
                    }
                }
            }
            Rhs::Set(name) => {
                if m.key == Key::CtState {
                    self.problem(format!(
                        "`{statement}`: ct state cannot be looked up in a named set"
                    ));
                    return;
                }
                match self.table.sets.get(name) {
                    None => self.problem(format!(
                        "`{statement}`: there is no set {name} in this table"
                    )),
                    Some(set) if set.key != ty => self.problem(format!(
                        "`{statement}`: set {name} holds {}, the match compares {ty}",
                        set.key
                    )),
                    Some(_) => {}
                }
            }
        }
    }
}

/// For keys reading a transport-header field that nft may merge with its
/// neighbour: which header (a group number) and whether it is the upper
/// field of the pair (destination port, ICMP code).
fn transport_field(key: &Key) -> Option<(u8, bool)> {
    let proto = |p: &PortProto| match p {
        PortProto::Tcp => 0,
        PortProto::Udp => 1,
        PortProto::Sctp => 2,
        PortProto::Th => 3,
    };
    match key {
        Key::Sport(p) => Some((proto(p), false)),
        Key::Dport(p) => Some((proto(p), true)),
        Key::IcmpType(IpFamily::V4) => Some((4, false)),
        Key::IcmpCode(IpFamily::V4) => Some((4, true)),
        Key::IcmpType(IpFamily::V6) => Some((5, false)),
        Key::IcmpCode(IpFamily::V6) => Some((5, true)),
        _ => None,
    }
}

/// Whether `value` is a value of type `ty`, and why not.
pub(crate) fn conforms(value: &Value, ty: &DataType) -> Result<(), String> {
    match (ty, value) {
        (DataType::IfName, Value::Name(name)) => {
            if name == "*" {
                return Err("a wildcard needs at least one character before `*`".into());
            }
            let bare = name.strip_suffix('*').unwrap_or(name);
            if bare.contains('*') {
                return Err(format!(
                    "interface name {name:?}: `*` is only allowed at the end"
                ));
            }
            match string_problem(bare, MAX_IFNAME_LEN, "interface name") {
                Some(p) => Err(p),
                None => Ok(()),
            }
        }
        (DataType::Ipv4Addr, Value::Net(net @ IpNet::V4(_)))
        | (DataType::Ipv6Addr, Value::Net(net @ IpNet::V6(_))) => {
            if net.trunc() != *net {
                Err(format!(
                    "{net} has host bits set; the prefix is {}",
                    net.trunc()
                ))
            } else {
                Ok(())
            }
        }
        (
            DataType::Ipv4Addr,
            Value::AddrRange(lo @ std::net::IpAddr::V4(_), hi @ std::net::IpAddr::V4(_)),
        )
        | (
            DataType::Ipv6Addr,
            Value::AddrRange(lo @ std::net::IpAddr::V6(_), hi @ std::net::IpAddr::V6(_)),
        ) => {
            if lo > hi {
                Err(format!("range {lo}-{hi} is backwards"))
            } else {
                Ok(())
            }
        }
        (DataType::CtState, Value::CtState(state)) => {
            if state.is_valid() {
                Ok(())
            } else {
                Err(format!(
                    "ct state bits 0x{:x} are not all known states",
                    state.0
                ))
            }
        }
        (DataType::Concat(types), Value::Concat(values)) => {
            if types.len() != values.len() {
                return Err(format!(
                    "{} parts for a type of {} parts",
                    values.len(),
                    types.len()
                ));
            }
            for (t, v) in types.iter().zip(values) {
                conforms(v, t)?;
            }
            Ok(())
        }
        (ty, Value::Int(n)) if ty.int_max().is_some() => {
            let max = ty.int_max().unwrap_or(0);
            if *n > max {
                Err(format!("{n} is larger than {max}, the largest {ty}"))
            } else {
                Ok(())
            }
        }
        (ty, Value::Range(lo, hi)) if ty.int_max().is_some() => {
            let max = ty.int_max().unwrap_or(0);
            if lo > hi {
                Err(format!("range {lo}-{hi} is backwards"))
            } else if *hi > max {
                Err(format!("{hi} is larger than {max}, the largest {ty}"))
            } else {
                Ok(())
            }
        }
        (ty, value) => Err(format!("{value} is not a value of type {ty}")),
    }
}

/// The set of problems as one message per line (for error display).
pub(crate) fn describe(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BaseChain, CtState, Policy, Set};

    fn table_with_rule(rule: Rule) -> Ruleset {
        let table = Table::new()
            .with_set("v4", Set::new(DataType::Ipv4Addr, true))
            .with_set("ports", Set::new(DataType::InetService, false))
            .with_chain("target", Chain::default())
            .with_chain(
                "base",
                Chain::base(BaseChain::filter(Hook::Input, 0, Policy::Accept), []),
            )
            .with_chain("c", Chain::regular([rule]));
        Ruleset::new().with_table(TableId::inet("t"), table)
    }

    fn problems_of(rule: Rule) -> Vec<String> {
        table_with_rule(rule)
            .validate()
            .into_iter()
            .map(|p| p.to_string())
            .collect()
    }

    fn v4(s: &str) -> Value {
        Value::Net(s.parse().unwrap())
    }

    #[test]
    fn valid_rules_pass() {
        let rules = [
            Rule::new()
                .matching(Key::Saddr(IpFamily::V4), Rhs::set("v4"))
                .accept(),
            Rule::new()
                .matching(Key::Sport(PortProto::Tcp), Value::port(1000))
                .matching(Key::Dport(PortProto::Tcp), Value::port(80))
                .accept(),
            Rule::new()
                .not_matching(Key::Sport(PortProto::Tcp), Value::Range(1000, 1000))
                .not_matching(Key::Dport(PortProto::Tcp), Value::port(80))
                .accept(),
            Rule::new()
                .matching(Key::L4Proto, Rhs::any_of([Value::Int(6), Value::Int(17)]))
                .matching(Key::Dport(PortProto::Th), Rhs::set("ports"))
                .jump("target"),
            Rule::new()
                .matching(Key::CtState, Value::CtState(CtState::NEW))
                .set_mark(0xff00, 0x0100)
                .counter()
                .comment("ok"),
        ];
        for rule in rules {
            let text = rule.to_string();
            assert_eq!(problems_of(rule), Vec::<String>::new(), "{text}");
        }
    }

    #[test]
    fn forms_nft_would_rewrite_or_refuse_are_explained() {
        let cases: Vec<(Rule, &str)> = vec![
            (
                Rule::new()
                    .matching(Key::L4Proto, Value::Int(6))
                    .matching(Key::Dport(PortProto::Th), Value::port(80)),
                "folds into the port",
            ),
            (
                Rule::new()
                    .matching(Key::Dport(PortProto::Tcp), Value::port(80))
                    .matching(Key::Sport(PortProto::Tcp), Value::port(1000)),
                "write `tcp dport 80` right after `tcp sport 1000`",
            ),
            (
                Rule::new()
                    .not_matching(Key::Sport(PortProto::Udp), Value::port(1))
                    .not_matching(Key::Dport(PortProto::Udp), Value::port(2)),
                "matches unless both are equal",
            ),
            (
                Rule::new()
                    .matching(Key::Sport(PortProto::Th), Value::port(1))
                    .matching(Key::Dport(PortProto::Th), Value::port(2)),
                "cannot list back",
            ),
            (
                Rule::new().matching(
                    Key::Saddr(IpFamily::V4),
                    Rhs::AnyOf([v4("10.0.0.0/25"), v4("10.0.0.128/25")].into()),
                ),
                "is stored by nft as `ip saddr 10.0.0.0/24`",
            ),
            (
                Rule::new().matching(
                    Key::Dport(PortProto::Tcp),
                    Rhs::AnyOf([Value::port(80)].into()),
                ),
                "stored by nft as `tcp dport 80`",
            ),
            (
                Rule::new().matching(Key::Saddr(IpFamily::V4), v4("10.0.0.5/24")),
                "has host bits set",
            ),
            (
                Rule::new().matching(Key::Saddr(IpFamily::V6), Rhs::set("v4")),
                "set v4 holds ipv4_addr, the match compares ipv6_addr",
            ),
            (Rule::new().jump("base"), "is a base chain"),
            (Rule::new().jump("nowhere"), "there is no chain nowhere"),
            (Rule::new().accept().counter(), "ends the rule"),
            (Rule::new().set_mark(0xff, 0x100), "bits outside mask"),
            (Rule::new().log("say \"hi\""), "double quote"),
            (
                Rule::new().matching(Key::Iifname, Value::name("a*b")),
                "only allowed at the end",
            ),
            (
                Rule::new().matching(Key::Iifname, Value::name("much-too-long-name")),
                "longer than 15 bytes",
            ),
            (
                Rule::new().matching(Key::Dport(PortProto::Tcp), Value::Int(70000)),
                "larger than 65535",
            ),
            (
                Rule::new().matching(
                    Key::CtState,
                    Rhs::AnyOf(
                        [
                            Value::CtState(CtState::NEW),
                            Value::CtState(CtState::INVALID),
                        ]
                        .into(),
                    ),
                ),
                "list the states in one value",
            ),
            (
                Rule::new().matching(
                    Key::Concat(vec![Key::Saddr(IpFamily::V4), Key::Dport(PortProto::Tcp)]),
                    Value::Concat(vec![v4("10.0.0.1/32"), Value::port(1)]),
                ),
                "can only be compared with a set",
            ),
            (Rule::new(), "at least one statement"),
        ];
        for (rule, want) in cases {
            let text = rule.to_string();
            let problems = problems_of(rule);
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(want) && p.contains("table inet t, chain c, rule 1")),
                "`{text}`: expected a problem mentioning {want:?}, got {problems:?}"
            );
        }
    }

    #[test]
    fn set_problems() {
        let set = |key, interval, elements: Vec<Value>| {
            let mut s = Set::new(key, interval);
            s.elements = elements.into_iter().collect();
            Ruleset::new().with_table(TableId::inet("t"), Table::new().with_set("s", s))
        };
        let cases = [
            (
                set(DataType::Ipv4Addr, false, vec![v4("10.0.0.0/24")]),
                "needs the interval flag",
            ),
            (
                set(
                    DataType::Ipv4Addr,
                    true,
                    vec![v4("10.0.0.0/16"), v4("10.0.1.0/24")],
                ),
                "overlap",
            ),
            (
                set(DataType::InetService, true, vec![Value::Range(80, 80)]),
                "listed back by nft as 80",
            ),
            (
                set(DataType::Ipv6Addr, false, vec![v4("10.0.0.1/32")]),
                "is not a value of type ipv6_addr",
            ),
            (
                set(DataType::Concat(vec![DataType::Ipv4Addr]), false, vec![]),
                "at least two parts",
            ),
        ];
        for (ruleset, want) in cases {
            let problems: Vec<String> = ruleset.validate().iter().map(|p| p.to_string()).collect();
            assert!(
                problems
                    .iter()
                    .any(|p| p.contains(want) && p.contains("set s")),
                "expected {want:?}, got {problems:?}"
            );
        }
        let both = Ruleset::new().with_table(
            TableId::inet("t"),
            Table::new()
                .with_set("x", Set::new(DataType::IfName, false))
                .with_map("x", crate::model::Map::new(DataType::IfName, false)),
        );
        assert!(
            both.validate()
                .iter()
                .any(|p| p.message.contains("share one namespace"))
        );
        let bad_name = Ruleset::new().with_table(
            TableId::inet("t"),
            Table::new().with_chain("1st chain", Chain::default()),
        );
        assert!(
            bad_name
                .validate()
                .iter()
                .any(|p| p.message.contains("not an nft identifier"))
        );
    }

    /// Checking only what is not shared with a valid ruleset finds exactly
    /// what a whole check finds: in a changed chain, and in an unchanged
    /// chain whose target went away or changed kind.
    #[test]
    fn checking_against_a_valid_ruleset_finds_the_same_problems() {
        let id = TableId::inet("t");
        let valid = table_with_rule(
            Rule::new()
                .matching(Key::Saddr(IpFamily::V4), Rhs::set("v4"))
                .jump("target"),
        );
        assert!(valid.validate().is_empty());
        let edit = |f: &dyn Fn(&mut Table)| {
            let mut r = valid.clone();
            f(r.tables.get_mut(&id).unwrap());
            r
        };
        let cases = [
            ("unchanged", valid.clone()),
            (
                "a new chain with a bad jump",
                edit(&|t| {
                    t.chains.insert(
                        "d".into(),
                        Arc::new(Chain::regular([Rule::new().jump("missing")])),
                    );
                }),
            ),
            (
                "the target of an unchanged chain removed",
                edit(&|t| {
                    t.chains.remove("target");
                }),
            ),
            (
                "the target of an unchanged chain became a base chain",
                edit(&|t| {
                    t.chains.insert(
                        "target".into(),
                        Arc::new(Chain::base(
                            BaseChain::filter(Hook::Output, 0, Policy::Accept),
                            [],
                        )),
                    );
                }),
            ),
            (
                "a changed set with a bad element",
                edit(&|t| {
                    t.sets.insert(
                        "ports".into(),
                        Arc::new(
                            Set::new(DataType::InetService, false)
                                .with_elements([Value::Range(1, 2)]),
                        ),
                    );
                }),
            ),
            (
                "a set of another type",
                edit(&|t| {
                    t.sets
                        .insert("v4".into(), Arc::new(Set::new(DataType::InetService, true)));
                }),
            ),
        ];
        for (name, ruleset) in cases {
            let whole = ruleset.validate();
            assert_eq!(ruleset.validate_against(&valid), whole, "{name}");
            assert_eq!(whole.is_empty(), name == "unchanged", "{name}: {whole:?}");
        }
    }
}
