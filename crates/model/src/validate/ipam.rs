//! IPPool, IPReservation, IPAMConfiguration.

use super::Collector;
use crate::ippool::{IpPool, IpPoolAllowedUse, IpReservation, IpamConfiguration};
use crate::net::{parse_cidr, parse_cidr_or_ip};

pub(super) fn ip_pool(c: &mut Collector, p: &IpPool) {
    let s = &p.spec;
    if s.cidr.is_empty() {
        c.err("spec.cidr", "IPPool CIDR must be specified");
    } else {
        match parse_cidr(&s.cidr) {
            None => c.err(
                "spec.cidr",
                format!("IPPool CIDR must be a valid subnet: {:?}", s.cidr),
            ),
            Some((addr, net)) => {
                if addr != net.network() {
                    c.err(
                        "spec.cidr",
                        format!(
                            "IPPool CIDR is not strictly masked: {:?} (did you mean {net}?)",
                            s.cidr
                        ),
                    );
                }
                let v4 = net.addr().is_ipv4();
                let link_local: ipnet::IpNet = if v4 {
                    "169.254.0.0/16".parse().expect("constant")
                } else {
                    "fe80::/10".parse().expect("constant")
                };
                if link_local.contains(&net.network()) || net.contains(&link_local.network()) {
                    c.err(
                        "spec.cidr",
                        format!(
                            "IPPool CIDR overlaps with {} link local range {link_local}",
                            if v4 { "IPv4" } else { "IPv6" }
                        ),
                    );
                }
                let (lo, hi, default) = if v4 { (20, 32, 26) } else { (116, 128, 122) };
                if s.block_size != 0 && (s.block_size < lo || s.block_size > hi) {
                    c.err(
                        "spec.blockSize",
                        format!("blockSize {} is out of range: must be between 20 and 32 for IPv4 pools, and between 116 and 128 for IPv6 pools", s.block_size),
                    );
                }
                let block = if s.block_size != 0 {
                    s.block_size
                } else {
                    default
                };
                if !s.disabled && i64::from(net.prefix_len()) > block {
                    c.err(
                        "spec.cidr",
                        "IP pool size is too small for use with Calico IPAM. It must be equal to or greater than the block size.",
                    );
                }
                if !v4 && s.ipip_enabled() {
                    c.err("spec.ipipMode", "IPIP is not supported on IPv6 pools");
                }
            }
        }
    }
    if !(0..=128).contains(&s.block_size) {
        c.err(
            "spec.blockSize",
            format!("blockSize {} must be between 0 and 128", s.block_size),
        );
    }
    if s.ipip_enabled() && s.vxlan_enabled() {
        c.err(
            "spec.vxlanMode",
            "ipipMode and vxlanMode cannot both be enabled",
        );
    }
    c.selector_no_global(
        "spec.nodeSelector",
        &s.node_selector,
        "global() selector is not valid for IPPool nodeSelector",
    );
    c.selector_no_global(
        "spec.namespaceSelector",
        &s.namespace_selector,
        "global() selector is not valid for IPPool namespaceSelector",
    );
    if s.allowed_uses.len() > 10 {
        c.err("spec.allowedUses", "at most 10 allowed uses");
    }
    let uses = |u| s.allowed_uses.contains(&u);
    if uses(IpPoolAllowedUse::LoadBalancer) {
        if s.ipip_enabled() || s.vxlan_enabled() {
            c.err(
                "spec.allowedUses",
                "LoadBalancer IP pool cannot have IPIP or VXLAN enabled",
            );
        }
        if uses(IpPoolAllowedUse::Workload) || uses(IpPoolAllowedUse::Tunnel) {
            c.err(
                "spec.allowedUses",
                "LoadBalancer cannot be combined with Workload or Tunnel allowed uses",
            );
        }
        if s.disable_bgp_export {
            c.err(
                "spec.disableBGPExport",
                "LoadBalancer IP pools cannot disable BGP export",
            );
        }
        if s.node_selector != "all()" {
            c.err(
                "spec.nodeSelector",
                "IP Pool with AllowedUse LoadBalancer must have nodeSelector set to all()",
            );
        }
    }
    if uses(IpPoolAllowedUse::Tunnel) && !s.namespace_selector.is_empty() {
        c.err(
            "spec.namespaceSelector",
            "IP Pool with AllowedUse Tunnel cannot have namespaceSelector",
        );
    }
}

pub(super) fn ip_reservation(c: &mut Collector, r: &IpReservation) {
    for (i, cidr) in r.spec.reserved_cidrs.iter().enumerate() {
        if parse_cidr_or_ip(cidr).is_none() {
            c.err(
                format!("spec.reservedCIDRs[{i}]"),
                format!("invalid CIDR or IP {cidr:?}"),
            );
        }
    }
}

pub(super) fn ipam_configuration(c: &mut Collector, r: &IpamConfiguration) {
    if r.metadata.name != "default" && !r.metadata.name.is_empty() {
        c.err(
            "metadata.name",
            "Cannot create an IPAMConfiguration resource with a name other than \"default\"",
        );
    }
    c.range(
        "spec.maxBlocksPerHost",
        r.spec.max_blocks_per_host,
        0,
        1_000_000,
    );
    c.range(
        "spec.ipCooldownSeconds",
        r.spec.ip_cooldown_seconds,
        0,
        1200,
    );
    if let Some(v) = &r.spec.kube_virt_vm_address_persistence {
        c.one_of(
            "spec.kubeVirtVMAddressPersistence",
            v,
            &["Enabled", "Disabled"],
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::run;
    use serde_json::{Value, json};

    fn pool(spec: Value) -> Value {
        json!({"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}, "spec": spec})
    }

    #[test]
    fn ip_pools() {
        run(&[
            (
                "v4 pool",
                pool(json!({"cidr": "192.168.0.0/16", "ipipMode": "Always", "natOutgoing": true})),
                None,
            ),
            (
                "v6 pool",
                pool(json!({"cidr": "fd00:10::/64", "vxlanMode": "CrossSubnet", "blockSize": 122})),
                None,
            ),
            (
                "no cidr",
                pool(json!({})),
                Some("spec.cidr: IPPool CIDR must be specified"),
            ),
            (
                "bare ip",
                pool(json!({"cidr": "10.0.0.1"})),
                Some("spec.cidr: IPPool CIDR must be a valid subnet"),
            ),
            (
                "host bits",
                pool(json!({"cidr": "10.0.0.1/16"})),
                Some("not strictly masked"),
            ),
            (
                "block too small v4",
                pool(json!({"cidr": "10.0.0.0/16", "blockSize": 19})),
                Some("spec.blockSize: blockSize 19 is out of range"),
            ),
            (
                "block too big v4",
                pool(json!({"cidr": "10.0.0.0/16", "blockSize": 33})),
                Some("spec.blockSize"),
            ),
            (
                "v6 block range",
                pool(json!({"cidr": "fd00::/64", "blockSize": 26})),
                Some("between 116 and 128 for IPv6"),
            ),
            (
                "v4 block max",
                pool(json!({"cidr": "10.0.0.0/16", "blockSize": 32})),
                None,
            ),
            (
                "pool smaller than block",
                pool(json!({"cidr": "10.0.0.0/28"})),
                Some("IP pool size is too small"),
            ),
            (
                "disabled small pool",
                pool(json!({"cidr": "10.0.0.0/28", "disabled": true})),
                None,
            ),
            (
                "both encaps",
                pool(
                    json!({"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "CrossSubnet"}),
                ),
                Some("ipipMode and vxlanMode cannot both be enabled"),
            ),
            (
                "never and always",
                pool(json!({"cidr": "10.0.0.0/16", "ipipMode": "Never", "vxlanMode": "Always"})),
                None,
            ),
            (
                "ipip v6",
                pool(json!({"cidr": "fd00::/64", "ipipMode": "Always"})),
                Some("spec.ipipMode: IPIP is not supported on IPv6 pools"),
            ),
            (
                "link local",
                pool(json!({"cidr": "169.254.0.0/16"})),
                Some("link local"),
            ),
            (
                "lb with workload",
                pool(
                    json!({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer", "Workload"], "nodeSelector": "all()"}),
                ),
                Some("cannot be combined"),
            ),
            (
                "lb selector",
                pool(
                    json!({"cidr": "10.0.0.0/16", "allowedUses": ["LoadBalancer"], "nodeSelector": "a == 'b'"}),
                ),
                Some("must have nodeSelector set to all()"),
            ),
            (
                "tunnel with ns selector",
                pool(
                    json!({"cidr": "10.0.0.0/16", "allowedUses": ["Tunnel"], "namespaceSelector": "a == 'b'"}),
                ),
                Some("cannot have namespaceSelector"),
            ),
        ]);
    }

    #[test]
    fn ip_pool_selectors() {
        run(&[
            (
                "node selector",
                pool(json!({"cidr": "10.0.0.0/16", "nodeSelector": "rack == 'a'"})),
                None,
            ),
            (
                "bad node selector",
                pool(json!({"cidr": "10.0.0.0/16", "nodeSelector": "rack =="})),
                Some("spec.nodeSelector: invalid selector"),
            ),
            (
                "global node selector",
                pool(json!({"cidr": "10.0.0.0/16", "nodeSelector": "global()"})),
                Some("global() selector is not valid"),
            ),
        ]);
    }

    #[test]
    fn reservations_and_ipam_config() {
        run(&[
            (
                "reservation",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPReservation", "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["10.0.0.1", "10.0.1.0/24"]}}),
                None,
            ),
            (
                "bad reservation",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPReservation", "metadata": {"name": "r"}, "spec": {"reservedCIDRs": ["nope"]}}),
                Some("spec.reservedCIDRs[0]"),
            ),
            (
                "ipam config",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration", "metadata": {"name": "default"}, "spec": {"strictAffinity": true, "maxBlocksPerHost": 4}}),
                None,
            ),
            (
                "ipam config name",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration", "metadata": {"name": "other"}}),
                Some("other than \"default\""),
            ),
            (
                "ipam negative",
                json!({"apiVersion": "projectcalico.org/v3", "kind": "IPAMConfiguration", "metadata": {"name": "default"}, "spec": {"maxBlocksPerHost": -1}}),
                Some("spec.maxBlocksPerHost"),
            ),
        ]);
    }
}
