//! Kubernetes `networking.k8s.io/v1` NetworkPolicy → Calico NetworkPolicy,
//! exactly as Calico converts it.
//!
//! Two entry points, because Calico has two callers:
//! - [`convert`] is libcalico-go's conversion (what Felix sees in Kubernetes
//!   datastore mode): the name is kept and the uid is derived from the
//!   Kubernetes one.
//! - [`convert_for_etcd`] is kube-controllers' conversion (what is stored in
//!   etcd mode): the name becomes `knp.default.<name>` and only name and
//!   namespace are kept in the metadata.
//!
//! Both put the policy in the `default` tier at order 1000, prefix pod
//! selectors with `projectcalico.org/orchestrator == 'k8s'`, default the
//! protocol of a port to TCP, turn `ipBlock.except` into `notNets`, merge
//! ports per protocol into the fewest ranges, and default `policyTypes` to
//! `[Ingress]`. A rule whose port cannot be parsed is dropped and reported in
//! [`Converted::dropped_rules`]; the rest of the policy is still converted.

use std::collections::BTreeMap;
use std::fmt;

use calico_model::k8s::{
    IpBlock, LabelSelector, LabelSelectorOperator, NetworkPolicy as K8sNetworkPolicy,
    NetworkPolicyPeer, NetworkPolicyPort,
};
use calico_model::numorstring::PROTOCOL_NAMES;
use calico_model::{
    Action, EntityRule, NetworkPolicy, NetworkPolicySpec, ObjectMeta, PolicyType, Port, Protocol,
    Rule,
};

/// Prefix kube-controllers gives Kubernetes policies stored in etcd, so they
/// cannot clash with Calico NetworkPolicies of the same name.
pub const ETCD_NAME_PREFIX: &str = "knp.default.";

/// The order Calico gives every converted Kubernetes policy.
pub const KNP_ORDER: f64 = 1000.0;

/// Label every Kubernetes workload endpoint carries, used to scope pod
/// selectors to Kubernetes pods.
pub const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";

/// A converted policy and the rules that had to be left out.
#[derive(Debug, Clone, PartialEq)]
pub struct Converted {
    pub policy: NetworkPolicy,
    pub dropped_rules: Vec<DroppedRule>,
}

/// Which list a Kubernetes rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Direction {
    Ingress,
    Egress,
}

impl fmt::Display for Direction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Direction::Ingress => "ingress",
            Direction::Egress => "egress",
        })
    }
}

/// A Kubernetes rule that could not be converted and was left out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{direction} rule {index} of policy {policy}: {reason}")]
pub struct DroppedRule {
    pub policy: String,
    pub direction: Direction,
    /// Index in the Kubernetes policy's `ingress` or `egress` list.
    pub index: usize,
    /// Calico's wording, e.g. `k8s rule couldn't be converted: failed to
    /// parse k8s port: invalid port -50:-1: invalid name for named port
    /// (-50:-1)`.
    pub reason: String,
}

/// A policy that could not be converted at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    #[error("policy {namespace}/{name}: failed to parse UID for resource: {uid:?} is not a UUID")]
    Uid {
        namespace: String,
        name: String,
        uid: String,
    },
}

/// Which kind of Kubernetes label selector is being converted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SelectorKind {
    /// Pod selectors are scoped to Kubernetes pods.
    Pod,
    /// Namespace selectors match namespace labels; empty means all
    /// namespaces, absent means the policy's own.
    Namespace,
}

/// libcalico-go's conversion: keeps the Kubernetes name.
pub fn convert(np: &K8sNetworkPolicy) -> Result<Converted, ConversionError> {
    let (spec, dropped_rules) = convert_spec(np);
    let uid = if np.metadata.uid.is_empty() {
        String::new()
    } else {
        convert_uid(&np.metadata.uid).ok_or_else(|| ConversionError::Uid {
            namespace: np.metadata.namespace.clone(),
            name: np.metadata.name.clone(),
            uid: np.metadata.uid.clone(),
        })?
    };
    let metadata = ObjectMeta {
        name: np.metadata.name.clone(),
        namespace: np.metadata.namespace.clone(),
        creation_timestamp: np.metadata.creation_timestamp.clone(),
        uid,
        resource_version: np.metadata.resource_version.clone(),
        ..ObjectMeta::default()
    };
    Ok(Converted {
        policy: NetworkPolicy { metadata, spec },
        dropped_rules,
    })
}

/// kube-controllers' conversion for etcd: `knp.default.<name>`, only name
/// and namespace in the metadata.
pub fn convert_for_etcd(np: &K8sNetworkPolicy) -> Result<Converted, ConversionError> {
    let mut converted = convert(np)?;
    converted.policy.metadata = ObjectMeta {
        name: format!("{ETCD_NAME_PREFIX}{}", np.metadata.name),
        namespace: np.metadata.namespace.clone(),
        ..ObjectMeta::default()
    };
    Ok(converted)
}

fn convert_spec(np: &K8sNetworkPolicy) -> (NetworkPolicySpec, Vec<DroppedRule>) {
    let mut dropped = Vec::new();
    let mut ingress = Vec::new();
    for (index, r) in np.spec.ingress.iter().enumerate() {
        match rule_to_calico(&r.from, &r.ports, Direction::Ingress) {
            Ok(rules) => ingress.extend(rules),
            Err(reason) => dropped.push(DroppedRule {
                policy: np.metadata.name.clone(),
                direction: Direction::Ingress,
                index,
                reason,
            }),
        }
    }
    let mut egress = Vec::new();
    for (index, r) in np.spec.egress.iter().enumerate() {
        match rule_to_calico(&r.to, &r.ports, Direction::Egress) {
            Ok(rules) => egress.extend(rules),
            Err(reason) => dropped.push(DroppedRule {
                policy: np.metadata.name.clone(),
                direction: Direction::Egress,
                index,
                reason,
            }),
        }
    }

    let has = |t: &str| np.spec.policy_types.iter().any(|p| p == t);
    let mut types = Vec::new();
    if has("Ingress") {
        types.push(PolicyType::Ingress);
    }
    if has("Egress") {
        types.push(PolicyType::Egress);
    }
    // Clusters that predate policyTypes only had ingress policy.
    if types.is_empty() {
        types.push(PolicyType::Ingress);
    }

    let spec = NetworkPolicySpec {
        tier: calico_model::policy::DEFAULT_TIER_NAME.to_string(),
        order: Some(KNP_ORDER),
        ingress,
        egress,
        selector: k8s_selector_to_calico(Some(&np.spec.pod_selector), SelectorKind::Pod),
        types,
        ..NetworkPolicySpec::default()
    };
    (spec, dropped)
}

/// Converts a Kubernetes label selector to Calico selector text, as Calico
/// does (matchLabels in key order, then matchExpressions in order).
pub fn k8s_selector_to_calico(selector: Option<&LabelSelector>, kind: SelectorKind) -> String {
    let mut terms = Vec::new();
    if kind == SelectorKind::Pod {
        terms.push(format!("{ORCHESTRATOR_LABEL} == 'k8s'"));
    }
    let Some(s) = selector else {
        return terms.join(" && ");
    };
    // A present but empty namespace selector means "every namespace"; the
    // empty string is kept for "no namespace selector".
    if kind == SelectorKind::Namespace
        && s.match_labels.is_empty()
        && s.match_expressions.is_empty()
    {
        return "all()".to_string();
    }
    for (k, v) in &s.match_labels {
        terms.push(format!("{k} == '{v}'"));
    }
    for e in &s.match_expressions {
        let values = e.values.join("', '");
        terms.push(match e.operator {
            LabelSelectorOperator::In => format!("{} in {{ '{values}' }}", e.key),
            LabelSelectorOperator::NotIn => format!("{} not in {{ '{values}' }}", e.key),
            LabelSelectorOperator::Exists => format!("has({})", e.key),
            LabelSelectorOperator::DoesNotExist => format!("! has({})", e.key),
        });
    }
    terms.join(" && ")
}

/// One Kubernetes rule becomes one Calico rule per (protocol, peer):
/// protocols in sorted order, peers in the order given.
fn rule_to_calico(
    peers: &[NetworkPolicyPeer],
    ports: &[NetworkPolicyPort],
    direction: Direction,
) -> Result<Vec<Rule>, String> {
    // `None` stands for "no peers" / "no ports", which match everything.
    let peers: Vec<Option<&NetworkPolicyPeer>> = if peers.is_empty() {
        vec![None]
    } else {
        peers.iter().map(Some).collect()
    };
    let ports: Vec<Option<&NetworkPolicyPort>> = if ports.is_empty() {
        vec![None]
    } else {
        ports.iter().map(Some).collect()
    };

    // Protocol text ("" when no port was given at all) → ports, where
    // `None` means every port of that protocol.
    let mut protocol_ports: BTreeMap<String, Option<Vec<Port>>> = BTreeMap::new();
    for port in ports {
        let Some(port) = port else {
            protocol_ports = BTreeMap::from([(String::new(), None)]);
            break;
        };
        // TCP is the implicit default of NetworkPolicyPort; Calico needs it
        // explicit to match ports.
        let protocol = protocol_from_string(port.protocol.as_deref().unwrap_or("TCP")).to_string();
        let calico_ports = k8s_port_to_calico(port).map_err(|e| {
            format!("k8s rule couldn't be converted: failed to parse k8s port: {e}")
        })?;
        match calico_ports {
            None => {
                protocol_ports.insert(protocol, None);
            }
            Some(p) => match protocol_ports.get_mut(&protocol) {
                // Already "every port": adding specific ports changes nothing.
                Some(None) => {}
                Some(Some(existing)) => existing.push(p),
                None => {
                    protocol_ports.insert(protocol, Some(vec![p]));
                }
            },
        }
    }

    let mut rules = Vec::new();
    for (protocol, ports) in protocol_ports {
        let ports = ports.map(|p| simplify_ports(&p)).unwrap_or_default();
        let protocol = (!protocol.is_empty()).then(|| protocol_from_string(&protocol));
        for peer in &peers {
            let peer_match = peer_to_entity(*peer);
            let mut rule = Rule::new(Action::Allow);
            rule.protocol = protocol.clone();
            match direction {
                Direction::Ingress => {
                    rule.source = peer_match;
                    rule.destination.ports = ports.clone();
                }
                Direction::Egress => {
                    rule.destination = peer_match;
                    rule.destination.ports = ports.clone();
                }
            }
            rules.push(rule);
        }
    }
    Ok(rules)
}

fn peer_to_entity(peer: Option<&NetworkPolicyPeer>) -> EntityRule {
    let mut er = EntityRule::default();
    let Some(peer) = peer else {
        return er;
    };
    if let Some(block) = &peer.ip_block {
        // An ipBlock excludes the selectors.
        let (nets, not_nets) = ip_block_nets(block);
        er.nets = nets;
        er.not_nets = not_nets;
        return er;
    }
    er.selector = k8s_selector_to_calico(peer.pod_selector.as_ref(), SelectorKind::Pod);
    er.namespace_selector =
        k8s_selector_to_calico(peer.namespace_selector.as_ref(), SelectorKind::Namespace);
    er
}

/// The block's CIDR and exceptions, masked to their network address. As in
/// Calico, a CIDR that does not parse stops the conversion of the block
/// where it is (Kubernetes validation makes this unreachable in practice).
fn ip_block_nets(block: &IpBlock) -> (Vec<String>, Vec<String>) {
    let Some(cidr) = parse_cidr(&block.cidr) else {
        return (Vec::new(), Vec::new());
    };
    let nets = vec![cidr];
    let mut not_nets = Vec::new();
    for e in &block.except {
        match parse_cidr(e) {
            Some(n) => not_nets.push(n),
            None => break,
        }
    }
    (nets, not_nets)
}

fn parse_cidr(s: &str) -> Option<String> {
    s.parse::<ipnet::IpNet>()
        .ok()
        .map(|n| n.trunc().to_string())
}

/// The port (or `port:endPort` range) of a Kubernetes policy port; `None`
/// when no port is given (every port of the protocol).
fn k8s_port_to_calico(port: &NetworkPolicyPort) -> Result<Option<Port>, String> {
    let Some(p) = &port.port else {
        return Ok(None);
    };
    let mut text = p.to_string();
    if let Some(end) = port.end_port {
        text = format!("{text}:{end}");
    }
    port_from_string(&text)
        .map(Some)
        .map_err(|e| format!("invalid port {text}: {e}"))
}

/// Parses Calico's port text (`80`, `80:90`, `http`) with Calico's error
/// messages.
pub fn port_from_string(s: &str) -> Result<Port, String> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if digits(s) {
        return s
            .parse::<u16>()
            .map(Port::single)
            .map_err(|_| format!("invalid port format ({s})"));
    }
    if let Some((lo, hi)) = s.split_once(':') {
        if digits(lo) && digits(hi) {
            let min = lo
                .parse::<u16>()
                .map_err(|_| format!("invalid minimum port number in range ({s})"))?;
            let max = hi
                .parse::<u16>()
                .map_err(|_| format!("invalid maximum port number in range ({s})"))?;
            if min > max {
                return Err(format!(
                    "minimum port number ({min}) is greater than maximum port number ({max}) in port range"
                ));
            }
            return Ok(Port::Range { min, max });
        }
    }
    if calico_model::numorstring::is_port_name(s) {
        Ok(Port::Named(s.to_string()))
    } else {
        Err(format!("invalid name for named port ({s})"))
    }
}

/// Calico's protocol from text: a known name in its canonical spelling
/// (matched case-insensitively), otherwise the text unchanged.
pub fn protocol_from_string(s: &str) -> Protocol {
    PROTOCOL_NAMES
        .iter()
        .find(|n| n.eq_ignore_ascii_case(s))
        .map_or_else(
            || Protocol::Name(s.to_string()),
            |n| Protocol::Name((*n).to_string()),
        )
}

/// The fewest port ranges covering the given ports, named ports first in
/// their original order. Returns the input unchanged when there is nothing
/// to merge, as Calico does.
pub fn simplify_ports(ports: &[Port]) -> Vec<Port> {
    if ports.len() <= 1 {
        return ports.to_vec();
    }
    let mut out: Vec<Port> = Vec::new();
    let mut numeric: Vec<u32> = Vec::new();
    for p in ports {
        match p {
            Port::Named(_) => out.push(p.clone()),
            Port::Range { min, max } => numeric.extend(u32::from(*min)..=u32::from(*max)),
        }
    }
    if numeric.len() <= 1 {
        return ports.to_vec();
    }
    numeric.sort_unstable();
    let mut i = 0;
    while i < numeric.len() {
        let first = numeric[i];
        let mut last = first;
        i += 1;
        while i < numeric.len() && numeric[i] <= last + 1 {
            last = numeric[i];
            i += 1;
        }
        out.push(Port::Range {
            min: first as u16,
            max: last as u16,
        });
    }
    out
}

/// Derives a policy's uid from its Kubernetes uid as Calico does: every
/// byte's bits reversed, except the UUID version and variant bytes. `None`
/// when the input is not a UUID.
pub fn convert_uid(uid: &str) -> Option<String> {
    let s = uid
        .strip_prefix("urn:uuid:")
        .or_else(|| uid.strip_prefix('{').and_then(|u| u.strip_suffix('}')))
        .unwrap_or(uid);
    let hex: String = match s.len() {
        36 => {
            let b = s.as_bytes();
            if [8, 13, 18, 23].iter().any(|&i| b[i] != b'-') {
                return None;
            }
            s.chars().filter(|&c| c != '-').collect()
        }
        32 => s.to_string(),
        _ => return None,
    };
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    let mut out = bytes.map(u8::reverse_bits);
    out[6] = bytes[6];
    out[8] = bytes[8];
    let h: String = out.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uid_bits_reversed_except_version_and_variant() {
        let out = convert_uid("30316465-6365-4463-ad63-3564622d3638").unwrap();
        // 0x30 reversed is 0x0c; byte 6 (0x44) and byte 8 (0xad) kept.
        assert!(out.starts_with("0c8c"), "{out}");
        assert_eq!(&out[14..16], "44");
        assert_eq!(&out[19..21], "ad");
        // Reversing twice gives the original back.
        assert_eq!(
            convert_uid(&out).unwrap(),
            "30316465-6365-4463-ad63-3564622d3638"
        );
        assert_eq!(convert_uid("not-a-uuid"), None);
    }

    #[test]
    fn port_strings() {
        let cases: &[(&str, Result<Port, &str>)] = &[
            ("80", Ok(Port::single(80))),
            ("80:90", Ok(Port::Range { min: 80, max: 90 })),
            ("http", Ok(Port::Named("http".into()))),
            ("70000", Err("invalid port format (70000)")),
            (
                "90:80",
                Err(
                    "minimum port number (90) is greater than maximum port number (80) in port range",
                ),
            ),
            (
                "1:70000",
                Err("invalid maximum port number in range (1:70000)"),
            ),
            ("-50:-1", Err("invalid name for named port (-50:-1)")),
        ];
        for (input, expect) in cases {
            assert_eq!(
                port_from_string(input),
                expect.clone().map_err(str::to_string),
                "{input}"
            );
        }
    }

    #[test]
    fn protocol_names_are_canonicalised() {
        assert_eq!(protocol_from_string("tcp"), Protocol::Name("TCP".into()));
        assert_eq!(
            protocol_from_string("icmpv6"),
            Protocol::Name("ICMPv6".into())
        );
        assert_eq!(
            protocol_from_string("weird"),
            Protocol::Name("weird".into())
        );
    }
}
