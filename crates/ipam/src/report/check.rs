//! `calicoctl ipam check`: cross-checks IPAM's records against what is
//! actually using addresses (nodes' tunnel addresses, workload endpoints,
//! load balancers) and reports leaked addresses, addresses in use but not
//! allocated, handles with no addresses, addresses naming missing
//! handles, corrupt blocks, and block affinities that point nowhere.
//!
//! The text is Calico's, line for line, with one addition: a scan for
//! orphaned block affinities (an affinity whose block is gone or owned by
//! another host, or whose node no longer exists), printed just before the
//! final count. The JSON report is the one `ipam release --from-report`
//! reads, in Calico's format.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use calico_datastore::Backend;
use calico_model::{Node, WorkloadEndpoint};
use ipnet::IpNet;
use serde::{Deserialize, Serialize, Serializer};

use crate::allocator::Ipam;
use crate::block::WINDOWS_RESERVED_HANDLE;
use crate::error::IpamError;
use crate::pools::parse_pools;
use crate::record::{AffinityState, AffinityType, AllocationAttribute, AllocationBlock, Time};

/// What uses addresses besides IPAM's own records, and the report's
/// metadata (from ClusterInformation).
#[derive(Debug, Clone, Default)]
pub struct CheckInput {
    pub nodes: Vec<Node>,
    pub workload_endpoints: Vec<WorkloadEndpoint>,
    /// Calico-managed LoadBalancer services; `None` when Calico's
    /// LoadBalancer controller is not configured.
    pub load_balancers: Option<Vec<LoadBalancerService>>,
    pub meta: ReportMeta,
}

/// A LoadBalancer service and its ingress addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadBalancerService {
    pub name: String,
    pub ips: Vec<String>,
}

/// Report metadata: the calicoctl version and the cluster it describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReportMeta {
    pub version: String,
    pub cluster_guid: String,
    pub cluster_type: String,
    /// ClusterInformation's resource version when the report was made.
    pub cluster_info_revision: String,
    /// Whether the datastore is locked (`datastoreReady: false`).
    pub datastore_locked: bool,
}

/// The machine-readable report (`ipam check -o FILE`), in Calico's JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckReport {
    pub version: String,
    #[serde(rename = "clusterGUID")]
    pub cluster_guid: String,
    #[serde(rename = "datastoreLocked")]
    pub datastore_locked: bool,
    #[serde(rename = "clusterInformationRevision")]
    pub cluster_info_revision: String,
    #[serde(rename = "clusterType")]
    pub cluster_type: String,
    /// Address to its allocations (more than one means a corrupt store).
    pub allocations: BTreeMap<String, Vec<Allocation>>,
    #[serde(
        rename = "leakedHandles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub leaked_handles: Vec<HandleInfo>,
}

impl CheckReport {
    /// The report as calicoctl writes it (indented by two spaces).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Result<CheckReport, serde_json::Error> {
        serde_json::from_str(text)
    }
}

fn null_when_empty<S: Serializer>(v: &[String], s: S) -> Result<S::Ok, S::Error> {
    if v.is_empty() {
        s.serialize_none()
    } else {
        v.serialize(s)
    }
}

fn null_as_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    Ok(Option::<Vec<String>>::deserialize(d)?.unwrap_or_default())
}

/// One allocation as the report records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub ip: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub handle: String,
    #[serde(
        rename = "sequenceNumber",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sequence_number: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pod: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub namespace: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub node: String,
    #[serde(rename = "type", default, skip_serializing_if = "String::is_empty")]
    pub allocation_type: String,
    #[serde(
        rename = "creationTimestamp",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub creation_timestamp: String,
    /// Something (node, workload, service) uses the address.
    #[serde(rename = "inUse", default)]
    pub in_use: bool,
    /// The address's node is not its block's owner.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub borrowed: bool,
    /// Released, still in its cooldown.
    #[serde(
        rename = "coolingDown",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub cooling_down: bool,
    #[serde(
        default,
        serialize_with = "null_when_empty",
        deserialize_with = "null_as_empty"
    )]
    pub owners: Vec<String>,
}

/// A handle record as the report records it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandleInfo {
    #[serde(rename = "ID")]
    pub id: String,
    /// Only set by Kubernetes-backed datastores.
    #[serde(rename = "UID", default)]
    pub uid: Option<String>,
    /// The handle's mod revision when the report was made.
    #[serde(rename = "Revision", default)]
    pub revision: String,
}

/// A block affinity that points nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrphanedAffinity {
    pub host: String,
    pub cidr: IpNet,
    /// `confirmed`, `pending`, `pendingDeletion` (or empty for old data).
    pub state: String,
    pub reason: String,
}

#[derive(Debug, Clone)]
struct CheckedBlock {
    cidr: IpNet,
    affinity: String,
    /// Address and attribute text, in ordinal order.
    allocations: Vec<(String, String)>,
}

/// Everything `ipam check` found; [`Check::render`] prints it as
/// calicoctl does, [`Check::report`] is the JSON report.
#[derive(Debug, Clone)]
pub struct Check {
    pub report: CheckReport,
    blocks: Vec<CheckedBlock>,
    num_allocations: usize,
    active_pools: Vec<String>,
    node_ips: Vec<(String, String)>,
    load_balancers: Option<(usize, Vec<(String, String)>)>,
    workload_ips: Vec<(String, String)>,
    in_use: BTreeMap<String, Vec<String>>,
    allocations_by_node: Vec<(String, usize)>,
    /// Leaked addresses with each allocation's attribute text.
    pub leaked_ips: Vec<(String, Vec<String>)>,
    pub not_in_active_pool: Vec<(String, Vec<String>)>,
    pub not_allocated: Vec<(String, Vec<String>)>,
    pub leaked_handles: Vec<HandleInfo>,
    good_handles: usize,
    pub missing_handles: Vec<String>,
    /// `BlockKey(cidr=...)` and what is wrong with it.
    pub invalid_blocks: Vec<(IpNet, String)>,
    pub orphaned_affinities: Vec<OrphanedAffinity>,
}

/// How `ipam check` prints an attribute.
fn attr_string(attr: Option<&AllocationAttribute>) -> String {
    let Some(a) = attr else {
        return "<missing>".to_owned();
    };
    let kvs = |m: &BTreeMap<String, String>| {
        m.iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut s = format!(
        "Main:{} Extra:{}",
        a.handle_id.as_deref().unwrap_or("<none>"),
        kvs(&a.active_owner_attrs)
    );
    if !a.alternate_owner_attrs.is_empty() {
        s.push_str(&format!(" Alternate:{}", kvs(&a.alternate_owner_attrs)));
    }
    s
}

/// An address as `ipam check` normalises it (the address part of a CIDR).
fn normalise_ip(s: &str) -> Option<String> {
    calico_model::net::parse_cidr_or_ip(s).map(|(addr, _)| addr.to_string())
}

/// The addresses a node uses: its tunnel addresses.
fn node_ips(n: &Node) -> Vec<String> {
    let mut out = Vec::new();
    let mut push = |s: &str| {
        if let Some(ip) = normalise_ip(s) {
            out.push(ip);
        }
    };
    if !n.spec.ipv4_vxlan_tunnel_addr.is_empty() {
        push(&n.spec.ipv4_vxlan_tunnel_addr);
    }
    if !n.spec.ipv6_vxlan_tunnel_addr.is_empty() {
        push(&n.spec.ipv6_vxlan_tunnel_addr);
    }
    if let Some(w) = &n.spec.wireguard {
        if !w.interface_ipv4_address.is_empty() {
            push(&w.interface_ipv4_address);
        }
        if !w.interface_ipv6_address.is_empty() {
            push(&w.interface_ipv6_address);
        }
    }
    if let Some(b) = &n.spec.bgp {
        if !b.ipv4_ipip_tunnel_addr.is_empty() {
            push(&b.ipv4_ipip_tunnel_addr);
        }
    }
    out
}

/// The check itself, from records already read.
pub(crate) struct CheckData<'a> {
    pub blocks: &'a [AllocationBlock],
    pub active_pools: Vec<IpNet>,
    pub active_pool_text: Vec<String>,
    pub handles: Vec<(String, String)>,
    /// Host, block and state of every host affinity.
    pub affinities: Vec<(String, IpNet, AffinityState)>,
    pub now: Time,
}

pub(crate) fn check(data: &CheckData<'_>, input: &CheckInput) -> Check {
    let mut allocations: BTreeMap<String, Vec<Allocation>> = BTreeMap::new();
    let mut by_node: BTreeMap<String, usize> = BTreeMap::new();
    let mut in_use: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut in_use_handles = BTreeSet::new();
    let mut attr_text: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut blocks = Vec::new();
    let mut num_allocations = 0;

    for b in data.blocks {
        let affinity = b.affinity.clone().unwrap_or_else(|| "<none>".to_owned());
        let block_host = b
            .affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
            .unwrap_or("");
        let mut listed = Vec::new();
        for (ordinal, addr, attr) in b.allocated() {
            num_allocations += 1;
            let ip = addr.to_string();
            let mut a = Allocation {
                ip: ip.clone(),
                sequence_number: Some(b.sequence_for(ordinal)),
                node: block_host.to_owned(),
                ..Default::default()
            };
            if let Some(attr) = attr {
                match attr.handle_id.as_deref() {
                    Some(WINDOWS_RESERVED_HANDLE) => in_use
                        .entry(ip.clone())
                        .or_default()
                        .push("Reserved for Windows".into()),
                    Some(h) => {
                        a.handle = h.to_owned();
                        in_use_handles.insert(h.to_owned());
                    }
                    None => {}
                }
                a.cooling_down = attr.released_at.is_some();
                let get = |k: &str| attr.active_owner_attrs.get(k).cloned().unwrap_or_default();
                if !get("node").is_empty() {
                    a.node = get("node");
                }
                a.pod = get("pod");
                a.namespace = get("namespace");
                a.allocation_type = get("type");
                a.creation_timestamp = get("timestamp");
            }
            a.borrowed = a.node != block_host;
            let text = attr_string(attr);
            attr_text.entry(ip.clone()).or_default().push(text.clone());
            listed.push((ip.clone(), text));
            *by_node.entry(a.node.clone()).or_default() += 1;
            allocations.entry(ip).or_default().push(a);
        }
        blocks.push(CheckedBlock {
            cidr: b.cidr,
            affinity,
            allocations: listed,
        });
    }

    let mut record = |ip: String, owner: String, list: &mut Vec<(String, String)>| {
        in_use.entry(ip.clone()).or_default().push(owner.clone());
        list.push((ip, owner));
    };
    let mut node_list = Vec::new();
    for n in &input.nodes {
        for ip in node_ips(n) {
            record(ip, format!("Node({})", n.metadata.name), &mut node_list);
        }
    }
    let load_balancers = input.load_balancers.as_ref().map(|services| {
        let mut list = Vec::new();
        for svc in services {
            for ip in &svc.ips {
                record(ip.clone(), svc.name.clone(), &mut list);
            }
        }
        (services.len(), list)
    });
    let mut wep_list = Vec::new();
    for w in &input.workload_endpoints {
        for net in &w.spec.ip_networks {
            if let Some(ip) = normalise_ip(net) {
                record(
                    ip,
                    format!("Workload({}/{})", w.metadata.namespace, w.metadata.name),
                    &mut wep_list,
                );
            }
        }
    }
    for (ip, owners) in &in_use {
        for a in allocations.get_mut(ip).into_iter().flatten() {
            a.in_use = true;
            a.owners.extend(owners.iter().cloned());
        }
    }

    let mut allocations_by_node: Vec<(String, usize)> = by_node.into_iter().collect();
    allocations_by_node.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));

    let leaked_ips: Vec<(String, Vec<String>)> = allocations
        .iter()
        .filter(|(ip, allocs)| !in_use.contains_key(*ip) && !allocs.iter().any(|a| a.cooling_down))
        .map(|(ip, _)| (ip.clone(), attr_text.get(ip).cloned().unwrap_or_default()))
        .collect();

    let mut not_in_active_pool = Vec::new();
    let mut not_allocated = Vec::new();
    for (ip, owners) in &in_use {
        if allocations.contains_key(ip) {
            continue;
        }
        let in_pool = ip
            .parse::<IpAddr>()
            .is_ok_and(|a| data.active_pools.iter().any(|p| p.contains(&a)));
        if in_pool {
            not_allocated.push((ip.clone(), owners.clone()));
        } else {
            not_in_active_pool.push((ip.clone(), owners.clone()));
        }
    }

    let handle_ids: BTreeSet<&str> = data.handles.iter().map(|(id, _)| id.as_str()).collect();
    let mut leaked_handles = Vec::new();
    let mut good_handles = 0;
    for (id, revision) in &data.handles {
        if in_use_handles.contains(id) {
            good_handles += 1;
        } else {
            leaked_handles.push(HandleInfo {
                id: id.clone(),
                uid: None,
                revision: revision.clone(),
            });
        }
    }
    let missing_handles: Vec<String> = in_use_handles
        .iter()
        .filter(|h| !handle_ids.contains(h.as_str()))
        .cloned()
        .collect();

    let invalid_blocks: Vec<(IpNet, String)> = data
        .blocks
        .iter()
        .filter_map(|b| b.validate(data.now).err().map(|e| (b.cidr, e)))
        .collect();

    let live_nodes: BTreeSet<&str> = input
        .nodes
        .iter()
        .map(|n| n.metadata.name.as_str())
        .collect();
    let block_by_cidr: BTreeMap<IpNet, &AllocationBlock> =
        data.blocks.iter().map(|b| (b.cidr, b)).collect();
    let mut orphaned_affinities = Vec::new();
    for (host, cidr, state) in &data.affinities {
        let reason = match block_by_cidr.get(cidr) {
            None => Some("block does not exist".to_owned()),
            Some(b) if !b.is_affine_to(AffinityType::Host, host) => Some(format!(
                "block is affine to {}",
                b.affinity.as_deref().unwrap_or("<none>")
            )),
            Some(_) if !live_nodes.contains(host.as_str()) => {
                Some("node does not exist".to_owned())
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            let state = serde_json::to_value(state)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default();
            orphaned_affinities.push(OrphanedAffinity {
                host: host.clone(),
                cidr: *cidr,
                state,
                reason,
            });
        }
    }

    let meta = &input.meta;
    Check {
        report: CheckReport {
            version: meta.version.clone(),
            cluster_guid: meta.cluster_guid.clone(),
            datastore_locked: meta.datastore_locked,
            cluster_info_revision: meta.cluster_info_revision.clone(),
            cluster_type: meta.cluster_type.clone(),
            allocations,
            leaked_handles: leaked_handles.clone(),
        },
        blocks,
        num_allocations,
        active_pools: data.active_pool_text.clone(),
        node_ips: node_list,
        load_balancers,
        workload_ips: wep_list,
        in_use,
        allocations_by_node,
        leaked_ips,
        not_in_active_pool,
        not_allocated,
        leaked_handles,
        good_handles,
        missing_handles,
        invalid_blocks,
        orphaned_affinities,
    }
}

impl Check {
    /// How many problems were found.
    pub fn problems(&self) -> usize {
        self.leaked_ips.len()
            + self.not_in_active_pool.len()
            + self.not_allocated.len()
            + self.leaked_handles.len()
            + self.invalid_blocks.len()
            + self.orphaned_affinities.len()
    }

    /// calicoctl's output. `show_all_ips` lists every address checked;
    /// `show_problem_ips` lists the problem ones (implied by
    /// `show_all_ips`).
    pub fn render(&self, show_all_ips: bool, show_problem_ips: bool) -> String {
        let problems_detail = show_all_ips || show_problem_ips;
        let mut s = String::new();
        let mut line = |t: String| {
            s.push_str(&t);
            s.push('\n');
        };
        line("Checking IPAM for inconsistencies...".into());
        line(String::new());
        line("Loading all IPAM blocks...".into());
        line(format!("Found {} IPAM blocks.", self.blocks.len()));
        for b in &self.blocks {
            line(format!(" IPAM block {} affinity={}:", b.cidr, b.affinity));
            if show_all_ips {
                for (ip, attrs) in &b.allocations {
                    line(format!("  {ip} allocated; attrs {attrs}"));
                }
            }
        }
        line(format!(
            "IPAM blocks record {} allocations.",
            self.num_allocations
        ));
        line(String::new());
        line("Loading all IPAM pools...".into());
        for p in &self.active_pools {
            line(format!("  {p}"));
        }
        line(format!(
            "Found {} active IP pools.",
            self.active_pools.len()
        ));
        line(String::new());
        line("Loading all nodes.".into());
        if show_all_ips {
            for (ip, owner) in &self.node_ips {
                line(format!("  {ip} belongs to {owner}"));
            }
        }
        line(format!("Found {} node tunnel IPs.", self.node_ips.len()));
        line(String::new());
        line("Loading all service load balancer IPs.".into());
        match &self.load_balancers {
            None => line(
                "No configuration for LoadBalancer kubecontroller found, skipping service check"
                    .into(),
            ),
            Some((count, ips)) => {
                if show_all_ips {
                    for (ip, owner) in ips {
                        line(format!("  {ip} belongs to {owner}"));
                    }
                }
                line(format!("Found {count} service load balancer(s)."));
            }
        }
        line(String::new());
        line("Loading all workload endpoints.".into());
        if show_all_ips {
            for (ip, owner) in &self.workload_ips {
                line(format!("  {ip} belongs to {owner}"));
            }
        }
        line(format!("Found {} workload IPs.", self.workload_ips.len()));
        line(format!(
            "Workloads and nodes are using {} IPs.",
            self.in_use.len()
        ));
        line(String::new());
        line("Loading all handles".into());
        line("Looking for top (up to 20) nodes by allocations...".into());
        for (n, count) in self.allocations_by_node.iter().take(20) {
            line(format!("  {n} has {count} allocations"));
        }
        if let Some((_, max)) = self.allocations_by_node.first() {
            let median = self.allocations_by_node[self.allocations_by_node.len() / 2].1;
            line(format!(
                "Node with most allocations has {max}; median is {median}"
            ));
        }
        line(String::new());
        line("Scanning for IPs that are allocated but not actually in use...".into());
        if problems_detail {
            for (ip, attrs) in &self.leaked_ips {
                for a in attrs {
                    line(format!("  {ip} leaked; attrs {a}"));
                }
            }
        }
        line(format!(
            "Found {} IPs that are allocated in IPAM but not actually in use.",
            self.leaked_ips.len()
        ));
        line(
            "Scanning for IPs that are in use by a workload or node but not allocated in IPAM..."
                .into(),
        );
        if problems_detail {
            for (ip, owners) in &self.in_use {
                if owners.len() > 1 {
                    line(format!("  {ip} has multiple owners."));
                }
            }
            for (ip, owners) in &self.not_in_active_pool {
                for o in owners {
                    line(format!(
                        "  {ip} in use by {o} is not in any active IP pool."
                    ));
                }
            }
            for (ip, owners) in &self.not_allocated {
                for o in owners {
                    line(format!(
                        "  {ip} in use by {o} and in active IPAM pool but has no IPAM allocation."
                    ));
                }
            }
        }
        line(format!(
            "Found {} in-use IPs that are not in active IP pools.",
            self.not_in_active_pool.len()
        ));
        line(format!(
            "Found {} in-use IPs that are in active IP pools but have no corresponding IPAM allocation.",
            self.not_allocated.len()
        ));
        line(String::new());
        line("Scanning for IPAM handles with no matching IPs...".into());
        if show_all_ips {
            for h in &self.leaked_handles {
                line(format!("  {} doesn't have any active IPs.", h.id));
            }
        }
        line(format!(
            "Found {} handles with no matching IPs (and {} handles with matches).",
            self.leaked_handles.len(),
            self.good_handles
        ));
        line("Scanning for IPs with missing handle...".into());
        if problems_detail {
            for h in &self.missing_handles {
                line(format!("  {h} is in use in a block but doesn't exist."));
            }
        }
        line(format!(
            "Found {} handles mentioned in blocks with no matching handle resource.",
            self.missing_handles.len()
        ));
        line("Validating IPAMBlock structures...".into());
        for (cidr, why) in &self.invalid_blocks {
            line(format!(
                "  IPAMBlock BlockKey(cidr={cidr}) is invalid: {why}"
            ));
        }
        line(format!(
            "Found {} invalid IPAMBlocks.",
            self.invalid_blocks.len()
        ));
        line("Scanning for block affinities with no matching block or node...".into());
        if problems_detail {
            for a in &self.orphaned_affinities {
                line(format!(
                    "  {} affinity for {} ({}): {}.",
                    a.host, a.cidr, a.state, a.reason
                ));
            }
        }
        line(format!(
            "Found {} orphaned block affinities.",
            self.orphaned_affinities.len()
        ));
        line(format!(
            "Check complete; found {} problems.",
            self.problems()
        ));
        s
    }
}

impl<B: Backend> Ipam<B> {
    /// Runs `ipam check` against this datastore.
    pub async fn check(&self, input: &CheckInput) -> Result<Check, IpamError> {
        let blocks: Vec<AllocationBlock> = self
            .store
            .list_blocks(None)
            .await?
            .into_iter()
            .map(|b| b.value)
            .collect();
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let active: Vec<_> = pools.iter().filter(|p| !p.spec.disabled).collect();
        let handles = self
            .store
            .list_handles()
            .await?
            .into_iter()
            .map(|(id, v)| (id, v.revision.to_string()))
            .collect();
        let affinities = self
            .store
            .list_affinities(AffinityType::Host)
            .await?
            .into_iter()
            .map(|(k, v)| (k.host, k.cidr, v.value.state))
            .collect();
        let data = CheckData {
            blocks: &blocks,
            active_pools: active.iter().map(|p| p.cidr).collect(),
            active_pool_text: active.iter().map(|p| p.spec.cidr.clone()).collect(),
            handles,
            affinities,
            now: self.now(),
        };
        Ok(check(&data, input))
    }

    /// Every Node resource in the datastore (for [`CheckInput::nodes`]).
    pub async fn list_nodes(&self) -> Result<Vec<Node>, IpamError> {
        self.store.nodes().await
    }

    /// Every WorkloadEndpoint resource in the datastore (for
    /// [`CheckInput::workload_endpoints`]).
    pub async fn list_workload_endpoints(&self) -> Result<Vec<WorkloadEndpoint>, IpamError> {
        self.store.workload_endpoints().await
    }
}

#[cfg(test)]
mod tests;
