//! Which policy decides: tier order, policy order and its tie-break, Pass,
//! tier default actions, profiles, host endpoints, scoping. Every flow is
//! judged by both evaluators, which must agree.

mod common;

use calico_model::k8s::{
    LabelSelector, NetworkPolicy as K8sNetworkPolicy, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use calico_model::numorstring::IntOrString;
use calico_model::{Action, ObjectMeta, PolicyType, Rule};
use calico_policy::eval::{Decision, Stage, Step, Verdict};
use calico_policy::program::RuleAction;
use calico_policy::{PolicyKey, Update};
use common::*;

fn world() -> World {
    let mut w = World::new();
    w.apply(namespace("ns1", &[("team", "a")]));
    w.apply(namespace("ns2", &[("team", "b")]));
    w.apply(pod("ns1", "server", "10.0.1.1", &[("app", "server")]));
    w.apply(pod("ns1", "client", "10.0.1.2", &[("app", "client")]));
    w.apply(pod("ns2", "server", "10.0.2.1", &[("app", "server")]));
    w
}

fn client_to_server(w: &World, port: u16) -> calico_policy::eval::Explanation {
    w.judge(&w.flow(
        Peer::Ep(pod_key("ns1", "client")),
        Peer::Ep(pod_key("ns1", "server")),
        tcp_to(port),
    ))
}

fn decided_by_policy(d: &Decision) -> Option<(&str, &str, RuleAction)> {
    match d {
        Decision::Rule {
            tier,
            policy,
            action,
            ..
        } => Some((tier.as_str(), policy.name.as_str(), *action)),
        _ => None,
    }
}

fn ingress_policy(
    ns: &str,
    name: &str,
    order: Option<f64>,
    tier: &str,
    rules: Vec<Rule>,
) -> calico_model::NetworkPolicy {
    let mut p = np(ns, name, "app == 'server'");
    p.spec.order = order;
    p.spec.tier = tier.into();
    p.spec.ingress = rules;
    p.spec.types = vec![PolicyType::Ingress];
    p
}

#[test]
fn no_policy_falls_to_the_namespace_profile() {
    let w = world();
    let e = client_to_server(&w, 80);
    assert_eq!(e.verdict, Verdict::Allow);
    assert_eq!(
        e.ingress.decided_by,
        Decision::Profile {
            profile: "kns.ns1".into(),
            index: 0,
            action: RuleAction::Allow
        }
    );
}

#[test]
fn tier_order_decides_before_policy_order() {
    // An early tier's deny beats the default tier's allow.
    let mut w = world();
    w.apply(tier("security", Some(100.0), Action::Deny));
    w.apply(ingress_policy(
        "ns1",
        "deny-all",
        Some(1000.0),
        "security",
        vec![deny()],
    ));
    w.apply(ingress_policy(
        "ns1",
        "allow-all",
        Some(1.0),
        "default",
        vec![allow()],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("security", "deny-all", RuleAction::Deny))
    );

    // Moving the tier after the default tier flips it.
    w.apply(tier("security", Some(2_000_000.0), Action::Deny));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("default", "allow-all", RuleAction::Allow))
    );

    // A tier without an order sorts after every ordered tier.
    w.apply(tier("security", None, Action::Deny));
    w.apply(tier("late", Some(5e9), Action::Deny));
    w.apply(ingress_policy(
        "ns1",
        "late-deny",
        None,
        "late",
        vec![deny()],
    ));
    w.apply(ingress_policy(
        "ns1",
        "allow-all",
        Some(1.0),
        "default",
        vec![rule(Action::Pass, |_| {})],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("late", "late-deny", RuleAction::Deny))
    );
}

#[test]
fn policy_order_and_tie_break() {
    let mut w = world();
    w.apply(ingress_policy(
        "ns1",
        "b-allow",
        Some(10.0),
        "",
        vec![allow()],
    ));
    w.apply(ingress_policy(
        "ns1",
        "a-deny",
        Some(20.0),
        "",
        vec![deny()],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("default", "b-allow", RuleAction::Allow))
    );

    // Equal order: name decides ("a-deny" < "b-allow").
    w.apply(ingress_policy(
        "ns1",
        "a-deny",
        Some(10.0),
        "",
        vec![deny()],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("default", "a-deny", RuleAction::Deny))
    );

    // No order sorts last.
    w.apply(ingress_policy("ns1", "a-deny", None, "", vec![deny()]));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("default", "b-allow", RuleAction::Allow))
    );

    // Same name and order: `name/namespace/kind`, so the global policy
    // ("x//GlobalNetworkPolicy") sorts before the namespaced one.
    let mut w = world();
    w.apply(ingress_policy("ns1", "x", Some(5.0), "", vec![allow()]));
    let mut g = gnp("x", "app == 'server'");
    g.spec.order = Some(5.0);
    g.spec.ingress = vec![deny()];
    w.apply(g);
    let e = client_to_server(&w, 80);
    let Decision::Rule { policy, .. } = &e.ingress.decided_by else {
        panic!("{:?}", e.ingress)
    };
    assert_eq!(*policy, PolicyKey::global("x"));
}

#[test]
fn pass_skips_to_the_next_tier() {
    let mut w = world();
    w.apply(tier("security", Some(100.0), Action::Deny));
    w.apply(ingress_policy(
        "ns1",
        "pass-web",
        Some(1.0),
        "security",
        vec![rule(Action::Pass, |r| {
            r.protocol = tcp();
            r.destination.ports = ports(&["80"]);
        })],
    ));
    w.apply(ingress_policy(
        "ns1",
        "deny-later",
        Some(2.0),
        "security",
        vec![deny()],
    ));
    w.apply(ingress_policy("ns1", "allow", None, "", vec![allow()]));
    let passed = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&passed.ingress.decided_by),
        Some(("default", "allow", RuleAction::Allow))
    );
    assert!(
        matches!(&passed.ingress.trail[..], [Step::Pass { tier: Some(t), .. }] if t == "security")
    );
    let denied = client_to_server(&w, 443);
    assert_eq!(
        decided_by_policy(&denied.ingress.decided_by),
        Some(("security", "deny-later", RuleAction::Deny))
    );
}

#[test]
fn tier_default_actions() {
    let mut w = world();
    // A policy whose rules do not match: the tier's default applies.
    let only_443 = || {
        vec![rule(Action::Allow, |r| {
            r.protocol = tcp();
            r.destination.ports = ports(&["443"]);
        })]
    };
    w.apply(tier("gate", Some(10.0), Action::Pass));
    w.apply(ingress_policy("ns1", "gate-443", None, "gate", only_443()));
    let e = client_to_server(&w, 80);
    // Passed the gate tier, no other tier applies: the profile decides.
    assert!(
        matches!(e.ingress.decided_by, Decision::Profile { .. }),
        "{:?}",
        e.ingress
    );
    assert_eq!(
        e.ingress.trail,
        vec![Step::TierPassed {
            stage: Stage::Normal,
            tier: "gate".into()
        }]
    );

    w.apply(tier("gate", Some(10.0), Action::Deny));
    let e = client_to_server(&w, 80);
    assert_eq!(
        e.ingress.decided_by,
        Decision::EndOfTier {
            tier: "gate".into()
        }
    );

    // kube-admin is built in with default Pass, kube-baseline too.
    let mut w = world();
    w.apply(ingress_policy(
        "ns1",
        "admin",
        None,
        "kube-admin",
        only_443(),
    ));
    w.apply(ingress_policy(
        "ns1",
        "baseline",
        None,
        "kube-baseline",
        vec![deny()],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        decided_by_policy(&e.ingress.decided_by),
        Some(("kube-baseline", "baseline", RuleAction::Deny))
    );
    assert_eq!(e.ingress.trail.len(), 1);

    // A tier nobody defined sorts last and denies by default.
    let mut w = world();
    w.apply(ingress_policy(
        "ns1",
        "orphan",
        None,
        "undefined-tier",
        only_443(),
    ));
    w.apply(ingress_policy(
        "ns1",
        "pass",
        None,
        "kube-baseline",
        vec![rule(Action::Pass, |_| {})],
    ));
    let e = client_to_server(&w, 80);
    assert_eq!(
        e.ingress.decided_by,
        Decision::EndOfTier {
            tier: "undefined-tier".into()
        }
    );
}

#[test]
fn types_limit_the_directions_a_policy_governs() {
    let mut w = world();
    // Only egress rules: types default to [Egress]; ingress is untouched.
    let mut p = np("ns1", "egress-only", "app == 'server'");
    p.spec.egress = vec![deny()];
    w.apply(p);
    let e = client_to_server(&w, 80);
    assert!(matches!(e.ingress.decided_by, Decision::Profile { .. }));
    // The client's egress policy: allow only port 80 to the server.
    let mut p = np("ns1", "client-egress", "app == 'client'");
    p.spec.egress = vec![rule(Action::Allow, |r| {
        r.protocol = tcp();
        r.destination.selector = "app == 'server'".into();
        r.destination.ports = ports(&["80"]);
    })];
    w.apply(p);
    assert_eq!(client_to_server(&w, 80).egress.verdict, Verdict::Allow);
    let e = client_to_server(&w, 81);
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(
        e.egress.decided_by,
        Decision::EndOfTier {
            tier: "default".into()
        }
    );
    // Egress to the same-labelled server in another namespace: the rule's
    // selector is scoped to ns1.
    let e = w.judge(&w.flow(
        Peer::Ep(pod_key("ns1", "client")),
        Peer::Ep(pod_key("ns2", "server")),
        tcp_to(80),
    ));
    assert_eq!(e.egress.verdict, Verdict::Deny);
}

#[test]
fn profiles_missing_and_absent() {
    let mut w = world();
    let mut lonely = pod("ns1", "lonely", "10.0.1.9", &[("app", "x")]);
    lonely.spec.profiles = vec!["does-not-exist".into(), "kns.ns1".into()];
    w.apply(lonely.clone());
    let to_lonely = |w: &World| {
        w.judge(&w.flow(
            Peer::Ep(pod_key("ns1", "client")),
            Peer::Ep(pod_key("ns1", "lonely")),
            tcp_to(80),
        ))
    };
    let e = to_lonely(&w);
    assert_eq!(
        e.ingress.decided_by,
        Decision::MissingProfile {
            profile: "does-not-exist".into()
        }
    );
    lonely.spec.profiles = vec![];
    w.apply(lonely.clone());
    assert_eq!(to_lonely(&w).ingress.decided_by, Decision::NoProfileMatched);
    lonely.spec.profiles = vec!["projectcalico-default-allow".into()];
    w.apply(lonely);
    assert_eq!(to_lonely(&w).verdict, Verdict::Allow);
}

#[test]
fn namespaced_policy_only_selects_its_namespace() {
    let mut w = world();
    w.apply(ingress_policy("ns1", "deny", None, "", vec![deny()]));
    let e = w.judge(&w.flow(
        Peer::Ep(pod_key("ns1", "client")),
        Peer::Ep(pod_key("ns2", "server")),
        tcp_to(80),
    ));
    assert!(matches!(e.ingress.decided_by, Decision::Profile { .. }));
    assert_eq!(
        w.engine
            .endpoints_selected_by(&PolicyKey::network_policy("ns1", "deny")),
        [pod_key("ns1", "server")].into_iter().collect()
    );
}

#[test]
fn global_policy_namespace_and_service_account_selectors() {
    let mut w = world();
    let mut g = gnp("team-a-servers", "app == 'server'");
    g.spec.namespace_selector = "team == 'a'".into();
    g.spec.ingress = vec![deny()];
    w.apply(g);
    assert_eq!(
        w.engine
            .endpoints_selected_by(&PolicyKey::global("team-a-servers")),
        [pod_key("ns1", "server")].into_iter().collect()
    );
    let mut g = gnp("sa", "");
    g.spec.service_account_selector = "all()".into();
    g.spec.ingress = vec![deny()];
    w.apply(g);
    assert!(
        w.engine
            .endpoints_selected_by(&PolicyKey::global("sa"))
            .is_empty()
    );
    let mut with_sa = pod("ns2", "sa-pod", "10.0.2.5", &[]);
    with_sa.spec.service_account_name = "builder".into();
    w.apply(with_sa);
    assert_eq!(
        w.engine.endpoints_selected_by(&PolicyKey::global("sa")),
        [pod_key("ns2", "sa-pod")].into_iter().collect()
    );
}

#[test]
fn kubernetes_network_policy() {
    let mut w = world();
    let knp = K8sNetworkPolicy {
        metadata: ObjectMeta::namespaced("ns1", "allow-client-80"),
        spec: NetworkPolicySpec {
            pod_selector: LabelSelector {
                match_labels: labels(&[("app", "server")]),
                match_expressions: vec![],
            },
            ingress: vec![NetworkPolicyIngressRule {
                ports: vec![NetworkPolicyPort {
                    protocol: None,
                    port: Some(IntOrString::Int(80)),
                    end_port: None,
                }],
                from: vec![NetworkPolicyPeer {
                    pod_selector: Some(LabelSelector {
                        match_labels: labels(&[("app", "client")]),
                        match_expressions: vec![],
                    }),
                    namespace_selector: None,
                    ip_block: None,
                }],
            }],
            egress: vec![],
            policy_types: vec!["Ingress".into()],
        },
    };
    w.apply(Update::from(knp));
    let ok = client_to_server(&w, 80);
    assert_eq!(ok.verdict, Verdict::Allow);
    let Decision::Rule { policy, tier, .. } = &ok.ingress.decided_by else {
        panic!("{:?}", ok.ingress)
    };
    assert_eq!(*policy, PolicyKey::kubernetes("ns1", "allow-client-80"));
    assert_eq!(tier, "default");
    assert_eq!(
        client_to_server(&w, 81).ingress.decided_by,
        Decision::EndOfTier {
            tier: "default".into()
        }
    );
    w.apply(Update::DeleteKubernetesNetworkPolicy {
        namespace: "ns1".into(),
        name: "allow-client-80".into(),
    });
    assert!(matches!(
        client_to_server(&w, 81).ingress.decided_by,
        Decision::Profile { .. }
    ));
}

#[test]
fn host_endpoints_failsafe_untracked_and_pre_dnat() {
    let mut w = world();
    w.apply(host("node1-eth0", "192.168.0.10", &[("role", "node")]));
    let to_host = |w: &World, make: fn(u16) -> _, port: u16| {
        w.judge(&w.flow(
            Peer::Ip(ip("192.168.0.99")),
            Peer::Ep(calico_policy::EndpointKey::host("node1-eth0")),
            make(port),
        ))
    };
    fn t(
        port: u16,
    ) -> impl FnOnce(std::net::IpAddr, std::net::IpAddr) -> calico_policy::eval::Packet {
        tcp_to(port)
    }
    // No policy, no profile: denied, except failsafe ports.
    assert_eq!(
        to_host(&w, t, 80).ingress.decided_by,
        Decision::NoProfileMatched
    );
    let ssh = to_host(&w, t, 22);
    assert_eq!(ssh.verdict, Verdict::Allow);
    assert!(matches!(ssh.ingress.decided_by, Decision::Failsafe(p) if p.port == 22));

    // doNotTrack deny wins over normal allow; preDNAT allow decides before
    // normal policy.
    let mut allow_all = gnp("normal-allow", "role == 'node'");
    allow_all.spec.ingress = vec![allow()];
    allow_all.spec.egress = vec![allow()];
    w.apply(allow_all);
    assert_eq!(to_host(&w, t, 80).verdict, Verdict::Allow);
    let mut untracked = gnp("untracked-deny-8080", "role == 'node'");
    untracked.spec.do_not_track = true;
    untracked.spec.apply_on_forward = true;
    untracked.spec.order = Some(1.0);
    untracked.spec.ingress = vec![rule(Action::Deny, |r| {
        r.protocol = tcp();
        r.destination.ports = ports(&["8080"]);
    })];
    w.apply(untracked);
    let e = to_host(&w, t, 8080);
    assert!(
        matches!(
            e.ingress.decided_by,
            Decision::Rule {
                stage: Stage::Untracked,
                ..
            }
        ),
        "{:?}",
        e.ingress
    );
    let e = to_host(&w, t, 80);
    assert!(matches!(
        e.ingress.decided_by,
        Decision::Rule {
            stage: Stage::Normal,
            ..
        }
    ));
    assert!(e.ingress.trail.contains(&Step::TierPassed {
        stage: Stage::Untracked,
        tier: "default".into()
    }));
    let mut pre = gnp("pre-dnat-9090", "role == 'node'");
    pre.spec.pre_dnat = true;
    pre.spec.apply_on_forward = true;
    pre.spec.ingress = vec![rule(Action::Deny, |r| {
        r.protocol = tcp();
        r.destination.ports = ports(&["9090"]);
    })];
    w.apply(pre);
    let e = to_host(&w, t, 9090);
    assert!(matches!(
        e.ingress.decided_by,
        Decision::Rule {
            stage: Stage::PreDnat,
            ..
        }
    ));

    // doNotTrack policy never applies to workloads.
    let mut g = gnp("untracked-on-pods", "app == 'server'");
    g.spec.do_not_track = true;
    g.spec.apply_on_forward = true;
    g.spec.ingress = vec![deny()];
    w.apply(g);
    assert_eq!(client_to_server(&w, 80).verdict, Verdict::Allow);
}

#[test]
fn flows_from_peers() {
    use calico_policy::explain::{FlowError, Peer as P};
    let mut w = world();
    let mut dual = pod("ns1", "dual", "10.0.1.7", &[]);
    dual.spec.ip_networks.push("fd00::7/128".into());
    w.apply(dual);
    let client = pod_key("ns1", "client");
    let flow = w
        .resources
        .flow(
            &P::Address(ip("10.0.1.2")),
            &P::Endpoint(pod_key("ns1", "server")),
            tcp_to(80),
        )
        .unwrap();
    assert_eq!(
        flow.src_endpoint,
        Some(client.clone()),
        "a bare address is attributed to its endpoint"
    );
    assert_eq!(flow.packet.dst, ip("10.0.1.1"));
    let v6 = w
        .resources
        .flow(
            &P::Address(ip("fd00::99")),
            &P::Endpoint(pod_key("ns1", "dual")),
            tcp_to(80),
        )
        .unwrap();
    assert_eq!(v6.packet.dst, ip("fd00::7"));
    assert_eq!(v6.src_endpoint, None);
    assert_eq!(
        w.resources
            .flow(
                &P::Address(ip("fd00::99")),
                &P::Endpoint(client),
                tcp_to(80)
            )
            .unwrap_err(),
        FlowError::NoAddress {
            endpoint: pod_key("ns1", "client"),
            family: "IPv6"
        }
    );
    let missing = pod_key("ns1", "nope");
    assert_eq!(
        w.resources
            .flow(
                &P::Endpoint(missing.clone()),
                &P::Address(ip("10.0.0.1")),
                tcp_to(80)
            )
            .unwrap_err(),
        FlowError::UnknownEndpoint(missing)
    );
}
