//! Kubernetes `networking.k8s.io/v1` NetworkPolicies: in an etcd (or
//! embedded) datastore, Calico keeps them as the Calico NetworkPolicy
//! `knp.default.<name>` that kube-controllers writes, so that is what this
//! client stores, reads and deletes for them.

use calico_model::kind::Kind;
use calico_model::resource::AnyResource;
use calico_policy::knp::{self, ETCD_NAME_PREFIX};

use crate::client::id_of;
use crate::error::Error;

/// The kind and name a resource is stored under.
pub(crate) fn stored_identity(kind: Kind, name: &str) -> (Kind, String) {
    match kind {
        Kind::KubernetesNetworkPolicy => (Kind::NetworkPolicy, format!("{ETCD_NAME_PREFIX}{name}")),
        _ => (kind, name.to_owned()),
    }
}

/// The kind listed for `kind`, and the name prefix its items have.
pub(crate) fn stored_listing(kind: Kind) -> (Kind, &'static str) {
    match kind {
        Kind::KubernetesNetworkPolicy => (Kind::NetworkPolicy, ETCD_NAME_PREFIX),
        _ => (kind, ""),
    }
}

/// The resource to store for `resource`: itself, or for a Kubernetes
/// NetworkPolicy (checked first in its own form) its Calico conversion.
pub(crate) fn to_stored(resource: AnyResource) -> Result<AnyResource, Error> {
    let AnyResource::KubernetesNetworkPolicy(policy) = &resource else {
        return Ok(resource);
    };
    let id = id_of(&resource);
    resource.validate().map_err(|errors| Error::Invalid {
        id: id.clone(),
        errors,
    })?;
    let converted = knp::convert_for_etcd(policy).map_err(|source| Error::Conversion {
        id,
        source: Box::new(source),
    })?;
    for dropped in &converted.dropped_rules {
        tracing::warn!(%dropped, "Kubernetes NetworkPolicy rule left out of the Calico policy");
    }
    Ok(AnyResource::NetworkPolicy(converted.policy))
}
