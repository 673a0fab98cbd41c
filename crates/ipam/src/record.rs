//! The IPAM records, as this crate works on them.
//!
//! The stored form (Calico's exact JSON under `/calico/ipam/v2/`) and the
//! keys are calico-model's [`calico_model::ipam`]. Blocks are converted to
//! a working form here on read and back on write: ordinals become indices
//! (a negative or out-of-range one is a malformed record, reported rather
//! than trusted) and times are parsed, so the allocation logic never
//! handles a half-valid block.

use std::collections::BTreeMap;

use calico_model::ipam as model;
use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;

use crate::cidr::IpVersion;

pub use calico_model::ipam::{
    AffinityType, BlockAffinity, BlockAffinityState as AffinityState,
    IpamConfig as IpamConfigRecord, IpamHandle,
};

/// A point in time as Calico stores it: RFC 3339, UTC, whole seconds.
pub type Time = DateTime<Utc>;

/// Formats a time as Kubernetes' `metav1.Time` does.
pub(crate) fn format_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn parse_time(field: &str, s: &Option<String>) -> Result<Option<Time>, String> {
    match s.as_deref() {
        None | Some("") => Ok(None),
        Some(t) => DateTime::parse_from_rfc3339(t)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|e| format!("{field} {t:?} is not an RFC 3339 time: {e}")),
    }
}

/// One block of a pool: which of its addresses are allocated, to whom, and
/// which host it is affine to (what Calico calls `AllocationBlock`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AllocationBlock {
    pub cidr: IpNet,
    /// `host:<name>` or `virtual:<name>`; `None` when unaffine.
    pub affinity: Option<String>,
    pub affinity_claim_time: Option<Time>,
    /// Per ordinal: the index into `attributes`, or `None` when free.
    pub allocations: Vec<Option<usize>>,
    /// Free ordinals in the order they will be handed out.
    pub unallocated: Vec<usize>,
    pub attributes: Vec<AllocationAttribute>,
    pub sequence_number: u64,
    /// Ordinal (as a decimal string) to the block's sequence number when
    /// that ordinal was allocated.
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    pub deleted: bool,
    /// The affinity as old Calico versions wrote it (a bare host name).
    pub host_affinity: Option<String>,
}

/// Who an allocation belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AllocationAttribute {
    pub handle_id: Option<String>,
    /// What Calico calls `ActiveOwnerAttrs` (stored as `secondary`):
    /// `node`, `namespace`, `pod`, `timestamp`, `type`, ...
    pub active_owner_attrs: BTreeMap<String, String>,
    pub alternate_owner_attrs: BTreeMap<String, String>,
    /// Set while the address is in its released-address cooldown.
    pub released_at: Option<Time>,
}

impl AllocationBlock {
    /// The working form of a stored block, or why it cannot be trusted.
    pub fn from_record(r: model::AllocationBlock) -> Result<AllocationBlock, String> {
        let size = crate::cidr::block_len_to_size(&r.cidr);
        if size > 1 << 16 {
            return Err(format!("block {} is larger than any pool allows", r.cidr));
        }
        if r.allocations.len() != size {
            return Err(format!(
                "allocations has {} entries but block {} has {size} addresses",
                r.allocations.len(),
                r.cidr
            ));
        }
        let index = |what: &str, v: i64, bound: usize| {
            usize::try_from(v)
                .ok()
                .filter(|&i| i < bound)
                .ok_or_else(|| format!("{what} {v} is out of range (0..{bound})"))
        };
        let attributes = r
            .attributes
            .into_iter()
            .map(|a| {
                Ok(AllocationAttribute {
                    released_at: parse_time("releasedAt", &a.released_at)?,
                    handle_id: a.handle_id,
                    active_owner_attrs: a.active_owner_attrs,
                    alternate_owner_attrs: a.alternate_owner_attrs,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let allocations = r
            .allocations
            .iter()
            .map(|a| {
                a.map(|i| index("attribute index", i, attributes.len()))
                    .transpose()
            })
            .collect::<Result<Vec<_>, String>>()?;
        let unallocated = r
            .unallocated
            .iter()
            .map(|&o| index("unallocated ordinal", o, size))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(AllocationBlock {
            cidr: r.cidr.trunc(),
            affinity: r.affinity,
            affinity_claim_time: parse_time("affinity_claim_time", &r.affinity_claim_time)?,
            allocations,
            unallocated,
            attributes,
            sequence_number: r.sequence_number,
            sequence_number_for_allocation: r.sequence_number_for_allocation,
            deleted: r.deleted,
            host_affinity: r.host_affinity,
        })
    }

    /// The stored form.
    pub fn to_record(&self) -> model::AllocationBlock {
        model::AllocationBlock {
            cidr: self.cidr,
            affinity: self.affinity.clone(),
            affinity_claim_time: self.affinity_claim_time.as_ref().map(format_time),
            allocations: self
                .allocations
                .iter()
                .map(|a| a.map(|i| i as i64))
                .collect(),
            unallocated: self.unallocated.iter().map(|&o| o as i64).collect(),
            attributes: self
                .attributes
                .iter()
                .map(|a| model::AllocationAttribute {
                    handle_id: a.handle_id.clone(),
                    active_owner_attrs: a.active_owner_attrs.clone(),
                    alternate_owner_attrs: a.alternate_owner_attrs.clone(),
                    released_at: a.released_at.as_ref().map(format_time),
                })
                .collect(),
            sequence_number: self.sequence_number,
            sequence_number_for_allocation: self.sequence_number_for_allocation.clone(),
            deleted: self.deleted,
            host_affinity: self.host_affinity.clone(),
        }
    }
}

/// An affinity record in the given state.
pub(crate) fn affinity_with_state(state: AffinityState) -> BlockAffinity {
    BlockAffinity {
        state,
        deleted: false,
    }
}

/// Reads an affinity value. Old Calico versions wrote an empty value, or
/// JSON without a state; both mean an affinity with no state (treated as
/// confirmed).
pub(crate) fn decode_affinity(bytes: &[u8]) -> Result<BlockAffinity, serde_json::Error> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(affinity_with_state(AffinityState::Unset));
    }
    let mut value: serde_json::Value = serde_json::from_slice(bytes)?;
    if let Some(obj) = value.as_object_mut() {
        obj.entry("state").or_insert_with(|| "".into());
    }
    serde_json::from_value(value)
}

/// Where blocks live.
pub(crate) fn block_root() -> String {
    model::block_prefix(None)
}

pub(crate) fn block_prefix(version: IpVersion) -> String {
    model::block_prefix(Some(version.number()))
}

pub(crate) fn block_key(cidr: &IpNet) -> String {
    model::block_key(cidr)
}

/// The block a block key names.
pub(crate) fn parse_block_key(key: &str) -> Option<IpNet> {
    model::parse_block_key(key).ok()
}

pub(crate) fn affinity_key(kind: AffinityType, host: &str, cidr: &IpNet) -> String {
    model::BlockAffinityKey {
        affinity_type: kind,
        host: host.to_owned(),
        cidr: cidr.trunc(),
    }
    .key()
}

/// The prefix holding one owner's affinities of one family.
pub(crate) fn affinity_prefix(kind: AffinityType, host: &str, version: IpVersion) -> String {
    model::block_affinity_prefix(kind, Some(host), Some(version.number()))
}

/// The prefix holding every affinity of one kind.
pub(crate) fn affinity_root(kind: AffinityType) -> String {
    model::block_affinity_prefix(kind, None, None)
}

pub(crate) use calico_model::ipam::BlockAffinityKey as AffinityKey;

pub(crate) fn parse_affinity_key(key: &str) -> Option<AffinityKey> {
    AffinityKey::parse(key).ok()
}

pub(crate) fn handle_root() -> String {
    model::handle_prefix()
}

pub(crate) fn handle_key(handle: &str) -> String {
    model::handle_key(handle)
}

pub(crate) fn parse_handle_key(key: &str) -> Option<String> {
    model::parse_handle_key(key).ok()
}

pub(crate) fn config_key() -> String {
    model::ipam_config_key()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as Calico writes it to etcd (field order and null handling
    /// included), with a released address.
    const CALICO_BLOCK: &str = r#"{"cidr":"10.65.79.0/30","affinity":"host:node-1","affinity_claim_time":"2024-05-01T09:00:00Z","allocations":[0,null,1,null],"unallocated":[1,3],"attributes":[{"handle_id":"k8s-pod-network.abc","secondary":{"namespace":"default","node":"node-1","pod":"web-0","timestamp":"2024-05-01 10:00:00.000000001 +0000 UTC"}},{"releasedAt":"2024-05-01T10:01:00Z"}],"sequenceNumber":1714557600000000001,"sequenceNumberForAllocation":{"0":1714557600000000001,"2":1714557600000000002},"deleted":false}"#;

    #[test]
    fn calico_block_converts_both_ways_byte_for_byte() {
        let stored: model::AllocationBlock = serde_json::from_str(CALICO_BLOCK).unwrap();
        let b = AllocationBlock::from_record(stored).unwrap();
        assert_eq!(b.allocations, vec![Some(0), None, Some(1), None]);
        assert_eq!(
            b.attributes[1].released_at.map(|t| t.timestamp()),
            Some(1_714_557_660)
        );
        assert_eq!(
            b.affinity_claim_time.map(|t| t.timestamp()),
            Some(1_714_554_000)
        );
        assert_eq!(serde_json::to_string(&b.to_record()).unwrap(), CALICO_BLOCK);
    }

    #[test]
    fn corrupt_records_are_refused() {
        let mut r: model::AllocationBlock = serde_json::from_str(CALICO_BLOCK).unwrap();
        r.allocations[1] = Some(7);
        assert!(
            AllocationBlock::from_record(r.clone())
                .unwrap_err()
                .contains("attribute index 7")
        );
        r.allocations[1] = None;
        r.unallocated.push(-1);
        assert!(
            AllocationBlock::from_record(r.clone())
                .unwrap_err()
                .contains("unallocated ordinal -1")
        );
        r.unallocated.pop();
        r.allocations.pop();
        assert!(
            AllocationBlock::from_record(r.clone())
                .unwrap_err()
                .contains("has 4 addresses")
        );
        let mut bad_time: model::AllocationBlock = serde_json::from_str(CALICO_BLOCK).unwrap();
        bad_time.attributes[1].released_at = Some("yesterday".into());
        assert!(
            AllocationBlock::from_record(bad_time)
                .unwrap_err()
                .contains("releasedAt")
        );
    }

    #[test]
    fn old_affinity_values() {
        assert_eq!(decode_affinity(b"").unwrap().state, AffinityState::Unset);
        assert_eq!(decode_affinity(b"{}").unwrap().state, AffinityState::Unset);
        assert_eq!(
            decode_affinity(br#"{"state":"pendingDeletion","deleted":false}"#)
                .unwrap()
                .state,
            AffinityState::PendingDeletion
        );
        assert!(decode_affinity(b"{").is_err());
    }

    #[test]
    fn keys_are_calicos() {
        let v4: IpNet = "10.65.79.0/26".parse().unwrap();
        assert_eq!(
            block_key(&v4),
            "/calico/ipam/v2/assignment/ipv4/block/10.65.79.0-26"
        );
        assert_eq!(parse_block_key(&block_key(&v4)), Some(v4));
        assert_eq!(
            affinity_key(AffinityType::Host, "node-1", &v4),
            "/calico/ipam/v2/host/node-1/ipv4/block/10.65.79.0-26"
        );
        assert!(
            affinity_key(AffinityType::Host, "node-1", &v4).starts_with(&affinity_prefix(
                AffinityType::Host,
                "node-1",
                IpVersion::V4
            ))
        );
        assert_eq!(handle_key("h"), "/calico/ipam/v2/handle/h");
        assert_eq!(
            parse_handle_key("/calico/ipam/v2/handle/h").as_deref(),
            Some("h")
        );
        assert_eq!(config_key(), "/calico/ipam/v2/config");
        assert_eq!(
            block_prefix(IpVersion::V6),
            "/calico/ipam/v2/assignment/ipv6/"
        );
    }
}
