//! From datastore resources to the policy engine's updates: each resource
//! becomes an [`Update`], and the [`Update`] that removes it again is
//! remembered under its datastore key (a policy's engine name comes from
//! the resource, which a delete event no longer carries).

use calico_model::resource::AnyResource;
use calico_policy::Update;

/// The engine update for a resource, and the update that deletes it;
/// `None` for kinds the engine does not take.
pub fn to_update(resource: AnyResource) -> Option<(Update, Update)> {
    let meta = resource.metadata();
    let (namespace, name) = (meta.namespace.clone(), meta.name.clone());
    Some(match resource {
        AnyResource::Tier(r) => (r.into(), Update::DeleteTier { name }),
        AnyResource::NetworkPolicy(r) => {
            (r.into(), Update::DeleteNetworkPolicy { namespace, name })
        }
        AnyResource::GlobalNetworkPolicy(r) => {
            (r.into(), Update::DeleteGlobalNetworkPolicy { name })
        }
        AnyResource::KubernetesNetworkPolicy(r) => (
            r.into(),
            Update::DeleteKubernetesNetworkPolicy { namespace, name },
        ),
        AnyResource::Profile(r) => (r.into(), Update::DeleteProfile { name }),
        AnyResource::NetworkSet(r) => (r.into(), Update::DeleteNetworkSet { namespace, name }),
        AnyResource::GlobalNetworkSet(r) => (r.into(), Update::DeleteGlobalNetworkSet { name }),
        AnyResource::HostEndpoint(r) => (r.into(), Update::DeleteHostEndpoint { name }),
        AnyResource::WorkloadEndpoint(r) => {
            (r.into(), Update::DeleteWorkloadEndpoint { namespace, name })
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{NetworkPolicy, ObjectMeta, WorkloadEndpoint};

    #[test]
    fn deletes_name_what_was_applied() {
        let policy = NetworkPolicy {
            metadata: ObjectMeta::namespaced("ns", "sec.p"),
            ..NetworkPolicy::default()
        };
        let (update, delete) = to_update(policy.into()).unwrap();
        assert!(matches!(update, Update::NetworkPolicy(_)));
        assert_eq!(
            delete,
            Update::DeleteNetworkPolicy {
                namespace: "ns".into(),
                name: "sec.p".into()
            }
        );
        let wep = WorkloadEndpoint {
            metadata: ObjectMeta::namespaced("ns", "n-k8s-pod-eth0"),
            ..WorkloadEndpoint::default()
        };
        assert!(matches!(
            to_update(wep.into()).unwrap().1,
            Update::DeleteWorkloadEndpoint { .. }
        ));
        let pool = calico_model::IpPool::default();
        assert!(to_update(pool.into()).is_none());
    }
}
