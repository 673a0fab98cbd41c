//! Handing out addresses: [`Ipam::auto_assign`] (Calico's `AutoAssign`)
//! and [`Ipam::assign_ip`] (a named address).
//!
//! Auto-assignment per family: choose the pools; try the host's affine
//! blocks; when they are full, claim a new block (up to the host's block
//! limit); and, unless strict affinity is on, borrow from other hosts'
//! blocks as a last resort.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::IpAddr;

use calico_datastore::Backend;
use calico_model::IpPoolAllowedUse;
use ipnet::IpNet;
use tracing::{debug, warn};

use super::claim::{ClaimFailure, Owner, ReleaseAffinityFailure};
use super::store::Versioned;
use super::{DEFAULT_MAX_BLOCKS_PER_HOST, Ipam, IpamConfig};
use crate::cidr::{IpVersion, block_containing, host_seed, random_blocks};
use crate::error::IpamError;
use crate::pools::{
    Pool, PoolRequest, block_in_pools, enabled_pool_for_addr, parse_pools, select_pools,
};
use crate::record::{AffinityType, AllocationBlock, BlockAffinity};
use crate::reserved::Reservations;

/// What to allocate (Calico's `AutoAssignArgs`).
#[derive(Debug, Clone)]
pub struct AutoAssignArgs {
    pub num4: usize,
    pub num6: usize,
    /// Groups the addresses for later lookup and release, e.g.
    /// `k8s-pod-network.<containerID>` (see [`crate::handles`]).
    pub handle: Option<String>,
    /// Stored with each address: `node`, `namespace`, `pod`, `timestamp`...
    pub attrs: BTreeMap<String, String>,
    /// The node asking. Required.
    pub hostname: String,
    /// Pools to use instead of automatic selection.
    pub ipv4_pools: Vec<IpNet>,
    pub ipv6_pools: Vec<IpNet>,
    /// Per-request cap on this host's blocks (0: the cluster setting).
    pub max_blocks_per_host: u32,
    pub intended_use: IpPoolAllowedUse,
    /// The pod namespace's labels, for pools' `namespaceSelector`.
    pub namespace_labels: Option<BTreeMap<String, String>>,
}

impl Default for AutoAssignArgs {
    fn default() -> Self {
        AutoAssignArgs {
            num4: 0,
            num6: 0,
            handle: None,
            attrs: BTreeMap::new(),
            hostname: String::new(),
            ipv4_pools: Vec::new(),
            ipv6_pools: Vec::new(),
            max_blocks_per_host: 0,
            intended_use: IpPoolAllowedUse::Workload,
            namespace_labels: None,
        }
    }
}

/// The addresses of one family handed out by one request. Each address
/// carries its block's prefix length (as Calico returns them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignments {
    pub version: IpVersion,
    pub ips: Vec<IpNet>,
    pub requested: usize,
    /// Why fewer than requested were handed out, if so.
    pub messages: Vec<String>,
}

impl Assignments {
    fn new(version: IpVersion, requested: usize) -> Assignments {
        Assignments {
            version,
            ips: Vec::new(),
            requested,
            messages: Vec::new(),
        }
    }

    fn note(&mut self, msg: String) {
        if !self.messages.contains(&msg) {
            self.messages.push(msg);
        }
    }

    /// The bare addresses.
    pub fn addresses(&self) -> Vec<IpAddr> {
        self.ips.iter().map(IpNet::addr).collect()
    }

    pub fn is_complete(&self) -> bool {
        self.ips.len() >= self.requested
    }

    /// Calico's message for a request only partly met, e.g. `Assigned 0
    /// out of 1 requested IPv4 addresses; No IPs available in pools:
    /// [10.0.0.0/30]`.
    pub fn partial_fulfillment_error(&self) -> Option<String> {
        if self.is_complete() {
            return None;
        }
        let mut s = format!(
            "Assigned {} out of {} requested IPv{} addresses",
            self.ips.len(),
            self.requested,
            self.version.number()
        );
        for m in &self.messages {
            s.push_str("; ");
            s.push_str(m);
        }
        Some(s)
    }
}

/// Both families' results of [`Ipam::auto_assign`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoAssigned {
    pub v4: Assignments,
    pub v6: Assignments,
}

impl AutoAssigned {
    /// Every address handed out, IPv4 first.
    pub fn addresses(&self) -> Vec<IpAddr> {
        let mut all = self.v4.addresses();
        all.extend(self.v6.addresses());
        all
    }
}

/// An auto-assignment that failed part way, with what it had handed out
/// (the caller should release those, by handle).
#[derive(Debug)]
pub struct AutoAssignError {
    pub assigned: AutoAssigned,
    pub error: IpamError,
}

impl fmt::Display for AutoAssignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "auto-assign failed after assigning {} IPv4 and {} IPv6 addresses",
            self.assigned.v4.ips.len(),
            self.assigned.v6.ips.len()
        )
    }
}

impl std::error::Error for AutoAssignError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// A named address to assign (Calico's `AssignIPArgs`).
#[derive(Debug, Clone)]
pub struct AssignIpArgs {
    pub ip: IpAddr,
    pub handle: Option<String>,
    pub attrs: BTreeMap<String, String>,
    pub hostname: String,
    /// When set, the containing pool must allow this use.
    pub intended_use: Option<IpPoolAllowedUse>,
}

/// Why assigning from one block did not work.
#[derive(Debug)]
pub(crate) enum AssignFailure {
    Lost,
    Failed(IpamError),
}

impl From<IpamError> for AssignFailure {
    fn from(e: IpamError) -> Self {
        AssignFailure::Failed(e)
    }
}

/// Why no block could be found or claimed.
#[derive(Debug)]
enum FindFailure {
    NoFreeBlocks,
    BlockLimit,
    Failed(IpamError),
}

fn owner_for(use_for: IpPoolAllowedUse, host: &str) -> Owner {
    Owner {
        kind: if use_for == IpPoolAllowedUse::LoadBalancer {
            AffinityType::Virtual
        } else {
            AffinityType::Host
        },
        host: host.to_owned(),
    }
}

/// The request's block limit merged with the cluster's, the more
/// restrictive winning; Calico's default of 20 when neither is set.
fn effective_block_limit(requested: u32, config: &IpamConfig) -> u32 {
    let merged = match (requested, config.max_blocks_per_host) {
        (0, global) => global,
        (req, global) if global > 0 && req > global => global,
        (req, _) => req,
    };
    if merged == 0 {
        DEFAULT_MAX_BLOCKS_PER_HOST
    } else {
        merged
    }
}

/// An address with its block's prefix length.
fn with_block_len(addr: IpAddr, block: &IpNet) -> IpNet {
    IpNet::new(addr, block.prefix_len()).unwrap_or(*block)
}

/// Everything a request for one family needs, looked up once.
struct FamilyRequest<'a> {
    owner: Owner,
    version: IpVersion,
    num: usize,
    handle: Option<&'a str>,
    attrs: &'a BTreeMap<String, String>,
    config: IpamConfig,
    reservations: Reservations,
    pools: Vec<Pool>,
    block_limit: u32,
}

impl<B: Backend> Ipam<B> {
    /// Hands out `num4` IPv4 and `num6` IPv6 addresses to `hostname`.
    ///
    /// A request that cannot be fully met is not an error: the result says
    /// how many were handed out and why not more
    /// ([`Assignments::partial_fulfillment_error`]). An error carries what
    /// was handed out before it happened.
    pub async fn auto_assign(
        &self,
        args: &AutoAssignArgs,
    ) -> Result<AutoAssigned, AutoAssignError> {
        let mut out = AutoAssigned {
            v4: Assignments::new(IpVersion::V4, args.num4),
            v6: Assignments::new(IpVersion::V6, args.num6),
        };
        if args.hostname.is_empty() {
            return Err(AutoAssignError {
                assigned: out,
                error: IpamError::MissingHostname,
            });
        }
        let _turn = self.hosts.turn(&args.hostname).await;
        for (version, num) in [(IpVersion::V4, args.num4), (IpVersion::V6, args.num6)] {
            if num == 0 {
                continue;
            }
            let slot = match version {
                IpVersion::V4 => &mut out.v4,
                IpVersion::V6 => &mut out.v6,
            };
            if let Err(error) = self.auto_assign_family(args, version, num, slot).await {
                return Err(AutoAssignError {
                    assigned: out,
                    error,
                });
            }
        }
        Ok(out)
    }

    async fn auto_assign_family(
        &self,
        args: &AutoAssignArgs,
        version: IpVersion,
        num: usize,
        out: &mut Assignments,
    ) -> Result<(), IpamError> {
        let requested = match version {
            IpVersion::V4 => &args.ipv4_pools,
            IpVersion::V6 => &args.ipv6_pools,
        };
        let owner = owner_for(args.intended_use, &args.hostname);
        // Everything the decision needs, read at once.
        let virtual_owner = owner.kind == AffinityType::Virtual;
        let (config, reservations, node, pools, affine) = futures::join!(
            self.get_config(),
            self.store.reservations(),
            async {
                if virtual_owner {
                    Ok(Some(BTreeMap::new()))
                } else {
                    self.store.node_labels(&args.hostname).await
                }
            },
            self.store.pools(),
            self.store.affinities_of(owner.kind, &owner.host, version),
        );
        let config = config?;
        let (reservations, malformed) = Reservations::from_resources(&reservations?);
        for m in malformed {
            warn!(reservation = %m.reservation, cidr = %m.cidr, "ignoring malformed CIDR in IPReservation");
        }
        let node_labels = node?.ok_or_else(|| IpamError::NodeNotFound(args.hostname.clone()))?;
        let (all_pools, bad) = parse_pools(&pools?);
        for e in bad {
            warn!(error = %e, "ignoring invalid IP pool");
        }
        let affine = affine?;
        let selection = select_pools(
            &all_pools,
            &PoolRequest {
                version,
                node: &args.hostname,
                node_labels: &node_labels,
                namespace_labels: args.namespace_labels.as_ref(),
                requested,
                use_for: args.intended_use,
                max_block_len: version.bits(),
            },
        )?;

        // This host's blocks, split into those the request may use and
        // those of pools that no longer select the host (released when
        // empty, as Calico does).
        let (usable_blocks, other_blocks): (Vec<_>, Vec<_>) = affine
            .into_iter()
            .partition(|(b, _)| block_in_pools(b, &selection.usable));
        for (block, _) in other_blocks {
            let Some(pool) = enabled_pool_for_addr(&all_pools, block.network()) else {
                continue;
            };
            if pool.selects_node(&node_labels).unwrap_or(true) {
                continue;
            }
            self.release_affinity_retrying(&owner, &block, true, &config)
                .await;
        }

        let req = FamilyRequest {
            owner,
            version,
            num,
            handle: args.handle.as_deref(),
            attrs: &args.attrs,
            block_limit: effective_block_limit(args.max_blocks_per_host, &config),
            config,
            reservations,
            pools: selection.usable,
        };
        let owned = usable_blocks.len();
        let mut usable_blocks: VecDeque<_> = usable_blocks.into();
        if let Some(hint) = self.hosts.hint(&req.owner.host, version) {
            if let Some(i) = usable_blocks.iter().position(|(b, _)| *b == hint) {
                if let Some(hinted) = usable_blocks.remove(i) {
                    usable_blocks.push_front(hinted);
                }
            }
        }
        self.assign_from_affine_blocks(&req, usable_blocks, owned, out)
            .await?;
        if out.ips.len() < num && !req.config.strict_affinity {
            self.assign_from_borrowed_blocks(&req, out).await?;
        }
        debug!(host = %req.owner.host, version = %version, assigned = out.ips.len(), requested = num, "auto-assign done");
        Ok(())
    }

    /// Fills the request from the host's blocks, claiming new ones while
    /// the block limit allows.
    async fn assign_from_affine_blocks(
        &self,
        req: &FamilyRequest<'_>,
        mut remaining: VecDeque<(IpNet, Versioned<BlockAffinity>)>,
        mut owned: usize,
        out: &mut Assignments,
    ) -> Result<(), IpamError> {
        let mut fruitless_rounds = 0;
        while out.ips.len() < req.num {
            let allow_claim = (owned as u64) < u64::from(req.block_limit);
            let (block, newly_claimed) = match self
                .find_or_claim_block(req, &mut remaining, allow_claim)
                .await
            {
                Ok(found) => found,
                Err(FindFailure::NoFreeBlocks) => {
                    if req.config.strict_affinity {
                        out.note("No more free affine blocks and strict affinity enabled".into());
                    }
                    return Ok(());
                }
                Err(FindFailure::BlockLimit) => {
                    out.note(format!(
                        "Need to allocate an IPAM block but could not - limit of {} blocks reached for this node",
                        req.block_limit
                    ));
                    return Err(IpamError::BlockLimit {
                        limit: req.block_limit,
                    });
                }
                Err(FindFailure::Failed(e)) => return Err(e),
            };
            if newly_claimed {
                owned += 1;
            }
            let before = out.ips.len();
            self.assign_with_retries(req, block, req.config.strict_affinity, out)
                .await?;
            if out.ips.len() == before {
                fruitless_rounds += 1;
                if fruitless_rounds > self.options.retries {
                    return Err(IpamError::TooManyRetries {
                        operation: "assign from affine blocks",
                    });
                }
            }
        }
        Ok(())
    }

    /// Assigns what is still needed from one block, re-reading it after a
    /// lost compare-and-swap.
    async fn assign_with_retries(
        &self,
        req: &FamilyRequest<'_>,
        mut block: Versioned<AllocationBlock>,
        affinity_check: bool,
        out: &mut Assignments,
    ) -> Result<(), IpamError> {
        for _ in 0..self.options.retries {
            let wanted = req.num - out.ips.len();
            match self
                .assign_from_block(
                    &req.owner,
                    &block,
                    wanted,
                    req.handle,
                    req.attrs,
                    affinity_check,
                    &req.reservations,
                    &req.config,
                )
                .await
            {
                Ok(ips) => {
                    if !ips.is_empty() {
                        self.hosts.set_hint(&req.owner.host, block.value.cidr);
                    }
                    out.ips.extend(ips);
                    return Ok(());
                }
                Err(AssignFailure::Lost) => match self.store.get_block(&block.value.cidr).await? {
                    Some(b) => block = b,
                    None => return Ok(()),
                },
                Err(AssignFailure::Failed(e)) if e.is_transient() => return Err(e),
                Err(AssignFailure::Failed(e)) => {
                    warn!(block = %block.value.cidr, error = %e, "failed to assign from block");
                    out.note("Failed to assign IPs in newly allocated block".into());
                    return Ok(());
                }
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "assign from block",
        })
    }

    /// Takes addresses from other hosts' blocks (non-strict affinity
    /// only), visiting existing blocks with room in this host's walk
    /// order.
    async fn assign_from_borrowed_blocks(
        &self,
        req: &FamilyRequest<'_>,
        out: &mut Assignments,
    ) -> Result<(), IpamError> {
        let now = self.now();
        let mut exhausted = Vec::new();
        let existing = self.store.list_blocks(Some(req.version)).await?;
        for pool in &req.pools {
            if out.ips.len() >= req.num {
                break;
            }
            let walk = random_blocks(&pool.cidr, pool.block_len, host_seed(&req.owner.host));
            let mut candidates: Vec<(u128, IpNet)> = existing
                .iter()
                .filter(|b| !req.reservations.covers(&b.value.cidr))
                .filter(|b| {
                    let mut view = b.value.clone();
                    view.garbage_collect(now, req.config.ip_cooldown_seconds);
                    view.num_free(&req.reservations) > 0
                })
                .filter_map(|b| walk.position_of(&b.value.cidr).map(|p| (p, b.value.cidr)))
                .collect();
            candidates.sort();
            for (_, cidr) in candidates {
                if out.ips.len() >= req.num {
                    break;
                }
                let Some(block) = self.store.get_block(&cidr).await? else {
                    continue;
                };
                self.assign_with_retries(req, block, false, out).await?;
            }
            if out.ips.len() < req.num {
                exhausted.push(pool.cidr.to_string());
            }
        }
        if !exhausted.is_empty() {
            out.note(format!(
                "No IPs available in pools: [{}]",
                exhausted.join(" ")
            ));
        }
        Ok(())
    }

    /// One of the host's blocks with at least one free address, or a newly
    /// claimed one.
    async fn find_or_claim_block(
        &self,
        req: &FamilyRequest<'_>,
        remaining: &mut VecDeque<(IpNet, Versioned<BlockAffinity>)>,
        allow_claim: bool,
    ) -> Result<(Versioned<AllocationBlock>, bool), FindFailure> {
        let owner = &req.owner;
        let now = self.now();
        while let Some((cidr, listed)) = remaining.pop_front() {
            if req.reservations.covers(&cidr) {
                continue;
            }
            // The listing's copy serves the first attempt; a retry re-reads.
            let mut listed = Some(listed);
            for _ in 0..self.options.retries {
                let aff = match listed.take() {
                    Some(a) => a,
                    None => match self
                        .store
                        .get_affinity(owner.kind, &owner.host, &cidr)
                        .await
                    {
                        Ok(Some(a)) => a,
                        Ok(None) => break,
                        Err(e) => return Err(FindFailure::Failed(e)),
                    },
                };
                match self
                    .block_from_affinity(owner, &cidr, aff, &req.config)
                    .await
                {
                    Ok(block) => {
                        let mut view = block.value.clone();
                        view.garbage_collect(now, req.config.ip_cooldown_seconds);
                        if view.num_free(&req.reservations) >= 1 {
                            return Ok((block, false));
                        }
                        break;
                    }
                    Err(ClaimFailure::Lost) => continue,
                    Err(ClaimFailure::Failed(e)) if e.is_transient() => {
                        return Err(FindFailure::Failed(e));
                    }
                    Err(_) => break,
                }
            }
        }

        if !allow_claim {
            return Err(FindFailure::BlockLimit);
        }
        if !req.config.auto_allocate_blocks {
            return Err(FindFailure::NoFreeBlocks);
        }
        for _ in 0..self.options.retries {
            let subnet = match self
                .find_usable_block(owner, &req.pools, &req.reservations, &req.config)
                .await
            {
                Ok(Some(s)) => s,
                Ok(None) => return Err(FindFailure::NoFreeBlocks),
                Err(e) => return Err(FindFailure::Failed(e)),
            };
            for _ in 0..self.options.retries {
                let pending = match self.pending_affinity(owner, &subnet).await {
                    Ok(a) => a,
                    Err(ClaimFailure::Failed(e)) => return Err(FindFailure::Failed(e)),
                    Err(_) => continue,
                };
                match self
                    .block_from_affinity(owner, &subnet, pending, &req.config)
                    .await
                {
                    Ok(block) => return Ok((block, true)),
                    Err(ClaimFailure::Lost) => continue,
                    Err(ClaimFailure::OwnedElsewhere | ClaimFailure::Stale) => break,
                    Err(ClaimFailure::Failed(e)) => return Err(FindFailure::Failed(e)),
                }
            }
        }
        Err(FindFailure::Failed(IpamError::TooManyRetries {
            operation: "claim a block",
        }))
    }

    /// Takes up to `num` addresses from one block: the handle is counted
    /// first, then the block is written; if the block write loses, the
    /// handle count is taken back.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn assign_from_block(
        &self,
        owner: &Owner,
        block: &Versioned<AllocationBlock>,
        num: usize,
        handle: Option<&str>,
        attrs: &BTreeMap<String, String>,
        affinity_check: bool,
        reservations: &Reservations,
        config: &IpamConfig,
    ) -> Result<Vec<IpNet>, AssignFailure> {
        let mut value = block.value.clone();
        value.garbage_collect(self.now(), config.ip_cooldown_seconds);
        if affinity_check {
            match &value.affinity {
                Some(a) if !owner.owns(&value) => {
                    return Err(AssignFailure::Failed(IpamError::AffinityMismatch {
                        block: value.cidr,
                        affinity: a.clone(),
                        host: owner.host.clone(),
                    }));
                }
                Some(_) => {}
                None => {
                    return Err(AssignFailure::Failed(IpamError::NoAffinity {
                        block: value.cidr,
                    }));
                }
            }
        }
        let addrs = value.auto_assign(num, handle, attrs, reservations);
        if addrs.is_empty() {
            return Ok(Vec::new());
        }
        let cidr = value.cidr;
        if let Some(h) = handle {
            self.increment_handle(h, &cidr, addrs.len()).await?;
        }
        match self.store.update_block(value, block.revision).await? {
            super::store::Cas::Done(_) => {
                Ok(addrs.iter().map(|a| with_block_len(*a, &cidr)).collect())
            }
            super::store::Cas::Lost => {
                if let Some(h) = handle {
                    if let Err(e) = self.decrement_handle(h, &cidr, addrs.len(), None).await {
                        warn!(handle = h, block = %cidr, error = %e, "failed to take back handle count after a lost block write");
                    }
                }
                Err(AssignFailure::Lost)
            }
        }
    }

    /// Assigns one named address to `hostname`, claiming its block for the
    /// host if the block does not exist yet.
    pub async fn assign_ip(&self, args: &AssignIpArgs) -> Result<(), IpamError> {
        if args.hostname.is_empty() {
            return Err(IpamError::MissingHostname);
        }
        let owner = owner_for(
            args.intended_use.unwrap_or(IpPoolAllowedUse::Workload),
            &args.hostname,
        );
        let _turn = self.hosts.turn(&args.hostname).await;
        let (pools, _) = parse_pools(&self.store.pools().await?);
        let pool = enabled_pool_for_addr(&pools, args.ip).ok_or(IpamError::NotInPool(args.ip))?;
        if let Some(using) = args.intended_use {
            if !pool.allows(using) {
                return Err(IpamError::UseNotAllowed {
                    address: args.ip,
                    pool: pool.name.clone(),
                    using,
                });
            }
        }
        let config = self.get_config().await?;
        let cidr =
            block_containing(args.ip, pool.block_len).ok_or(IpamError::NotInPool(args.ip))?;
        let handle = args.handle.as_deref();
        for _ in 0..self.options.retries {
            let block = match self.store.get_block(&cidr).await? {
                Some(b) => b,
                None => {
                    let pending = match self.pending_affinity(&owner, &cidr).await {
                        Ok(a) => a,
                        Err(ClaimFailure::Failed(e)) => return Err(e),
                        Err(_) => continue,
                    };
                    match self
                        .claim_affine_block(&owner, &cidr, pending, &config)
                        .await
                    {
                        Ok(b) => b,
                        Err(ClaimFailure::Failed(e)) => return Err(e),
                        Err(_) => continue,
                    }
                }
            };
            let mut value = block.value.clone();
            value.garbage_collect(self.now(), config.ip_cooldown_seconds);
            if config.strict_affinity {
                match &value.affinity {
                    Some(a) if !owner.owns(&value) => {
                        return Err(IpamError::AffinityMismatch {
                            block: cidr,
                            affinity: a.clone(),
                            host: owner.host.clone(),
                        });
                    }
                    Some(_) => {}
                    None => return Err(IpamError::NoAffinity { block: cidr }),
                }
            }
            value.assign(args.ip, handle, &args.attrs)?;
            if let Some(h) = handle {
                self.increment_handle(h, &cidr, 1).await?;
            }
            match self.store.update_block(value, block.revision).await? {
                super::store::Cas::Done(_) => return Ok(()),
                super::store::Cas::Lost => {
                    if let Some(h) = handle {
                        if let Err(e) = self.decrement_handle(h, &cidr, 1, None).await {
                            warn!(handle = h, block = %cidr, error = %e, "failed to take back handle count after a lost block write");
                        }
                    }
                }
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "assign IP",
        })
    }

    /// Gives up `host`'s affinity for `cidr` if the block is (still)
    /// empty. Returns whether it did.
    pub(crate) async fn release_affinity_if_empty(
        &self,
        host: &str,
        cidr: &IpNet,
        config: &IpamConfig,
    ) -> bool {
        let owner = Owner::host(host);
        for _ in 0..self.options.retries {
            match self
                .release_block_affinity(&owner, cidr, true, None, config)
                .await
            {
                Ok(()) => return true,
                Err(ReleaseAffinityFailure::Lost | ReleaseAffinityFailure::Changed) => continue,
                Err(_) => return false,
            }
        }
        false
    }

    /// Releases an affinity, retrying lost races; other outcomes (not
    /// empty, not ours, gone) leave it be.
    pub(crate) async fn release_affinity_retrying(
        &self,
        owner: &Owner,
        cidr: &IpNet,
        require_empty: bool,
        config: &IpamConfig,
    ) {
        for _ in 0..self.options.retries {
            match self
                .release_block_affinity(owner, cidr, require_empty, None, config)
                .await
            {
                Err(ReleaseAffinityFailure::Lost) => continue,
                Err(ReleaseAffinityFailure::Failed(e)) => {
                    warn!(block = %cidr, host = %owner.host, error = %e, "failed to release block affinity");
                    return;
                }
                _ => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_limit_merging() {
        let cfg = |max| IpamConfig {
            max_blocks_per_host: max,
            ..Default::default()
        };
        assert_eq!(effective_block_limit(0, &cfg(0)), 20);
        assert_eq!(effective_block_limit(0, &cfg(3)), 3);
        assert_eq!(effective_block_limit(5, &cfg(3)), 3);
        assert_eq!(effective_block_limit(2, &cfg(3)), 2);
        assert_eq!(effective_block_limit(7, &cfg(0)), 7);
    }

    #[test]
    fn partial_fulfillment_message() {
        let mut a = Assignments::new(IpVersion::V4, 2);
        assert!(a.partial_fulfillment_error().is_some());
        a.note("No IPs available in pools: [10.0.0.0/30]".into());
        a.note("No IPs available in pools: [10.0.0.0/30]".into());
        assert_eq!(
            a.partial_fulfillment_error().unwrap(),
            "Assigned 0 out of 2 requested IPv4 addresses; No IPs available in pools: [10.0.0.0/30]"
        );
        a.ips = vec![
            "10.0.0.1/26".parse().unwrap(),
            "10.0.0.2/26".parse().unwrap(),
        ];
        assert_eq!(a.partial_fulfillment_error(), None);
        assert_eq!(
            with_block_len("10.0.0.7".parse().unwrap(), &"10.0.0.0/26".parse().unwrap())
                .to_string(),
            "10.0.0.7/26"
        );
    }
}
