//! From Calico resources to this node's BGP settings, the way confd renders
//! BIRD's configuration from them (what Calico calls confd's BGP
//! processor), as one pure function: [`desired`].
//!
//! In: the Nodes, BGPConfigurations (`default` and `node.<name>`),
//! BGPPeers and IPPools, this node's affine blocks, and a way to read
//! secrets. Out: the speaker's settings, its peers and the prefixes it
//! originates with their communities. A resource that cannot be used (a bad
//! peer address, a selector that does not parse, a community that is not
//! `aa:nn` or `aa:nn:mm`) is skipped with a warning; it never stops the rest.
//!
//! What follows Calico:
//! - AS: the Node's `asNumber`, else the default BGPConfiguration's, else
//!   64512. Router id: the node's IPv4 address unless overridden.
//! - The node-to-node mesh (`nodeToNodeMeshEnabled`, on by default): every
//!   other node with an address of the family, except route reflectors;
//!   none at all when this node is a route reflector. The side whose address
//!   sorts higher *as a string* waits passively, as BIRD-based nodes do.
//!   `nodeMeshPassword` and `nodeMeshMaxRestartTime` apply.
//! - BGPPeers: global ones (no `node`, no `nodeSelector`) first, then those
//!   for this node by `node` or `nodeSelector`, then automatic reverse
//!   peerings; a later one never replaces an earlier one to the same
//!   address and port. Peers are `peerIP` (with an optional port) or every
//!   node matching `peerSelector`. `sourceAddress` (`UseNodeIP` by default),
//!   `password`, `maxRestartTime`, `keepaliveTime`, `nextHopMode`,
//!   `keepOriginalNextHop` (eBGP only) apply. An iBGP peer that is not in
//!   this route reflector's cluster is its client.
//! - Exports: each affine block inside an IP pool whose BGP export is not
//!   disabled; the service cluster, external and load balancer CIDRs; with
//!   the communities of every `prefixAdvertisements` entry whose CIDR
//!   contains the prefix (the node's BGPConfiguration's list if it has one,
//!   else the default's), and LOCAL_PREF 2147483647 minus the normal route
//!   priority (1024 unless configured), as Calico's BIRD export filter sets
//!   it. Learned routes are passed on only inside enabled pools.
//!
//! Not (yet) followed: BGPFilter, `localASNumber`, `ttlSecurity`,
//! `reachableBy`, `numAllowedLocalASNumbers`, local workload peers, `/32`
//! routes for addresses borrowed from other nodes' blocks, and two peers on
//! the same address with different ports (the speaker keys peers by
//! address; the first wins).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use calico_model::bgp::{BgpConfiguration, BgpPeer, SecretKeySelector};
use calico_model::ippool::IpPool;
use calico_model::node::Node;
use calico_selector::Selector;
use ipnet::IpNet;

use crate::export::LearnedFilter;
use crate::session::GracefulRestartConfig;
use crate::speaker::{BGP_PORT, Origination, PeerConfig, SpeakerConfig};
use crate::wire::LargeCommunity;

/// The AS Calico uses when nothing says otherwise.
pub const DEFAULT_AS: u32 = 64512;
/// BIRD's largest integer, from which Calico derives LOCAL_PREF.
const BIRD_INT_MAX: u32 = 2_147_483_647;
/// Calico's normal kernel route priority.
const NORMAL_ROUTE_PRIORITY: u32 = 1024;

/// Reads a Kubernetes secret value (`name`, `key`).
pub trait SecretSource {
    fn secret(&self, name: &str, key: &str) -> Option<String>;
}

impl SecretSource for BTreeMap<(String, String), String> {
    fn secret(&self, name: &str, key: &str) -> Option<String> {
        self.get(&(name.to_string(), key.to_string())).cloned()
    }
}

/// Everything [`desired`] reads.
pub struct Inputs<'a> {
    /// This node's name.
    pub node_name: &'a str,
    pub nodes: &'a [Node],
    pub configurations: &'a [BgpConfiguration],
    pub peers: &'a [BgpPeer],
    pub pools: &'a [IpPool],
    /// Blocks affine to this node.
    pub blocks: &'a [IpNet],
    pub secrets: &'a dyn SecretSource,
    /// What Calico takes from `CALICO_ROUTER_ID`; the node's IPv4 address
    /// when `None`.
    pub router_id: Option<Ipv4Addr>,
}

impl std::fmt::Debug for Inputs<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs")
            .field("node_name", &self.node_name)
            .field("nodes", &self.nodes.len())
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

/// This node's BGP settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub speaker: SpeakerConfig,
    pub listen_port: u16,
    /// Sorted by name.
    pub peers: Vec<PeerConfig>,
    /// Sorted by prefix.
    pub originations: Vec<Origination>,
    /// Resources that were skipped, and why.
    pub warnings: Vec<String>,
}

/// Why no BGP settings could be computed for the node at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("node {node} does not exist")]
    NoSuchNode { node: String },
    #[error("node {node} has no BGP settings (spec.bgp)")]
    NoBgp { node: String },
    #[error(
        "node {node} has no usable IPv4 address in spec.bgp.ipv4Address for a router id ({value:?}); set CALICO_ROUTER_ID"
    )]
    NoRouterId { node: String, value: String },
    #[error(
        "node {node} has an invalid routeReflectorClusterID {value:?}: it must be an IPv4 address"
    )]
    BadClusterId { node: String, value: String },
}

/// A node's BGP facts.
#[derive(Debug, Clone)]
struct NodeFacts<'a> {
    name: &'a str,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    asn: u32,
    cluster_id: Option<String>,
    port: u16,
    labels: &'a BTreeMap<String, String>,
}

impl NodeFacts<'_> {
    fn address(&self, v6: bool) -> Option<IpAddr> {
        if v6 {
            self.v6.map(IpAddr::V6)
        } else {
            self.v4.map(IpAddr::V4)
        }
    }
}

fn parse_address<T: std::str::FromStr>(text: &str) -> Option<T> {
    let address = text.split('/').next()?;
    address.trim().parse().ok()
}

/// BIRD's protocol name suffix for an address: dots or colons to `_`.
fn name_for(kind: &str, ip: IpAddr, port: Option<u16>) -> String {
    let text = ip.to_string().replace(['.', ':'], "_");
    match port {
        Some(p) if p > 0 => format!("{kind}_{text}_port_{p}"),
        _ => format!("{kind}_{text}"),
    }
}

/// Seconds of a Go duration string, rounded, for BIRD-style settings.
fn seconds(text: &str) -> Option<u64> {
    calico_model::duration::go_duration(text).map(|d| (d.as_secs_f64()).round() as u64)
}

/// Parses `peerIP`: `ip`, `ipv4:port` or `[ipv6]:port`.
fn parse_peer_ip(text: &str) -> Option<(IpAddr, Option<u16>)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Some((ip, None));
    }
    let address: std::net::SocketAddr = text.parse().ok()?;
    Some((address.ip(), Some(address.port())))
}

/// Parses a community value: `aa:nn` (standard) or `aa:nn:mm` (large).
fn parse_community(text: &str) -> Option<Result<u32, LargeCommunity>> {
    let parts: Vec<&str> = text.split(':').collect();
    match parts.as_slice() {
        [a, n] => {
            let a: u16 = a.trim().parse().ok()?;
            let n: u16 = n.trim().parse().ok()?;
            Some(Ok((u32::from(a) << 16) | u32::from(n)))
        }
        [a, b, c] => Some(Err(LargeCommunity {
            global_admin: a.trim().parse().ok()?,
            local_1: b.trim().parse().ok()?,
            local_2: c.trim().parse().ok()?,
        })),
        _ => None,
    }
}

fn secret_of(secrets: &dyn SecretSource, selector: Option<&SecretKeySelector>) -> Option<String> {
    let s = selector?;
    secrets.secret(&s.name, &s.key)
}

/// Computes this node's BGP settings. See the module documentation.
pub fn desired(inputs: &Inputs<'_>) -> Result<Desired, ConfigError> {
    let mut warnings = Vec::new();
    let global = inputs
        .configurations
        .iter()
        .find(|c| c.metadata.name == "default");
    let per_node = |name: &str| {
        inputs
            .configurations
            .iter()
            .find(|c| c.metadata.name == format!("node.{name}"))
    };
    let global_as = global
        .and_then(|c| c.spec.as_number)
        .map(|a| a.0)
        .unwrap_or(DEFAULT_AS);
    let global_port = global.and_then(|c| c.spec.listen_port).unwrap_or(BGP_PORT);

    let facts: Vec<NodeFacts<'_>> = inputs
        .nodes
        .iter()
        .filter_map(|n| {
            let bgp = n.spec.bgp.as_ref()?;
            Some(NodeFacts {
                name: &n.metadata.name,
                v4: parse_address(&bgp.ipv4_address),
                v6: parse_address(&bgp.ipv6_address),
                asn: bgp.as_number.map(|a| a.0).unwrap_or(global_as),
                cluster_id: Some(bgp.route_reflector_cluster_id.clone()).filter(|c| !c.is_empty()),
                port: per_node(&n.metadata.name)
                    .and_then(|c| c.spec.listen_port)
                    .unwrap_or(global_port),
                labels: &n.metadata.labels,
            })
        })
        .collect();
    let me = match facts.iter().find(|f| f.name == inputs.node_name) {
        Some(me) => me.clone(),
        None if inputs
            .nodes
            .iter()
            .any(|n| n.metadata.name == inputs.node_name) =>
        {
            return Err(ConfigError::NoBgp {
                node: inputs.node_name.to_string(),
            });
        }
        None => {
            return Err(ConfigError::NoSuchNode {
                node: inputs.node_name.to_string(),
            });
        }
    };
    let router_id = match inputs.router_id.or(me.v4) {
        Some(id) => id,
        None => {
            return Err(ConfigError::NoRouterId {
                node: me.name.to_string(),
                value: inputs
                    .nodes
                    .iter()
                    .find(|n| n.metadata.name == me.name)
                    .and_then(|n| n.spec.bgp.as_ref())
                    .map(|b| b.ipv4_address.clone())
                    .unwrap_or_default(),
            });
        }
    };
    let cluster_id = match &me.cluster_id {
        None => None,
        Some(text) => Some(
            text.parse::<Ipv4Addr>()
                .map_err(|_| ConfigError::BadClusterId {
                    node: me.name.to_string(),
                    value: text.clone(),
                })?,
        ),
    };
    let speaker = SpeakerConfig {
        local_as: me.asn,
        router_id,
        cluster_id,
        address_v4: me.v4,
        address_v6: me.v6,
    };

    // Learned routes may be passed on inside enabled pools only.
    let mut enabled_pools = Vec::new();
    let mut disabled_pools = Vec::new();
    for pool in inputs.pools {
        match pool.spec.network() {
            Some(net) if pool.spec.disable_bgp_export => disabled_pools.push(net),
            Some(net) => enabled_pools.push(net),
            None => warnings.push(format!(
                "IPPool {}: cidr {:?} is not a network; ignored",
                pool.metadata.name, pool.spec.cidr
            )),
        }
    }

    let mut peers: BTreeMap<(IpAddr, u16), PeerConfig> = BTreeMap::new();
    let our_address = |v6: bool| me.address(v6);
    let template = |address: IpAddr, asn: u32| {
        let mut p = PeerConfig::new(address, asn);
        p.hold_time = 240;
        p.connect_retry = Duration::from_secs(5);
        p.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 120,
            max_restart_time: Duration::from_secs(4095),
            forwarding_preserved: false,
        });
        p.learned = LearnedFilter::Within(
            enabled_pools
                .iter()
                .filter(|n| n.addr().is_ipv6() == address.is_ipv6())
                .copied()
                .collect(),
        );
        p
    };

    // Explicit peerings: global, then this node's, then reverse.
    let this_node_peers = |peer: &BgpPeer| -> Result<bool, String> {
        let spec = &peer.spec;
        if !spec.node.is_empty() {
            return Ok(spec.node == me.name);
        }
        if !spec.node_selector.is_empty() {
            let selector = Selector::parse(&spec.node_selector)
                .map_err(|e| format!("BGPPeer {}: nodeSelector: {e}", peer.metadata.name))?;
            return Ok(selector.evaluate(me.labels));
        }
        Ok(true)
    };
    for global_pass in [true, false] {
        for resource in inputs.peers {
            let spec = &resource.spec;
            let is_global = spec.node.is_empty() && spec.node_selector.is_empty();
            if is_global != global_pass {
                continue;
            }
            match this_node_peers(resource) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(w) => {
                    warnings.push(w);
                    continue;
                }
            }
            let kind = if is_global { "Global" } else { "Node" };
            for target in peer_targets(resource, &facts, &me, global_as, &mut warnings) {
                if Some(target.address) == our_address(target.address.is_ipv6()) {
                    continue;
                }
                let key = (target.address, target.port.unwrap_or(0));
                if peers.contains_key(&key) {
                    continue;
                }
                let mut p = template(target.address, target.asn);
                p.name = name_for(kind, target.address, target.port);
                p.port = target.port.unwrap_or(BGP_PORT);
                apply_peer_spec(&mut p, resource, &me, inputs.secrets, &mut warnings);
                p.rr_client = is_rr_client(&me, target.asn, target.cluster_id.as_deref());
                // Calico nodes peering by global BGPPeer settle who connects
                // as the mesh does; node-specific peers always connect.
                if is_global && target.calico_node && !p.passive {
                    p.passive =
                        lexically_greater(target.address, our_address(target.address.is_ipv6()));
                }
                peers.insert(key, p);
            }
        }
    }
    for resource in inputs.peers {
        if resource.spec.reverse_peering.as_deref() == Some("Manual") {
            continue;
        }
        for (target, port) in reverse_targets(resource, &facts, &me, global_as, &mut warnings) {
            let key = (target.address, port.unwrap_or(0));
            if peers.contains_key(&key)
                || Some(target.address) == our_address(target.address.is_ipv6())
            {
                continue;
            }
            let mut p = template(target.address, target.asn);
            p.name = name_for("Node", target.address, port);
            p.port = port.unwrap_or(BGP_PORT);
            apply_peer_spec(&mut p, resource, &me, inputs.secrets, &mut warnings);
            p.rr_client = is_rr_client(&me, target.asn, target.cluster_id.as_deref());
            peers.insert(key, p);
        }
    }

    // The node-to-node mesh.
    let mesh_enabled = global
        .and_then(|c| c.spec.node_to_node_mesh_enabled)
        .unwrap_or(true);
    if mesh_enabled && me.cluster_id.is_none() {
        let password = global.and_then(|c| {
            secret_of(
                inputs.secrets,
                c.spec
                    .node_mesh_password
                    .as_ref()
                    .and_then(|p| p.secret_key_ref.as_ref()),
            )
        });
        let restart = global
            .and_then(|c| c.spec.node_mesh_max_restart_time.as_deref())
            .and_then(seconds);
        for other in &facts {
            if other.name == me.name || other.cluster_id.is_some() {
                continue;
            }
            for v6 in [false, true] {
                let (Some(address), Some(ours)) = (other.address(v6), our_address(v6)) else {
                    continue;
                };
                if address == ours || peers.keys().any(|(a, _)| *a == address) {
                    continue;
                }
                let mut p = template(address, other.asn);
                p.name = name_for("Mesh", address, None);
                p.port = other.port;
                p.source_address = Some(ours);
                p.password = password.clone();
                p.passive = lexically_greater(address, Some(ours));
                if let (Some(gr), Some(secs)) = (p.graceful_restart.as_mut(), restart) {
                    gr.restart_time = secs.min(4095) as u16;
                }
                peers.insert((address, p.port), p);
            }
        }
    }
    let mut peers: Vec<PeerConfig> = peers.into_values().collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    // The speaker keys peers by address: the first (by name) wins.
    let mut seen = BTreeSet::new();
    peers.retain(|p| {
        let fresh = seen.insert(p.address);
        if !fresh {
            warnings.push(format!(
                "peer {} shares its address with another peer; skipped",
                p.name
            ));
        }
        fresh
    });

    let originations = originations(
        inputs,
        global,
        per_node(me.name),
        &enabled_pools,
        &disabled_pools,
        &mut warnings,
    );
    Ok(Desired {
        speaker,
        listen_port: me.port,
        peers,
        originations,
        warnings,
    })
}

/// Whether `address` sorts after `ours` as strings do, which is how Calico
/// decides which end of a node-to-node session waits.
fn lexically_greater(address: IpAddr, ours: Option<IpAddr>) -> bool {
    ours.is_some_and(|o| address.to_string() > o.to_string())
}

fn is_rr_client(me: &NodeFacts<'_>, peer_as: u32, peer_cluster: Option<&str>) -> bool {
    match &me.cluster_id {
        Some(ours) if peer_as == me.asn => peer_cluster != Some(ours.as_str()),
        _ => false,
    }
}

/// One address a BGPPeer says to peer with.
struct Target {
    address: IpAddr,
    port: Option<u16>,
    asn: u32,
    cluster_id: Option<String>,
    calico_node: bool,
}

fn peer_targets(
    resource: &BgpPeer,
    facts: &[NodeFacts<'_>],
    me: &NodeFacts<'_>,
    global_as: u32,
    warnings: &mut Vec<String>,
) -> Vec<Target> {
    let spec = &resource.spec;
    if !spec.peer_selector.is_empty() {
        let selector = match Selector::parse(&spec.peer_selector) {
            Ok(s) => s,
            Err(e) => {
                warnings.push(format!(
                    "BGPPeer {}: peerSelector: {e}",
                    resource.metadata.name
                ));
                return Vec::new();
            }
        };
        return facts
            .iter()
            .filter(|f| f.name != me.name && selector.evaluate(f.labels))
            .flat_map(|f| {
                [f.address(false), f.address(true)]
                    .into_iter()
                    .flatten()
                    .map(|address| Target {
                        address,
                        port: (f.port != BGP_PORT).then_some(f.port),
                        asn: f.asn,
                        cluster_id: f.cluster_id.clone(),
                        calico_node: true,
                    })
            })
            .collect();
    }
    let Some((address, port)) = parse_peer_ip(&spec.peer_ip) else {
        warnings.push(format!(
            "BGPPeer {}: peerIP {:?} is not an address or address:port",
            resource.metadata.name, spec.peer_ip
        ));
        return Vec::new();
    };
    let asn = if spec.as_number.0 == 0 {
        global_as
    } else {
        spec.as_number.0
    };
    let node = facts
        .iter()
        .find(|f| f.address(address.is_ipv6()) == Some(address));
    // A Calico node's listen port is used when the peer gives none.
    let port = port.or_else(|| {
        node.filter(|n| n.asn == asn && n.port != BGP_PORT)
            .map(|n| n.port)
    });
    vec![Target {
        address,
        port,
        asn,
        cluster_id: node.and_then(|n| n.cluster_id.clone()),
        calico_node: node.is_some(),
    }]
}

/// The peerings a BGPPeer implies in reverse: when this node is one of its
/// peers, with each node it applies to.
fn reverse_targets(
    resource: &BgpPeer,
    facts: &[NodeFacts<'_>],
    me: &NodeFacts<'_>,
    global_as: u32,
    warnings: &mut Vec<String>,
) -> Vec<(Target, Option<u16>)> {
    let spec = &resource.spec;
    let (selected, v4, v6) = if !spec.peer_selector.is_empty() {
        match Selector::parse(&spec.peer_selector) {
            Ok(s) => (s.evaluate(me.labels), true, true),
            Err(_) => return Vec::new(),
        }
    } else {
        let Some((address, port)) = parse_peer_ip(&spec.peer_ip) else {
            return Vec::new();
        };
        let asn = if spec.as_number.0 == 0 {
            global_as
        } else {
            spec.as_number.0
        };
        let matches = me.address(address.is_ipv6()) == Some(address)
            && me.asn == asn
            && port.is_none_or(|p| p == me.port);
        (matches, address.is_ipv4(), address.is_ipv6())
    };
    if !selected {
        return Vec::new();
    }
    let applies_to: Box<dyn Fn(&NodeFacts<'_>) -> bool> = if !spec.node_selector.is_empty() {
        match Selector::parse(&spec.node_selector) {
            Ok(s) => Box::new(move |f: &NodeFacts<'_>| s.evaluate(f.labels)),
            Err(e) => {
                warnings.push(format!(
                    "BGPPeer {}: nodeSelector: {e}",
                    resource.metadata.name
                ));
                return Vec::new();
            }
        }
    } else if !spec.node.is_empty() {
        let node = spec.node.clone();
        Box::new(move |f: &NodeFacts<'_>| f.name == node)
    } else {
        Box::new(|_: &NodeFacts<'_>| true)
    };
    facts
        .iter()
        .filter(|f| f.name != me.name && applies_to(f))
        .flat_map(|f| {
            let families = [(false, v4), (true, v6)];
            families
                .into_iter()
                .filter(|(_, on)| *on)
                .filter_map(move |(is_v6, _)| {
                    f.address(is_v6).map(|address| {
                        let port = (f.port != BGP_PORT).then_some(f.port);
                        (
                            Target {
                                address,
                                port,
                                asn: f.asn,
                                cluster_id: f.cluster_id.clone(),
                                calico_node: true,
                            },
                            port,
                        )
                    })
                })
        })
        .collect()
}

/// The per-peering fields of a BGPPeer.
fn apply_peer_spec(
    p: &mut PeerConfig,
    resource: &BgpPeer,
    me: &NodeFacts<'_>,
    secrets: &dyn SecretSource,
    warnings: &mut Vec<String>,
) {
    let spec = &resource.spec;
    let name = &resource.metadata.name;
    p.source_address = match spec.source_address.as_str() {
        "" | "UseNodeIP" => me.address(p.address.is_ipv6()),
        "None" => None,
        other => {
            warnings.push(format!(
                "BGPPeer {name}: sourceAddress {other:?} is not UseNodeIP or None"
            ));
            me.address(p.address.is_ipv6())
        }
    };
    if let Some(password) = &spec.password {
        match secret_of(secrets, password.secret_key_ref.as_ref()) {
            Some(secret) => p.password = Some(secret),
            None => warnings.push(format!(
                "BGPPeer {name}: its password secret cannot be read"
            )),
        }
    }
    if let Some(text) = &spec.max_restart_time {
        match seconds(text) {
            Some(secs) => {
                if let Some(gr) = p.graceful_restart.as_mut() {
                    gr.restart_time = secs.min(4095) as u16;
                }
            }
            None => warnings.push(format!(
                "BGPPeer {name}: maxRestartTime {text:?} is not a duration"
            )),
        }
    }
    if let Some(text) = &spec.keepalive_time {
        match seconds(text) {
            Some(secs) => p.keepalive_time = Some(secs.clamp(1, u64::from(u16::MAX)) as u16),
            None => warnings.push(format!(
                "BGPPeer {name}: keepaliveTime {text:?} is not a duration"
            )),
        }
    }
    let external = p.remote_as != me.asn;
    match spec.next_hop_mode.as_deref() {
        Some("Self") => p.next_hop_self = true,
        Some("Keep") => p.keep_next_hop = true,
        Some("Auto") | None => p.keep_next_hop = spec.keep_original_next_hop && external,
        Some(other) => warnings.push(format!(
            "BGPPeer {name}: nextHopMode {other:?} is not Auto, Self or Keep"
        )),
    }
}

/// The prefixes this node originates.
fn originations(
    inputs: &Inputs<'_>,
    global: Option<&BgpConfiguration>,
    per_node: Option<&BgpConfiguration>,
    enabled_pools: &[IpNet],
    disabled_pools: &[IpNet],
    warnings: &mut Vec<String>,
) -> Vec<Origination> {
    let mut prefixes: BTreeSet<IpNet> = BTreeSet::new();
    for block in inputs.blocks {
        let block = block.trunc();
        let disabled = disabled_pools.iter().any(|p| p.contains(&block));
        let enabled = enabled_pools.iter().any(|p| p.contains(&block));
        if enabled && !disabled {
            prefixes.insert(block);
        }
    }
    if let Some(g) = global {
        for list in [
            &g.spec.service_cluster_ips,
            &g.spec.service_external_ips,
            &g.spec.service_load_balancer_ips,
        ] {
            for cidr in list {
                match cidr.cidr.parse::<IpNet>() {
                    Ok(net) => {
                        prefixes.insert(net.trunc());
                    }
                    Err(_) => warnings.push(format!(
                        "BGPConfiguration default: service CIDR {:?} is not a network",
                        cidr.cidr
                    )),
                }
            }
        }
    }
    // Communities: the node's advertisements if it has any, else the default's.
    let source = per_node
        .filter(|c| !c.spec.prefix_advertisements.is_empty())
        .or(global);
    let mut rules: Vec<(IpNet, Vec<u32>, Vec<LargeCommunity>)> = Vec::new();
    if let Some(config) = source {
        for advertisement in &config.spec.prefix_advertisements {
            let Ok(cidr) = advertisement.cidr.parse::<IpNet>() else {
                warnings.push(format!(
                    "BGPConfiguration {}: prefixAdvertisements cidr {:?} is not a network",
                    config.metadata.name, advertisement.cidr
                ));
                continue;
            };
            let mut standard = Vec::new();
            let mut large = Vec::new();
            for entry in &advertisement.communities {
                // A name from `communities`, or a literal value.
                let value = config
                    .spec
                    .communities
                    .iter()
                    .find(|c| &c.name == entry)
                    .map(|c| c.value.as_str())
                    .unwrap_or(entry);
                match parse_community(value) {
                    Some(Ok(c)) => standard.push(c),
                    Some(Err(l)) => large.push(l),
                    None => warnings.push(format!(
                        "BGPConfiguration {}: community {value:?} is neither aa:nn nor aa:nn:mm",
                        config.metadata.name
                    )),
                }
            }
            rules.push((cidr.trunc(), standard, large));
        }
    }
    let priority = |v6: bool| {
        global
            .and_then(|g| {
                if v6 {
                    g.spec.ipv6_normal_route_priority
                } else {
                    g.spec.ipv4_normal_route_priority
                }
            })
            .and_then(|p| u32::try_from(p).ok())
            .unwrap_or(NORMAL_ROUTE_PRIORITY)
    };
    prefixes
        .into_iter()
        .map(|prefix| {
            let mut o = Origination::new(prefix);
            for (cidr, standard, large) in &rules {
                if cidr.contains(&prefix) {
                    o.communities.extend(standard);
                    o.large_communities.extend(large);
                }
            }
            o.local_pref = Some(BIRD_INT_MAX - priority(prefix.addr().is_ipv6()).min(BIRD_INT_MAX));
            o
        })
        .collect()
}

#[cfg(test)]
mod tests;
