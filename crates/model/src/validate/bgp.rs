//! BGPConfiguration, BGPPeer, BGPFilter.

use std::net::IpAddr;

use super::Collector;
use crate::bgp::{BgpConfiguration, BgpFilter, BgpFilterAction, BgpFilterRule, BgpPeer};
use crate::net::{is_strict_network, parse_cidr};

/// `aa:nn` (16-bit parts) or `aa:nn:mm` (32-bit parts).
fn community_error(value: &str) -> Option<String> {
    let parts: Vec<&str> = value.split(':').collect();
    let digits = parts
        .iter()
        .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    if !digits || !(parts.len() == 2 || parts.len() == 3) {
        return Some(format!(
            "invalid community value or format {value:?}: use aa:nn or aa:nn:mm"
        ));
    }
    let fits = if parts.len() == 2 {
        parts.iter().all(|p| p.parse::<u16>().is_ok())
    } else {
        parts.iter().all(|p| p.parse::<u32>().is_ok())
    };
    if fits {
        None
    } else {
        let bits = if parts.len() == 2 { 16 } else { 32 };
        Some(format!(
            "invalid community value {value:?}, expected {bits} bit values"
        ))
    }
}

fn interface_pattern(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'*' | b'-'))
}

pub(super) fn configuration(c: &mut Collector, r: &BgpConfiguration) {
    let s = &r.spec;
    if !s.log_severity_screen.is_empty() {
        let l = s.log_severity_screen.to_ascii_lowercase();
        if !["trace", "debug", "info", "warning", "error", "fatal"].contains(&l.as_str()) {
            c.err(
                "spec.logSeverityScreen",
                format!(
                    "invalid log severity {:?}: use Trace, Debug, Info, Warning, Error or Fatal",
                    s.log_severity_screen
                ),
            );
        }
    }
    if s.node_to_node_mesh_enabled == Some(false) {
        if s.node_mesh_password.is_some() {
            c.err(
                "spec.nodeMeshPassword",
                "nodeMeshPassword cannot be set when nodeToNodeMeshEnabled is false",
            );
        }
        if s.node_mesh_max_restart_time.is_some() {
            c.err(
                "spec.nodeMeshMaxRestartTime",
                "nodeMeshMaxRestartTime cannot be set when nodeToNodeMeshEnabled is false",
            );
        }
    }
    if let Some(d) = &s.node_mesh_max_restart_time {
        c.duration("spec.nodeMeshMaxRestartTime", d);
    }
    if r.metadata.name != "default" {
        let only_default = [
            (
                "spec.nodeToNodeMeshEnabled",
                s.node_to_node_mesh_enabled.is_some(),
            ),
            ("spec.asNumber", s.as_number.is_some()),
            (
                "spec.serviceLoadBalancerIPs",
                !s.service_load_balancer_ips.is_empty(),
            ),
            (
                "spec.serviceExternalIPs",
                !s.service_external_ips.is_empty(),
            ),
            ("spec.serviceClusterIPs", !s.service_cluster_ips.is_empty()),
            ("spec.nodeMeshPassword", s.node_mesh_password.is_some()),
            (
                "spec.nodeMeshMaxRestartTime",
                s.node_mesh_max_restart_time.is_some(),
            ),
        ];
        for (path, set) in only_default {
            if set {
                c.err(
                    path,
                    "can only be set on the BGPConfiguration named \"default\"",
                );
            }
        }
    }
    for (field, blocks) in [
        ("serviceLoadBalancerIPs", &s.service_load_balancer_ips),
        ("serviceExternalIPs", &s.service_external_ips),
        ("serviceClusterIPs", &s.service_cluster_ips),
    ] {
        for (i, b) in blocks.iter().enumerate() {
            if !is_strict_network(&b.cidr) {
                c.err(
                    format!("spec.{field}[{i}].cidr"),
                    format!("invalid network {:?}", b.cidr),
                );
            }
        }
    }
    if !s.communities.is_empty() && s.prefix_advertisements.is_empty() {
        c.err(
            "spec.communities",
            "communities are defined but not used in prefixAdvertisements",
        );
    }
    for (i, com) in s.communities.iter().enumerate() {
        if com.name.is_empty() {
            c.err(format!("spec.communities[{i}].name"), "name must be set");
        } else {
            c.name(&format!("spec.communities[{i}].name"), &com.name);
        }
        if let Some(e) = community_error(&com.value) {
            c.err(format!("spec.communities[{i}].value"), e);
        }
    }
    for (i, pa) in s.prefix_advertisements.iter().enumerate() {
        if !is_strict_network(&pa.cidr) {
            c.err(
                format!("spec.prefixAdvertisements[{i}].cidr"),
                format!("invalid CIDR value {:?}", pa.cidr),
            );
        }
        for (j, v) in pa.communities.iter().enumerate() {
            let defined = s.communities.iter().any(|com| &com.name == v);
            if !defined && community_error(v).is_some() {
                c.err(
                    format!("spec.prefixAdvertisements[{i}].communities[{j}]"),
                    format!("community {v:?} is invalid or not defined"),
                );
            }
        }
    }
    if s.listen_port == Some(0) {
        c.err("spec.listenPort", "listenPort must be between 1 and 65535");
    }
    if let Some(m) = &s.bind_mode {
        c.one_of("spec.bindMode", m, &["None", "NodeIP"]);
    }
    if let Some(m) = &s.service_load_balancer_aggregation {
        c.one_of(
            "spec.serviceLoadBalancerAggregation",
            m,
            &["Enabled", "Disabled"],
        );
    }
    if let Some(m) = &s.program_cluster_routes {
        c.one_of(
            "spec.programClusterRoutes",
            m,
            &[
                "Enabled",
                "Disabled",
                "EnabledIPIPOnly",
                "EnabledNoEncapOnly",
            ],
        );
    }
    for (i, iface) in s.ignored_interfaces.iter().enumerate() {
        if !interface_pattern(iface) {
            c.err(
                format!("spec.ignoredInterfaces[{i}]"),
                format!("invalid interface name or pattern {iface:?}"),
            );
        }
    }
    if !s.local_workload_peering_ipv4.is_empty()
        && !matches!(
            s.local_workload_peering_ipv4.parse::<IpAddr>(),
            Ok(IpAddr::V4(_))
        )
    {
        c.err("spec.localWorkloadPeeringIPV4", "must be an IPv4 address");
    }
    if !s.local_workload_peering_ipv6.is_empty()
        && !matches!(
            s.local_workload_peering_ipv6.parse::<IpAddr>(),
            Ok(IpAddr::V6(_))
        )
    {
        c.err("spec.localWorkloadPeeringIPV6", "must be an IPv6 address");
    }
    for (path, p) in [
        ("spec.ipv4NormalRoutePriority", s.ipv4_normal_route_priority),
        ("spec.ipv6NormalRoutePriority", s.ipv6_normal_route_priority),
    ] {
        if let Some(p) = p {
            c.range(path, p, 1, 2_147_483_646);
        }
    }
}

/// Splits `<ip>`, `<ipv4>:<port>` or `[<ipv6>]:<port>`; None when invalid.
pub(crate) fn parse_peer_ip(s: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, p) = rest.split_once("]:")?;
        (h, p)
    } else {
        s.rsplit_once(':')?
    };
    let ip: IpAddr = host.parse().ok()?;
    if s.starts_with('[') != ip.is_ipv6() {
        return None;
    }
    let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
    Some((ip, Some(port)))
}

pub(super) fn peer(c: &mut Collector, r: &BgpPeer) {
    let s = &r.spec;
    if !s.node.is_empty() {
        c.name("spec.node", &s.node);
    }
    c.selector("spec.nodeSelector", &s.node_selector);
    c.selector("spec.peerSelector", &s.peer_selector);
    c.selector("spec.localWorkloadSelector", &s.local_workload_selector);
    let peer_ip = if s.peer_ip.is_empty() {
        None
    } else {
        let parsed = parse_peer_ip(&s.peer_ip);
        if parsed.is_none() {
            c.err(
                "spec.peerIP",
                format!(
                    "invalid peerIP {:?}: use <IP>, <IPv4>:<port> or [<IPv6>]:<port>",
                    s.peer_ip
                ),
            );
        }
        parsed
    };
    if !s.node.is_empty() && !s.node_selector.is_empty() {
        c.err(
            "spec.nodeSelector",
            "node and nodeSelector cannot both be set",
        );
    }
    if !s.peer_ip.is_empty() && !s.peer_selector.is_empty() {
        c.err(
            "spec.peerSelector",
            "peerIP and peerSelector cannot both be set",
        );
    }
    if !s.peer_selector.is_empty() && s.as_number.0 != 0 {
        c.err(
            "spec.asNumber",
            "asNumber must be empty when peerSelector is set",
        );
    }
    if !s.local_workload_selector.is_empty() {
        if !s.peer_ip.is_empty() {
            c.err(
                "spec.peerIP",
                "peerIP must be empty when localWorkloadSelector is set",
            );
        }
        if !s.peer_selector.is_empty() {
            c.err(
                "spec.peerSelector",
                "peerSelector must be empty when localWorkloadSelector is set",
            );
        }
        if s.as_number.0 == 0 {
            c.err(
                "spec.asNumber",
                "asNumber is required when localWorkloadSelector is set",
            );
        }
    }
    if !s.reachable_by.is_empty() {
        match s.reachable_by.parse::<IpAddr>() {
            Err(_) => c.err(
                "spec.reachableBy",
                format!("invalid address {:?}", s.reachable_by),
            ),
            Ok(via) => {
                if let Some((ip, _)) = peer_ip {
                    if ip.is_ipv4() != via.is_ipv4() {
                        c.err(
                            "spec.reachableBy",
                            "ReachableBy and PeerIP address family mismatched",
                        );
                    }
                }
            }
        }
        if s.peer_ip.is_empty() {
            c.err(
                "spec.reachableBy",
                "reachableBy must be empty when peerIP is empty",
            );
        }
    }
    if s.keep_original_next_hop && s.next_hop_mode.is_some() {
        c.err("spec.nextHopMode", "keepOriginalNextHop and nextHopMode cannot both be set; keepOriginalNextHop is deprecated, use nextHopMode instead");
    }
    if let Some(m) = &s.next_hop_mode {
        c.one_of("spec.nextHopMode", m, &["Auto", "Self", "Keep"]);
    }
    if let Some(m) = &s.reverse_peering {
        c.one_of("spec.reversePeering", m, &["Auto", "Manual"]);
    }
    if !s.source_address.is_empty() {
        c.one_of(
            "spec.sourceAddress",
            &s.source_address,
            &["UseNodeIP", "None"],
        );
    }
    for (path, d) in [
        ("spec.maxRestartTime", &s.max_restart_time),
        ("spec.keepaliveTime", &s.keepalive_time),
    ] {
        if let Some(d) = d {
            c.duration(path, d);
        }
    }
    for (i, f) in s.filters.iter().enumerate() {
        c.name(&format!("spec.filters[{i}]"), f);
    }
    if let Some(secret) = s.password.as_ref().and_then(|p| p.secret_key_ref.as_ref()) {
        if secret.key.is_empty() {
            c.err("spec.password.secretKeyRef.key", "key must be set");
        }
    }
}

fn filter_rule(c: &mut Collector, path: &str, r: &BgpFilterRule, v4: bool) {
    if !r.cidr.is_empty() {
        let ok =
            parse_cidr(&r.cidr).is_some_and(|(a, n)| a == n.network() && n.addr().is_ipv4() == v4);
        if !ok {
            c.err(
                format!("{path}.cidr"),
                format!(
                    "invalid {} network {:?}",
                    if v4 { "IPv4" } else { "IPv6" },
                    r.cidr
                ),
            );
        }
    }
    if r.cidr.is_empty() != r.match_operator.is_empty() {
        c.err(
            path,
            "cidr and matchOperator must both be set or both be empty",
        );
    }
    if !r.match_operator.is_empty() {
        c.one_of(
            &format!("{path}.matchOperator"),
            &r.match_operator,
            &["Equal", "NotEqual", "In", "NotIn"],
        );
    }
    if let Some(pl) = &r.prefix_length {
        if r.cidr.is_empty() {
            c.err(
                format!("{path}.prefixLength"),
                "cidr is required when prefixLength is set",
            );
        }
        let max = if v4 { 32 } else { 128 };
        for (field, v) in [("min", pl.min), ("max", pl.max)] {
            if let Some(v) = v {
                c.range(
                    &format!("{path}.prefixLength.{field}"),
                    i64::from(v),
                    0,
                    max,
                );
            }
        }
    }
    if !r.source.is_empty() {
        c.one_of(&format!("{path}.source"), &r.source, &["RemotePeers"]);
    }
    if !r.peer_type.is_empty() {
        c.one_of(&format!("{path}.peerType"), &r.peer_type, &["eBGP", "iBGP"]);
    }
    if !r.interface.is_empty() && !interface_pattern(&r.interface) {
        c.err(
            format!("{path}.interface"),
            format!("invalid interface name or pattern {:?}", r.interface),
        );
    }
    if let Some(p) = r.priority {
        c.range(&format!("{path}.priority"), p, 1, 2_147_483_646);
    }
    if let Some(m) = &r.communities {
        if m.values.len() != 1 {
            c.err(
                format!("{path}.communities.values"),
                "exactly one community value must be given",
            );
        }
        for (i, v) in m.values.iter().enumerate() {
            if let Some(e) = community_error(v) {
                c.err(format!("{path}.communities.values[{i}]"), e);
            }
        }
    }
    if !r.operations.is_empty() && r.action != BgpFilterAction::Accept {
        c.err(
            format!("{path}.operations"),
            "operations may only be used with action Accept",
        );
    }
    for (i, op) in r.operations.iter().enumerate() {
        let op_path = format!("{path}.operations[{i}]");
        let set = [
            op.add_community.is_some(),
            op.prepend_as_path.is_some(),
            op.set_priority.is_some(),
        ];
        if set.iter().filter(|s| **s).count() != 1 {
            c.err(
                &op_path,
                "exactly one of addCommunity, prependASPath, setPriority must be set",
            );
        }
        if let Some(a) = &op.add_community {
            match &a.value {
                None => c.err(format!("{op_path}.addCommunity.value"), "value must be set"),
                Some(v) => {
                    if let Some(e) = community_error(v) {
                        c.err(format!("{op_path}.addCommunity.value"), e);
                    }
                }
            }
        }
        if let Some(p) = &op.prepend_as_path {
            if p.prefix.is_empty() || p.prefix.len() > 10 {
                c.err(
                    format!("{op_path}.prependASPath.prefix"),
                    "must have between 1 and 10 AS numbers",
                );
            }
        }
        if let Some(p) = &op.set_priority {
            match p.value {
                None => c.err(format!("{op_path}.setPriority.value"), "value must be set"),
                Some(v) => c.range(&format!("{op_path}.setPriority.value"), v, 1, 2_147_483_646),
            }
        }
    }
}

pub(super) fn filter(c: &mut Collector, r: &BgpFilter) {
    let s = &r.spec;
    for (field, rules, v4) in [
        ("exportV4", &s.export_v4, true),
        ("importV4", &s.import_v4, true),
        ("exportV6", &s.export_v6, false),
        ("importV6", &s.import_v6, false),
    ] {
        for (i, rule) in rules.iter().enumerate() {
            filter_rule(c, &format!("spec.{field}[{i}]"), rule, v4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use super::parse_peer_ip;
    use serde_json::{Value, json};

    fn peer(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "p"}, "spec": spec})
    }
    fn config(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration", "metadata": {"name": name}, "spec": spec})
    }
    fn filter(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "BGPFilter", "metadata": {"name": "f"}, "spec": spec})
    }

    #[test]
    fn peer_ip_forms() {
        assert!(parse_peer_ip("10.0.0.1").is_some());
        assert_eq!(parse_peer_ip("10.0.0.1:179").unwrap().1, Some(179));
        assert!(parse_peer_ip("[fd00::1]:1179").is_some());
        assert!(parse_peer_ip("fd00::1").is_some());
        assert!(parse_peer_ip("10.0.0.1:0").is_none());
        assert!(parse_peer_ip("host:179").is_none());
        assert!(parse_peer_ip("[10.0.0.1]:179").is_none());
    }

    #[test]
    fn peers() {
        run(&[
            (
                "global peer",
                peer(json!({"peerIP": "192.20.30.40", "asNumber": 64567})),
                None,
            ),
            (
                "node peer with port",
                peer(json!({"node": "node1", "peerIP": "[fd00::1]:1179", "asNumber": 64567})),
                None,
            ),
            (
                "bad peer ip",
                peer(json!({"peerIP": "router1"})),
                Some("spec.peerIP: invalid peerIP"),
            ),
            (
                "node and selector",
                peer(json!({"node": "a", "nodeSelector": "all()"})),
                Some("node and nodeSelector cannot both be set"),
            ),
            (
                "ip and selector",
                peer(json!({"peerIP": "10.0.0.1", "peerSelector": "all()"})),
                Some("peerIP and peerSelector cannot both be set"),
            ),
            (
                "as with selector",
                peer(json!({"peerSelector": "rr == 'true'", "asNumber": 1})),
                Some("asNumber must be empty when peerSelector is set"),
            ),
            (
                "reachable family",
                peer(json!({"peerIP": "10.0.0.1", "reachableBy": "fd00::1", "asNumber": 1})),
                Some("address family mismatched"),
            ),
            (
                "next hop both",
                peer(
                    json!({"peerIP": "10.0.0.1", "keepOriginalNextHop": true, "nextHopMode": "Keep"}),
                ),
                Some("cannot both be set"),
            ),
            (
                "bad duration",
                peer(json!({"peerIP": "10.0.0.1", "maxRestartTime": "ten"})),
                Some("spec.maxRestartTime: invalid duration"),
            ),
            (
                "bad source address",
                peer(json!({"sourceAddress": "Any"})),
                Some("spec.sourceAddress"),
            ),
            (
                "bad node selector",
                peer(json!({"nodeSelector": "x =="})),
                Some("spec.nodeSelector: invalid selector"),
            ),
        ]);
    }

    #[test]
    fn configurations() {
        run(&[
            (
                "default",
                config(
                    "default",
                    json!({"logSeverityScreen": "Info", "nodeToNodeMeshEnabled": false, "asNumber": 63400,
                "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}],
                "communities": [{"name": "c1", "value": "63400:300:100"}],
                "prefixAdvertisements": [{"cidr": "172.218.4.0/26", "communities": ["c1", "63400:120"]}]}),
                ),
                None,
            ),
            (
                "bad log level",
                config("default", json!({"logSeverityScreen": "Loud"})),
                Some("spec.logSeverityScreen"),
            ),
            (
                "mesh password with mesh off",
                config(
                    "default",
                    json!({"nodeToNodeMeshEnabled": false, "nodeMeshPassword": {"secretKeyRef": {"name": "s", "key": "k"}}}),
                ),
                Some("nodeMeshPassword cannot be set"),
            ),
            (
                "as on node config",
                config("node.n1", json!({"asNumber": 1})),
                Some("spec.asNumber: can only be set on the BGPConfiguration named \"default\""),
            ),
            (
                "unused communities",
                config(
                    "default",
                    json!({"communities": [{"name": "c", "value": "1:2"}]}),
                ),
                Some("not used in prefixAdvertisements"),
            ),
            (
                "community too big",
                config(
                    "default",
                    json!({"communities": [{"name": "c", "value": "70000:1"}], "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]}),
                ),
                Some("expected 16 bit"),
            ),
            (
                "undefined community",
                config(
                    "default",
                    json!({"prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["nope"]}]}),
                ),
                Some("spec.prefixAdvertisements[0].communities[0]"),
            ),
            (
                "bad service cidr",
                config(
                    "default",
                    json!({"serviceExternalIPs": [{"cidr": "10.0.0.1/8"}]}),
                ),
                Some("spec.serviceExternalIPs[0].cidr"),
            ),
        ]);
    }

    #[test]
    fn filters() {
        run(&[
            (
                "ok",
                filter(
                    json!({"exportV4": [{"cidr": "10.0.0.0/8", "matchOperator": "In", "prefixLength": {"min": 16, "max": 24}, "action": "Accept"}], "importV6": [{"action": "Reject"}]}),
                ),
                None,
            ),
            (
                "v6 cidr in v4",
                filter(
                    json!({"exportV4": [{"cidr": "fd00::/8", "matchOperator": "In", "action": "Accept"}]}),
                ),
                Some("spec.exportV4[0].cidr: invalid IPv4 network"),
            ),
            (
                "cidr without operator",
                filter(json!({"importV4": [{"cidr": "10.0.0.0/8", "action": "Accept"}]})),
                Some("cidr and matchOperator must both be set"),
            ),
            (
                "prefix length range",
                filter(
                    json!({"importV4": [{"cidr": "10.0.0.0/8", "matchOperator": "In", "prefixLength": {"max": 33}, "action": "Accept"}]}),
                ),
                Some("spec.importV4[0].prefixLength.max"),
            ),
            (
                "operations on reject",
                filter(
                    json!({"exportV4": [{"action": "Reject", "operations": [{"setPriority": {"value": 5}}]}]}),
                ),
                Some("operations may only be used with action Accept"),
            ),
        ]);
    }
}
