//! Giving blocks up: one CIDR's worth for a host, all of a host's blocks
//! (node removal), or every affinity inside a pool.

use calico_datastore::Backend;
use ipnet::IpNet;

use super::Ipam;
use super::claim::{Owner, ReleaseAffinityFailure};
use crate::cidr::{IpVersion, covers};
use crate::error::IpamError;
use crate::pools::{enabled_pool_for_addr, parse_pools};
use crate::record::AffinityType;

/// What an affinity release did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleasedAffinities {
    /// Blocks the host no longer owns (deleted when empty, otherwise left
    /// without affinity).
    pub released: Vec<IpNet>,
    /// Blocks kept because they still hold addresses and emptiness was
    /// required.
    pub not_empty: Vec<IpNet>,
}

impl<B: Backend> Ipam<B> {
    /// Releases `host`'s affinity for every block inside `cidr`, which must
    /// lie in an enabled pool and be at least one block large.
    pub async fn release_affinity(
        &self,
        cidr: &IpNet,
        host: &str,
        must_be_empty: bool,
    ) -> Result<ReleasedAffinities, IpamError> {
        if host.is_empty() {
            return Err(IpamError::MissingHostname);
        }
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let pool = enabled_pool_for_addr(&pools, cidr.network())
            .ok_or(IpamError::CidrNotInPool { cidr: *cidr })?;
        if cidr.prefix_len() > pool.block_len {
            return Err(IpamError::CidrTooSmall {
                cidr: *cidr,
                block_len: pool.block_len,
            });
        }
        let owner = Owner::host(host);
        let blocks: Vec<IpNet> = self
            .store
            .affine_blocks(AffinityType::Host, host, IpVersion::of_net(cidr))
            .await?
            .into_iter()
            .filter(|b| covers(cidr, b))
            .collect();
        let out = self.release_blocks(&owner, &blocks, must_be_empty).await?;
        if let Some(block) = out.not_empty.first() {
            return Err(IpamError::BlockNotEmpty { block: *block });
        }
        Ok(out)
    }

    /// Releases every block affinity of `host` (both families), best
    /// effort: every block is tried, and blocks that are not empty when
    /// emptiness is required are reported, not treated as failures.
    pub async fn release_host_affinities(
        &self,
        host: &str,
        must_be_empty: bool,
    ) -> Result<ReleasedAffinities, IpamError> {
        if host.is_empty() {
            return Err(IpamError::MissingHostname);
        }
        let owner = Owner::host(host);
        let mut blocks = self
            .store
            .affine_blocks(AffinityType::Host, host, IpVersion::V4)
            .await?;
        blocks.extend(
            self.store
                .affine_blocks(AffinityType::Host, host, IpVersion::V6)
                .await?,
        );
        self.release_blocks(&owner, &blocks, must_be_empty).await
    }

    /// Releases every host's affinity for blocks inside `pool` (used when a
    /// pool is deleted or disabled).
    pub async fn release_pool_affinities(
        &self,
        pool: &IpNet,
    ) -> Result<ReleasedAffinities, IpamError> {
        let mut out = ReleasedAffinities::default();
        for kind in [AffinityType::Host, AffinityType::Virtual] {
            for (key, _) in self.store.list_affinities(kind).await? {
                if !covers(pool, &key.cidr) {
                    continue;
                }
                let owner = Owner {
                    kind,
                    host: key.host.clone(),
                };
                let part = self.release_blocks(&owner, &[key.cidr], false).await?;
                out.released.extend(part.released);
                out.not_empty.extend(part.not_empty);
            }
        }
        Ok(out)
    }

    async fn release_blocks(
        &self,
        owner: &Owner,
        blocks: &[IpNet],
        must_be_empty: bool,
    ) -> Result<ReleasedAffinities, IpamError> {
        let config = self.get_config().await?;
        let mut out = ReleasedAffinities::default();
        'blocks: for block in blocks {
            for _ in 0..self.options.retries {
                match self
                    .release_block_affinity(owner, block, must_be_empty, None, &config)
                    .await
                {
                    Ok(()) => {
                        out.released.push(*block);
                        continue 'blocks;
                    }
                    Err(ReleaseAffinityFailure::Lost | ReleaseAffinityFailure::Changed) => continue,
                    Err(ReleaseAffinityFailure::NotEmpty) => {
                        out.not_empty.push(*block);
                        continue 'blocks;
                    }
                    Err(
                        ReleaseAffinityFailure::NotFound | ReleaseAffinityFailure::OwnedElsewhere,
                    ) => continue 'blocks,
                    Err(ReleaseAffinityFailure::Failed(e)) => return Err(e),
                }
            }
            return Err(IpamError::TooManyRetries {
                operation: "release block affinity",
            });
        }
        Ok(out)
    }
}
