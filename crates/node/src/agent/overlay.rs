//! Cross-node routing in the loop: the inputs `calico-routing` needs
//! (Nodes and IP pools from the shared [`ClusterResources`], every IPv4
//! block's affinity from the blocks feed, the routing fields of the
//! FelixConfigurations) and, once per burst, the desired state handed to
//! the [`Overlay`](crate::overlay::Overlay) thread.
//!
//! With BGP networking on, routes that need no tunnel are left to BGP, as
//! Calico leaves them to BIRD: the agent programs only the VXLAN and IPIP
//! routes, and the BGP speaker installs what its peers advertise. With BGP
//! off (`CALICO_NETWORKING_BACKEND=vxlan`) the agent also programs
//! same-subnet routes (CrossSubnet pools), as Calico's agent does then.
//! Blackhole routes for this node's blocks are the local route driver's.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use calico_model::felix::FelixConfigurationSpec;
use calico_model::{EncapMode, IpPool};
use calico_routing::input::{IPIP_OVERHEAD, VXLAN_OVERHEAD};
use calico_routing::{BlockInfo, RoutingInput, Settings, Via, compute};
use ipnet::Ipv4Net;
use tracing::{info, warn};

use super::bgp::ClusterResources;
use crate::overlay::OverlayJob;

/// The loop's cross-node routing state.
#[derive(Debug, Default)]
pub(super) struct OverlayState {
    /// IPv4 blocks and their node, by datastore key.
    blocks: BTreeMap<String, BlockInfo>,
    global: Option<FelixConfigurationSpec>,
    host: Option<FelixConfigurationSpec>,
    /// Inputs changed since the last computation.
    pub dirty: bool,
    /// The last desired state sent (to send nothing when unchanged, and
    /// again for a repair).
    last: Option<OverlayJob>,
    problems: BTreeSet<String>,
}

impl OverlayState {
    pub fn put_block(&mut self, key: String, cidr: Ipv4Net, node: Option<String>) {
        let changed = match node {
            Some(node) => {
                let info = BlockInfo { cidr, node };
                self.blocks.get(&key) != Some(&info) && {
                    self.blocks.insert(key, info);
                    true
                }
            }
            None => self.blocks.remove(&key).is_some(),
        };
        self.dirty |= changed;
    }

    pub fn remove_block(&mut self, key: &str) {
        self.dirty |= self.blocks.remove(key).is_some();
    }

    pub fn set_felix(&mut self, global: bool, spec: Option<FelixConfigurationSpec>) {
        if global {
            self.global = spec;
        } else {
            self.host = spec;
        }
        self.dirty = true;
    }

    /// The job to send when an input changed and the result differs from
    /// the last one sent.
    pub fn flush(
        &mut self,
        node: &str,
        resources: &ClusterResources,
        host_mtu: u32,
        route_protocol: u8,
        bgp: bool,
    ) -> Option<OverlayJob> {
        if !std::mem::take(&mut self.dirty) {
            return None;
        }
        let mut settings = Settings {
            host_mtu,
            ..Settings::default()
        };
        for spec in [&self.global, &self.host].into_iter().flatten() {
            settings.apply_felix(spec);
        }
        settings.route_protocol = route_protocol;
        let pools: Vec<IpPool> = resources.pools().cloned().collect();
        let nodes: Vec<_> = resources.nodes().cloned().collect();
        let mut input = RoutingInput::from_resources(node, &nodes, &pools, &[], [], host_mtu);
        input.settings = settings.clone();
        input.blocks = self.blocks.values().cloned().collect();
        let mut desired = compute(&input);
        desired.routes.retain(|_, via| match via {
            Via::Blackhole => false,
            Via::Underlay { .. } => !bgp,
            Via::Vxlan { .. } | Via::Ipip { .. } => true,
        });
        if bgp {
            // Routes BGP provides are not a problem of ours.
            desired
                .problems
                .retain(|p| !matches!(p, calico_routing::Problem::NotOnLink { .. }));
        }
        let problems: BTreeSet<String> = desired.problems.iter().map(ToString::to_string).collect();
        for problem in problems.difference(&self.problems) {
            warn!(problem = problem.as_str(), "cross-node routing");
        }
        for solved in self.problems.difference(&problems) {
            info!(
                problem = solved.as_str(),
                "cross-node routing problem solved"
            );
        }
        self.problems = problems;
        let job = OverlayJob {
            pod_mtu: pod_mtu(&pools, &settings),
            desired: Arc::new(desired),
        };
        let unchanged = self
            .last
            .as_ref()
            .is_some_and(|last| last.desired == job.desired && last.pod_mtu == job.pod_mtu);
        if unchanged {
            return None;
        }
        self.last = Some(job.clone());
        Some(job)
    }

    /// The last job, to apply again (drift repair, retry after a failure).
    pub fn last(&self) -> Option<OverlayJob> {
        self.last.clone()
    }
}

/// The MTU pods should use: the host's less the largest overhead of an
/// encapsulation some enabled pool uses, as Calico works it out (an
/// explicit `vxlanMTU`/`ipipMTU` wins for its encapsulation).
fn pod_mtu(pools: &[IpPool], settings: &Settings) -> u32 {
    let uses = |mode: fn(&IpPool) -> Option<EncapMode>| {
        pools
            .iter()
            .any(|p| !p.spec.disabled && mode(p).is_some_and(|m| m != EncapMode::Never))
    };
    let mut mtu = settings.host_mtu;
    if uses(|p| p.spec.vxlan_mode) {
        mtu = mtu.min(
            settings
                .vxlan_mtu
                .unwrap_or(settings.host_mtu.saturating_sub(VXLAN_OVERHEAD)),
        );
    }
    if uses(|p| p.spec.ipip_mode) {
        mtu = mtu.min(
            settings
                .ipip_mtu
                .unwrap_or(settings.host_mtu.saturating_sub(IPIP_OVERHEAD)),
        );
    }
    mtu
}

#[cfg(test)]
mod tests {
    use super::*;
    use calico_model::ObjectMeta;
    use calico_model::ippool::IpPoolSpec;

    fn pool(vxlan: EncapMode, ipip: EncapMode, disabled: bool) -> IpPool {
        IpPool {
            metadata: ObjectMeta::named("p"),
            spec: IpPoolSpec {
                cidr: "10.0.0.0/16".into(),
                vxlan_mode: Some(vxlan),
                ipip_mode: Some(ipip),
                disabled,
                ..IpPoolSpec::default()
            },
            ..IpPool::default()
        }
    }

    #[test]
    fn pod_mtu_leaves_room_for_the_encapsulation_in_use() {
        let settings = Settings {
            host_mtu: 1500,
            ..Settings::default()
        };
        use EncapMode::*;
        assert_eq!(pod_mtu(&[], &settings), 1500);
        assert_eq!(pod_mtu(&[pool(Never, Never, false)], &settings), 1500);
        assert_eq!(pod_mtu(&[pool(Always, Never, false)], &settings), 1450);
        assert_eq!(pod_mtu(&[pool(Never, CrossSubnet, false)], &settings), 1480);
        assert_eq!(pod_mtu(&[pool(Always, Never, true)], &settings), 1500);
        let configured = Settings {
            vxlan_mtu: Some(1400),
            ..settings
        };
        assert_eq!(pod_mtu(&[pool(Always, Never, false)], &configured), 1400);
    }
}
