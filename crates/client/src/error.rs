//! What a resource operation can fail with, naming the resource.

use std::fmt;

use calico_model::kind::Kind;
use calico_model::validate::ValidationErrors;

/// Which resource an error is about: Calico prints it as `Kind(name)` or
/// `Kind(namespace/name)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceId {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl ResourceId {
    pub fn new(kind: Kind, namespace: impl Into<String>, name: impl Into<String>) -> ResourceId {
        ResourceId {
            kind,
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ResourceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind.namespaced() {
            write!(f, "{}({}/{})", self.kind, self.namespace, self.name)
        } else {
            write!(f, "{}({})", self.kind, self.name)
        }
    }
}

/// Errors of [`crate::Client`] operations. The first lines of each message
/// are Calico's (`resource does not exist: IPPool(p1)`), so scripts that
/// look for them keep working.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("resource does not exist: {id}")]
    NotFound { id: ResourceId },

    #[error("resource already exists: {id}")]
    AlreadyExists { id: ResourceId },

    /// The resource changed since the version the caller read.
    #[error("update conflict: {id}{}", conflict_detail(expected, actual))]
    Conflict {
        id: ResourceId,
        /// The `resourceVersion` the caller gave, if any.
        expected: Option<String>,
        /// The stored `resourceVersion`, when known.
        actual: Option<String>,
    },

    /// The resource breaks Calico's rules; the source lists every field.
    #[error("{id} is invalid")]
    Invalid {
        id: ResourceId,
        #[source]
        errors: ValidationErrors,
    },

    /// Calico refuses this operation on this resource.
    #[error("operation {operation} is not supported on {id}: {reason}")]
    NotSupported {
        operation: &'static str,
        id: ResourceId,
        reason: String,
    },

    /// A Kubernetes NetworkPolicy that cannot be converted to Calico's form.
    #[error("cannot convert {id} to a Calico NetworkPolicy")]
    Conversion {
        id: ResourceId,
        #[source]
        source: Box<calico_policy::knp::ConversionError>,
    },

    /// Releasing a deleted pool's IPAM block affinities failed.
    #[error("releasing the IPAM block affinities of {id} failed")]
    Ipam {
        id: ResourceId,
        #[source]
        source: Box<calico_ipam::IpamError>,
    },

    /// A stored value that is not a valid resource.
    #[error("datastore entry {key} is not a valid {kind} resource")]
    Decode {
        key: String,
        kind: Kind,
        #[source]
        source: Box<calico_model::resource::ResourceError>,
    },

    /// The datastore failed (unreachable, timed out, ...).
    #[error("datastore operation on {id} failed")]
    Datastore {
        id: ResourceId,
        #[source]
        source: Box<calico_datastore::Error>,
    },

    /// The datastore failed while listing or watching a kind.
    #[error("datastore operation on {kind} resources failed")]
    DatastoreList {
        kind: Kind,
        #[source]
        source: Box<calico_datastore::Error>,
    },
}

fn conflict_detail(expected: &Option<String>, actual: &Option<String>) -> String {
    match (expected, actual) {
        (Some(e), Some(a)) => format!(
            ": resource version '{e}' is out of date (latest: {a}). Update the resource YAML/JSON in order to make changes"
        ),
        _ => String::new(),
    }
}

impl Error {
    /// The resource the error is about, when there is one.
    pub fn id(&self) -> Option<&ResourceId> {
        match self {
            Error::NotFound { id }
            | Error::AlreadyExists { id }
            | Error::Conflict { id, .. }
            | Error::Invalid { id, .. }
            | Error::NotSupported { id, .. }
            | Error::Conversion { id, .. }
            | Error::Ipam { id, .. }
            | Error::Datastore { id, .. } => Some(id),
            Error::Decode { .. } | Error::DatastoreList { .. } => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    pub fn is_already_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists { .. })
    }

    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Conflict { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_resource_as_calico_does() {
        let pool = ResourceId::new(Kind::IpPool, "", "p1");
        let np = ResourceId::new(Kind::NetworkPolicy, "prod", "allow");
        assert_eq!(
            Error::NotFound { id: pool.clone() }.to_string(),
            "resource does not exist: IPPool(p1)"
        );
        assert_eq!(
            Error::AlreadyExists { id: np.clone() }.to_string(),
            "resource already exists: NetworkPolicy(prod/allow)"
        );
        assert_eq!(
            Error::Conflict {
                id: pool.clone(),
                expected: Some("5".into()),
                actual: Some("7".into())
            }
            .to_string(),
            "update conflict: IPPool(p1): resource version '5' is out of date (latest: 7). Update the resource YAML/JSON in order to make changes"
        );
        assert_eq!(
            Error::Conflict {
                id: pool,
                expected: None,
                actual: None
            }
            .to_string(),
            "update conflict: IPPool(p1)"
        );
    }
}
