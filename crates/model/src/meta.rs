//! Object metadata shared by every resource (Kubernetes' `ObjectMeta`, which
//! Calico's v3 resources embed), and the list metadata used by `<Kind>List`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Metadata of one resource. Every field is omitted from output when empty.
///
/// Timestamps are kept as the RFC 3339 strings the datastore wrote; this crate
/// never reads a clock, so callers fill `uid` and `creation_timestamp` in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub generate_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub self_link: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub uid: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_timestamp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_grace_period_seconds: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owner_references: Vec<OwnerReference>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub finalizers: Vec<String>,
    /// Server-side-apply bookkeeping; carried through untouched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub managed_fields: Vec<serde_json::Value>,
}

impl ObjectMeta {
    /// Metadata with only a name (cluster-scoped resources).
    pub fn named(name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            ..Default::default()
        }
    }

    /// Fills in what the datastore sets when a resource is first created:
    /// a uid and creation timestamp (RFC 3339), each only if missing.
    pub fn stamp_creation(&mut self, uid: impl Into<String>, timestamp: impl Into<String>) {
        if self.uid.is_empty() {
            self.uid = uid.into();
        }
        if self.creation_timestamp.is_none() {
            self.creation_timestamp = Some(timestamp.into());
        }
    }

    /// Metadata with a namespace and a name.
    pub fn namespaced(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        ObjectMeta {
            name: name.into(),
            namespace: namespace.into(),
            ..Default::default()
        }
    }
}

/// A Kubernetes owner reference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OwnerReference {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    pub uid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_owner_deletion: Option<bool>,
}

/// Metadata of a `<Kind>List`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ListMeta {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub resource_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub self_link: String,
    #[serde(rename = "continue", default, skip_serializing_if = "String::is_empty")]
    pub continue_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remaining_item_count: Option<i64>,
}

/// A Kubernetes status condition (`metav1.Condition`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(rename = "type")]
    pub condition_type: String,
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    pub last_transition_time: Option<String>,
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_fields_are_omitted() {
        let m = ObjectMeta::named("p1");
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"name":"p1"}"#);
    }

    #[test]
    fn camel_case_round_trip() {
        let json = r#"{"name":"a","namespace":"ns","uid":"u-1","resourceVersion":"12","generation":3,"creationTimestamp":"2024-01-02T03:04:05Z","labels":{"b":"2","a":"1"},"annotations":{"x":"y"}}"#;
        let m: ObjectMeta = serde_json::from_str(json).unwrap();
        assert_eq!(m.resource_version, "12");
        assert_eq!(m.generation, Some(3));
        // labels come out sorted
        let out = serde_json::to_string(&m).unwrap();
        assert!(out.contains(r#""labels":{"a":"1","b":"2"}"#), "{out}");
        assert!(out.contains(r#""creationTimestamp":"2024-01-02T03:04:05Z""#));
    }

    #[test]
    fn unknown_metadata_field_rejected() {
        let err = serde_json::from_str::<ObjectMeta>(r#"{"name":"a","nmespace":"x"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("nmespace"), "{err}");
    }

    #[test]
    fn stamp_creation_only_fills_gaps() {
        let mut m = ObjectMeta::named("a");
        m.stamp_creation("u1", "2024-01-01T00:00:00Z");
        m.stamp_creation("u2", "2025-01-01T00:00:00Z");
        assert_eq!(m.uid, "u1");
        assert_eq!(
            m.creation_timestamp.as_deref(),
            Some("2024-01-01T00:00:00Z")
        );
    }

    #[test]
    fn null_creation_timestamp_accepted() {
        let m: ObjectMeta =
            serde_json::from_str(r#"{"name":"a","creationTimestamp":null}"#).unwrap();
        assert_eq!(m.creation_timestamp, None);
    }
}
