//! Where the plugin records workloads: WorkloadEndpoints (and the profile
//! Calico creates per network) in the datastore, behind
//! [`EndpointStore`].

use std::collections::BTreeMap;

use calico_model::{Profile, WorkloadEndpoint};
use futures::future::BoxFuture;

use crate::error::{CniError, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object changed since it was read (compare-and-swap lost).
    #[error("{kind} {name} was modified concurrently")]
    Conflict { kind: &'static str, name: String },
    /// The datastore cannot be reached; retrying later may work.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    /// The datastore refused the object.
    #[error("datastore rejected {kind} {name}: {reason}")]
    Rejected {
        kind: &'static str,
        name: String,
        reason: String,
    },
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

impl StoreError {
    pub fn to_cni(&self, context: &str) -> CniError {
        let code = match self {
            StoreError::Unavailable(_) | StoreError::Conflict { .. } => ErrorCode::TryAgainLater,
            _ => ErrorCode::Internal,
        };
        CniError::from_error(code, self).prefixed(context)
    }
}

/// How a delete went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Deleted,
    NotFound,
}

/// The datastore operations the plugin needs. Implementations key
/// WorkloadEndpoints as Calico does
/// (`/calico/resources/v3/projectcalico.org/workloadendpoints/<namespace>/<name>`
/// in etcd) and store them as Calico's JSON.
pub trait EndpointStore: Send + Sync {
    /// Whether Calico's `ClusterInformation` says the datastore is ready
    /// (`datastoreReady`, false during upgrades).
    fn datastore_ready(&self) -> BoxFuture<'_, Result<bool, StoreError>>;

    fn get<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<WorkloadEndpoint>, StoreError>>;

    /// Creates the endpoint when its `resourceVersion` is empty, otherwise
    /// updates it if unchanged since read; returns it as stored.
    fn apply<'a>(
        &'a self,
        endpoint: &'a WorkloadEndpoint,
    ) -> BoxFuture<'a, Result<WorkloadEndpoint, StoreError>>;

    /// Deletes the endpoint. With `expected_revision`, only if it is still
    /// that revision ([`StoreError::Conflict`] otherwise).
    fn delete<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
        expected_revision: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Deleted, StoreError>>;

    /// Creates the profile if no profile of that name exists; an existing
    /// one is left as it is (Calico never updates it from the plugin).
    fn ensure_profile<'a>(&'a self, profile: &'a Profile) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// Pod metadata from the orchestrator: what Calico reads from the
/// Kubernetes API when `policy.type` is `k8s`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PodInfo {
    /// Labels for the endpoint, already converted as Calico converts a pod
    /// (the pod's labels plus `projectcalico.org/serviceaccount` …).
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// Profiles for the endpoint (`kns.<namespace>`, `ksa.<namespace>.<sa>`).
    pub profiles: Vec<String>,
    pub service_account: String,
    pub generate_name: String,
    /// Annotations of the pod's namespace (pool selection).
    pub namespace_annotations: BTreeMap<String, String>,
}

/// Where pod metadata comes from.
pub trait PodInfoSource: Send + Sync {
    fn pod<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodInfo>, StoreError>>;
}

/// No orchestrator API: pods get only what `CNI_ARGS` says.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPodInfo;

impl PodInfoSource for NoPodInfo {
    fn pod<'a>(
        &'a self,
        _namespace: &'a str,
        _name: &'a str,
    ) -> BoxFuture<'a, Result<Option<PodInfo>, StoreError>> {
        Box::pin(async { Ok(None) })
    }
}
