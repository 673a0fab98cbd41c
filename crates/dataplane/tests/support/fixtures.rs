//! Fixed clusters for the golden files and the kernel round trip: the
//! resources, fed through the policy engine, and the generator's settings.

use calico_dataplane::{DataplaneConfig, EndpointToHostAction};
use calico_model::{
    Action, EndpointPort, EntityRule, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint,
    IcmpFields, NetworkPolicy, ObjectMeta, PolicyType, Port, Profile, Protocol, Rule, Tier,
    WorkloadEndpoint, WorkloadEndpointPort,
};
use calico_policy::program::{Dataplane, Failsafe, ProtoPort};
use calico_policy::{EngineConfig, PolicyEngine, Update};

pub const NODE: &str = "node1";

/// A named case: what goes in, and the settings.
pub struct Fixture {
    pub name: &'static str,
    pub updates: Vec<Update>,
    pub engine: EngineConfig,
    pub config: DataplaneConfig,
}

impl Fixture {
    pub fn dataplane(&self) -> Dataplane {
        let mut engine = PolicyEngine::new(self.engine.clone());
        let (_, errors) = engine.apply_all(self.updates.clone());
        assert!(errors.is_empty(), "{}: {errors:?}", self.name);
        engine.snapshot()
    }
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn pod(
    ns: &str,
    name: &str,
    iface: &str,
    ips: &[&str],
    l: &[(&str, &str)],
) -> WorkloadEndpoint {
    let mut w = WorkloadEndpoint {
        metadata: ObjectMeta::named(format!("{NODE}-k8s-{name}-eth0")),
        ..Default::default()
    };
    w.metadata.namespace = ns.into();
    w.metadata.labels = labels(l);
    w.spec.node = NODE.into();
    w.spec.orchestrator = "k8s".into();
    w.spec.pod = name.into();
    w.spec.endpoint = "eth0".into();
    w.spec.interface_name = iface.into();
    w.spec.ip_networks = ips.iter().map(|s| s.to_string()).collect();
    w.spec.profiles = vec![format!("kns.{ns}")];
    w
}

pub fn namespace_profile(ns: &str, team: &str) -> Profile {
    let mut p = Profile {
        metadata: ObjectMeta::named(format!("kns.{ns}")),
        ..Default::default()
    };
    p.spec.labels_to_apply = labels(&[("pcns.projectcalico.org/name", ns), ("pcns.team", team)]);
    p.spec.ingress = vec![Rule::new(Action::Allow)];
    p.spec.egress = vec![Rule::new(Action::Allow)];
    p
}

fn rule(action: Action, f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule::new(action);
    f(&mut r);
    r
}

fn entity(f: impl FnOnce(&mut EntityRule)) -> EntityRule {
    let mut e = EntityRule::default();
    f(&mut e);
    e
}

fn tier(name: &str, order: f64, default: Action) -> Tier {
    let mut t = Tier {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    t.spec.order = Some(order);
    t.spec.default_action = Some(default);
    t
}

fn engine() -> EngineConfig {
    EngineConfig {
        local_node: Some(NODE.into()),
        failsafe: Failsafe::default(),
    }
}

/// No endpoints: the static structure only.
pub fn empty() -> Fixture {
    Fixture {
        name: "empty",
        updates: Vec::new(),
        engine: engine(),
        config: DataplaneConfig::default(),
    }
}

/// Workloads with tiers, every action, selectors, named ports, nets, port
/// ranges, source ports, ICMP, a network set, a missing profile, dual stack.
pub fn workloads() -> Fixture {
    let mut updates: Vec<Update> = vec![
        namespace_profile("prod", "red").into(),
        namespace_profile("dev", "blue").into(),
        tier("security", 100.0, Action::Pass).into(),
    ];
    let mut web = pod(
        "prod",
        "web",
        "cali0000000web1",
        &["10.65.0.1/32", "fd00:65::1/128"],
        &[("app", "web"), ("role", "front")],
    );
    web.spec.ports = vec![WorkloadEndpointPort {
        name: "http".into(),
        protocol: Protocol::tcp(),
        port: 8080,
        host_port: 0,
        host_ip: String::new(),
    }];
    updates.push(web.into());
    updates.push(
        pod(
            "prod",
            "db",
            "cali00000000db1",
            &["10.65.0.2/32"],
            &[("app", "db")],
        )
        .into(),
    );
    let mut dev = pod(
        "dev",
        "tool",
        "cali000000tool1",
        &["10.65.0.3/32"],
        &[("app", "tool")],
    );
    dev.spec.profiles.push("kns.missing".into());
    updates.push(dev.into());
    // A pod on another node: only its address matters here.
    let mut remote = pod(
        "prod",
        "web2",
        "cali0000000web2",
        &["10.65.1.1/32"],
        &[("app", "web")],
    );
    remote.spec.node = "node2".into();
    remote.metadata.name = "node2-k8s-web2-eth0".into();
    updates.push(remote.into());

    let mut external = GlobalNetworkSet {
        metadata: ObjectMeta::named("partners"),
        ..Default::default()
    };
    external.metadata.labels = labels(&[("kind", "partner")]);
    external.spec.nets = vec!["203.0.113.0/24".into(), "2001:db8::/32".into()];
    updates.push(external.into());

    // Security tier: deny a blocklist, pass the rest to the next tier.
    let mut blocklist = GlobalNetworkPolicy {
        metadata: ObjectMeta::named("security.blocklist"),
        ..Default::default()
    };
    blocklist.spec.tier = "security".into();
    blocklist.spec.order = Some(10.0);
    blocklist.spec.selector = "all()".into();
    blocklist.spec.types = vec![PolicyType::Ingress, PolicyType::Egress];
    blocklist.spec.ingress = vec![
        rule(Action::Log, |r| {
            r.source = entity(|e| e.nets = (1..=10).map(|i| format!("198.51.100.{i}/32")).collect())
        }),
        rule(Action::Deny, |r| {
            r.source = entity(|e| e.nets = (1..=10).map(|i| format!("198.51.100.{i}/32")).collect())
        }),
        rule(Action::Pass, |_| {}),
    ];
    blocklist.spec.egress = vec![
        rule(Action::Deny, |r| {
            r.protocol = Some(Protocol::udp());
            r.destination = entity(|e| {
                e.ports = vec![Port::single(53)];
                e.not_nets = vec!["10.96.0.10/32".into()];
            })
        }),
        rule(Action::Pass, |_| {}),
    ];
    updates.push(blocklist.into());

    // Default tier: web takes HTTP from partners and the front end; ICMP.
    let mut web_in = NetworkPolicy {
        metadata: ObjectMeta::named("web-ingress"),
        ..Default::default()
    };
    web_in.metadata.namespace = "prod".into();
    web_in.spec.order = Some(100.0);
    web_in.spec.selector = "app == 'web'".into();
    web_in.spec.ingress = vec![
        rule(Action::Allow, |r| {
            r.protocol = Some(Protocol::tcp());
            r.source = entity(|e| e.selector = "kind == 'partner'".into());
            r.destination =
                entity(|e| e.ports = vec![Port::single(443), Port::Named("http".into())]);
        }),
        rule(Action::Log, |r| {
            r.protocol = Some(Protocol::tcp());
            r.destination = entity(|e| {
                e.ports = vec![
                    Port::Range {
                        min: 8000,
                        max: 8100,
                    },
                    Port::Named("http".into()),
                ]
            });
        }),
        rule(Action::Allow, |r| {
            r.protocol = Some(Protocol::tcp());
            r.source = entity(|e| {
                e.namespace_selector = "team == 'blue'".into();
                e.ports = vec![Port::Range {
                    min: 1024,
                    max: 65535,
                }];
            });
            r.destination = entity(|e| e.not_ports = vec![Port::single(22)]);
        }),
        rule(Action::Allow, |r| {
            r.protocol = Some(Protocol::Name("ICMP".into()));
            r.icmp = Some(IcmpFields {
                icmp_type: Some(8),
                code: Some(0),
            });
        }),
        rule(Action::Deny, |r| {
            r.not_icmp = Some(IcmpFields {
                icmp_type: Some(3),
                code: None,
            });
            r.ip_version = Some(6);
        }),
    ];
    updates.push(web_in.into());

    // Egress of everything in prod: to the database by selector.
    let mut prod_out = NetworkPolicy {
        metadata: ObjectMeta::named("prod-egress"),
        ..Default::default()
    };
    prod_out.metadata.namespace = "prod".into();
    prod_out.spec.order = Some(200.0);
    prod_out.spec.selector = "all()".into();
    prod_out.spec.types = vec![PolicyType::Egress];
    prod_out.spec.egress = vec![
        rule(Action::Allow, |r| {
            r.protocol = Some(Protocol::tcp());
            r.destination = entity(|e| {
                e.selector = "app == 'db'".into();
                e.ports = vec![Port::single(5432)];
            });
        }),
        rule(Action::Allow, |r| {
            r.destination = entity(|e| {
                e.nets = vec!["0.0.0.0/0".into()];
                e.not_selector = "app == 'db'".into();
            });
        }),
    ];
    updates.push(prod_out.into());

    // Forms nft could store differently from how they are written.
    let mut edge = GlobalNetworkPolicy {
        metadata: ObjectMeta::named("edge-cases"),
        ..Default::default()
    };
    edge.spec.order = Some(300.0);
    edge.spec.selector = "app == 'db'".into();
    edge.spec.types = vec![PolicyType::Ingress];
    edge.spec.ingress = vec![
        rule(Action::Deny, |r| {
            r.protocol = Some(Protocol::Name("UDPLite".into()));
            r.source = entity(|e| e.ports = vec![Port::single(1)]);
            r.destination = entity(|e| e.ports = vec![Port::single(2)]);
        }),
        rule(Action::Deny, |r| {
            r.protocol = Some(Protocol::udp());
            r.source = entity(|e| e.not_ports = vec![Port::single(53)]);
            r.destination = entity(|e| e.not_ports = vec![Port::single(54)]);
        }),
        rule(Action::Log, |r| {
            r.protocol = Some(Protocol::tcp());
            r.source = entity(|e| {
                e.selector = "app == 'web'".into();
                e.ports = vec![Port::Named("http".into()), Port::single(80)];
            });
            r.destination = entity(|e| e.not_ports = vec![Port::Named("http".into())]);
        }),
        rule(Action::Pass, |r| {
            r.not_icmp = Some(IcmpFields {
                icmp_type: Some(8),
                code: Some(1),
            });
            r.not_protocol = Some(Protocol::udp());
        }),
        rule(Action::Allow, |r| {
            r.protocol = Some(Protocol::Number(132));
            r.destination = entity(|e| {
                e.ports = vec![Port::Range { min: 100, max: 200 }, Port::single(9)];
                e.nets = vec![
                    "10.65.0.0/30".into(),
                    "10.65.0.4/30".into(),
                    "fd00:65::/64".into(),
                ];
            });
        }),
        rule(Action::Allow, |r| {
            r.icmp = Some(IcmpFields {
                icmp_type: Some(128),
                code: None,
            });
            r.protocol = Some(Protocol::Name("ICMPv6".into()));
        }),
    ];
    updates.push(edge.into());

    Fixture {
        name: "workloads",
        updates,
        engine: engine(),
        config: DataplaneConfig::default(),
    }
}

/// Host endpoints: an interface and all interfaces, normal, doNotTrack,
/// preDNAT and applyOnForward policy, custom failsafe ports, two workload
/// prefixes, workload-to-host traffic accepted, IPv4 only.
pub fn host_endpoints() -> Fixture {
    let mut updates: Vec<Update> = vec![namespace_profile("prod", "red").into()];
    updates.push(
        pod(
            "prod",
            "web",
            "cali0000000web1",
            &["10.65.0.1/32"],
            &[("app", "web")],
        )
        .into(),
    );
    updates.push(
        pod(
            "prod",
            "vm",
            "tap00000000vm01",
            &["10.65.0.9/32"],
            &[("app", "vm")],
        )
        .into(),
    );

    let mut eth0 = HostEndpoint {
        metadata: ObjectMeta::named("node1-eth0"),
        ..Default::default()
    };
    eth0.metadata.labels = labels(&[("host", "node1"), ("iface", "uplink")]);
    eth0.spec.node = NODE.into();
    eth0.spec.interface_name = "eth0".into();
    eth0.spec.expected_ips = vec!["192.0.2.10".into()];
    eth0.spec.ports = vec![EndpointPort {
        name: "metrics".into(),
        protocol: Protocol::tcp(),
        port: 9100,
    }];
    updates.push(eth0.into());
    let mut all = HostEndpoint {
        metadata: ObjectMeta::named("node1-all"),
        ..Default::default()
    };
    all.metadata.labels = labels(&[("host", "node1")]);
    all.spec.node = NODE.into();
    all.spec.interface_name = "*".into();
    all.spec.profiles = vec!["projectcalico-default-allow".into()];
    updates.push(all.into());

    let gnp = |name: &str, f: &dyn Fn(&mut GlobalNetworkPolicy)| -> Update {
        let mut p = GlobalNetworkPolicy {
            metadata: ObjectMeta::named(name),
            ..Default::default()
        };
        p.spec.selector = "host == 'node1'".into();
        f(&mut p);
        p.into()
    };
    updates.push(gnp("host-ingress", &|p| {
        p.spec.order = Some(10.0);
        p.spec.types = vec![PolicyType::Ingress, PolicyType::Egress];
        p.spec.ingress = vec![
            rule(Action::Allow, |r| {
                r.protocol = Some(Protocol::tcp());
                r.destination = entity(|e| e.ports = vec![Port::Named("metrics".into())]);
            }),
            rule(Action::Deny, |_| {}),
        ];
        p.spec.egress = vec![rule(Action::Allow, |_| {})];
    }));
    updates.push(gnp("untracked-drop", &|p| {
        p.spec.order = Some(5.0);
        p.spec.do_not_track = true;
        p.spec.apply_on_forward = true;
        p.spec.types = vec![PolicyType::Ingress];
        p.spec.ingress = vec![rule(Action::Deny, |r| {
            r.source = entity(|e| e.nets = vec!["198.51.100.0/24".into()]);
        })];
    }));
    updates.push(gnp("pre-dnat", &|p| {
        p.spec.order = Some(6.0);
        p.spec.pre_dnat = true;
        p.spec.apply_on_forward = true;
        p.spec.types = vec![PolicyType::Ingress];
        p.spec.ingress = vec![rule(Action::Deny, |r| {
            r.protocol = Some(Protocol::tcp());
            r.destination = entity(|e| {
                e.ports = vec![Port::Range {
                    min: 30000,
                    max: 32767,
                }]
            });
        })];
    }));
    updates.push(gnp("forward", &|p| {
        p.spec.order = Some(7.0);
        p.spec.apply_on_forward = true;
        p.spec.selector = "iface == 'uplink'".into();
        p.spec.types = vec![PolicyType::Egress];
        p.spec.egress = vec![rule(Action::Allow, |r| {
            r.destination = entity(|e| e.nets = vec!["192.0.2.0/24".into()]);
        })];
    }));

    let mut config = DataplaneConfig {
        ipv6: false,
        endpoint_to_host_action: EndpointToHostAction::Accept,
        ..Default::default()
    };
    config.workload_interface_prefixes = vec!["cali".into(), "tap".into()];
    let mut engine = engine();
    engine.failsafe.inbound.push(ProtoPort {
        protocol: 6,
        port: 10250,
        net: Some("10.0.0.0/8".parse().expect("net")),
    });
    Fixture {
        name: "host-endpoints",
        updates,
        engine,
        config,
    }
}

pub fn all() -> Vec<Fixture> {
    vec![empty(), workloads(), host_endpoints()]
}
