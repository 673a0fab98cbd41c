//! The IPAM records Calico keeps under `/calico/ipam/v2/`, in its exact
//! JSON, and their keys.
//!
//! These belong in calico-model; until its IPAM records land they are kept
//! here, crate-private and minimal (only what the allocator reads and
//! writes), so an existing Calico etcd datastore is read and written
//! unchanged.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

use crate::cidr::IpVersion;

/// Root of every IPAM key.
pub(crate) const IPAM_ROOT: &str = "/calico/ipam/v2/";
/// Where blocks live.
pub(crate) const BLOCK_ROOT: &str = "/calico/ipam/v2/assignment/";
/// Where handles live.
pub(crate) const HANDLE_ROOT: &str = "/calico/ipam/v2/handle/";
/// The global IPAM settings (what Calico calls `IPAMConfig`).
pub(crate) const CONFIG_KEY: &str = "/calico/ipam/v2/config";

/// A point in time as Calico stores it: RFC 3339, UTC, whole seconds.
pub type Time = DateTime<Utc>;

/// Formats a time as Kubernetes' `metav1.Time` does.
pub(crate) fn format_time(t: &Time) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

mod time_format {
    use super::*;

    pub(crate) fn serialize<S: serde::Serializer>(
        t: &Option<Time>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&format_time(t)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Time>, D::Error> {
        let raw: Option<String> = Option::deserialize(d)?;
        match raw {
            None => Ok(None),
            Some(s) if s.is_empty() => Ok(None),
            Some(s) => DateTime::parse_from_rfc3339(&s)
                .map(|t| Some(t.with_timezone(&Utc)))
                .map_err(|e| serde::de::Error::custom(format!("invalid time {s:?}: {e}"))),
        }
    }
}

/// `null` reads as an empty list (Go writes nil slices as `null`).
fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty_map<'de, D: Deserializer<'de>, K: Ord + Deserialize<'de>, V: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<K, V>, D::Error> {
    Ok(Option::<BTreeMap<K, V>>::deserialize(d)?.unwrap_or_default())
}

/// One block of a pool: which of its addresses are allocated, to whom, and
/// which host it is affine to (what Calico calls `AllocationBlock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AllocationBlock {
    pub cidr: IpNet,
    /// `host:<name>` or `virtual:<name>`; `None` when unaffine.
    #[serde(default)]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "time_format")]
    pub affinity_claim_time: Option<Time>,
    /// Per ordinal: the index into `attributes`, or `None` when free.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub allocations: Vec<Option<usize>>,
    /// Free ordinals in the order they will be handed out.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub unallocated: Vec<usize>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub attributes: Vec<AllocationAttribute>,
    #[serde(rename = "sequenceNumber", default)]
    pub sequence_number: u64,
    /// Ordinal (as a decimal string) to the block's sequence number when
    /// that ordinal was allocated.
    #[serde(
        rename = "sequenceNumberForAllocation",
        default,
        deserialize_with = "null_as_empty_map"
    )]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    #[serde(default)]
    pub deleted: bool,
    /// The affinity as old Calico versions wrote it (a bare host name).
    #[serde(
        rename = "hostAffinity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_affinity: Option<String>,
}

/// Who an allocation belongs to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AllocationAttribute {
    #[serde(rename = "handle_id", default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    /// What Calico calls `ActiveOwnerAttrs`: `node`, `namespace`, `pod`,
    /// `timestamp`, `type`, ...
    #[serde(
        rename = "secondary",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_empty_map"
    )]
    pub active_owner_attrs: BTreeMap<String, String>,
    #[serde(
        rename = "alternateOwnerAttrs",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_as_empty_map"
    )]
    pub alternate_owner_attrs: BTreeMap<String, String>,
    /// Set while the address is in its released-address cooldown.
    #[serde(
        rename = "releasedAt",
        default,
        skip_serializing_if = "Option::is_none",
        with = "time_format"
    )]
    pub released_at: Option<Time>,
}

/// A host's claim on a block (what Calico calls `BlockAffinity`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BlockAffinity {
    #[serde(default)]
    pub state: AffinityState,
    #[serde(default)]
    pub deleted: bool,
}

/// `∅ → pending → confirmed → pendingDeletion → ∅`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum AffinityState {
    /// Written by old versions; means confirmed.
    #[default]
    #[serde(rename = "")]
    Unset,
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "confirmed")]
    Confirmed,
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
}

impl BlockAffinity {
    /// Parses an affinity value; an empty value (as old versions wrote)
    /// is an affinity with no state.
    pub fn from_bytes(value: &[u8]) -> Result<BlockAffinity, serde_json::Error> {
        if value.iter().all(u8::is_ascii_whitespace) {
            return Ok(BlockAffinity::default());
        }
        serde_json::from_slice(value)
    }

    pub fn with_state(state: AffinityState) -> BlockAffinity {
        BlockAffinity {
            state,
            deleted: false,
        }
    }
}

/// The blocks holding a handle's addresses, with a count per block (what
/// Calico calls `IPAMHandle`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IpamHandle {
    #[serde(default, deserialize_with = "null_as_empty_map")]
    pub block: BTreeMap<String, usize>,
    #[serde(default)]
    pub deleted: bool,
}

/// The global IPAM settings as stored at [`CONFIG_KEY`]. Every field is
/// omitted when zero, as Calico writes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct IpamConfigRecord {
    #[serde(rename = "strict_affinity", default, skip_serializing_if = "is_false")]
    pub strict_affinity: bool,
    #[serde(
        rename = "auto_allocate_blocks",
        default,
        skip_serializing_if = "is_false"
    )]
    pub auto_allocate_blocks: bool,
    #[serde(rename = "maxBlocksPerHost", default, skip_serializing_if = "is_zero")]
    pub max_blocks_per_host: u32,
    #[serde(
        rename = "kubeVirtVMAddressPersistence",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kube_virt_vm_address_persistence: Option<String>,
    #[serde(rename = "ipCooldownSeconds", default, skip_serializing_if = "is_zero")]
    pub ip_cooldown_seconds: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The kind of owner an affinity names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AffinityType {
    /// A node: pods and tunnel addresses.
    Host,
    /// A virtual owner, such as Calico's LoadBalancer controller.
    Virtual,
}

impl AffinityType {
    pub fn as_str(self) -> &'static str {
        match self {
            AffinityType::Host => "host",
            AffinityType::Virtual => "virtual",
        }
    }
}

/// `cidr` as it appears in keys: `10.0.0.0-26`, `fd00::-122`.
fn cidr_segment(cidr: &IpNet) -> String {
    cidr.trunc().to_string().replacen('/', "-", 1)
}

fn parse_cidr_segment(s: &str) -> Option<IpNet> {
    s.replacen('-', "/", 1)
        .parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
}

pub(crate) fn block_key(cidr: &IpNet) -> String {
    format!(
        "{BLOCK_ROOT}ipv{}/block/{}",
        IpVersion::of_net(cidr).number(),
        cidr_segment(cidr)
    )
}

/// The block a block key names.
pub(crate) fn parse_block_key(key: &str) -> Option<IpNet> {
    let rest = key.strip_prefix(BLOCK_ROOT)?;
    let (family, rest) = rest.split_once('/')?;
    if !family.starts_with("ipv") {
        return None;
    }
    let segment = rest.strip_prefix("block/")?;
    if segment.contains('/') {
        return None;
    }
    parse_cidr_segment(segment)
}

pub(crate) fn affinity_key(kind: AffinityType, host: &str, cidr: &IpNet) -> String {
    format!(
        "{IPAM_ROOT}{}/{host}/ipv{}/block/{}",
        kind.as_str(),
        IpVersion::of_net(cidr).number(),
        cidr_segment(cidr)
    )
}

/// The prefix holding one owner's affinities of one family.
pub(crate) fn affinity_prefix(kind: AffinityType, host: &str, version: IpVersion) -> String {
    format!(
        "{IPAM_ROOT}{}/{host}/ipv{}/block/",
        kind.as_str(),
        version.number()
    )
}

/// The prefix holding every affinity of one kind.
pub(crate) fn affinity_root(kind: AffinityType) -> String {
    format!("{IPAM_ROOT}{}/", kind.as_str())
}

/// A parsed affinity key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AffinityKey {
    pub kind: AffinityType,
    pub host: String,
    pub cidr: IpNet,
}

pub(crate) fn parse_affinity_key(key: &str) -> Option<AffinityKey> {
    let rest = key.strip_prefix(IPAM_ROOT)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [kind, host, family, "block", cidr] = parts.as_slice() else {
        return None;
    };
    let kind = match *kind {
        "host" => AffinityType::Host,
        "virtual" => AffinityType::Virtual,
        _ => return None,
    };
    if host.is_empty() || !family.starts_with("ipv") {
        return None;
    }
    Some(AffinityKey {
        kind,
        host: (*host).to_owned(),
        cidr: parse_cidr_segment(cidr)?,
    })
}

pub(crate) fn handle_key(handle: &str) -> String {
    format!("{HANDLE_ROOT}{handle}")
}

pub(crate) fn parse_handle_key(key: &str) -> Option<&str> {
    key.strip_prefix(HANDLE_ROOT)
        .filter(|h| !h.is_empty() && !h.contains('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A block as Calico writes it to etcd (field order and null handling
    /// included).
    const CALICO_BLOCK: &str = r#"{"cidr":"10.65.79.0/26","affinity":"host:node-1","allocations":[0,null,1,null],"unallocated":[1,3],"attributes":[{"handle_id":"k8s-pod-network.abc","secondary":{"namespace":"default","node":"node-1","pod":"web-0","timestamp":"2024-05-01 10:00:00.000000001 +0000 UTC"}},{"releasedAt":"2024-05-01T10:01:00Z"}],"sequenceNumber":1714557600000000001,"sequenceNumberForAllocation":{"0":1714557600000000001,"2":1714557600000000002},"deleted":false}"#;

    #[test]
    fn block_json_round_trips_byte_for_byte() {
        let b: AllocationBlock = serde_json::from_str(CALICO_BLOCK).unwrap();
        assert_eq!(b.affinity.as_deref(), Some("host:node-1"));
        assert_eq!(b.allocations, vec![Some(0), None, Some(1), None]);
        assert_eq!(
            b.attributes[1].released_at.map(|t| t.timestamp()),
            Some(1_714_557_660)
        );
        assert_eq!(serde_json::to_string(&b).unwrap(), CALICO_BLOCK);
    }

    #[test]
    fn fresh_calico_block_with_nulls_reads() {
        let b: AllocationBlock = serde_json::from_str(
            r#"{"cidr":"fd00::/122","affinity":null,"allocations":[null],"unallocated":[0],"attributes":null,"sequenceNumber":0,"sequenceNumberForAllocation":null,"deleted":false}"#,
        )
        .unwrap();
        assert!(b.affinity.is_none() && b.attributes.is_empty());
        assert!(
            serde_json::to_string(&b)
                .unwrap()
                .contains(r#""affinity":null"#)
        );
    }

    #[test]
    fn affinity_values() {
        assert_eq!(
            BlockAffinity::from_bytes(b"").unwrap().state,
            AffinityState::Unset
        );
        let a =
            BlockAffinity::from_bytes(br#"{"state":"pendingDeletion","deleted":false}"#).unwrap();
        assert_eq!(a.state, AffinityState::PendingDeletion);
        assert_eq!(
            serde_json::to_string(&BlockAffinity::with_state(AffinityState::Confirmed)).unwrap(),
            r#"{"state":"confirmed","deleted":false}"#
        );
    }

    #[test]
    fn handle_and_config_json() {
        let h: IpamHandle =
            serde_json::from_str(r#"{"block":{"10.65.79.0/26":2},"deleted":false}"#).unwrap();
        assert_eq!(h.block["10.65.79.0/26"], 2);
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"block":{"10.65.79.0/26":2},"deleted":false}"#
        );
        let c = IpamConfigRecord {
            strict_affinity: true,
            auto_allocate_blocks: true,
            max_blocks_per_host: 4,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"strict_affinity":true,"auto_allocate_blocks":true,"maxBlocksPerHost":4}"#
        );
        let read: IpamConfigRecord = serde_json::from_str(r#"{"strict_affinity":true}"#).unwrap();
        assert!(
            !read.auto_allocate_blocks,
            "an omitted field is false, as Calico reads it"
        );
    }

    #[test]
    fn keys() {
        let v4: IpNet = "10.65.79.0/26".parse().unwrap();
        let v6: IpNet = "fd5f:abcd:64::40/122".parse().unwrap();
        assert_eq!(
            block_key(&v4),
            "/calico/ipam/v2/assignment/ipv4/block/10.65.79.0-26"
        );
        assert_eq!(
            block_key(&v6),
            "/calico/ipam/v2/assignment/ipv6/block/fd5f:abcd:64::40-122"
        );
        assert_eq!(parse_block_key(&block_key(&v6)), Some(v6));
        assert_eq!(
            parse_block_key("/calico/ipam/v2/assignment/ipv4/block/x"),
            None
        );
        let k = affinity_key(AffinityType::Host, "node-1", &v4);
        assert_eq!(k, "/calico/ipam/v2/host/node-1/ipv4/block/10.65.79.0-26");
        assert!(k.starts_with(&affinity_prefix(
            AffinityType::Host,
            "node-1",
            IpVersion::V4
        )));
        assert_eq!(
            parse_affinity_key(&k),
            Some(AffinityKey {
                kind: AffinityType::Host,
                host: "node-1".into(),
                cidr: v4
            })
        );
        assert_eq!(parse_affinity_key("/calico/ipam/v2/host/node-1"), None);
        assert_eq!(
            handle_key("k8s-pod-network.abc"),
            "/calico/ipam/v2/handle/k8s-pod-network.abc"
        );
        assert_eq!(
            parse_handle_key("/calico/ipam/v2/handle/k8s-pod-network.abc"),
            Some("k8s-pod-network.abc")
        );
    }
}
