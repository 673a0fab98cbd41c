//! Node (Calico's view of a host: addresses, BGP settings, tunnel
//! addresses) and CalicoNodeStatus (a request for, and report of, a node's
//! BGP and routing state).

use serde::{Deserialize, Serialize};

use crate::meta::ObjectMeta;
use crate::numorstring::AsNumber;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: NodeSpec,
    /// Always written, as Calico prints it.
    #[serde(default)]
    pub status: NodeStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bgp: Option<NodeBgpSpec>,
    #[serde(
        rename = "ipv4VXLANTunnelAddr",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_vxlan_tunnel_addr: String,
    #[serde(
        rename = "vxlanTunnelMACAddr",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr: String,
    #[serde(
        rename = "ipv6VXLANTunnelAddr",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_vxlan_tunnel_addr: String,
    #[serde(
        rename = "vxlanTunnelMACAddrV6",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub vxlan_tunnel_mac_addr_v6: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub orch_refs: Vec<OrchRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wireguard: Option<NodeWireguardSpec>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<NodeAddress>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<NodeInterface>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeBgpSpec {
    #[serde(rename = "asNumber", default, skip_serializing_if = "Option::is_none")]
    pub as_number: Option<AsNumber>,
    /// The node's IPv4 address with its subnet length, e.g. `10.0.0.5/24`.
    #[serde(
        rename = "ipv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "ipv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv6_address: String,
    #[serde(
        rename = "ipv4IPIPTunnelAddr",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub ipv4_ipip_tunnel_addr: String,
    #[serde(
        rename = "routeReflectorClusterID",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub route_reflector_cluster_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OrchRef {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node_name: String,
    #[serde(default)]
    pub orchestrator: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeWireguardSpec {
    #[serde(
        rename = "interfaceIPv4Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub interface_ipv4_address: String,
    #[serde(
        rename = "interfaceIPv6Address",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub interface_ipv6_address: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeAddress {
    pub address: String,
    /// `CalicoNodeIP`, `InternalIP` or `ExternalIP`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub address_type: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeInterface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub addresses: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeStatus {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub wireguard_public_key: String,
    #[serde(
        rename = "wireguardPublicKeyV6",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub wireguard_public_key_v6: String,
    #[serde(rename = "podCIDRs", default, skip_serializing_if = "Vec::is_empty")]
    pub pod_cidrs: Vec<String>,
}

/// Ask a node to report its agent, BGP and route status every
/// `updatePeriodSeconds`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalicoNodeStatus {
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: CalicoNodeStatusSpec,
    #[serde(default)]
    pub status: CalicoNodeStatusStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNodeStatusSpec {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    /// `Agent`, `BGP`, `Routes`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_period_seconds: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNodeStatusStatus {
    #[serde(default)]
    pub last_updated: Option<String>,
    #[serde(default)]
    pub agent: CalicoNodeAgentStatus,
    #[serde(default)]
    pub bgp: CalicoNodeBgpStatus,
    #[serde(default)]
    pub routes: CalicoNodeBgpRouteStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalicoNodeAgentStatus {
    #[serde(rename = "birdV4", default)]
    pub bird_v4: BgpDaemonStatus,
    #[serde(rename = "birdV6", default)]
    pub bird_v6: BgpDaemonStatus,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BgpDaemonStatus {
    /// `Ready` or `NotReady`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub version: String,
    #[serde(rename = "routerID", default, skip_serializing_if = "String::is_empty")]
    pub router_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_boot_time: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub last_reconfiguration_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalicoNodeBgpStatus {
    #[serde(rename = "numberEstablishedV4", default)]
    pub number_established_v4: i64,
    #[serde(rename = "numberNotEstablishedV4", default)]
    pub number_not_established_v4: i64,
    #[serde(rename = "numberEstablishedV6", default)]
    pub number_established_v6: i64,
    #[serde(rename = "numberNotEstablishedV6", default)]
    pub number_not_established_v6: i64,
    #[serde(rename = "peersV4", default, skip_serializing_if = "Vec::is_empty")]
    pub peers_v4: Vec<CalicoNodePeer>,
    #[serde(rename = "peersV6", default, skip_serializing_if = "Vec::is_empty")]
    pub peers_v6: Vec<CalicoNodePeer>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalicoNodePeer {
    #[serde(rename = "peerIP", default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
    /// `NodeMesh`, `NodePeer`, `GlobalPeer`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub peer_type: String,
    /// BGP FSM state: `Idle` ... `Established`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub state: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub since: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalicoNodeBgpRouteStatus {
    #[serde(rename = "routesV4", default, skip_serializing_if = "Vec::is_empty")]
    pub routes_v4: Vec<CalicoNodeRoute>,
    #[serde(rename = "routesV6", default, skip_serializing_if = "Vec::is_empty")]
    pub routes_v6: Vec<CalicoNodeRoute>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNodeRoute {
    /// `FIB` or `RIB`.
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub route_type: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub destination: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub gateway: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub interface: String,
    #[serde(default)]
    pub learned_from: CalicoNodeRouteLearnedFrom,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CalicoNodeRouteLearnedFrom {
    /// `Kernel`, `Static`, `Direct`, `NodeMesh`, `BGPPeer`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub source_type: String,
    #[serde(rename = "peerIP", default, skip_serializing_if = "String::is_empty")]
    pub peer_ip: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_field_names() {
        let json = r#"{"metadata":{"name":"node1"},"spec":{"bgp":{"asNumber":64512,"ipv4Address":"10.0.0.5/24","ipv4IPIPTunnelAddr":"192.168.1.1","routeReflectorClusterID":"224.0.0.1"},"ipv4VXLANTunnelAddr":"192.168.1.0","vxlanTunnelMACAddr":"66:2f:9f:4a:2b:10","orchRefs":[{"nodeName":"node1","orchestrator":"k8s"}],"addresses":[{"address":"10.0.0.5/24","type":"CalicoNodeIP"}]},"status":{"podCIDRs":["192.168.1.0/24"]}}"#;
        let n: Node = serde_json::from_str(json).unwrap();
        assert_eq!(
            n.spec.bgp.as_ref().unwrap().route_reflector_cluster_id,
            "224.0.0.1"
        );
        assert_eq!(serde_json::to_string(&n).unwrap(), json);
    }
}
