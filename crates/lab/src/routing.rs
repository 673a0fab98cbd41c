//! Cross-node routing for the lab's nodes through `calico-routing`: the
//! VXLAN device, VTEP entries, routes to other nodes' blocks and NAT
//! outgoing, computed from the datastore and applied inside each node's
//! namespace.
//!
//! Temporary: the agent (`calico-node`) programs policy and local routes
//! but not yet cross-node routes, so the lab runs `calico-routing`'s
//! reconciler for each node after every change it makes (`up`, `pod add`,
//! `pod del`). Until the agent owns these routes they carry
//! [`LAB_ROUTE_PROTOCOL`], not the agent's protocol: the agent's route
//! driver removes routes of its own protocol that it did not compute.
//! Blackhole routes for local blocks are left to the agent, which already
//! programs them. When the agent calls `calico-routing` itself this module
//! goes away.

use std::collections::BTreeMap;

use anyhow::Context;
use calico_datastore::Backend;
use calico_model::ipam::{AllocationBlock, block_prefix};
use calico_model::{FelixConfiguration, IpPool, Node};
use calico_routing::{Reconciler, RoutingInput, Via, compute};

use crate::datastore::Store;
use crate::state::State;
use crate::system::netns_path;

/// The protocol number on the routes the lab programs for now.
pub const LAB_ROUTE_PROTOCOL: u8 = 81;

/// What routing did on each node: the changes and the problems found.
#[derive(Debug, Default)]
pub struct Outcome {
    pub changes: BTreeMap<String, Vec<String>>,
    pub problems: BTreeMap<String, Vec<String>>,
}

/// Computes and applies every node's cross-node routing.
pub fn program(state: &State, store: &Store) -> anyhow::Result<Outcome> {
    let nodes = store
        .run(store.client.list_typed::<Node>(None, None))
        .context("listing nodes")?;
    let pools = store
        .run(store.client.list_typed::<IpPool>(None, None))
        .context("listing IP pools")?;
    let felix = store
        .run(store.client.list_typed::<FelixConfiguration>(None, None))
        .context("listing FelixConfigurations")?;
    let listing = store
        .run(store.client.backend().list(&block_prefix(Some(4))))
        .context("listing IPAM blocks")?;
    let blocks: Vec<AllocationBlock> = listing
        .kvs
        .iter()
        .filter_map(|kv| serde_json::from_slice(&kv.value).ok())
        .collect();

    let mut outcome = Outcome::default();
    for node in &state.nodes {
        let mut reconciler = Reconciler::open(&netns_path(&node.netns), LAB_ROUTE_PROTOCOL)
            .with_context(|| format!("opening {}'s namespace", node.name))?;
        let host_mtu = reconciler
            .host_mtu(&calico_routing::mtu::default_pattern())
            .with_context(|| format!("detecting {}'s MTU", node.name))?;
        // Global configuration first, then the node's own.
        let specs = ["default".to_string(), format!("node.{}", node.name)]
            .into_iter()
            .filter_map(|name| felix.iter().find(|f| f.metadata.name == name))
            .map(|f| &f.spec);
        let input =
            RoutingInput::from_resources(&node.name, &nodes, &pools, &blocks, specs, host_mtu);
        let mut desired = compute(&input);
        desired.routes.retain(|_, via| *via != Via::Blackhole);
        let changes = reconciler
            .apply(&desired)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("programming routes on {}", node.name))?;
        outcome.changes.insert(node.name.clone(), changes);
        let problems: Vec<String> = desired.problems.iter().map(|p| p.to_string()).collect();
        if !problems.is_empty() {
            outcome.problems.insert(node.name.clone(), problems);
        }
    }
    Ok(outcome)
}
