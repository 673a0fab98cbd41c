//! The IPAM garbage collector kube-controllers runs: addresses whose pod
//! or node is gone are released, nodes that are gone lose their blocks,
//! and surplus empty blocks go back to the pool.
//!
//! Nothing is released on one sighting. A run ([`plan`], pure) compares
//! what it sees with the [`GcState`] of the previous run: a leak is only
//! confirmed when the previous run saw the same allocation (same address,
//! handle and sequence number) leaked too, and the release names that
//! sequence number, so an address reallocated in between is never
//! touched. All of a handle's addresses are released together or not at
//! all. The caller keeps the returned state for the next run.
//!
//! Validity follows Calico's kube-controllers: a pod address is valid
//! while its pod exists (and, once the pod reports addresses, while they
//! include it); a tunnel address while its node exists; an address with
//! neither kind of owner is always valid.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use calico_datastore::Backend;
use calico_model::{Node, WorkloadEndpoint};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::allocator::Ipam;
use crate::block::{Occupancy, ReleaseOptions, WINDOWS_RESERVED_HANDLE, sanitize_handle};
use crate::error::IpamError;
use crate::handles::attr::{
    NAMESPACE as ATTR_NAMESPACE, NODE as ATTR_NODE, POD as ATTR_POD, TYPE as ATTR_TYPE,
};
use crate::handles::is_tunnel_type;
use crate::record::{AffinityType, AllocationBlock};

/// What exists, as the collector's caller sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSet {
    /// Node names.
    pub nodes: BTreeSet<String>,
    /// `(namespace, pod)` to the pod's addresses (empty until reported).
    pub pods: BTreeMap<(String, String), Vec<IpAddr>>,
}

impl LiveSet {
    /// From Node and WorkloadEndpoint resources.
    pub fn from_resources(nodes: &[Node], endpoints: &[WorkloadEndpoint]) -> LiveSet {
        let mut live = LiveSet {
            nodes: nodes.iter().map(|n| n.metadata.name.clone()).collect(),
            pods: BTreeMap::new(),
        };
        for w in endpoints {
            let pod = if w.spec.pod.is_empty() {
                &w.metadata.name
            } else {
                &w.spec.pod
            };
            let ips = live
                .pods
                .entry((w.metadata.namespace.clone(), pod.clone()))
                .or_default();
            for net in &w.spec.ip_networks {
                if let Some((addr, _)) = calico_model::net::parse_cidr_or_ip(net) {
                    ips.push(addr);
                }
            }
        }
        live
    }
}

/// An allocation as seen on one run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspect {
    pub handle: Option<String>,
    pub sequence_number: u64,
    /// The run that first saw it leaked.
    pub since_run: u64,
}

/// What one run hands to the next.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GcState {
    /// How many runs have happened.
    pub run: u64,
    /// Allocations seen leaked on the last run.
    pub suspects: BTreeMap<IpAddr, Suspect>,
    /// Nodes seen gone (with nothing valid left) on the last run.
    pub nodes_gone: BTreeSet<String>,
    /// Surplus empty blocks seen on the last run, with their owner.
    pub empty_blocks: BTreeMap<IpNet, String>,
}

/// One allocation, for [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcAllocation {
    pub ip: IpAddr,
    pub handle: Option<String>,
    pub sequence_number: u64,
    pub attrs: BTreeMap<String, String>,
    /// Released already, waiting out its cooldown.
    pub cooling_down: bool,
}

/// One block, for [`plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcBlock {
    pub cidr: IpNet,
    /// The host it is affine to.
    pub host: Option<String>,
    pub empty: bool,
}

/// What a run decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcPlan {
    /// For the next run.
    pub state: GcState,
    /// Confirmed leaks: release these now.
    pub release: Vec<ReleaseOptions>,
    /// Leaks seen for the first time (released next run if still leaked).
    pub suspected: Vec<IpAddr>,
    /// Nodes gone on two runs with nothing valid: release their blocks.
    pub release_nodes: Vec<String>,
    /// Surplus empty blocks seen on two runs: give them up (if still empty).
    pub release_blocks: Vec<(String, IpNet)>,
}

enum Verdict {
    Valid,
    Leaked,
    /// Cooling down or reserved: neither.
    Ignore,
}

fn verdict(a: &GcAllocation, live: &LiveSet) -> Verdict {
    if a.cooling_down {
        return Verdict::Ignore;
    }
    if a.handle
        .as_deref()
        .is_some_and(|h| h.eq_ignore_ascii_case(WINDOWS_RESERVED_HANDLE))
    {
        return Verdict::Ignore;
    }
    let get = |k: &str| a.attrs.get(k).map(String::as_str).filter(|v| !v.is_empty());
    if get(ATTR_TYPE).is_some_and(is_tunnel_type) {
        return match get(ATTR_NODE) {
            Some(node) if !live.nodes.contains(node) => Verdict::Leaked,
            _ => Verdict::Valid,
        };
    }
    let (Some(ns), Some(pod)) = (get(ATTR_NAMESPACE), get(ATTR_POD)) else {
        // Not a pod's and not a tunnel's: nothing to check it against.
        return Verdict::Valid;
    };
    match live.pods.get(&(ns.to_owned(), pod.to_owned())) {
        None => Verdict::Leaked,
        Some(ips) if !ips.is_empty() && !ips.contains(&a.ip) => Verdict::Leaked,
        Some(_) => Verdict::Valid,
    }
}

/// One run of the collector: what to release now, and what to remember.
pub fn plan(
    previous: &GcState,
    allocations: &[GcAllocation],
    blocks: &[GcBlock],
    live: &LiveSet,
) -> GcPlan {
    let run = previous.run + 1;
    let mut out = GcPlan::default();
    out.state.run = run;

    let mut leaked: Vec<&GcAllocation> = Vec::new();
    let mut valid_handles: BTreeSet<&str> = BTreeSet::new();
    let mut nodes_with_valid: BTreeSet<String> = BTreeSet::new();
    for a in allocations {
        match verdict(a, live) {
            Verdict::Valid => {
                if let Some(h) = &a.handle {
                    valid_handles.insert(sanitize_handle(h));
                }
                if let Some(n) = a.attrs.get(ATTR_NODE) {
                    nodes_with_valid.insert(n.clone());
                }
            }
            Verdict::Leaked => leaked.push(a),
            Verdict::Ignore => {}
        }
    }

    // Confirmed: leaked now and, identically, on the previous run.
    let confirmed = |a: &GcAllocation| {
        previous
            .suspects
            .get(&a.ip)
            .is_some_and(|s| s.handle == a.handle && s.sequence_number == a.sequence_number)
    };
    let mut by_handle: BTreeMap<Option<&str>, Vec<&GcAllocation>> = BTreeMap::new();
    for a in &leaked {
        by_handle
            .entry(a.handle.as_deref().map(sanitize_handle))
            .or_default()
            .push(a);
    }
    for (handle, group) in by_handle {
        // A handle with any valid address, or any address not yet
        // confirmed, waits: all of a handle's addresses go together.
        let handle_ready =
            handle.is_none_or(|h| !valid_handles.contains(h)) && group.iter().all(|a| confirmed(a));
        for a in group {
            if handle.is_none() && confirmed(a) || handle.is_some() && handle_ready {
                out.release.push(ReleaseOptions {
                    address: a.ip,
                    handle: a.handle.clone(),
                    sequence_number: Some(a.sequence_number),
                });
                continue;
            }
            let since_run = previous
                .suspects
                .get(&a.ip)
                .filter(|s| s.handle == a.handle && s.sequence_number == a.sequence_number)
                .map_or(run, |s| s.since_run);
            if since_run == run {
                out.suspected.push(a.ip);
            }
            out.state.suspects.insert(
                a.ip,
                Suspect {
                    handle: a.handle.clone(),
                    sequence_number: a.sequence_number,
                    since_run,
                },
            );
        }
    }

    out.release.sort();
    out.suspected.sort();

    // Nodes that own blocks but are gone, with nothing valid left.
    let block_hosts: BTreeSet<&str> = blocks.iter().filter_map(|b| b.host.as_deref()).collect();
    for host in block_hosts {
        if live.nodes.contains(host) || nodes_with_valid.contains(host) {
            continue;
        }
        if previous.nodes_gone.contains(host) {
            out.release_nodes.push(host.to_owned());
        } else {
            out.state.nodes_gone.insert(host.to_owned());
        }
    }

    // Surplus empty blocks of live nodes: each node keeps one block.
    let mut per_host: BTreeMap<&str, Vec<&GcBlock>> = BTreeMap::new();
    for b in blocks {
        if let Some(h) = b.host.as_deref().filter(|h| live.nodes.contains(*h)) {
            per_host.entry(h).or_default().push(b);
        }
    }
    for (host, owned) in per_host {
        let empty: Vec<&GcBlock> = owned.iter().copied().filter(|b| b.empty).collect();
        let keep = usize::from(empty.len() == owned.len());
        for b in empty.into_iter().skip(keep) {
            if previous
                .empty_blocks
                .get(&b.cidr)
                .is_some_and(|h| h == host)
            {
                out.release_blocks.push((host.to_owned(), b.cidr));
            } else {
                out.state.empty_blocks.insert(b.cidr, host.to_owned());
            }
        }
    }
    out
}

/// What [`Ipam::garbage_collect`] did.
#[derive(Debug, Default)]
pub struct GcOutcome {
    /// Keep this for the next run.
    pub state: GcState,
    pub released: Vec<IpAddr>,
    /// Seen leaked for the first time this run.
    pub suspected: Vec<IpAddr>,
    pub released_nodes: Vec<String>,
    pub released_blocks: Vec<IpNet>,
    /// Blocks rewritten because released addresses finished cooling down.
    pub cooled_blocks: Vec<IpNet>,
    /// What could not be done this run (retried next run).
    pub errors: Vec<String>,
}

impl<B: Backend> Ipam<B> {
    /// One garbage-collection run against `live`, continuing from `state`
    /// (start with `GcState::default()`).
    pub async fn garbage_collect(
        &self,
        live: &LiveSet,
        state: &GcState,
    ) -> Result<GcOutcome, IpamError> {
        let config = self.get_config().await?;
        let now = self.now();
        let mut out = GcOutcome::default();
        let mut allocations = Vec::new();
        let mut blocks = Vec::new();
        for b in self.store.list_blocks(None).await? {
            let mut view: AllocationBlock = b.value.clone();
            if view.garbage_collect(now, config.ip_cooldown_seconds)
                && view.allocations != b.value.allocations
            {
                // The backstop for idle blocks: persist what cooled down.
                if let Ok(written) = self.store.update_block(view.clone(), b.revision).await {
                    if !written.lost() {
                        out.cooled_blocks.push(view.cidr);
                    }
                }
            }
            for (ordinal, ip, attr) in view.allocated() {
                let cooling_down = matches!(view.occupancy_of(ordinal), Occupancy::CoolingDown);
                allocations.push(GcAllocation {
                    ip,
                    handle: attr.and_then(|a| a.handle_id.clone()),
                    sequence_number: view.sequence_for(ordinal),
                    attrs: attr
                        .map(|a| a.active_owner_attrs.clone())
                        .unwrap_or_default(),
                    cooling_down,
                });
            }
            blocks.push(GcBlock {
                cidr: view.cidr,
                host: view
                    .owner()
                    .filter(|(k, _)| *k == AffinityType::Host)
                    .map(|(_, h)| h.to_owned()),
                empty: view.is_empty(),
            });
        }
        // Affinities whose block is gone still tie a node to IPAM.
        for (key, _) in self.store.list_affinities(AffinityType::Host).await? {
            if !blocks.iter().any(|b| b.cidr == key.cidr) {
                blocks.push(GcBlock {
                    cidr: key.cidr,
                    host: Some(key.host),
                    empty: true,
                });
            }
        }

        let planned = plan(state, &allocations, &blocks, live);
        out.state = planned.state;
        out.suspected = planned.suspected;
        if !planned.release.is_empty() {
            let result = self.release_ips(&planned.release).await?;
            for (block, e) in &result.errors {
                out.errors.push(format!(
                    "releasing leaks in {block}: {}",
                    calico_datastore::display_chain(e)
                ));
            }
            let not_allocated: BTreeSet<IpAddr> = result.not_allocated.iter().copied().collect();
            out.released = result
                .processed
                .iter()
                .map(|r| r.address)
                .filter(|a| !not_allocated.contains(a))
                .collect();
        }
        for node in planned.release_nodes {
            match self.release_host_affinities(&node, false).await {
                Ok(_) => out.released_nodes.push(node),
                Err(e) => {
                    warn!(node, error = %e, "could not release a deleted node's blocks");
                    out.state.nodes_gone.insert(node.clone());
                    out.errors.push(format!(
                        "releasing node {node}: {}",
                        calico_datastore::display_chain(&e)
                    ));
                }
            }
        }
        for (host, cidr) in planned.release_blocks {
            let released = self.release_affinity_if_empty(&host, &cidr, &config).await;
            if released {
                out.released_blocks.push(cidr);
            }
        }
        debug!(
            released = out.released.len(),
            suspected = out.suspected.len(),
            nodes = out.released_nodes.len(),
            "IPAM garbage collection run done"
        );
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
