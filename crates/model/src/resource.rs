//! [`AnyResource`]: one value of any kind, with the operations every kind
//! shares (metadata access, JSON in and out, validation, defaults), and the
//! [`Resource`] trait the typed structs implement.

use std::fmt;

use serde::de::{DeserializeOwned, DeserializeSeed, Deserializer, IgnoredAny};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bgp::{
    BgpConfiguration, BgpConfigurationSpec, BgpFilter, BgpFilterSpec, BgpPeer, BgpPeerSpec,
};
use crate::cluster::{
    ClusterInformation, ClusterInformationSpec, KubeControllersConfiguration,
    KubeControllersConfigurationSpec, KubeControllersConfigurationStatus,
};
use crate::endpoint::{HostEndpoint, HostEndpointSpec, WorkloadEndpoint, WorkloadEndpointSpec};
use crate::felix::{FelixConfiguration, FelixConfigurationSpec};
use crate::ippool::{
    IpPool, IpPoolSpec, IpPoolStatus, IpReservation, IpReservationSpec, IpamConfiguration,
    IpamConfigurationSpec,
};
use crate::k8s;
use crate::kind::Kind;
use crate::meta::ObjectMeta;
use crate::networkset::{GlobalNetworkSet, GlobalNetworkSetSpec, NetworkSet, NetworkSetSpec};
use crate::node::{
    CalicoNodeStatus, CalicoNodeStatusSpec, CalicoNodeStatusStatus, Node, NodeSpec, NodeStatus,
};
use crate::policy::{
    GlobalNetworkPolicy, GlobalNetworkPolicySpec, NetworkPolicy, NetworkPolicySpec,
    StagedGlobalNetworkPolicy, StagedGlobalNetworkPolicySpec, StagedKubernetesNetworkPolicy,
    StagedKubernetesNetworkPolicySpec, StagedNetworkPolicy, StagedNetworkPolicySpec, Tier,
    TierSpec, TierStatus,
};
use crate::profile::{Profile, ProfileSpec};

/// Implemented by every resource struct: `{ metadata, spec[, status] }`.
pub trait Resource: Clone + fmt::Debug + Serialize + DeserializeOwned + Into<AnyResource> {
    const KIND: Kind;
    type Spec: DeserializeOwned + Default;
    /// [`NoStatus`] for kinds without a status.
    type Status: DeserializeOwned + Default;

    fn from_parts(metadata: ObjectMeta, spec: Self::Spec, status: Self::Status) -> Self;
    fn metadata(&self) -> &ObjectMeta;
    fn metadata_mut(&mut self) -> &mut ObjectMeta;
}

/// The status of a kind that has none: reading one is an error.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NoStatus;

impl<'de> Deserialize<'de> for NoStatus {
    fn deserialize<D: Deserializer<'de>>(_: D) -> Result<Self, D::Error> {
        Err(serde::de::Error::custom(
            "unknown field `status`: this kind has no status",
        ))
    }
}

macro_rules! impl_resource {
    ($ty:ty, $kind:ident, $spec:ty) => {
        impl Resource for $ty {
            const KIND: Kind = Kind::$kind;
            type Spec = $spec;
            type Status = NoStatus;
            fn from_parts(metadata: ObjectMeta, spec: $spec, _: NoStatus) -> Self {
                Self { metadata, spec }
            }
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
    ($ty:ty, $kind:ident, $spec:ty, $status:ty) => {
        impl Resource for $ty {
            const KIND: Kind = Kind::$kind;
            type Spec = $spec;
            type Status = $status;
            fn from_parts(metadata: ObjectMeta, spec: $spec, status: $status) -> Self {
                Self {
                    metadata,
                    spec,
                    status,
                }
            }
            fn metadata(&self) -> &ObjectMeta {
                &self.metadata
            }
            fn metadata_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

impl_resource!(BgpConfiguration, BgpConfiguration, BgpConfigurationSpec);
impl_resource!(BgpFilter, BgpFilter, BgpFilterSpec);
impl_resource!(BgpPeer, BgpPeer, BgpPeerSpec);
impl_resource!(
    CalicoNodeStatus,
    CalicoNodeStatus,
    CalicoNodeStatusSpec,
    CalicoNodeStatusStatus
);
impl_resource!(
    ClusterInformation,
    ClusterInformation,
    ClusterInformationSpec
);
impl_resource!(
    FelixConfiguration,
    FelixConfiguration,
    FelixConfigurationSpec
);
impl_resource!(
    GlobalNetworkPolicy,
    GlobalNetworkPolicy,
    GlobalNetworkPolicySpec
);
impl_resource!(GlobalNetworkSet, GlobalNetworkSet, GlobalNetworkSetSpec);
impl_resource!(HostEndpoint, HostEndpoint, HostEndpointSpec);
impl_resource!(IpamConfiguration, IpamConfiguration, IpamConfigurationSpec);
impl_resource!(IpPool, IpPool, IpPoolSpec, Option<IpPoolStatus>);
impl_resource!(IpReservation, IpReservation, IpReservationSpec);
impl_resource!(
    KubeControllersConfiguration,
    KubeControllersConfiguration,
    KubeControllersConfigurationSpec,
    KubeControllersConfigurationStatus
);
impl_resource!(NetworkPolicy, NetworkPolicy, NetworkPolicySpec);
impl_resource!(NetworkSet, NetworkSet, NetworkSetSpec);
impl_resource!(Node, Node, NodeSpec, NodeStatus);
impl_resource!(Profile, Profile, ProfileSpec);
impl_resource!(
    StagedGlobalNetworkPolicy,
    StagedGlobalNetworkPolicy,
    StagedGlobalNetworkPolicySpec
);
impl_resource!(
    StagedKubernetesNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    StagedKubernetesNetworkPolicySpec
);
impl_resource!(
    StagedNetworkPolicy,
    StagedNetworkPolicy,
    StagedNetworkPolicySpec
);
impl_resource!(Tier, Tier, TierSpec, TierStatus);
impl_resource!(WorkloadEndpoint, WorkloadEndpoint, WorkloadEndpointSpec);
impl_resource!(
    k8s::NetworkPolicy,
    KubernetesNetworkPolicy,
    k8s::NetworkPolicySpec
);

// FelixConfiguration has ~190 fields; boxing it keeps every other
// AnyResource small.
impl Resource for Box<FelixConfiguration> {
    const KIND: Kind = Kind::FelixConfiguration;
    type Spec = FelixConfigurationSpec;
    type Status = NoStatus;
    fn from_parts(metadata: ObjectMeta, spec: FelixConfigurationSpec, _: NoStatus) -> Self {
        Box::new(FelixConfiguration { metadata, spec })
    }
    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<FelixConfiguration> for AnyResource {
    fn from(r: FelixConfiguration) -> Self {
        AnyResource::FelixConfiguration(Box::new(r))
    }
}

/// One whole document as written: the type fields are accepted here (the
/// kind was already chosen from them) and every other key must be known.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, bound = "")]
struct Doc<R: Resource> {
    #[serde(rename = "apiVersion", default)]
    _api_version: Option<IgnoredAny>,
    #[serde(rename = "kind", default)]
    _kind: Option<IgnoredAny>,
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    #[serde(default)]
    spec: Option<R::Spec>,
    #[serde(default)]
    status: Option<R::Status>,
}

impl<R: Resource> Doc<R> {
    fn into_resource(self) -> R {
        R::from_parts(
            self.metadata.unwrap_or_default(),
            self.spec.unwrap_or_default(),
            self.status.unwrap_or_default(),
        )
    }
}

macro_rules! any_resource {
    ($($variant:ident => $ty:ty),* $(,)?) => {
        /// A resource of any kind.
        // The remaining variants are all about 1 KiB (ObjectMeta dominates);
        // only the outlier, FelixConfiguration, is boxed.
        #[allow(clippy::large_enum_variant)]
        #[derive(Debug, Clone, PartialEq)]
        pub enum AnyResource {
            $($variant($ty),)*
        }

        $(
            impl From<$ty> for AnyResource {
                fn from(r: $ty) -> Self {
                    AnyResource::$variant(r)
                }
            }
        )*

        impl AnyResource {
            pub fn kind(&self) -> Kind {
                match self {
                    $(AnyResource::$variant(_) => <$ty as Resource>::KIND,)*
                }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(AnyResource::$variant(r) => r.metadata(),)*
                }
            }

            pub fn metadata_mut(&mut self) -> &mut ObjectMeta {
                match self {
                    $(AnyResource::$variant(r) => r.metadata_mut(),)*
                }
            }

            /// The resource's own fields (`metadata`, `spec`, `status`).
            fn body_value(&self) -> Value {
                let v = match self {
                    $(AnyResource::$variant(r) => serde_json::to_value(r),)*
                };
                v.expect("resource types serialize to JSON without error")
            }
        }

        /// Deserializes the document of a kind chosen in advance.
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct KindSeed(pub Kind);

        impl<'de> DeserializeSeed<'de> for KindSeed {
            type Value = AnyResource;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<AnyResource, D::Error> {
                $(
                    if self.0 == <$ty as Resource>::KIND {
                        return Doc::<$ty>::deserialize(d).map(|doc| AnyResource::$variant(doc.into_resource()));
                    }
                )*
                unreachable!("every Kind has an AnyResource variant")
            }
        }
    };
}

any_resource! {
    BgpConfiguration => BgpConfiguration,
    BgpFilter => BgpFilter,
    BgpPeer => BgpPeer,
    CalicoNodeStatus => CalicoNodeStatus,
    ClusterInformation => ClusterInformation,
    FelixConfiguration => Box<FelixConfiguration>,
    GlobalNetworkPolicy => GlobalNetworkPolicy,
    GlobalNetworkSet => GlobalNetworkSet,
    HostEndpoint => HostEndpoint,
    IpamConfiguration => IpamConfiguration,
    IpPool => IpPool,
    IpReservation => IpReservation,
    KubeControllersConfiguration => KubeControllersConfiguration,
    NetworkPolicy => NetworkPolicy,
    NetworkSet => NetworkSet,
    Node => Node,
    Profile => Profile,
    StagedGlobalNetworkPolicy => StagedGlobalNetworkPolicy,
    StagedKubernetesNetworkPolicy => StagedKubernetesNetworkPolicy,
    StagedNetworkPolicy => StagedNetworkPolicy,
    Tier => Tier,
    WorkloadEndpoint => WorkloadEndpoint,
    KubernetesNetworkPolicy => k8s::NetworkPolicy,
}

/// Why a JSON value is not a resource.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    #[error("a resource must be a mapping with apiVersion, kind, metadata and spec")]
    NotAnObject,
    #[error("missing {field}")]
    MissingTypeField { field: &'static str },
    #[error(
        "unknown resource type: apiVersion {api_version:?}, kind {kind:?} (accepted: {})",
        accepted_kinds()
    )]
    UnknownKind { api_version: String, kind: String },
    #[error("{path}: {message}")]
    Field { path: String, message: String },
}

/// The accepted `apiVersion`/`kind` pairs, for error messages.
pub fn accepted_kinds() -> String {
    let calico: Vec<&str> = Kind::ALL
        .iter()
        .filter(|k| k.api_version() == crate::kind::CALICO_API_VERSION)
        .map(|k| k.as_str())
        .collect();
    format!(
        "{} {}; {} NetworkPolicy",
        crate::kind::CALICO_API_VERSION,
        calico.join(", "),
        crate::k8s::NETWORKING_API_VERSION
    )
}

/// Reads `apiVersion` and `kind` from a document and finds the kind.
pub(crate) fn kind_of(value: &Value) -> Result<Kind, ResourceError> {
    let obj = value.as_object().ok_or(ResourceError::NotAnObject)?;
    let field = |name: &'static str| -> Result<&str, ResourceError> {
        match obj.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s),
            _ => Err(ResourceError::MissingTypeField { field: name }),
        }
    };
    let api_version = field("apiVersion")?;
    let kind = field("kind")?;
    Kind::from_api(api_version, kind).ok_or_else(|| ResourceError::UnknownKind {
        api_version: api_version.to_string(),
        kind: kind.to_string(),
    })
}

impl AnyResource {
    /// `{kind, apiVersion, metadata, spec[, status]}`, in the field order
    /// Calico's JSON uses.
    pub fn to_json_value(&self) -> Value {
        let kind = self.kind();
        let mut out = Map::new();
        out.insert("kind".into(), Value::String(kind.as_str().into()));
        out.insert(
            "apiVersion".into(),
            Value::String(kind.api_version().into()),
        );
        if let Value::Object(body) = self.body_value() {
            out.extend(body);
        }
        Value::Object(out)
    }

    /// Reads a whole resource document (with `apiVersion` and `kind`).
    /// Unknown fields are errors, reported with their path.
    pub fn from_json_value(value: Value) -> Result<AnyResource, ResourceError> {
        let kind = kind_of(&value)?;
        Self::from_json_value_of_kind(kind, value)
    }

    /// Reads a resource of a known kind; `apiVersion` and `kind` may be
    /// present or absent.
    pub fn from_json_value_of_kind(kind: Kind, value: Value) -> Result<AnyResource, ResourceError> {
        let mut track = serde_path_to_error::Track::new();
        let de = serde_path_to_error::Deserializer::new(value, &mut track);
        KindSeed(kind)
            .deserialize(de)
            .map_err(|e| ResourceError::Field {
                path: track.path().to_string(),
                message: e.to_string(),
            })
    }

    /// `namespace/name` for namespaced kinds, else `name`.
    pub fn display_name(&self) -> String {
        let m = self.metadata();
        if self.kind().namespaced() {
            format!("{}/{}", m.namespace, m.name)
        } else {
            m.name.clone()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trip_every_kind() {
        for kind in Kind::ALL {
            let mut metadata = json!({"name": "x"});
            if kind.namespaced() {
                metadata["namespace"] = json!("ns");
            }
            let doc = json!({"apiVersion": kind.api_version(), "kind": kind.as_str(), "metadata": metadata});
            let r = AnyResource::from_json_value(doc).unwrap_or_else(|e| panic!("{kind}: {e}"));
            assert_eq!(r.kind(), kind);
            assert_eq!(r.metadata().name, "x");
            let v = r.to_json_value();
            assert_eq!(v["kind"], kind.as_str());
            assert_eq!(v["apiVersion"], kind.api_version());
            let again = AnyResource::from_json_value(v).unwrap();
            assert_eq!(again, r, "{kind}");
        }
    }

    #[test]
    fn json_key_order_is_calicos() {
        let r = AnyResource::from(IpPool {
            metadata: ObjectMeta::named("p"),
            spec: IpPoolSpec {
                cidr: "10.0.0.0/16".into(),
                ..Default::default()
            },
            status: None,
        });
        assert_eq!(
            serde_json::to_string(&r.to_json_value()).unwrap(),
            r#"{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16"}}"#
        );
    }

    #[test]
    fn errors_name_the_field() {
        let cases: &[(Value, &str)] = &[
            (json!([1]), "mapping"),
            (json!({"kind": "IPPool"}), "missing apiVersion"),
            (
                json!({"apiVersion": "projectcalico.org/v3"}),
                "missing kind",
            ),
            (
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPol"}),
                "unknown resource type",
            ),
            (
                json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy", "metadata": {"name": "a"},
                       "spec": {"ingress": [{"action": "Allow", "destination": {"portz": [80]}}]}}),
                "spec.ingress[0].destination.portz: unknown field `portz`",
            ),
            (
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "a"}, "spek": {}}),
                "spek",
            ),
            (
                json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet", "metadata": {"name": "a"}, "status": {}}),
                "this kind has no status",
            ),
        ];
        for (doc, want) in cases {
            let err = AnyResource::from_json_value(doc.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(want), "{doc}: got {err:?}, want {want:?}");
        }
    }

    #[test]
    fn unknown_kind_lists_accepted() {
        let err = AnyResource::from_json_value(json!({"apiVersion": "v1", "kind": "Pod"}))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("IPPool") && err.contains("networking.k8s.io/v1"),
            "{err}"
        );
    }
}
