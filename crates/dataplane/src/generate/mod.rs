//! The generator: a [`Dataplane`] and a [`DataplaneConfig`] in, the
//! agent's tables out. Pure: no I/O.
//!
//! # The packet's path (one table per IP family)
//!
//! ```text
//! forward ─ ct established/related: accept
//!         ├ iifname cali* ─ cali-from-wl-dispatch ─ vmap iifname ─ goto cali-fw-P (egress)
//!         │                                        └ unknown cali interface: drop
//!         ├ otherwise, host endpoints ─ cali-from-hep-forward ─ vmap iifname ─ cali-fhfw-IF
//!         ├ oifname cali* ─ cali-to-wl-dispatch ─ vmap oifname ─ goto cali-tw-P (ingress)
//!         ├ otherwise, host endpoints ─ cali-to-hep-forward ─ vmap oifname ─ cali-thfw-IF
//!         └ accept mark set: accept
//! input ── ct established/related: accept
//!         ├ iifname cali* ─ goto cali-wl-to-host ─ cali-from-wl-dispatch, then
//!         │                                         defaultEndpointToHostAction
//!         └ host endpoints ─ cali-from-host-endpoint ─ vmap iifname ─ cali-fh-IF
//! output ─ ct established/related: accept
//!         ├ oifname cali*: return (the host may reach its workloads)
//!         └ host endpoints ─ cali-to-host-endpoint ─ vmap oifname ─ cali-th-IF
//! ```
//!
//! With host endpoints that have doNotTrack or preDNAT policy, base chains
//! at raw priority (prerouting, output) and mangle priority (prerouting)
//! run those first; what they allow carries the accept mark into input.
//!
//! `P` is a hash of the chain's rules: workloads with the same program
//! (the replicas of a deployment, say) share their chains, so the table
//! grows with the distinct programs on the node rather than with its pods.
//! That matters beyond memory: the kernel checks every chain reachable
//! from a base chain on each commit that adds a rule or a jump, so the
//! cost of every update grows with the table. Host endpoint chains (`IF`)
//! are named after their interface.
//!
//! An endpoint chain runs the endpoint's tiers in order, jumping to one
//! shared chain per policy (`cali-pi-…`/`cali-po-…`), then its profiles
//! (`cali-pri-…`/`cali-pro-…`), and drops what nothing allowed. A policy
//! chain reports Allow and Pass through the accept and pass mark bits and
//! returns; Deny drops at once. The per-packet cost of finding an
//! endpoint's chain is one verdict-map lookup however many endpoints there
//! are, and an address set of any size is one set lookup.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use calico_nftables::{
    BaseChain, Chain, ChainType, CtState, DataType, Family, Hook, IpFamily, Key, Map, Policy, Rhs,
    Rule, Ruleset, Set, Table, TableId, Value, Verdict,
};
use calico_policy::EndpointKey;
use calico_policy::program::{Dataplane, Direction, EndpointProgram, TierAction, TierProgram};
use calico_policy::{IpSetId, PolicyKey};

mod host;
mod incremental;

pub use incremental::{Dirty, Generator};

use crate::config::{DataplaneConfig, EndpointToHostAction};
use crate::names::{self, EndpointChain};
use crate::rules::{Fam, RuleWriter, SetUse, set_members};

/// Priority of the base chains for untracked (doNotTrack) policy: before
/// connection tracking, as iptables' raw table.
pub const RAW_PRIORITY: i32 = -300;
/// Priority of the base chain for pre-DNAT policy: iptables' mangle table.
pub const MANGLE_PRIORITY: i32 = -150;

/// ICMPv6 types a workload may always send to the host, so that neighbour
/// discovery and multicast listener signalling work (as in Calico).
pub const ICMPV6_TO_HOST: [u8; 6] = [130, 131, 132, 133, 135, 136];

/// The longest interface name the kernel allows.
const MAX_IFNAME: usize = 15;

/// The generated tables and the endpoints that could not be given chains.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    pub ruleset: Ruleset,
    pub skipped: Vec<Skipped>,
}

/// An endpoint left out of the ruleset, and why. Traffic on a workload
/// interface that is left out is dropped as traffic to or from an unknown
/// interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub endpoint: EndpointKey,
    pub interface: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// A host endpoint without an interface name is enforced nowhere.
    NoInterface,
    /// The name is not one the kernel could have given an interface.
    UnusableInterface,
    /// Another endpoint (first in key order) has the same interface.
    DuplicateInterface { kept: EndpointKey },
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (interface {:?}) ", self.endpoint, self.interface)?;
        match &self.reason {
            SkipReason::NoInterface => {
                f.write_str("has no interface name; no policy is enforced for it")
            }
            SkipReason::UnusableInterface => {
                f.write_str("has an interface name no Linux interface can have")
            }
            SkipReason::DuplicateInterface { kept } => {
                write!(
                    f,
                    "shares its interface with {kept}, which is enforced instead"
                )
            }
        }
    }
}

/// The agent's desired tables for `dp`.
pub fn generate(dp: &Dataplane, config: &DataplaneConfig) -> Ruleset {
    generate_with_report(dp, config).ruleset
}

/// [`generate`], also reporting the endpoints left out.
pub fn generate_with_report(dp: &Dataplane, config: &DataplaneConfig) -> Generation {
    let endpoints = Endpoints::select(dp);
    let mut ruleset = Ruleset::new();
    for family in config.families() {
        let fam = Fam {
            v6: family == Family::Ip6,
        };
        let table = TableBuilder::new(dp, config, fam, &endpoints).build();
        ruleset
            .tables
            .insert(TableId::new(family, config.table_name.clone()), table);
    }
    Generation {
        ruleset,
        skipped: endpoints.skipped,
    }
}

/// The chain `table` dispatches a workload's interface to, for traffic to
/// the workload (`Ingress`) or from it (`Egress`); `None` when the
/// interface has none (unknown to the table, or without an address in its
/// family).
pub fn workload_chain<'t>(
    table: &'t Table,
    interface: &str,
    direction: Direction,
) -> Option<&'t str> {
    let dispatch = match direction {
        Direction::Ingress => names::TO_WORKLOAD_DISPATCH,
        Direction::Egress => names::FROM_WORKLOAD_DISPATCH,
    };
    table
        .maps
        .get(&names::dispatch_map(dispatch))?
        .entries
        .get(&Value::name(interface))?
        .target()
}

/// Puts `value` in `objects` under `name`, keeping the one there if equal
/// (a chain, set or map kept from the last generation is the same `Arc`,
/// which the reconciler skips without comparing).
fn put<T: PartialEq>(objects: &mut BTreeMap<String, Arc<T>>, name: String, value: T) {
    match objects.entry(name) {
        Entry::Occupied(mut old) => {
            if **old.get() != value {
                old.insert(Arc::new(value));
            }
        }
        Entry::Vacant(slot) => {
            slot.insert(Arc::new(value));
        }
    }
}

/// The endpoints that get chains, by interface.
#[derive(Debug, Default)]
struct Endpoints<'a> {
    workloads: BTreeMap<&'a str, &'a EndpointProgram>,
    hosts: BTreeMap<&'a str, &'a EndpointProgram>,
    /// The host endpoint for every interface (`interfaceName: "*"`).
    all_interfaces: Option<&'a EndpointProgram>,
    skipped: Vec<Skipped>,
}

fn usable_interface(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_IFNAME
        && !name
            .chars()
            .any(|c| c == '"' || c == '*' || c == '/' || c.is_whitespace() || c.is_control())
}

impl<'a> Endpoints<'a> {
    fn select(dp: &'a Dataplane) -> Endpoints<'a> {
        let mut out = Endpoints::default();
        for (key, ep) in &dp.endpoints {
            let name = ep.interface_name.as_str();
            let skip = |reason| Skipped {
                endpoint: key.clone(),
                interface: name.to_string(),
                reason,
            };
            if key.is_host() && name == "*" {
                match out.all_interfaces {
                    Some(kept) => out.skipped.push(skip(SkipReason::DuplicateInterface {
                        kept: kept.key.clone(),
                    })),
                    None => out.all_interfaces = Some(ep),
                }
                continue;
            }
            if key.is_host() && name.is_empty() {
                out.skipped.push(skip(SkipReason::NoInterface));
                continue;
            }
            if !usable_interface(name) {
                out.skipped.push(skip(SkipReason::UnusableInterface));
                continue;
            }
            let map = if key.is_host() {
                &mut out.hosts
            } else {
                &mut out.workloads
            };
            match map.get(name) {
                Some(kept) => out.skipped.push(skip(SkipReason::DuplicateInterface {
                    kept: kept.key.clone(),
                })),
                None => {
                    map.insert(name, ep);
                }
            }
        }
        out
    }

    fn has_hosts(&self) -> bool {
        !self.hosts.is_empty() || self.all_interfaces.is_some()
    }

    fn host_programs(&self) -> impl Iterator<Item = (&'a str, &'a EndpointProgram)> + '_ {
        self.hosts
            .iter()
            .map(|(k, v)| (*k, *v))
            .chain(self.all_interfaces.map(|ep| ("*", ep)))
    }
}

/// What kind of endpoint chain is being built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Tiers, then profiles, then drop.
    Normal,
    /// applyOnForward policy: allow when no tier applies.
    Forward,
    /// doNotTrack policy: no connection-tracking tests, falls through.
    Untracked,
    /// preDNAT policy: falls through.
    PreDnat,
}

/// A text usable as an nft comment.
fn comment(text: &str) -> String {
    let mut out: String = text
        .chars()
        .filter(|c| *c != '"' && !c.is_control())
        .collect();
    while out.len() > calico_nftables::validate::MAX_COMMENT_LEN {
        out.pop();
    }
    out
}

fn ct(states: CtState) -> Value {
    Value::CtState(states)
}

struct TableBuilder<'a> {
    dp: &'a Dataplane,
    config: &'a DataplaneConfig,
    fam: Fam,
    endpoints: &'a Endpoints<'a>,
    writer: RuleWriter<'a>,
    table: Table,
    policies_used: BTreeSet<(PolicyKey, Direction)>,
    profiles_used: BTreeSet<(String, Direction)>,
}

impl<'a> TableBuilder<'a> {
    fn new(
        dp: &'a Dataplane,
        config: &'a DataplaneConfig,
        fam: Fam,
        endpoints: &'a Endpoints<'a>,
    ) -> TableBuilder<'a> {
        TableBuilder {
            dp,
            config,
            fam,
            endpoints,
            writer: RuleWriter::new(dp, fam, config.marks, &config.log_prefix),
            table: Table::new(),
            policies_used: BTreeSet::new(),
            profiles_used: BTreeSet::new(),
        }
    }

    fn build(mut self) -> Table {
        self.workload_chains();
        if self.endpoints.has_hosts() {
            self.host_chains();
        }
        self.base_chains();
        self.policy_chains();
        self.sets();
        self.table
    }

    fn chain(&mut self, name: impl Into<String>, rules: Vec<Rule>) {
        put(&mut self.table.chains, name.into(), Chain::regular(rules));
    }

    fn marks(&self) -> crate::config::Marks {
        self.config.marks
    }

    fn mark_set(&self, bit: u32) -> Rule {
        Rule::new().matching(Key::Mark { mask: bit }, Value::Int(bit))
    }

    fn mark_clear(&self, bit: u32) -> Rule {
        Rule::new().matching(Key::Mark { mask: bit }, Value::Int(0))
    }

    /// One endpoint's chain for one direction and stage.
    fn endpoint_chain(
        &mut self,
        tiers: &[TierProgram],
        profiles: &[String],
        direction: Direction,
        stage: Stage,
        failsafe: Option<&str>,
    ) -> Vec<Rule> {
        let m = self.marks();
        let mut rules = Vec::new();
        if stage != Stage::Untracked {
            rules.push(
                Rule::new()
                    .matching(Key::CtState, ct(CtState::INVALID))
                    .drop(),
            );
        }
        if let Some(chain) = failsafe {
            rules.push(Rule::new().jump(chain));
        }
        rules.push(Rule::new().set_mark(m.all(), 0));
        for (i, tier) in tiers.iter().enumerate() {
            if i > 0 {
                rules.push(
                    Rule::new()
                        .set_mark(m.pass, 0)
                        .comment(comment(&format!("tier {}", tier.name))),
                );
            }
            let mut first = true;
            for key in &tier.policies {
                if !self.dp.policies.contains_key(key) {
                    continue;
                }
                self.policies_used.insert((key.clone(), direction));
                let chain = names::policy_chain(key, direction);
                let jump = if first {
                    Rule::new().jump(chain)
                } else {
                    self.mark_clear(m.pass).jump(chain)
                };
                first = false;
                rules.push(jump);
                rules.push(self.mark_set(m.accept).ret());
            }
            if tier.default_action == TierAction::Deny {
                rules.push(
                    self.mark_clear(m.pass)
                        .drop()
                        .comment(comment(&format!("end of tier {}: Deny", tier.name))),
                );
            }
        }
        match stage {
            Stage::Normal => {
                for name in profiles {
                    if !self.dp.profiles.contains_key(name) {
                        continue;
                    }
                    self.profiles_used.insert((name.clone(), direction));
                    rules.push(Rule::new().jump(names::profile_chain(name, direction)));
                    rules.push(self.mark_set(m.accept).ret());
                }
                rules.push(
                    Rule::new()
                        .drop()
                        .comment("no policy or profile allowed the packet"),
                );
            }
            Stage::Forward if tiers.is_empty() => {
                rules.push(
                    Rule::new()
                        .set_mark(m.accept, m.accept)
                        .ret()
                        .comment("forwarded traffic is allowed without applyOnForward policy"),
                );
            }
            Stage::Forward | Stage::Untracked | Stage::PreDnat => {}
        }
        rules
    }

    /// A dispatch chain and its verdict map: interface → goto the
    /// endpoint's chain (or drop); `otherwise` after the lookup.
    fn dispatch(
        &mut self,
        chain: &str,
        key: Key,
        entries: BTreeMap<&str, Verdict>,
        otherwise: Option<Rule>,
    ) {
        let map = names::dispatch_map(chain);
        put(
            &mut self.table.maps,
            map.clone(),
            Map::new(DataType::IfName, false).with_entries(
                entries
                    .into_iter()
                    .map(|(iface, verdict)| (Value::name(iface), verdict)),
            ),
        );
        let mut rules = vec![Rule::new().vmap(key, map)];
        rules.extend(otherwise);
        self.chain(chain, rules);
    }

    fn workload_chains(&mut self) {
        let mut from = BTreeMap::new();
        let mut to = BTreeMap::new();
        let workloads: Vec<(&str, &EndpointProgram)> = self
            .endpoints
            .workloads
            .iter()
            .map(|(k, v)| (*k, *v))
            .collect();
        for (iface, ep) in workloads {
            // A workload without an address in this family has no traffic
            // of it to police: whatever it sends or is sent is dropped.
            if !ep.addresses.iter().any(|a| self.fam.holds(a)) {
                to.insert(iface, Verdict::Drop);
                from.insert(iface, Verdict::Drop);
                continue;
            }
            let (tw, fw) = self.workload_endpoint(ep);
            to.insert(iface, Verdict::goto(tw));
            from.insert(iface, Verdict::goto(fw));
        }
        self.workload_dispatch(from, to);
    }

    /// The ingress and egress chains of a workload with an address in this
    /// family, by name. Workloads with the same program share them (see
    /// [`names::workload_chain`]).
    fn workload_endpoint(&mut self, ep: &EndpointProgram) -> (String, String) {
        let ingress = self.endpoint_chain(
            &ep.normal.ingress,
            &ep.profiles,
            Direction::Ingress,
            Stage::Normal,
            None,
        );
        let egress = self.endpoint_chain(
            &ep.normal.egress,
            &ep.profiles,
            Direction::Egress,
            Stage::Normal,
            None,
        );
        let tw = names::workload_chain(EndpointChain::ToWorkload, &ingress);
        let fw = names::workload_chain(EndpointChain::FromWorkload, &egress);
        self.chain(tw.clone(), ingress);
        self.chain(fw.clone(), egress);
        (tw, fw)
    }

    /// The workload dispatch chains and maps, and the chain for traffic
    /// from workloads to the host.
    fn workload_dispatch(&mut self, from: BTreeMap<&str, Verdict>, to: BTreeMap<&str, Verdict>) {
        let unknown = || Some(Rule::new().drop().comment("unknown interface"));
        self.dispatch(names::FROM_WORKLOAD_DISPATCH, Key::Iifname, from, unknown());
        self.dispatch(names::TO_WORKLOAD_DISPATCH, Key::Oifname, to, unknown());

        let mut rules = Vec::new();
        if self.fam.v6 {
            rules.push(
                Rule::new()
                    .matching(
                        Key::IcmpType(IpFamily::V6),
                        Rhs::any_of(ICMPV6_TO_HOST.iter().map(|t| Value::Int((*t).into()))),
                    )
                    .accept(),
            );
        }
        rules.push(Rule::new().jump(names::FROM_WORKLOAD_DISPATCH));
        let action = Rule::new().comment("defaultEndpointToHostAction");
        rules.push(match self.config.endpoint_to_host_action {
            EndpointToHostAction::Drop => action.drop(),
            EndpointToHostAction::Accept => action.accept(),
            EndpointToHostAction::Return => action.ret(),
        });
        self.chain(names::WORKLOAD_TO_HOST, rules);
    }

    fn prefixes(&self) -> Vec<Value> {
        self.config
            .workload_interface_prefixes
            .iter()
            .map(|p| Value::name(format!("{p}*")))
            .collect()
    }

    fn base(&mut self, name: &str, hook: Hook, priority: i32, rules: Vec<Rule>) {
        put(
            &mut self.table.chains,
            name.to_string(),
            Chain::base(
                BaseChain {
                    kind: ChainType::Filter,
                    hook,
                    priority,
                    policy: Policy::Accept,
                },
                rules,
            ),
        );
    }

    fn base_chains(&mut self) {
        let m = self.marks();
        let prio = self.config.filter_priority;
        let hosts = self.endpoints.has_hosts();
        let established = || {
            Rule::new()
                .matching(Key::CtState, ct(CtState::ESTABLISHED | CtState::RELATED))
                .accept()
        };
        let prefixes = self.prefixes();

        // Host endpoints see forwarded traffic that does not come from (or
        // go to) a workload; workloads have their own chains.
        let not_workload = |key: Key| {
            prefixes.iter().fold(Rule::new(), |rule, p| {
                rule.not_matching(key.clone(), p.clone())
            })
        };
        let mut forward = vec![established()];
        for p in &prefixes {
            forward.push(
                Rule::new()
                    .matching(Key::Iifname, p.clone())
                    .jump(names::FROM_WORKLOAD_DISPATCH),
            );
        }
        if hosts {
            forward.push(
                not_workload(Key::Iifname)
                    .matching(Key::Mark { mask: m.accept }, Value::Int(0))
                    .jump(names::FROM_HOST_FORWARD_DISPATCH),
            );
        }
        for p in &prefixes {
            forward.push(
                Rule::new()
                    .matching(Key::Oifname, p.clone())
                    .jump(names::TO_WORKLOAD_DISPATCH),
            );
        }
        if hosts {
            forward.push(not_workload(Key::Oifname).jump(names::TO_HOST_FORWARD_DISPATCH));
        }
        forward.push(
            self.mark_set(m.accept)
                .accept()
                .comment("policy accepted the packet"),
        );
        self.base(names::FORWARD, Hook::Forward, prio, forward);

        let mut input = vec![established()];
        for p in &prefixes {
            input.push(
                Rule::new()
                    .matching(Key::Iifname, p.clone())
                    .goto(names::WORKLOAD_TO_HOST),
            );
        }
        if hosts {
            input.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("untracked or pre-DNAT policy accepted the packet"),
            );
            input.push(Rule::new().jump(names::FROM_HOST_DISPATCH));
            input.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("host endpoint policy accepted the packet"),
            );
        }
        self.base(names::INPUT, Hook::Input, prio, input);

        let mut output = vec![established()];
        for p in &prefixes {
            output.push(
                Rule::new()
                    .matching(Key::Oifname, p.clone())
                    .ret()
                    .comment("the host may reach its workloads"),
            );
        }
        if hosts {
            output.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("untracked policy accepted the packet"),
            );
            output.push(Rule::new().jump(names::TO_HOST_DISPATCH));
            output.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("host endpoint policy accepted the packet"),
            );
        }
        self.base(names::OUTPUT, Hook::Output, prio, output);

        if hosts && self.any_untracked() {
            for (name, hook, key, dispatch) in [
                (
                    names::RAW_PREROUTING,
                    Hook::Prerouting,
                    Key::Iifname,
                    names::FROM_HOST_UNTRACKED_DISPATCH,
                ),
                (
                    names::RAW_OUTPUT,
                    Hook::Output,
                    Key::Oifname,
                    names::TO_HOST_UNTRACKED_DISPATCH,
                ),
            ] {
                let mut rules: Vec<Rule> = prefixes
                    .iter()
                    .map(|p| Rule::new().matching(key.clone(), p.clone()).ret())
                    .collect();
                rules.push(Rule::new().set_mark(m.all(), 0));
                rules.push(Rule::new().jump(dispatch));
                rules.push(
                    self.mark_set(m.accept)
                        .accept()
                        .comment("untracked policy accepted the packet"),
                );
                self.base(name, hook, RAW_PRIORITY, rules);
            }
        }
        if hosts && self.any_pre_dnat() {
            let mut rules = vec![established()];
            rules.extend(
                prefixes
                    .iter()
                    .map(|p| Rule::new().matching(Key::Iifname, p.clone()).ret()),
            );
            rules.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("untracked policy accepted the packet"),
            );
            rules.push(Rule::new().jump(names::FROM_HOST_PRE_DNAT_DISPATCH));
            rules.push(
                self.mark_set(m.accept)
                    .accept()
                    .comment("pre-DNAT policy accepted the packet"),
            );
            self.base(
                names::MANGLE_PREROUTING,
                Hook::Prerouting,
                MANGLE_PRIORITY,
                rules,
            );
        }
    }

    fn policy_chains(&mut self) {
        let policies = std::mem::take(&mut self.policies_used);
        for (key, direction) in &policies {
            if let Some(rules) = self.policy_rules(key, *direction) {
                self.chain(names::policy_chain(key, *direction), rules);
            }
        }
        let profiles = std::mem::take(&mut self.profiles_used);
        for (name, direction) in &profiles {
            if let Some(rules) = self.profile_rules(name, *direction) {
                self.chain(names::profile_chain(name, *direction), rules);
            }
        }
    }

    /// The rules of a policy's chain; `None` for an unknown policy.
    fn policy_rules(&mut self, key: &PolicyKey, direction: Direction) -> Option<Vec<Rule>> {
        let policy = self.dp.policies.get(key)?;
        Some(
            policy
                .rules(direction)
                .iter()
                .flat_map(|r| self.writer.rule(r))
                .collect(),
        )
    }

    /// The rules of a profile's chain; `None` for an unknown profile.
    fn profile_rules(&mut self, name: &str, direction: Direction) -> Option<Vec<Rule>> {
        let profile = self.dp.profiles.get(name)?;
        Some(
            profile
                .rules(direction)
                .iter()
                .flat_map(|r| self.writer.rule(r))
                .collect(),
        )
    }

    fn sets(&mut self) {
        let used: Vec<(IpSetId, SetUse)> = self
            .writer
            .sets_used
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (id, usage) in used {
            let set = self.set(&id, usage);
            put(&mut self.table.sets, names::ip_set(&id, self.fam.v6), set);
        }
    }

    /// The named set for an IP set used as `usage`.
    fn set(&self, id: &IpSetId, usage: SetUse) -> Set {
        let addr = if self.fam.v6 {
            DataType::Ipv6Addr
        } else {
            DataType::Ipv4Addr
        };
        let (key, interval) = match usage {
            SetUse::Addresses => (addr, true),
            SetUse::NamedPorts => (
                DataType::Concat(vec![addr, DataType::InetProto, DataType::InetService]),
                false,
            ),
        };
        Set::new(key, interval).with_elements(set_members(self.dp, self.fam, id, usage))
    }
}

#[cfg(test)]
mod tests;
