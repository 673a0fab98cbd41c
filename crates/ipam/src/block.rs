//! Allocation inside one block, with no I/O: handing out addresses from the
//! free queue (skipping reservations), assigning a named address, releasing
//! by address or by handle into the released-address cooldown, and
//! returning cooled-down addresses to the free queue.
//!
//! The rules are Calico's:
//!
//! - Free ordinals form a FIFO queue: allocation takes from the head,
//!   deallocation appends to the tail, so the address free the longest is
//!   reused first.
//! - Releasing does not free: the allocation is re-pointed at an attribute
//!   holding only `releasedAt`; [`AllocationBlock::garbage_collect`] frees
//!   it once `ipCooldownSeconds` have passed (at once when 0).
//! - Each allocation records the block's sequence number when it was made;
//!   a release naming a different sequence number is refused, so a stale
//!   release can never free an address handed to someone else since.
//!
//! Every function takes the time it needs as an argument.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::cidr::{address_at, block_len_to_size, ordinal_of};
use crate::record::{AffinityType, AllocationAttribute, AllocationBlock, Time};
use crate::reserved::Reservations;

/// The handle Calico on Windows gives the addresses it reserves at block
/// edges; they do not make a block non-empty.
pub const WINDOWS_RESERVED_HANDLE: &str = "windows-reserved-ipam-handle";

/// Which address to release, and (recommended) the handle and sequence
/// number the caller believes it has, so a stale request cannot release an
/// address that has been reallocated since (what Calico calls
/// `ReleaseOptions`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReleaseOptions {
    pub address: IpAddr,
    pub handle: Option<String>,
    pub sequence_number: Option<u64>,
}

impl ReleaseOptions {
    pub fn address(address: IpAddr) -> ReleaseOptions {
        ReleaseOptions {
            address,
            handle: None,
            sequence_number: None,
        }
    }
}

/// Why a block operation refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("{address} is not in block {block}")]
    NotInBlock { address: IpAddr, block: IpNet },

    #[error("{address} is already assigned in block {block}")]
    AlreadyAssigned { address: IpAddr, block: IpNet },

    /// The allocation changed since the caller looked (Calico's
    /// `ErrorBadSequenceNumber`): skip it and re-evaluate later.
    #[error(
        "release of {address} refused: sequence number {requested} does not match the allocation's {actual}"
    )]
    SequenceMismatch {
        address: IpAddr,
        requested: u64,
        actual: u64,
    },

    /// The address belongs to another handle now (Calico's
    /// `ErrorBadHandle`).
    #[error("release of {address} refused: it belongs to handle {actual:?}, not {requested:?}")]
    HandleMismatch {
        address: IpAddr,
        requested: String,
        actual: String,
    },
}

/// What [`AllocationBlock::release`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Released {
    /// Addresses asked for that were not allocated (or already cooling
    /// down).
    pub not_allocated: Vec<IpAddr>,
    /// How many addresses each handle lost.
    pub by_handle: BTreeMap<String, usize>,
    /// How many addresses were released.
    pub count: usize,
}

/// What an address in a block is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Occupancy<'a> {
    Free,
    /// Released and waiting out the cooldown.
    CoolingDown,
    Assigned(&'a AllocationAttribute),
}

/// Drops the junk some old migrations appended to handles (everything from
/// a carriage return on), as Calico does before comparing them.
pub fn sanitize_handle(handle: &str) -> &str {
    handle.split('\r').next().unwrap_or("")
}

/// The affinity string of an owner: `host:<name>`.
pub(crate) fn affinity_string(kind: AffinityType, host: &str) -> String {
    format!("{}:{host}", kind.as_str())
}

impl AllocationBlock {
    /// An empty block with every ordinal free, in order.
    pub(crate) fn new_empty(
        cidr: IpNet,
        affinity: Option<String>,
        claim_time: Option<Time>,
        sequence_number: u64,
    ) -> AllocationBlock {
        let cidr = cidr.trunc();
        let size = block_len_to_size(&cidr);
        AllocationBlock {
            cidr,
            affinity,
            affinity_claim_time: claim_time,
            allocations: vec![None; size],
            unallocated: (0..size).collect(),
            attributes: Vec::new(),
            sequence_number,
            sequence_number_for_allocation: BTreeMap::new(),
            deleted: false,
            host_affinity: None,
        }
    }

    pub(crate) fn num_addresses(&self) -> usize {
        block_len_to_size(&self.cidr)
    }

    /// The owner this block is affine to, if any (an old-style bare
    /// `hostAffinity` reads as a host).
    pub(crate) fn owner(&self) -> Option<(AffinityType, &str)> {
        match self.affinity.as_deref() {
            Some(a) => {
                if let Some(h) = a.strip_prefix("host:") {
                    Some((AffinityType::Host, h))
                } else {
                    a.strip_prefix("virtual:")
                        .map(|h| (AffinityType::Virtual, h))
                }
            }
            None => self
                .host_affinity
                .as_deref()
                .map(|h| (AffinityType::Host, h)),
        }
    }

    pub(crate) fn is_affine_to(&self, kind: AffinityType, host: &str) -> bool {
        self.owner() == Some((kind, host))
    }

    fn ordinal_key(ordinal: usize) -> String {
        ordinal.to_string()
    }

    /// The block's sequence number when `ordinal` was allocated (0 when the
    /// block predates per-ordinal sequence numbers).
    pub(crate) fn sequence_for(&self, ordinal: usize) -> u64 {
        self.sequence_number_for_allocation
            .get(&Self::ordinal_key(ordinal))
            .copied()
            .unwrap_or(0)
    }

    fn stamp_sequence(&mut self, ordinal: usize) {
        self.sequence_number_for_allocation
            .insert(Self::ordinal_key(ordinal), self.sequence_number);
    }

    fn find_or_add_attribute(
        &mut self,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
    ) -> usize {
        let wanted = AllocationAttribute {
            handle_id: handle.map(str::to_owned),
            active_owner_attrs: attrs.clone(),
            ..Default::default()
        };
        if let Some(i) = self.attributes.iter().position(|a| *a == wanted) {
            return i;
        }
        self.attributes.push(wanted);
        self.attributes.len() - 1
    }

    /// Hands out up to `num` free addresses, oldest-free first, skipping
    /// reserved ones (which keep their place in the queue).
    pub(crate) fn auto_assign(
        &mut self,
        num: usize,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
        reservations: &Reservations,
    ) -> Vec<IpAddr> {
        let mut assigned = Vec::new();
        if num == 0 {
            return assigned;
        }
        let check_reserved = reservations.touches(&self.cidr);
        let mut attr_index = None;
        let mut remaining = Vec::with_capacity(self.unallocated.len());
        let queue = std::mem::take(&mut self.unallocated);
        for ordinal in queue {
            // A corrupt queue entry (out of range, or already allocated)
            // is never handed out; dropping it here heals the block.
            if ordinal >= self.allocations.len() || self.allocations[ordinal].is_some() {
                continue;
            }
            if assigned.len() >= num {
                remaining.push(ordinal);
                continue;
            }
            let addr = address_at(&self.cidr, ordinal);
            if check_reserved && reservations.contains(addr) {
                remaining.push(ordinal);
                continue;
            }
            let idx = *attr_index.get_or_insert_with(|| self.find_or_add_attribute(handle, attrs));
            self.allocations[ordinal] = Some(idx);
            self.stamp_sequence(ordinal);
            assigned.push(addr);
        }
        self.unallocated = remaining;
        assigned
    }

    /// Assigns one named address.
    pub(crate) fn assign(
        &mut self,
        address: IpAddr,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
    ) -> Result<(), BlockError> {
        let ordinal = ordinal_of(&self.cidr, address).ok_or(BlockError::NotInBlock {
            address,
            block: self.cidr,
        })?;
        if self.allocations[ordinal].is_some() {
            return Err(BlockError::AlreadyAssigned {
                address,
                block: self.cidr,
            });
        }
        let idx = self.find_or_add_attribute(handle, attrs);
        self.allocations[ordinal] = Some(idx);
        self.stamp_sequence(ordinal);
        self.unallocated.retain(|&o| o != ordinal);
        Ok(())
    }

    /// What `address` is doing in this block.
    pub(crate) fn occupancy(&self, address: IpAddr) -> Option<Occupancy<'_>> {
        let ordinal = ordinal_of(&self.cidr, address)?;
        Some(self.occupancy_of(ordinal))
    }

    pub(crate) fn occupancy_of(&self, ordinal: usize) -> Occupancy<'_> {
        match self.allocations.get(ordinal).copied().flatten() {
            None => Occupancy::Free,
            Some(idx) => match self.attributes.get(idx) {
                Some(a) if a.released_at.is_some() => Occupancy::CoolingDown,
                Some(a) => Occupancy::Assigned(a),
                None => Occupancy::CoolingDown,
            },
        }
    }

    /// The sanitized handle of an assigned ordinal.
    fn handle_of(&self, ordinal: usize) -> Option<&str> {
        match self.occupancy_of(ordinal) {
            Occupancy::Assigned(a) => a.handle_id.as_deref().map(sanitize_handle),
            _ => None,
        }
    }

    fn add_cooldown_attribute(&mut self, now: Time) -> usize {
        self.attributes.push(AllocationAttribute {
            released_at: Some(now),
            ..Default::default()
        });
        self.attributes.len() - 1
    }

    /// Releases the given addresses (all of which must be in this block)
    /// into cooldown, then frees whatever has cooled down. All or nothing:
    /// a sequence-number or handle mismatch on any address refuses the
    /// whole request and leaves the block untouched.
    pub(crate) fn release(
        &mut self,
        requests: &[ReleaseOptions],
        now: Time,
        cooldown_seconds: u32,
    ) -> Result<Released, BlockError> {
        let unique: BTreeMap<IpAddr, &ReleaseOptions> =
            requests.iter().map(|r| (r.address, r)).collect();
        let mut out = Released::default();
        let mut ordinals = Vec::new();
        for (&address, req) in &unique {
            let ordinal = ordinal_of(&self.cidr, address).ok_or(BlockError::NotInBlock {
                address,
                block: self.cidr,
            })?;
            if let Some(requested) = req.sequence_number {
                let actual = self.sequence_for(ordinal);
                if requested != actual {
                    return Err(BlockError::SequenceMismatch {
                        address,
                        requested,
                        actual,
                    });
                }
            }
            if !matches!(self.occupancy_of(ordinal), Occupancy::Assigned(_)) {
                out.not_allocated.push(address);
                continue;
            }
            let actual = self.handle_of(ordinal).unwrap_or("").to_owned();
            if let Some(requested) = req
                .handle
                .as_deref()
                .map(sanitize_handle)
                .filter(|h| !h.is_empty())
            {
                if requested != actual {
                    return Err(BlockError::HandleMismatch {
                        address,
                        requested: requested.to_owned(),
                        actual,
                    });
                }
            }
            if !actual.is_empty() {
                *out.by_handle.entry(actual).or_default() += 1;
            }
            ordinals.push(ordinal);
        }
        if !ordinals.is_empty() {
            let idx = self.add_cooldown_attribute(now);
            for &o in &ordinals {
                self.allocations[o] = Some(idx);
                self.stamp_sequence(o);
            }
            out.count = ordinals.len();
            self.garbage_collect(now, cooldown_seconds);
        }
        Ok(out)
    }

    /// Releases every address of `handle` (only those allocated at
    /// `sequence_number`, when given). Returns how many were released.
    pub(crate) fn release_by_handle(
        &mut self,
        handle: &str,
        sequence_number: Option<u64>,
        now: Time,
        cooldown_seconds: u32,
    ) -> usize {
        let handle = sanitize_handle(handle);
        let targets: Vec<usize> = (0..self.allocations.len())
            .filter(|&o| self.handle_of(o) == Some(handle))
            .filter(|&o| sequence_number.is_none_or(|s| s == self.sequence_for(o)))
            .collect();
        if targets.is_empty() {
            return 0;
        }
        let idx = self.add_cooldown_attribute(now);
        for &o in &targets {
            self.allocations[o] = Some(idx);
            self.stamp_sequence(o);
        }
        self.garbage_collect(now, cooldown_seconds);
        targets.len()
    }

    /// Frees every released address whose cooldown has passed (appending
    /// it to the free queue) and drops attributes nothing points at any
    /// more. Returns whether the block changed.
    pub(crate) fn garbage_collect(&mut self, now: Time, cooldown_seconds: u32) -> bool {
        let deadline = now - chrono::Duration::seconds(i64::from(cooldown_seconds));
        let mut changed = false;
        let mut used = BTreeSet::new();
        for o in 0..self.allocations.len() {
            let Some(idx) = self.allocations[o] else {
                continue;
            };
            let released_at = self.attributes.get(idx).and_then(|a| a.released_at);
            match released_at {
                Some(t) if t <= deadline => {
                    self.allocations[o] = None;
                    self.unallocated.push(o);
                    self.sequence_number_for_allocation
                        .remove(&Self::ordinal_key(o));
                    changed = true;
                }
                _ => {
                    used.insert(idx);
                }
            }
        }
        if used.len() != self.attributes.len() {
            let mut remap = vec![None; self.attributes.len()];
            let mut kept = Vec::with_capacity(used.len());
            for (old, attr) in std::mem::take(&mut self.attributes).into_iter().enumerate() {
                if used.contains(&old) {
                    remap[old] = Some(kept.len());
                    kept.push(attr);
                }
            }
            self.attributes = kept;
            for a in self.allocations.iter_mut().flatten() {
                // Every allocation's index is in `used`, so it maps.
                if let Some(new) = remap.get(*a).copied().flatten() {
                    *a = new;
                }
            }
            changed = true;
        }
        changed
    }

    /// Free addresses that may still be handed out (reserved ones are not
    /// counted).
    pub(crate) fn num_free(&self, reservations: &Reservations) -> usize {
        if reservations.covers(&self.cidr) {
            return 0;
        }
        if !reservations.touches(&self.cidr) {
            return self.unallocated.len();
        }
        self.unallocated
            .iter()
            .filter(|&&o| !reservations.contains(address_at(&self.cidr, o)))
            .count()
    }

    /// Allocated (or cooling-down) addresses.
    #[cfg(test)]
    pub(crate) fn num_in_use(&self) -> usize {
        self.allocations.iter().filter(|a| a.is_some()).count()
    }

    /// Addresses of the block that a reservation covers, allocated or not.
    pub(crate) fn num_reserved(&self, reservations: &Reservations) -> usize {
        usize::try_from(reservations.count_in(&self.cidr)).unwrap_or(usize::MAX)
    }

    /// True when nothing but Windows' edge reservations is allocated.
    pub(crate) fn is_empty(&self) -> bool {
        self.allocations.iter().flatten().all(|&idx| {
            self.attributes
                .get(idx)
                .and_then(|a| a.handle_id.as_deref())
                .is_some_and(|h| h.eq_ignore_ascii_case(WINDOWS_RESERVED_HANDLE))
        })
    }

    /// Addresses assigned to `handle`.
    pub(crate) fn ips_by_handle(&self, handle: &str) -> Vec<IpAddr> {
        let handle = sanitize_handle(handle);
        (0..self.allocations.len())
            .filter(|&o| self.handle_of(o) == Some(handle))
            .map(|o| address_at(&self.cidr, o))
            .collect()
    }

    /// Every allocated ordinal with its address and attribute.
    pub(crate) fn allocated(
        &self,
    ) -> impl Iterator<Item = (usize, IpAddr, Option<&AllocationAttribute>)> + '_ {
        self.allocations.iter().enumerate().filter_map(|(o, a)| {
            a.map(|idx| (o, address_at(&self.cidr, o), self.attributes.get(idx)))
        })
    }

    /// The structural checks `calicoctl ipam check` applies to a block.
    pub(crate) fn validate(&self, now: Time) -> Result<(), String> {
        let size = self.num_addresses();
        if self.allocations.len() != size {
            return Err(format!(
                "allocations array has {} entries but the block has {size} addresses",
                self.allocations.len()
            ));
        }
        let mut seen_attrs = BTreeSet::new();
        let mut seen_ordinals = BTreeSet::new();
        for (o, a) in self.allocations.iter().enumerate() {
            let Some(idx) = *a else { continue };
            if idx >= self.attributes.len() {
                return Err(format!(
                    "allocation {o} indexes a nonexistent attribute {idx}"
                ));
            }
            seen_attrs.insert(idx);
            seen_ordinals.insert(o);
        }
        for (i, attr) in self.attributes.iter().enumerate() {
            if !seen_attrs.contains(&i) {
                return Err(format!(
                    "attribute index {i} exists but is not indexed by an allocation"
                ));
            }
            if attr.released_at.is_some_and(|t| t > now) {
                return Err(format!(
                    "attribute index {i} has releasedAt in the future, suggesting clock skew"
                ));
            }
        }
        let mut seen_free = BTreeSet::new();
        for &o in &self.unallocated {
            if o >= size {
                return Err(format!(
                    "ordinal {o} appears in the Unallocated array but is out of the block"
                ));
            }
            if !seen_free.insert(o) {
                return Err(format!(
                    "ordinal {o} appears more than once in Unallocated array"
                ));
            }
            if seen_ordinals.contains(&o) {
                return Err(format!(
                    "ordinal {o} is allocated but appears in Unallocated"
                ));
            }
        }
        if self.unallocated.len() + seen_ordinals.len() != size {
            return Err(format!(
                "expected {size} addresses in this block, but Unallocated ({}) + Allocated ({}) = {}",
                self.unallocated.len(),
                seen_ordinals.len(),
                self.unallocated.len() + seen_ordinals.len()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
