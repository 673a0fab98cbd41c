//! Defaults Calico's client fills in: before a write (policy types, the
//! tier label, tier order and action, IP pool settings) and when reading
//! (IP pool settings older writers left out, the tier label).

use std::collections::BTreeMap;

use calico_model::ippool::{AssignmentMode, EncapMode, IpPoolAllowedUse, IpPoolSpec};
use calico_model::policy::{DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER};
use calico_model::resource::AnyResource;
use calico_model::rule::{Action, PolicyType, Rule};

/// Label Calico puts on every policy naming its tier.
pub const TIER_LABEL: &str = "projectcalico.org/tier";

/// Defaults applied before a resource is validated and written.
pub(crate) fn apply(resource: &mut AnyResource) {
    match resource {
        AnyResource::NetworkPolicy(p) => {
            policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
            tier_label(&mut p.metadata.labels, &p.spec.tier);
        }
        AnyResource::GlobalNetworkPolicy(p) => {
            policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
            tier_label(&mut p.metadata.labels, &p.spec.tier);
        }
        AnyResource::StagedNetworkPolicy(p) => {
            policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
            tier_label(&mut p.metadata.labels, &p.spec.tier);
        }
        AnyResource::StagedGlobalNetworkPolicy(p) => {
            policy_types(&p.spec.ingress, &p.spec.egress, &mut p.spec.types);
            tier_label(&mut p.metadata.labels, &p.spec.tier);
        }
        AnyResource::Tier(t) => {
            t.spec.order.get_or_insert(DEFAULT_TIER_ORDER);
            t.spec.default_action.get_or_insert(Action::Deny);
        }
        AnyResource::IpPool(p) => {
            canonical_cidr(&mut p.spec);
            ip_pool(&mut p.spec);
        }
        _ => {}
    }
}

/// What Calico's client adds to resources it reads.
pub(crate) fn on_read(resource: &mut AnyResource) {
    match resource {
        AnyResource::IpPool(p) => ip_pool(&mut p.spec),
        AnyResource::NetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::GlobalNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::StagedNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::StagedGlobalNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        _ => {}
    }
}

/// A policy without `types` applies to ingress, or to egress when it has
/// only egress rules, or to both when it has both.
fn policy_types(ingress: &[Rule], egress: &[Rule], types: &mut Vec<PolicyType>) {
    if !types.is_empty() {
        return;
    }
    *types = match (ingress.is_empty(), egress.is_empty()) {
        (_, true) => vec![PolicyType::Ingress],
        (true, false) => vec![PolicyType::Egress],
        (false, false) => vec![PolicyType::Ingress, PolicyType::Egress],
    };
}

fn tier_label(labels: &mut BTreeMap<String, String>, tier: &str) {
    let tier = if tier.is_empty() {
        DEFAULT_TIER_NAME
    } else {
        tier
    };
    labels.insert(TIER_LABEL.to_owned(), tier.to_owned());
}

fn default_tier_label(labels: &mut BTreeMap<String, String>) {
    labels
        .entry(TIER_LABEL.to_owned())
        .or_insert_with(|| DEFAULT_TIER_NAME.to_owned());
}

/// Writes the CIDR in its canonical text when it names a network exactly
/// (`fd00:0::/64` → `fd00::/64`); a CIDR with host bits is left for
/// validation to reject.
fn canonical_cidr(spec: &mut IpPoolSpec) {
    let Some((addr, net)) = calico_model::net::parse_cidr_or_ip(&spec.cidr) else {
        return;
    };
    if spec.cidr.contains('/') && addr == net.network() {
        spec.cidr = net.to_string();
    }
}

fn ip_pool(spec: &mut IpPoolSpec) {
    if spec.block_size == 0 {
        if let Some(net) = spec.network() {
            spec.block_size = if net.addr().is_ipv4() { 26 } else { 122 };
        }
    }
    if spec.allowed_uses.is_empty() {
        spec.allowed_uses = vec![IpPoolAllowedUse::Workload, IpPoolAllowedUse::Tunnel];
    }
    if spec.node_selector.is_empty() {
        spec.node_selector = "all()".to_owned();
    }
    spec.ipip_mode.get_or_insert(EncapMode::Never);
    spec.vxlan_mode.get_or_insert(EncapMode::Never);
    spec.assignment_mode
        .get_or_insert(AssignmentMode::Automatic);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: serde_json::Value) -> AnyResource {
        AnyResource::from_json_value(v).unwrap()
    }

    #[test]
    fn policy_defaults() {
        let mut gnp = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "p"}, "spec": {"egress": [{"action": "Allow"}]}}),
        );
        apply(&mut gnp);
        let v = gnp.to_json_value();
        assert_eq!(v["spec"]["types"], json!(["Egress"]));
        assert_eq!(v["metadata"]["labels"][TIER_LABEL], "default");

        let mut np = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "sec.p", "namespace": "n"}, "spec": {"tier": "sec", "ingress": [{"action": "Allow"}], "egress": [{"action": "Deny"}]}}),
        );
        apply(&mut np);
        let v = np.to_json_value();
        assert_eq!(v["spec"]["types"], json!(["Ingress", "Egress"]));
        assert_eq!(v["metadata"]["labels"][TIER_LABEL], "sec");
    }

    #[test]
    fn tier_and_pool_defaults() {
        let mut tier = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "t"}}),
        );
        apply(&mut tier);
        assert_eq!(
            tier.to_json_value()["spec"],
            json!({"order": 1000000, "defaultAction": "Deny"})
        );

        let mut pool = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "p"}, "spec": {"cidr": "fd00:0:0::/48"}}),
        );
        apply(&mut pool);
        let spec = pool.to_json_value()["spec"].clone();
        assert_eq!(spec["cidr"], "fd00::/48");
        assert_eq!(spec["blockSize"], 122);
        assert_eq!(spec["nodeSelector"], "all()");
        assert_eq!(spec["ipipMode"], "Never");
        assert_eq!(spec["vxlanMode"], "Never");
        assert_eq!(spec["allowedUses"], json!(["Workload", "Tunnel"]));
        assert_eq!(spec["assignmentMode"], "Automatic");

        // Host bits are left in place for validation to report.
        let mut sloppy = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.1/8"}}),
        );
        apply(&mut sloppy);
        assert_eq!(sloppy.to_json_value()["spec"]["cidr"], "10.0.0.1/8");
    }

    #[test]
    fn read_defaults_keep_existing_labels() {
        let mut np = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "n", "labels": {"a": "b"}}, "spec": {}}),
        );
        on_read(&mut np);
        assert_eq!(
            np.metadata().labels.get(TIER_LABEL).map(String::as_str),
            Some("default")
        );
        assert_eq!(np.metadata().labels.get("a").map(String::as_str), Some("b"));
    }
}
