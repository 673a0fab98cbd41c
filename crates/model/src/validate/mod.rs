//! Validation with Calico's rules: what its Go validator and the CRD
//! schema rules (OpenAPI ranges, enums, CEL expressions) reject, collected
//! into one [`ValidationErrors`] naming every bad field by its JSON path.
//!
//! Validation looks at one resource only; checks that need the datastore
//! (does the tier exist, do pools overlap, has the CIDR changed on update)
//! belong to the caller.

mod bgp;
mod config;
mod endpoint;
mod ipam;
mod k8s;
mod names;
mod policy;

use std::collections::BTreeMap;
use std::fmt;

use crate::meta::ObjectMeta;
use crate::resource::AnyResource;

pub use names::{
    is_dns1123_label, is_dns1123_subdomain, is_k8s_port_name, is_label_value, is_qualified_name,
};

/// One problem: the field (`spec.ingress[0].protocol`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub path: String,
    pub message: String,
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// Every problem found in a resource (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl ValidationErrors {
    pub fn iter(&self) -> impl Iterator<Item = &ValidationError> {
        self.0.iter()
    }

    /// Whether some error is about this exact path.
    pub fn has_path(&self, path: &str) -> bool {
        self.0.iter().any(|e| e.path == path)
    }
}

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} validation errors:", many.len())?;
                for e in many {
                    write!(f, "\n  {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for ValidationErrors {}

/// Collects errors while walking a resource.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    errors: Vec<ValidationError>,
}

impl Collector {
    pub(crate) fn err(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ValidationError {
            path: path.into(),
            message: message.into(),
        });
    }

    pub(crate) fn finish(self) -> Result<(), ValidationErrors> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(self.errors))
        }
    }

    /// A Calico selector; empty means "all" and is valid.
    pub(crate) fn selector(&mut self, path: &str, selector: &str) {
        if selector.is_empty() {
            return;
        }
        if let Err(e) = calico_selector::Selector::parse(selector) {
            self.err(path, format!("invalid selector {selector:?}: {e}"));
        }
    }

    /// A selector where `global()` is not allowed.
    pub(crate) fn selector_no_global(&mut self, path: &str, selector: &str, message: &str) {
        if selector.contains("global(") {
            self.err(path, message);
        } else {
            self.selector(path, selector);
        }
    }

    /// A resource name in a reference (`spec.node`, `spec.tier`...).
    pub(crate) fn name(&mut self, path: &str, name: &str) {
        if !is_dns1123_subdomain(name) {
            self.err(
                path,
                format!("{name:?} is not a valid name: lower case alphanumeric characters, '-' or '.', starting and ending with an alphanumeric"),
            );
        }
    }

    pub(crate) fn labels(&mut self, path: &str, labels: &BTreeMap<String, String>) {
        for (k, v) in labels {
            if let Err(why) = names::check_qualified_name(k) {
                self.err(
                    format!("{path}.{k}"),
                    format!("invalid label key {k:?}: {why}"),
                );
            }
            if let Err(why) = names::check_label_value(v) {
                self.err(
                    format!("{path}.{k}"),
                    format!("invalid label value {v:?}: {why}"),
                );
            }
        }
    }

    pub(crate) fn annotations(&mut self, path: &str, annotations: &BTreeMap<String, String>) {
        const LIMIT: usize = 256 * 1024;
        let mut total = 0;
        for (k, v) in annotations {
            if let Err(why) = names::check_qualified_name(&k.to_ascii_lowercase()) {
                self.err(
                    format!("{path}.{k}"),
                    format!("invalid annotation key {k:?}: {why}"),
                );
            }
            total += k.len() + v.len();
        }
        if total > LIMIT {
            self.err(
                path,
                format!(
                    "total size of annotations is too large by {} bytes",
                    total - LIMIT
                ),
            );
        }
    }

    /// A Go duration string.
    pub(crate) fn duration(&mut self, path: &str, value: &str) {
        if crate::duration::parse_go_duration(value).is_none() {
            self.err(
                path,
                format!("invalid duration {value:?} (use e.g. \"90s\", \"5m\", \"1h30m\")"),
            );
        }
    }

    pub(crate) fn one_of(&mut self, path: &str, value: &str, allowed: &[&str]) {
        if !allowed.contains(&value) {
            self.err(
                path,
                format!(
                    "invalid value {value:?}: must be one of {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    pub(crate) fn range(&mut self, path: &str, value: i64, min: i64, max: i64) {
        if value < min || value > max {
            self.err(
                path,
                format!("{value} is out of range: must be between {min} and {max}"),
            );
        }
    }
}

/// How a kind's `metadata.name` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameRule {
    /// DNS-1123 subdomain (most kinds).
    Subdomain,
    /// DNS-1123 label, at most 63 characters (Tier).
    Label,
    /// `label`, `label.label`, or `knp.default.<subdomain>` /
    /// `ossg.default.<subdomain>` (NetworkPolicy, StagedNetworkPolicy).
    NetworkPolicy,
    /// `label` or `label.label` (GlobalNetworkPolicy and its staged form).
    GlobalNetworkPolicy,
}

pub(crate) fn check_metadata(
    c: &mut Collector,
    meta: &ObjectMeta,
    rule: NameRule,
    namespaced: bool,
) {
    let name = &meta.name;
    if name.is_empty() {
        c.err("metadata.name", "name must be set");
    } else {
        let max = if rule == NameRule::Label { 63 } else { 253 };
        if name.len() > max {
            c.err(
                "metadata.name",
                format!("name is too long by {} bytes", name.len() - max),
            );
        }
        let (ok, what) = match rule {
            NameRule::Subdomain => (
                is_dns1123_subdomain(name),
                "lower case alphanumeric characters, '-' or '.'",
            ),
            NameRule::Label => (
                is_dns1123_label(name),
                "lower case alphanumeric characters or '-'",
            ),
            NameRule::NetworkPolicy => (
                names::is_network_policy_name(name),
                "lower case alphanumeric characters or '-', with at most one '.' (or a knp.default./ossg.default. prefix)",
            ),
            NameRule::GlobalNetworkPolicy => (
                names::is_global_network_policy_name(name),
                "lower case alphanumeric characters or '-', with at most one '.'",
            ),
        };
        if !ok {
            c.err(
                "metadata.name",
                format!("invalid name {name:?}: must consist of {what}"),
            );
        }
    }
    if namespaced {
        if meta.namespace.is_empty() {
            c.err(
                "metadata.namespace",
                "namespace is not specified on namespaced resource",
            );
        } else if !is_dns1123_label(&meta.namespace) {
            c.err(
                "metadata.namespace",
                format!("invalid namespace {:?}", meta.namespace),
            );
        }
    }
    c.labels("metadata.labels", &meta.labels);
    c.annotations("metadata.annotations", &meta.annotations);
}

impl AnyResource {
    /// Checks the resource as Calico would before storing it. Call
    /// [`AnyResource::apply_defaults`] first, as Calico does, or defaulted
    /// fields (a tier's order, for one) are reported missing.
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut c = Collector::default();
        let namespaced = self.kind().namespaced();
        let rule = match self {
            AnyResource::Tier(_) => NameRule::Label,
            AnyResource::NetworkPolicy(_) | AnyResource::StagedNetworkPolicy(_) => {
                NameRule::NetworkPolicy
            }
            AnyResource::GlobalNetworkPolicy(_) | AnyResource::StagedGlobalNetworkPolicy(_) => {
                NameRule::GlobalNetworkPolicy
            }
            _ => NameRule::Subdomain,
        };
        check_metadata(&mut c, self.metadata(), rule, namespaced);
        match self {
            AnyResource::BgpConfiguration(r) => bgp::configuration(&mut c, r),
            AnyResource::BgpFilter(r) => bgp::filter(&mut c, r),
            AnyResource::BgpPeer(r) => bgp::peer(&mut c, r),
            AnyResource::CalicoNodeStatus(r) => config::node_status(&mut c, r),
            AnyResource::ClusterInformation(_) => {}
            AnyResource::FelixConfiguration(r) => config::felix(&mut c, r),
            AnyResource::GlobalNetworkPolicy(r) => policy::global_network_policy(&mut c, &r.spec),
            AnyResource::GlobalNetworkSet(r) => {
                endpoint::network_set(&mut c, &r.metadata, &r.spec.nets)
            }
            AnyResource::HostEndpoint(r) => endpoint::host_endpoint(&mut c, r),
            AnyResource::IpamConfiguration(r) => ipam::ipam_configuration(&mut c, r),
            AnyResource::IpPool(r) => ipam::ip_pool(&mut c, r),
            AnyResource::IpReservation(r) => ipam::ip_reservation(&mut c, r),
            AnyResource::KubeControllersConfiguration(r) => config::kube_controllers(&mut c, r),
            AnyResource::NetworkPolicy(r) => policy::network_policy(&mut c, &r.spec),
            AnyResource::NetworkSet(r) => endpoint::network_set(&mut c, &r.metadata, &r.spec.nets),
            AnyResource::Node(r) => endpoint::node(&mut c, r),
            AnyResource::Profile(r) => policy::profile(&mut c, r),
            AnyResource::StagedGlobalNetworkPolicy(r) => {
                policy::staged_global_network_policy(&mut c, &r.spec)
            }
            AnyResource::StagedKubernetesNetworkPolicy(r) => {
                k8s::staged_kubernetes_network_policy(&mut c, &r.spec)
            }
            AnyResource::StagedNetworkPolicy(r) => policy::staged_network_policy(&mut c, &r.spec),
            AnyResource::Tier(r) => policy::tier(&mut c, r),
            AnyResource::WorkloadEndpoint(r) => endpoint::workload_endpoint(&mut c, r),
            AnyResource::KubernetesNetworkPolicy(r) => {
                k8s::kubernetes_network_policy(&mut c, &r.spec)
            }
        }
        c.finish()
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use serde_json::Value;

    use crate::resource::AnyResource;

    /// Parses a test resource from JSON, panicking on a parse error.
    pub(crate) fn res(v: Value) -> AnyResource {
        AnyResource::from_json_value(v).unwrap_or_else(|e| panic!("test resource: {e}"))
    }

    /// Runs validation and returns the error lines, or an empty list.
    pub(crate) fn errors(r: &AnyResource) -> Vec<String> {
        match r.validate() {
            Ok(()) => vec![],
            Err(e) => e.iter().map(|e| e.to_string()).collect(),
        }
    }

    /// Table runner: each case is (description, resource JSON, expected
    /// substring of some error, or None when it must validate).
    pub(crate) fn run(cases: &[(&str, Value, Option<&str>)]) {
        for (what, doc, want) in cases {
            let r = res(doc.clone());
            let got = errors(&r);
            match want {
                None => assert!(got.is_empty(), "{what}: unexpected errors {got:#?}"),
                Some(w) => assert!(
                    got.iter().any(|e| e.contains(w)),
                    "{what}: want an error containing {w:?}, got {got:#?}"
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::run;
    use serde_json::json;

    fn gns(meta: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": meta, "spec": {"nets": ["10.0.0.0/8"]}})
    }

    #[test]
    fn metadata_rules() {
        let long = "a".repeat(254);
        run(&[
            ("plain name", gns(json!({"name": "ok-name.x"})), None),
            (
                "missing name",
                gns(json!({})),
                Some("metadata.name: name must be set"),
            ),
            (
                "upper case",
                gns(json!({"name": "Bad"})),
                Some("metadata.name: invalid name"),
            ),
            (
                "too long",
                gns(json!({"name": long})),
                Some("too long by 1 bytes"),
            ),
            (
                "bad label key",
                gns(json!({"name": "a", "labels": {"-x": "y"}})),
                Some("metadata.labels.-x: invalid label key"),
            ),
            (
                "bad label value",
                gns(json!({"name": "a", "labels": {"x": "y y"}})),
                Some("invalid label value"),
            ),
            (
                "prefixed label",
                gns(json!({"name": "a", "labels": {"example.com/x": "y"}})),
                None,
            ),
            (
                "bad annotation",
                gns(json!({"name": "a", "annotations": {"a/b/c": "y"}})),
                Some("metadata.annotations.a/b/c"),
            ),
        ]);
    }

    #[test]
    fn namespaced_kinds_need_namespace() {
        run(&[(
            "networkset without namespace",
            json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet", "metadata": {"name": "a"}}),
            Some("metadata.namespace: namespace is not specified"),
        )]);
    }

    #[test]
    fn display_lists_every_error() {
        let r = super::testing::res(gns(json!({"name": "Bad", "labels": {"x": "y y"}})));
        let e = r.validate().unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("2 validation errors:"), "{text}");
        assert!(
            text.contains("\n  metadata.name:") && text.contains("\n  metadata.labels.x:"),
            "{text}"
        );
    }
}
