//! Names Calico derives for a workload: the host-side interface, the
//! WorkloadEndpoint resource, the IPAM handle.

use std::fmt::Write as _;

use sha1::{Digest, Sha1};

use crate::args::CniArgs;

/// The interface prefix Calico uses unless `FELIX_INTERFACEPREFIX` says
/// otherwise.
pub const DEFAULT_INTERFACE_PREFIX: &str = "cali";

/// The prefix for host-side interfaces: the first entry of
/// `FELIX_INTERFACEPREFIX` (a comma-separated list) or `cali`.
pub fn interface_prefix(felix_interface_prefix: Option<&str>) -> &str {
    felix_interface_prefix
        .and_then(|list| list.split(',').next())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .unwrap_or(DEFAULT_INTERFACE_PREFIX)
}

/// The host-side interface name for a Kubernetes pod: the prefix and the
/// first 11 hex digits of SHA-1(`<namespace>.<pod>`). Stable across the
/// pod's sandboxes, which is what lets the node agent find it from the pod
/// alone.
pub fn k8s_host_ifname(prefix: &str, namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let mut hex = String::with_capacity(40);
    for byte in digest {
        let _ = write!(hex, "{byte:02x}");
    }
    format!("{prefix}{}", &hex[..11])
}

/// The host-side interface name for a workload outside Kubernetes: the
/// prefix and the first 11 characters of the container ID.
pub fn container_host_ifname(prefix: &str, container_id: &str) -> String {
    let cut = container_id
        .char_indices()
        .nth(11)
        .map_or(container_id.len(), |(i, _)| i);
    format!("{prefix}{}", &container_id[..cut])
}

/// The host-side interface name for this invocation.
pub fn host_ifname(prefix: &str, args: &CniArgs, container_id: &str) -> String {
    match args.k8s_pod() {
        Some((namespace, pod)) => k8s_host_ifname(prefix, namespace, pod),
        None => container_host_ifname(prefix, container_id),
    }
}

/// The IPAM handle for an attachment: `<network>.<container ID>`.
pub fn handle_id(network: &str, container_id: &str) -> String {
    format!("{network}.{container_id}")
}

/// Who orchestrates the workload, which decides the name's shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orchestrator {
    /// `k8s`: `<node>-k8s-<pod>-<endpoint>`.
    Kubernetes,
    /// `cni` (any other runtime): `<node>-cni-<containerID>-<endpoint>`.
    Cni,
}

impl Orchestrator {
    pub fn as_str(self) -> &'static str {
        match self {
            Orchestrator::Kubernetes => "k8s",
            Orchestrator::Cni => "cni",
        }
    }
}

/// What identifies one WorkloadEndpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadIds {
    pub node: String,
    pub orchestrator: Orchestrator,
    /// The resource's namespace: the pod's namespace, or `default` (or
    /// `CNI_TEST_NAMESPACE`) outside Kubernetes.
    pub namespace: String,
    /// Kubernetes pod name; empty outside Kubernetes.
    pub pod: String,
    pub container_id: String,
    /// The pod-side interface name (`CNI_IFNAME`).
    pub endpoint: String,
}

/// A name segment Calico cannot encode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("WorkloadEndpoint {field} is empty")]
    Empty { field: &'static str },
    #[error("WorkloadEndpoint {field} {value:?} must not begin with a '-'")]
    LeadingDash { field: &'static str, value: String },
    #[error("WorkloadEndpoint {field} {value:?} must not end with a '-'")]
    TrailingDash { field: &'static str, value: String },
}

impl WorkloadIds {
    /// The identifiers for this invocation, as Calico derives them from
    /// `CNI_ARGS`: a pod when both `K8S_POD_NAMESPACE` and `K8S_POD_NAME`
    /// are given, a plain CNI workload otherwise.
    pub fn new(node: &str, args: &CniArgs, container_id: &str, ifname: &str) -> Self {
        match args.k8s_pod() {
            Some((namespace, pod)) => WorkloadIds {
                node: node.to_string(),
                orchestrator: Orchestrator::Kubernetes,
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container_id: container_id.to_string(),
                endpoint: ifname.to_string(),
            },
            None => WorkloadIds {
                node: node.to_string(),
                orchestrator: Orchestrator::Cni,
                namespace: args
                    .test_namespace
                    .clone()
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".to_string()),
                pod: String::new(),
                container_id: container_id.to_string(),
                endpoint: ifname.to_string(),
            },
        }
    }

    fn segments(&self) -> [(&'static str, &str); 4] {
        let workload = match self.orchestrator {
            Orchestrator::Kubernetes => ("pod", self.pod.as_str()),
            Orchestrator::Cni => ("containerID", self.container_id.as_str()),
        };
        [
            ("node", self.node.as_str()),
            ("orchestrator", self.orchestrator.as_str()),
            workload,
            ("endpoint", self.endpoint.as_str()),
        ]
    }

    /// The WorkloadEndpoint's name: the segments joined by `-`, each with
    /// its own dashes doubled (`node-1`, pod `web-0` →
    /// `node--1-k8s-web--0-eth0`).
    pub fn endpoint_name(&self) -> Result<String, NameError> {
        let mut parts = Vec::with_capacity(4);
        for (field, value) in self.segments() {
            parts.push(escape(field, value)?);
        }
        Ok(parts.join("-"))
    }

    /// The name without the endpoint segment, ending in `-`: what Calico
    /// lists to find the workload's endpoint whatever its interface name.
    pub fn endpoint_name_prefix(&self) -> Result<String, NameError> {
        let mut parts = Vec::with_capacity(3);
        for (field, value) in &self.segments()[..3] {
            parts.push(escape(field, value)?);
        }
        Ok(format!("{}-", parts.join("-")))
    }

    /// Whether `name` is an endpoint of this workload (any interface):
    /// prefix listings also return other pods whose names merely start the
    /// same way (`web` and `web-1`).
    pub fn matches(&self, name: &str) -> bool {
        let parts = split_name(name);
        let segments = self.segments();
        parts.len() == 4
            && parts[..3]
                .iter()
                .zip(&segments[..3])
                .all(|(p, (_, v))| p == v)
    }
}

fn escape(field: &'static str, value: &str) -> Result<String, NameError> {
    if value.is_empty() {
        return Err(NameError::Empty { field });
    }
    if value.starts_with('-') {
        return Err(NameError::LeadingDash {
            field,
            value: value.to_string(),
        });
    }
    if value.ends_with('-') {
        return Err(NameError::TrailingDash {
            field,
            value: value.to_string(),
        });
    }
    Ok(value.replace('-', "--"))
}

/// Splits an endpoint name into its unescaped segments.
pub fn split_name(name: &str) -> Vec<String> {
    let bytes = name.as_bytes();
    let mut parts = Vec::new();
    let mut start = 0;
    let mut i = 1;
    while i < bytes.len() {
        if bytes[i] == b'-' {
            if bytes.get(i + 1) == Some(&b'-') {
                i += 2;
                continue;
            }
            parts.push(name[start..i].replace("--", "-"));
            start = i + 1;
        }
        i += 1;
    }
    parts.push(name[start..].replace("--", "-"));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k8s_veth_names_match_calico() {
        // Calico's own test vector: namespace "namespace", pod "podname".
        assert_eq!(
            k8s_host_ifname("eni", "namespace", "podname"),
            "eni82111e10a96"
        );
        assert_eq!(
            k8s_host_ifname("cali", "namespace", "podname"),
            "cali82111e10a96"
        );
        assert_eq!(
            k8s_host_ifname("cali", "kube-system", "coredns-5d78c9869d-x2x7k").len(),
            15
        );
        assert_eq!(interface_prefix(Some("eni,veth,foo")), "eni");
        assert_eq!(interface_prefix(None), "cali");
        assert_eq!(interface_prefix(Some("")), "cali");
    }

    #[test]
    fn non_k8s_veth_names_use_the_container_id() {
        assert_eq!(
            container_host_ifname("cali", "0123456789abcdef"),
            "cali0123456789a"
        );
        assert_eq!(container_host_ifname("cali", "abc"), "caliabc");
        let args: CniArgs = "K8S_POD_NAMESPACE=namespace;K8S_POD_NAME=podname"
            .parse()
            .unwrap();
        assert_eq!(host_ifname("cali", &args, "ffff"), "cali82111e10a96");
        assert_eq!(
            host_ifname("cali", &CniArgs::default(), "ffffeeeeddddcccc"),
            "califfffeeeeddd"
        );
        assert_eq!(handle_id("k8s-pod-network", "abc"), "k8s-pod-network.abc");
    }

    fn ids(node: &str, orchestrator: Orchestrator, workload: &str, endpoint: &str) -> WorkloadIds {
        WorkloadIds {
            node: node.into(),
            orchestrator,
            namespace: "default".into(),
            pod: if orchestrator == Orchestrator::Kubernetes {
                workload.into()
            } else {
                String::new()
            },
            container_id: if orchestrator == Orchestrator::Cni {
                workload.into()
            } else {
                "cid".into()
            },
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn endpoint_names_escape_dashes_like_calico() {
        // Calico's vectors from libcalico-go's names package.
        assert_eq!(
            ids("node-1", Orchestrator::Kubernetes, "pod-name", "eth0")
                .endpoint_name()
                .unwrap(),
            "node--1-k8s-pod--name-eth0"
        );
        assert_eq!(
            ids("node-1", Orchestrator::Cni, "abcdefa0123456", "eth0")
                .endpoint_name()
                .unwrap(),
            "node--1-cni-abcdefa0123456-eth0"
        );
        assert_eq!(
            ids("node-1", Orchestrator::Kubernetes, "pod-name", "eth0")
                .endpoint_name_prefix()
                .unwrap(),
            "node--1-k8s-pod--name-"
        );
        assert_eq!(
            ids("node-1", Orchestrator::Cni, "-abcdefa0123456", "eth0")
                .endpoint_name()
                .unwrap_err(),
            NameError::LeadingDash {
                field: "containerID",
                value: "-abcdefa0123456".into()
            }
        );
        assert!(matches!(
            ids("node-", Orchestrator::Kubernetes, "p", "eth0").endpoint_name(),
            Err(NameError::TrailingDash { field: "node", .. })
        ));
        assert!(matches!(
            ids("", Orchestrator::Kubernetes, "p", "eth0").endpoint_name(),
            Err(NameError::Empty { field: "node" })
        ));
    }

    #[test]
    fn names_split_back_and_match_only_their_workload() {
        assert_eq!(
            split_name("node--1-k8s-pod--name-eth0"),
            vec!["node-1", "k8s", "pod-name", "eth0"]
        );
        let web = ids("n", Orchestrator::Kubernetes, "web", "eth0");
        assert!(web.matches("n-k8s-web-eth1"));
        assert!(
            !web.matches("n-k8s-web--1-eth0"),
            "pod web-1 is another pod"
        );
        assert!(!web.matches("n-k8s-web"));
    }

    #[test]
    fn identifiers_come_from_cni_args() {
        let k8s: CniArgs = "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1"
            .parse()
            .unwrap();
        let ids = WorkloadIds::new("node1", &k8s, "cid", "eth0");
        assert_eq!(ids.orchestrator, Orchestrator::Kubernetes);
        assert_eq!(ids.namespace, "kube-system");
        assert_eq!(ids.endpoint_name().unwrap(), "node1-k8s-coredns--1-eth0");

        let plain = WorkloadIds::new("node1", &CniArgs::default(), "abc123", "eth0");
        assert_eq!(plain.orchestrator, Orchestrator::Cni);
        assert_eq!(plain.namespace, "default");
        assert_eq!(plain.endpoint_name().unwrap(), "node1-cni-abc123-eth0");

        let test_ns: CniArgs = "CNI_TEST_NAMESPACE=team-a".parse().unwrap();
        assert_eq!(
            WorkloadIds::new("n", &test_ns, "c", "eth0").namespace,
            "team-a"
        );
    }
}
