//! The handle IDs and allocation attributes every Calico component agrees
//! on (what Calico's CNI plugin, calico-node and kube-controllers write),
//! so addresses allocated by Calico and by calico-rs are found and
//! collected the same way.

/// The CNI network name of Calico's default pod network.
pub const DEFAULT_NETWORK_NAME: &str = "k8s-pod-network";

/// `<network>.<containerID>`: the handle of a pod's addresses.
pub fn workload_handle(network_name: &str, container_id: &str) -> String {
    format!("{network_name}.{container_id}")
}

/// `ipip-tunnel-addr-<node>`.
pub fn ipip_tunnel_handle(node: &str) -> String {
    format!("ipip-tunnel-addr-{node}")
}

/// `vxlan-tunnel-addr-<node>`.
pub fn vxlan_tunnel_handle(node: &str) -> String {
    format!("vxlan-tunnel-addr-{node}")
}

/// `vxlan-v6-tunnel-addr-<node>` (the `-v6-` is an infix, as Calico has it).
pub fn vxlan_v6_tunnel_handle(node: &str) -> String {
    format!("vxlan-v6-tunnel-addr-{node}")
}

/// `wireguard-tunnel-addr-<node>`.
pub fn wireguard_tunnel_handle(node: &str) -> String {
    format!("wireguard-tunnel-addr-{node}")
}

/// `wireguard-v6-tunnel-addr-<node>`.
pub fn wireguard_v6_tunnel_handle(node: &str) -> String {
    format!("wireguard-v6-tunnel-addr-{node}")
}

/// The attribute keys and `type` values (calico-model's, Calico's).
pub use calico_model::ipam::attr;

/// Attribute: the KubeVirt VirtualMachineInstance name.
pub const ATTR_VMI_NAME: &str = "vmi-name";

/// Whether an allocation's `type` attribute marks a node tunnel address.
pub fn is_tunnel_type(value: &str) -> bool {
    matches!(
        value,
        attr::TYPE_IPIP
            | attr::TYPE_VXLAN
            | attr::TYPE_VXLAN_V6
            | attr::TYPE_WIREGUARD
            | attr::TYPE_WIREGUARD_V6
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_formats() {
        assert_eq!(
            workload_handle(DEFAULT_NETWORK_NAME, "abc123"),
            "k8s-pod-network.abc123"
        );
        assert_eq!(vxlan_tunnel_handle("node-1"), "vxlan-tunnel-addr-node-1");
        assert_eq!(
            vxlan_v6_tunnel_handle("node-1"),
            "vxlan-v6-tunnel-addr-node-1"
        );
        assert_eq!(ipip_tunnel_handle("node-1"), "ipip-tunnel-addr-node-1");
        assert_eq!(
            wireguard_v6_tunnel_handle("n"),
            "wireguard-v6-tunnel-addr-n"
        );
        assert!(is_tunnel_type(attr::TYPE_VXLAN) && !is_tunnel_type("pod"));
    }
}
