//! The reference evaluator: judges a flow straight from the resources, with
//! none of the engine's indexes, IP sets or compiled programs. It is meant
//! to be read and trusted; every dataplane test compares against it, and
//! `calicoctl policy explain` answers from it.
//!
//! Semantics, per side of a flow (source egress, destination ingress):
//! the policies selecting the endpoint are grouped by tier and ordered as
//! Calico orders them, then judged as the [program docs](crate::program)
//! describe. A rule's selector means "the address belongs to an endpoint or
//! network set the selector matches" (scoped to the policy's namespace
//! unless a namespaceSelector is given); a named port means "the address
//! belongs to a selected endpoint that declares that port".

mod resources;

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, HostEndpoint, NetworkPolicy, PolicyType, Port,
    Protocol, Rule, WorkloadEndpoint,
};
use calico_selector::{Expr, Selector};
use ipnet::IpNet;

pub use resources::{FlowError, Peer, ResourceSet};

use crate::engine::DEFAULT_ALLOW_PROFILE;
use crate::eval::{
    Decision, Explanation, Flow, Packet, SideVerdict, Stage, Step, Verdict, failsafe_match,
    no_endpoint,
};
use crate::ids::{EndpointKey, PolicyKey, PolicyKind};
use crate::knp;
use crate::program::{Direction, Failsafe, RuleAction};

const NS_LABEL: &str = "projectcalico.org/namespace";
const ORCH_LABEL: &str = "projectcalico.org/orchestrator";
const SA_LABEL: &str = "projectcalico.org/serviceaccount";

// ----- items: endpoints and network sets with their labels -----

struct Item {
    endpoint: Option<EndpointKey>,
    labels: BTreeMap<String, String>,
    nets: Vec<IpNet>,
    /// (name, protocol number, port)
    named_ports: Vec<(String, u8, u16)>,
    profiles: Vec<String>,
}

fn parse_nets(nets: &[String]) -> Vec<IpNet> {
    nets.iter()
        .filter_map(|n| {
            n.parse::<IpNet>()
                .map(|n| n.trunc())
                .ok()
                .or_else(|| n.parse::<IpAddr>().ok().map(IpNet::from))
        })
        .collect()
}

fn profile_labels<'a>(res: &'a ResourceSet, name: &str) -> Option<&'a BTreeMap<String, String>> {
    res.profiles.get(name).map(|p| &p.spec.labels_to_apply)
}

/// Own labels first, then each parent's labels for keys not yet present.
fn inherit(
    mut labels: BTreeMap<String, String>,
    parents: &[String],
    res: &ResourceSet,
) -> BTreeMap<String, String> {
    for p in parents {
        for (k, v) in profile_labels(res, p).into_iter().flatten() {
            labels.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    labels
}

impl Item {
    fn workload(res: &ResourceSet, w: &WorkloadEndpoint) -> Option<Item> {
        if w.spec.ip_networks.is_empty() {
            return None;
        }
        let mut own: BTreeMap<String, String> = w
            .metadata
            .labels
            .iter()
            .filter(|(k, _)| !k.starts_with("pcns.") && !k.starts_with("pcsa."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        own.insert(NS_LABEL.into(), w.metadata.namespace.clone());
        own.insert(ORCH_LABEL.into(), w.spec.orchestrator.clone());
        if !w.spec.service_account_name.is_empty() {
            own.insert(SA_LABEL.into(), w.spec.service_account_name.clone());
        }
        Some(Item {
            endpoint: Some(EndpointKey::workload(
                &w.metadata.namespace,
                &w.metadata.name,
            )),
            labels: inherit(own, &w.spec.profiles, res),
            nets: parse_nets(&w.spec.ip_networks),
            named_ports: w
                .spec
                .ports
                .iter()
                .filter(|p| !p.name.is_empty())
                .filter_map(|p| Some((p.name.clone(), p.protocol.number()?, p.port)))
                .collect(),
            profiles: w.spec.profiles.clone(),
        })
    }

    fn host(res: &ResourceSet, h: &HostEndpoint) -> Item {
        Item {
            endpoint: Some(EndpointKey::host(&h.metadata.name)),
            labels: inherit(h.metadata.labels.clone(), &h.spec.profiles, res),
            nets: h
                .spec
                .expected_ips
                .iter()
                .filter_map(|ip| ip.parse::<IpAddr>().ok().map(IpNet::from))
                .collect(),
            named_ports: h
                .spec
                .ports
                .iter()
                .filter_map(|p| Some((p.name.clone(), p.protocol.number()?, p.port)))
                .collect(),
            profiles: h.spec.profiles.clone(),
        }
    }

    pub(super) fn endpoint(res: &ResourceSet, key: &EndpointKey) -> Option<Item> {
        match key {
            EndpointKey::Workload { namespace, name } => res
                .workload_endpoints
                .get(&(namespace.clone(), name.clone()))
                .and_then(|w| Item::workload(res, w)),
            EndpointKey::Host { name } => res.host_endpoints.get(name).map(|h| Item::host(res, h)),
        }
    }

    /// Every endpoint and network set.
    pub(super) fn all(res: &ResourceSet) -> Vec<Item> {
        let mut items: Vec<Item> = res
            .workload_endpoints
            .values()
            .filter_map(|w| Item::workload(res, w))
            .collect();
        items.extend(res.host_endpoints.values().map(|h| Item::host(res, h)));
        for n in res.network_sets.values() {
            let mut own = n.metadata.labels.clone();
            own.insert(NS_LABEL.into(), n.metadata.namespace.clone());
            items.push(Item {
                endpoint: None,
                labels: inherit(own, &[format!("kns.{}", n.metadata.namespace)], res),
                nets: parse_nets(&n.spec.nets),
                named_ports: Vec::new(),
                profiles: Vec::new(),
            });
        }
        for n in res.global_network_sets.values() {
            items.push(Item {
                endpoint: None,
                labels: n.metadata.labels.clone(),
                nets: parse_nets(&n.spec.nets),
                named_ports: Vec::new(),
                profiles: Vec::new(),
            });
        }
        items
    }

    fn holds(&self, addr: IpAddr) -> bool {
        self.nets.iter().any(|n| n.contains(&addr))
    }
}

// ----- selectors -----

fn expr(text: &str) -> Expr {
    Selector::parse(text)
        .map(|s| s.expr().clone())
        .expect("selectors are validated when resources are recorded")
}

fn prefixed(text: &str, prefix: &str) -> Expr {
    expr(text).with_key_prefix(prefix)
}

/// Replaces every `all()` (and, if given, `global()`) node.
fn replace_all(e: &Expr, all: &Expr, global: Option<&Expr>) -> Expr {
    match e {
        Expr::All => all.clone(),
        Expr::Global => global.cloned().unwrap_or(Expr::Global),
        Expr::Not(inner) => Expr::Not(Box::new(replace_all(inner, all, global))),
        Expr::And(v) => Expr::And(v.iter().map(|x| replace_all(x, all, global)).collect()),
        Expr::Or(v) => Expr::Or(v.iter().map(|x| replace_all(x, all, global)).collect()),
        leaf => leaf.clone(),
    }
}

fn has(key: &str) -> Expr {
    Expr::Has { key: key.into() }
}

fn eval(e: &Expr, labels: &BTreeMap<String, String>) -> bool {
    e.evaluate(labels)
}

// ----- policies -----

struct RefPolicy {
    key: PolicyKey,
    tier: String,
    order: f64,
    ingress: bool,
    egress: bool,
    do_not_track: bool,
    pre_dnat: bool,
    /// Every expression must match for the policy to select an endpoint.
    selects: Vec<Expr>,
    ingress_rules: Vec<Rule>,
    egress_rules: Vec<Rule>,
}

/// Types as the API defaults them when none are given.
fn governs(types: &[PolicyType], ingress: &[Rule], egress: &[Rule]) -> (bool, bool) {
    if !types.is_empty() {
        return (
            types.contains(&PolicyType::Ingress),
            types.contains(&PolicyType::Egress),
        );
    }
    let egress_only = ingress.is_empty() && !egress.is_empty();
    let both = !ingress.is_empty() && !egress.is_empty();
    (!egress_only, egress_only || both)
}

fn namespaced_policy(kind: PolicyKind, p: &NetworkPolicy) -> RefPolicy {
    let s = &p.spec;
    let ns = &p.metadata.namespace;
    let mut selects = vec![
        Expr::Equals {
            key: NS_LABEL.into(),
            value: ns.clone(),
        },
        expr(&s.selector),
    ];
    if !s.service_account_selector.is_empty() {
        selects.push(prefixed(&s.service_account_selector, "pcsa."));
    }
    let (ingress, egress) = governs(&s.types, &s.ingress, &s.egress);
    RefPolicy {
        key: PolicyKey {
            kind,
            namespace: ns.clone(),
            name: p.metadata.name.clone(),
        },
        tier: if s.tier.is_empty() {
            "default".into()
        } else {
            s.tier.clone()
        },
        order: s.order.unwrap_or(f64::INFINITY),
        ingress,
        egress,
        do_not_track: false,
        pre_dnat: false,
        selects,
        ingress_rules: s.ingress.clone(),
        egress_rules: s.egress.clone(),
    }
}

fn global_policy(p: &GlobalNetworkPolicy) -> RefPolicy {
    let s = &p.spec;
    let mut selector = expr(&s.selector);
    let mut selects = Vec::new();
    // Calico rewrites `all()` anywhere in the composed selector once a
    // namespace (or service account) selector is added.
    if !s.namespace_selector.is_empty() {
        let in_ns = has(NS_LABEL);
        selector = replace_all(&selector, &in_ns, None);
        selects.push(replace_all(
            &prefixed(&s.namespace_selector, "pcns."),
            &in_ns,
            None,
        ));
    }
    if !s.service_account_selector.is_empty() {
        let with_sa = has(SA_LABEL);
        selector = replace_all(&selector, &with_sa, None);
        selects.push(replace_all(
            &prefixed(&s.service_account_selector, "pcsa."),
            &with_sa,
            None,
        ));
    }
    selects.insert(0, selector);
    let (ingress, egress) = governs(&s.types, &s.ingress, &s.egress);
    RefPolicy {
        key: PolicyKey::global(&p.metadata.name),
        tier: if s.tier.is_empty() {
            "default".into()
        } else {
            s.tier.clone()
        },
        order: s.order.unwrap_or(f64::INFINITY),
        ingress,
        egress,
        do_not_track: s.do_not_track,
        pre_dnat: s.pre_dnat,
        selects,
        ingress_rules: s.ingress.clone(),
        egress_rules: s.egress.clone(),
    }
}

fn all_policies(res: &ResourceSet) -> Vec<RefPolicy> {
    let mut out: Vec<RefPolicy> = res
        .network_policies
        .values()
        .map(|p| namespaced_policy(PolicyKind::NetworkPolicy, p))
        .collect();
    out.extend(res.global_network_policies.values().map(global_policy));
    for k in res.kubernetes_network_policies.values() {
        if let Ok(c) = knp::convert(k) {
            out.push(namespaced_policy(
                PolicyKind::KubernetesNetworkPolicy,
                &c.policy,
            ));
        }
    }
    out
}

/// (exists, default action): tiers policies name but nobody defined deny.
fn tier_info(res: &ResourceSet, name: &str) -> (bool, Option<f64>, bool) {
    let built_in = match name {
        "kube-admin" => Some((Some(1_000.0), true)),
        "default" => Some((Some(1_000_000.0), false)),
        "kube-baseline" => Some((Some(10_000_000.0), true)),
        _ => None,
    };
    match res.tiers.get(name) {
        Some(t) => (
            true,
            t.spec.order,
            t.spec.default_action == Some(Action::Pass),
        ),
        None => match built_in {
            Some((order, pass)) => (true, order, pass),
            None => (false, None, false),
        },
    }
}

fn tier_order(res: &ResourceSet, a: &str, b: &str) -> Ordering {
    let (ae, ao, _) = tier_info(res, a);
    let (be, bo, _) = tier_info(res, b);
    let rank = |exists: bool, order: Option<f64>| (u8::from(!exists), u8::from(order.is_none()));
    rank(ae, ao)
        .cmp(&rank(be, bo))
        .then_with(|| {
            ao.unwrap_or(0.0)
                .partial_cmp(&bo.unwrap_or(0.0))
                .unwrap_or(Ordering::Equal)
        })
        .then_with(|| a.cmp(b))
}

// ----- rules -----

fn protocol_number(p: &Protocol) -> Option<u8> {
    p.number()
}

fn icmp_ok(f: &Option<calico_model::IcmpFields>, packet: &Packet, negated: bool) -> bool {
    let Some(f) = f else { return true };
    let Some(t) = f.icmp_type else { return true };
    let hit = packet.icmp.is_some_and(|h| {
        i64::from(h.icmp_type) == t && f.code.is_none_or(|c| i64::from(h.code) == c)
    });
    hit != negated
}

/// Which policies run in a stage.
type StageFilter = fn(&RefPolicy) -> bool;

struct Judge<'a> {
    res: &'a ResourceSet,
    items: Vec<Item>,
}

impl Judge<'_> {
    fn rule_matches(&self, rule: &Rule, ns: &str, packet: &Packet) -> bool {
        let v6 = packet.src.is_ipv6();
        if rule.ip_version.is_some_and(|v| (v == 6) != v6) {
            return false;
        }
        // Calico keeps a rule out of a family where one of its nets lists
        // has nothing of that family, or a negated list holds the family's
        // catch-all.
        for er in [&rule.source, &rule.destination] {
            let nets = parse_nets(&er.nets);
            if !nets.is_empty() && !nets.iter().any(|n| n.addr().is_ipv6() == v6) {
                return false;
            }
            let not: Vec<IpNet> = parse_nets(&er.not_nets)
                .into_iter()
                .filter(|n| n.addr().is_ipv6() == v6)
                .collect();
            if !er.not_nets.is_empty()
                && (not.is_empty() || not.iter().any(|n| n.prefix_len() == 0))
            {
                return false;
            }
        }
        if rule
            .protocol
            .as_ref()
            .is_some_and(|p| protocol_number(p) != Some(packet.protocol))
        {
            return false;
        }
        if rule
            .not_protocol
            .as_ref()
            .is_some_and(|p| protocol_number(p) == Some(packet.protocol))
        {
            return false;
        }
        icmp_ok(&rule.icmp, packet, false)
            && icmp_ok(&rule.not_icmp, packet, true)
            && self.side_matches(
                &rule.source,
                ns,
                rule.protocol.as_ref(),
                packet.src,
                packet.src_port,
                packet.protocol,
            )
            && self.side_matches(
                &rule.destination,
                ns,
                rule.protocol.as_ref(),
                packet.dst,
                packet.dst_port,
                packet.protocol,
            )
    }

    /// Whether the entity rule's selector fields admit `item` (`None`: the
    /// rule has no positive selector at all).
    fn positive(&self, er: &EntityRule, ns: &str) -> Option<impl Fn(&Item) -> bool> {
        let sa = er
            .service_accounts
            .as_ref()
            .filter(|s| !s.names.is_empty() || !s.selector.is_empty());
        let has_positive = sa.is_some()
            || !er.selector.is_empty()
            || !er.namespace_selector.is_empty()
            || (!ns.is_empty() && !er.not_selector.is_empty());
        if !has_positive {
            return None;
        }
        let ns_expr = if !er.namespace_selector.is_empty() {
            let not_namespaced = Expr::Not(Box::new(has(NS_LABEL)));
            Some(replace_all(
                &prefixed(&er.namespace_selector, "pcns."),
                &has(NS_LABEL),
                Some(&not_namespaced),
            ))
        } else if !ns.is_empty() {
            Some(Expr::Equals {
                key: NS_LABEL.into(),
                value: ns.into(),
            })
        } else {
            None
        };
        let sa_names: Option<Vec<String>> =
            sa.filter(|s| !s.names.is_empty()).map(|s| s.names.clone());
        let sa_expr = sa
            .filter(|s| !s.selector.is_empty())
            .map(|s| prefixed(&s.selector, "pcsa."));
        let sel = (!er.selector.is_empty()).then(|| expr(&er.selector));
        let not_sel = (!er.not_selector.is_empty()).then(|| expr(&er.not_selector));
        Some(move |i: &Item| {
            ns_expr.as_ref().is_none_or(|e| eval(e, &i.labels))
                && sa_names
                    .as_ref()
                    .is_none_or(|names| i.labels.get(SA_LABEL).is_some_and(|sa| names.contains(sa)))
                && sa_expr.as_ref().is_none_or(|e| eval(e, &i.labels))
                && sel.as_ref().is_none_or(|e| eval(e, &i.labels))
                && not_sel.as_ref().is_none_or(|e| !eval(e, &i.labels))
        })
    }

    fn side_matches(
        &self,
        er: &EntityRule,
        ns: &str,
        rule_protocol: Option<&Protocol>,
        addr: IpAddr,
        port: Option<u16>,
        protocol: u8,
    ) -> bool {
        if !er.nets.is_empty() && !parse_nets(&er.nets).iter().any(|n| n.contains(&addr)) {
            return false;
        }
        if parse_nets(&er.not_nets).iter().any(|n| n.contains(&addr)) {
            return false;
        }
        let split = |ports: &[Port]| -> (Vec<(u16, u16)>, Vec<String>) {
            let mut numeric = Vec::new();
            let mut named = Vec::new();
            for p in ports {
                match p {
                    Port::Range { min, max } => numeric.push((*min, *max)),
                    Port::Named(n) => named.push(n.clone()),
                }
            }
            (numeric, named)
        };
        let (numeric, named) = split(&er.ports);
        let (not_numeric, not_named) = split(&er.not_ports);
        let positive = self.positive(er, ns);
        match &positive {
            Some(pos) => {
                // With only named ports, the named-port check below is the
                // whole address check.
                if (!numeric.is_empty() || named.is_empty())
                    && !self.items.iter().any(|i| pos(i) && i.holds(addr))
                {
                    return false;
                }
            }
            None => {
                if !er.not_selector.is_empty() {
                    let not_sel = expr(&er.not_selector);
                    if self
                        .items
                        .iter()
                        .any(|i| eval(&not_sel, &i.labels) && i.holds(addr))
                    {
                        return false;
                    }
                }
            }
        }
        let admitted = |p: u8| match rule_protocol.and_then(protocol_number) {
            None => true,
            Some(17) => p == 17,
            Some(132) => p == 132,
            Some(_) => p == 6,
        };
        let named_hit = |names: &[String], p: u16| {
            names.iter().any(|name| {
                self.items.iter().any(|i| {
                    i.endpoint.is_some()
                        && positive.as_ref().is_none_or(|pos| pos(i))
                        && i.nets.iter().any(|n| n.addr() == addr)
                        && i.named_ports.iter().any(|(n, proto, port)| {
                            n == name && admitted(*proto) && *proto == protocol && *port == p
                        })
                })
            })
        };
        let in_ranges =
            |ranges: &[(u16, u16)], p: u16| ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&p));
        if !numeric.is_empty() || !named.is_empty() {
            match port {
                Some(p) if in_ranges(&numeric, p) || named_hit(&named, p) => {}
                _ => return false,
            }
        }
        if !not_numeric.is_empty() || !not_named.is_empty() {
            match port {
                Some(p) if !in_ranges(&not_numeric, p) && !named_hit(&not_named, p) => {}
                _ => return false,
            }
        }
        true
    }

    fn side(
        &self,
        failsafe: &Failsafe,
        key: &EndpointKey,
        direction: Direction,
        packet: &Packet,
    ) -> SideVerdict {
        let Some(ep) = Item::endpoint(self.res, key) else {
            return no_endpoint();
        };
        let mut trail = Vec::new();
        let done = |verdict, decided_by, trail| SideVerdict {
            verdict,
            decided_by,
            trail,
        };
        let host = key.is_host();
        if host {
            let list = match direction {
                Direction::Ingress => &failsafe.inbound,
                Direction::Egress => &failsafe.outbound,
            };
            if let Some(p) = failsafe_match(list, packet, direction) {
                return done(Verdict::Allow, Decision::Failsafe(p), trail);
            }
        }

        let mut selecting: Vec<RefPolicy> = all_policies(self.res)
            .into_iter()
            .filter(|p| p.selects.iter().all(|e| eval(e, &ep.labels)))
            .collect();
        selecting.sort_by(|a, b| {
            tier_order(self.res, &a.tier, &b.tier)
                .then_with(|| a.order.partial_cmp(&b.order).unwrap_or(Ordering::Equal))
                .then_with(|| a.key.tie_break().cmp(&b.key.tie_break()))
        });

        let mut stages: Vec<(Stage, StageFilter)> = Vec::new();
        if host {
            stages.push((Stage::Untracked, |p| p.do_not_track));
            if direction == Direction::Ingress {
                stages.push((Stage::PreDnat, |p| !p.do_not_track && p.pre_dnat));
            }
        }
        stages.push((Stage::Normal, |p| !p.do_not_track && !p.pre_dnat));

        for (stage, in_stage) in &stages {
            let mut tiers: Vec<(String, Vec<&RefPolicy>)> = Vec::new();
            for p in selecting.iter().filter(|p| in_stage(p)) {
                let governs = match direction {
                    Direction::Ingress => p.ingress,
                    Direction::Egress => p.egress && *stage != Stage::PreDnat,
                };
                if !governs {
                    continue;
                }
                match tiers.last_mut() {
                    Some((t, list)) if *t == p.tier => list.push(p),
                    _ => tiers.push((p.tier.clone(), vec![p])),
                }
            }
            'tiers: for (tier, policies) in tiers {
                for p in policies {
                    let rules = match direction {
                        Direction::Ingress => &p.ingress_rules,
                        Direction::Egress => &p.egress_rules,
                    };
                    for (index, rule) in rules.iter().enumerate() {
                        if !self.rule_matches(rule, &p.key.namespace, packet) {
                            continue;
                        }
                        let owner = p.key.to_string();
                        match rule.action {
                            Action::Allow | Action::Deny => {
                                let (verdict, action) = if rule.action == Action::Allow {
                                    (Verdict::Allow, RuleAction::Allow)
                                } else {
                                    (Verdict::Deny, RuleAction::Deny)
                                };
                                let decision = Decision::Rule {
                                    stage: *stage,
                                    tier,
                                    policy: p.key.clone(),
                                    index,
                                    action,
                                };
                                return done(verdict, decision, trail);
                            }
                            Action::Log => trail.push(Step::Log {
                                stage: *stage,
                                tier: Some(tier.clone()),
                                owner,
                                index,
                            }),
                            Action::Pass => {
                                trail.push(Step::Pass {
                                    stage: *stage,
                                    tier: Some(tier.clone()),
                                    owner,
                                    index,
                                });
                                continue 'tiers;
                            }
                        }
                    }
                }
                let (_, _, pass) = tier_info(self.res, &tier);
                // doNotTrack and preDNAT tiers never end in a drop: normal
                // policy still has to see the packet.
                if pass || *stage != Stage::Normal {
                    trail.push(Step::TierPassed {
                        stage: *stage,
                        tier,
                    });
                } else {
                    return done(Verdict::Deny, Decision::EndOfTier { tier }, trail);
                }
            }
        }

        for name in &ep.profiles {
            let rules = match (self.res.profiles.get(name), name.as_str()) {
                (Some(p), _) => match direction {
                    Direction::Ingress => p.spec.ingress.clone(),
                    Direction::Egress => p.spec.egress.clone(),
                },
                (None, DEFAULT_ALLOW_PROFILE) => vec![Rule::new(Action::Allow)],
                (None, _) => {
                    return done(
                        Verdict::Deny,
                        Decision::MissingProfile {
                            profile: name.clone(),
                        },
                        trail,
                    );
                }
            };
            for (index, rule) in rules.iter().enumerate() {
                if !self.rule_matches(rule, "", packet) {
                    continue;
                }
                match rule.action {
                    Action::Allow => {
                        let d = Decision::Profile {
                            profile: name.clone(),
                            index,
                            action: RuleAction::Allow,
                        };
                        return done(Verdict::Allow, d, trail);
                    }
                    Action::Deny => {
                        let d = Decision::Profile {
                            profile: name.clone(),
                            index,
                            action: RuleAction::Deny,
                        };
                        return done(Verdict::Deny, d, trail);
                    }
                    Action::Log => trail.push(Step::Log {
                        stage: Stage::Normal,
                        tier: None,
                        owner: name.clone(),
                        index,
                    }),
                    Action::Pass => {
                        trail.push(Step::Pass {
                            stage: Stage::Normal,
                            tier: None,
                            owner: name.clone(),
                            index,
                        });
                        break;
                    }
                }
            }
        }
        done(Verdict::Deny, Decision::NoProfileMatched, trail)
    }
}

/// Judges a flow from the resources: the source endpoint's egress and the
/// destination endpoint's ingress.
pub fn explain(res: &ResourceSet, failsafe: &Failsafe, flow: &Flow) -> Explanation {
    let judge = Judge {
        res,
        items: Item::all(res),
    };
    let side = |ep: &Option<EndpointKey>, d| match ep {
        Some(k) => judge.side(failsafe, k, d, &flow.packet),
        None => no_endpoint(),
    };
    Explanation::new(
        side(&flow.src_endpoint, Direction::Egress),
        side(&flow.dst_endpoint, Direction::Ingress),
    )
}

/// Judges one side: `endpoint`'s policy in `direction`.
pub fn explain_side(
    res: &ResourceSet,
    failsafe: &Failsafe,
    endpoint: &EndpointKey,
    direction: Direction,
    packet: &Packet,
) -> SideVerdict {
    let judge = Judge {
        res,
        items: Item::all(res),
    };
    judge.side(failsafe, endpoint, direction, packet)
}
