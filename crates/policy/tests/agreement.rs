//! Property tests over random clusters:
//! - the compiled programs, evaluated in memory, agree with the reference
//!   evaluator on random packets;
//! - the incremental engine, after any sequence of updates and deletes,
//!   holds exactly what a fresh engine built from the final resources holds
//!   (so the result does not depend on event order).

mod common;

use std::net::IpAddr;

use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IcmpFields,
    NetworkPolicy, NetworkSet, ObjectMeta, PolicyType, Port, Profile, Protocol, Rule,
    ServiceAccountMatch, Tier, WorkloadEndpoint, WorkloadEndpointPort,
};
use calico_policy::eval::{self, Flow, Packet};
use calico_policy::explain::{self, ResourceSet};
use calico_policy::program::Failsafe;
use calico_policy::{EndpointKey, EngineConfig, PolicyEngine, Update};
use proptest::prelude::*;

// ----- random resources -----

fn label_key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["app", "tier", "role"])
}

fn label_value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["x", "y", "z"])
}

fn label_map() -> impl Strategy<Value = Vec<(&'static str, &'static str)>> {
    prop::collection::vec((label_key(), label_value()), 0..3)
}

fn selector() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("all()".to_string()),
        label_key().prop_map(|k| format!("has({k})")),
        (label_key(), label_value()).prop_map(|(k, v)| format!("{k} == '{v}'")),
        (label_key(), label_value()).prop_map(|(k, v)| format!("{k} != '{v}'")),
        label_key().prop_map(|k| format!("{k} in {{'x', 'y'}}")),
        label_key().prop_map(|k| format!("!has({k})")),
    ];
    leaf.prop_recursive(2, 6, 2, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} && {b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) || ({b})")),
        ]
    })
}

fn ns_selector() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just(String::new()),
        Just("all()".to_string()),
        Just("global()".to_string()),
        prop::sample::select(vec!["a", "b"]).prop_map(|t| format!("team == '{t}'")),
        prop::sample::select(vec!["ns0", "ns1"])
            .prop_map(|n| format!("projectcalico.org/name == '{n}'")),
    ]
}

fn nets() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(vec![
            "10.0.0.0/24",
            "10.0.1.0/24",
            "10.0.0.1/32",
            "10.0.1.2/32",
            "172.16.0.0/16",
            "0.0.0.0/0",
            "fd00::/64",
            "192.168.0.0/24",
        ]),
        0..3,
    )
    .prop_map(|v| v.into_iter().map(str::to_string).collect())
}

fn port_list() -> impl Strategy<Value = Vec<Port>> {
    prop::collection::vec(
        prop_oneof![
            2 => prop::sample::select(vec![53u16, 80, 443, 8080]).prop_map(Port::single),
            1 => Just(Port::Range { min: 80, max: 443 }),
            2 => prop::sample::select(vec!["http", "dns", "nope"]).prop_map(|n| Port::Named(n.into())),
        ],
        1..3,
    )
}

/// One match criterion; a rule gets a few, so that rules match often
/// enough to decide.
#[derive(Debug, Clone)]
enum Criterion {
    Selector(bool, String),
    NamespaceSelector(bool, String),
    NotSelector(bool, String),
    Nets(bool, Vec<String>),
    NotNets(bool, Vec<String>),
    ServiceAccounts(bool, ServiceAccountMatch),
    Ports(Vec<Port>),
    NotPorts(Vec<Port>),
    SrcPorts(Vec<Port>),
    Icmp(i64, Option<i64>),
    NotIcmp(i64),
    IpVersion(u8),
    NotProtocol(Protocol),
}

fn simple_selector() -> impl Strategy<Value = String> {
    prop_oneof![3 => (label_key(), label_value()).prop_map(|(k, v)| format!("{k} == '{v}'")), 1 => selector()]
}

fn policy_selector() -> impl Strategy<Value = String> {
    prop_oneof![3 => simple_selector(), 1 => selector(), 1 => Just("all()".to_string())]
}

fn criterion() -> impl Strategy<Value = Criterion> {
    let side = any::<bool>();
    prop_oneof![
        3 => (side, simple_selector()).prop_map(|(s, x)| Criterion::Selector(s, x)),
        2 => (side, ns_selector()).prop_map(|(s, x)| Criterion::NamespaceSelector(s, x)),
        2 => (side, simple_selector()).prop_map(|(s, x)| Criterion::NotSelector(s, x)),
        2 => (side, nets()).prop_map(|(s, x)| Criterion::Nets(s, x)),
        1 => (side, nets()).prop_map(|(s, x)| Criterion::NotNets(s, x)),
        1 => (side, prop::sample::select(vec![
            ServiceAccountMatch { names: vec!["sa0".into()], selector: String::new() },
            ServiceAccountMatch { names: vec![], selector: "role == 'x'".into() },
            ServiceAccountMatch { names: vec!["sa0".into()], selector: "role == 'z'".into() },
        ])).prop_map(|(s, x)| Criterion::ServiceAccounts(s, x)),
        4 => port_list().prop_map(Criterion::Ports),
        1 => port_list().prop_map(Criterion::NotPorts),
        1 => port_list().prop_map(Criterion::SrcPorts),
        1 => (prop::sample::select(vec![0i64, 8]), prop::sample::select(vec![None, Some(0i64), Some(1)])).prop_map(|(t, c)| Criterion::Icmp(t, c)),
        1 => prop::sample::select(vec![0i64, 8]).prop_map(Criterion::NotIcmp),
        1 => prop::sample::select(vec![4u8, 6]).prop_map(Criterion::IpVersion),
        1 => prop::sample::select(vec![Protocol::udp(), Protocol::Number(6)]).prop_map(Criterion::NotProtocol),
    ]
}

prop_compose! {
    fn rule()(
        action in prop::sample::select(vec![Action::Allow, Action::Allow, Action::Deny, Action::Pass, Action::Log]),
        protocol in prop_oneof![
            4 => Just(None),
            3 => Just(Some(Protocol::tcp())),
            1 => Just(Some(Protocol::udp())),
            1 => Just(Some(Protocol::Number(17))),
            1 => Just(Some(Protocol::Name("ICMP".into()))),
        ],
        criteria in prop::collection::vec(criterion(), 0..3),
    ) -> Rule {
        let mut r = Rule::new(action);
        let port_protocol = protocol.as_ref().is_some_and(|p| p.supports_ports());
        let is_icmp = protocol.as_ref().is_some_and(|p| p.is_icmp());
        for c in criteria {
            let side = |r: &mut Rule, src: bool, f: &mut dyn FnMut(&mut EntityRule)| {
                f(if src { &mut r.source } else { &mut r.destination })
            };
            match c {
                Criterion::Selector(s, x) => side(&mut r, s, &mut |e| e.selector = x.clone()),
                Criterion::NamespaceSelector(s, x) => side(&mut r, s, &mut |e| e.namespace_selector = x.clone()),
                Criterion::NotSelector(s, x) => side(&mut r, s, &mut |e| e.not_selector = x.clone()),
                Criterion::Nets(s, x) => side(&mut r, s, &mut |e| e.nets = x.clone()),
                Criterion::NotNets(s, x) => side(&mut r, s, &mut |e| e.not_nets = x.clone()),
                Criterion::ServiceAccounts(s, x) => side(&mut r, s, &mut |e| e.service_accounts = Some(x.clone())),
                Criterion::Ports(p) if port_protocol => r.destination.ports = p,
                Criterion::NotPorts(p) if port_protocol => r.destination.not_ports = p,
                Criterion::SrcPorts(p) if port_protocol => {
                    r.source.ports = p.into_iter().filter(|p| !matches!(p, Port::Named(_))).collect()
                }
                Criterion::Icmp(t, c) if is_icmp => r.icmp = Some(IcmpFields { icmp_type: Some(t), code: c }),
                Criterion::NotIcmp(t) if is_icmp => r.not_icmp = Some(IcmpFields { icmp_type: Some(t), code: None }),
                Criterion::IpVersion(v) => r.ip_version = Some(v),
                Criterion::NotProtocol(p) => r.not_protocol = Some(p),
                _ => {}
            }
        }
        r.protocol = protocol;
        r
    }
}

fn rules() -> impl Strategy<Value = Vec<Rule>> {
    prop::collection::vec(rule(), 0..3)
}

fn tier_name() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["", "default", "t1", "t2", "kube-admin", "undefined"])
}

fn order() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        Just(None),
        Just(Some(1.0)),
        Just(Some(10.0)),
        Just(Some(10.0))
    ]
}

fn policy_types() -> impl Strategy<Value = Vec<PolicyType>> {
    prop::sample::select(vec![
        vec![],
        vec![PolicyType::Ingress],
        vec![PolicyType::Egress],
        vec![PolicyType::Ingress, PolicyType::Egress],
    ])
}

prop_compose! {
    fn network_policy(i: usize)(
        ns in prop::sample::select(vec!["ns0", "ns1"]),
        name in prop::sample::select(vec!["a", "b", "c"]),
        tier in tier_name(),
        order in order(),
        selector in policy_selector(),
        types in policy_types(),
        ingress in rules(),
        egress in rules(),
        sa in prop_oneof![4 => Just(String::new()), 1 => Just("role == 'x'".to_string())],
    ) -> NetworkPolicy {
        let mut p = NetworkPolicy { metadata: ObjectMeta::namespaced(ns, format!("{name}{i}")), ..Default::default() };
        p.spec.tier = tier.into();
        p.spec.order = order;
        p.spec.selector = selector;
        p.spec.types = types;
        p.spec.ingress = ingress;
        p.spec.egress = egress;
        p.spec.service_account_selector = sa;
        p
    }
}

prop_compose! {
    fn global_policy(i: usize)(
        name in prop::sample::select(vec!["a", "b", "c"]),
        tier in tier_name(),
        order in order(),
        selector in policy_selector(),
        namespace_selector in prop_oneof![3 => Just(String::new()), 1 => Just("team == 'a'".to_string()), 1 => Just("all()".to_string())],
        types in policy_types(),
        ingress in rules(),
        egress in rules(),
        mode in prop::sample::select(vec![0u8, 0, 0, 1, 2]),
    ) -> GlobalNetworkPolicy {
        let mut p = GlobalNetworkPolicy { metadata: ObjectMeta::named(format!("{name}{i}")), ..Default::default() };
        p.spec.tier = tier.into();
        p.spec.order = order;
        p.spec.selector = selector;
        p.spec.namespace_selector = namespace_selector;
        p.spec.types = types;
        p.spec.ingress = ingress;
        p.spec.egress = egress;
        match mode {
            1 => { p.spec.do_not_track = true; p.spec.apply_on_forward = true; }
            2 => { p.spec.pre_dnat = true; p.spec.apply_on_forward = true; p.spec.egress.clear(); p.spec.types.retain(|t| *t == PolicyType::Ingress); }
            _ => {}
        }
        p
    }
}

prop_compose! {
    fn workload(i: usize)(
        ns in 0usize..2,
        labels in label_map(),
        v6 in prop::bool::weighted(0.3),
        http in any::<bool>(),
        dns in any::<bool>(),
        sa in prop::bool::weighted(0.5),
        extra_profile in prop_oneof![6 => Just(None), 1 => Just(Some("missing")), 1 => Just(Some("projectcalico-default-allow"))],
        no_profile in prop::bool::weighted(0.1),
    ) -> WorkloadEndpoint {
        let mut w = common::pod(&format!("ns{ns}"), &format!("p{i}"), &format!("10.0.{ns}.{}", i + 1), &labels);
        if v6 {
            w.spec.ip_networks.push(format!("fd00::{}/128", i + 1));
        }
        if http {
            w.spec.ports.push(WorkloadEndpointPort { name: "http".into(), protocol: Protocol::tcp(), port: 8080, host_port: 0, host_ip: String::new() });
        }
        if dns {
            w.spec.ports.push(WorkloadEndpointPort { name: "dns".into(), protocol: Protocol::udp(), port: 53, host_port: 0, host_ip: String::new() });
        }
        if sa {
            w.spec.service_account_name = "sa0".into();
            w.spec.profiles.push(format!("ksa.ns{ns}.sa0"));
        }
        if let Some(p) = extra_profile {
            w.spec.profiles.insert(0, p.into());
        }
        if no_profile {
            w.spec.profiles.clear();
        }
        w
    }
}

prop_compose! {
    fn host_endpoint(i: usize)(labels in label_map(), allow in any::<bool>()) -> HostEndpoint {
        let mut h = common::host(&format!("h{i}"), &format!("192.168.0.{}", i + 1), &labels);
        if allow {
            h.spec.profiles = vec!["projectcalico-default-allow".into()];
        }
        h
    }
}

prop_compose! {
    fn namespace_profile(ns: usize)(
        team in prop::sample::select(vec!["a", "b"]),
        ingress in prop_oneof![3 => Just(vec![Rule::new(Action::Allow)]), 1 => rules()],
        egress in prop_oneof![3 => Just(vec![Rule::new(Action::Allow)]), 1 => rules()],
    ) -> Profile {
        let mut p = common::namespace(&format!("ns{ns}"), &[("team", team)]);
        p.spec.ingress = ingress;
        p.spec.egress = egress;
        p
    }
}

fn sa_profile(ns: usize, role: &str) -> Profile {
    let mut p = Profile {
        metadata: ObjectMeta::named(format!("ksa.ns{ns}.sa0")),
        ..Default::default()
    };
    p.spec.labels_to_apply =
        common::labels(&[("pcsa.role", role), ("pcsa.projectcalico.org/name", "sa0")]);
    p
}

prop_compose! {
    fn tiers()(t1 in order(), a1 in any::<bool>(), t2 in prop_oneof![Just(None), Just(Some(5e6))], a2 in any::<bool>(), with_t2 in any::<bool>()) -> Vec<Tier> {
        let action = |pass: bool| if pass { Action::Pass } else { Action::Deny };
        let mut out = vec![common::tier("t1", t1.map(|o| o * 100.0), action(a1))];
        if with_t2 {
            out.push(common::tier("t2", t2, action(a2)));
        }
        out
    }
}

prop_compose! {
    fn network_sets()(
        g_labels in label_map(),
        g_nets in nets(),
        n_labels in label_map(),
        n_nets in nets(),
    ) -> (GlobalNetworkSet, NetworkSet) {
        (common::gns("g0", &g_nets.iter().map(String::as_str).collect::<Vec<_>>(), &g_labels),
         common::netset("ns1", "n0", &n_nets.iter().map(String::as_str).collect::<Vec<_>>(), &n_labels))
    }
}

fn cluster() -> impl Strategy<Value = Vec<Update>> {
    (
        (namespace_profile(0), namespace_profile(1)),
        prop::sample::select(vec!["x", "y"]),
        tiers(),
        prop::collection::vec(0usize..1, 0..4)
            .prop_flat_map(|v| (0..v.len()).map(network_policy).collect::<Vec<_>>()),
        prop::collection::vec(0usize..1, 0..3)
            .prop_flat_map(|v| (0..v.len()).map(global_policy).collect::<Vec<_>>()),
        (
            workload(0),
            workload(1),
            workload(2),
            workload(3),
            workload(4),
        ),
        (host_endpoint(0), host_endpoint(1)),
        network_sets(),
    )
        .prop_map(
            |(nsp, role, tiers, nps, gnps, (w0, w1, w2, w3, w4), (h0, h1), (g, n))| {
                let mut out: Vec<Update> = vec![
                    nsp.0.into(),
                    nsp.1.into(),
                    sa_profile(0, role).into(),
                    sa_profile(1, "z").into(),
                ];
                out.extend(tiers.into_iter().map(Update::from));
                out.extend(nps.into_iter().map(Update::from));
                out.extend(gnps.into_iter().map(Update::from));
                out.extend([w0, w1, w2, w3, w4].into_iter().map(Update::from));
                out.extend([h0, h1].into_iter().map(Update::from));
                out.push(g.into());
                out.push(n.into());
                out
            },
        )
}

// ----- random packets -----

#[derive(Debug, Clone)]
enum End {
    Endpoint(usize),
    Address(&'static str),
}

fn end() -> impl Strategy<Value = End> {
    prop_oneof![
        4 => (0usize..7).prop_map(End::Endpoint),
        1 => prop::sample::select(vec!["172.16.3.3", "192.168.0.77", "10.0.0.200", "fd00::99", "10.0.1.2"]).prop_map(End::Address),
    ]
}

#[derive(Debug, Clone)]
struct PacketSpec {
    src: End,
    dst: End,
    v6: bool,
    kind: u8,
    src_port: u16,
    dst_port: u16,
    icmp_type: u8,
}

prop_compose! {
    fn packet_spec()(
        src in end(), dst in end(), v6 in prop::bool::weighted(0.2),
        kind in 0u8..4,
        src_port in prop::sample::select(vec![1234u16, 53, 80]),
        dst_port in prop::sample::select(vec![22u16, 53, 80, 443, 8080, 8081]),
        icmp_type in prop::sample::select(vec![0u8, 8]),
    ) -> PacketSpec {
        PacketSpec { src, dst, v6, kind, src_port, dst_port, icmp_type }
    }
}

fn flow(res: &ResourceSet, spec: &PacketSpec) -> Option<Flow> {
    let keys = res.endpoint_keys();
    let resolve = |e: &End| -> Option<(Option<EndpointKey>, IpAddr)> {
        match e {
            End::Endpoint(i) => {
                let k = keys.get(*i)?.clone();
                let a = res.address_of(&k, spec.v6)?;
                Some((Some(k), a))
            }
            End::Address(a) => {
                let a: IpAddr = a.parse().unwrap();
                (a.is_ipv6() == spec.v6).then_some((None, a))
            }
        }
    };
    let (src_endpoint, s) = resolve(&spec.src)?;
    let (dst_endpoint, d) = resolve(&spec.dst)?;
    let packet = match spec.kind {
        0 | 1 => Packet::tcp(s, spec.src_port, d, spec.dst_port),
        2 => Packet::udp(s, spec.src_port, d, spec.dst_port),
        _ => Packet::icmp(s, d, spec.icmp_type, 0),
    };
    Some(Flow {
        src_endpoint,
        dst_endpoint,
        packet,
    })
}

fn build(updates: &[Update]) -> (PolicyEngine, ResourceSet) {
    let mut engine = PolicyEngine::new(EngineConfig::default());
    let mut res = ResourceSet::new();
    for u in updates {
        res.apply(u.clone()).expect("generated resources are valid");
        engine
            .apply(u.clone())
            .expect("generated resources are valid");
    }
    (engine, res)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn program_agrees_with_reference(
        updates in cluster(),
        packets in prop::collection::vec(packet_spec(), 48),
        seed in any::<u64>(),
    ) {
        // Apply in a shuffled order: the result must not depend on it.
        let mut shuffled = updates.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (engine, res) = build(&shuffled);
        let (in_order, _) = build(&updates);
        let dp = engine.snapshot();
        prop_assert_eq!(&dp, &in_order.snapshot(), "result depends on update order");
        let failsafe = Failsafe::default();
        for spec in &packets {
            let Some(flow) = flow(&res, spec) else { continue };
            let reference = explain::explain(&res, &failsafe, &flow);
            let program = eval::evaluate_flow(&dp, &flow);
            prop_assert_eq!(program, reference, "flow {:?}", flow);
        }
    }

    #[test]
    fn incremental_equals_rebuild(
        first in cluster(),
        second in cluster(),
        deletions in prop::collection::vec(0usize..40, 0..8),
        packets in prop::collection::vec(packet_spec(), 8),
    ) {
        let mut engine = PolicyEngine::new(EngineConfig::default());
        let mut res = ResourceSet::new();
        let mut deletes = Vec::new();
        for u in first.iter().chain(second.iter()) {
            res.apply(u.clone()).unwrap();
            engine.apply(u.clone()).unwrap();
        }
        for d in deletions {
            if let Some(u) = first.get(d) {
                deletes.push(delete_of(u));
            }
        }
        for d in deletes {
            res.apply(d.clone()).unwrap();
            engine.apply(d).unwrap();
        }
        let (rebuilt, _) = build(&res.updates());
        prop_assert_eq!(engine.snapshot(), rebuilt.snapshot());
        let dp = engine.snapshot();
        for spec in &packets {
            let Some(flow) = flow(&res, spec) else { continue };
            prop_assert_eq!(eval::evaluate_flow(&dp, &flow), explain::explain(&res, &Failsafe::default(), &flow));
        }
    }
}

fn delete_of(u: &Update) -> Update {
    match u {
        Update::Tier(t) => Update::DeleteTier {
            name: t.metadata.name.clone(),
        },
        Update::NetworkPolicy(p) => Update::DeleteNetworkPolicy {
            namespace: p.metadata.namespace.clone(),
            name: p.metadata.name.clone(),
        },
        Update::GlobalNetworkPolicy(p) => Update::DeleteGlobalNetworkPolicy {
            name: p.metadata.name.clone(),
        },
        Update::Profile(p) => Update::DeleteProfile {
            name: p.metadata.name.clone(),
        },
        Update::NetworkSet(n) => Update::DeleteNetworkSet {
            namespace: n.metadata.namespace.clone(),
            name: n.metadata.name.clone(),
        },
        Update::GlobalNetworkSet(n) => Update::DeleteGlobalNetworkSet {
            name: n.metadata.name.clone(),
        },
        Update::HostEndpoint(h) => Update::DeleteHostEndpoint {
            name: h.metadata.name.clone(),
        },
        Update::WorkloadEndpoint(w) => Update::DeleteWorkloadEndpoint {
            namespace: w.metadata.namespace.clone(),
            name: w.metadata.name.clone(),
        },
        other => other.clone(),
    }
}

/// Guards the generators: random clusters must reach every kind of
/// decision often enough for the agreement tests above to mean something.
#[test]
fn generators_reach_every_decision_kind() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let mut counts = std::collections::BTreeMap::<&str, usize>::new();
    let mut bump = |k| *counts.entry(k).or_default() += 1;
    for _ in 0..200 {
        let updates = cluster().new_tree(&mut runner).unwrap().current();
        let packets = prop::collection::vec(packet_spec(), 24)
            .new_tree(&mut runner)
            .unwrap()
            .current();
        let (engine, res) = build(&updates);
        let dp = engine.snapshot();
        for spec in &packets {
            let Some(flow) = flow(&res, spec) else {
                continue;
            };
            let e = eval::evaluate_flow(&dp, &flow);
            for side in [&e.egress, &e.ingress] {
                use calico_policy::eval::{Decision, Verdict};
                bump(match (&side.decided_by, side.verdict) {
                    (Decision::Rule { .. }, Verdict::Allow) => "rule allow",
                    (Decision::Rule { .. }, Verdict::Deny) => "rule deny",
                    (Decision::EndOfTier { .. }, _) => "end of tier",
                    (Decision::Profile { .. }, _) => "profile",
                    (Decision::MissingProfile { .. }, _) => "missing profile",
                    (Decision::NoProfileMatched, _) => "no profile matched",
                    (Decision::Failsafe(_), _) => "failsafe",
                    (Decision::NoEndpoint, _) => "no endpoint",
                });
                if !side.trail.is_empty() {
                    bump("trail");
                }
            }
        }
        for p in dp.policies.values() {
            for r in p.ingress.iter().chain(&p.egress) {
                if !r.dst.named_ports.is_empty() {
                    bump("named-port rule");
                }
                if !r.src.not_ip_sets.is_empty() || !r.dst.not_ip_sets.is_empty() {
                    bump("not-selector set");
                }
            }
        }
    }
    for kind in [
        "rule allow",
        "rule deny",
        "end of tier",
        "profile",
        "missing profile",
        "no profile matched",
        "failsafe",
        "no endpoint",
        "trail",
        "named-port rule",
        "not-selector set",
    ] {
        assert!(
            counts.get(kind).copied().unwrap_or(0) >= 5,
            "{kind} too rare: {counts:?}"
        );
    }
}
