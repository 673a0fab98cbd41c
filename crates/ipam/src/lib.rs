//! Calico's block-based IP address management (what Calico calls IPAM).
//!
//! Owns: carving pools into blocks, giving blocks to hosts (affinity),
//! handing out and taking back addresses, the `calicoctl ipam` reports and
//! the leak collector, all over Calico's own etcd records
//! (`/calico/ipam/v2/...`) so an existing Calico datastore works unchanged.
//!
//! Layout, pure first:
//!
//! - [`cidr`]: address and block arithmetic.
//! - [`reserved`]: IPReservations as a set.
//! - [`pools`]: which pools a request may use.
//! - [`handles`]: the handle IDs and attributes Calico components share.
//! - `block`: allocation inside one block (free queue, released-address
//!   cooldown, sequence numbers), no I/O, on a checked working form of
//!   calico-model's block record.
//! - [`Ipam`]: the allocator over any [`calico_datastore::Backend`]. Every
//!   write is a compare-and-swap, so many hosts allocate at once without a
//!   lock.
//! - [`report`]: `calicoctl ipam show|check|release|configure` data and
//!   Calico's exact output.
//! - [`gc`]: the leak collector kube-controllers runs.
//!
//! Must not: read the clock except through the [`Clock`] given to
//! [`Ipam`], use randomness, or spawn tasks.
//!
//! Start at [`Ipam::auto_assign`].

pub mod cidr;
pub mod gc;
pub mod handles;
pub mod pools;
pub mod report;
pub mod reserved;

mod allocator;
mod block;
mod error;
mod record;

pub use allocator::{
    AssignIpArgs, Assignments, AutoAssignArgs, AutoAssignError, AutoAssigned, Clock,
    DEFAULT_MAX_BLOCKS_PER_HOST, DEFAULT_RETRIES, Ipam, IpamConfig, IpamOptions,
    MAX_IP_COOLDOWN_SECONDS, ManualClock, ReleaseOutcome, ReleasedAffinities, SystemClock,
};
pub use block::{BlockError, ReleaseOptions, WINDOWS_RESERVED_HANDLE, sanitize_handle};
pub use cidr::IpVersion;
pub use error::IpamError;
pub use pools::{Pool, PoolError};
pub use record::{AffinityType, Time};
pub use reserved::Reservations;
