//! IPAM records exactly as Calico keeps them in etcd under
//! `/calico/ipam/v2/`: allocation blocks, block affinities, handles and the
//! IPAM config, with their key functions. Pure data: allocation logic lives
//! in the IPAM crate.
//!
//! These records are read leniently (unknown fields are ignored, `null`
//! reads as empty), as Calico's Go code reads them, so that records written
//! by newer Calico versions still load.

use std::collections::BTreeMap;
use std::fmt;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize};

/// Root of every IPAM key.
pub const IPAM_ROOT: &str = "/calico/ipam/v2/";

/// `null` reads as the type's default (Go writes nil slices and maps as
/// `null`).
fn null_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn version_of(net: &IpNet) -> u8 {
    match net {
        IpNet::V4(_) => 4,
        IpNet::V6(_) => 6,
    }
}

/// `10.0.0.0/26` → `10.0.0.0-26` (host bits cleared).
fn cidr_segment(cidr: &IpNet) -> String {
    cidr.trunc().to_string().replacen('/', "-", 1)
}

fn parse_cidr_segment(s: &str) -> Option<IpNet> {
    s.replacen('-', "/", 1)
        .parse::<IpNet>()
        .ok()
        .map(|n| n.trunc())
}

/// Why an IPAM key could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key:?} is not {expected}")]
pub struct IpamKeyError {
    pub key: String,
    pub expected: &'static str,
}

fn strip_root(key: &str) -> Option<&str> {
    key.strip_prefix('/')
        .unwrap_or(key)
        .strip_prefix(&IPAM_ROOT[1..])
}

// ---------------------------------------------------------------- blocks

/// Key of an allocation block: `/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26`.
pub fn block_key(cidr: &IpNet) -> String {
    format!(
        "{IPAM_ROOT}assignment/ipv{}/block/{}",
        version_of(cidr),
        cidr_segment(cidr)
    )
}

/// Prefix listing blocks: all, or of one IP version.
pub fn block_prefix(ip_version: Option<u8>) -> String {
    match ip_version {
        Some(v) => format!("{IPAM_ROOT}assignment/ipv{v}/"),
        None => format!("{IPAM_ROOT}assignment/"),
    }
}

/// The block CIDR named by a block key.
pub fn parse_block_key(key: &str) -> Result<IpNet, IpamKeyError> {
    let err = || IpamKeyError {
        key: key.into(),
        expected: "an IPAM block key",
    };
    let rest = strip_root(key)
        .and_then(|r| r.strip_prefix("assignment/"))
        .ok_or_else(err)?;
    let (version, rest) = rest.split_once('/').ok_or_else(err)?;
    let seg = rest
        .strip_prefix("block/")
        .filter(|s| !s.contains('/'))
        .ok_or_else(err)?;
    let net = parse_cidr_segment(seg).ok_or_else(err)?;
    if version != format!("ipv{}", version_of(&net)) {
        return Err(err());
    }
    Ok(net)
}

/// An allocation block: a power-of-two range of addresses, usually
/// affine to one node, and who holds each address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationBlock {
    pub cidr: IpNet,
    /// `host:<node>` or `virtual:<name>`; `null` when unclaimed.
    #[serde(default)]
    pub affinity: Option<String>,
    /// RFC 3339 time the affinity was claimed.
    #[serde(
        rename = "affinity_claim_time",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub affinity_claim_time: Option<String>,
    /// One entry per address: the index into `attributes` of its holder,
    /// or `null` when free.
    #[serde(default, deserialize_with = "null_default")]
    pub allocations: Vec<Option<i64>>,
    /// Free ordinals, in the order they will be handed out.
    #[serde(default, deserialize_with = "null_default")]
    pub unallocated: Vec<i64>,
    #[serde(default, deserialize_with = "null_default")]
    pub attributes: Vec<AllocationAttribute>,
    #[serde(rename = "sequenceNumber", default)]
    pub sequence_number: u64,
    /// Sequence number at which each ordinal (as a decimal string) was
    /// allocated.
    #[serde(
        rename = "sequenceNumberForAllocation",
        default,
        deserialize_with = "null_default"
    )]
    pub sequence_number_for_allocation: BTreeMap<String, u64>,
    #[serde(default)]
    pub deleted: bool,
    #[serde(
        rename = "hostAffinity",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub host_affinity: Option<String>,
}

impl AllocationBlock {
    /// A block with every address free. `sequence_number` is the starting
    /// sequence number (Calico uses the creation time in nanoseconds, so a
    /// re-created block never repeats one).
    pub fn new(cidr: IpNet, affinity: Option<String>, sequence_number: u64) -> Self {
        let cidr = cidr.trunc();
        let bits = u32::from(cidr.max_prefix_len() - cidr.prefix_len());
        let size: i64 = 1i64.checked_shl(bits.min(62)).unwrap_or(i64::MAX);
        AllocationBlock {
            cidr,
            affinity,
            affinity_claim_time: None,
            allocations: vec![None; size as usize],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number,
            sequence_number_for_allocation: BTreeMap::new(),
            deleted: false,
            host_affinity: None,
        }
    }

    /// The node this block is affine to (`affinity: host:<node>`).
    pub fn host(&self) -> Option<&str> {
        self.affinity
            .as_deref()
            .and_then(|a| a.strip_prefix("host:"))
    }

    pub fn key(&self) -> String {
        block_key(&self.cidr)
    }
}

/// Who holds an allocation: a handle and free-form attributes (pod,
/// namespace, node, type...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocationAttribute {
    #[serde(rename = "handle_id", default, skip_serializing_if = "Option::is_none")]
    pub handle_id: Option<String>,
    #[serde(
        rename = "secondary",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub active_owner_attrs: BTreeMap<String, String>,
    #[serde(
        rename = "alternateOwnerAttrs",
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "null_default"
    )]
    pub alternate_owner_attrs: BTreeMap<String, String>,
    #[serde(
        rename = "releasedAt",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub released_at: Option<String>,
}

/// Attribute keys Calico's clients set on allocations.
pub mod attr {
    pub const POD: &str = "pod";
    pub const NAMESPACE: &str = "namespace";
    pub const NODE: &str = "node";
    pub const TYPE: &str = "type";
    pub const SERVICE: &str = "service";
    pub const TIMESTAMP: &str = "timestamp";
    pub const TYPE_IPIP: &str = "ipipTunnelAddress";
    pub const TYPE_VXLAN: &str = "vxlanTunnelAddress";
    pub const TYPE_VXLAN_V6: &str = "vxlanV6TunnelAddress";
    pub const TYPE_WIREGUARD: &str = "wireguardTunnelAddress";
    pub const TYPE_WIREGUARD_V6: &str = "wireguardV6TunnelAddress";
}

// ------------------------------------------------------------ affinities

/// Whose affinity a block has: a node (`host`) or a virtual owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum AffinityType {
    Host,
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

impl fmt::Display for AffinityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A block affinity key taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockAffinityKey {
    pub affinity_type: AffinityType,
    pub host: String,
    pub cidr: IpNet,
}

impl BlockAffinityKey {
    pub fn host(host: impl Into<String>, cidr: IpNet) -> Self {
        BlockAffinityKey {
            affinity_type: AffinityType::Host,
            host: host.into(),
            cidr: cidr.trunc(),
        }
    }

    /// `/calico/ipam/v2/host/<node>/ipv4/block/10.0.0.0-26`.
    pub fn key(&self) -> String {
        format!(
            "{IPAM_ROOT}{}/{}/ipv{}/block/{}",
            self.affinity_type,
            self.host,
            version_of(&self.cidr),
            cidr_segment(&self.cidr)
        )
    }

    pub fn parse(key: &str) -> Result<Self, IpamKeyError> {
        let err = || IpamKeyError {
            key: key.into(),
            expected: "a block affinity key",
        };
        let rest = strip_root(key).ok_or_else(err)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let [kind, host, version, "block", seg] = parts.as_slice() else {
            return Err(err());
        };
        let affinity_type = match *kind {
            "host" => AffinityType::Host,
            "virtual" => AffinityType::Virtual,
            _ => return Err(err()),
        };
        let cidr = parse_cidr_segment(seg).ok_or_else(err)?;
        if host.is_empty() || *version != format!("ipv{}", version_of(&cidr)) {
            return Err(err());
        }
        Ok(BlockAffinityKey {
            affinity_type,
            host: host.to_string(),
            cidr,
        })
    }
}

/// Prefix listing block affinities: of every host, of one host, or of one
/// host and IP version.
pub fn block_affinity_prefix(
    affinity_type: AffinityType,
    host: Option<&str>,
    ip_version: Option<u8>,
) -> String {
    match (host, ip_version) {
        (None, _) => format!("{IPAM_ROOT}{affinity_type}/"),
        (Some(h), None) => format!("{IPAM_ROOT}{affinity_type}/{h}/"),
        (Some(h), Some(v)) => format!("{IPAM_ROOT}{affinity_type}/{h}/ipv{v}/block/"),
    }
}

/// Claim state of a block affinity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum BlockAffinityState {
    #[serde(rename = "confirmed")]
    Confirmed,
    #[serde(rename = "pending")]
    Pending,
    #[serde(rename = "pendingDeletion")]
    PendingDeletion,
    /// Written by very old Calico versions.
    #[serde(rename = "")]
    Unset,
}

/// Value stored at a block affinity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockAffinity {
    pub state: BlockAffinityState,
    #[serde(default)]
    pub deleted: bool,
}

// --------------------------------------------------------------- handles

/// `/calico/ipam/v2/handle/<id>`.
pub fn handle_key(handle_id: &str) -> String {
    format!("{IPAM_ROOT}handle/{handle_id}")
}

pub fn handle_prefix() -> String {
    format!("{IPAM_ROOT}handle/")
}

pub fn parse_handle_key(key: &str) -> Result<String, IpamKeyError> {
    strip_root(key)
        .and_then(|r| r.strip_prefix("handle/"))
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(str::to_string)
        .ok_or_else(|| IpamKeyError {
            key: key.into(),
            expected: "an IPAM handle key",
        })
}

/// Value at a handle key: how many addresses the handle holds in each
/// block (keyed by block CIDR). The handle ID is the key, not stored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamHandle {
    #[serde(default, deserialize_with = "null_default")]
    pub block: BTreeMap<String, i64>,
    #[serde(default)]
    pub deleted: bool,
}

// ---------------------------------------------------------------- config

/// `/calico/ipam/v2/config`.
pub fn ipam_config_key() -> String {
    format!("{IPAM_ROOT}config")
}

/// IPAM's own settings record (the v3 IPAMConfiguration resource is stored
/// separately, as a resource).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpamConfig {
    #[serde(
        rename = "strict_affinity",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub strict_affinity: bool,
    #[serde(
        rename = "auto_allocate_blocks",
        default,
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub auto_allocate_blocks: bool,
    #[serde(rename = "maxBlocksPerHost", default, skip_serializing_if = "is_zero")]
    pub max_blocks_per_host: i64,
    #[serde(
        rename = "kubeVirtVMAddressPersistence",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub kube_virt_vm_address_persistence: Option<String>,
    #[serde(rename = "ipCooldownSeconds", default, skip_serializing_if = "is_zero")]
    pub ip_cooldown_seconds: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn block_keys() {
        let cases = [
            (
                "10.0.0.0/26",
                "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26",
            ),
            (
                "fd00:1::/122",
                "/calico/ipam/v2/assignment/ipv6/block/fd00:1::-122",
            ),
        ];
        for (cidr, key) in cases {
            assert_eq!(block_key(&net(cidr)), key);
            assert_eq!(parse_block_key(key).unwrap(), net(cidr));
        }
        assert_eq!(
            block_key(&net("10.0.0.5/26")),
            "/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26"
        );
        assert!(parse_block_key("calico/ipam/v2/assignment/ipv4/block/10.0.0.0-26").is_ok());
        assert!(parse_block_key("/calico/ipam/v2/assignment/ipv6/block/10.0.0.0-26").is_err());
        assert!(parse_block_key("/calico/ipam/v2/assignment/ipv4/block/x").is_err());
        assert_eq!(block_prefix(Some(4)), "/calico/ipam/v2/assignment/ipv4/");
    }

    #[test]
    fn affinity_keys() {
        let k = BlockAffinityKey::host("node-1", net("192.168.3.64/26"));
        let key = k.key();
        assert_eq!(
            key,
            "/calico/ipam/v2/host/node-1/ipv4/block/192.168.3.64-26"
        );
        assert_eq!(BlockAffinityKey::parse(&key).unwrap(), k);
        assert!(BlockAffinityKey::parse("/calico/ipam/v2/host/n/ipv4/block").is_err());
        assert!(BlockAffinityKey::parse("/calico/ipam/v2/other/n/ipv4/block/10.0.0.0-26").is_err());
        assert_eq!(
            block_affinity_prefix(AffinityType::Host, Some("n"), Some(6)),
            "/calico/ipam/v2/host/n/ipv6/block/"
        );
        let v: BlockAffinity =
            serde_json::from_str(r#"{"state":"pendingDeletion","deleted":false}"#).unwrap();
        assert_eq!(v.state, BlockAffinityState::PendingDeletion);
        assert_eq!(
            serde_json::to_string(&BlockAffinity {
                state: BlockAffinityState::Confirmed,
                deleted: false
            })
            .unwrap(),
            r#"{"state":"confirmed","deleted":false}"#
        );
    }

    #[test]
    fn handles_and_config() {
        assert_eq!(
            handle_key("k8s-pod-network.abc"),
            "/calico/ipam/v2/handle/k8s-pod-network.abc"
        );
        assert_eq!(
            parse_handle_key("/calico/ipam/v2/handle/k8s-pod-network.abc").unwrap(),
            "k8s-pod-network.abc"
        );
        assert!(parse_handle_key("/calico/ipam/v2/handle/").is_err());
        let h: IpamHandle =
            serde_json::from_str(r#"{"block":{"10.0.0.0/26":2},"deleted":false}"#).unwrap();
        assert_eq!(h.block["10.0.0.0/26"], 2);
        assert_eq!(ipam_config_key(), "/calico/ipam/v2/config");
        let c = IpamConfig {
            strict_affinity: false,
            auto_allocate_blocks: true,
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"auto_allocate_blocks":true}"#
        );
    }

    #[test]
    fn block_as_calico_writes_it() {
        // A fresh block as Calico stores it: nil attributes are `null`.
        let stored = r#"{"cidr":"10.0.0.0/30","affinity":"host:node1","allocations":[0,null,null,1],"unallocated":[1,2],"attributes":[{"handle_id":"h1","secondary":{"namespace":"ns","node":"node1","pod":"p","timestamp":"t"}},{"handle_id":"ipip-tunnel-addr-node1","secondary":{"node":"node1","type":"ipipTunnelAddress"}}],"sequenceNumber":1700000000000000000,"sequenceNumberForAllocation":{"0":1700000000000000000,"3":1700000000000000001},"deleted":false}"#;
        let b: AllocationBlock = serde_json::from_str(stored).unwrap();
        assert_eq!(b.host(), Some("node1"));
        assert_eq!(b.allocations, vec![Some(0), None, None, Some(1)]);
        assert_eq!(serde_json::to_string(&b).unwrap(), stored);
        let fresh: AllocationBlock = serde_json::from_str(r#"{"cidr":"10.0.0.0/30","affinity":null,"allocations":[null,null,null,null],"unallocated":[0,1,2,3],"attributes":null,"sequenceNumber":5,"sequenceNumberForAllocation":{},"deleted":false,"futureField":1}"#).unwrap();
        assert_eq!(fresh, AllocationBlock::new(net("10.0.0.0/30"), None, 5));
        assert_eq!(
            AllocationBlock::new(net("10.0.0.0/26"), None, 0)
                .unallocated
                .len(),
            64
        );
    }
}
