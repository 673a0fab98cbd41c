//! Where and how resources are stored in etcd, in Calico's etcdv3 layout.
//!
//! Key: `/calico/resources/v3/projectcalico.org/<plural>/[<namespace>/]<name>`.
//!
//! Value: the whole resource as JSON, written the way Calico's client
//! writes it: `kind` and `apiVersion` first, `metadata` without
//! `resourceVersion` and `selfLink` (the etcd revision *is* the resource
//! version; it is put back on read), Go's escaping of `<`, `>`, `&`. For the
//! four Calico policy kinds, Calico also stores the name the user gave in
//! the annotation `projectcalico.org/metadata` (`{"name":"<name>"}`) and
//! takes the name from there on read; values written by older Calico
//! without it have a `default.` prefix dropped when the tier is `default`.
//!
//! Kubernetes NetworkPolicy is not stored by Calico in etcd; its key here
//! (plural `kubernetesnetworkpolicies`) is this project's own.

use serde_json::Value;

use crate::document::to_json_compact;
use crate::kind::Kind;
use crate::resource::{AnyResource, ResourceError};

/// Prefix of every resource key.
pub const RESOURCE_ROOT: &str = "/calico/resources/v3/projectcalico.org/";

/// Annotation in which Calico keeps a policy's own name in etcd.
pub const METADATA_ANNOTATION: &str = "projectcalico.org/metadata";

/// The etcd key of a resource. `namespace` is ignored for cluster-scoped
/// kinds.
pub fn resource_key(kind: Kind, namespace: &str, name: &str) -> String {
    if kind.namespaced() {
        format!("{RESOURCE_ROOT}{}/{namespace}/{name}", kind.plural())
    } else {
        format!("{RESOURCE_ROOT}{}/{name}", kind.plural())
    }
}

/// The key of a resource value.
pub fn key_of(resource: &AnyResource) -> String {
    let m = resource.metadata();
    resource_key(resource.kind(), &m.namespace, &m.name)
}

/// The prefix to list a kind: every resource of the kind, or (namespaced
/// kinds, `Some(ns)`) those of one namespace. An empty namespace means
/// every namespace, as it does in Calico's list options. Always ends with
/// `/`.
pub fn resource_prefix(kind: Kind, namespace: Option<&str>) -> String {
    match namespace {
        Some(ns) if kind.namespaced() && !ns.is_empty() => {
            format!("{RESOURCE_ROOT}{}/{ns}/", kind.plural())
        }
        _ => format!("{RESOURCE_ROOT}{}/", kind.plural()),
    }
}

/// A resource key taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceKey {
    pub kind: Kind,
    /// Empty for cluster-scoped kinds.
    pub namespace: String,
    pub name: String,
}

/// Why a key is not a resource key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{key:?} is not under {RESOURCE_ROOT}")]
    NotAResourceKey { key: String },
    #[error("{key:?}: unknown resource plural {plural:?}")]
    UnknownPlural { key: String, plural: String },
    #[error("{key:?}: expected {expected} path segments after the plural")]
    WrongShape { key: String, expected: &'static str },
}

/// Parses a key written by [`resource_key`] (or by Calico).
pub fn parse_resource_key(key: &str) -> Result<ResourceKey, KeyError> {
    let rest = key
        .strip_prefix(RESOURCE_ROOT)
        .ok_or_else(|| KeyError::NotAResourceKey { key: key.into() })?;
    let mut parts = rest.split('/');
    let plural = parts.next().unwrap_or_default();
    let kind = Kind::from_plural(plural).ok_or_else(|| KeyError::UnknownPlural {
        key: key.into(),
        plural: plural.into(),
    })?;
    let rest: Vec<&str> = parts.collect();
    match (kind.namespaced(), rest.as_slice()) {
        (true, [ns, name]) if !ns.is_empty() && !name.is_empty() => Ok(ResourceKey {
            kind,
            namespace: ns.to_string(),
            name: name.to_string(),
        }),
        (false, [name]) if !name.is_empty() => Ok(ResourceKey {
            kind,
            namespace: String::new(),
            name: name.to_string(),
        }),
        (true, _) => Err(KeyError::WrongShape {
            key: key.into(),
            expected: "2 (namespace/name)",
        }),
        (false, _) => Err(KeyError::WrongShape {
            key: key.into(),
            expected: "1 (name)",
        }),
    }
}

fn stores_policy_name(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::NetworkPolicy
            | Kind::GlobalNetworkPolicy
            | Kind::StagedNetworkPolicy
            | Kind::StagedGlobalNetworkPolicy
    )
}

/// The etcd value for a resource, byte for byte as Calico writes it.
pub fn to_etcd_value(resource: &AnyResource) -> String {
    let mut r = resource.clone();
    let kind = r.kind();
    let meta = r.metadata_mut();
    meta.resource_version.clear();
    meta.self_link.clear();
    if stores_policy_name(kind) {
        let name = serde_json::json!({ "name": meta.name });
        meta.annotations
            .insert(METADATA_ANNOTATION.into(), to_json_compact(&name));
    }
    to_json_compact(&r.to_json_value())
}

/// Reads a stored value back: the kind comes from the key, the resource
/// version from the etcd revision, and a policy's name from Calico's
/// metadata annotation (which is removed).
pub fn from_etcd_value(
    key: &ResourceKey,
    value: &[u8],
    mod_revision: i64,
) -> Result<AnyResource, ResourceError> {
    let json: Value = serde_json::from_slice(value).map_err(|e| ResourceError::Field {
        path: String::new(),
        message: format!("stored value is not JSON: {e}"),
    })?;
    let mut r = AnyResource::from_json_value_of_kind(key.kind, json)?;
    let tier = match &r {
        AnyResource::NetworkPolicy(p) => Some(p.spec.tier.clone()),
        AnyResource::GlobalNetworkPolicy(p) => Some(p.spec.tier.clone()),
        AnyResource::StagedNetworkPolicy(p) => Some(p.spec.tier.clone()),
        AnyResource::StagedGlobalNetworkPolicy(p) => Some(p.spec.tier.clone()),
        _ => None,
    };
    let meta = r.metadata_mut();
    if let Some(tier) = tier {
        match meta.annotations.remove(METADATA_ANNOTATION) {
            Some(stored) => {
                let name = serde_json::from_str::<Value>(&stored)
                    .ok()
                    .and_then(|v| v.get("name").and_then(Value::as_str).map(str::to_string))
                    .ok_or_else(|| ResourceError::Field {
                        path: format!("metadata.annotations.{METADATA_ANNOTATION}"),
                        message: format!(
                            "annotation {METADATA_ANNOTATION:?} contained invalid JSON"
                        ),
                    })?;
                meta.name = name;
            }
            None if tier.is_empty() || tier == "default" => {
                if let Some(stripped) = meta.name.strip_prefix("default.") {
                    meta.name = stripped.to_string();
                }
            }
            None => {}
        }
    }
    if meta.name.is_empty() {
        meta.name = key.name.clone();
    }
    if meta.namespace.is_empty() && key.kind.namespaced() {
        meta.namespace = key.namespace.clone();
    }
    meta.resource_version = mod_revision.to_string();
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::ObjectMeta;
    use crate::policy::{NetworkPolicy, NetworkPolicySpec};
    use crate::rule::{Action, Rule};

    #[test]
    fn keys_both_ways() {
        let cases: &[(Kind, &str, &str, &str)] = &[
            (
                Kind::IpPool,
                "",
                "default-ipv4-ippool",
                "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool",
            ),
            (
                Kind::NetworkPolicy,
                "prod",
                "allow-web",
                "/calico/resources/v3/projectcalico.org/networkpolicies/prod/allow-web",
            ),
            (
                Kind::GlobalNetworkPolicy,
                "",
                "security.deny",
                "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/security.deny",
            ),
            (
                Kind::WorkloadEndpoint,
                "default",
                "n1-k8s-web-eth0",
                "/calico/resources/v3/projectcalico.org/workloadendpoints/default/n1-k8s-web-eth0",
            ),
            (
                Kind::BgpFilter,
                "",
                "f",
                "/calico/resources/v3/projectcalico.org/bgpfilters/f",
            ),
            (
                Kind::KubeControllersConfiguration,
                "",
                "default",
                "/calico/resources/v3/projectcalico.org/kubecontrollersconfigurations/default",
            ),
        ];
        for (kind, ns, name, key) in cases {
            assert_eq!(resource_key(*kind, ns, name), *key);
            let parsed = parse_resource_key(key).unwrap();
            assert_eq!(
                (parsed.kind, parsed.namespace.as_str(), parsed.name.as_str()),
                (*kind, *ns, *name)
            );
        }
        assert_eq!(
            resource_prefix(Kind::NetworkPolicy, Some("prod")),
            "/calico/resources/v3/projectcalico.org/networkpolicies/prod/"
        );
        for all in [None, Some("")] {
            assert_eq!(
                resource_prefix(Kind::NetworkPolicy, all),
                "/calico/resources/v3/projectcalico.org/networkpolicies/",
                "{all:?}"
            );
        }
        assert_eq!(
            resource_prefix(Kind::IpPool, Some("ignored")),
            "/calico/resources/v3/projectcalico.org/ippools/"
        );
    }

    #[test]
    fn bad_keys() {
        assert!(matches!(
            parse_resource_key("/calico/ipam/v2/config"),
            Err(KeyError::NotAResourceKey { .. })
        ));
        assert!(matches!(
            parse_resource_key("/calico/resources/v3/projectcalico.org/widgets/a"),
            Err(KeyError::UnknownPlural { .. })
        ));
        assert!(matches!(
            parse_resource_key("/calico/resources/v3/projectcalico.org/networkpolicies/a"),
            Err(KeyError::WrongShape { .. })
        ));
        assert!(matches!(
            parse_resource_key("/calico/resources/v3/projectcalico.org/ippools/a/b"),
            Err(KeyError::WrongShape { .. })
        ));
    }

    #[test]
    fn policy_value_round_trip() {
        let mut meta = ObjectMeta::namespaced("prod", "allow-web");
        meta.resource_version = "17".into();
        meta.uid = "u1".into();
        let p = AnyResource::from(NetworkPolicy {
            metadata: meta,
            spec: NetworkPolicySpec {
                tier: "default".into(),
                selector: "app == 'web' && role != 'x'".into(),
                ingress: vec![Rule::new(Action::Allow)],
                ..Default::default()
            },
        });
        let value = to_etcd_value(&p);
        // A rule's empty source and destination are left out, as Calico
        // (`omitzero`) leaves them out.
        assert_eq!(
            value,
            r#"{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"allow-web","namespace":"prod","uid":"u1","annotations":{"projectcalico.org/metadata":"{\"name\":\"allow-web\"}"}},"spec":{"tier":"default","ingress":[{"action":"Allow"}],"selector":"app == 'web' \u0026\u0026 role != 'x'"}}"#
        );
        let key = parse_resource_key(&key_of(&p)).unwrap();
        let back = from_etcd_value(&key, value.as_bytes(), 42).unwrap();
        assert_eq!(back.metadata().resource_version, "42");
        assert!(back.metadata().annotations.is_empty());
        let mut want = p.clone();
        want.metadata_mut().resource_version = "42".into();
        assert_eq!(back, want);
    }

    #[test]
    fn legacy_default_prefix_dropped() {
        let key = parse_resource_key(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/default.old",
        )
        .unwrap();
        let value = br#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"default.old"},"spec":{"tier":"default"}}"#;
        let r = from_etcd_value(&key, value, 3).unwrap();
        assert_eq!(r.metadata().name, "old");
        let value = br#"{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":"sec.p"},"spec":{"tier":"sec"}}"#;
        let key = parse_resource_key(
            "/calico/resources/v3/projectcalico.org/globalnetworkpolicies/sec.p",
        )
        .unwrap();
        assert_eq!(
            from_etcd_value(&key, value, 3).unwrap().metadata().name,
            "sec.p"
        );
    }

    #[test]
    fn stored_value_errors() {
        let key = parse_resource_key("/calico/resources/v3/projectcalico.org/ippools/p").unwrap();
        assert!(from_etcd_value(&key, b"not json", 1).is_err());
        let err = from_etcd_value(
            &key,
            br#"{"metadata":{"name":"p"},"spec":{"cidrr":"x"}}"#,
            1,
        )
        .unwrap_err();
        assert!(err.to_string().contains("spec.cidrr"), "{err}");
    }
}
