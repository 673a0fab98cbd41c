//! FelixConfiguration, KubeControllersConfiguration, CalicoNodeStatus.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::Collector;
use crate::cluster::{KubeControllersConfiguration, ReconcilerConfig};
use crate::felix::FelixConfiguration;
use crate::net::parse_cidr_or_ip;
use crate::node::CalicoNodeStatus;
use crate::numorstring::Port;

pub(super) fn felix(c: &mut Collector, f: &FelixConfiguration) {
    let s = &f.spec;
    for (name, value) in s.durations() {
        c.duration(&format!("spec.{name}"), value);
    }
    if let Some(ranges) = &s.kube_node_port_ranges {
        if ranges.len() > 7 {
            c.err(
                "spec.kubeNodePortRanges",
                "node port ranges list is too long (max 7)",
            );
        }
        for (i, p) in ranges.iter().enumerate() {
            match p {
                Port::Named(_) => c.err(
                    format!("spec.kubeNodePortRanges[{i}]"),
                    "node port ranges should not contain named ports",
                ),
                Port::Range { min, max } if *min == 0 || min > max => c.err(
                    format!("spec.kubeNodePortRanges[{i}]"),
                    "port range invalid",
                ),
                _ => {}
            }
        }
    }
    if let Some(list) = &s.external_nodes_list {
        for (i, n) in list.iter().enumerate() {
            match parse_cidr_or_ip(n) {
                None => c.err(
                    format!("spec.externalNodesList[{i}]"),
                    format!("has invalid CIDR {n:?}"),
                ),
                Some((a, _)) if !a.is_ipv4() => c.err(
                    format!("spec.externalNodesList[{i}]"),
                    "has invalid IPv6 CIDR",
                ),
                _ => {}
            }
        }
    }
    if let Some(region) = &s.openstack_region {
        if region.len() > 63 - "openstack-region-".len() {
            c.err("spec.openstackRegion", "is too long");
        } else if !region.is_empty() && !super::is_dns1123_label(region) {
            c.err("spec.openstackRegion", "must be a valid DNS label");
        }
    }
    for (path, v) in [
        ("spec.natOutgoingAddress", &s.nat_outgoing_address),
        (
            "spec.deviceRouteSourceAddress",
            &s.device_route_source_address,
        ),
        (
            "spec.deviceRouteSourceAddressIPv6",
            &s.device_route_source_address_ipv6,
        ),
    ] {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            if v.parse::<IpAddr>().is_err() {
                c.err(path, "is not a valid IP address");
            }
        }
    }
    if let Some(r) = &s.route_table_range {
        if !(r.min >= 1 && r.max >= r.min && r.max <= 250) {
            c.err(
                "spec.routeTableRange",
                "must be a range of route table indices within 1..250",
            );
        }
    }
    if let Some(ranges) = &s.route_table_ranges {
        let mut tables: i64 = 0;
        for (i, r) in ranges.iter().enumerate() {
            let p = format!("spec.routeTableRanges[{i}]");
            if r.min > r.max {
                c.err(&p, "min value cannot be greater than max value");
            }
            if r.min <= 0 {
                c.err(&p, "cannot target indices < 1");
            }
            if r.max > i64::from(u32::MAX) {
                c.err(&p, "max index too high");
            }
            tables += (r.max - r.min + 1).max(0);
        }
        if tables > 0xffff {
            c.err("spec.routeTableRanges", "targets too many tables");
        }
    }
    if let Some(list) = &s.health_timeout_overrides {
        for (i, o) in list.iter().enumerate() {
            let ok = !o.name.is_empty()
                && o.name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b' ' | b'-'));
            if !ok {
                c.err(
                    format!("spec.healthTimeoutOverrides[{i}].name"),
                    "name should match ^[a-zA-Z0-9_ -]+$",
                );
            }
            match crate::duration::parse_go_duration(&o.timeout) {
                None => c.duration(
                    &format!("spec.healthTimeoutOverrides[{i}].timeout"),
                    &o.timeout,
                ),
                Some(n) if n < 0 => c.err(
                    format!("spec.healthTimeoutOverrides[{i}].timeout"),
                    "Timeout should not be negative",
                ),
                _ => {}
            }
        }
    }
    for (field, list) in [
        ("failsafeInboundHostPorts", &s.failsafe_inbound_host_ports),
        ("failsafeOutboundHostPorts", &s.failsafe_outbound_host_ports),
    ] {
        for (i, p) in list.iter().flatten().enumerate() {
            if !["TCP", "UDP", "SCTP"].contains(&p.protocol.as_str()) && !p.protocol.is_empty() {
                c.err(
                    format!("spec.{field}[{i}].protocol"),
                    "protocol must be 'TCP' or 'UDP' or 'SCTP'.",
                );
            }
            if !p.net.is_empty() && parse_cidr_or_ip(&p.net).is_none() {
                c.err(
                    format!("spec.{field}[{i}].net"),
                    format!("invalid network {:?}", p.net),
                );
            }
        }
    }
    if let Some(d) = &s.istio_dscp_mark {
        if d.value().is_none() {
            c.err("spec.istioDSCPMark", "invalid DSCP value");
        }
    }
}

fn reconciler(c: &mut Collector, path: &str, r: &Option<ReconcilerConfig>) {
    if let Some(p) = r.as_ref().and_then(|r| r.reconciler_period.as_deref()) {
        c.duration(&format!("{path}.reconcilerPeriod"), p);
    }
}

pub(super) fn kube_controllers(c: &mut Collector, k: &KubeControllersConfiguration) {
    if k.metadata.name != "default" && !k.metadata.name.is_empty() {
        c.err("metadata.name", "Cannot create a Kube Controllers Configuration resource with a name other than \"default\"");
    }
    let s = &k.spec;
    if !s.log_severity_screen.is_empty() {
        c.one_of(
            "spec.logSeverityScreen",
            &s.log_severity_screen,
            &[
                "None", "Debug", "Info", "Warning", "Error", "Fatal", "Panic",
            ],
        );
    }
    if !s.health_checks.is_empty() {
        c.one_of(
            "spec.healthChecks",
            &s.health_checks,
            &["Enabled", "Disabled"],
        );
    }
    if let Some(p) = &s.etcd_v3_compaction_period {
        c.duration("spec.etcdV3CompactionPeriod", p);
    }
    if let Some(p) = s.prometheus_metrics_port {
        c.range("spec.prometheusMetricsPort", p, 0, 65535);
    }
    if let Some(p) = s.debug_profile_port {
        c.range("spec.debugProfilePort", i64::from(p), 0, 65535);
    }
    let ctl = &s.controllers;
    reconciler(c, "spec.controllers.policy", &ctl.policy);
    reconciler(
        c,
        "spec.controllers.workloadEndpoint",
        &ctl.workload_endpoint,
    );
    reconciler(c, "spec.controllers.serviceAccount", &ctl.service_account);
    reconciler(c, "spec.controllers.namespace", &ctl.namespace);
    if let Some(n) = &ctl.node {
        if let Some(p) = &n.reconciler_period {
            c.duration("spec.controllers.node.reconcilerPeriod", p);
        }
        if let Some(p) = &n.leak_grace_period {
            c.duration("spec.controllers.node.leakGracePeriod", p);
        }
        if !n.sync_labels.is_empty() {
            c.one_of(
                "spec.controllers.node.syncLabels",
                &n.sync_labels,
                &["Enabled", "Disabled"],
            );
        }
        if let Some(h) = &n.host_endpoint {
            let hp = "spec.controllers.node.hostEndpoint";
            if !h.auto_create.is_empty() {
                c.one_of(
                    &format!("{hp}.autoCreate"),
                    &h.auto_create,
                    &["Enabled", "Disabled"],
                );
            }
            if !h.create_default_host_endpoint.is_empty() {
                c.one_of(
                    &format!("{hp}.createDefaultHostEndpoint"),
                    &h.create_default_host_endpoint,
                    &["Enabled", "Disabled"],
                );
            }
            let mut names = BTreeSet::new();
            for (i, t) in h.templates.iter().enumerate() {
                let tp = format!("{hp}.templates[{i}]");
                if t.generate_name.is_empty() {
                    c.err(
                        format!("{tp}.generateName"),
                        "Template name must be specified",
                    );
                } else {
                    c.name(&format!("{tp}.generateName"), &t.generate_name);
                    if !names.insert(&t.generate_name) {
                        c.err(format!("{tp}.generateName"), "Template name must be unique");
                    }
                }
                if t.interface_cidrs.is_empty() && t.interface_pattern.is_empty() {
                    c.err(&tp, "InterfaceCIDRs or InterfacePattern must be specified");
                }
                for (j, cidr) in t.interface_cidrs.iter().enumerate() {
                    if parse_cidr_or_ip(cidr).is_none() {
                        c.err(
                            format!("{tp}.interfaceCIDRs[{j}]"),
                            format!("invalid CIDR {cidr:?}"),
                        );
                    }
                }
                c.labels(&format!("{tp}.labels"), &t.labels);
                c.annotations(&format!("{tp}.annotations"), &t.annotations);
                c.selector(&format!("{tp}.nodeSelector"), &t.node_selector);
            }
        }
    }
    if let Some(lb) = &ctl.load_balancer {
        if !lb.assign_ips.is_empty() {
            c.one_of(
                "spec.controllers.loadBalancer.assignIPs",
                &lb.assign_ips,
                &["AllServices", "RequestedServicesOnly"],
            );
        }
    }
    if let Some(m) = &ctl.migration {
        if !m.policy_name_migrator.is_empty() {
            c.one_of(
                "spec.controllers.migration.policyNameMigrator",
                &m.policy_name_migrator,
                &["Enabled", "Disabled"],
            );
        }
    }
}

pub(super) fn node_status(c: &mut Collector, n: &CalicoNodeStatus) {
    let s = &n.spec;
    if s.node.is_empty() {
        c.err("spec.node", "node must be specified");
    } else {
        c.name("spec.node", &s.node);
    }
    if s.classes.is_empty() {
        c.err("spec.classes", "at least one class must be specified");
    }
    let mut seen = BTreeSet::new();
    for (i, class) in s.classes.iter().enumerate() {
        c.one_of(
            &format!("spec.classes[{i}]"),
            class,
            &["Agent", "BGP", "Routes"],
        );
        if !seen.insert(class) {
            c.err(format!("spec.classes[{i}]"), "classes must be unique");
        }
    }
    match s.update_period_seconds {
        None => c.err(
            "spec.updatePeriodSeconds",
            "updatePeriodSeconds must be specified",
        ),
        Some(p) => c.range("spec.updatePeriodSeconds", i64::from(p), 0, 86400),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::{Value, json};

    fn felix(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "FelixConfiguration", "metadata": {"name": "default"}, "spec": spec})
    }
    fn kcc(name: &str, spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "KubeControllersConfiguration", "metadata": {"name": name}, "spec": spec})
    }

    #[test]
    fn felix_configurations() {
        run(&[
            (
                "ok",
                felix(
                    json!({"reportingInterval": "0s", "logSeverityScreen": "Info", "kubeNodePortRanges": [30000, "31000:32767"], "routeTableRange": {"min": 1, "max": 250}}),
                ),
                None,
            ),
            (
                "bad duration",
                felix(json!({"routeRefreshInterval": "often"})),
                Some("spec.routeRefreshInterval: invalid duration"),
            ),
            (
                "named node port",
                felix(json!({"kubeNodePortRanges": ["http"]})),
                Some("should not contain named ports"),
            ),
            (
                "v6 external node",
                felix(json!({"externalNodesList": ["fd00::/64"]})),
                Some("has invalid IPv6 CIDR"),
            ),
            (
                "bad nat address",
                felix(json!({"natOutgoingAddress": "x"})),
                Some("spec.natOutgoingAddress"),
            ),
            (
                "bad route table range",
                felix(json!({"routeTableRange": {"min": 0, "max": 300}})),
                Some("within 1..250"),
            ),
            (
                "bad failsafe protocol",
                felix(json!({"failsafeInboundHostPorts": [{"protocol": "ICMP", "port": 1}]})),
                Some("spec.failsafeInboundHostPorts[0].protocol"),
            ),
        ]);
    }

    #[test]
    fn kube_controllers() {
        run(&[
            (
                "ok",
                kcc(
                    "default",
                    json!({"healthChecks": "Enabled", "controllers": {"node": {"reconcilerPeriod": "5m", "hostEndpoint": {"autoCreate": "Enabled", "templates": [{"generateName": "t", "interfacePattern": "eth*"}]}}}}),
                ),
                None,
            ),
            (
                "name",
                kcc("other", json!({})),
                Some("other than \"default\""),
            ),
            (
                "bad health",
                kcc("default", json!({"healthChecks": "Maybe"})),
                Some("spec.healthChecks"),
            ),
            (
                "template without match",
                kcc(
                    "default",
                    json!({"controllers": {"node": {"hostEndpoint": {"templates": [{"generateName": "t"}]}}}}),
                ),
                Some("InterfaceCIDRs or InterfacePattern"),
            ),
        ]);
    }

    #[test]
    fn node_statuses() {
        let ns = |spec: Value| json!({"apiVersion": "projectcalico.org/v3", "kind": "CalicoNodeStatus", "metadata": {"name": "s"}, "spec": spec});
        run(&[
            (
                "ok",
                ns(
                    json!({"node": "n1", "classes": ["Agent", "BGP", "Routes"], "updatePeriodSeconds": 10}),
                ),
                None,
            ),
            (
                "missing period",
                ns(json!({"node": "n1", "classes": ["Agent"]})),
                Some("spec.updatePeriodSeconds"),
            ),
            (
                "dup class",
                ns(json!({"node": "n1", "classes": ["BGP", "BGP"], "updatePeriodSeconds": 1})),
                Some("classes must be unique"),
            ),
            (
                "bad class",
                ns(json!({"node": "n1", "classes": ["Disk"], "updatePeriodSeconds": 1})),
                Some("spec.classes[0]"),
            ),
        ]);
    }
}
