//! Calico's resource model: the `projectcalico.org/v3` kinds and the
//! Kubernetes `networking.k8s.io/v1` NetworkPolicy, with the exact JSON/YAML
//! field names Calico uses.
//!
//! Owns: resource types and their serde shape (unknown fields are rejected,
//! as Calico rejects them), the number-or-string value types in
//! [`numorstring`].
//!
//! Must not: do I/O, read a clock or generate randomness. Callers pass uids
//! and timestamps in.
//!
//! Start at the policy types ([`NetworkPolicy`], [`GlobalNetworkPolicy`],
//! [`Rule`]) or, for Kubernetes policy, [`k8s::NetworkPolicy`].

pub mod bgp;
pub mod cluster;
pub mod defaults;
pub mod document;
pub mod duration;
pub mod endpoint;
pub mod felix;
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
mod yaml_out;

pub use bgp::{
    BgpConfiguration, BgpConfigurationSpec, BgpFilter, BgpFilterSpec, BgpPeer, BgpPeerSpec,
};
pub use cluster::{
    ClusterInformation, ClusterInformationSpec, KubeControllersConfiguration,
    KubeControllersConfigurationSpec,
};
pub use endpoint::{
    EndpointPort, HostEndpoint, HostEndpointSpec, IpNat, QosControls, WorkloadEndpoint,
    WorkloadEndpointPort, WorkloadEndpointSpec,
};
pub use felix::{FelixConfiguration, FelixConfigurationSpec};
pub use ippool::{
    EncapMode, IpPool, IpPoolAllowedUse, IpPoolSpec, IpReservation, IpReservationSpec,
    IpamConfiguration, IpamConfigurationSpec,
};
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
pub use rule::{
    Action, EntityRule, HttpMatch, HttpPath, IcmpFields, PolicyType, Rule, RuleMetadata,
    ServiceAccountMatch, ServiceMatch,
};
