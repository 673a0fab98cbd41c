//! [`Ipam`]: Calico's allocator over any [`Backend`].
//!
//! There is no lock. Every record (block, affinity, handle) is written
//! with a compare-and-swap on the revision it was read at; the loser of a
//! race re-reads and retries, up to [`IpamOptions::retries`] times. A host
//! claims a block in two phases (a `pending` affinity, then the block,
//! then `confirmed`), so two hosts racing for one block resolve cleanly:
//! one creates the block, the other sees it owned and moves on.
//!
//! Order of writes, chosen so a crash never loses track of an address:
//! the handle is incremented before the block records the allocation (a
//! crash in between leaves a handle that over-counts, which `check` shows
//! and release repairs, never an allocation no handle knows of).

mod affinity;
mod assign;
mod claim;
mod release;
mod store;
pub(crate) mod topology;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use calico_datastore::Backend;

use crate::error::IpamError;
use crate::record::{IpamConfigRecord, Time};

pub use affinity::ReleasedAffinities;
pub use assign::{AssignIpArgs, Assignments, AutoAssignArgs, AutoAssignError, AutoAssigned};
pub use release::ReleaseOutcome;
pub(crate) use store::Store;

/// Calico's bound on compare-and-swap retries per record.
pub const DEFAULT_RETRIES: usize = 100;

/// Calico's default cap on the blocks one host may claim per family.
pub const DEFAULT_MAX_BLOCKS_PER_HOST: u32 = 20;

/// How long after a claim an empty block is safe from being reclaimed by
/// another host (Calico's `EmptyBlockMinReclaimAge`).
pub const EMPTY_BLOCK_MIN_RECLAIM_AGE_SECS: i64 = 60;

/// Where the allocator gets the time (released-address cooldown, claim
/// times, new blocks' first sequence number).
pub trait Clock: Send + Sync + fmt::Debug {
    fn now(&self) -> Time;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Time {
        chrono::Utc::now()
    }
}

/// A clock that only moves when told to; for tests and simulations.
#[derive(Debug)]
pub struct ManualClock(Mutex<Time>);

impl ManualClock {
    pub fn new(start: Time) -> ManualClock {
        ManualClock(Mutex::new(start))
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *t += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Time {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Tuning for [`Ipam`].
#[derive(Debug, Clone)]
pub struct IpamOptions {
    /// Compare-and-swap attempts per record before giving up.
    pub retries: usize,
}

impl Default for IpamOptions {
    fn default() -> Self {
        IpamOptions {
            retries: DEFAULT_RETRIES,
        }
    }
}

/// The cluster-wide IPAM settings, defaults applied (what Calico calls
/// `IPAMConfig`; `calicoctl ipam configure` changes them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpamConfig {
    /// Hosts only allocate from blocks affine to them (no borrowing).
    pub strict_affinity: bool,
    /// Hosts claim new blocks when theirs are full.
    pub auto_allocate_blocks: bool,
    /// Most blocks one host may claim per family; 0 means Calico's
    /// default of 20.
    pub max_blocks_per_host: u32,
    /// `Enabled` or `Disabled`; `None` means Enabled.
    pub kube_virt_vm_address_persistence: Option<String>,
    /// Seconds a released address waits before it can be handed out again.
    pub ip_cooldown_seconds: u32,
}

impl Default for IpamConfig {
    fn default() -> Self {
        IpamConfig {
            strict_affinity: false,
            auto_allocate_blocks: true,
            max_blocks_per_host: 0,
            kube_virt_vm_address_persistence: None,
            ip_cooldown_seconds: 0,
        }
    }
}

/// A stored count as `u32`: negative (invalid) reads as 0.
fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

/// Calico caps the cooldown at 20 minutes.
pub const MAX_IP_COOLDOWN_SECONDS: u32 = 1200;

impl IpamConfig {
    fn from_record(r: &IpamConfigRecord) -> IpamConfig {
        IpamConfig {
            strict_affinity: r.strict_affinity,
            auto_allocate_blocks: r.auto_allocate_blocks,
            max_blocks_per_host: clamp_u32(r.max_blocks_per_host),
            kube_virt_vm_address_persistence: r.kube_virt_vm_address_persistence.clone(),
            ip_cooldown_seconds: clamp_u32(r.ip_cooldown_seconds),
        }
    }

    fn to_record(&self) -> IpamConfigRecord {
        IpamConfigRecord {
            strict_affinity: self.strict_affinity,
            auto_allocate_blocks: self.auto_allocate_blocks,
            max_blocks_per_host: i64::from(self.max_blocks_per_host),
            kube_virt_vm_address_persistence: self.kube_virt_vm_address_persistence.clone(),
            ip_cooldown_seconds: i64::from(self.ip_cooldown_seconds),
        }
    }

    /// The cross-field rules Calico enforces when the settings are written.
    pub fn validate(&self) -> Result<(), IpamError> {
        if !self.strict_affinity && !self.auto_allocate_blocks {
            return Err(IpamError::InvalidConfig(
                "Cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' at the same time".into(),
            ));
        }
        if self.max_blocks_per_host > 0 && !self.strict_affinity {
            return Err(IpamError::InvalidConfig(
                "MaxBlocksPerHost requires StrictAffinity to be enabled".into(),
            ));
        }
        if self.ip_cooldown_seconds > MAX_IP_COOLDOWN_SECONDS {
            return Err(IpamError::InvalidConfig(format!(
                "IPCooldownSeconds must be at most {MAX_IP_COOLDOWN_SECONDS}"
            )));
        }
        if let Some(p) = &self.kube_virt_vm_address_persistence {
            if p != "Enabled" && p != "Disabled" {
                return Err(IpamError::InvalidConfig(format!(
                    "invalid KubeVirtVMAddressPersistence {p:?}: use Enabled or Disabled"
                )));
            }
        }
        Ok(())
    }
}

/// What this process remembers per host, shared by an [`Ipam`] and its
/// clones.
///
/// - A turn: requests for one host in one process take turns, as Calico's
///   CNI plugin takes a host-wide IPAM lock; they would otherwise race for
///   the same block and mostly lose each other's compare-and-swaps. Other
///   processes and hosts are arbitrated by compare-and-swap alone.
/// - A hint: the block the host last allocated from, tried first next
///   time instead of walking every affine block from the first. Only an
///   ordering hint: whatever it says, the block is read and written by
///   compare-and-swap like any other.
#[derive(Debug, Default)]
pub(crate) struct HostState {
    turns: Mutex<BTreeMap<String, Arc<futures::lock::Mutex<()>>>>,
    hints: Mutex<BTreeMap<(String, crate::cidr::IpVersion), ipnet::IpNet>>,
}

impl HostState {
    pub(crate) async fn turn(&self, host: &str) -> futures::lock::OwnedMutexGuard<()> {
        let lock = {
            let mut map = self.turns.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(host.to_owned()).or_default().clone()
        };
        lock.lock_owned().await
    }

    pub(crate) fn hint(&self, host: &str, version: crate::cidr::IpVersion) -> Option<ipnet::IpNet> {
        let map = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(host.to_owned(), version)).copied()
    }

    pub(crate) fn set_hint(&self, host: &str, block: ipnet::IpNet) {
        let mut map = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        map.insert(
            (host.to_owned(), crate::cidr::IpVersion::of_net(&block)),
            block,
        );
    }
}

/// Calico's IPAM over one datastore. Cheap to clone; every method takes
/// `&self`, and any number of `Ipam`s (in this process or others, on this
/// host or others) may work on the same datastore at once.
#[derive(Clone)]
pub struct Ipam<B> {
    pub(crate) store: Store<B>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) options: IpamOptions,
    pub(crate) hosts: Arc<HostState>,
}

impl<B: fmt::Debug> fmt::Debug for Ipam<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ipam")
            .field("backend", &self.store.backend)
            .field("clock", &self.clock)
            .field("options", &self.options)
            .finish()
    }
}

impl<B: Backend> Ipam<B> {
    /// IPAM over `backend` with the system clock and Calico's retry bound.
    pub fn new(backend: B) -> Ipam<B> {
        Ipam::with_clock(backend, Arc::new(SystemClock), IpamOptions::default())
    }

    pub fn with_clock(backend: B, clock: Arc<dyn Clock>, options: IpamOptions) -> Ipam<B> {
        Ipam {
            store: Store { backend },
            clock,
            options,
            hosts: Arc::default(),
        }
    }

    pub fn backend(&self) -> &B {
        &self.store.backend
    }

    pub(crate) fn now(&self) -> Time {
        self.clock.now()
    }

    /// The cluster-wide settings; Calico's defaults when none are stored.
    pub async fn get_config(&self) -> Result<IpamConfig, IpamError> {
        Ok(self
            .store
            .get_config()
            .await?
            .map(|v| IpamConfig::from_record(&v.value))
            .unwrap_or_default())
    }

    /// Replaces the cluster-wide settings after checking Calico's rules.
    pub async fn set_config(&self, config: &IpamConfig) -> Result<(), IpamError> {
        config.validate()?;
        for _ in 0..self.options.retries {
            let current = self.store.get_config().await?;
            if current
                .as_ref()
                .map(|c| IpamConfig::from_record(&c.value))
                .as_ref()
                == Some(config)
            {
                return Ok(());
            }
            let revision = current.map(|c| c.revision);
            if !self
                .store
                .put_config(&config.to_record(), revision)
                .await?
                .lost()
            {
                return Ok(());
            }
        }
        Err(IpamError::TooManyRetries {
            operation: "set IPAM configuration",
        })
    }
}
