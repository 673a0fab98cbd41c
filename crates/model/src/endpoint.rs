//! Endpoints policy applies to: HostEndpoint (a host interface or the whole
//! host) and WorkloadEndpoint (a pod's or container's interface).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::numorstring::{Dscp, Protocol};
use crate::serde_util::is_zero_i64;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostEndpoint {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: HostEndpointSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HostEndpointSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// `"*"` means all of the host's interfaces.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    #[serde(rename = "expectedIPs", default, skip_serializing_if = "Vec::is_empty")]
    pub expected_ips: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<EndpointPort>,
}

/// A named port on a host endpoint, for named-port rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointPort {
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkloadEndpoint {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: WorkloadEndpointSpec,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub orchestrator: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub workload: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(
        rename = "containerID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub container_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub endpoint: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account_name: String,
    #[serde(rename = "ipNetworks", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_networks: Vec<String>,
    #[serde(rename = "ipNATs", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_nats: Vec<IpNat>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv4_gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ipv6_gateway: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<WorkloadEndpointPort>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow_spoofed_source_prefixes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qos_controls: Option<QosControls>,
}

/// A named port on a workload, optionally mapped to a host port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadEndpointPort {
    #[serde(default)]
    pub name: String,
    pub protocol: Protocol,
    pub port: u16,
    #[serde(default)]
    pub host_port: u16,
    #[serde(rename = "hostIP", default)]
    pub host_ip: String,
}

/// A 1:1 NAT mapping (floating IP) for a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpNat {
    #[serde(rename = "internalIP", default)]
    pub internal_ip: String,
    #[serde(rename = "externalIP", default)]
    pub external_ip: String,
}

/// Bandwidth, packet-rate, connection and DSCP controls for a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct QosControls {
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_bandwidth: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_burst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_peakrate: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_minburst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_bandwidth: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_burst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_peakrate: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_minburst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_packet_rate: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_packet_burst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_packet_rate: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_packet_burst: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ingress_max_connections: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub egress_max_connections: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dscp: Option<Dscp>,
}

/// Label Calico adds to every workload endpoint: its namespace.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Label Calico adds to every workload endpoint: its orchestrator.
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";
/// Label Calico adds to every workload endpoint: its service account.
pub const LABEL_SERVICE_ACCOUNT: &str = "projectcalico.org/serviceaccount";

/// Why a workload endpoint's name cannot be worked out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {reason}")]
pub struct WorkloadEndpointNameError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl WorkloadEndpointSpec {
    /// The name Calico requires for this endpoint:
    /// `<node>-<orchestrator>-<pod|containerID|workload>-<endpoint>`, each
    /// part with `-` doubled (`k8s` uses the pod, `cni` the container ID,
    /// `libnetwork` repeats the orchestrator, anything else the workload).
    pub fn expected_name(&self) -> Result<String, WorkloadEndpointNameError> {
        if self.node.is_empty() {
            return Err(WorkloadEndpointNameError {
                field: "node",
                reason: "field should be assigned",
            });
        }
        let middle: (&'static str, &str) = match self.orchestrator.as_str() {
            "k8s" => ("pod", &self.pod),
            "cni" => ("containerID", &self.container_id),
            "libnetwork" => ("orchestrator", &self.orchestrator),
            _ => ("workload", &self.workload),
        };
        let segments = [
            ("node", self.node.as_str()),
            ("orchestrator", self.orchestrator.as_str()),
            middle,
            ("endpoint", self.endpoint.as_str()),
        ];
        let mut parts = Vec::with_capacity(4);
        for (field, value) in segments {
            if value.is_empty() {
                return Err(WorkloadEndpointNameError {
                    field,
                    reason: "field should be assigned",
                });
            }
            if value.starts_with('-') {
                return Err(WorkloadEndpointNameError {
                    field,
                    reason: "field must not begin with a '-'",
                });
            }
            if value.ends_with('-') {
                return Err(WorkloadEndpointNameError {
                    field,
                    reason: "field must not end with a '-'",
                });
            }
            parts.push(value.replace('-', "--"));
        }
        Ok(parts.join("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workload_endpoint_odd_field_names() {
        let json = r#"{"metadata":{"name":"node1-k8s-pod1-eth0","namespace":"default"},"spec":{"orchestrator":"k8s","node":"node1","containerID":"abc","pod":"pod1","endpoint":"eth0","ipNetworks":["10.0.0.1/32"],"ipNATs":[{"internalIP":"10.0.0.1","externalIP":"1.2.3.4"}],"profiles":["kns.default"],"interfaceName":"cali1234","ports":[{"name":"http","protocol":"TCP","port":80,"hostPort":0,"hostIP":""}]}}"#;
        let w: WorkloadEndpoint = serde_json::from_str(json).unwrap();
        assert_eq!(w.spec.container_id, "abc");
        assert_eq!(w.spec.ip_nats[0].external_ip, "1.2.3.4");
        assert_eq!(serde_json::to_string(&w).unwrap(), json);
    }

    #[test]
    fn workload_endpoint_names() {
        let spec = |orch: &str| WorkloadEndpointSpec {
            node: "node-1".into(),
            orchestrator: orch.into(),
            pod: "web-abc".into(),
            container_id: "c1".into(),
            workload: "w".into(),
            endpoint: "eth0".into(),
            ..Default::default()
        };
        assert_eq!(
            spec("k8s").expected_name().unwrap(),
            "node--1-k8s-web--abc-eth0"
        );
        assert_eq!(spec("cni").expected_name().unwrap(), "node--1-cni-c1-eth0");
        assert_eq!(
            spec("libnetwork").expected_name().unwrap(),
            "node--1-libnetwork-libnetwork-eth0"
        );
        assert_eq!(
            spec("openstack").expected_name().unwrap(),
            "node--1-openstack-w-eth0"
        );
        let mut bad = spec("k8s");
        bad.pod = "-x".into();
        assert_eq!(bad.expected_name().unwrap_err().field, "pod");
        bad.node.clear();
        assert_eq!(bad.expected_name().unwrap_err().field, "node");
    }

    #[test]
    fn host_endpoint_expected_ips() {
        let h: HostEndpoint = serde_json::from_str(
            r#"{"metadata":{"name":"h"},"spec":{"node":"n","interfaceName":"eth0","expectedIPs":["192.168.1.1"]}}"#,
        )
        .unwrap();
        assert_eq!(h.spec.expected_ips, vec!["192.168.1.1"]);
    }
}
