//! Builders for resources and a harness that feeds the same updates to the
//! engine and to the reference evaluator, and checks that they agree.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, IcmpFields,
    NetworkPolicy, NetworkSet, ObjectMeta, PolicyType, Port, Profile, Protocol, Rule, Tier,
    WorkloadEndpoint, WorkloadEndpointPort,
};
use calico_policy::eval::{self, Explanation, Flow, Packet};
use calico_policy::explain::{self, ResourceSet};
use calico_policy::program::Failsafe;
use calico_policy::{Changes, EndpointKey, EngineConfig, PolicyEngine, Update};

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A Kubernetes pod's endpoint, as Calico's CNI plugin writes it.
pub fn pod(ns: &str, name: &str, addr: &str, l: &[(&str, &str)]) -> WorkloadEndpoint {
    let mut w = WorkloadEndpoint {
        metadata: ObjectMeta::namespaced(ns, format!("node1-k8s-{name}-eth0")),
        ..Default::default()
    };
    w.metadata.labels = labels(l);
    w.spec.orchestrator = "k8s".into();
    w.spec.node = "node1".into();
    w.spec.pod = name.into();
    w.spec.endpoint = "eth0".into();
    w.spec.interface_name = format!("cali{name}");
    w.spec.ip_networks = vec![if addr.contains(':') {
        format!("{addr}/128")
    } else {
        format!("{addr}/32")
    }];
    w.spec.profiles = vec![format!("kns.{ns}")];
    w
}

pub fn with_port(
    mut w: WorkloadEndpoint,
    name: &str,
    protocol: &str,
    port: u16,
) -> WorkloadEndpoint {
    w.spec.ports.push(WorkloadEndpointPort {
        name: name.into(),
        protocol: Protocol::from(protocol),
        port,
        host_port: 0,
        host_ip: String::new(),
    });
    w
}

pub fn pod_key(ns: &str, name: &str) -> EndpointKey {
    EndpointKey::workload(ns, format!("node1-k8s-{name}-eth0"))
}

pub fn host(name: &str, addr: &str, l: &[(&str, &str)]) -> HostEndpoint {
    let mut h = HostEndpoint {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    h.metadata.labels = labels(l);
    h.spec.node = "node1".into();
    h.spec.interface_name = "eth0".into();
    h.spec.expected_ips = vec![addr.into()];
    h
}

/// The profile Calico's kube-controllers make of a namespace.
pub fn namespace(ns: &str, l: &[(&str, &str)]) -> Profile {
    let mut p = Profile {
        metadata: ObjectMeta::named(format!("kns.{ns}")),
        ..Default::default()
    };
    p.spec.ingress = vec![Rule::new(Action::Allow)];
    p.spec.egress = vec![Rule::new(Action::Allow)];
    p.spec.labels_to_apply = l
        .iter()
        .map(|(k, v)| (format!("pcns.{k}"), v.to_string()))
        .collect();
    p.spec
        .labels_to_apply
        .insert("pcns.projectcalico.org/name".into(), ns.into());
    p
}

pub fn tier(name: &str, order: Option<f64>, action: Action) -> Tier {
    let mut t = Tier {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    t.spec.order = order;
    t.spec.default_action = Some(action);
    t
}

pub fn np(ns: &str, name: &str, selector: &str) -> NetworkPolicy {
    let mut p = NetworkPolicy {
        metadata: ObjectMeta::namespaced(ns, name),
        ..Default::default()
    };
    p.spec.selector = selector.into();
    p
}

pub fn gnp(name: &str, selector: &str) -> GlobalNetworkPolicy {
    let mut p = GlobalNetworkPolicy {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    p.spec.selector = selector.into();
    p
}

pub fn gns(name: &str, nets: &[&str], l: &[(&str, &str)]) -> GlobalNetworkSet {
    let mut n = GlobalNetworkSet {
        metadata: ObjectMeta::named(name),
        ..Default::default()
    };
    n.metadata.labels = labels(l);
    n.spec.nets = nets.iter().map(|s| s.to_string()).collect();
    n
}

pub fn netset(ns: &str, name: &str, nets: &[&str], l: &[(&str, &str)]) -> NetworkSet {
    let mut n = NetworkSet {
        metadata: ObjectMeta::namespaced(ns, name),
        ..Default::default()
    };
    n.metadata.labels = labels(l);
    n.spec.nets = nets.iter().map(|s| s.to_string()).collect();
    n
}

/// A rule built by a closure.
pub fn rule(action: Action, f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule::new(action);
    f(&mut r);
    r
}

pub fn allow() -> Rule {
    Rule::new(Action::Allow)
}

pub fn deny() -> Rule {
    Rule::new(Action::Deny)
}

pub fn tcp() -> Option<Protocol> {
    Some(Protocol::tcp())
}

pub fn ports(list: &[&str]) -> Vec<Port> {
    list.iter()
        .map(|p| serde_json::from_value(port_json(p)).unwrap())
        .collect()
}

fn port_json(p: &str) -> serde_json::Value {
    match p.parse::<u16>() {
        Ok(n) => serde_json::json!(n),
        Err(_) => serde_json::json!(p),
    }
}

pub fn entity(f: impl FnOnce(&mut EntityRule)) -> EntityRule {
    let mut e = EntityRule::default();
    f(&mut e);
    e
}

pub fn icmp(t: i64, code: Option<i64>) -> Option<IcmpFields> {
    Some(IcmpFields {
        icmp_type: Some(t),
        code,
    })
}

pub fn types(t: &[PolicyType]) -> Vec<PolicyType> {
    t.to_vec()
}

/// The engine and the reference evaluator, fed the same updates.
pub struct World {
    pub engine: PolicyEngine,
    pub resources: ResourceSet,
    pub failsafe: Failsafe,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

impl World {
    pub fn new() -> Self {
        World {
            engine: PolicyEngine::new(EngineConfig::default()),
            resources: ResourceSet::new(),
            failsafe: Failsafe::default(),
        }
    }

    /// Applies to both; panics if either refuses.
    pub fn apply(&mut self, u: impl Into<Update>) -> Changes {
        let u = u.into();
        self.resources
            .apply(u.clone())
            .unwrap_or_else(|e| panic!("reference refused: {e}"));
        self.engine
            .apply(u)
            .unwrap_or_else(|e| panic!("engine refused: {e}"))
    }

    /// Judges the flow both ways, asserts they agree, returns the verdict.
    pub fn judge(&self, flow: &Flow) -> Explanation {
        let reference = explain::explain(&self.resources, &self.failsafe, flow);
        let program = eval::evaluate_flow(&self.engine.snapshot(), flow);
        assert_eq!(
            program, reference,
            "program and reference disagree on {flow:?}"
        );
        reference
    }

    /// A flow between two endpoints (or bare addresses).
    pub fn flow(&self, src: Peer, dst: Peer, make: impl FnOnce(IpAddr, IpAddr) -> Packet) -> Flow {
        let resolve = |p: Peer| match p {
            Peer::Ep(k) => {
                let a = self
                    .resources
                    .address_of(&k, false)
                    .expect("endpoint has an IPv4 address");
                (Some(k), a)
            }
            Peer::Ep6(k) => {
                let a = self
                    .resources
                    .address_of(&k, true)
                    .expect("endpoint has an IPv6 address");
                (Some(k), a)
            }
            Peer::Ip(a) => (None, a),
        };
        let (src_endpoint, s) = resolve(src);
        let (dst_endpoint, d) = resolve(dst);
        Flow {
            src_endpoint,
            dst_endpoint,
            packet: make(s, d),
        }
    }
}

pub enum Peer {
    Ep(EndpointKey),
    Ep6(EndpointKey),
    Ip(IpAddr),
}

pub fn tcp_to(port: u16) -> impl FnOnce(IpAddr, IpAddr) -> Packet {
    move |s, d| Packet::tcp(s, 40000, d, port)
}

pub fn udp_to(port: u16) -> impl FnOnce(IpAddr, IpAddr) -> Packet {
    move |s, d| Packet::udp(s, 40000, d, port)
}

pub fn tcp_from(src_port: u16, port: u16) -> impl FnOnce(IpAddr, IpAddr) -> Packet {
    move |s, d| Packet::tcp(s, src_port, d, port)
}

pub fn ping(t: u8, code: u8) -> impl FnOnce(IpAddr, IpAddr) -> Packet {
    move |s, d| Packet::icmp(s, d, t, code)
}
