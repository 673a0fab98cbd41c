//! VXLAN tunnel addresses for the nodes, allocated as Calico's
//! `calico-node -allocate-tunnel-addrs` allocates them: one address per
//! node from the VXLAN pools, through IPAM with the handle
//! `vxlan-tunnel-addr-<node>` and the attributes `node` and
//! `type: vxlanTunnelAddress`, written to the Node's
//! `spec.ipv4VXLANTunnelAddr`.
//!
//! Temporary: calico-node's start-up does not allocate tunnel addresses
//! yet, and the cross-node routes need them. Once it does, `up` drops this
//! step (an address already on the Node is kept, so running both is safe).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use calico_ipam::AutoAssignArgs;
use calico_ipam::handles::vxlan_tunnel_handle;
use calico_model::ipam::attr;
use calico_model::{EncapMode, IpPool, IpPoolAllowedUse, Node};
use ipnet::IpNet;

use crate::datastore::Store;

/// The pools a VXLAN tunnel address may come from.
fn vxlan_pools(pools: &[IpPool]) -> Vec<IpNet> {
    pools
        .iter()
        .filter(|p| {
            !p.spec.disabled
                && p.spec.vxlan_mode.is_some_and(|m| m != EncapMode::Never)
                && p.spec.allows(IpPoolAllowedUse::Tunnel)
        })
        .filter_map(|p| p.spec.network())
        .filter(|n| n.addr().is_ipv4())
        .collect()
}

/// Gives every node without one a VXLAN tunnel address. Returns the
/// addresses by node.
pub fn allocate(store: &Store) -> anyhow::Result<BTreeMap<String, String>> {
    let pools = store
        .run(store.client.list_typed::<IpPool>(None, None))
        .context("listing IP pools")?;
    let cidrs = vxlan_pools(&pools);
    let nodes = store
        .run(store.client.list_typed::<Node>(None, None))
        .context("listing nodes")?;
    let mut out = BTreeMap::new();
    if cidrs.is_empty() {
        return Ok(out);
    }
    for node in nodes {
        let name = node.metadata.name.clone();
        if !node.spec.ipv4_vxlan_tunnel_addr.is_empty() {
            out.insert(name, node.spec.ipv4_vxlan_tunnel_addr.clone());
            continue;
        }
        let handle = vxlan_tunnel_handle(&name);
        let held = store
            .run(store.ipam.get_ips_by_handle(&handle))
            .unwrap_or_default();
        let address = match held.first() {
            Some(address) => *address,
            None => {
                let args = AutoAssignArgs {
                    num4: 1,
                    handle: Some(handle.clone()),
                    attrs: BTreeMap::from([
                        (attr::NODE.to_string(), name.clone()),
                        (attr::TYPE.to_string(), attr::TYPE_VXLAN.to_string()),
                    ]),
                    hostname: name.clone(),
                    ipv4_pools: cidrs.clone(),
                    intended_use: IpPoolAllowedUse::Tunnel,
                    ..AutoAssignArgs::default()
                };
                let assigned = store
                    .run(store.ipam.auto_assign(&args))
                    .map_err(|e| anyhow::anyhow!("{e}"))
                    .with_context(|| format!("allocating the VXLAN tunnel address of {name}"))?;
                if let Some(reason) = assigned.v4.partial_fulfillment_error() {
                    bail!("allocating the VXLAN tunnel address of {name}: {reason}");
                }
                assigned.v4.addresses()[0]
            }
        };
        write_address(store, &name, &address.to_string())?;
        out.insert(name, address.to_string());
    }
    Ok(out)
}

/// Writes the address to the Node, retrying when the agent or start-up
/// wrote the Node in between.
fn write_address(store: &Store, node: &str, address: &str) -> anyhow::Result<()> {
    for _ in 0..10 {
        let mut current = store
            .run(store.client.get_typed::<Node>("", node))
            .with_context(|| format!("reading node {node}"))?;
        current.spec.ipv4_vxlan_tunnel_addr = address.to_string();
        match store.run(store.client.update_typed(current)) {
            Ok(_) => return Ok(()),
            Err(e) if e.is_conflict() => continue,
            Err(e) => return Err(e).with_context(|| format!("updating node {node}")),
        }
    }
    bail!("node {node} kept changing while its tunnel address was written")
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::{IpPoolSpec, ObjectMeta};

    fn pool(cidr: &str, vxlan: Option<EncapMode>, disabled: bool) -> IpPool {
        IpPool {
            metadata: ObjectMeta::named(cidr),
            spec: IpPoolSpec {
                cidr: cidr.into(),
                vxlan_mode: vxlan,
                disabled,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn only_enabled_vxlan_pools_give_tunnel_addresses() {
        let pools = [
            pool("192.168.0.0/16", Some(EncapMode::CrossSubnet), false),
            pool("10.244.0.0/16", Some(EncapMode::Never), false),
            pool("10.245.0.0/16", None, false),
            pool("10.246.0.0/16", Some(EncapMode::Always), true),
            pool("fd00::/48", Some(EncapMode::Always), false),
        ];
        assert_eq!(
            vxlan_pools(&pools),
            vec!["192.168.0.0/16".parse::<IpNet>().unwrap()]
        );
    }
}
