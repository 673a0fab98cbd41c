//! Random clusters of Calico resources from a seed: pods in two
//! namespaces with random labels and named ports, namespace profiles, a
//! network set, tiers with random orders and default actions, and
//! NetworkPolicies and GlobalNetworkPolicies with random rules (Allow,
//! Deny, Pass, Log; selectors, namespace selectors, nets and notNets, ports,
//! port ranges, named ports, source ports, TCP/UDP, ICMP types and codes).
//! Then random
//! incremental changes: a policy replaced, added or deleted, a tier
//! changed, a pod relabelled.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

use calico_model::{
    Action, EntityRule, GlobalNetworkPolicy, GlobalNetworkSet, IcmpFields, NetworkPolicy,
    ObjectMeta, PolicyType, Port, Profile, Protocol, Rule, ServiceAccountMatch, Tier,
    WorkloadEndpoint, WorkloadEndpointPort,
};
use calico_policy::{EndpointKey, Update};

use super::rng::Rng;

pub const NODE: &str = "node1";
/// Ports every pod listens on (TCP and UDP) and every probe targets.
pub const PROBE_PORTS: [u16; 3] = [80, 443, 8080];
/// Probes use source ports counting up from here, never reused.
pub const SRC_PORT_BASE: u16 = 30000;
pub const NAMESPACES: [&str; 2] = ["ns-a", "ns-b"];
const CUSTOM_TIERS: [(&str, f64); 2] = [("security", 100.0), ("platform", 200.0)];

const POD_SELECTORS: &[&str] = &[
    "all()",
    "app == 'web'",
    "app != 'db'",
    "has(role)",
    "!has(role)",
    "app in {'web', 'cache'}",
    "app not in {'db'}",
    "env == 'prod' && role == 'front'",
    "app == 'db' || env == 'dev'",
    "app starts with 'ca'",
    "app contains 'e'",
    "app ends with 'b'",
    "env == 'dev'",
];
const RULE_SELECTORS: &[&str] = &[
    "app == 'web'",
    "app == 'db'",
    "role == 'back'",
    "env == 'prod'",
    "has(app) && !has(role)",
    "kind == 'external'",
    "app in {'db', 'cache'} || kind == 'external'",
    "all()",
];
const NAMESPACE_SELECTORS: &[&str] = &[
    "team == 'red'",
    "team == 'blue'",
    "all()",
    "projectcalico.org/name == 'ns-b'",
];
const NETS: &[&str] = &[
    "10.65.0.0/29",
    "10.65.0.8/29",
    "10.65.0.0/24",
    "10.65.0.3/32",
    "10.65.0.6",
    "192.168.0.0/16",
    "10.65.0.4/30",
    "fd00:65::/125",
    "fd00:65::3/128",
    "fd00:65::4/126",
    "2001:db8::/32",
];
const PORT_NAMES: [&str; 3] = ["web", "alt", "dns"];

/// A pod as the test knows it.
#[derive(Debug, Clone)]
pub struct PodInfo {
    pub key: EndpointKey,
    pub ip: Ipv4Addr,
    pub iface: String,
    /// Whether it is on this node (plumbed and probed).
    pub local: bool,
    pub endpoint: WorkloadEndpoint,
}

/// Host-side interface name of local pod `i`.
pub fn pod_iface(i: usize) -> String {
    format!("cali{i:011x}")
}

/// IPv4 address of local pod `i`.
pub fn pod_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 65, 0, (i + 1) as u8)
}

/// IPv6 address of local pod `i`.
pub fn pod_ip6(i: usize) -> Ipv6Addr {
    Ipv6Addr::new(0xfd00, 0x65, 0, 0, 0, 0, 0, (i + 1) as u16)
}

/// The cluster's current resources and a generator for changes.
#[derive(Debug)]
pub struct Cluster {
    pub rng: Rng,
    pub pods: Vec<PodInfo>,
    /// Every resource by a unique name, as its upsert.
    pub resources: BTreeMap<String, Update>,
    next_policy: usize,
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    let mut m = ObjectMeta::named(name);
    m.namespace = namespace.into();
    m
}

impl Cluster {
    /// `local` pods on this node and `remote` on another, then random
    /// profiles, tiers, a network set and `policies` policies.
    pub fn new(seed: u64, local: usize, remote: usize, policies: usize) -> Cluster {
        let mut c = Cluster {
            rng: Rng::new(seed),
            pods: Vec::new(),
            resources: BTreeMap::new(),
            next_policy: 0,
        };
        for (i, ns) in NAMESPACES.iter().enumerate() {
            let mut p = Profile {
                metadata: ObjectMeta::named(format!("kns.{ns}")),
                ..Default::default()
            };
            p.spec.labels_to_apply = [
                ("pcns.projectcalico.org/name".to_string(), ns.to_string()),
                (
                    "pcns.team".to_string(),
                    if i == 0 { "red" } else { "blue" }.to_string(),
                ),
            ]
            .into();
            (p.spec.ingress, p.spec.egress) = (c.profile_rules(), c.profile_rules());
            c.put(format!("profile/{ns}"), p.into());
        }
        for i in 0..local + remote {
            let is_local = i < local;
            let (ip, ip6) = if is_local {
                (pod_ip(i), pod_ip6(i))
            } else {
                (
                    Ipv4Addr::new(10, 65, 1, (i + 1) as u8),
                    Ipv6Addr::new(0xfd00, 0x65, 1, 0, 0, 0, 0, (i + 1) as u16),
                )
            };
            let ns = NAMESPACES[c.rng.below(NAMESPACES.len())];
            let name = format!("{}-k8s-pod{i}-eth0", if is_local { NODE } else { "node2" });
            let mut w = WorkloadEndpoint {
                metadata: meta(ns, &name),
                ..Default::default()
            };
            w.spec.node = if is_local { NODE } else { "node2" }.into();
            w.spec.orchestrator = "k8s".into();
            w.spec.pod = format!("pod{i}");
            w.spec.endpoint = "eth0".into();
            w.spec.ip_networks = vec![format!("{ip}/32"), format!("{ip6}/128")];
            w.spec.profiles = vec![format!("kns.{ns}")];
            w.spec.interface_name = pod_iface(i);
            w.spec.service_account_name = format!("sa-{}", c.rng.below(2) + 1);
            w.metadata.labels = c.pod_labels();
            w.spec.ports = c.named_ports();
            let key = EndpointKey::workload(ns, &name);
            c.pods.push(PodInfo {
                key,
                ip,
                iface: pod_iface(i),
                local: is_local,
                endpoint: w.clone(),
            });
            c.put(format!("pod/{i}"), w.into());
        }
        let mut set = GlobalNetworkSet {
            metadata: ObjectMeta::named("external"),
            ..Default::default()
        };
        set.metadata.labels = [("kind".to_string(), "external".to_string())].into();
        set.spec.nets = vec![
            "10.65.0.2/32".into(),
            "10.65.0.4/30".into(),
            "fd00:65::2/128".into(),
        ];
        c.put("netset/external".into(), set.into());
        for (name, order) in CUSTOM_TIERS {
            let tier = c.tier(name, order);
            c.put(format!("tier/{name}"), tier);
        }
        for _ in 0..policies {
            let (id, update) = c.new_policy();
            c.put(id, update);
        }
        c
    }

    fn put(&mut self, id: String, update: Update) {
        self.resources.insert(id, update);
    }

    /// Every resource as an upsert.
    pub fn updates(&self) -> Vec<Update> {
        self.resources.values().cloned().collect()
    }

    fn pod_labels(&mut self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        labels.insert(
            "app".to_string(),
            self.rng.pick(&["web", "db", "cache"]).to_string(),
        );
        if self.rng.chance(0.6) {
            labels.insert(
                "role".to_string(),
                self.rng.pick(&["front", "back"]).to_string(),
            );
        }
        labels.insert(
            "env".to_string(),
            self.rng.pick(&["prod", "dev"]).to_string(),
        );
        labels
    }

    fn named_ports(&mut self) -> Vec<WorkloadEndpointPort> {
        let mut out = Vec::new();
        for name in PORT_NAMES {
            if !self.rng.chance(0.6) {
                continue;
            }
            let protocol = if name == "dns" || self.rng.chance(0.25) {
                Protocol::udp()
            } else {
                Protocol::tcp()
            };
            out.push(WorkloadEndpointPort {
                name: name.into(),
                protocol,
                port: *self.rng.pick(&PROBE_PORTS),
                host_port: 0,
                host_ip: String::new(),
            });
        }
        out
    }

    fn profile_rules(&mut self) -> Vec<Rule> {
        if self.rng.chance(0.85) {
            return vec![Rule::new(Action::Allow)];
        }
        let mut rules: Vec<Rule> = (0..self.rng.between(1, 2))
            .map(|_| self.rule(None))
            .collect();
        if self.rng.chance(0.5) {
            rules.push(Rule::new(Action::Allow));
        }
        rules
    }

    fn tier(&mut self, name: &str, order: f64) -> Update {
        let mut t = Tier {
            metadata: ObjectMeta::named(name),
            ..Default::default()
        };
        t.spec.order = Some(order + self.rng.between(0, 150) as f64);
        t.spec.default_action = Some(if self.rng.chance(0.3) {
            Action::Deny
        } else {
            Action::Pass
        });
        t.into()
    }

    fn ports(&mut self, src: bool) -> Vec<Port> {
        (0..self.rng.between(1, 2))
            .map(|_| {
                if src {
                    let lo = SRC_PORT_BASE + self.rng.between(0, 3000) as u16;
                    let width = self.rng.between(0, 1500) as u16;
                    Port::Range {
                        min: lo,
                        max: lo.saturating_add(width),
                    }
                } else {
                    match self.rng.below(6) {
                        0 | 1 => Port::single(*self.rng.pick(&PROBE_PORTS)),
                        2 => Port::Range { min: 400, max: 500 },
                        3 => Port::Range {
                            min: 8000,
                            max: 8100,
                        },
                        4 => Port::Range { min: 1, max: 100 },
                        _ => Port::Named(self.rng.pick(&PORT_NAMES).to_string()),
                    }
                }
            })
            .collect()
    }

    fn entity(&mut self, dst: bool, ports: bool) -> EntityRule {
        let mut e = EntityRule::default();
        if self.rng.chance(0.35) {
            e.selector = self.rng.pick(RULE_SELECTORS).to_string();
        }
        if self.rng.chance(0.12) {
            e.namespace_selector = self.rng.pick(NAMESPACE_SELECTORS).to_string();
        }
        if self.rng.chance(0.1) {
            e.not_selector = self.rng.pick(RULE_SELECTORS).to_string();
        }
        if self.rng.chance(0.15) {
            e.nets = (0..self.rng.between(1, 2))
                .map(|_| self.rng.pick(NETS).to_string())
                .collect();
        }
        if self.rng.chance(0.1) {
            e.not_nets = vec![self.rng.pick(NETS).to_string()];
        }
        if self.rng.chance(0.05) {
            e.service_accounts = Some(ServiceAccountMatch {
                names: vec![self.rng.pick(&["sa-1", "sa-2"]).to_string()],
                selector: String::new(),
            });
        }
        if ports {
            let (p, not_p) = if dst { (0.5, 0.15) } else { (0.15, 0.1) };
            if self.rng.chance(p) {
                e.ports = self.ports(!dst);
            }
            if self.rng.chance(not_p) {
                e.not_ports = self.ports(!dst);
            }
        }
        e
    }

    /// A random rule; `action` forces the action.
    fn rule(&mut self, action: Option<Action>) -> Rule {
        let action = action.unwrap_or_else(|| match self.rng.below(20) {
            0..=8 => Action::Allow,
            9..=11 => Action::Deny,
            12..=16 => Action::Pass,
            _ => Action::Log,
        });
        let mut r = Rule::new(action);
        r.protocol = match self.rng.below(20) {
            0..=4 => None,
            5..=10 => Some(Protocol::tcp()),
            11..=16 => Some(Protocol::udp()),
            17 | 18 => Some(Protocol::Name("ICMP".into())),
            _ => Some(Protocol::Name("ICMPv6".into())),
        };
        if r.protocol.as_ref().is_some_and(Protocol::is_icmp) {
            let icmp = |rng: &mut Rng| IcmpFields {
                icmp_type: Some(*rng.pick(&[8, 128, 0, 3])),
                code: match rng.below(3) {
                    0 => None,
                    1 => Some(0),
                    _ => Some(1),
                },
            };
            if self.rng.chance(0.5) {
                r.icmp = Some(icmp(&mut self.rng));
            }
            if self.rng.chance(0.3) {
                r.not_icmp = Some(icmp(&mut self.rng));
            }
        }
        if r.protocol.is_none() && self.rng.chance(0.15) {
            r.not_protocol = Some(if self.rng.chance(0.5) {
                Protocol::tcp()
            } else {
                Protocol::udp()
            });
        }
        if self.rng.chance(0.05) {
            r.ip_version = Some(6);
        } else if self.rng.chance(0.1) {
            r.ip_version = Some(4);
        }
        let ports = r.protocol.as_ref().is_some_and(Protocol::supports_ports);
        r.source = self.entity(false, ports);
        r.destination = self.entity(true, ports);
        r
    }

    fn new_policy(&mut self) -> (String, Update) {
        let n = self.next_policy;
        self.next_policy += 1;
        let id = format!("policy/{n}");
        (id, self.policy(n))
    }

    fn policy(&mut self, n: usize) -> Update {
        let tier = if self.rng.chance(0.4) {
            "default"
        } else {
            self.rng.pick(&CUSTOM_TIERS).0
        };
        let base = format!("p{n}");
        let name = if tier == "default" {
            base
        } else {
            format!("{tier}.{base}")
        };
        let order = self
            .rng
            .chance(0.8)
            .then(|| self.rng.between(1, 1000) as f64);
        let selector = self.rng.pick(POD_SELECTORS).to_string();
        let types = match self.rng.below(4) {
            0 => Vec::new(),
            1 => vec![PolicyType::Ingress],
            2 => vec![PolicyType::Egress],
            _ => vec![PolicyType::Ingress, PolicyType::Egress],
        };
        let ingress: Vec<Rule> = (0..self.rng.between(0, 3))
            .map(|_| self.rule(None))
            .collect();
        let egress: Vec<Rule> = (0..self.rng.between(0, 3))
            .map(|_| self.rule(None))
            .collect();
        if self.rng.chance(0.5) {
            let ns = *self.rng.pick(&NAMESPACES);
            let mut p = NetworkPolicy {
                metadata: meta(ns, &name),
                ..Default::default()
            };
            p.spec.tier = tier.into();
            p.spec.order = order;
            p.spec.selector = selector;
            p.spec.types = types;
            p.spec.ingress = ingress;
            p.spec.egress = egress;
            p.into()
        } else {
            let mut p = GlobalNetworkPolicy {
                metadata: ObjectMeta::named(name),
                ..Default::default()
            };
            p.spec.tier = tier.into();
            p.spec.order = order;
            p.spec.selector = selector;
            if self.rng.chance(0.15) {
                p.spec.namespace_selector = self.rng.pick(NAMESPACE_SELECTORS).to_string();
            }
            p.spec.types = types;
            p.spec.ingress = ingress;
            p.spec.egress = egress;
            p.into()
        }
    }

    /// One random change, recorded, and the updates that make it.
    pub fn change(&mut self) -> Vec<Update> {
        let policies: Vec<String> = self
            .resources
            .keys()
            .filter(|k| k.starts_with("policy/"))
            .cloned()
            .collect();
        match self.rng.below(20) {
            0..=7 if !policies.is_empty() => {
                let id = self.rng.pick(&policies).clone();
                let n: usize = id["policy/".len()..].parse().expect("policy id");
                let update = self.policy(n);
                let old = self.resources.insert(id, update.clone()).expect("listed");
                // The replacement may be of another kind or tier, so another
                // resource: then the old one goes.
                let mut out = Vec::new();
                if policy_delete(&old) != policy_delete(&update) {
                    out.push(policy_delete(&old));
                }
                out.push(update);
                out
            }
            8..=11 if policies.len() > 1 => {
                let id = self.rng.pick(&policies).clone();
                let old = self.resources.remove(&id).expect("listed");
                vec![policy_delete(&old)]
            }
            12..=13 => {
                let (name, order) = *self.rng.pick(&CUSTOM_TIERS);
                let tier = self.tier(name, order);
                self.put(format!("tier/{name}"), tier.clone());
                vec![tier]
            }
            14..=16 => {
                let i = self.rng.below(self.pods.len());
                let labels = self.pod_labels();
                let pod = &mut self.pods[i];
                pod.endpoint.metadata.labels = labels;
                let update: Update = pod.endpoint.clone().into();
                self.put(format!("pod/{i}"), update.clone());
                vec![update]
            }
            _ => {
                let (id, update) = self.new_policy();
                self.put(id, update.clone());
                vec![update]
            }
        }
    }
}

/// The delete of a policy upsert.
fn policy_delete(update: &Update) -> Update {
    match update {
        Update::NetworkPolicy(p) => Update::DeleteNetworkPolicy {
            namespace: p.metadata.namespace.clone(),
            name: p.metadata.name.clone(),
        },
        Update::GlobalNetworkPolicy(p) => Update::DeleteGlobalNetworkPolicy {
            name: p.metadata.name.clone(),
        },
        other => unreachable!("not a policy: {other:?}"),
    }
}
