//! Taking addresses back: by address ([`Ipam::release_ips`]) or by handle
//! ([`Ipam::release_by_handle`]), and the handle records that index them.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use calico_datastore::Backend;
use ipnet::IpNet;
use tracing::{debug, warn};

use super::Ipam;
use super::IpamConfig;
use super::claim::Owner;
use super::store::Cas;
use crate::block::{ReleaseOptions, sanitize_handle};
use crate::cidr::block_containing;
use crate::error::IpamError;
use crate::pools::{enabled_pool_for_addr, parse_pools, pool_for_addr};
use crate::record::{AffinityType, AllocationBlock, IpamHandle};

/// What [`Ipam::release_ips`] did.
#[derive(Debug, Default)]
pub struct ReleaseOutcome {
    /// Addresses asked for that were not allocated (or were already
    /// released and cooling down).
    pub not_allocated: Vec<IpAddr>,
    /// Requests that were carried out (released, or found not allocated).
    pub processed: Vec<ReleaseOptions>,
    /// Blocks whose requests were refused or failed, with why (a stale
    /// sequence number or handle refuses every request for that block).
    pub errors: Vec<(IpNet, IpamError)>,
}

impl ReleaseOutcome {
    /// How many addresses were actually released.
    pub fn released(&self) -> usize {
        self.processed.len() - self.not_allocated.len()
    }
}

impl<B: Backend> Ipam<B> {
    /// Releases the given addresses (into the released-address cooldown).
    /// Requests are grouped by block, one compare-and-swap write per block.
    pub async fn release_ips(
        &self,
        requests: &[ReleaseOptions],
    ) -> Result<ReleaseOutcome, IpamError> {
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let config = self.get_config().await?;
        let mut by_block: BTreeMap<IpNet, Vec<ReleaseOptions>> = BTreeMap::new();
        let mut outcome = ReleaseOutcome::default();
        let mut all_blocks: Option<Vec<IpNet>> = None;
        for r in requests {
            let mut r = r.clone();
            r.handle = r.handle.map(|h| sanitize_handle(&h).to_owned());
            let block = match pool_for_addr(&pools, r.address) {
                Some(pool) => block_containing(r.address, pool.block_len),
                None => {
                    // Outside every pool: find its block by scanning.
                    if all_blocks.is_none() {
                        all_blocks = Some(
                            self.store
                                .list_blocks(None)
                                .await?
                                .into_iter()
                                .map(|b| b.value.cidr)
                                .collect(),
                        );
                    }
                    all_blocks
                        .as_ref()
                        .and_then(|bs| bs.iter().find(|b| b.contains(&r.address)).copied())
                }
            };
            match block {
                Some(b) => by_block.entry(b).or_default().push(r),
                None => {
                    outcome.not_allocated.push(r.address);
                    outcome.processed.push(r);
                }
            }
        }
        for (cidr, reqs) in by_block {
            match self.release_from_block(&cidr, &reqs, &config).await {
                Ok(not_allocated) => {
                    outcome.not_allocated.extend(not_allocated);
                    outcome.processed.extend(reqs);
                }
                Err(e) => outcome.errors.push((cidr, e)),
            }
        }
        Ok(outcome)
    }

    async fn release_from_block(
        &self,
        cidr: &IpNet,
        requests: &[ReleaseOptions],
        config: &IpamConfig,
    ) -> Result<Vec<IpAddr>, IpamError> {
        for _ in 0..self.options.retries {
            let Some(block) = self.store.get_block(cidr).await? else {
                return Ok(requests.iter().map(|r| r.address).collect());
            };
            let mut value = block.value.clone();
            let now = self.now();
            value.garbage_collect(now, config.ip_cooldown_seconds);
            let released = value.release(requests, now, config.ip_cooldown_seconds)?;
            if released.count == 0 {
                return Ok(released.not_allocated);
            }
            let written = if value.is_empty() && value.affinity.is_none() {
                match self.store.delete_block(cidr, block.revision).await? {
                    Cas::Done(()) => Some(None),
                    Cas::Lost => None,
                }
            } else {
                match self.store.update_block(value, block.revision).await? {
                    Cas::Done(b) => Some(Some(b.value)),
                    Cas::Lost => None,
                }
            };
            let Some(written) = written else { continue };
            for (handle, n) in &released.by_handle {
                if let Err(e) = self
                    .decrement_handle(handle, cidr, *n, Some(written.as_ref()))
                    .await
                {
                    warn!(handle, block = %cidr, error = %e, "failed to decrement handle after release");
                }
            }
            if let Some(b) = &written {
                self.ensure_consistent_affinity(b, config).await;
            }
            return Ok(released.not_allocated);
        }
        Err(IpamError::TooManyRetries {
            operation: "release IPs",
        })
    }

    /// Releases every address of `handle`. Returns how many were released;
    /// a handle that does not exist releases nothing (teardown is
    /// idempotent).
    pub async fn release_by_handle(&self, handle: &str) -> Result<usize, IpamError> {
        let handle = sanitize_handle(handle);
        let Some(record) = self.store.get_handle(handle).await? else {
            return Ok(0);
        };
        let config = self.get_config().await?;
        let mut total = 0;
        for block in record.value.block.keys() {
            let Ok(cidr) = block.parse::<IpNet>() else {
                warn!(
                    handle,
                    block, "handle names an unparseable block; dropping it"
                );
                self.forget_handle_block(handle, block).await?;
                continue;
            };
            total += self.release_handle_in_block(handle, &cidr, &config).await?;
        }
        debug!(handle, released = total, "released by handle");
        Ok(total)
    }

    async fn release_handle_in_block(
        &self,
        handle: &str,
        cidr: &IpNet,
        config: &IpamConfig,
    ) -> Result<usize, IpamError> {
        for _ in 0..self.options.retries {
            let Some(block) = self.store.get_block(cidr).await? else {
                self.forget_handle_block(handle, &cidr.to_string()).await?;
                return Ok(0);
            };
            let mut value = block.value.clone();
            let now = self.now();
            value.garbage_collect(now, config.ip_cooldown_seconds);
            let n = value.release_by_handle(handle, None, now, config.ip_cooldown_seconds);
            if n == 0 {
                self.forget_handle_block(handle, &cidr.to_string()).await?;
                return Ok(0);
            }
            let written = if value.is_empty() && value.affinity.is_none() {
                match self.store.delete_block(cidr, block.revision).await? {
                    Cas::Done(()) => Some(None),
                    Cas::Lost => None,
                }
            } else {
                match self.store.update_block(value, block.revision).await? {
                    Cas::Done(b) => Some(Some(b.value)),
                    Cas::Lost => None,
                }
            };
            let Some(written) = written else { continue };
            if let Err(e) = self
                .decrement_handle(handle, cidr, n, Some(written.as_ref()))
                .await
            {
                warn!(handle, block = %cidr, error = %e, "failed to decrement handle after release");
            }
            if let Some(b) = &written {
                self.ensure_consistent_affinity(b, config).await;
            }
            return Ok(n);
        }
        Err(IpamError::TooManyRetries {
            operation: "release by handle",
        })
    }

    /// Releases the addresses of every handle allocated for `node` (by the
    /// allocations' `node` attribute) whose ID starts with `prefix` and is
    /// not in `keep`. Returns the handles released, sorted. For a CNI
    /// plugin reconciling a node against the containers that still exist.
    pub async fn release_handles_except(
        &self,
        node: &str,
        prefix: &str,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<String>, IpamError> {
        let mut stale = BTreeSet::new();
        for b in self.store.list_blocks(None).await? {
            let block_host = b.value.owner().map(|(_, h)| h.to_owned());
            for (_, _, attr) in b.value.allocated() {
                let Some(attr) = attr else { continue };
                let Some(handle) = attr.handle_id.as_deref().map(sanitize_handle) else {
                    continue;
                };
                let on_node = match attr.active_owner_attrs.get("node") {
                    Some(n) => n == node,
                    None => block_host.as_deref() == Some(node),
                };
                if on_node && handle.starts_with(prefix) && !keep.contains(handle) {
                    stale.insert(handle.to_owned());
                }
            }
        }
        let mut released = Vec::new();
        for handle in stale {
            if self.release_by_handle(&handle).await? > 0 {
                released.push(handle);
            }
        }
        Ok(released)
    }

    /// The addresses assigned to `handle` (none when it does not exist).
    pub async fn get_ips_by_handle(&self, handle: &str) -> Result<Vec<IpAddr>, IpamError> {
        let handle = sanitize_handle(handle);
        let Some(record) = self.store.get_handle(handle).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for block in record.value.block.keys() {
            let Ok(cidr) = block.parse::<IpNet>() else {
                continue;
            };
            if let Some(b) = self.store.get_block(&cidr).await? {
                out.extend(b.value.ips_by_handle(handle));
            }
        }
        Ok(out)
    }

    /// Counts `n` more addresses of `handle` in `block`, creating the
    /// handle if needed.
    pub(crate) async fn increment_handle(
        &self,
        handle: &str,
        block: &IpNet,
        n: usize,
    ) -> Result<(), IpamError> {
        let key = block.to_string();
        // New handles are the common case (one per pod): try to create
        // first, and only read when it exists.
        let fresh = IpamHandle {
            block: BTreeMap::from([(key.clone(), n as i64)]),
            deleted: false,
        };
        for _ in 0..self.options.retries {
            if !self.store.create_handle(handle, &fresh).await?.lost() {
                return Ok(());
            }
            let Some(mut h) = self.store.get_handle(handle).await? else {
                continue;
            };
            *h.value.block.entry(key.clone()).or_default() += n as i64;
            if !self
                .store
                .update_handle(handle, &h.value, h.revision)
                .await?
                .lost()
            {
                return Ok(());
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "increment handle",
        })
    }

    /// Counts `n` fewer addresses of `handle` in `block`, deleting the
    /// handle when it counts nothing. When the block as just written is
    /// given and holds none of the handle's addresses, the handle forgets
    /// the block entirely (a count that drifted high is repaired).
    pub(crate) async fn decrement_handle(
        &self,
        handle: &str,
        block: &IpNet,
        n: usize,
        written: Option<Option<&AllocationBlock>>,
    ) -> Result<(), IpamError> {
        let key = block.to_string();
        let holds_none = match written {
            Some(Some(b)) => b.ips_by_handle(handle).is_empty(),
            Some(None) => true,
            None => false,
        };
        for _ in 0..self.options.retries {
            let Some(mut h) = self.store.get_handle(handle).await? else {
                return Ok(());
            };
            let Some(current) = h.value.block.get(&key).copied() else {
                return Ok(());
            };
            let left = if holds_none {
                0
            } else {
                current.saturating_sub(n as i64)
            };
            if left <= 0 {
                h.value.block.remove(&key);
            } else {
                h.value.block.insert(key.clone(), left);
            }
            let outcome = if h.value.block.is_empty() {
                self.store.delete_handle(handle, h.revision).await?
            } else {
                self.store
                    .update_handle(handle, &h.value, h.revision)
                    .await?
                    .map_unit()
            };
            if !outcome.lost() {
                return Ok(());
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "decrement handle",
        })
    }

    /// Drops `block` from `handle`'s record.
    async fn forget_handle_block(&self, handle: &str, block: &str) -> Result<(), IpamError> {
        for _ in 0..self.options.retries {
            let Some(mut h) = self.store.get_handle(handle).await? else {
                return Ok(());
            };
            if h.value.block.remove(block).is_none() {
                return Ok(());
            }
            let outcome = if h.value.block.is_empty() {
                self.store.delete_handle(handle, h.revision).await?
            } else {
                self.store
                    .update_handle(handle, &h.value, h.revision)
                    .await?
                    .map_unit()
            };
            if !outcome.lost() {
                return Ok(());
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "update handle",
        })
    }

    /// After a release: if the pool holding the block no longer selects
    /// the block's host, give the (now maybe empty) block up.
    async fn ensure_consistent_affinity(&self, block: &AllocationBlock, config: &IpamConfig) {
        let Some((AffinityType::Host, host)) = block.owner() else {
            return;
        };
        let owner = Owner::host(host);
        let result: Result<(), IpamError> = async {
            let Some(labels) = self.store.node_labels(&owner.host).await? else {
                return Ok(());
            };
            let (pools, _) = parse_pools(&self.store.pools().await?);
            let Some(pool) = enabled_pool_for_addr(&pools, block.cidr.network()) else {
                return Ok(());
            };
            if pool.selects_node(&labels)? {
                return Ok(());
            }
            self.release_affinity_retrying(&owner, &block.cidr, true, config)
                .await;
            Ok(())
        }
        .await;
        if let Err(e) = result {
            warn!(block = %block.cidr, error = %e, "could not check the block's affinity after a release");
        }
    }
}

impl<T> Cas<T> {
    fn map_unit(self) -> Cas<()> {
        match self {
            Cas::Done(_) => Cas::Done(()),
            Cas::Lost => Cas::Lost,
        }
    }
}
