//! HostEndpoint, WorkloadEndpoint, Node, NetworkSet and GlobalNetworkSet.

use std::net::IpAddr;

use super::Collector;
use crate::endpoint::{HostEndpoint, WorkloadEndpoint};
use crate::meta::ObjectMeta;
use crate::net::parse_cidr_or_ip;
use crate::node::Node;
use crate::numorstring::Protocol;

fn interface_name(s: &str) -> bool {
    s == "*"
        || ((1..=15).contains(&s.len())
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')))
}

/// Go's `net.ParseMAC` forms for 6-byte addresses: `aa:bb:cc:dd:ee:ff`,
/// `aa-bb-cc-dd-ee-ff`, `aabb.ccdd.eeff`.
pub(crate) fn is_mac(s: &str) -> bool {
    let hex = |p: &str, n: usize| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit());
    if s.len() == 17 {
        let sep = if s.contains(':') { ':' } else { '-' };
        let parts: Vec<&str> = s.split(sep).collect();
        return parts.len() == 6 && parts.iter().all(|p| hex(p, 2));
    }
    let parts: Vec<&str> = s.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| hex(p, 4))
}

fn port_protocol(c: &mut Collector, path: &str, p: &Protocol) {
    if !p.supports_ports() {
        c.err(
            path,
            format!("protocol {p} does not support ports: use TCP, UDP or SCTP"),
        );
    }
}

fn ip(c: &mut Collector, path: &str, s: &str, want_v4: Option<bool>) {
    match (s.parse::<IpAddr>(), want_v4) {
        (Err(_), _) => c.err(path, format!("invalid IP address {s:?}")),
        (Ok(a), Some(v4)) if a.is_ipv4() != v4 => c.err(
            path,
            format!(
                "{s:?} is not an {} address",
                if v4 { "IPv4" } else { "IPv6" }
            ),
        ),
        _ => {}
    }
}

pub(super) fn host_endpoint(c: &mut Collector, h: &HostEndpoint) {
    let s = &h.spec;
    if s.node.is_empty() {
        c.err("spec.node", "node must be specified");
    } else {
        c.name("spec.node", &s.node);
    }
    if s.interface_name.is_empty() && s.expected_ips.is_empty() {
        c.err(
            "spec",
            "at least one of interfaceName or expectedIPs must be specified",
        );
    }
    if !s.interface_name.is_empty() && !interface_name(&s.interface_name) {
        c.err(
            "spec.interfaceName",
            format!("invalid interface name {:?}", s.interface_name),
        );
    }
    for (i, a) in s.expected_ips.iter().enumerate() {
        ip(c, &format!("spec.expectedIPs[{i}]"), a, None);
    }
    for (i, p) in s.profiles.iter().enumerate() {
        c.name(&format!("spec.profiles[{i}]"), p);
    }
    for (i, p) in s.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if !super::is_k8s_port_name(&p.name) {
            c.err(
                format!("{pp}.name"),
                format!("invalid port name {:?}", p.name),
            );
        }
        port_protocol(c, &format!("{pp}.protocol"), &p.protocol);
        if p.port == 0 {
            c.err(format!("{pp}.port"), "port must be between 1 and 65535");
        }
    }
}

pub(super) fn workload_endpoint(c: &mut Collector, w: &WorkloadEndpoint) {
    let s = &w.spec;
    match s.expected_name() {
        Err(e) => c.err(format!("spec.{}", e.field), e.reason),
        Ok(expected) => {
            if !w.metadata.name.is_empty() && w.metadata.name != expected {
                c.err(
                    "metadata.name",
                    format!("the WorkloadEndpoint name does not match the primary identifiers assigned in the Spec: expected name {expected}"),
                );
            }
        }
    }
    for (path, v) in [
        ("spec.orchestrator", &s.orchestrator),
        ("spec.workload", &s.workload),
        ("spec.node", &s.node),
        ("spec.pod", &s.pod),
        ("spec.endpoint", &s.endpoint),
        ("spec.serviceAccountName", &s.service_account_name),
    ] {
        if !v.is_empty() {
            c.name(path, v);
        }
    }
    if !s.container_id.is_empty() {
        let b = s.container_id.as_bytes();
        let ok = b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric();
        if !ok {
            c.err(
                "spec.containerID",
                format!("invalid container ID {:?}", s.container_id),
            );
        }
    }
    if !interface_name(&s.interface_name) || s.interface_name == "*" {
        c.err(
            "spec.interfaceName",
            format!("invalid interface name {:?}", s.interface_name),
        );
    }
    if !s.mac.is_empty() && !is_mac(&s.mac) {
        c.err("spec.mac", format!("invalid MAC address {:?}", s.mac));
    }
    let mut networks = Vec::new();
    for (i, n) in s.ip_networks.iter().enumerate() {
        match parse_cidr_or_ip(n) {
            None => c.err(
                format!("spec.ipNetworks[{i}]"),
                format!("invalid CIDR {n:?}"),
            ),
            Some((addr, net)) => {
                if net.prefix_len() != net.max_prefix_len() {
                    c.err(
                        format!("spec.ipNetworks[{i}]"),
                        "IP network contains multiple addresses",
                    );
                }
                if addr != net.network() {
                    c.err(
                        format!("spec.ipNetworks[{i}]"),
                        format!("{n:?} is not a network address"),
                    );
                }
                networks.push(net);
            }
        }
    }
    if !s.ipv4_gateway.is_empty() {
        ip(c, "spec.ipv4Gateway", &s.ipv4_gateway, Some(true));
    }
    if !s.ipv6_gateway.is_empty() {
        ip(c, "spec.ipv6Gateway", &s.ipv6_gateway, Some(false));
    }
    for (i, nat) in s.ip_nats.iter().enumerate() {
        let np = format!("spec.ipNATs[{i}]");
        let internal = nat.internal_ip.parse::<IpAddr>();
        let external = nat.external_ip.parse::<IpAddr>();
        if internal.is_err() {
            c.err(
                format!("{np}.internalIP"),
                format!("invalid IP address {:?}", nat.internal_ip),
            );
        }
        if external.is_err() {
            c.err(
                format!("{np}.externalIP"),
                format!("invalid IP address {:?}", nat.external_ip),
            );
        }
        if let (Ok(a), Ok(b)) = (internal, external) {
            if a.is_ipv4() != b.is_ipv4() {
                c.err(format!("{np}.externalIP"), "mismatched IP versions");
            }
            if !networks.iter().any(|n| n.contains(&a)) {
                c.err(&np, "NAT is not in the endpoint networks");
            }
        }
    }
    for (i, p) in s.profiles.iter().enumerate() {
        c.name(&format!("spec.profiles[{i}]"), p);
    }
    for (i, p) in s.ports.iter().enumerate() {
        let pp = format!("spec.ports[{i}]");
        if !p.name.is_empty() && !super::is_k8s_port_name(&p.name) {
            c.err(
                format!("{pp}.name"),
                format!("invalid port name {:?}", p.name),
            );
        }
        if p.name.is_empty() && p.host_port == 0 {
            c.err(
                format!("{pp}.name"),
                "WorkloadEndpointPort name must not be empty if no HostPort is specified",
            );
        }
        port_protocol(c, &format!("{pp}.protocol"), &p.protocol);
        if p.port == 0 {
            c.err(format!("{pp}.port"), "port must be between 1 and 65535");
        }
        if !p.host_ip.is_empty() && parse_cidr_or_ip(&p.host_ip).is_none() {
            c.err(
                format!("{pp}.hostIP"),
                format!("invalid IP address {:?}", p.host_ip),
            );
        }
    }
    for (i, n) in s.allow_spoofed_source_prefixes.iter().enumerate() {
        if parse_cidr_or_ip(n).is_none() {
            c.err(
                format!("spec.allowSpoofedSourcePrefixes[{i}]"),
                format!("invalid CIDR {n:?}"),
            );
        }
    }
    if let Some(q) = &s.qos_controls {
        if let Some(d) = &q.dscp {
            if d.value().is_none() {
                c.err(
                    "spec.qosControls.dscp",
                    "invalid DSCP value: use 0-63 or a class name (EF, AF11, CS1, ...)",
                );
            }
        }
    }
}

pub(super) fn node(c: &mut Collector, n: &Node) {
    let s = &n.spec;
    if let Some(bgp) = &s.bgp {
        if *bgp == Default::default() {
            c.err("spec.bgp", "Spec.BGP should not be empty");
        }
        let cidr = |c: &mut Collector, path: &str, v: &str, v4: bool| {
            if !v.is_empty() && parse_cidr_or_ip(v).is_none_or(|(a, _)| a.is_ipv4() != v4) {
                c.err(
                    path,
                    format!("invalid {} address {v:?}", if v4 { "IPv4" } else { "IPv6" }),
                );
            }
        };
        cidr(c, "spec.bgp.ipv4Address", &bgp.ipv4_address, true);
        cidr(c, "spec.bgp.ipv6Address", &bgp.ipv6_address, false);
        if !bgp.ipv4_ipip_tunnel_addr.is_empty() {
            ip(
                c,
                "spec.bgp.ipv4IPIPTunnelAddr",
                &bgp.ipv4_ipip_tunnel_addr,
                Some(true),
            );
        }
        if !bgp.route_reflector_cluster_id.is_empty() {
            ip(
                c,
                "spec.bgp.routeReflectorClusterID",
                &bgp.route_reflector_cluster_id,
                Some(true),
            );
        }
    }
    if !s.ipv4_vxlan_tunnel_addr.is_empty() {
        ip(
            c,
            "spec.ipv4VXLANTunnelAddr",
            &s.ipv4_vxlan_tunnel_addr,
            Some(true),
        );
    }
    if !s.ipv6_vxlan_tunnel_addr.is_empty() {
        ip(
            c,
            "spec.ipv6VXLANTunnelAddr",
            &s.ipv6_vxlan_tunnel_addr,
            Some(false),
        );
    }
    for (path, mac) in [
        ("spec.vxlanTunnelMACAddr", &s.vxlan_tunnel_mac_addr),
        ("spec.vxlanTunnelMACAddrV6", &s.vxlan_tunnel_mac_addr_v6),
    ] {
        if !mac.is_empty() && !is_mac(mac) {
            c.err(path, format!("invalid MAC address {mac:?}"));
        }
    }
    if let Some(w) = &s.wireguard {
        if !w.interface_ipv4_address.is_empty() {
            ip(
                c,
                "spec.wireguard.interfaceIPv4Address",
                &w.interface_ipv4_address,
                Some(true),
            );
        }
        if !w.interface_ipv6_address.is_empty() {
            ip(
                c,
                "spec.wireguard.interfaceIPv6Address",
                &w.interface_ipv6_address,
                Some(false),
            );
        }
    }
    for (i, a) in s.addresses.iter().enumerate() {
        if parse_cidr_or_ip(&a.address).is_none() {
            c.err(
                format!("spec.addresses[{i}].address"),
                format!("invalid address {:?}", a.address),
            );
        }
        if !a.address_type.is_empty() {
            c.one_of(
                &format!("spec.addresses[{i}].type"),
                &a.address_type,
                &["CalicoNodeIP", "InternalIP", "ExternalIP"],
            );
        }
    }
    for (i, iface) in s.interfaces.iter().enumerate() {
        if !iface.name.is_empty() {
            c.name(&format!("spec.interfaces[{i}].name"), &iface.name);
        }
    }
}

pub(super) fn network_set(c: &mut Collector, meta: &ObjectMeta, nets: &[String]) {
    for (i, n) in nets.iter().enumerate() {
        if parse_cidr_or_ip(n).is_none() {
            c.err(format!("spec.nets[{i}]"), format!("invalid CIDR {n:?}"));
        }
    }
    if meta.labels.contains_key(crate::endpoint::LABEL_NAMESPACE) {
        c.err(
            format!("metadata.labels.{}", crate::endpoint::LABEL_NAMESPACE),
            "projectcalico.org/namespace is not a valid label name",
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::is_mac;
    use serde_json::{Value, json};

    fn hep(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "HostEndpoint", "metadata": {"name": "h"}, "spec": spec})
    }
    fn wep(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint", "metadata": {"name": name, "namespace": "default"}, "spec": spec})
    }

    #[test]
    fn macs() {
        assert!(is_mac("66:2f:9f:4a:2b:10"));
        assert!(is_mac("66-2F-9F-4A-2B-10"));
        assert!(is_mac("662f.9f4a.2b10"));
        assert!(!is_mac("66:2f:9f:4a:2b"));
        assert!(!is_mac("zz:2f:9f:4a:2b:10"));
    }

    #[test]
    fn host_endpoints() {
        run(&[
            (
                "ok",
                hep(
                    json!({"node": "n1", "interfaceName": "eth0", "expectedIPs": ["192.168.0.1"], "ports": [{"name": "ssh", "protocol": "TCP", "port": 22}]}),
                ),
                None,
            ),
            (
                "all interfaces",
                hep(json!({"node": "n1", "interfaceName": "*"})),
                None,
            ),
            (
                "no node",
                hep(json!({"interfaceName": "eth0"})),
                Some("spec.node: node must be specified"),
            ),
            (
                "no iface or ip",
                hep(json!({"node": "n1"})),
                Some("at least one of interfaceName or expectedIPs"),
            ),
            (
                "bad ip",
                hep(json!({"node": "n1", "expectedIPs": ["1.2.3"]})),
                Some("spec.expectedIPs[0]"),
            ),
            (
                "icmp port",
                hep(
                    json!({"node": "n1", "interfaceName": "eth0", "ports": [{"name": "p", "protocol": "ICMP", "port": 1}]}),
                ),
                Some("spec.ports[0].protocol"),
            ),
            (
                "long iface",
                hep(json!({"node": "n1", "interfaceName": "averyverylongifname"})),
                Some("spec.interfaceName"),
            ),
        ]);
    }

    #[test]
    fn workload_endpoints() {
        let spec = json!({"orchestrator": "k8s", "node": "node1", "pod": "web-1", "endpoint": "eth0", "interfaceName": "cali0123456789a",
                          "ipNetworks": ["10.0.0.5/32"], "mac": "66:2f:9f:4a:2b:10", "profiles": ["kns.default"]});
        let mut nat = spec.clone();
        nat["ipNATs"] = json!([{"internalIP": "10.0.0.6", "externalIP": "1.2.3.4"}]);
        let mut wide = spec.clone();
        wide["ipNetworks"] = json!(["10.0.0.0/24"]);
        let mut no_iface = spec.clone();
        no_iface["interfaceName"] = json!("");
        run(&[
            ("ok", wep("node1-k8s-web--1-eth0", spec.clone()), None),
            (
                "wrong name",
                wep("whatever", spec.clone()),
                Some("expected name node1-k8s-web--1-eth0"),
            ),
            (
                "nat outside networks",
                wep("node1-k8s-web--1-eth0", nat),
                Some("NAT is not in the endpoint networks"),
            ),
            (
                "multi-address network",
                wep("node1-k8s-web--1-eth0", wide),
                Some("IP network contains multiple addresses"),
            ),
            (
                "interface required",
                wep("node1-k8s-web--1-eth0", no_iface),
                Some("spec.interfaceName"),
            ),
            (
                "missing pod",
                wep(
                    "x",
                    json!({"orchestrator": "k8s", "node": "n", "endpoint": "eth0", "interfaceName": "cali1"}),
                ),
                Some("spec.pod: field should be assigned"),
            ),
        ]);
    }

    #[test]
    fn nodes_and_sets() {
        run(&[
            (
                "node",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n1"},
                "spec": {"bgp": {"ipv4Address": "10.0.0.5/24", "asNumber": 64512}, "ipv4VXLANTunnelAddr": "192.168.1.0", "addresses": [{"address": "10.0.0.5", "type": "InternalIP"}]}}),
                None,
            ),
            (
                "empty bgp",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"bgp": {}}}),
                Some("Spec.BGP should not be empty"),
            ),
            (
                "v6 in v4 field",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n1"}, "spec": {"bgp": {"ipv4Address": "fd00::1/64"}}}),
                Some("spec.bgp.ipv4Address"),
            ),
            (
                "netset",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet", "metadata": {"name": "s", "namespace": "ns"}, "spec": {"nets": ["10.0.0.1", "fd00::/64"]}}),
                None,
            ),
            (
                "netset bad",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "s"}, "spec": {"nets": ["x"]}}),
                Some("spec.nets[0]"),
            ),
            (
                "netset ns label",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "s", "labels": {"projectcalico.org/namespace": "x"}}}),
                Some("not a valid label name"),
            ),
        ]);
    }
}
