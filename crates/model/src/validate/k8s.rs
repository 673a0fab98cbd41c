//! Kubernetes NetworkPolicy (and Calico's staged form of it), checked as
//! the Kubernetes API server checks it.

use super::Collector;
use crate::k8s::{
    self, LabelSelector, LabelSelectorOperator, NetworkPolicyPeer, NetworkPolicyPort,
};
use crate::net::parse_cidr;
use crate::numorstring::IntOrString;
use crate::policy::{StagedAction, StagedKubernetesNetworkPolicySpec};

pub(super) fn staged_kubernetes_network_policy(
    c: &mut Collector,
    s: &StagedKubernetesNetworkPolicySpec,
) {
    if s.staged_action == Some(StagedAction::Delete) {
        let empty = StagedKubernetesNetworkPolicySpec {
            staged_action: s.staged_action,
            ..Default::default()
        };
        if *s != empty {
            c.err(
                "spec",
                "Spec fields should all be zero-value if stagedAction is Delete",
            );
        }
        return;
    }
    k8s_spec(c, &s.pod_selector, &s.ingress, &s.egress, &s.policy_types);
}

fn label_selector(c: &mut Collector, path: &str, s: &LabelSelector) {
    c.labels(&format!("{path}.matchLabels"), &s.match_labels);
    for (i, e) in s.match_expressions.iter().enumerate() {
        let ep = format!("{path}.matchExpressions[{i}]");
        if !super::is_qualified_name(&e.key) {
            c.err(
                format!("{ep}.key"),
                format!("invalid label key {:?}", e.key),
            );
        }
        match e.operator {
            LabelSelectorOperator::In | LabelSelectorOperator::NotIn if e.values.is_empty() => c
                .err(
                    format!("{ep}.values"),
                    "must be specified when `operator` is 'In' or 'NotIn'",
                ),
            LabelSelectorOperator::Exists | LabelSelectorOperator::DoesNotExist
                if !e.values.is_empty() =>
            {
                c.err(
                    format!("{ep}.values"),
                    "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
                )
            }
            _ => {}
        }
    }
}

fn k8s_port(c: &mut Collector, path: &str, p: &NetworkPolicyPort) {
    if let Some(proto) = &p.protocol {
        c.one_of(&format!("{path}.protocol"), proto, &["TCP", "UDP", "SCTP"]);
    }
    match &p.port {
        Some(IntOrString::Int(n)) => {
            c.range(&format!("{path}.port"), i64::from(*n), 1, 65535);
            if let Some(end) = p.end_port {
                if end < *n {
                    c.err(
                        format!("{path}.endPort"),
                        "must be greater than or equal to `port`",
                    );
                }
                c.range(&format!("{path}.endPort"), i64::from(end), 1, 65535);
            }
        }
        Some(IntOrString::String(name)) => {
            if !super::is_k8s_port_name(name) {
                c.err(
                    format!("{path}.port"),
                    format!("invalid port name {name:?}"),
                );
            }
            if p.end_port.is_some() {
                c.err(
                    format!("{path}.endPort"),
                    "may not be specified when `port` is non-numeric",
                );
            }
        }
        None => {
            if p.end_port.is_some() {
                c.err(
                    format!("{path}.endPort"),
                    "may not be specified when `port` is not specified",
                );
            }
        }
    }
}

fn k8s_peer(c: &mut Collector, path: &str, p: &NetworkPolicyPeer) {
    let set = [
        p.pod_selector.is_some(),
        p.namespace_selector.is_some(),
        p.ip_block.is_some(),
    ];
    if set.iter().all(|s| !s) {
        c.err(path, "must specify a peer");
    }
    if p.ip_block.is_some() && (p.pod_selector.is_some() || p.namespace_selector.is_some()) {
        c.err(
            path,
            "may not specify more than 1 peer type when ipBlock is set",
        );
    }
    if let Some(s) = &p.pod_selector {
        label_selector(c, &format!("{path}.podSelector"), s);
    }
    if let Some(s) = &p.namespace_selector {
        label_selector(c, &format!("{path}.namespaceSelector"), s);
    }
    if let Some(b) = &p.ip_block {
        let bp = format!("{path}.ipBlock");
        match parse_cidr(&b.cidr) {
            None => c.err(format!("{bp}.cidr"), format!("invalid CIDR {:?}", b.cidr)),
            Some((_, net)) => {
                for (i, e) in b.except.iter().enumerate() {
                    match parse_cidr(e) {
                        None => c.err(format!("{bp}.except[{i}]"), format!("invalid CIDR {e:?}")),
                        Some((_, ex)) => {
                            if !net.contains(&ex) || ex.prefix_len() <= net.prefix_len() {
                                c.err(
                                    format!("{bp}.except[{i}]"),
                                    "must be a strict subset of `cidr`",
                                );
                            }
                        }
                    }
                }
            }
        }
    }
}

fn k8s_spec(
    c: &mut Collector,
    pod_selector: &LabelSelector,
    ingress: &[k8s::NetworkPolicyIngressRule],
    egress: &[k8s::NetworkPolicyEgressRule],
    types: &[String],
) {
    label_selector(c, "spec.podSelector", pod_selector);
    for (i, r) in ingress.iter().enumerate() {
        for (j, p) in r.ports.iter().enumerate() {
            k8s_port(c, &format!("spec.ingress[{i}].ports[{j}]"), p);
        }
        for (j, p) in r.from.iter().enumerate() {
            k8s_peer(c, &format!("spec.ingress[{i}].from[{j}]"), p);
        }
    }
    for (i, r) in egress.iter().enumerate() {
        for (j, p) in r.ports.iter().enumerate() {
            k8s_port(c, &format!("spec.egress[{i}].ports[{j}]"), p);
        }
        for (j, p) in r.to.iter().enumerate() {
            k8s_peer(c, &format!("spec.egress[{i}].to[{j}]"), p);
        }
    }
    for (i, t) in types.iter().enumerate() {
        c.one_of(&format!("spec.policyTypes[{i}]"), t, &["Ingress", "Egress"]);
    }
    if types.len() > 2 {
        c.err("spec.policyTypes", "may not have more than 2 entries");
    }
}

pub(super) fn kubernetes_network_policy(c: &mut Collector, s: &k8s::NetworkPolicySpec) {
    k8s_spec(c, &s.pod_selector, &s.ingress, &s.egress, &s.policy_types);
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::{Value, json};

    #[test]
    fn kubernetes_policies() {
        let knp = |spec: Value| json!({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": "k", "namespace": "ns"}, "spec": spec});
        run(&[
            (
                "deny all",
                knp(json!({"podSelector": {}, "policyTypes": ["Ingress"]})),
                None,
            ),
            (
                "full",
                knp(
                    json!({"podSelector": {"matchLabels": {"app": "db"}}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}}], "ports": [{"protocol": "TCP", "port": 5432}, {"port": 8000, "endPort": 8100}]}]}),
                ),
                None,
            ),
            (
                "bad protocol",
                knp(json!({"ingress": [{"ports": [{"protocol": "ICMP"}]}]})),
                Some("spec.ingress[0].ports[0].protocol"),
            ),
            (
                "endPort below port",
                knp(json!({"egress": [{"ports": [{"port": 90, "endPort": 80}]}]})),
                Some("spec.egress[0].ports[0].endPort"),
            ),
            (
                "except outside",
                knp(
                    json!({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16", "except": ["192.168.0.0/24"]}}]}]}),
                ),
                Some("strict subset"),
            ),
            (
                "in without values",
                knp(json!({"podSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}})),
                Some("spec.podSelector.matchExpressions[0].values"),
            ),
            (
                "bad policy type",
                knp(json!({"policyTypes": ["Sideways"]})),
                Some("spec.policyTypes[0]"),
            ),
            (
                "empty peer",
                knp(json!({"ingress": [{"from": [{}]}]})),
                Some("spec.ingress[0].from[0]: must specify a peer"),
            ),
        ]);
    }
}
