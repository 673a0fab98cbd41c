//! The underlay: a `fabric` namespace holding one bridge per subnet, a
//! `router` namespace at `.1` of each subnet (the nodes' default gateway
//! and, for NAT outgoing, "the outside"), and one namespace per node with
//! `eth0` on its subnet's bridge. Nothing is created in the host's own
//! namespace: every veth is made inside the fabric with its other end
//! moved straight into a lab namespace.

use anyhow::Context;

use crate::state::{NodeState, State};
use crate::system::{create_netns, ip_in, sysctl_in};

/// Subnet `s`: `10.11.s.0/24`.
pub fn subnet(s: u8) -> String {
    format!("10.11.{s}.0/24")
}

/// The router's address on subnet `s`.
pub fn gateway(s: u8) -> String {
    format!("10.11.{s}.1")
}

/// Node `index` (1-based) on subnet `s`: `10.11.s.(10 + index)/24`.
pub fn node_address(s: u8, index: usize) -> String {
    format!("10.11.{s}.{}/24", 10 + index)
}

/// The name of node `index`.
pub fn node_name(index: usize) -> String {
    format!("node-{index}")
}

/// Creates a namespace and records it before anything else can fail.
fn new_netns(state: &mut State, what: &str) -> anyhow::Result<String> {
    let name = state.netns_name(what);
    state.namespaces.push(name.clone());
    state.save()?;
    create_netns(&name).with_context(|| format!("creating network namespace {name}"))?;
    Ok(name)
}

/// A veth from the fabric's bridge `br<s>` (port `port`) into `netns` as
/// `inner`, with `address` on it.
fn attach(
    fabric: &str,
    s: u8,
    port: &str,
    netns: &str,
    inner: &str,
    address: &str,
) -> anyhow::Result<()> {
    ip_in(
        fabric,
        &[
            "link", "add", port, "type", "veth", "peer", "name", inner, "netns", netns,
        ],
    )?;
    ip_in(
        fabric,
        &["link", "set", port, "master", &format!("br{s}"), "up"],
    )?;
    ip_in(netns, &["addr", "add", address, "dev", inner])?;
    ip_in(netns, &["link", "set", inner, "up"]).map(drop)
}

/// Builds the fabric, the router and every node's namespace.
pub fn build(state: &mut State, mut progress: impl FnMut(&str)) -> anyhow::Result<()> {
    let subnets = state.config.subnets;
    let fabric = new_netns(state, "fabric")?;
    for s in 1..=subnets {
        let bridge = format!("br{s}");
        ip_in(&fabric, &["link", "add", &bridge, "type", "bridge"])?;
        ip_in(&fabric, &["link", "set", &bridge, "up"])?;
    }
    let router = new_netns(state, "router")?;
    for s in 1..=subnets {
        attach(
            &fabric,
            s,
            &format!("r{s}"),
            &router,
            &format!("eth{s}"),
            &format!("{}/24", gateway(s)),
        )?;
    }
    sysctl_in(&router, "net/ipv4/ip_forward", "1")?;
    progress(&format!(
        "underlay: {} behind router {}",
        (1..=subnets).map(subnet).collect::<Vec<_>>().join(" and "),
        (1..=subnets).map(gateway).collect::<Vec<_>>().join("/")
    ));

    for index in 1..=state.config.nodes {
        let name = node_name(index);
        let s = state.config.subnet_of(index);
        let netns = new_netns(state, &name)?;
        let address = node_address(s, index);
        attach(&fabric, s, &format!("n{index}"), &netns, "eth0", &address)?;
        ip_in(&netns, &["route", "add", "default", "via", &gateway(s)])?;
        // The node forwards between its pods and the underlay.
        sysctl_in(&netns, "net/ipv4/ip_forward", "1")?;
        let conflist = state
            .dir
            .join("nodes")
            .join(&name)
            .join("10-calico.conflist");
        state.nodes.push(NodeState {
            name: name.clone(),
            netns,
            address: address.clone(),
            subnet: s,
            cni_conflist: conflist,
            agent: None,
        });
        state.save()?;
        progress(&format!("{name}: eth0 {address}"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_follow_the_plan() {
        assert_eq!(subnet(2), "10.11.2.0/24");
        assert_eq!(gateway(1), "10.11.1.1");
        assert_eq!(node_address(2, 3), "10.11.2.13/24");
        assert_eq!(node_name(10), "node-10");
    }
}
