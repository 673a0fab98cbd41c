//! `CNI_ARGS`: `KEY=VALUE` pairs separated by `;`.
//!
//! Calico always behaves as if `IgnoreUnknown=1` were given (it adds it
//! itself), so keys it does not know are kept, not rejected.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::str::FromStr;

use crate::error::{CniError, ErrorCode};

/// The pairs of `CNI_ARGS` that mean something to Calico, and the rest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CniArgs {
    pub k8s_pod_namespace: Option<String>,
    pub k8s_pod_name: Option<String>,
    pub k8s_pod_infra_container_id: Option<String>,
    pub k8s_pod_uid: Option<String>,
    /// `IP=`: a specific address requested from IPAM.
    pub ip: Option<IpAddr>,
    /// `CNI_TEST_NAMESPACE=`: the namespace for non-Kubernetes workloads
    /// (Calico's test hook).
    pub test_namespace: Option<String>,
    pub ignore_unknown: bool,
    /// Every other pair, as given.
    pub other: BTreeMap<String, String>,
}

impl CniArgs {
    /// The pod's namespace and name, when both are present: the workload is
    /// a Kubernetes pod.
    pub fn k8s_pod(&self) -> Option<(&str, &str)> {
        match (&self.k8s_pod_namespace, &self.k8s_pod_name) {
            (Some(ns), Some(name)) if !ns.is_empty() && !name.is_empty() => Some((ns, name)),
            _ => None,
        }
    }
}

impl FromStr for CniArgs {
    type Err = CniError;

    fn from_str(text: &str) -> Result<Self, CniError> {
        let mut args = CniArgs::default();
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let mut parts = pair.splitn(3, '=');
            let (Some(key), Some(value), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("CNI_ARGS: invalid pair {pair:?}: expected KEY=VALUE"),
                ));
            };
            let value = value.to_string();
            match key {
                "K8S_POD_NAMESPACE" => args.k8s_pod_namespace = Some(value),
                "K8S_POD_NAME" => args.k8s_pod_name = Some(value),
                "K8S_POD_INFRA_CONTAINER_ID" => args.k8s_pod_infra_container_id = Some(value),
                "K8S_POD_UID" => args.k8s_pod_uid = Some(value),
                "CNI_TEST_NAMESPACE" => args.test_namespace = Some(value),
                "IP" => {
                    args.ip = Some(value.parse().map_err(|_| {
                        CniError::new(
                            ErrorCode::InvalidEnvironment,
                            format!("CNI_ARGS: IP={value} is not an IP address"),
                        )
                    })?);
                }
                "IgnoreUnknown" => {
                    args.ignore_unknown = match value.to_ascii_lowercase().as_str() {
                        "1" | "true" => true,
                        "0" | "false" => false,
                        _ => {
                            return Err(CniError::new(
                                ErrorCode::InvalidEnvironment,
                                format!("CNI_ARGS: IgnoreUnknown={value} is not a boolean"),
                            ));
                        }
                    };
                }
                _ => {
                    args.other.insert(key.to_string(), value);
                }
            }
        }
        Ok(args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelet_args_parse() {
        let args: CniArgs = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx-7d8b;K8S_POD_INFRA_CONTAINER_ID=abc123;K8S_POD_UID=0b1c"
            .parse()
            .unwrap();
        assert_eq!(args.k8s_pod(), Some(("default", "nginx-7d8b")));
        assert_eq!(args.k8s_pod_infra_container_id.as_deref(), Some("abc123"));
        assert_eq!(args.k8s_pod_uid.as_deref(), Some("0b1c"));
        assert!(args.ignore_unknown);
        assert!(args.other.is_empty());
    }

    #[test]
    fn unknown_keys_are_kept_and_ip_is_typed() {
        let args: CniArgs = "FOO=bar;IP=10.0.0.7;".parse().unwrap();
        assert_eq!(args.other.get("FOO").map(String::as_str), Some("bar"));
        assert_eq!(args.ip, Some("10.0.0.7".parse().unwrap()));
        assert_eq!(args.k8s_pod(), None);
        let empty: CniArgs = "".parse().unwrap();
        assert_eq!(empty, CniArgs::default());
    }

    #[test]
    fn malformed_pairs_name_the_pair() {
        for (text, needle) in [
            ("K8S_POD_NAME", "\"K8S_POD_NAME\""),
            ("A=b=c", "\"A=b=c\""),
            ("IP=10.0.0.300", "IP=10.0.0.300"),
            ("IgnoreUnknown=maybe", "IgnoreUnknown=maybe"),
        ] {
            let error = text.parse::<CniArgs>().unwrap_err();
            assert_eq!(error.code, ErrorCode::InvalidEnvironment);
            assert!(error.msg.contains(needle), "{text}: {}", error.msg);
        }
    }

    #[test]
    fn pod_needs_both_namespace_and_name() {
        let args: CniArgs = "K8S_POD_NAMESPACE=default;K8S_POD_NAME=".parse().unwrap();
        assert_eq!(args.k8s_pod(), None);
    }
}
