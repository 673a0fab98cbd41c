//! Calico's block-based IP address management (what Calico calls IPAM).
//!
//! Owns: carving pools into blocks, giving blocks to hosts (affinity),
//! handing out and taking back addresses, and the `calicoctl ipam`
//! reports, all over Calico's own etcd records (`/calico/ipam/v2/...`) so
//! an existing Calico datastore works unchanged.
//!
//! Layout, pure first:
//!
//! - [`cidr`]: address and block arithmetic.
//! - [`reserved`]: IPReservations as a set.
//! - [`pools`]: which pools a request may use.
//! - `block`: allocation inside one block (free queue, cooldown, sequence
//!   numbers), no I/O.
//! - [`allocator`]: [`Ipam`], the allocator over any
//!   [`calico_datastore::Backend`]: every write a compare-and-swap, so
//!   many hosts allocate at once without a lock.
//! - [`report`]: `calicoctl ipam show|check|release|configure` data and
//!   Calico's exact output.
//! - [`gc`]: the leak collector kube-controllers runs.
//!
//! Must not: read the clock or randomness except through the [`Clock`]
//! the caller gives [`Ipam`]; spawn tasks.
//!
//! Start at [`Ipam::auto_assign`].

pub mod cidr;
pub mod pools;
pub mod reserved;

mod block;
mod record;

pub use block::{BlockError, ReleaseOptions, WINDOWS_RESERVED_HANDLE, sanitize_handle};
pub use cidr::IpVersion;
pub use pools::{Pool, PoolError};
pub use record::{AffinityType, Time};
pub use reserved::Reservations;
