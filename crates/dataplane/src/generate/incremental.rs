//! Generation in proportion to the change. A [`Generator`] keeps its last
//! generation and, for each chain and set in it, what it was made from;
//! told what changed in the [`Dataplane`] since ([`Dirty`]), it rebuilds
//! only the chains and sets that depend on a changed endpoint, policy,
//! profile or IP set. Everything else is the previous generation's own
//! chain or set (the same `Arc`), which the reconciler's validation and
//! diff skip without looking at its rules.
//!
//! What each piece depends on:
//!
//! - a workload's chains: its program, and which of the policies and
//!   profiles it names exist (a missing one is left out); workloads with
//!   the same chains share them, counted, and a chain goes when its last
//!   workload does;
//! - a policy's or profile's chain: its rules, and the members of the IP
//!   sets a rule reads (a short nets list is written into the rule);
//! - a named set: its IP set's members and how rules use it;
//! - the dispatch maps and chains: which workloads get chains, and on
//!   which interface;
//! - the base chains: the settings alone.
//!
//! A change to policies or profiles alone (the common case) touches only
//! their chains: no pass over the endpoints, the other policies or the
//! sets. A change to endpoints walks the endpoints once (cheap checks, and
//! the dispatch maps rebuilt), and a change to IP sets walks the policies
//! and profiles in use.
//!
//! The result is always the one [`generate_with_report`] gives for the same
//! input (a property test checks it after random sequences of changes).
//! A whole generation is made instead of a patch on the first call, after
//! [`Dirty::everything`] or a change of settings or failsafe ports, and
//! while the node has host endpoints (their chains, few on any node, are
//! not patched).

use std::collections::{BTreeMap, BTreeSet};

use calico_nftables::{Family, Map, Rule, Ruleset, TableId, Value, Verdict};
use calico_policy::program::{Dataplane, Direction, EndpointProgram, Failsafe};
use calico_policy::{Changes, EndpointKey, IpSetId, PolicyKey};

use super::{Endpoints, Generation, TableBuilder, generate_with_report, put};
use crate::config::DataplaneConfig;
use crate::names;
use crate::rules::{Fam, SetUse};

const DIRECTIONS: [Direction; 2] = [Direction::Ingress, Direction::Egress];

/// What changed in a [`Dataplane`] since the last generation, by key:
/// every key whose entry was added, changed or removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    /// Anything may have changed: generate from scratch.
    pub everything: bool,
    pub endpoints: BTreeSet<EndpointKey>,
    pub policies: BTreeSet<PolicyKey>,
    pub profiles: BTreeSet<String>,
    pub ip_sets: BTreeSet<IpSetId>,
}

impl Dirty {
    /// Anything may have changed.
    pub fn everything() -> Dirty {
        Dirty {
            everything: true,
            ..Dirty::default()
        }
    }

    /// Adds the keys one call to the policy engine changed: exactly those a
    /// copy of the engine's output kept up to date from `changes` rewrites.
    pub fn record(&mut self, changes: &Changes) {
        let endpoints = changes.endpoints_updated.iter();
        self.endpoints
            .extend(endpoints.chain(&changes.endpoints_removed).cloned());
        let policies = changes.policies_updated.iter();
        self.policies
            .extend(policies.chain(&changes.policies_removed).cloned());
        let profiles = changes.profiles_updated.iter();
        self.profiles
            .extend(profiles.chain(&changes.profiles_removed).cloned());
        let sets = changes.ip_sets_added.iter().chain(&changes.ip_sets_removed);
        let members = changes
            .ip_set_members_added
            .keys()
            .chain(changes.ip_set_members_removed.keys());
        self.ip_sets.extend(sets.chain(members).cloned());
    }

    pub fn is_empty(&self) -> bool {
        *self == Dirty::default()
    }
}

/// Generates the agent's tables again and again, reusing what did not
/// change (see the [module](self) docs).
#[derive(Debug)]
pub struct Generator {
    config: DataplaneConfig,
    last: Option<Last>,
}

#[derive(Debug)]
struct Last {
    generation: Generation,
    failsafe: Failsafe,
    /// What each table's chains and sets were made from; `None` after a
    /// whole generation with host endpoints (the next one is whole too).
    memos: Option<BTreeMap<TableId, Memo>>,
}

/// What one table's chains and sets were made from.
#[derive(Debug, Default)]
struct Memo {
    /// Workloads with chains in this table, by interface.
    endpoints: BTreeMap<String, Refs>,
    /// How many workloads use each workload chain (they are shared).
    chain_users: BTreeMap<String, usize>,
    /// How many workload chains name each policy and profile (present or
    /// not): a present one named at least once has a chain.
    policy_refs: BTreeMap<(PolicyKey, Direction), usize>,
    profile_refs: BTreeMap<(String, Direction), usize>,
    /// The policy and profile chains in the table, and the sets they read.
    policy_chains: BTreeMap<(PolicyKey, Direction), SetsOfChain>,
    profile_chains: BTreeMap<(String, Direction), SetsOfChain>,
    /// The named sets in the table.
    sets: BTreeMap<IpSetId, SetUse>,
}

/// The endpoint a workload's chains were made for, the chains its
/// interface is dispatched to (to it, from it), and what they name.
#[derive(Debug)]
struct Refs {
    endpoint: EndpointKey,
    chains: (String, String),
    policies: Vec<(PolicyKey, Direction)>,
    profiles: Vec<(String, Direction)>,
}

impl Refs {
    fn of(ep: &EndpointProgram, chains: (String, String)) -> Refs {
        let tiers = |direction| match direction {
            Direction::Ingress => &ep.normal.ingress,
            Direction::Egress => &ep.normal.egress,
        };
        Refs {
            endpoint: ep.key.clone(),
            chains,
            policies: DIRECTIONS
                .iter()
                .flat_map(|d| {
                    tiers(*d)
                        .iter()
                        .flat_map(move |t| t.policies.iter().map(move |k| (k.clone(), *d)))
                })
                .collect(),
            profiles: DIRECTIONS
                .iter()
                .flat_map(|d| ep.profiles.iter().map(move |p| (p.clone(), *d)))
                .collect(),
        }
    }
}

/// The IP sets a policy or profile chain depends on.
#[derive(Debug, Default)]
struct SetsOfChain {
    read: BTreeSet<IpSetId>,
    used: BTreeMap<IpSetId, SetUse>,
}

/// What policy chains and profile chains differ in; the patch treats
/// both alike through it.
trait RuleSource: Ord + Clone {
    fn chain(&self, direction: Direction) -> String;
    fn present(&self, dp: &Dataplane) -> bool;
    fn rules(&self, b: &mut TableBuilder<'_>, direction: Direction) -> Option<Vec<Rule>>;
    fn changed(dirty: &Dirty) -> &BTreeSet<Self>;
    /// How many workload chains name each one, by direction.
    fn refs(memo: &Memo) -> &BTreeMap<(Self, Direction), usize>;
    /// Those with a chain in the table, and the sets it reads.
    fn chains(memo: &Memo) -> &BTreeMap<(Self, Direction), SetsOfChain>;
    fn chains_mut(memo: &mut Memo) -> &mut BTreeMap<(Self, Direction), SetsOfChain>;
}

impl RuleSource for PolicyKey {
    fn chain(&self, direction: Direction) -> String {
        names::policy_chain(self, direction)
    }
    fn present(&self, dp: &Dataplane) -> bool {
        dp.policies.contains_key(self)
    }
    fn rules(&self, b: &mut TableBuilder<'_>, direction: Direction) -> Option<Vec<Rule>> {
        b.policy_rules(self, direction)
    }
    fn changed(dirty: &Dirty) -> &BTreeSet<Self> {
        &dirty.policies
    }
    fn refs(memo: &Memo) -> &BTreeMap<(Self, Direction), usize> {
        &memo.policy_refs
    }
    fn chains(memo: &Memo) -> &BTreeMap<(Self, Direction), SetsOfChain> {
        &memo.policy_chains
    }
    fn chains_mut(memo: &mut Memo) -> &mut BTreeMap<(Self, Direction), SetsOfChain> {
        &mut memo.policy_chains
    }
}

/// Profiles, by name.
impl RuleSource for String {
    fn chain(&self, direction: Direction) -> String {
        names::profile_chain(self, direction)
    }
    fn present(&self, dp: &Dataplane) -> bool {
        dp.profiles.contains_key(self)
    }
    fn rules(&self, b: &mut TableBuilder<'_>, direction: Direction) -> Option<Vec<Rule>> {
        b.profile_rules(self, direction)
    }
    fn changed(dirty: &Dirty) -> &BTreeSet<Self> {
        &dirty.profiles
    }
    fn refs(memo: &Memo) -> &BTreeMap<(Self, Direction), usize> {
        &memo.profile_refs
    }
    fn chains(memo: &Memo) -> &BTreeMap<(Self, Direction), SetsOfChain> {
        &memo.profile_chains
    }
    fn chains_mut(memo: &mut Memo) -> &mut BTreeMap<(Self, Direction), SetsOfChain> {
        &mut memo.profile_chains
    }
}

fn count<K: Ord + Clone>(counts: &mut BTreeMap<K, usize>, keys: &[K], add: bool) {
    for key in keys {
        if add {
            *counts.entry(key.clone()).or_default() += 1;
        } else if let Some(n) = counts.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

impl Generator {
    pub fn new(config: DataplaneConfig) -> Generator {
        Generator { config, last: None }
    }

    pub fn config(&self) -> &DataplaneConfig {
        &self.config
    }

    /// Changes the settings; if they differ, the next generation is whole.
    pub fn set_config(&mut self, config: DataplaneConfig) {
        if config != self.config {
            self.config = config;
            self.last = None;
        }
    }

    /// The last generation, if any.
    pub fn last(&self) -> Option<&Generation> {
        self.last.as_ref().map(|l| &l.generation)
    }

    /// The generation for `dp`; `dirty` names everything in `dp` that
    /// changed since the last call (anything not named must be as it was).
    pub fn generate(&mut self, dp: &Dataplane, dirty: &Dirty) -> Generation {
        let last = self.last.take().filter(|last| {
            !dirty.everything
                && last.memos.is_some()
                && last.failsafe == dp.failsafe
                && !dirty.endpoints.iter().any(EndpointKey::is_host)
        });
        self.patch(dp, dirty, last)
    }

    /// Patches `last` (or builds from nothing), keeping the result.
    fn patch(&mut self, dp: &Dataplane, dirty: &Dirty, last: Option<Last>) -> Generation {
        let fresh = last.is_none();
        let (mut previous, mut memos, skipped) = match last {
            Some(Last {
                generation, memos, ..
            }) => (
                generation.ruleset,
                memos.unwrap_or_default(),
                Some(generation.skipped),
            ),
            None => (Ruleset::new(), BTreeMap::new(), None),
        };
        let selection = (fresh || !dirty.endpoints.is_empty()).then(|| Endpoints::select(dp));
        if selection.as_ref().is_some_and(|s| s.has_hosts()) {
            let generation = generate_with_report(dp, &self.config);
            self.last = Some(Last {
                generation: generation.clone(),
                failsafe: dp.failsafe.clone(),
                memos: None,
            });
            return generation;
        }
        let mut ruleset = Ruleset::new();
        for family in self.config.families() {
            let id = TableId::new(family, self.config.table_name.clone());
            let fam = Fam {
                v6: family == Family::Ip6,
            };
            let no_endpoints = Endpoints::default();
            let endpoints = selection.as_ref().unwrap_or(&no_endpoints);
            let mut builder = TableBuilder::new(dp, &self.config, fam, endpoints);
            builder.table = previous.tables.remove(&id).unwrap_or_default();
            let memo = memos.entry(id.clone()).or_default();
            let mut patch = Patch {
                b: builder,
                memo,
                dirty,
                fresh,
                refs_changed: false,
                uses_changed: false,
            };
            patch.run(selection.as_ref());
            ruleset.tables.insert(id, patch.b.table);
        }
        let skipped = match &selection {
            Some(selection) => selection.skipped.clone(),
            None => skipped.unwrap_or_default(),
        };
        let generation = Generation { ruleset, skipped };
        self.last = Some(Last {
            generation: generation.clone(),
            failsafe: dp.failsafe.clone(),
            memos: Some(memos),
        });
        generation
    }
}

/// One table being patched.
struct Patch<'a, 'b> {
    b: TableBuilder<'a>,
    memo: &'b mut Memo,
    dirty: &'b Dirty,
    fresh: bool,
    /// Some workload's chains were made or dropped: what they name changed.
    refs_changed: bool,
    /// Some policy or profile chain came, went, or uses other sets.
    uses_changed: bool,
}

impl Patch<'_, '_> {
    fn run(&mut self, selection: Option<&Endpoints<'_>>) {
        let flipped = (self.flipped::<PolicyKey>(), self.flipped::<String>());
        match selection {
            Some(selection) => self.workloads(selection, &flipped),
            None if !flipped.0.is_empty() || !flipped.1.is_empty() => {
                self.workloads_naming(&flipped)
            }
            None => {}
        }
        if self.fresh {
            self.b.base_chains();
        }
        self.b.policies_used.clear();
        self.b.profiles_used.clear();
        // With the same workload chains and no IP set changed, only the
        // chains of the changed policies and profiles can change.
        if !self.fresh && !self.refs_changed && self.dirty.ip_sets.is_empty() {
            self.changed_rule_chains::<PolicyKey>();
            self.changed_rule_chains::<String>();
        } else {
            self.rule_chains::<PolicyKey>();
            self.rule_chains::<String>();
            self.uses_changed = true;
        }
        if self.uses_changed || !self.dirty.ip_sets.is_empty() {
            self.sets();
        }
    }

    /// [`Self::rule_chains`] for the changed policies (or profiles) only.
    fn changed_rule_chains<K: RuleSource>(&mut self) {
        let (dp, dirty) = (self.b.dp, self.dirty);
        for key in K::changed(dirty) {
            for direction in DIRECTIONS {
                let slot = (key.clone(), direction);
                let name = key.chain(direction);
                let before = K::chains_mut(self.memo).remove(&slot);
                if K::refs(self.memo).contains_key(&slot) && key.present(dp) {
                    let rules = key.rules(&mut self.b, direction).unwrap_or_default();
                    let sets = self.chain(name, rules);
                    self.uses_changed |= before.is_none_or(|b| b.used != sets.used);
                    K::chains_mut(self.memo).insert(slot, sets);
                } else if before.is_some() {
                    self.b.table.chains.remove(&name);
                    self.uses_changed = true;
                }
            }
        }
    }

    /// The policies (or profiles) named by some workload chain whose
    /// existence changed: those chains change with it.
    fn flipped<K: RuleSource>(&self) -> BTreeSet<K> {
        let dp = self.b.dp;
        let flipped = K::changed(self.dirty).iter().filter(|k| {
            let now = k.present(dp);
            DIRECTIONS.iter().any(|d| {
                let slot = ((*k).clone(), *d);
                K::refs(self.memo).contains_key(&slot)
                    && K::chains(self.memo).contains_key(&slot) != now
            })
        });
        flipped.cloned().collect()
    }

    fn names(refs: &Refs, flipped: &(BTreeSet<PolicyKey>, BTreeSet<String>)) -> bool {
        refs.policies.iter().any(|(k, _)| flipped.0.contains(k))
            || refs.profiles.iter().any(|(p, _)| flipped.1.contains(p))
    }

    /// (Re)makes one workload's chains and counts what they name. The
    /// chains it used before are released only after the new ones are in,
    /// so a chain it keeps using stays as it was.
    fn workload(&mut self, iface: &str, ep: &EndpointProgram) {
        self.refs_changed = true;
        let before = self.memo.endpoints.remove(iface);
        let chains = self.b.workload_endpoint(ep);
        for chain in [&chains.0, &chains.1] {
            *self.memo.chain_users.entry(chain.clone()).or_default() += 1;
        }
        let refs = Refs::of(ep, chains);
        count(&mut self.memo.policy_refs, &refs.policies, true);
        count(&mut self.memo.profile_refs, &refs.profiles, true);
        self.memo.endpoints.insert(iface.to_string(), refs);
        if let Some(before) = before {
            self.release(before);
        }
    }

    /// Drops a workload's chains, if it had any.
    fn forget_workload(&mut self, iface: &str) {
        if let Some(before) = self.memo.endpoints.remove(iface) {
            self.refs_changed = true;
            self.release(before);
        }
    }

    /// Uncounts what a workload's chains named, and removes the chains no
    /// other workload uses.
    fn release(&mut self, refs: Refs) {
        count(&mut self.memo.policy_refs, &refs.policies, false);
        count(&mut self.memo.profile_refs, &refs.profiles, false);
        for chain in [refs.chains.0, refs.chains.1] {
            let users = self.memo.chain_users.get_mut(&chain);
            match users {
                Some(n) if *n > 1 => *n -= 1,
                _ => {
                    self.memo.chain_users.remove(&chain);
                    self.b.table.chains.remove(&chain);
                }
            }
        }
    }

    /// Endpoints changed: every workload's chains are checked, the changed
    /// ones remade, and the dispatch maps rebuilt.
    fn workloads(
        &mut self,
        selection: &Endpoints<'_>,
        flipped: &(BTreeSet<PolicyKey>, BTreeSet<String>),
    ) {
        let fam = self.b.fam;
        let mut from = BTreeMap::new();
        let mut to = BTreeMap::new();
        let gone: Vec<String> = self
            .memo
            .endpoints
            .keys()
            .filter(|iface| {
                selection
                    .workloads
                    .get(iface.as_str())
                    .is_none_or(|ep| !ep.addresses.iter().any(|a| fam.holds(a)))
            })
            .cloned()
            .collect();
        for iface in gone {
            self.forget_workload(&iface);
        }
        for (iface, ep) in &selection.workloads {
            if !ep.addresses.iter().any(|a| fam.holds(a)) {
                to.insert(*iface, Verdict::Drop);
                from.insert(*iface, Verdict::Drop);
                continue;
            }
            let kept = !self.fresh
                && !self.dirty.endpoints.contains(&ep.key)
                && self
                    .memo
                    .endpoints
                    .get(*iface)
                    .is_some_and(|r| r.endpoint == ep.key && !Self::names(r, flipped));
            if !kept {
                self.workload(iface, ep);
            }
            let (tw, fw) = &self.memo.endpoints[*iface].chains;
            to.insert(*iface, Verdict::goto(tw.clone()));
            from.insert(*iface, Verdict::goto(fw.clone()));
        }
        self.b.workload_dispatch(from, to);
    }

    /// No endpoint changed, but some policy or profile came or went:
    /// the chains of the workloads that name it change.
    fn workloads_naming(&mut self, flipped: &(BTreeSet<PolicyKey>, BTreeSet<String>)) {
        let dp = self.b.dp;
        let affected: Vec<(String, EndpointKey)> = self
            .memo
            .endpoints
            .iter()
            .filter(|(_, r)| Self::names(r, flipped))
            .map(|(iface, r)| (iface.clone(), r.endpoint.clone()))
            .collect();
        let mut remade = Vec::new();
        for (iface, key) in affected {
            if let Some(ep) = dp.endpoints.get(&key) {
                self.workload(&iface, ep);
                remade.push(iface);
            }
        }
        self.redirect(&remade);
    }

    /// Points the dispatch maps' entries for `ifaces` at their workloads'
    /// current chains (which are named after their rules, so a remade
    /// chain may have a new name).
    fn redirect(&mut self, ifaces: &[String]) {
        if ifaces.is_empty() {
            return;
        }
        for dispatch in [names::TO_WORKLOAD_DISPATCH, names::FROM_WORKLOAD_DISPATCH] {
            let name = names::dispatch_map(dispatch);
            let Some(map) = self.b.table.maps.get(&name) else {
                continue;
            };
            let mut map = Map::clone(map);
            for iface in ifaces {
                let (to, from) = &self.memo.endpoints[iface].chains;
                let chain = if dispatch == names::TO_WORKLOAD_DISPATCH {
                    to
                } else {
                    from
                };
                map.entries
                    .insert(Value::name(iface.as_str()), Verdict::goto(chain.clone()));
            }
            put(&mut self.b.table.maps, name, map);
        }
    }

    /// The chains of every policy (or profile) some workload chain names,
    /// kept where nothing they depend on changed, and no others.
    fn rule_chains<K: RuleSource>(&mut self) {
        let (dp, dirty) = (self.b.dp, self.dirty);
        let used: Vec<(K, Direction)> = K::refs(self.memo)
            .keys()
            .filter(|(k, _)| k.present(dp))
            .cloned()
            .collect();
        let mut before = std::mem::take(K::chains_mut(self.memo));
        for (key, direction) in used {
            let name = key.chain(direction);
            let kept = before
                .remove(&(key.clone(), direction))
                .filter(|sets| self.unchanged(K::changed(dirty).contains(&key), sets, &name));
            let sets = match kept {
                Some(sets) => sets,
                None => {
                    let rules = key.rules(&mut self.b, direction).unwrap_or_default();
                    self.chain(name, rules)
                }
            };
            K::chains_mut(self.memo).insert((key, direction), sets);
        }
        for (key, direction) in before.keys() {
            self.b.table.chains.remove(&key.chain(*direction));
        }
    }

    /// Whether the previous chain `name` can stay.
    fn unchanged(&self, source_changed: bool, sets: &SetsOfChain, name: &str) -> bool {
        !self.fresh
            && !source_changed
            && sets.read.is_disjoint(&self.dirty.ip_sets)
            && self.b.table.chains.contains_key(name)
    }

    /// Puts a remade policy or profile chain in the table and returns the
    /// sets its rules read.
    fn chain(&mut self, name: String, rules: Vec<Rule>) -> SetsOfChain {
        self.b.chain(name, rules);
        SetsOfChain {
            read: std::mem::take(&mut self.b.writer.sets_read),
            used: std::mem::take(&mut self.b.writer.sets_used),
        }
    }

    fn sets(&mut self) {
        let mut needed: BTreeMap<&IpSetId, SetUse> = BTreeMap::new();
        let uses = self
            .memo
            .policy_chains
            .values()
            .chain(self.memo.profile_chains.values());
        for sets in uses {
            needed.extend(sets.used.iter().map(|(id, usage)| (id, *usage)));
        }
        let v6 = self.b.fam.v6;
        for (id, usage) in &needed {
            let name = names::ip_set(id, v6);
            let kept = !self.fresh
                && self.memo.sets.get(*id) == Some(usage)
                && !self.dirty.ip_sets.contains(*id)
                && self.b.table.sets.contains_key(&name);
            if !kept {
                let set = self.b.set(id, *usage);
                put(&mut self.b.table.sets, name, set);
            }
        }
        for id in self.memo.sets.keys() {
            if !needed.contains_key(id) {
                self.b.table.sets.remove(&names::ip_set(id, v6));
            }
        }
        self.memo.sets = needed.into_iter().map(|(id, u)| (id.clone(), u)).collect();
    }
}
