//! Rules and the policy kinds: NetworkPolicy, GlobalNetworkPolicy, their
//! staged forms, Tier and Profile.

use std::collections::BTreeSet;

use super::Collector;
use crate::net::parse_cidr;
use crate::numorstring::{Port, Protocol};
use crate::policy::{
    DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER, GlobalNetworkPolicySpec, KUBE_ADMIN_TIER_NAME,
    KUBE_ADMIN_TIER_ORDER, KUBE_BASELINE_TIER_NAME, KUBE_BASELINE_TIER_ORDER, NetworkPolicySpec,
    StagedAction, StagedGlobalNetworkPolicySpec, StagedNetworkPolicySpec, Tier,
};
use crate::profile::Profile;
use crate::rule::{Action, EntityRule, IcmpFields, PolicyType, Rule};

const GLOBAL_ONLY_IN_NS_SELECTOR: &str =
    "global() can only be used in an EntityRule namespaceSelector";
const PORTS_NEED_PROTOCOL: &str =
    "rules with numeric port or port range must set protocol to TCP or UDP or SCTP";
const PORTS_WRONG_PROTOCOL: &str =
    "rules that specify ports must set protocol to TCP or UDP or SCTP";

fn protocol(c: &mut Collector, path: &str, p: &Protocol) {
    match p {
        Protocol::Number(0) => c.err(path, "protocol number invalid: must be 1-255"),
        Protocol::Number(_) => {}
        Protocol::Name(n) if !p.is_valid_name() => c.err(
            path,
            format!("protocol name invalid: {n:?} (use TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or a number 1-255)"),
        ),
        Protocol::Name(_) => {}
    }
}

fn icmp(c: &mut Collector, path: &str, f: &IcmpFields) {
    if let Some(t) = f.icmp_type {
        c.range(&format!("{path}.type"), t, 0, 254);
    }
    if let Some(code) = f.code {
        c.range(&format!("{path}.code"), code, 0, 255);
        if f.icmp_type.is_none() {
            c.err(
                format!("{path}.code"),
                "ICMP code specified without an ICMP type",
            );
        }
    }
}

fn ports(c: &mut Collector, path: &str, list: &[Port], proto: Option<&Protocol>) {
    if list.is_empty() {
        return;
    }
    match proto {
        None if list.iter().any(|p| !matches!(p, Port::Named(_))) => {
            c.err(path, PORTS_NEED_PROTOCOL)
        }
        Some(p) if !p.supports_ports() => c.err(path, PORTS_WRONG_PROTOCOL),
        _ => {}
    }
    for (i, p) in list.iter().enumerate() {
        if let Port::Range { min, max } = p {
            if *min == 0 || *max == 0 {
                c.err(
                    format!("{path}[{i}]"),
                    "port range invalid, port number must be between 1 and 65535",
                );
            } else if min > max {
                c.err(format!("{path}[{i}]"), "port range invalid");
            }
        }
    }
}

/// Tracks the IP versions of CIDRs seen so far in one rule.
#[derive(Default)]
struct NetVersions {
    v4: bool,
    v6: bool,
}

fn nets(
    c: &mut Collector,
    path: &str,
    list: &[String],
    negated: bool,
    ip_version: Option<u8>,
    seen: &mut NetVersions,
) {
    let (mut v4, mut v6) = (false, false);
    for (i, n) in list.iter().enumerate() {
        match parse_cidr(n) {
            None => c.err(format!("{path}[{i}]"), format!("invalid CIDR {n:?}")),
            Some((addr, net)) => {
                if addr != net.network() {
                    c.err(
                        format!("{path}[{i}]"),
                        format!("{n:?} is not a network address (host bits set); use {net}"),
                    );
                }
                if net.addr().is_ipv4() {
                    v4 = true;
                } else {
                    v6 = true;
                }
                if negated && net.prefix_len() == 0 {
                    c.err(
                        format!("{path}[{i}]"),
                        "catch-all CIDR in negation creates logical contradiction (matches no traffic)",
                    );
                }
            }
        }
    }
    if let Some(v) = ip_version {
        if (v4 && v != 4) || (v6 && v != 6) {
            c.err(path, "rule IP version doesn't match CIDR version");
        }
    }
    if (v4 && seen.v6) || (v6 && seen.v4) || (v4 && v6) {
        c.err(path, "rule contains both IPv4 and IPv6 CIDRs");
    }
    seen.v4 |= v4;
    seen.v6 |= v6;
}

fn entity(c: &mut Collector, path: &str, e: &EntityRule) {
    c.selector_no_global(
        &format!("{path}.selector"),
        &e.selector,
        GLOBAL_ONLY_IN_NS_SELECTOR,
    );
    c.selector_no_global(
        &format!("{path}.notSelector"),
        &e.not_selector,
        GLOBAL_ONLY_IN_NS_SELECTOR,
    );
    let ns = &e.namespace_selector;
    let ns_path = format!("{path}.namespaceSelector");
    if ns.contains("global(") && ns.trim() != "global()" {
        c.err(&ns_path, "global() cannot be combined with other selectors");
    } else {
        c.selector(&ns_path, ns);
    }
    if let Some(sa) = &e.service_accounts {
        c.selector(&format!("{path}.serviceAccounts.selector"), &sa.selector);
    }
    if let Some(svc) = &e.services {
        let sp = format!("{path}.services");
        if svc.name.is_empty() {
            c.err(format!("{sp}.name"), "services must specify a service name");
        } else {
            c.name(&format!("{sp}.name"), &svc.name);
        }
        if !svc.namespace.is_empty() {
            c.name(&format!("{sp}.namespace"), &svc.namespace);
        }
        if !e.namespace_selector.is_empty() {
            c.err(
                &sp,
                "cannot specify NamespaceSelector and Services on the same rule",
            );
        }
        if e.service_accounts.is_some() {
            c.err(
                &sp,
                "cannot specify ServiceAccounts and Services on the same rule",
            );
        }
        if !e.selector.is_empty() || !e.not_selector.is_empty() {
            c.err(
                &sp,
                "cannot specify Selector/NotSelector and Services on the same rule",
            );
        }
        if !e.nets.is_empty() || !e.not_nets.is_empty() {
            c.err(
                &sp,
                "cannot specify Nets/NotNets and Services on the same rule",
            );
        }
    }
}

pub(super) fn rule(c: &mut Collector, path: &str, r: &Rule) {
    if let Some(v) = r.ip_version {
        if v != 4 && v != 6 {
            c.err(
                format!("{path}.ipVersion"),
                format!("invalid IP version {v}: must be 4 or 6"),
            );
        }
    }
    for (field, p) in [("protocol", &r.protocol), ("notProtocol", &r.not_protocol)] {
        let Some(p) = p else { continue };
        protocol(c, &format!("{path}.{field}"), p);
        match (p.number(), r.ip_version) {
            (Some(1), Some(v)) if v != 4 => c.err(
                format!("{path}.{field}"),
                "protocol ICMP requires ipVersion 4",
            ),
            (Some(58), Some(v)) if v != 6 => c.err(
                format!("{path}.{field}"),
                "protocol ICMPv6 requires ipVersion 6",
            ),
            _ => {}
        }
    }
    if let Some(f) = &r.icmp {
        icmp(c, &format!("{path}.icmp"), f);
        if !r.protocol.as_ref().is_some_and(|p| p.is_icmp()) {
            c.err(
                format!("{path}.icmp"),
                "ICMP fields require protocol to be ICMP or ICMPv6",
            );
        }
    }
    if let Some(f) = &r.not_icmp {
        icmp(c, &format!("{path}.notICMP"), f);
    }
    let proto = r.protocol.as_ref();
    for (side, e) in [("source", &r.source), ("destination", &r.destination)] {
        let sp = format!("{path}.{side}");
        entity(c, &sp, e);
        ports(c, &format!("{sp}.ports"), &e.ports, proto);
        ports(c, &format!("{sp}.notPorts"), &e.not_ports, proto);
    }
    if r.destination.services.is_some()
        && (!r.destination.ports.is_empty() || !r.destination.not_ports.is_empty())
    {
        c.err(
            format!("{path}.destination"),
            "ports and notPorts cannot be specified with services",
        );
    }
    let mut seen = NetVersions::default();
    for (side, e) in [("source", &r.source), ("destination", &r.destination)] {
        nets(
            c,
            &format!("{path}.{side}.nets"),
            &e.nets,
            false,
            r.ip_version,
            &mut seen,
        );
        nets(
            c,
            &format!("{path}.{side}.notNets"),
            &e.not_nets,
            true,
            r.ip_version,
            &mut seen,
        );
    }
    if let Some(h) = &r.http {
        let hp = format!("{path}.http");
        if r.action != Action::Allow {
            c.err(&hp, "HTTP match is only valid on Allow rules");
        }
        if r.protocol.as_ref().is_some_and(|p| p.number() != Some(6)) {
            c.err(&hp, "rules with HTTP match must have protocol TCP or unset");
        }
        let unique: BTreeSet<&String> = h.methods.iter().collect();
        if unique.len() != h.methods.len() {
            c.err(format!("{hp}.methods"), "invalid methods (duplicates)");
        }
        for (i, p) in h.paths.iter().enumerate() {
            let pp = format!("{hp}.paths[{i}]");
            let v = match (p.exact.is_empty(), p.prefix.is_empty()) {
                (false, false) => {
                    c.err(&pp, "invalid path match: both 'exact' and 'prefix' are set");
                    continue;
                }
                (true, true) => {
                    c.err(
                        &pp,
                        "invalid path match: either 'exact' or 'prefix' must be set",
                    );
                    continue;
                }
                (false, true) => &p.exact,
                (true, false) => &p.prefix,
            };
            if !v.starts_with('/') || v.contains(['?', ' ', '#']) {
                c.err(
                    &pp,
                    format!(
                        "invalid path {v:?}: must start with '/' and not contain '?', ' ' or '#'"
                    ),
                );
            }
        }
    }
    if let Some(m) = &r.metadata {
        c.annotations(&format!("{path}.metadata.annotations"), &m.annotations);
    }
}

/// What the policy kinds share.
struct CommonSpec<'a> {
    tier: &'a str,
    ingress: &'a [Rule],
    egress: &'a [Rule],
    selector: &'a str,
    types: &'a [PolicyType],
    service_account_selector: &'a str,
    hints: usize,
    unique_hints: usize,
    global: bool,
}

fn common(c: &mut Collector, s: CommonSpec<'_>) {
    if !s.tier.is_empty() {
        c.name("spec.tier", s.tier);
    }
    c.selector_no_global("spec.selector", s.selector, GLOBAL_ONLY_IN_NS_SELECTOR);
    c.selector_no_global(
        "spec.serviceAccountSelector",
        s.service_account_selector,
        GLOBAL_ONLY_IN_NS_SELECTOR,
    );
    let mut seen = BTreeSet::new();
    for t in s.types {
        if !seen.insert(*t) {
            c.err(
                "spec.types",
                format!("'{t:?}' type specified more than once"),
            );
        }
    }
    if s.hints != s.unique_hints {
        c.err("spec.performanceHints", "performance hints must be unique");
    }
    for (i, r) in s.ingress.iter().enumerate() {
        let p = format!("spec.ingress[{i}]");
        rule(c, &p, r);
        if r.destination.services.is_some() {
            c.err(
                format!("{p}.destination.services"),
                "not allowed in ingress rule destination",
            );
        }
        if s.global
            && r.source
                .services
                .as_ref()
                .is_some_and(|svc| svc.namespace.is_empty())
        {
            c.err(
                format!("{p}.source.services.namespace"),
                "must specify a namespace",
            );
        }
    }
    for (i, r) in s.egress.iter().enumerate() {
        let p = format!("spec.egress[{i}]");
        rule(c, &p, r);
        if r.source.services.is_some() {
            c.err(
                format!("{p}.source.services"),
                "not allowed in egress rule source",
            );
        }
        if r.http.is_some() {
            c.err(format!("{p}.http"), "not allowed in egress rules");
        }
        if s.global
            && r.destination
                .services
                .as_ref()
                .is_some_and(|svc| svc.namespace.is_empty())
        {
            c.err(
                format!("{p}.destination.services.namespace"),
                "must specify a namespace",
            );
        }
    }
}

fn unique_count<T: Ord>(v: &[T]) -> usize {
    v.iter().collect::<BTreeSet<_>>().len()
}

fn global_flags(
    c: &mut Collector,
    do_not_track: bool,
    pre_dnat: bool,
    apply_on_forward: bool,
    egress: &[Rule],
    types: &[PolicyType],
    namespace_selector: &str,
) {
    if do_not_track && pre_dnat {
        c.err("spec.preDNAT", "preDNAT and doNotTrack cannot both be true");
    }
    if pre_dnat && !egress.is_empty() {
        c.err("spec.egress", "preDNAT policy cannot have any egress rules");
    }
    if pre_dnat && types.contains(&PolicyType::Egress) {
        c.err("spec.types", "preDNAT policy cannot have 'Egress' type");
    }
    if (do_not_track || pre_dnat) && !apply_on_forward {
        c.err(
            "spec.applyOnForward",
            "applyOnForward must be true if either preDNAT or doNotTrack is true",
        );
    }
    c.selector_no_global(
        "spec.namespaceSelector",
        namespace_selector,
        GLOBAL_ONLY_IN_NS_SELECTOR,
    );
}

pub(super) fn network_policy(c: &mut Collector, s: &NetworkPolicySpec) {
    common(
        c,
        CommonSpec {
            tier: &s.tier,
            ingress: &s.ingress,
            egress: &s.egress,
            selector: &s.selector,
            types: &s.types,
            service_account_selector: &s.service_account_selector,
            hints: s.performance_hints.len(),
            unique_hints: unique_count(&s.performance_hints),
            global: false,
        },
    );
}

pub(super) fn global_network_policy(c: &mut Collector, s: &GlobalNetworkPolicySpec) {
    common(
        c,
        CommonSpec {
            tier: &s.tier,
            ingress: &s.ingress,
            egress: &s.egress,
            selector: &s.selector,
            types: &s.types,
            service_account_selector: &s.service_account_selector,
            hints: s.performance_hints.len(),
            unique_hints: unique_count(&s.performance_hints),
            global: true,
        },
    );
    global_flags(
        c,
        s.do_not_track,
        s.pre_dnat,
        s.apply_on_forward,
        &s.egress,
        &s.types,
        &s.namespace_selector,
    );
}

pub(super) fn staged_network_policy(c: &mut Collector, s: &StagedNetworkPolicySpec) {
    if s.staged_action == Some(StagedAction::Delete) {
        let only_tier = StagedNetworkPolicySpec {
            staged_action: s.staged_action,
            tier: s.tier.clone(),
            ..Default::default()
        };
        if *s != only_tier {
            c.err(
                "spec",
                "Spec fields, except Tier, should all be zero-value if stagedAction is Delete",
            );
        }
        return;
    }
    common(
        c,
        CommonSpec {
            tier: &s.tier,
            ingress: &s.ingress,
            egress: &s.egress,
            selector: &s.selector,
            types: &s.types,
            service_account_selector: &s.service_account_selector,
            hints: s.performance_hints.len(),
            unique_hints: unique_count(&s.performance_hints),
            global: false,
        },
    );
}

pub(super) fn staged_global_network_policy(c: &mut Collector, s: &StagedGlobalNetworkPolicySpec) {
    if s.staged_action == Some(StagedAction::Delete) {
        let only_tier = StagedGlobalNetworkPolicySpec {
            staged_action: s.staged_action,
            tier: s.tier.clone(),
            ..Default::default()
        };
        if *s != only_tier {
            c.err(
                "spec",
                "Spec fields, except Tier, should all be zero-value if stagedAction is Delete",
            );
        }
        return;
    }
    common(
        c,
        CommonSpec {
            tier: &s.tier,
            ingress: &s.ingress,
            egress: &s.egress,
            selector: &s.selector,
            types: &s.types,
            service_account_selector: &s.service_account_selector,
            hints: s.performance_hints.len(),
            unique_hints: unique_count(&s.performance_hints),
            global: true,
        },
    );
    global_flags(
        c,
        s.do_not_track,
        s.pre_dnat,
        s.apply_on_forward,
        &s.egress,
        &s.types,
        &s.namespace_selector,
    );
}

pub(super) fn tier(c: &mut Collector, t: &Tier) {
    let fixed = [
        (KUBE_ADMIN_TIER_NAME, Action::Pass, KUBE_ADMIN_TIER_ORDER),
        (
            KUBE_BASELINE_TIER_NAME,
            Action::Pass,
            KUBE_BASELINE_TIER_ORDER,
        ),
        (DEFAULT_TIER_NAME, Action::Deny, DEFAULT_TIER_ORDER),
    ];
    if let Some(a) = t.spec.default_action {
        if !matches!(a, Action::Deny | Action::Pass) {
            c.err(
                "spec.defaultAction",
                format!("invalid default action {a:?}: must be Deny or Pass"),
            );
        }
    }
    for (name, action, order) in fixed {
        if t.metadata.name != name {
            continue;
        }
        if t.spec.default_action != Some(action) {
            c.err(
                "spec.defaultAction",
                format!("The '{name}' tier must have default action '{action:?}'"),
            );
        }
        if t.spec.order != Some(order) {
            c.err("spec.order", format!("{name} tier order must be {order}"));
        }
    }
}

pub(super) fn profile(c: &mut Collector, p: &Profile) {
    for (i, r) in p.spec.ingress.iter().enumerate() {
        rule(c, &format!("spec.ingress[{i}]"), r);
    }
    for (i, r) in p.spec.egress.iter().enumerate() {
        rule(c, &format!("spec.egress[{i}]"), r);
    }
    c.labels("spec.labelsToApply", &p.spec.labels_to_apply);
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::{Value, json};

    fn np(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
               "metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    fn gnp(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
               "metadata": {"name": name}, "spec": spec})
    }

    fn ingress(rule: Value) -> Value {
        np(json!({"ingress": [rule]}))
    }

    #[test]
    fn rule_protocols_and_ports() {
        run(&[
            (
                "tcp port",
                ingress(
                    json!({"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, "8000:8080"]}}),
                ),
                None,
            ),
            (
                "numeric proto",
                ingress(json!({"action": "Allow", "protocol": 17, "destination": {"ports": [53]}})),
                None,
            ),
            (
                "named port without protocol",
                ingress(json!({"action": "Allow", "destination": {"ports": ["http"]}})),
                None,
            ),
            (
                "numeric port without protocol",
                ingress(json!({"action": "Allow", "destination": {"ports": [80]}})),
                Some(
                    "spec.ingress[0].destination.ports: rules with numeric port or port range must set protocol",
                ),
            ),
            (
                "port with icmp",
                ingress(
                    json!({"action": "Allow", "protocol": "ICMP", "source": {"notPorts": [80]}}),
                ),
                Some("spec.ingress[0].source.notPorts: rules that specify ports must set protocol"),
            ),
            (
                "port zero",
                ingress(
                    json!({"action": "Allow", "protocol": "TCP", "destination": {"ports": [0]}}),
                ),
                Some("spec.ingress[0].destination.ports[0]: port range invalid"),
            ),
            (
                "bad protocol name",
                ingress(json!({"action": "Allow", "protocol": "tcp"})),
                Some("spec.ingress[0].protocol: protocol name invalid"),
            ),
            (
                "protocol zero",
                ingress(json!({"action": "Allow", "protocol": 0})),
                Some("protocol number invalid"),
            ),
        ]);
    }

    #[test]
    fn rule_icmp() {
        run(&[
            (
                "ping",
                ingress(
                    json!({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}),
                ),
                None,
            ),
            (
                "code without type",
                ingress(json!({"action": "Allow", "protocol": "ICMP", "icmp": {"code": 0}})),
                Some("spec.ingress[0].icmp.code: ICMP code specified without an ICMP type"),
            ),
            (
                "type out of range",
                ingress(json!({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 255}})),
                Some("spec.ingress[0].icmp.type"),
            ),
            (
                "icmp without protocol",
                ingress(json!({"action": "Allow", "icmp": {"type": 8}})),
                Some("ICMP fields require protocol"),
            ),
            (
                "icmp on v6",
                ingress(json!({"action": "Allow", "protocol": "ICMP", "ipVersion": 6})),
                Some("protocol ICMP requires ipVersion 4"),
            ),
            (
                "icmpv6 on v4",
                ingress(json!({"action": "Allow", "protocol": "ICMPv6", "ipVersion": 4})),
                Some("protocol ICMPv6 requires ipVersion 6"),
            ),
            (
                "bad ip version",
                ingress(json!({"action": "Allow", "ipVersion": 5})),
                Some("invalid IP version 5"),
            ),
        ]);
    }

    #[test]
    fn rule_nets() {
        run(&[
            (
                "v4 nets",
                ingress(
                    json!({"action": "Deny", "source": {"nets": ["10.0.0.0/8"], "notNets": ["10.1.0.0/16"]}}),
                ),
                None,
            ),
            (
                "mixed versions",
                ingress(
                    json!({"action": "Deny", "source": {"nets": ["10.0.0.0/8"]}, "destination": {"nets": ["fd00::/8"]}}),
                ),
                Some("rule contains both IPv4 and IPv6 CIDRs"),
            ),
            (
                "version mismatch",
                ingress(
                    json!({"action": "Deny", "ipVersion": 6, "source": {"nets": ["10.0.0.0/8"]}}),
                ),
                Some("rule IP version doesn't match CIDR version"),
            ),
            (
                "bad cidr",
                ingress(json!({"action": "Deny", "source": {"nets": ["10.0.0.0/33"]}})),
                Some("spec.ingress[0].source.nets[0]: invalid CIDR"),
            ),
            (
                "negated catch-all",
                ingress(json!({"action": "Deny", "source": {"notNets": ["0.0.0.0/0"]}})),
                Some("catch-all CIDR in negation"),
            ),
        ]);
    }

    #[test]
    fn rule_services_and_http() {
        run(&[
            (
                "services in ingress source",
                ingress(json!({"action": "Allow", "source": {"services": {"name": "svc"}}})),
                None,
            ),
            (
                "services in ingress destination",
                ingress(json!({"action": "Allow", "destination": {"services": {"name": "svc"}}})),
                Some(
                    "spec.ingress[0].destination.services: not allowed in ingress rule destination",
                ),
            ),
            (
                "services without name",
                ingress(json!({"action": "Allow", "source": {"services": {"namespace": "x"}}})),
                Some("services must specify a service name"),
            ),
            (
                "services with nets",
                ingress(
                    json!({"action": "Allow", "source": {"services": {"name": "s"}, "nets": ["10.0.0.0/8"]}}),
                ),
                Some("cannot specify Nets/NotNets and Services"),
            ),
            (
                "http on deny",
                ingress(json!({"action": "Deny", "http": {"methods": ["GET"]}})),
                Some("HTTP match is only valid on Allow rules"),
            ),
            (
                "http bad path",
                ingress(json!({"action": "Allow", "http": {"paths": [{"exact": "nope"}]}})),
                Some("spec.ingress[0].http.paths[0]: invalid path"),
            ),
            (
                "http in egress",
                np(json!({"egress": [{"action": "Allow", "http": {"methods": ["GET"]}}]})),
                Some("spec.egress[0].http: not allowed in egress rules"),
            ),
        ]);
    }

    #[test]
    fn policy_level_rules() {
        run(&[
            (
                "duplicate types",
                np(json!({"types": ["Ingress", "Ingress"]})),
                Some("spec.types: 'Ingress' type specified more than once"),
            ),
            (
                "bad tier name",
                np(json!({"tier": "Bad_Tier"})),
                Some("spec.tier"),
            ),
            (
                "gnp prednat egress",
                gnp(
                    "g",
                    json!({"preDNAT": true, "applyOnForward": true, "egress": [{"action": "Allow"}]}),
                ),
                Some("preDNAT policy cannot have any egress rules"),
            ),
            (
                "gnp donottrack without aof",
                gnp("g", json!({"doNotTrack": true})),
                Some("applyOnForward must be true"),
            ),
            (
                "gnp both",
                gnp(
                    "g",
                    json!({"doNotTrack": true, "preDNAT": true, "applyOnForward": true}),
                ),
                Some("preDNAT and doNotTrack cannot both be true"),
            ),
            (
                "gnp global selector",
                gnp("g", json!({"selector": "global()"})),
                Some("spec.selector: global() can only be used"),
            ),
            (
                "gnp svc needs ns",
                gnp(
                    "g",
                    json!({"egress": [{"action": "Allow", "destination": {"services": {"name": "s"}}}]}),
                ),
                Some("spec.egress[0].destination.services.namespace: must specify a namespace"),
            ),
            (
                "gnp name with two dots",
                gnp("a.b.c", json!({})),
                Some("metadata.name"),
            ),
            (
                "gnp tier-prefixed name",
                gnp("security.allow", json!({"tier": "security"})),
                None,
            ),
            (
                "np knp name",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                "metadata": {"name": "knp.default.allow.web", "namespace": "ns"}}),
                None,
            ),
            (
                "staged delete with rules",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "StagedNetworkPolicy",
                "metadata": {"name": "s", "namespace": "ns"}, "spec": {"stagedAction": "Delete", "ingress": [{"action": "Allow"}]}}),
                Some("should all be zero-value if stagedAction is Delete"),
            ),
        ]);
    }

    #[test]
    fn policy_selectors() {
        run(&[
            (
                "good selector",
                np(json!({"selector": "app == 'web' && has(tier)"})),
                None,
            ),
            (
                "bad selector",
                np(json!({"selector": "app == "})),
                Some("spec.selector: invalid selector"),
            ),
            (
                "bad rule selector",
                ingress(json!({"action": "Allow", "source": {"selector": "a in {"}})),
                Some("spec.ingress[0].source.selector: invalid selector"),
            ),
            (
                "global ns selector",
                ingress(json!({"action": "Allow", "source": {"namespaceSelector": "global()"}})),
                None,
            ),
            (
                "global combined",
                ingress(
                    json!({"action": "Allow", "source": {"namespaceSelector": "global() && a == 'b'"}}),
                ),
                Some("global() cannot be combined"),
            ),
            (
                "bad sa selector",
                ingress(
                    json!({"action": "Allow", "source": {"serviceAccounts": {"selector": "!!"}}}),
                ),
                Some("spec.ingress[0].source.serviceAccounts.selector"),
            ),
        ]);
    }

    #[test]
    fn tiers() {
        let tier = |name: &str, spec: Value| json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": name}, "spec": spec});
        run(&[
            (
                "user tier",
                tier("security", json!({"order": 100, "defaultAction": "Pass"})),
                None,
            ),
            (
                "allow default action",
                tier("security", json!({"defaultAction": "Allow"})),
                Some("spec.defaultAction: invalid default action"),
            ),
            ("dotted name", tier("a.b", json!({})), Some("metadata.name")),
            (
                "default tier ok",
                tier(
                    "default",
                    json!({"order": 1000000, "defaultAction": "Deny"}),
                ),
                None,
            ),
            (
                "default tier order",
                tier("default", json!({"order": 5, "defaultAction": "Deny"})),
                Some("default tier order must be 1000000"),
            ),
            (
                "kube-admin action",
                tier(
                    "kube-admin",
                    json!({"order": 1000, "defaultAction": "Deny"}),
                ),
                Some("must have default action 'Pass'"),
            ),
        ]);
    }
}
