//! What Kubernetes and Calico's kube-controllers would put in the
//! datastore for the lab's namespaces and pods, with no API server: a
//! `kns.<namespace>` profile per namespace (its labels as `pcns.` labels,
//! allow-all rules), a `ksa.<namespace>.<account>` profile per service
//! account, and each pod's identity on its WorkloadEndpoint (the pod's
//! labels, its service account, both profiles) once the CNI plugin has
//! written the endpoint. The plugin has no Kubernetes API to ask, so these
//! come in afterwards, as kube-controllers' pod controller does in
//! Calico's etcd mode.

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use calico_model::endpoint::LABEL_SERVICE_ACCOUNT;
use calico_model::{Action, ObjectMeta, Profile, Rule, WorkloadEndpoint};

use crate::datastore::Store;
use crate::state::PodState;

const NAME_LABEL: &str = "projectcalico.org/name";
const NAMESPACE_LABEL: &str = "projectcalico.org/namespace";
const ORCHESTRATOR_LABEL: &str = "projectcalico.org/orchestrator";
/// The label Kubernetes puts on every namespace.
const K8S_NAMESPACE_NAME_LABEL: &str = "kubernetes.io/metadata.name";

/// The profile of a namespace, as Calico converts a Kubernetes Namespace.
pub fn namespace_profile(namespace: &str, labels: &BTreeMap<String, String>) -> Profile {
    let mut apply: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (format!("pcns.{k}"), v.clone()))
        .collect();
    apply.insert(
        format!("pcns.{K8S_NAMESPACE_NAME_LABEL}"),
        namespace.to_string(),
    );
    apply.insert(format!("pcns.{NAME_LABEL}"), namespace.to_string());
    let mut profile = Profile {
        metadata: ObjectMeta::named(format!("kns.{namespace}")),
        ..Default::default()
    };
    profile.spec.ingress = vec![Rule::new(Action::Allow)];
    profile.spec.egress = vec![Rule::new(Action::Allow)];
    profile.spec.labels_to_apply = apply;
    profile
}

/// The profile of a service account: labels only, no rules.
pub fn service_account_profile(namespace: &str, account: &str) -> Profile {
    let mut profile = Profile {
        metadata: ObjectMeta::named(format!("ksa.{namespace}.{account}")),
        ..Default::default()
    };
    profile
        .spec
        .labels_to_apply
        .insert(format!("pcsa.{NAME_LABEL}"), account.to_string());
    profile
}

/// Creates or updates a profile to `desired`'s spec.
fn put_profile(store: &Store, desired: Profile) -> anyhow::Result<()> {
    let name = desired.metadata.name.clone();
    for _ in 0..10 {
        let result = match store.run(store.client.get_typed::<Profile>("", &name)) {
            Ok(current) if current.spec == desired.spec => return Ok(()),
            Ok(mut current) => {
                current.spec = desired.spec.clone();
                store.run(store.client.update_typed(current)).map(drop)
            }
            Err(e) if e.is_not_found() => store
                .run(store.client.create_typed(desired.clone()))
                .map(drop),
            Err(e) => return Err(e).with_context(|| format!("reading profile {name}")),
        };
        match result {
            Ok(()) => return Ok(()),
            Err(e) if e.is_conflict() || e.is_already_exists() => continue,
            Err(e) => return Err(e).with_context(|| format!("writing profile {name}")),
        }
    }
    bail!("profile {name} kept changing while the lab wrote it")
}

/// Makes the namespace's profile match its labels.
pub fn ensure_namespace(
    store: &Store,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> anyhow::Result<()> {
    put_profile(store, namespace_profile(namespace, labels))
}

/// Makes sure the service account's profile exists.
pub fn ensure_service_account(store: &Store, namespace: &str, account: &str) -> anyhow::Result<()> {
    put_profile(store, service_account_profile(namespace, account))
}

/// The WorkloadEndpoint's identity for `pod`, as Calico converts a pod:
/// the pod's labels plus the namespace, orchestrator and service account
/// labels, the service account, and the namespace's and account's
/// profiles.
pub fn apply_identity(endpoint: &mut WorkloadEndpoint, pod: &PodState) {
    let mut labels = pod.labels.clone();
    labels.insert(NAMESPACE_LABEL.into(), pod.namespace.clone());
    labels.insert(ORCHESTRATOR_LABEL.into(), "k8s".into());
    labels.insert(LABEL_SERVICE_ACCOUNT.into(), pod.service_account.clone());
    endpoint.metadata.labels = labels;
    endpoint.spec.service_account_name = pod.service_account.clone();
    endpoint.spec.profiles = vec![
        format!("kns.{}", pod.namespace),
        format!("ksa.{}.{}", pod.namespace, pod.service_account),
    ];
}

/// Finds the pod's WorkloadEndpoint (written by the CNI plugin) and gives
/// it the pod's identity. Returns the endpoint's name and addresses.
pub fn sync_pod(store: &Store, pod: &PodState) -> anyhow::Result<(String, Vec<String>)> {
    for _ in 0..10 {
        let endpoints = store
            .run(
                store
                    .client
                    .list_typed::<WorkloadEndpoint>(Some(&pod.namespace), None),
            )
            .context("listing workload endpoints")?;
        let Some(mut endpoint) = endpoints
            .into_iter()
            .find(|e| e.spec.pod == pod.name && e.spec.node == pod.node)
        else {
            bail!(
                "the CNI plugin wrote no WorkloadEndpoint for pod {}",
                pod.key()
            );
        };
        let name = endpoint.metadata.name.clone();
        let addresses = endpoint.spec.ip_networks.clone();
        let before = endpoint.clone();
        apply_identity(&mut endpoint, pod);
        if endpoint == before {
            return Ok((name, addresses));
        }
        match store.run(store.client.update_typed(endpoint)) {
            Ok(_) => return Ok((name, addresses)),
            Err(e) if e.is_conflict() => continue,
            Err(e) => {
                return Err(e).with_context(|| format!("updating WorkloadEndpoint {name}"));
            }
        }
    }
    bail!(
        "the WorkloadEndpoint of pod {} kept changing while the lab wrote it",
        pod.key()
    )
}

/// The sample policy `up` applies: a Kubernetes NetworkPolicy isolating
/// namespace `prod`, so its pods accept connections only from `prod`.
pub const SAMPLE_POLICY: &str = "\
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: isolate-prod
  namespace: prod
spec:
  podSelector: {}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {}
";

/// Applies every resource in a manifest as `calicoctl apply` does.
pub fn apply_manifest(store: &Store, source: &str, text: &str) -> anyhow::Result<Vec<String>> {
    let documents = calico_model::parse_documents(source, text)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("reading {source}"))?;
    let mut applied = Vec::new();
    for document in documents {
        let resource = document.resource;
        let what = format!(
            "{} {}",
            resource.kind(),
            match resource.metadata().namespace.as_str() {
                "" => resource.metadata().name.clone(),
                ns => format!("{ns}/{}", resource.metadata().name),
            }
        );
        store
            .run(store.client.apply(resource))
            .with_context(|| format!("applying {what}"))?;
        applied.push(what);
    }
    Ok(applied)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_labels_become_pcns_labels() {
        let labels = BTreeMap::from([("team".to_string(), "a".to_string())]);
        let profile = namespace_profile("prod", &labels);
        assert_eq!(profile.metadata.name, "kns.prod");
        assert_eq!(
            profile.spec.labels_to_apply,
            BTreeMap::from([
                (
                    "pcns.kubernetes.io/metadata.name".to_string(),
                    "prod".to_string()
                ),
                (
                    "pcns.projectcalico.org/name".to_string(),
                    "prod".to_string()
                ),
                ("pcns.team".to_string(), "a".to_string()),
            ])
        );
        assert_eq!(profile.spec.ingress, vec![Rule::new(Action::Allow)]);
        let sa = service_account_profile("prod", "web");
        assert_eq!(sa.metadata.name, "ksa.prod.web");
        assert!(sa.spec.ingress.is_empty());
        assert_eq!(
            sa.spec.labels_to_apply["pcsa.projectcalico.org/name"],
            "web"
        );
    }

    #[test]
    fn pods_get_their_kubernetes_identity() {
        let pod = PodState {
            namespace: "prod".into(),
            name: "web-1".into(),
            node: "node-1".into(),
            netns: String::new(),
            container_id: String::new(),
            uid: String::new(),
            service_account: "web".into(),
            labels: BTreeMap::from([("app".to_string(), "web".to_string())]),
            ip: String::new(),
            endpoint: String::new(),
        };
        let mut endpoint = WorkloadEndpoint::default();
        endpoint.spec.profiles = vec!["kns.prod".into()];
        apply_identity(&mut endpoint, &pod);
        assert_eq!(endpoint.metadata.labels["app"], "web");
        assert_eq!(
            endpoint.metadata.labels["projectcalico.org/namespace"],
            "prod"
        );
        assert_eq!(
            endpoint.metadata.labels["projectcalico.org/serviceaccount"],
            "web"
        );
        assert_eq!(endpoint.spec.service_account_name, "web");
        assert_eq!(endpoint.spec.profiles, vec!["kns.prod", "ksa.prod.web"]);
    }

    #[test]
    fn the_sample_policy_is_a_valid_kubernetes_network_policy() {
        let documents = calico_model::parse_documents("sample", SAMPLE_POLICY).unwrap();
        assert_eq!(documents.len(), 1);
        assert_eq!(
            documents[0].resource.kind(),
            calico_model::Kind::KubernetesNetworkPolicy
        );
    }
}
