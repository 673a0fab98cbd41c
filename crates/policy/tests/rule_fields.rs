//! One table row per rule field: a policy on a server pod with a single
//! ingress rule, and flows that must (or must not) match it. Every flow is
//! judged by the compiled program and by the reference evaluator, which
//! must agree.

mod common;

use calico_model::{Action, Protocol, Rule, ServiceAccountMatch};
use calico_policy::eval::{Decision, Verdict};
use calico_policy::program::RuleAction;
use common::*;

fn world() -> World {
    let mut w = World::new();
    w.apply(namespace("ns1", &[("team", "a")]));
    w.apply(namespace("ns2", &[("team", "b")]));
    let mut server = pod("ns1", "server", "10.0.1.1", &[("app", "server")]);
    server = with_port(server, "http", "TCP", 8080);
    server = with_port(server, "dns", "UDP", 5353);
    w.apply(server);
    let mut client = pod("ns1", "client", "10.0.1.2", &[("app", "client")]);
    client.spec.service_account_name = "sa-client".into();
    client.spec.profiles.push("ksa.ns1.sa-client".into());
    w.apply(client);
    w.apply(pod("ns1", "other", "10.0.1.3", &[("app", "other")]));
    w.apply(pod("ns2", "client", "10.0.2.1", &[("app", "client")]));
    let mut sa = calico_model::Profile {
        metadata: calico_model::ObjectMeta::named("ksa.ns1.sa-client"),
        ..Default::default()
    };
    sa.spec.labels_to_apply = labels(&[
        ("pcsa.role", "admin"),
        ("pcsa.projectcalico.org/name", "sa-client"),
    ]);
    w.apply(sa);
    w.apply(gns("external", &["192.168.5.0/24"], &[("role", "ext")]));
    w
}

enum From {
    Client,
    Other,
    OtherNs,
    Ip(&'static str),
}

type Make = fn(std::net::IpAddr, std::net::IpAddr) -> calico_policy::eval::Packet;

struct Case {
    name: &'static str,
    rule: Rule,
    global: bool,
    flows: Vec<(From, Make, Verdict)>,
}

fn tcp80(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 80)
}
fn tcp81(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 81)
}
fn tcp22(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 22)
}
fn tcp8050(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 8050)
}
fn tcp8080(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 8080)
}
fn tcp8081(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 40000, d, 8081)
}
fn tcp_sport1234(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::tcp(s, 1234, d, 80)
}
fn udp80(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::udp(s, 40000, d, 80)
}
fn udp8080(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::udp(s, 40000, d, 8080)
}
fn udp5353(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::udp(s, 40000, d, 5353)
}
fn ping8(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::icmp(s, d, 8, 0)
}
fn ping8code1(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::icmp(s, d, 8, 1)
}
fn pong(s: std::net::IpAddr, d: std::net::IpAddr) -> calico_policy::eval::Packet {
    calico_policy::eval::Packet::icmp(s, d, 0, 0)
}

use Verdict::{Allow as A, Deny as D};

fn cases() -> Vec<Case> {
    let case = |name, rule, flows| Case {
        name,
        rule,
        global: false,
        flows,
    };
    vec![
        case(
            "protocol by name",
            rule(Action::Allow, |r| r.protocol = tcp()),
            vec![(From::Client, tcp80, A), (From::Client, udp80, D)],
        ),
        case(
            "protocol by number",
            rule(Action::Allow, |r| r.protocol = Some(Protocol::Number(17))),
            vec![(From::Client, udp80, A), (From::Client, tcp80, D)],
        ),
        case(
            "notProtocol",
            rule(Action::Allow, |r| r.not_protocol = Some(Protocol::udp())),
            vec![
                (From::Client, tcp80, A),
                (From::Client, udp80, D),
                (From::Client, ping8, A),
            ],
        ),
        case(
            "single port",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.ports = ports(&["80"]);
            }),
            vec![(From::Client, tcp80, A), (From::Client, tcp81, D)],
        ),
        case(
            "port range",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.ports = ports(&["8000:8060"]);
            }),
            vec![(From::Client, tcp8050, A), (From::Client, tcp8080, D)],
        ),
        case(
            "notPorts",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.not_ports = ports(&["22"]);
            }),
            vec![(From::Client, tcp80, A), (From::Client, tcp22, D)],
        ),
        case(
            "source ports",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.source.ports = ports(&["1234"]);
            }),
            vec![(From::Client, tcp_sport1234, A), (From::Client, tcp80, D)],
        ),
        case(
            "icmp type",
            rule(Action::Allow, |r| {
                r.protocol = Some(Protocol::Name("ICMP".into()));
                r.icmp = icmp(8, None);
            }),
            vec![
                (From::Client, ping8, A),
                (From::Client, ping8code1, A),
                (From::Client, pong, D),
            ],
        ),
        case(
            "icmp type and code",
            rule(Action::Allow, |r| {
                r.protocol = Some(Protocol::Name("ICMP".into()));
                r.icmp = icmp(8, Some(1));
            }),
            vec![(From::Client, ping8code1, A), (From::Client, ping8, D)],
        ),
        case(
            "notICMP",
            rule(Action::Allow, |r| {
                r.protocol = Some(Protocol::Name("ICMP".into()));
                r.not_icmp = icmp(8, None);
            }),
            vec![(From::Client, pong, A), (From::Client, ping8, D)],
        ),
        case(
            "source nets",
            rule(Action::Allow, |r| {
                r.source.nets = vec!["10.0.1.0/24".into()]
            }),
            vec![
                (From::Client, tcp80, A),
                (From::OtherNs, tcp80, D),
                (From::Ip("192.168.1.1"), tcp80, D),
            ],
        ),
        case(
            "source notNets",
            rule(Action::Allow, |r| {
                r.source.not_nets = vec!["10.0.1.0/24".into()]
            }),
            vec![
                (From::Client, tcp80, D),
                (From::OtherNs, tcp80, A),
                (From::Ip("192.168.1.1"), tcp80, A),
            ],
        ),
        case(
            "destination nets",
            rule(Action::Allow, |r| {
                r.destination.nets = vec!["10.0.1.1/32".into()]
            }),
            vec![(From::Client, tcp80, A)],
        ),
        case(
            "destination notNets",
            rule(Action::Allow, |r| {
                r.destination.not_nets = vec!["10.0.1.1/32".into()]
            }),
            vec![(From::Client, tcp80, D)],
        ),
        case(
            "selector is limited to the policy's namespace",
            rule(Action::Allow, |r| {
                r.source.selector = "app == 'client'".into()
            }),
            vec![
                (From::Client, tcp80, A),
                (From::OtherNs, tcp80, D),
                (From::Other, tcp80, D),
                (From::Ip("10.0.9.9"), tcp80, D),
            ],
        ),
        case(
            "namespaceSelector",
            rule(Action::Allow, |r| {
                r.source.namespace_selector = "team == 'b'".into()
            }),
            vec![(From::OtherNs, tcp80, A), (From::Client, tcp80, D)],
        ),
        case(
            "namespaceSelector by name label",
            rule(Action::Allow, |r| {
                r.source.namespace_selector = "projectcalico.org/name == 'ns2'".into()
            }),
            vec![(From::OtherNs, tcp80, A), (From::Client, tcp80, D)],
        ),
        case(
            "namespaceSelector all() with selector",
            rule(Action::Allow, |r| {
                r.source.namespace_selector = "all()".into();
                r.source.selector = "app == 'client'".into();
            }),
            vec![
                (From::Client, tcp80, A),
                (From::OtherNs, tcp80, A),
                (From::Other, tcp80, D),
            ],
        ),
        case(
            "namespaceSelector global() reaches global network sets",
            rule(Action::Allow, |r| {
                r.source.namespace_selector = "global()".into();
                r.source.selector = "role == 'ext'".into();
            }),
            vec![
                (From::Ip("192.168.5.7"), tcp80, A),
                (From::Client, tcp80, D),
            ],
        ),
        case(
            "notSelector (scoped to the namespace)",
            rule(Action::Allow, |r| {
                r.source.not_selector = "app == 'client'".into()
            }),
            vec![
                (From::Client, tcp80, D),
                (From::Other, tcp80, A),
                (From::OtherNs, tcp80, D),
                (From::Ip("192.168.1.1"), tcp80, D),
            ],
        ),
        case(
            "serviceAccounts by name",
            rule(Action::Allow, |r| {
                r.source.service_accounts = Some(ServiceAccountMatch {
                    names: vec!["sa-client".into()],
                    selector: String::new(),
                })
            }),
            vec![(From::Client, tcp80, A), (From::Other, tcp80, D)],
        ),
        case(
            "serviceAccounts by selector",
            rule(Action::Allow, |r| {
                r.source.service_accounts = Some(ServiceAccountMatch {
                    names: vec![],
                    selector: "role == 'admin'".into(),
                })
            }),
            vec![(From::Client, tcp80, A), (From::Other, tcp80, D)],
        ),
        case(
            "named port resolved on the destination",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.ports = ports(&["http"]);
            }),
            vec![
                (From::Client, tcp8080, A),
                (From::Client, tcp80, D),
                (From::Client, tcp8081, D),
            ],
        ),
        case(
            "named port with UDP",
            rule(Action::Allow, |r| {
                r.protocol = Some(Protocol::udp());
                r.destination.ports = ports(&["dns", "http"]);
            }),
            vec![(From::Client, udp5353, A), (From::Client, udp8080, D)],
        ),
        case(
            "named port and number together",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.ports = ports(&["http", "80"]);
            }),
            vec![
                (From::Client, tcp8080, A),
                (From::Client, tcp80, A),
                (From::Client, tcp81, D),
            ],
        ),
        case(
            "notPorts with a named port",
            rule(Action::Allow, |r| {
                r.protocol = tcp();
                r.destination.not_ports = ports(&["http"]);
            }),
            vec![(From::Client, tcp8080, D), (From::Client, tcp80, A)],
        ),
        case(
            "ipVersion 6 does not match IPv4",
            rule(Action::Allow, |r| r.ip_version = Some(6)),
            vec![(From::Client, tcp80, D)],
        ),
        case(
            "ipVersion 4",
            rule(Action::Allow, |r| r.ip_version = Some(4)),
            vec![(From::Client, tcp80, A)],
        ),
        case(
            "IPv6 nets leave the rule out of IPv4",
            rule(Action::Allow, |r| {
                r.source.not_nets = vec!["fd00::/8".into()]
            }),
            vec![(From::Client, tcp80, D)],
        ),
        Case {
            name: "global rule selector matches network sets",
            rule: rule(Action::Allow, |r| {
                r.source.selector = "role == 'ext'".into()
            }),
            global: true,
            flows: vec![
                (From::Ip("192.168.5.9"), tcp80, A),
                (From::Ip("192.168.6.9"), tcp80, D),
            ],
        },
        Case {
            name: "global notSelector alone excludes matching addresses anywhere",
            rule: rule(Action::Allow, |r| {
                r.source.not_selector = "app == 'client'".into()
            }),
            global: true,
            flows: vec![
                (From::Client, tcp80, D),
                (From::OtherNs, tcp80, D),
                (From::Other, tcp80, A),
                (From::Ip("192.168.1.1"), tcp80, A),
            ],
        },
        Case {
            name: "global rule selector is not namespaced",
            rule: rule(Action::Allow, |r| {
                r.source.selector = "app == 'client'".into()
            }),
            global: true,
            flows: vec![
                (From::Client, tcp80, A),
                (From::OtherNs, tcp80, A),
                (From::Other, tcp80, D),
            ],
        },
    ]
}

#[test]
fn each_rule_field() {
    for case in cases() {
        let mut w = world();
        if case.global {
            let mut p = gnp("under-test", "app == 'server'");
            p.spec.ingress = vec![case.rule.clone()];
            p.spec.types = vec![calico_model::PolicyType::Ingress];
            w.apply(p);
        } else {
            let mut p = np("ns1", "under-test", "app == 'server'");
            p.spec.ingress = vec![case.rule.clone()];
            w.apply(p);
        }
        for (i, (from, make, want)) in case.flows.into_iter().enumerate() {
            let src = match from {
                From::Client => Peer::Ep(pod_key("ns1", "client")),
                From::Other => Peer::Ep(pod_key("ns1", "other")),
                From::OtherNs => Peer::Ep(pod_key("ns2", "client")),
                From::Ip(a) => Peer::Ip(ip(a)),
            };
            let flow = w.flow(src, Peer::Ep(pod_key("ns1", "server")), make);
            let got = w.judge(&flow);
            assert_eq!(
                got.verdict, want,
                "{}: flow {i} {:?}: {:?}",
                case.name, flow.packet, got.ingress
            );
            // Ingress is what the rule decides; egress falls to the
            // namespace profile, which allows.
            let expect_decision = match want {
                A => matches!(
                    got.ingress.decided_by,
                    Decision::Rule {
                        action: RuleAction::Allow,
                        ..
                    }
                ),
                D => {
                    matches!(got.ingress.decided_by, Decision::EndOfTier { ref tier } if tier == "default")
                }
            };
            assert!(
                expect_decision,
                "{}: flow {i}: decided by {:?}",
                case.name, got.ingress.decided_by
            );
        }
    }
}

#[test]
fn log_then_deny_then_allow() {
    let mut w = world();
    let mut p = np("ns1", "p", "app == 'server'");
    p.spec.ingress = vec![
        Rule::new(Action::Log),
        rule(Action::Deny, |r| {
            r.protocol = tcp();
            r.destination.ports = ports(&["22"]);
        }),
        allow(),
    ];
    w.apply(p);
    let server = Peer::Ep(pod_key("ns1", "server"));
    let blocked = w.judge(&w.flow(Peer::Ep(pod_key("ns1", "client")), server, tcp_to(22)));
    assert_eq!(blocked.verdict, D);
    assert!(matches!(
        blocked.ingress.decided_by,
        Decision::Rule { index: 1, .. }
    ));
    assert_eq!(
        blocked.ingress.trail.len(),
        1,
        "the Log rule is in the trail"
    );
    let ok = w.judge(&w.flow(
        Peer::Ep(pod_key("ns1", "client")),
        Peer::Ep(pod_key("ns1", "server")),
        tcp_to(80),
    ));
    assert!(matches!(
        ok.ingress.decided_by,
        Decision::Rule { index: 2, .. }
    ));
}
