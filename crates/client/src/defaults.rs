//! Defaults Calico's client fills in: before a write (the model's
//! defaults) and when reading (IP pool settings older writers left out, the
//! tier label on policies written without one).

use std::collections::BTreeMap;

use calico_model::defaults::LABEL_TIER;
use calico_model::policy::DEFAULT_TIER_NAME;
use calico_model::resource::AnyResource;

/// Defaults applied before a resource is validated and written.
pub(crate) fn apply(resource: &mut AnyResource) {
    resource.apply_defaults();
}

/// What Calico's client adds to resources it reads.
pub(crate) fn on_read(resource: &mut AnyResource) {
    match resource {
        AnyResource::IpPool(_) => resource.apply_defaults(),
        AnyResource::NetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::GlobalNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::StagedNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        AnyResource::StagedGlobalNetworkPolicy(p) => default_tier_label(&mut p.metadata.labels),
        _ => {}
    }
}

fn default_tier_label(labels: &mut BTreeMap<String, String>) {
    labels
        .entry(LABEL_TIER.to_owned())
        .or_insert_with(|| DEFAULT_TIER_NAME.to_owned());
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(v: serde_json::Value) -> AnyResource {
        AnyResource::from_json_value(v).unwrap()
    }

    #[test]
    fn read_defaults_fill_old_pools() {
        let mut pool = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
            "metadata": {"name": "p"}, "spec": {"cidr": "10.0.0.0/16"}}),
        );
        on_read(&mut pool);
        let spec = pool.to_json_value()["spec"].clone();
        assert_eq!(spec["blockSize"], 26);
        assert_eq!(spec["nodeSelector"], "all()");
        assert_eq!(spec["ipipMode"], "Never");
        assert_eq!(spec["assignmentMode"], "Automatic");
    }

    #[test]
    fn read_defaults_add_a_missing_tier_label_only() {
        let mut np = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
            "metadata": {"name": "p", "namespace": "n", "labels": {"a": "b"}}, "spec": {}}),
        );
        on_read(&mut np);
        assert_eq!(
            np.metadata().labels.get(LABEL_TIER).map(String::as_str),
            Some("default")
        );
        assert_eq!(np.metadata().labels.get("a").map(String::as_str), Some("b"));
        let mut other = res(
            json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
            "metadata": {"name": "sec.p", "labels": {"projectcalico.org/tier": "sec"}}, "spec": {"tier": "sec"}}),
        );
        on_read(&mut other);
        assert_eq!(other.metadata().labels[LABEL_TIER], "sec");
    }
}
