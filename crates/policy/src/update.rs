//! The engine's input: one resource created, replaced or deleted.

use calico_model::k8s::NetworkPolicy as K8sNetworkPolicy;
use calico_model::{
    AnyResource, GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, Kind, NetworkPolicy,
    NetworkSet, Profile, Tier, WorkloadEndpoint,
};

/// A resource upsert or delete. Resources are boxed because they are large
/// next to the delete variants.
#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Tier(Box<Tier>),
    DeleteTier {
        name: String,
    },
    NetworkPolicy(Box<NetworkPolicy>),
    DeleteNetworkPolicy {
        namespace: String,
        name: String,
    },
    GlobalNetworkPolicy(Box<GlobalNetworkPolicy>),
    DeleteGlobalNetworkPolicy {
        name: String,
    },
    /// A `networking.k8s.io/v1` NetworkPolicy (Kubernetes datastore mode);
    /// in etcd mode kube-controllers stores the converted policy as a
    /// NetworkPolicy instead.
    KubernetesNetworkPolicy(Box<K8sNetworkPolicy>),
    DeleteKubernetesNetworkPolicy {
        namespace: String,
        name: String,
    },
    Profile(Box<Profile>),
    DeleteProfile {
        name: String,
    },
    NetworkSet(Box<NetworkSet>),
    DeleteNetworkSet {
        namespace: String,
        name: String,
    },
    GlobalNetworkSet(Box<GlobalNetworkSet>),
    DeleteGlobalNetworkSet {
        name: String,
    },
    HostEndpoint(Box<HostEndpoint>),
    DeleteHostEndpoint {
        name: String,
    },
    WorkloadEndpoint(Box<WorkloadEndpoint>),
    DeleteWorkloadEndpoint {
        namespace: String,
        name: String,
    },
}

macro_rules! from_resource {
    ($($ty:ty => $variant:ident),* $(,)?) => {
        $(impl From<$ty> for Update {
            fn from(r: $ty) -> Self {
                Update::$variant(Box::new(r))
            }
        })*
    };
}

from_resource! {
    Tier => Tier,
    NetworkPolicy => NetworkPolicy,
    GlobalNetworkPolicy => GlobalNetworkPolicy,
    K8sNetworkPolicy => KubernetesNetworkPolicy,
    Profile => Profile,
    NetworkSet => NetworkSet,
    GlobalNetworkSet => GlobalNetworkSet,
    HostEndpoint => HostEndpoint,
    WorkloadEndpoint => WorkloadEndpoint,
}

impl Update {
    /// The upsert for a resource of a kind policy depends on; `None` for
    /// other kinds (IP pools, BGP, configuration, staged policy).
    pub fn from_resource(resource: AnyResource) -> Option<Update> {
        Some(match resource {
            AnyResource::Tier(r) => r.into(),
            AnyResource::NetworkPolicy(r) => r.into(),
            AnyResource::GlobalNetworkPolicy(r) => r.into(),
            AnyResource::KubernetesNetworkPolicy(r) => r.into(),
            AnyResource::Profile(r) => r.into(),
            AnyResource::NetworkSet(r) => r.into(),
            AnyResource::GlobalNetworkSet(r) => r.into(),
            AnyResource::HostEndpoint(r) => r.into(),
            AnyResource::WorkloadEndpoint(r) => r.into(),
            _ => return None,
        })
    }

    /// The delete for a resource of a kind policy depends on (`namespace`
    /// is ignored for cluster-wide kinds); `None` for other kinds.
    pub fn delete(kind: Kind, namespace: &str, name: &str) -> Option<Update> {
        let (namespace, name) = (namespace.to_string(), name.to_string());
        Some(match kind {
            Kind::Tier => Update::DeleteTier { name },
            Kind::NetworkPolicy => Update::DeleteNetworkPolicy { namespace, name },
            Kind::GlobalNetworkPolicy => Update::DeleteGlobalNetworkPolicy { name },
            Kind::KubernetesNetworkPolicy => {
                Update::DeleteKubernetesNetworkPolicy { namespace, name }
            }
            Kind::Profile => Update::DeleteProfile { name },
            Kind::NetworkSet => Update::DeleteNetworkSet { namespace, name },
            Kind::GlobalNetworkSet => Update::DeleteGlobalNetworkSet { name },
            Kind::HostEndpoint => Update::DeleteHostEndpoint { name },
            Kind::WorkloadEndpoint => Update::DeleteWorkloadEndpoint { namespace, name },
            _ => return None,
        })
    }

    /// `kind namespace/name` of the resource, for messages.
    pub fn describe(&self) -> String {
        fn ns(kind: &str, namespace: &str, name: &str) -> String {
            format!("{kind} {namespace}/{name}")
        }
        match self {
            Update::Tier(r) => format!("Tier {}", r.metadata.name),
            Update::DeleteTier { name } => format!("Tier {name}"),
            Update::NetworkPolicy(r) => {
                ns("NetworkPolicy", &r.metadata.namespace, &r.metadata.name)
            }
            Update::DeleteNetworkPolicy { namespace, name } => ns("NetworkPolicy", namespace, name),
            Update::GlobalNetworkPolicy(r) => format!("GlobalNetworkPolicy {}", r.metadata.name),
            Update::DeleteGlobalNetworkPolicy { name } => format!("GlobalNetworkPolicy {name}"),
            Update::KubernetesNetworkPolicy(r) => ns(
                "Kubernetes NetworkPolicy",
                &r.metadata.namespace,
                &r.metadata.name,
            ),
            Update::DeleteKubernetesNetworkPolicy { namespace, name } => {
                ns("Kubernetes NetworkPolicy", namespace, name)
            }
            Update::Profile(r) => format!("Profile {}", r.metadata.name),
            Update::DeleteProfile { name } => format!("Profile {name}"),
            Update::NetworkSet(r) => ns("NetworkSet", &r.metadata.namespace, &r.metadata.name),
            Update::DeleteNetworkSet { namespace, name } => ns("NetworkSet", namespace, name),
            Update::GlobalNetworkSet(r) => format!("GlobalNetworkSet {}", r.metadata.name),
            Update::DeleteGlobalNetworkSet { name } => format!("GlobalNetworkSet {name}"),
            Update::HostEndpoint(r) => format!("HostEndpoint {}", r.metadata.name),
            Update::DeleteHostEndpoint { name } => format!("HostEndpoint {name}"),
            Update::WorkloadEndpoint(r) => {
                ns("WorkloadEndpoint", &r.metadata.namespace, &r.metadata.name)
            }
            Update::DeleteWorkloadEndpoint { namespace, name } => {
                ns("WorkloadEndpoint", namespace, name)
            }
        }
    }
}
