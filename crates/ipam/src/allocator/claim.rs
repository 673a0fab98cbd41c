//! Block affinity: claiming a block for a host in two phases, confirming
//! it, finding a block to claim, and giving a block up.
//!
//! The affinity of a host for a block goes `pending → confirmed →
//! pendingDeletion → gone`. A pending affinity is only an intention: the
//! block itself (created with `affinity: host:<name>` by compare-and-swap)
//! decides who owns it.

use std::collections::BTreeMap;

use calico_datastore::Backend;
use ipnet::IpNet;
use tracing::debug;

use super::store::{Cas, Versioned};
use super::{EMPTY_BLOCK_MIN_RECLAIM_AGE_SECS, Ipam, IpamConfig};
use crate::block::affinity_string;
use crate::cidr::{host_seed, random_blocks};
use crate::error::IpamError;
use crate::pools::Pool;
use crate::record::{self, AffinityState, AffinityType, AllocationBlock, BlockAffinity, Time};
use crate::reserved::Reservations;

/// Who a block is affine to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Owner {
    pub kind: AffinityType,
    pub host: String,
}

impl Owner {
    pub fn host(host: &str) -> Owner {
        Owner {
            kind: AffinityType::Host,
            host: host.to_owned(),
        }
    }

    /// `host:<name>`, as blocks record it.
    pub fn affinity(&self) -> String {
        affinity_string(self.kind, &self.host)
    }

    pub fn owns(&self, block: &AllocationBlock) -> bool {
        block.is_affine_to(self.kind, &self.host)
    }
}

/// Why a claim step did not produce a block.
#[derive(Debug)]
pub(crate) enum ClaimFailure {
    /// A compare-and-swap lost: re-read and try again.
    Lost,
    /// Another owner has the block.
    OwnedElsewhere,
    /// Our affinity named a block that is someone else's; it was removed.
    Stale,
    Failed(IpamError),
}

impl From<IpamError> for ClaimFailure {
    fn from(e: IpamError) -> Self {
        ClaimFailure::Failed(e)
    }
}

/// Why giving up an affinity did not happen.
#[derive(Debug)]
pub(crate) enum ReleaseAffinityFailure {
    /// No such affinity, or no such block.
    NotFound,
    OwnedElsewhere,
    NotEmpty,
    /// The block changed since the caller looked.
    Changed,
    Lost,
    Failed(IpamError),
}

impl From<IpamError> for ReleaseAffinityFailure {
    fn from(e: IpamError) -> Self {
        ReleaseAffinityFailure::Failed(e)
    }
}

/// One existing block as seen when looking for a block to claim.
#[derive(Debug, Clone)]
struct BlockInfo {
    num_free: usize,
    owner: Option<Owner>,
    empty: bool,
    claim_time: Option<Time>,
    sequence_number: u64,
}

impl<B: Backend> Ipam<B> {
    /// A new block's first sequence number: the clock in nanoseconds, so a
    /// deleted and re-created block never repeats an old allocation's
    /// sequence number.
    fn initial_sequence_number(&self) -> u64 {
        self.now().timestamp_nanos_opt().map_or(0, |n| n as u64)
    }

    /// The block an affinity points at, creating it if it does not exist
    /// and confirming the affinity if it is not confirmed yet. An affinity
    /// for a block owned by someone else is stale and is deleted.
    pub(crate) async fn block_from_affinity(
        &self,
        owner: &Owner,
        cidr: &IpNet,
        aff: Versioned<BlockAffinity>,
        config: &IpamConfig,
    ) -> Result<Versioned<AllocationBlock>, ClaimFailure> {
        let Some(block) = self.store.get_block(cidr).await? else {
            debug!(%cidr, host = %owner.host, "affine block does not exist; claiming it");
            let pending = record::affinity_with_state(AffinityState::Pending);
            let aff = match self
                .store
                .update_affinity(owner.kind, &owner.host, cidr, &pending, aff.revision)
                .await?
            {
                Cas::Done(a) => a,
                Cas::Lost => return Err(ClaimFailure::Lost),
            };
            return self.claim_affine_block(owner, cidr, aff, config).await;
        };

        if !owner.owns(&block.value) {
            debug!(%cidr, host = %owner.host, affinity = ?block.value.affinity, "stale affinity; deleting it");
            let _ = self
                .store
                .delete_affinity(owner.kind, &owner.host, cidr, aff.revision)
                .await?;
            return Err(ClaimFailure::Stale);
        }

        if !matches!(
            aff.value.state,
            AffinityState::Confirmed | AffinityState::Unset
        ) {
            // Re-mark as pending, bump the block's revision so any other
            // process working from an older read of it has to re-read,
            // then confirm.
            let pending = record::affinity_with_state(AffinityState::Pending);
            let aff = match self
                .store
                .update_affinity(owner.kind, &owner.host, cidr, &pending, aff.revision)
                .await?
            {
                Cas::Done(a) => a,
                Cas::Lost => return Err(ClaimFailure::Lost),
            };
            let mut value = block.value;
            value.garbage_collect(self.now(), config.ip_cooldown_seconds);
            let block = match self.store.update_block(value, block.revision).await? {
                Cas::Done(b) => b,
                Cas::Lost => return Err(ClaimFailure::Lost),
            };
            let confirmed = record::affinity_with_state(AffinityState::Confirmed);
            if self
                .store
                .update_affinity(owner.kind, &owner.host, cidr, &confirmed, aff.revision)
                .await?
                .lost()
            {
                return Err(ClaimFailure::Lost);
            }
            return Ok(block);
        }
        Ok(block)
    }

    /// Creates the block for a pending affinity and confirms it. If the
    /// block already exists and is ours (another process on this host got
    /// there first), confirms and uses it; if it is someone else's, deletes
    /// our pending affinity.
    pub(crate) async fn claim_affine_block(
        &self,
        owner: &Owner,
        cidr: &IpNet,
        aff: Versioned<BlockAffinity>,
        config: &IpamConfig,
    ) -> Result<Versioned<AllocationBlock>, ClaimFailure> {
        let now = self.now();
        let fresh = AllocationBlock::new_empty(
            *cidr,
            Some(owner.affinity()),
            Some(now),
            self.initial_sequence_number(),
        );
        match self.store.create_block(&fresh).await? {
            Cas::Done(block) => {
                debug!(%cidr, host = %owner.host, "created block");
                self.confirm_affinity(owner, cidr, aff).await?;
                Ok(block)
            }
            Cas::Lost => {
                let Some(mut existing) = self.store.get_block(cidr).await? else {
                    // Created and deleted again under us: start over.
                    return Err(ClaimFailure::Lost);
                };
                existing
                    .value
                    .garbage_collect(now, config.ip_cooldown_seconds);
                if owner.owns(&existing.value) {
                    self.confirm_affinity(owner, cidr, aff).await?;
                    return Ok(existing);
                }
                debug!(%cidr, host = %owner.host, "block owned by another host; dropping our pending affinity");
                let _ = self
                    .store
                    .delete_affinity(owner.kind, &owner.host, cidr, aff.revision)
                    .await?;
                Err(ClaimFailure::OwnedElsewhere)
            }
        }
    }

    async fn confirm_affinity(
        &self,
        owner: &Owner,
        cidr: &IpNet,
        aff: Versioned<BlockAffinity>,
    ) -> Result<(), ClaimFailure> {
        if aff.value.state == AffinityState::Confirmed {
            return Ok(());
        }
        let confirmed = record::affinity_with_state(AffinityState::Confirmed);
        match self
            .store
            .update_affinity(owner.kind, &owner.host, cidr, &confirmed, aff.revision)
            .await?
        {
            Cas::Done(_) => Ok(()),
            Cas::Lost => {
                // Another process of this host may have confirmed it.
                match self
                    .store
                    .get_affinity(owner.kind, &owner.host, cidr)
                    .await?
                {
                    Some(a) if a.value.state == AffinityState::Confirmed => Ok(()),
                    _ => Err(ClaimFailure::Lost),
                }
            }
        }
    }

    /// Creates a pending affinity for `cidr`, or returns the existing one
    /// (re-marked pending unless it is confirmed).
    pub(crate) async fn pending_affinity(
        &self,
        owner: &Owner,
        cidr: &IpNet,
    ) -> Result<Versioned<BlockAffinity>, ClaimFailure> {
        let pending = record::affinity_with_state(AffinityState::Pending);
        if let Cas::Done(a) = self
            .store
            .create_affinity(owner.kind, &owner.host, cidr, &pending)
            .await?
        {
            return Ok(a);
        }
        let Some(existing) = self
            .store
            .get_affinity(owner.kind, &owner.host, cidr)
            .await?
        else {
            return Err(ClaimFailure::Lost);
        };
        if existing.value.state == AffinityState::Confirmed {
            return Ok(existing);
        }
        match self
            .store
            .update_affinity(owner.kind, &owner.host, cidr, &pending, existing.revision)
            .await?
        {
            Cas::Done(a) => Ok(a),
            Cas::Lost => Err(ClaimFailure::Lost),
        }
    }

    /// A block to claim in `pools`: one that does not exist yet, or one of
    /// ours with room, walked in this host's order. When every block
    /// exists, an empty block claimed by another host more than a minute
    /// ago is reclaimed. `None` when nothing is left.
    pub(crate) async fn find_usable_block(
        &self,
        owner: &Owner,
        pools: &[Pool],
        reservations: &Reservations,
        config: &IpamConfig,
    ) -> Result<Option<IpNet>, IpamError> {
        let now = self.now();
        let mut existing: BTreeMap<IpNet, BlockInfo> = BTreeMap::new();
        for mut b in self
            .store
            .list_blocks(pools.first().map(Pool::version))
            .await?
        {
            b.value.garbage_collect(now, config.ip_cooldown_seconds);
            let owner = b.value.owner().map(|(kind, host)| Owner {
                kind,
                host: host.to_owned(),
            });
            existing.insert(
                b.value.cidr,
                BlockInfo {
                    num_free: b.value.num_free(reservations),
                    owner,
                    empty: b.value.is_empty(),
                    claim_time: b.value.affinity_claim_time,
                    sequence_number: b.value.sequence_number,
                },
            );
        }

        let mut empty_blocks = Vec::new();
        for pool in pools {
            let seed = host_seed(&owner.host);
            for subnet in random_blocks(&pool.cidr, pool.block_len, seed) {
                if reservations.covers(&subnet) {
                    continue;
                }
                match existing.get(&subnet) {
                    None => return Ok(Some(subnet)),
                    Some(info) if info.owner.as_ref() == Some(owner) && info.num_free > 0 => {
                        return Ok(Some(subnet));
                    }
                    Some(info) if info.empty && info.num_free > 0 => {
                        empty_blocks.push((subnet, info.clone()))
                    }
                    Some(_) => {}
                }
            }
        }

        for (cidr, info) in empty_blocks {
            let age = info
                .claim_time
                .map_or(i64::MAX, |t| (now - t).num_seconds());
            if age < EMPTY_BLOCK_MIN_RECLAIM_AGE_SECS {
                continue;
            }
            // An empty block with no owner is deleted by whoever empties
            // it; there is no affinity to take over.
            let Some(previous) = info.owner else { continue };
            match self
                .release_block_affinity(&previous, &cidr, true, Some(info.sequence_number), config)
                .await
            {
                Ok(()) => {
                    debug!(%cidr, from = %previous.host, to = %owner.host, "reclaimed empty block");
                    return Ok(Some(cidr));
                }
                Err(ReleaseAffinityFailure::Failed(e)) if e.is_transient() => return Err(e),
                Err(_) => continue,
            }
        }
        Ok(None)
    }

    /// Gives up `owner`'s affinity for `cidr`: the affinity is marked
    /// pendingDeletion, the block is deleted if empty or made unaffine
    /// otherwise, then the affinity is deleted.
    pub(crate) async fn release_block_affinity(
        &self,
        owner: &Owner,
        cidr: &IpNet,
        require_empty: bool,
        required_sequence: Option<u64>,
        config: &IpamConfig,
    ) -> Result<(), ReleaseAffinityFailure> {
        let Some(aff) = self
            .store
            .get_affinity(owner.kind, &owner.host, cidr)
            .await?
        else {
            return Err(ReleaseAffinityFailure::NotFound);
        };
        let Some(block) = self.store.get_block(cidr).await? else {
            return Err(ReleaseAffinityFailure::NotFound);
        };
        let mut value = block.value;
        if required_sequence.is_some_and(|s| s != value.sequence_number) {
            return Err(ReleaseAffinityFailure::Changed);
        }
        value.garbage_collect(self.now(), config.ip_cooldown_seconds);
        if value.affinity.is_some() && !owner.owns(&value) {
            let _ = self
                .store
                .delete_affinity(owner.kind, &owner.host, cidr, aff.revision)
                .await?;
            return Err(ReleaseAffinityFailure::OwnedElsewhere);
        }
        let empty = value.is_empty();
        if require_empty && !empty {
            return Err(ReleaseAffinityFailure::NotEmpty);
        }
        let deleting = record::affinity_with_state(AffinityState::PendingDeletion);
        let aff = match self
            .store
            .update_affinity(owner.kind, &owner.host, cidr, &deleting, aff.revision)
            .await?
        {
            Cas::Done(a) => a,
            Cas::Lost => return Err(ReleaseAffinityFailure::Lost),
        };
        if empty {
            if self.store.delete_block(cidr, block.revision).await?.lost() {
                return Err(ReleaseAffinityFailure::Lost);
            }
        } else {
            value.affinity = None;
            value.affinity_claim_time = None;
            value.host_affinity = None;
            if self.store.update_block(value, block.revision).await?.lost() {
                return Err(ReleaseAffinityFailure::Lost);
            }
        }
        // Gone already is fine.
        let _ = self
            .store
            .delete_affinity(owner.kind, &owner.host, cidr, aff.revision)
            .await?;
        Ok(())
    }
}
