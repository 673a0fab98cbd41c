//! Names of the things the engine tracks: endpoints, policies, network sets
//! and IP sets. All order deterministically so they can key `BTreeMap`s.

use std::fmt;

/// A workload or host endpoint.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum EndpointKey {
    /// A WorkloadEndpoint, by namespace and (Calico) name.
    Workload { namespace: String, name: String },
    /// A HostEndpoint, by name.
    Host { name: String },
}

impl EndpointKey {
    pub fn workload(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        EndpointKey::Workload {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn host(name: impl Into<String>) -> Self {
        EndpointKey::Host { name: name.into() }
    }

    pub fn is_host(&self) -> bool {
        matches!(self, EndpointKey::Host { .. })
    }
}

impl fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointKey::Workload { namespace, name } => {
                write!(f, "workloadendpoint {namespace}/{name}")
            }
            EndpointKey::Host { name } => write!(f, "hostendpoint {name}"),
        }
    }
}

/// The kind of resource a policy came from. Part of a policy's identity (a
/// NetworkPolicy and a Kubernetes NetworkPolicy may share a name) and of its
/// sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PolicyKind {
    NetworkPolicy,
    GlobalNetworkPolicy,
    /// A `networking.k8s.io/v1` NetworkPolicy, converted as libcalico-go
    /// converts it (name kept).
    KubernetesNetworkPolicy,
}

impl PolicyKind {
    /// Calico's kind string.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::NetworkPolicy => "NetworkPolicy",
            PolicyKind::GlobalNetworkPolicy => "GlobalNetworkPolicy",
            PolicyKind::KubernetesNetworkPolicy => "KubernetesNetworkPolicy",
        }
    }
}

/// A policy's identity. `namespace` is empty for global policies.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PolicyKey {
    pub kind: PolicyKind,
    pub namespace: String,
    pub name: String,
}

impl PolicyKey {
    pub fn network_policy(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PolicyKey {
            kind: PolicyKind::NetworkPolicy,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    pub fn global(name: impl Into<String>) -> Self {
        PolicyKey {
            kind: PolicyKind::GlobalNetworkPolicy,
            namespace: String::new(),
            name: name.into(),
        }
    }

    pub fn kubernetes(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        PolicyKey {
            kind: PolicyKind::KubernetesNetworkPolicy,
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The text Calico compares to order policies of equal `order`:
    /// `name/namespace/kind`.
    pub fn tie_break(&self) -> String {
        format!("{}/{}/{}", self.name, self.namespace, self.kind.as_str())
    }
}

impl fmt::Display for PolicyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.kind.as_str(), self.name)
        } else {
            write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
        }
    }
}

/// A NetworkSet or GlobalNetworkSet.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum NetworkSetKey {
    Namespaced { namespace: String, name: String },
    Global { name: String },
}

impl fmt::Display for NetworkSetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetworkSetKey::Namespaced { namespace, name } => {
                write!(f, "networkset {namespace}/{name}")
            }
            NetworkSetKey::Global { name } => write!(f, "globalnetworkset {name}"),
        }
    }
}

/// Anything whose addresses can be members of an IP set.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ItemKey {
    Endpoint(EndpointKey),
    NetworkSet(NetworkSetKey),
}

/// An IP set's id. Selector sets use Calico's selector unique id
/// (`s:<base64url(sha224)>`), named-port sets Calico's `n:` id, so the same
/// rules give the same ids as in Calico.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct IpSetId(pub String);

impl IpSetId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IpSetId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
