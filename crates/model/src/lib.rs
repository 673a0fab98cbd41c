//! Calico's resource model: the `projectcalico.org/v3` kinds and the
//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, with the exact JSON/YAML
//! field names, defaults and validation rules Calico uses, plus the etcd
//! layout Calico stores them in.
//!
//! Owns:
//! - the resource types (one module per object; unknown fields are
//!   rejected, as Calico rejects them) and [`AnyResource`] over all kinds;
//! - [`Kind`]: names, apiVersions, etcd plurals, scope, calicoctl aliases;
//! - [`AnyResource::apply_defaults`] and [`AnyResource::validate`]
//!   (`validate` module) with Calico's rules and field-path errors;
//! - manifests in and out ([`document`]): YAML/JSON, multi-document, Lists,
//!   errors with file, document, field path and line; printing as
//!   calicoctl prints (go-yaml v2's YAML, Go's JSON), with Go's number
//!   formatting in [`gofmt`];
//! - etcd keys and stored values ([`keys`]) and the IPAM records under
//!   `/calico/ipam/v2/` ([`ipam`]).
//!
//! Must not: do I/O, read a clock or generate randomness. Callers pass uids
//! and timestamps in ([`ObjectMeta::stamp_creation`]).
//!
//! Where to start: [`document::parse_documents`] to read a manifest, then
//! [`AnyResource`]; the policy types ([`NetworkPolicy`],
//! [`GlobalNetworkPolicy`], [`Rule`]) for the policy engine;
//! [`keys::resource_key`] and [`keys::to_etcd_value`] for the datastore.

pub mod bgp;
pub mod cluster;
pub mod defaults;
pub mod document;
pub mod duration;
pub mod endpoint;
pub mod felix;
pub mod gofmt;
pub mod ipam;
pub mod ippool;
pub mod k8s;
pub mod keys;
pub mod kind;
pub mod meta;
pub mod net;
pub mod networkset;
pub mod node;
pub mod numorstring;
pub mod policy;
pub mod profile;
pub mod resource;
pub mod rule;
mod serde_util;
pub mod validate;

pub use bgp::{
    BgpConfiguration, BgpConfigurationSpec, BgpFilter, BgpFilterSpec, BgpPeer, BgpPeerSpec,
};
pub use cluster::{
    ClusterInformation, ClusterInformationSpec, KubeControllersConfiguration,
    KubeControllersConfigurationSpec,
};
pub use document::{Document, DocumentError, parse_documents};
pub use endpoint::{
    EndpointPort, HostEndpoint, HostEndpointSpec, IpNat, QosControls, WorkloadEndpoint,
    WorkloadEndpointPort, WorkloadEndpointSpec,
};
pub use felix::{FelixConfiguration, FelixConfigurationSpec};
pub use ippool::{
    EncapMode, IpPool, IpPoolAllowedUse, IpPoolSpec, IpReservation, IpReservationSpec,
    IpamConfiguration, IpamConfigurationSpec,
};
pub use kind::Kind;
pub use meta::{Condition, ListMeta, ObjectMeta, OwnerReference};
pub use networkset::{GlobalNetworkSet, GlobalNetworkSetSpec, NetworkSet, NetworkSetSpec};
pub use node::{CalicoNodeStatus, CalicoNodeStatusSpec, Node, NodeSpec};
pub use numorstring::{AsNumber, Dscp, IntOrString, Port, PortError, Protocol};
pub use policy::{
    GlobalNetworkPolicy, GlobalNetworkPolicySpec, NetworkPolicy, NetworkPolicySpec,
    PolicyPerformanceHint, StagedAction, StagedGlobalNetworkPolicy, StagedGlobalNetworkPolicySpec,
    StagedNetworkPolicy, StagedNetworkPolicySpec, Tier, TierSpec, TierStatus,
};
pub use profile::{Profile, ProfileSpec};
pub use resource::{AnyResource, Resource, ResourceError};
pub use rule::{
    Action, EntityRule, HttpMatch, HttpPath, IcmpFields, PolicyType, Rule, RuleMetadata,
    ServiceAccountMatch, ServiceMatch,
};
pub use validate::{ValidationError, ValidationErrors};
