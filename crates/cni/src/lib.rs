//! calico-cni: the `calico` and `calico-ipam` CNI plugins, a drop-in for
//! Calico's: the same network configuration, the same names (host-side
//! `cali…` interfaces, WorkloadEndpoint names, IPAM handles), the same
//! results in every CNI version from 0.1.0 to 1.1.0.
//!
//! Owns: the CNI protocol (environment, configuration, results, errors,
//! versions), Calico's naming rules, and the plugin flow — `ADD` with
//! rollback of every step, idempotent best-effort `DEL`, `CHECK`, `STATUS`,
//! `GC` — written against four seams:
//!
//! - [`ipam::Ipam`]: addresses for an attachment. [`ipam::ExecIpam`]
//!   delegates to the plugin named in `ipam.type` (e.g. `host-local`);
//!   [`ipam::CalicoIpam`] is Calico's IPAM in-process over an
//!   [`ipam::AddressAllocator`], which [`datastore::BlockAllocator`]
//!   implements with the `calico-ipam` crate's block allocator.
//! - [`endpoint::EndpointStore`]: WorkloadEndpoints, the network's profile
//!   and the datastore's readiness; [`datastore::DatastoreStore`] keeps them
//!   in Calico's datastore through the typed client.
//! - [`dataplane::Dataplane`]: the pod's interface;
//!   [`dataplane::NetlinkDataplane`] drives the kernel through
//!   `calico-netlink`.
//! - [`endpoint::PodInfoSource`]: pod labels, annotations and profiles
//!   from the orchestrator (none yet: no Kubernetes API is reachable).
//!
//! Must not: enter network namespaces (that is `calico-netlink`'s job) or
//! decide policy.
//!
//! The protocol modules ([`env`](mod@env), [`args`], [`config`], [`result`],
//! [`error`], [`version`], [`names`]) do no I/O. Start at
//! [`plugin::cmd_add`]; the binaries are [`cli`] plus a `main` each.

pub mod args;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod datastore;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod ipam;
pub mod names;
pub mod plugin;
pub mod result;
pub mod version;
