//! The node's own traffic in a real kernel: workloads reaching the host
//! (`defaultEndpointToHostAction`), interfaces that belong to no known
//! endpoint, the host reaching its workloads, and host endpoints with
//! failsafe ports, normal policy and applyOnForward policy, compared with
//! the reference evaluator where it has an opinion. Needs root.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use calico_dataplane::{DataplaneConfig, EndpointToHostAction, generate};
use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, HostEndpoint, ObjectMeta, PolicyType, Port, Protocol,
    Rule,
};
use calico_policy::eval::{Flow, Packet, Verdict};
use calico_policy::explain::{self, ResourceSet};
use calico_policy::program::Failsafe;
use calico_policy::{EndpointKey, EngineConfig, PolicyEngine, Update};
use support::fixtures::{NODE, namespace_profile, pod};
use support::node::{Listeners, Node, Outcome, Probe, Source, Transport, run_probes};

const TIMEOUT: Duration = Duration::from_millis(700);
const NODE_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);

/// The engine and the reference, fed alike.
struct Model {
    engine: PolicyEngine,
    resources: ResourceSet,
}

impl Model {
    fn new() -> Model {
        Model {
            engine: PolicyEngine::new(EngineConfig {
                local_node: Some(NODE.into()),
                failsafe: Failsafe::default(),
            }),
            resources: ResourceSet::new(),
        }
    }

    fn apply(&mut self, update: impl Into<Update>) {
        let update = update.into();
        self.engine.apply(update.clone()).expect("engine accepts");
        self.resources.apply(update).expect("reference accepts");
    }
}

struct Prober {
    next_port: u16,
}

impl Prober {
    fn tcp(&mut self, src: usize, dst: Ipv4Addr, port: u16) -> Probe {
        self.next_port += 1;
        Probe {
            src_pod: src,
            transport: Transport::Tcp,
            src_port: self.next_port,
            dst: SocketAddr::new(IpAddr::V4(dst), port),
        }
    }
}

fn answered(outcome: &Outcome) -> bool {
    match outcome {
        Outcome::Answered => true,
        Outcome::Silent => false,
        Outcome::Failed(e) => panic!("probe failed: {e}"),
    }
}

fn deny_all(name: &str, selector: &str, types: Vec<PolicyType>) -> GlobalNetworkPolicy {
    let mut p = GlobalNetworkPolicy {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    p.spec.selector = selector.into();
    p.spec.ingress = vec![Rule::new(Action::Deny)];
    p.spec.egress = vec![Rule::new(Action::Deny)];
    p.spec.types = types;
    p
}

#[test]
fn workloads_the_host_and_unknown_interfaces() {
    let mut node = Node::new("dphost");
    let a_ip = Ipv4Addr::new(10, 65, 0, 1);
    let b_ip = Ipv4Addr::new(10, 65, 0, 2);
    node.add_pod("dpha", "cali00000000001", a_ip);
    // B is plumbed but no endpoint names its interface.
    node.add_pod("dphb", "cali00000000002", b_ip);
    let node_source = Source {
        ns: &node.ns,
        ip: NODE_IP,
        ip6: None,
    };
    let _listeners = [
        Listeners::start(node_source, &[8080]),
        Listeners::start(node.pods[0].source(), &[8080]),
        Listeners::start(node.pods[1].source(), &[8080]),
    ];
    let sources = [node.pods[0].source(), node.pods[1].source(), node_source];
    let (a, b, host) = (0, 1, 2);

    let mut model = Model::new();
    model.apply(namespace_profile("t", "red"));
    model.apply(pod(
        "t",
        "a",
        "cali00000000001",
        &["10.65.0.1/32"],
        &[("app", "a")],
    ));
    let mut reconciler = node.reconciler(DataplaneConfig::default().tables());
    let mut prober = Prober { next_port: 40000 };

    let cases = [
        (EndpointToHostAction::Drop, false),
        (EndpointToHostAction::Accept, true),
        (EndpointToHostAction::Return, true),
    ];
    for (action, host_reachable) in cases {
        let config = DataplaneConfig {
            endpoint_to_host_action: action,
            ..Default::default()
        };
        reconciler
            .apply_blocking(&generate(&model.engine.snapshot(), &config))
            .expect("apply");
        let probes = [
            prober.tcp(a, NODE_IP, 8080),
            prober.tcp(b, NODE_IP, 8080),
            prober.tcp(b, a_ip, 8080),
            prober.tcp(a, b_ip, 8080),
            prober.tcp(host, a_ip, 8080),
            prober.tcp(host, b_ip, 8080),
        ];
        let seen: Vec<bool> = run_probes(&sources, &probes, TIMEOUT)
            .iter()
            .map(answered)
            .collect();
        assert_eq!(
            seen,
            vec![host_reachable, false, false, false, true, true],
            "{action:?}: [a→host, b→host, b→a, a→b, host→a, host→b]"
        );
    }

    // A's policy denies everything: it cannot reach the host even when
    // the action is Accept, and the host still reaches it (host-to-workload
    // traffic is not policed, as in Calico).
    model.apply(deny_all(
        "deny-a",
        "app == 'a'",
        vec![PolicyType::Ingress, PolicyType::Egress],
    ));
    let config = DataplaneConfig {
        endpoint_to_host_action: EndpointToHostAction::Accept,
        ..Default::default()
    };
    reconciler
        .apply_blocking(&generate(&model.engine.snapshot(), &config))
        .expect("apply");
    let probes = [prober.tcp(a, NODE_IP, 8080), prober.tcp(host, a_ip, 8080)];
    let seen: Vec<bool> = run_probes(&sources, &probes, TIMEOUT)
        .iter()
        .map(answered)
        .collect();
    assert_eq!(seen, vec![false, true], "[a→host, host→a] with A denied");
    let reference = explain::explain(
        &model.resources,
        &Failsafe::default(),
        &Flow {
            src_endpoint: Some(EndpointKey::workload("t", format!("{NODE}-k8s-a-eth0"))),
            dst_endpoint: None,
            packet: Packet::tcp(a_ip.into(), 40000, NODE_IP.into(), 8080),
        },
    );
    assert_eq!(reference.verdict, Verdict::Deny);
    reconciler.remove_all_blocking().expect("cleanup");
}

#[test]
fn host_endpoints_failsafe_policy_and_forwarding() {
    let mut node = Node::new("dphep");
    let pod_ip = Ipv4Addr::new(10, 65, 0, 1);
    node.add_pod("dphepa", "cali00000000001", pod_ip);
    let ext_node_ip = Ipv4Addr::new(192, 0, 2, 1);
    let outside_ip = Ipv4Addr::new(192, 0, 2, 2);
    let outside = node.add_outside("dphepx", "ext0", ext_node_ip, outside_ip);
    let node_source = Source {
        ns: &node.ns,
        ip: ext_node_ip,
        ip6: None,
    };
    let outside_source = Source {
        ns: &outside,
        ip: outside_ip,
        ip6: None,
    };
    let _listeners = [
        Listeners::start(node_source, &[22, 8080, 8081]),
        Listeners::start(outside_source, &[179, 8080]),
        Listeners::start(node.pods[0].source(), &[8080]),
    ];
    let sources = [outside_source, node_source];
    let (from_outside, from_host) = (0, 1);

    let mut model = Model::new();
    model.apply(namespace_profile("t", "red"));
    model.apply(pod(
        "t",
        "a",
        "cali00000000001",
        &["10.65.0.1/32"],
        &[("app", "a")],
    ));
    let mut hep = HostEndpoint {
        metadata: ObjectMeta::named("node1-ext0"),
        ..Default::default()
    };
    hep.metadata.labels = [("role".to_string(), "uplink".to_string())].into();
    hep.spec.node = NODE.into();
    hep.spec.interface_name = "ext0".into();
    hep.spec.expected_ips = vec![ext_node_ip.to_string()];
    model.apply(hep);
    let mut allow_8080 = GlobalNetworkPolicy {
        metadata: ObjectMeta::named("uplink"),
        ..Default::default()
    };
    allow_8080.spec.selector = "role == 'uplink'".into();
    allow_8080.spec.types = vec![PolicyType::Ingress];
    let mut rule = Rule::new(Action::Allow);
    rule.protocol = Some(Protocol::tcp());
    rule.destination = EntityRule {
        ports: vec![Port::single(8080)],
        ..Default::default()
    };
    allow_8080.spec.ingress = vec![rule];
    model.apply(allow_8080);

    let config = DataplaneConfig::default();
    let mut reconciler = node.reconciler(config.tables());
    let mut prober = Prober { next_port: 41000 };
    let hep_key = EndpointKey::host("node1-ext0");

    // Each probe with the reference's verdict for it (host endpoint as the
    // destination or the source; the other side a bare address).
    let check = |model: &Model,
                 reconciler: &mut calico_nftables::Reconciler,
                 probes: &[(Probe, bool)],
                 what: &str| {
        reconciler
            .apply_blocking(&generate(&model.engine.snapshot(), &config))
            .expect("apply");
        let list: Vec<Probe> = probes.iter().map(|(p, _)| *p).collect();
        let outcomes = run_probes(&sources, &list, TIMEOUT);
        for ((probe, ingress), outcome) in probes.iter().zip(&outcomes) {
            let src_ip = if probe.src_pod == from_outside {
                outside_ip
            } else {
                ext_node_ip
            };
            let flow = Flow {
                src_endpoint: (!ingress).then(|| hep_key.clone()),
                dst_endpoint: ingress.then(|| hep_key.clone()),
                packet: Packet::tcp(
                    src_ip.into(),
                    probe.src_port,
                    probe.dst.ip(),
                    probe.dst.port(),
                ),
            };
            let reference = explain::explain(&model.resources, &Failsafe::default(), &flow);
            let kernel = if answered(outcome) {
                Verdict::Allow
            } else {
                Verdict::Deny
            };
            assert_eq!(
                kernel, reference.verdict,
                "{what}: {probe:?}: reference says {:?} ({}; {})",
                reference.verdict, reference.egress.decided_by, reference.ingress.decided_by
            );
        }
        outcomes.iter().map(answered).collect::<Vec<bool>>()
    };

    let probes = [
        (prober.tcp(from_outside, ext_node_ip, 22), true),
        (prober.tcp(from_outside, ext_node_ip, 8080), true),
        (prober.tcp(from_outside, ext_node_ip, 8081), true),
        (prober.tcp(from_host, outside_ip, 179), false),
        (prober.tcp(from_host, outside_ip, 8080), false),
    ];
    let seen = check(&model, &mut reconciler, &probes, "allow 8080");
    assert_eq!(
        seen,
        vec![true, true, false, true, false],
        "[in:22 failsafe, in:8080 allowed, in:8081 denied, out:179 failsafe, out:8080 no egress policy]"
    );

    model.apply(deny_all(
        "uplink",
        "role == 'uplink'",
        vec![PolicyType::Ingress],
    ));
    let probes = [
        (prober.tcp(from_outside, ext_node_ip, 22), true),
        (prober.tcp(from_outside, ext_node_ip, 8080), true),
    ];
    let seen = check(&model, &mut reconciler, &probes, "deny all");
    assert_eq!(seen, vec![true, false], "[in:22 failsafe, in:8080 denied]");

    // Forwarded traffic through the host endpoint to a pod: allowed while
    // no applyOnForward policy applies, denied by one.
    let forward =
        |reconciler: &mut calico_nftables::Reconciler, model: &Model, prober: &mut Prober| {
            reconciler
                .apply_blocking(&generate(&model.engine.snapshot(), &config))
                .expect("apply");
            let probes = [prober.tcp(from_outside, pod_ip, 8080)];
            answered(&run_probes(&sources, &probes, TIMEOUT)[0])
        };
    assert!(
        forward(&mut reconciler, &model, &mut prober),
        "forwarded to the pod"
    );
    let mut fwd = deny_all(
        "uplink-forward",
        "role == 'uplink'",
        vec![PolicyType::Ingress],
    );
    fwd.spec.apply_on_forward = true;
    fwd.spec.ingress[0].source = EntityRule {
        nets: vec!["192.0.2.0/24".into()],
        ..Default::default()
    };
    model.apply(fwd);
    assert!(
        !forward(&mut reconciler, &model, &mut prober),
        "applyOnForward policy denies forwarding from the outside"
    );
    reconciler.remove_all_blocking().expect("cleanup");
}
