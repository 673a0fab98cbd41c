//! `calicoctl ipam show`: pool and block usage, one address's owner,
//! borrowed addresses, and the IPAM settings.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use calico_datastore::Backend;
use ipnet::IpNet;

use super::table::{Table, go_g5, with_percentage};
use crate::allocator::{Ipam, IpamConfig};
use crate::block::Occupancy;
use crate::cidr::{block_containing, covers, net_size, overlaps};
use crate::error::IpamError;
use crate::handles::attr;
use crate::pools::{Pool, parse_pools, pool_for_addr};
use crate::record::AllocationBlock;
use crate::reserved::Reservations;

/// Usage of one block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockUsage {
    pub cidr: IpNet,
    pub capacity: u128,
    /// Allocated (including released addresses still cooling down),
    /// whether or not also reserved.
    pub in_use: u128,
    /// Covered by an IPReservation, whether or not also allocated.
    pub reserved: u128,
    /// Neither allocated nor reserved: what can still be handed out.
    pub available: u128,
}

/// Usage of one pool: its whole CIDR, including space no block covers
/// yet, and its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolUsage {
    pub name: String,
    /// `None` for the group of blocks no pool contains any more (Calico's
    /// "orphaned allocation blocks").
    pub cidr: Option<IpNet>,
    pub capacity: u128,
    pub in_use: u128,
    pub reserved: u128,
    pub available: u128,
    pub blocks: Vec<BlockUsage>,
}

/// Calico's name for the group of blocks outside every pool.
pub const ORPHANED_BLOCKS: &str = "orphaned allocation blocks";

/// Addresses of `a` that are also in `b` (both CIDRs: one holds the other
/// or they are disjoint).
fn intersection_size(a: &IpNet, b: &IpNet) -> u128 {
    if covers(a, b) {
        net_size(b)
    } else if covers(b, a) {
        net_size(a)
    } else {
        0
    }
}

/// Usage of the pools named (by name or CIDR) in `wanted`, or of every
/// pool plus the orphaned blocks when `wanted` is empty.
pub(crate) fn utilization(
    pools: &[Pool],
    blocks: &[AllocationBlock],
    reservations: &Reservations,
    wanted: &[String],
) -> Vec<PoolUsage> {
    let mut usage: Vec<PoolUsage> = pools
        .iter()
        .filter(|p| wanted.is_empty() || wanted.iter().any(|w| *w == p.name || *w == p.spec.cidr))
        .map(|p| PoolUsage {
            name: p.name.clone(),
            cidr: Some(p.cidr),
            capacity: 0,
            in_use: 0,
            reserved: 0,
            available: 0,
            blocks: Vec::new(),
        })
        .collect();
    if wanted.is_empty() {
        usage.push(PoolUsage {
            name: ORPHANED_BLOCKS.to_owned(),
            cidr: None,
            capacity: 0,
            in_use: 0,
            reserved: 0,
            available: 0,
            blocks: Vec::new(),
        });
    }
    for b in blocks {
        let capacity = net_size(&b.cidr);
        let entry = BlockUsage {
            cidr: b.cidr,
            capacity,
            in_use: capacity.saturating_sub(b.unallocated.len() as u128),
            reserved: b.num_reserved(reservations) as u128,
            available: b.num_free(reservations) as u128,
        };
        if let Some(u) = usage
            .iter_mut()
            .find(|u| u.cidr.is_none_or(|c| overlaps(&c, &b.cidr)))
        {
            u.blocks.push(entry);
        }
    }
    for u in &mut usage {
        let Some(cidr) = u.cidr else { continue };
        u.capacity = net_size(&cidr);
        u.reserved = reservations.count_in(&cidr);
        let mut outside = u.capacity.saturating_sub(u.reserved);
        for b in &u.blocks {
            u.in_use = u.in_use.saturating_add(b.in_use);
            u.available = u.available.saturating_add(b.available);
            let inside = intersection_size(&cidr, &b.cidr);
            let reserved_inside = if covers(&cidr, &b.cidr) {
                reservations.count_in(&b.cidr)
            } else {
                reservations.count_in(&cidr)
            };
            outside = outside.saturating_sub(inside.saturating_sub(reserved_inside));
        }
        u.available = u.available.saturating_add(outside);
    }
    usage
}

/// Calico's `ipam show` table (`--show-blocks` adds a row per block).
pub fn format_utilization(usage: &[PoolUsage], show_blocks: bool) -> String {
    let mut t = Table::new(&[
        "GROUPING",
        "CIDR",
        "IPS TOTAL",
        "IPS IN USE",
        "IPS RESERVED",
        "IPS FREE",
    ])
    .align_right("IPS TOTAL")
    .align_right("IPS IN USE")
    .align_right("IPS RESERVED")
    .align_right("IPS FREE");
    let row =
        |kind: &str, cidr: String, capacity: u128, in_use: u128, reserved: u128, free: u128| {
            vec![
                kind.to_owned(),
                cidr,
                go_g5(capacity),
                with_percentage(in_use, capacity),
                with_percentage(reserved, capacity),
                with_percentage(free, capacity),
            ]
        };
    for u in usage {
        if let Some(cidr) = u.cidr {
            t.push(row(
                "IP Pool",
                cidr.to_string(),
                u.capacity,
                u.in_use,
                u.reserved,
                u.available,
            ));
        }
        if show_blocks {
            for b in &u.blocks {
                t.push(row(
                    "Block",
                    b.cidr.to_string(),
                    b.capacity,
                    b.in_use,
                    b.reserved,
                    b.available,
                ));
            }
        }
    }
    t.render()
}

/// Who holds one address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IpStatus {
    NotAssigned,
    /// Released, waiting out the cooldown.
    CoolingDown,
    Assigned {
        handle: Option<String>,
        active_owner_attrs: BTreeMap<String, String>,
        alternate_owner_attrs: BTreeMap<String, String>,
    },
}

/// Calico's `ipam show --ip` text, or the error it reports (an address
/// in cooldown).
pub fn format_ip_status(addr: IpAddr, status: &IpStatus) -> Result<String, String> {
    match status {
        IpStatus::NotAssigned => Ok(format!("{addr} is not assigned\n")),
        IpStatus::CoolingDown => Err(format!("address {addr} is in cooldown")),
        IpStatus::Assigned {
            handle,
            active_owner_attrs,
            alternate_owner_attrs,
        } => {
            let mut s = format!("IP {addr} is in use\n");
            match handle {
                Some(h) => writeln!(s, "Handle ID: {h}").ok(),
                None => writeln!(s, "Handle ID: <none>").ok(),
            };
            if active_owner_attrs.is_empty() {
                s.push_str("No Active Owner attributes defined\n");
            } else {
                s.push_str(&owner_attrs("Active Owner Attributes", active_owner_attrs));
            }
            if !alternate_owner_attrs.is_empty() {
                s.push_str(&owner_attrs(
                    "Alternate Owner Attributes",
                    alternate_owner_attrs,
                ));
            }
            Ok(s)
        }
    }
}

fn owner_attrs(title: &str, attrs: &BTreeMap<String, String>) -> String {
    let mut s = format!("{title}:\n");
    for (k, v) in attrs {
        let _ = writeln!(s, "  {k}: {v}");
    }
    s
}

/// An address a node took from another node's block (or from a block with
/// no owner).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BorrowedIp {
    pub addr: IpAddr,
    pub borrowing_node: String,
    pub block: IpNet,
    pub block_owner: String,
    /// `pod`, `vmi`, or the allocation's `type` attribute.
    pub allocation_type: String,
    /// `namespace/name` of the pod or VM.
    pub allocated_to: String,
}

/// `ipam show --show-borrowed` data.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BorrowedReport {
    pub ips: Vec<BorrowedIp>,
    /// Allocations with no `node` attribute, which cannot be classified.
    pub unclassified: usize,
}

pub(crate) fn borrowed(blocks: &[AllocationBlock]) -> BorrowedReport {
    let mut out = BorrowedReport::default();
    for b in blocks {
        let owner = match b.affinity.as_deref() {
            Some(a) => {
                let parts: Vec<&str> = a.split(':').collect();
                if parts.len() == 2 { parts[1] } else { parts[0] }.to_owned()
            }
            None => String::new(),
        };
        for (_, addr, attr) in b.allocated() {
            let Some(attr) = attr else { continue };
            let attrs = &attr.active_owner_attrs;
            let Some(node) = attrs.get(attr::NODE) else {
                out.unclassified += 1;
                continue;
            };
            if *node == owner {
                continue;
            }
            let ns = attrs.get(attr::NAMESPACE).cloned().unwrap_or_default();
            let (allocation_type, allocated_to) =
                if let Some(vmi) = attrs.get(crate::handles::ATTR_VMI_NAME) {
                    ("vmi".to_owned(), format!("{ns}/{vmi}"))
                } else if let Some(pod) = attrs.get(attr::POD) {
                    ("pod".to_owned(), format!("{ns}/{pod}"))
                } else {
                    (
                        attrs.get(attr::TYPE).cloned().unwrap_or_default(),
                        String::new(),
                    )
                };
            out.ips.push(BorrowedIp {
                addr,
                borrowing_node: node.clone(),
                block: b.cidr,
                block_owner: owner.clone(),
                allocation_type,
                allocated_to,
            });
        }
    }
    out
}

/// Calico's `ipam show --show-borrowed` table and note.
pub fn format_borrowed(report: &BorrowedReport) -> String {
    let mut t = Table::new(&[
        "IP",
        "BORROWING-NODE",
        "BLOCK",
        "BLOCK OWNER",
        "TYPE",
        "ALLOCATED-TO",
    ]);
    for b in &report.ips {
        t.push(vec![
            b.addr.to_string(),
            b.borrowing_node.clone(),
            b.block.to_string(),
            b.block_owner.clone(),
            b.allocation_type.clone(),
            b.allocated_to.clone(),
        ]);
    }
    let mut s = t.render();
    if report.unclassified != 0 {
        let _ = writeln!(
            s,
            "\nNote: found {} IP allocations without an explicit node association. Unable to determine if they are borrowed.",
            report.unclassified
        );
    }
    s
}

/// Calico's `ipam show --show-configuration` table.
pub fn format_config(config: &IpamConfig) -> String {
    let mut t = Table::new(&["PROPERTY", "VALUE"]);
    let persistence = match &config.kube_virt_vm_address_persistence {
        Some(p) => format!("{p:?}"),
        None => "(*ipam.VMAddressPersistence)(nil)".to_owned(),
    };
    for (k, v) in [
        ("StrictAffinity", config.strict_affinity.to_string()),
        (
            "AutoAllocateBlocks",
            config.auto_allocate_blocks.to_string(),
        ),
        ("MaxBlocksPerHost", config.max_blocks_per_host.to_string()),
        ("KubeVirtVMAddressPersistence", persistence),
        ("IPCooldownSeconds", config.ip_cooldown_seconds.to_string()),
    ] {
        t.push(vec![k.to_owned(), v]);
    }
    t.render()
}

impl<B: Backend> Ipam<B> {
    /// Pool and block usage (`wanted`: pool names or CIDRs; empty for all
    /// pools and the orphaned blocks).
    pub async fn utilization(&self, wanted: &[String]) -> Result<Vec<PoolUsage>, IpamError> {
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let (reservations, _) = Reservations::from_resources(&self.store.reservations().await?);
        let blocks: Vec<AllocationBlock> = self
            .store
            .list_blocks(None)
            .await?
            .into_iter()
            .map(|b| b.value)
            .collect();
        Ok(utilization(&pools, &blocks, &reservations, wanted))
    }

    /// Who holds `addr`.
    pub async fn ip_status(&self, addr: IpAddr) -> Result<IpStatus, IpamError> {
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let block =
            match pool_for_addr(&pools, addr).and_then(|p| block_containing(addr, p.block_len)) {
                Some(cidr) => self.store.get_block(&cidr).await?.map(|b| b.value),
                None => self
                    .store
                    .list_blocks(None)
                    .await?
                    .into_iter()
                    .map(|b| b.value)
                    .find(|b| b.cidr.contains(&addr)),
            };
        let Some(mut block) = block else {
            return Ok(IpStatus::NotAssigned);
        };
        let config = self.get_config().await?;
        block.garbage_collect(self.now(), config.ip_cooldown_seconds);
        Ok(match block.occupancy(addr) {
            None | Some(Occupancy::Free) => IpStatus::NotAssigned,
            Some(Occupancy::CoolingDown) => IpStatus::CoolingDown,
            Some(Occupancy::Assigned(a)) => IpStatus::Assigned {
                handle: a
                    .handle_id
                    .as_deref()
                    .map(|h| crate::block::sanitize_handle(h).to_owned()),
                active_owner_attrs: a.active_owner_attrs.clone(),
                alternate_owner_attrs: a.alternate_owner_attrs.clone(),
            },
        })
    }

    /// Addresses allocated by a node other than their block's owner.
    pub async fn borrowed_ips(&self) -> Result<BorrowedReport, IpamError> {
        let blocks: Vec<AllocationBlock> = self
            .store
            .list_blocks(None)
            .await?
            .into_iter()
            .map(|b| b.value)
            .collect();
        Ok(borrowed(&blocks))
    }
}

#[cfg(test)]
mod tests {
    use calico_model::{IpPool, IpPoolSpec, ObjectMeta};

    use super::*;
    use crate::pools::parse_pools;

    fn pools() -> Vec<Pool> {
        let mk = |name: &str, cidr: &str, bs: i64| IpPool {
            metadata: ObjectMeta::named(name),
            spec: IpPoolSpec {
                cidr: cidr.into(),
                block_size: bs,
                ..Default::default()
            },
            status: None,
        };
        parse_pools(&[
            mk("ipam-test-v4", "10.65.0.0/16", 26),
            mk("ipam-test-v4-b29", "10.66.0.0/16", 29),
            mk("ipam-test-v6", "fd5f:abcd:64::/48", 0),
        ])
        .0
    }

    fn filled(cidr: &str, n: usize) -> AllocationBlock {
        let mut b =
            AllocationBlock::new_empty(cidr.parse().unwrap(), Some("host:node-1".into()), None, 1);
        b.auto_assign(n, Some("h"), &BTreeMap::new(), &Reservations::none());
        b
    }

    /// The example output in Calico's calicoctl tests, with this
    /// version's IPS RESERVED column.
    #[test]
    fn show_blocks_matches_calicos_table() {
        let blocks = [
            filled("10.65.79.0/26", 5),
            filled("10.66.137.224/29", 8),
            filled("10.66.137.232/29", 3),
            filled("fd5f:abcd:64:4f2c:ec1b:27b9:1989:77c0/122", 7),
        ];
        let usage = utilization(&pools(), &blocks, &Reservations::none(), &[]);
        let want = "\
+----------+-------------------------------------------+------------+------------+--------------+-------------------+
| GROUPING | CIDR                                      | IPS TOTAL  | IPS IN USE | IPS RESERVED | IPS FREE          |
+----------+-------------------------------------------+------------+------------+--------------+-------------------+
| IP Pool  | 10.65.0.0/16                              |      65536 |     5 (0%) |       0 (0%) |      65531 (100%) |
| Block    | 10.65.79.0/26                             |         64 |     5 (8%) |       0 (0%) |          59 (92%) |
| IP Pool  | 10.66.0.0/16                              |      65536 |    11 (0%) |       0 (0%) |      65525 (100%) |
| Block    | 10.66.137.224/29                          |          8 |   8 (100%) |       0 (0%) |            0 (0%) |
| Block    | 10.66.137.232/29                          |          8 |    3 (38%) |       0 (0%) |           5 (62%) |
| IP Pool  | fd5f:abcd:64::/48                         | 1.2089e+24 |     7 (0%) |       0 (0%) | 1.2089e+24 (100%) |
| Block    | fd5f:abcd:64:4f2c:ec1b:27b9:1989:77c0/122 |         64 |    7 (11%) |       0 (0%) |          57 (89%) |
+----------+-------------------------------------------+------------+------------+--------------+-------------------+
";
        assert_eq!(format_utilization(&usage, true), want);
        let pools_only = format_utilization(&usage, false);
        assert_eq!(pools_only.lines().count(), 7);
        assert!(!pools_only.contains("Block "));
    }

    #[test]
    fn reservations_count_inside_and_outside_blocks() {
        let r = Reservations::new([
            "10.65.79.0/30".parse().unwrap(),
            "10.65.200.0/24".parse().unwrap(),
        ]);
        let blocks = [filled("10.65.79.0/26", 2), filled("10.99.0.0/26", 1)];
        let usage = utilization(&pools(), &blocks, &r, &[]);
        let p = &usage[0];
        assert_eq!((p.capacity, p.in_use, p.reserved), (65536, 2, 260));
        // Block: 64 - 2 allocated (.0, .1, both reserved) - 2 more reserved = 60.
        assert_eq!(p.blocks[0].available, 60);
        // The block's 60, plus the pool outside the block less the
        // reservations outside it.
        assert_eq!(p.available, 60 + (65536 - 64 - 256));
        let orphaned = usage.last().unwrap();
        assert_eq!(
            (orphaned.name.as_str(), orphaned.blocks.len()),
            (ORPHANED_BLOCKS, 1)
        );
        let only = utilization(&pools(), &blocks, &r, &["10.66.0.0/16".into()]);
        assert_eq!(only.len(), 1);
    }

    #[test]
    fn ip_status_text() {
        let a: IpAddr = "10.65.79.2".parse().unwrap();
        assert_eq!(
            format_ip_status(a, &IpStatus::NotAssigned).unwrap(),
            "10.65.79.2 is not assigned\n"
        );
        assert_eq!(
            format_ip_status(a, &IpStatus::CoolingDown).unwrap_err(),
            "address 10.65.79.2 is in cooldown"
        );
        let s = format_ip_status(
            a,
            &IpStatus::Assigned {
                handle: None,
                active_owner_attrs: BTreeMap::from([(
                    "note".into(),
                    "reserved by ipam_test.go".into(),
                )]),
                alternate_owner_attrs: BTreeMap::new(),
            },
        )
        .unwrap();
        assert_eq!(
            s,
            "IP 10.65.79.2 is in use\nHandle ID: <none>\nActive Owner Attributes:\n  note: reserved by ipam_test.go\n"
        );
    }

    #[test]
    fn borrowed_table() {
        let mut b = AllocationBlock::new_empty(
            "10.65.79.0/26".parse().unwrap(),
            Some("host:node-1".into()),
            None,
            1,
        );
        let attrs = |node: &str, pod: &str| {
            BTreeMap::from([
                ("node".to_owned(), node.to_owned()),
                ("namespace".to_owned(), "default".to_owned()),
                ("pod".to_owned(), pod.to_owned()),
            ])
        };
        b.auto_assign(
            1,
            Some("a"),
            &attrs("node-1", "mine"),
            &Reservations::none(),
        );
        b.auto_assign(
            1,
            Some("b"),
            &attrs("node-2", "web-0"),
            &Reservations::none(),
        );
        b.auto_assign(1, Some("c"), &BTreeMap::new(), &Reservations::none());
        let report = borrowed(&[b]);
        let want = "\
+------------+----------------+---------------+-------------+------+---------------+
| IP         | BORROWING-NODE | BLOCK         | BLOCK OWNER | TYPE | ALLOCATED-TO  |
+------------+----------------+---------------+-------------+------+---------------+
| 10.65.79.1 | node-2         | 10.65.79.0/26 | node-1      | pod  | default/web-0 |
+------------+----------------+---------------+-------------+------+---------------+

Note: found 1 IP allocations without an explicit node association. Unable to determine if they are borrowed.
";
        assert_eq!(format_borrowed(&report), want);
    }

    #[test]
    fn config_table() {
        let want = "\
+------------------------------+-----------------------------------+
| PROPERTY                     | VALUE                             |
+------------------------------+-----------------------------------+
| StrictAffinity               | false                             |
| AutoAllocateBlocks           | true                              |
| MaxBlocksPerHost             | 0                                 |
| KubeVirtVMAddressPersistence | (*ipam.VMAddressPersistence)(nil) |
| IPCooldownSeconds            | 0                                 |
+------------------------------+-----------------------------------+
";
        assert_eq!(format_config(&IpamConfig::default()), want);
    }
}
