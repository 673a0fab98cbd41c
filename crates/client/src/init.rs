//! Making sure a datastore has what Calico expects in every cluster: the
//! built-in tiers and the `default` ClusterInformation.

use calico_datastore::Backend;
use calico_model::cluster::{ClusterInformation, ClusterInformationSpec};
use calico_model::kind::Kind;
use calico_model::meta::ObjectMeta;
use calico_model::policy::{
    DEFAULT_TIER_NAME, DEFAULT_TIER_ORDER, KUBE_ADMIN_TIER_NAME, KUBE_ADMIN_TIER_ORDER,
    KUBE_BASELINE_TIER_NAME, KUBE_BASELINE_TIER_ORDER, Tier, TierSpec,
};
use calico_model::resource::AnyResource;
use calico_model::rule::Action;

use crate::client::Client;
use crate::error::Error;

/// Name of the one ClusterInformation resource.
pub const CLUSTER_INFO_NAME: &str = "default";

/// How often a lost race to create or update ClusterInformation is retried.
const ATTEMPTS: usize = 5;

impl<B: Backend> Client<B> {
    /// Creates what every Calico datastore holds, as Calico's
    /// `EnsureInitialized` does: the `default` (Deny), `kube-admin` and
    /// `kube-baseline` (Pass) tiers, and the `default` ClusterInformation
    /// with a cluster GUID, `datastoreReady: true`, and the given version
    /// and cluster type (merged into an existing one). Existing resources
    /// are left as they are. Every step is tried; the first error is
    /// returned.
    pub async fn ensure_initialized(
        &self,
        calico_version: &str,
        cluster_type: &str,
    ) -> Result<(), Error> {
        let mut first_error = self
            .ensure_cluster_information(calico_version, cluster_type)
            .await
            .err();
        for (name, action, order) in [
            (DEFAULT_TIER_NAME, Action::Deny, DEFAULT_TIER_ORDER),
            (KUBE_ADMIN_TIER_NAME, Action::Pass, KUBE_ADMIN_TIER_ORDER),
            (
                KUBE_BASELINE_TIER_NAME,
                Action::Pass,
                KUBE_BASELINE_TIER_ORDER,
            ),
        ] {
            let tier = Tier {
                metadata: ObjectMeta::named(name),
                spec: TierSpec {
                    order: Some(order),
                    default_action: Some(action),
                },
                ..Tier::default()
            };
            match self.create(AnyResource::Tier(tier)).await {
                Ok(_) | Err(Error::AlreadyExists { .. }) => {}
                Err(e) => {
                    tracing::info!(tier = name, error = %e, "unable to initialize tier");
                    first_error.get_or_insert(e);
                }
            }
        }
        match first_error {
            None => Ok(()),
            Some(e) => Err(e),
        }
    }

    async fn ensure_cluster_information(
        &self,
        calico_version: &str,
        cluster_type: &str,
    ) -> Result<(), Error> {
        let mut last = None;
        for _ in 0..ATTEMPTS {
            let current = match self
                .get(Kind::ClusterInformation, "", CLUSTER_INFO_NAME)
                .await
            {
                Ok(AnyResource::ClusterInformation(info)) => info,
                Ok(_) => unreachable!("a ClusterInformation read returns a ClusterInformation"),
                Err(Error::NotFound { .. }) => {
                    let info = ClusterInformation {
                        metadata: ObjectMeta::named(CLUSTER_INFO_NAME),
                        spec: ClusterInformationSpec {
                            cluster_guid: self.stamper().uid().replace('-', ""),
                            cluster_type: cluster_type.to_owned(),
                            calico_version: calico_version.to_owned(),
                            datastore_ready: Some(true),
                            ..ClusterInformationSpec::default()
                        },
                    };
                    match self.create(AnyResource::ClusterInformation(info)).await {
                        Err(e @ Error::AlreadyExists { .. }) => {
                            last = Some(e);
                            continue;
                        }
                        other => return other.map(drop),
                    }
                }
                Err(e) => return Err(e),
            };
            let mut info = current.clone();
            if !calico_version.is_empty() {
                info.spec.calico_version = calico_version.to_owned();
            }
            if info.spec.cluster_guid.is_empty() {
                info.spec.cluster_guid = self.stamper().uid().replace('-', "");
            }
            info.spec.datastore_ready.get_or_insert(true);
            if !cluster_type.is_empty() {
                info.spec.cluster_type = merge_cluster_types(&info.spec.cluster_type, cluster_type);
            }
            if info == current {
                return Ok(());
            }
            match self.update(AnyResource::ClusterInformation(info)).await {
                Err(e @ Error::Conflict { .. }) => last = Some(e),
                other => return other.map(drop),
            }
        }
        Err(last.expect("the loop ran at least once"))
    }
}

/// The comma-separated union of cluster types, existing ones first.
fn merge_cluster_types(existing: &str, new: &str) -> String {
    let mut types: Vec<&str> = existing.split(',').filter(|t| !t.is_empty()).collect();
    for t in new.split(',').filter(|t| !t.is_empty()) {
        if !types.contains(&t) {
            types.push(t);
        }
    }
    types.join(",")
}

#[cfg(test)]
mod tests {
    use super::merge_cluster_types;

    #[test]
    fn cluster_types_merge_in_order() {
        assert_eq!(merge_cluster_types("", "k8s,bgp"), "k8s,bgp");
        assert_eq!(merge_cluster_types("k8s,bgp", "bgp,kdd"), "k8s,bgp,kdd");
    }
}
