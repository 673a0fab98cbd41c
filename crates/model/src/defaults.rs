//! Defaults Calico fills in when a resource is created or updated: those
//! its client library sets in code and those its CRD schemas declare (which
//! Calico also applies in etcd mode). Applying them twice changes nothing.

use std::collections::BTreeMap;

use crate::endpoint::{LABEL_NAMESPACE, LABEL_ORCHESTRATOR};
use crate::ippool::{AssignmentMode, EncapMode, IpPool, IpPoolAllowedUse};
use crate::meta::ObjectMeta;
use crate::net::parse_cidr;
use crate::policy::{DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER, StagedAction};
use crate::resource::AnyResource;
use crate::rule::{Action, PolicyType, Rule};

/// Label Calico puts on every policy naming its tier.
pub const LABEL_TIER: &str = "projectcalico.org/tier";

fn policy_types(ingress: &[Rule], egress: &[Rule], types: &mut Vec<PolicyType>) {
    if types.is_empty() {
        *types = match (ingress.is_empty(), egress.is_empty()) {
            (_, true) => vec![PolicyType::Ingress],
            (true, false) => vec![PolicyType::Egress],
            (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
        };
    }
}

fn tier(meta: &mut ObjectMeta, tier: &mut String) {
    if tier.is_empty() {
        *tier = DEFAULT_TIER_NAME.to_string();
    }
    meta.labels.insert(LABEL_TIER.to_string(), tier.clone());
}

fn set_if_none(field: &mut Option<String>, value: &str) {
    if field.is_none() {
        *field = Some(value.to_string());
    }
}

fn set_if_empty(field: &mut String, value: &str) {
    if field.is_empty() {
        *field = value.to_string();
    }
}

fn ip_pool(p: &mut IpPool) {
    let s = &mut p.spec;
    let parsed = parse_cidr(&s.cidr);
    if let Some((addr, net)) = parsed {
        // Only the spelling is normalised; a CIDR with host bits set is left
        // for validation to reject, as Calico does.
        if addr == net.network() {
            s.cidr = net.to_string();
        }
        if s.block_size == 0 {
            s.block_size = if net.addr().is_ipv4() { 26 } else { 122 };
        }
    }
    set_if_empty(&mut s.node_selector, "all()");
    if s.allowed_uses.is_empty() {
        s.allowed_uses = vec![IpPoolAllowedUse::Workload, IpPoolAllowedUse::Tunnel];
    }
    s.assignment_mode.get_or_insert(AssignmentMode::Automatic);
    s.ipip_mode.get_or_insert(EncapMode::Never);
    s.vxlan_mode.get_or_insert(EncapMode::Never);
}

impl AnyResource {
    /// Fills in what Calico fills in on create and update (see each kind's
    /// notes in the crate docs): IPPool block size, encapsulation modes,
    /// node selector and allowed uses; policy tier, types and tier label;
    /// tier order and default action; workload endpoint name and labels;
    /// and the CRD schema defaults.
    pub fn apply_defaults(&mut self) {
        match self {
            AnyResource::IpPool(p) => ip_pool(p),
            AnyResource::NetworkPolicy(p) => {
                policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
                tier(&mut p.metadata, &mut p.spec.tier);
            }
            AnyResource::GlobalNetworkPolicy(p) => {
                policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
                tier(&mut p.metadata, &mut p.spec.tier);
            }
            AnyResource::StagedNetworkPolicy(p) => {
                p.spec.staged_action.get_or_insert(StagedAction::Set);
                policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
                tier(&mut p.metadata, &mut p.spec.tier);
            }
            AnyResource::StagedGlobalNetworkPolicy(p) => {
                p.spec.staged_action.get_or_insert(StagedAction::Set);
                policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
                tier(&mut p.metadata, &mut p.spec.tier);
            }
            AnyResource::StagedKubernetesNetworkPolicy(p) => {
                p.spec.staged_action.get_or_insert(StagedAction::Set);
            }
            AnyResource::Tier(t) => {
                t.spec.order.get_or_insert(DEFAULT_TIER_ORDER);
                t.spec.default_action.get_or_insert(Action::Deny);
            }
            AnyResource::BgpConfiguration(b) => {
                set_if_empty(&mut b.spec.log_severity_screen, "Info");
                set_if_none(&mut b.spec.service_load_balancer_aggregation, "Enabled");
            }
            AnyResource::FelixConfiguration(f) => {
                let s = &mut f.spec;
                set_if_none(&mut s.floating_ips, "Disabled");
                set_if_none(&mut s.bpf_connect_time_load_balancing, "TCP");
                set_if_none(&mut s.bpf_host_networked_nat_without_ctlb, "Enabled");
                // The legacy boolean, when given, decides both newer fields.
                if let Some(enabled) = s.bpf_connect_time_load_balancing_enabled {
                    s.bpf_host_networked_nat_without_ctlb = Some("Disabled".into());
                    s.bpf_connect_time_load_balancing =
                        Some(if enabled { "Enabled" } else { "Disabled" }.into());
                }
                set_if_none(&mut s.nftables_mode, "Auto");
                set_if_none(&mut s.nftables_flow_table_offload, "Disabled");
            }
            AnyResource::KubeControllersConfiguration(k) => {
                let s = &mut k.spec;
                s.prometheus_metrics_port.get_or_insert(9094);
                set_if_empty(&mut s.health_checks, "Enabled");
                if let Some(n) = &mut s.controllers.node {
                    set_if_none(&mut n.leak_grace_period, "15m0s");
                }
                if let Some(lb) = &mut s.controllers.load_balancer {
                    set_if_empty(&mut lb.assign_ips, "AllServices");
                }
                if let Some(m) = &mut s.controllers.migration {
                    set_if_empty(&mut m.policy_name_migrator, "Enabled");
                }
            }
            AnyResource::WorkloadEndpoint(w) => {
                if w.metadata.name.is_empty() {
                    if let Ok(name) = w.spec.expected_name() {
                        w.metadata.name = name;
                    }
                }
                let labels: &mut BTreeMap<String, String> = &mut w.metadata.labels;
                labels.insert(LABEL_NAMESPACE.into(), w.metadata.namespace.clone());
                labels.insert(LABEL_ORCHESTRATOR.into(), w.spec.orchestrator.clone());
            }
            AnyResource::BgpFilter(_)
            | AnyResource::BgpPeer(_)
            | AnyResource::CalicoNodeStatus(_)
            | AnyResource::ClusterInformation(_)
            | AnyResource::GlobalNetworkSet(_)
            | AnyResource::HostEndpoint(_)
            | AnyResource::IpamConfiguration(_)
            | AnyResource::IpReservation(_)
            | AnyResource::NetworkSet(_)
            | AnyResource::Node(_)
            | AnyResource::Profile(_)
            | AnyResource::KubernetesNetworkPolicy(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use crate::resource::AnyResource;

    /// Applies defaults to `input` and compares the whole JSON with `want`;
    /// then applies them again to show nothing more changes.
    fn check(cases: &[(&str, Value, Value)]) {
        for (what, input, want) in cases {
            let mut r = AnyResource::from_json_value(input.clone()).unwrap();
            r.apply_defaults();
            let got = r.to_json_value();
            let want_r = AnyResource::from_json_value(want.clone()).unwrap();
            assert_eq!(got, want_r.to_json_value(), "{what}");
            let mut again = r.clone();
            again.apply_defaults();
            assert_eq!(again, r, "{what}: defaults are not idempotent");
        }
    }

    const V3: &str = "projectcalico.org/v3";

    #[test]
    fn ip_pool_defaults() {
        check(&[
            (
                "v4",
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "192.168.0.0/16"}}),
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "192.168.0.0/16",
                    "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 26, "nodeSelector": "all()",
                    "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}}),
            ),
            (
                "v6 spelling normalised",
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "fd00:0:0::/48", "vxlanMode": "Always", "allowedUses": ["Workload"]}}),
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "fd00::/48",
                    "vxlanMode": "Always", "ipipMode": "Never", "blockSize": 122, "nodeSelector": "all()",
                    "allowedUses": ["Workload"], "assignmentMode": "Automatic"}}),
            ),
            (
                "host bits left alone",
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.1/16", "blockSize": 24}}),
                json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.1/16",
                    "vxlanMode": "Never", "ipipMode": "Never", "blockSize": 24, "nodeSelector": "all()",
                    "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}}),
            ),
        ]);
    }

    #[test]
    fn policy_defaults() {
        check(&[
            (
                "np ingress only",
                json!({"apiVersion": V3, "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "ns"},
                    "spec": {"ingress": [{"action": "Allow"}]}}),
                json!({"apiVersion": V3, "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "ns", "labels": {"projectcalico.org/tier": "default"}},
                    "spec": {"tier": "default", "ingress": [{"action": "Allow"}], "types": ["Ingress"]}}),
            ),
            (
                "gnp egress only in a tier",
                json!({"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "security.p"},
                    "spec": {"tier": "security", "egress": [{"action": "Deny"}]}}),
                json!({"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "security.p", "labels": {"projectcalico.org/tier": "security"}},
                    "spec": {"tier": "security", "egress": [{"action": "Deny"}], "types": ["Egress"]}}),
            ),
            (
                "both directions, staged",
                json!({"apiVersion": V3, "kind": "StagedNetworkPolicy", "metadata": {"name": "p", "namespace": "ns"},
                    "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}}),
                json!({"apiVersion": V3, "kind": "StagedNetworkPolicy", "metadata": {"name": "p", "namespace": "ns", "labels": {"projectcalico.org/tier": "default"}},
                    "spec": {"stagedAction": "Set", "tier": "default", "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}], "types": ["Ingress", "Egress"]}}),
            ),
            (
                "explicit types kept",
                json!({"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "p"}, "spec": {"types": ["Egress"]}}),
                json!({"apiVersion": V3, "kind": "GlobalNetworkPolicy", "metadata": {"name": "p", "labels": {"projectcalico.org/tier": "default"}},
                    "spec": {"tier": "default", "types": ["Egress"]}}),
            ),
            (
                "tier",
                json!({"apiVersion": V3, "kind": "Tier", "metadata": {"name": "security"}}),
                json!({"apiVersion": V3, "kind": "Tier", "metadata": {"name": "security"}, "spec": {"order": 1000000, "defaultAction": "Deny"}}),
            ),
        ]);
    }

    #[test]
    fn config_and_endpoint_defaults() {
        check(&[
            (
                "felix",
                json!({"apiVersion": V3, "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": {"bpfConnectTimeLoadBalancingEnabled": true}}),
                json!({"apiVersion": V3, "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": {
                    "bpfConnectTimeLoadBalancingEnabled": true, "bpfConnectTimeLoadBalancing": "Enabled",
                    "bpfHostNetworkedNATWithoutCTLB": "Disabled", "floatingIPs": "Disabled",
                    "nftablesMode": "Auto", "nftablesFlowTableOffload": "Disabled"}}),
            ),
            (
                "bgp",
                json!({"apiVersion": V3, "kind": "BGPConfiguration", "metadata": {"name": "default"}}),
                json!({"apiVersion": V3, "kind": "BGPConfiguration", "metadata": {"name": "default"}, "spec": {"logSeverityScreen": "Info", "serviceLoadBalancerAggregation": "Enabled"}}),
            ),
            (
                "kube controllers",
                json!({"apiVersion": V3, "kind": "KubeControllersConfiguration", "metadata": {"name": "default"}, "spec": {"controllers": {"node": {}, "loadBalancer": {}}}}),
                json!({"apiVersion": V3, "kind": "KubeControllersConfiguration", "metadata": {"name": "default"}, "spec": {
                    "healthChecks": "Enabled", "prometheusMetricsPort": 9094,
                    "controllers": {"node": {"leakGracePeriod": "15m0s"}, "loadBalancer": {"assignIPs": "AllServices"}}}}),
            ),
            (
                "workload endpoint",
                json!({"apiVersion": V3, "kind": "WorkloadEndpoint", "metadata": {"namespace": "prod"},
                    "spec": {"orchestrator": "k8s", "node": "n1", "pod": "web-0", "endpoint": "eth0", "interfaceName": "cali1"}}),
                json!({"apiVersion": V3, "kind": "WorkloadEndpoint", "metadata": {"name": "n1-k8s-web--0-eth0", "namespace": "prod",
                    "labels": {"projectcalico.org/namespace": "prod", "projectcalico.org/orchestrator": "k8s"}},
                    "spec": {"orchestrator": "k8s", "node": "n1", "pod": "web-0", "endpoint": "eth0", "interfaceName": "cali1"}}),
            ),
        ]);
    }

    #[test]
    fn defaulted_resources_validate() {
        let docs = [
            json!({"apiVersion": V3, "kind": "Tier", "metadata": {"name": "default"}}),
            json!({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"}}),
            json!({"apiVersion": V3, "kind": "NetworkPolicy", "metadata": {"name": "p", "namespace": "ns"}, "spec": {"selector": "all()"}}),
        ];
        for d in docs {
            let mut r = AnyResource::from_json_value(d).unwrap();
            r.apply_defaults();
            r.validate().unwrap_or_else(|e| panic!("{}: {e}", r.kind()));
        }
    }
}
