//! Tunnel addresses, as Calico's `calico-node -allocate-tunnel-addrs`
//! gives them: while an enabled IPv4 pool uses VXLAN (or IPIP), this node
//! holds one address from such a pool for its tunnel device, allocated
//! through IPAM under the handle `vxlan-tunnel-addr-<node>`
//! (`ipip-tunnel-addr-<node>`) with the attributes `node` and `type`, and
//! recorded on its Node (`spec.ipv4VXLANTunnelAddr`,
//! `spec.bgp.ipv4IPIPTunnelAddr`). An address outside every such pool is
//! released and replaced; with no such pool left it is released and
//! cleared.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_client::Client;
use calico_datastore::Backend;
use calico_ipam::handles::{ipip_tunnel_handle, vxlan_tunnel_handle};
use calico_ipam::{AutoAssignArgs, Ipam};
use calico_model::ipam::attr;
use calico_model::node::NodeBgpSpec;
use calico_model::{EncapMode, IpPool, IpPoolAllowedUse, Node};
use ipnet::IpNet;
use tracing::info;

use super::{StartupError, datastore};

/// The two kinds of tunnel device an IPv4 pool can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tunnel {
    Vxlan,
    Ipip,
}

impl Tunnel {
    fn name(self) -> &'static str {
        match self {
            Tunnel::Vxlan => "VXLAN",
            Tunnel::Ipip => "IPIP",
        }
    }

    fn handle(self, node: &str) -> String {
        match self {
            Tunnel::Vxlan => vxlan_tunnel_handle(node),
            Tunnel::Ipip => ipip_tunnel_handle(node),
        }
    }

    fn attribute(self) -> &'static str {
        match self {
            Tunnel::Vxlan => attr::TYPE_VXLAN,
            Tunnel::Ipip => attr::TYPE_IPIP,
        }
    }

    fn mode(self, pool: &IpPool) -> Option<EncapMode> {
        match self {
            Tunnel::Vxlan => pool.spec.vxlan_mode,
            Tunnel::Ipip => pool.spec.ipip_mode,
        }
    }

    /// The address recorded on the Node ("" when none).
    fn recorded(self, node: &Node) -> &str {
        match self {
            Tunnel::Vxlan => &node.spec.ipv4_vxlan_tunnel_addr,
            Tunnel::Ipip => node
                .spec
                .bgp
                .as_ref()
                .map_or("", |b| b.ipv4_ipip_tunnel_addr.as_str()),
        }
    }

    fn record(self, node: &mut Node, address: String) {
        match self {
            Tunnel::Vxlan => node.spec.ipv4_vxlan_tunnel_addr = address,
            Tunnel::Ipip => {
                node.spec
                    .bgp
                    .get_or_insert_with(NodeBgpSpec::default)
                    .ipv4_ipip_tunnel_addr = address
            }
        }
    }

    /// The enabled IPv4 pools that use this tunnel and allow tunnel
    /// addresses.
    fn pools(self, pools: &[IpPool]) -> Vec<IpNet> {
        pools
            .iter()
            .filter(|p| {
                !p.spec.disabled
                    && self.mode(p).is_some_and(|m| m != EncapMode::Never)
                    && p.spec.allows(IpPoolAllowedUse::Tunnel)
            })
            .filter_map(|p| p.spec.network())
            .filter(|n| n.addr().is_ipv4())
            .collect()
    }
}

fn ipam_error(tunnel: Tunnel, node: &str, source: impl std::fmt::Display) -> StartupError {
    StartupError::TunnelAddress {
        tunnel: tunnel.name(),
        node: node.to_owned(),
        reason: source.to_string(),
    }
}

/// Gives `node_name` the tunnel addresses its pools call for, and takes
/// back those they no longer do.
pub async fn ensure<B: Backend + Clone>(
    client: &Client<B>,
    node_name: &str,
) -> Result<(), StartupError> {
    let pools = client
        .list_typed::<IpPool>(None, None)
        .await
        .map_err(datastore("listing IP pools"))?;
    let ipam = Ipam::new(client.backend().clone());
    for tunnel in [Tunnel::Vxlan, Tunnel::Ipip] {
        let cidrs = tunnel.pools(&pools);
        let node = client
            .get_typed::<Node>("", node_name)
            .await
            .map_err(datastore(format!("reading node {node_name}")))?;
        let recorded: Option<IpAddr> = tunnel.recorded(&node).parse().ok();
        let handle = tunnel.handle(node_name);
        let held = ipam
            .get_ips_by_handle(&handle)
            .await
            .map_err(|e| ipam_error(tunnel, node_name, e))?;
        let usable = |a: &IpAddr| cidrs.iter().any(|c| c.contains(a));
        let keep = recorded.filter(|a| held.contains(a) && usable(a));
        if let Some(address) = keep {
            info!(tunnel = tunnel.name(), %address, "tunnel address kept");
            continue;
        }
        if !held.is_empty() {
            ipam.release_by_handle(&handle)
                .await
                .map_err(|e| ipam_error(tunnel, node_name, e))?;
            info!(tunnel = tunnel.name(), addresses = ?held, "stale tunnel address released");
        }
        let address = if cidrs.is_empty() {
            String::new()
        } else {
            let args = AutoAssignArgs {
                num4: 1,
                handle: Some(handle.clone()),
                attrs: BTreeMap::from([
                    (attr::NODE.to_string(), node_name.to_string()),
                    (attr::TYPE.to_string(), tunnel.attribute().to_string()),
                ]),
                hostname: node_name.to_string(),
                ipv4_pools: cidrs.clone(),
                intended_use: IpPoolAllowedUse::Tunnel,
                ..AutoAssignArgs::default()
            };
            let assigned = ipam
                .auto_assign(&args)
                .await
                .map_err(|e| ipam_error(tunnel, node_name, e))?;
            if let Some(reason) = assigned.v4.partial_fulfillment_error() {
                return Err(ipam_error(tunnel, node_name, reason));
            }
            let address = assigned.v4.addresses()[0].to_string();
            info!(tunnel = tunnel.name(), address, "tunnel address allocated");
            address
        };
        if tunnel.recorded(&node) != address {
            record(client, tunnel, node_name, address).await?;
        }
    }
    Ok(())
}

/// Writes the address to the Node, again when someone else wrote the Node
/// in between.
async fn record<B: Backend + Clone>(
    client: &Client<B>,
    tunnel: Tunnel,
    node_name: &str,
    address: String,
) -> Result<(), StartupError> {
    let mut attempts = 0;
    loop {
        let mut node = client
            .get_typed::<Node>("", node_name)
            .await
            .map_err(datastore(format!("reading node {node_name}")))?;
        tunnel.record(&mut node, address.clone());
        match client.update_typed(node).await {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() && attempts < 10 => attempts += 1,
            Err(e) => {
                return Err(datastore(format!(
                    "recording the {} tunnel address on node {node_name}",
                    tunnel.name()
                ))(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{IpPoolSpec, ObjectMeta};

    fn pool(
        cidr: &str,
        vxlan: Option<EncapMode>,
        ipip: Option<EncapMode>,
        disabled: bool,
    ) -> IpPool {
        IpPool {
            metadata: ObjectMeta::named(cidr),
            spec: IpPoolSpec {
                cidr: cidr.into(),
                vxlan_mode: vxlan,
                ipip_mode: ipip,
                disabled,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_enabled_ipv4_pools_of_the_tunnel_give_addresses() {
        use EncapMode::*;
        let pools = [
            pool("192.168.0.0/16", Some(CrossSubnet), None, false),
            pool("10.244.0.0/16", Some(Never), Some(Always), false),
            pool("10.245.0.0/16", None, None, false),
            pool("10.246.0.0/16", Some(Always), None, true),
            pool("fd00::/48", Some(Always), None, false),
        ];
        let net = |s: &str| s.parse::<IpNet>().unwrap();
        assert_eq!(Tunnel::Vxlan.pools(&pools), vec![net("192.168.0.0/16")]);
        assert_eq!(Tunnel::Ipip.pools(&pools), vec![net("10.244.0.0/16")]);
    }
}
