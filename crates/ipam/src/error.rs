//! Errors of the allocator and the reports.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::block::BlockError;
use crate::pools::PoolError;

/// A failed IPAM operation. Each variant says which operation or record
/// failed; causes are kept as sources.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IpamError {
    /// The datastore failed (unreachable, timed out, refused).
    #[error("IPAM could not {operation} {key}")]
    Datastore {
        operation: &'static str,
        key: String,
        #[source]
        source: calico_datastore::Error,
    },

    /// A stored record is not what Calico writes there.
    #[error("the record at {key} is malformed")]
    Malformed {
        key: String,
        #[source]
        source: serde_json::Error,
    },

    /// A stored record parses but cannot be right (an index out of range,
    /// a time that is not a time).
    #[error("the record at {key} is invalid: {reason}")]
    InvalidRecord { key: String, reason: String },

    #[error(transparent)]
    Pool(#[from] PoolError),

    #[error(transparent)]
    Block(#[from] BlockError),

    /// Calico needs the node's labels to choose pools; calico-node
    /// registers the Node resource at start-up.
    #[error(
        "node {0} does not exist in the datastore (calico-node registers it at start-up; is it running on that host?)"
    )]
    NodeNotFound(String),

    /// Calico's `ErrBlockLimit`.
    #[error("cannot allocate new block due to per host block limit ({limit} blocks)")]
    BlockLimit { limit: u32 },

    /// Every block of the usable pools is taken.
    #[error("no free blocks in pools {pools}")]
    NoFreeBlocks { pools: String },

    /// Another writer kept winning the compare-and-swap.
    #[error("{operation}: max retries hit - excessive concurrent IPAM requests")]
    TooManyRetries { operation: &'static str },

    #[error("the provided IP address {0} is not in a configured pool")]
    NotInPool(IpAddr),

    #[error("IP address {address} is in IP pool {pool:?}, which is not allowed for use {using:?}")]
    UseNotAllowed {
        address: IpAddr,
        pool: String,
        using: calico_model::IpPoolAllowedUse,
    },

    /// Strict affinity forbids using a block another host owns.
    #[error("block {block} is affine to {affinity}, not to {host} (strict affinity)")]
    AffinityMismatch {
        block: IpNet,
        affinity: String,
        host: String,
    },

    #[error("cannot assign from block {block}: it has no affinity and strict affinity is enabled")]
    NoAffinity { block: IpNet },

    #[error("the requested CIDR ({cidr}) is not within any configured pools")]
    CidrNotInPool { cidr: IpNet },

    #[error("the requested CIDR ({cidr}) is smaller than the minimum (a /{block_len} block)")]
    CidrTooSmall { cidr: IpNet, block_len: u8 },

    #[error("block {block} is not empty")]
    BlockNotEmpty { block: IpNet },

    #[error("invalid IPAM configuration: {0}")]
    InvalidConfig(String),

    #[error("IPAM request invalid: {0}")]
    InvalidRequest(String),

    /// Calico's `ErrUseRequired`.
    #[error("hostname must be specified")]
    MissingHostname,
}

impl IpamError {
    pub(crate) fn datastore(
        operation: &'static str,
        key: impl Into<String>,
        source: calico_datastore::Error,
    ) -> IpamError {
        IpamError::Datastore {
            operation,
            key: key.into(),
            source,
        }
    }

    /// Whether the datastore was down or slow, so retrying later may work.
    pub fn is_transient(&self) -> bool {
        matches!(self, IpamError::Datastore { source, .. } if source.is_transient())
    }
}
