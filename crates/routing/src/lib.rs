//! calico-routing: cross-node routing for pod networks, as Calico's agent
//! (what Calico calls Felix) does it for overlays and same-subnet routes.
//!
//! Owns, for one node: the VXLAN device (`vxlan.calico`, VNI 4096, UDP
//! 4789, MTU from the host's uplinks less 50 unless configured), the IPIP
//! device (`tunl0`), a permanent ARP and FDB entry per remote VTEP, a
//! route per remote block (through a tunnel or straight to the owner, by
//! the pool's `vxlanMode`/`ipipMode` and the nodes' subnets), a blackhole
//! route per local block, and NAT outgoing for `natOutgoing` pools.
//!
//! Two layers:
//! - pure: [`RoutingInput`] (built from Nodes, IP pools, IPAM blocks and
//!   FelixConfiguration by [`RoutingInput::from_resources`]) goes through
//!   [`compute()`] into a [`Desired`] value, with the [`Problem`]s that kept
//!   something from being routed; [`mtu`] picks the host MTU from a list
//!   of interfaces. No I/O.
//! - driver: [`Reconciler`] makes one namespace's kernel match a
//!   [`Desired`] through `calico-netlink`'s socket (routes carry a
//!   protocol number of ours, 80 by default, so nobody else's routes are
//!   touched) and `calico-nftables`' `nft` runner for the NAT table.
//!
//! Must not: read the datastore (the agent feeds it resources), decide
//! policy, or touch links, routes or tables it does not own.
//!
//! Start at [`compute()`] and [`Reconciler::apply`]. IPv4 only for now.
//! The driver's tests run against this machine's kernel
//! (`tests/kernel.rs`) and, for IPIP, which that kernel lacks, against a
//! Debian kernel booted in a VM (`tests/ipip_vm.rs`).

pub mod compute;
pub mod desired;
pub mod driver;
pub mod input;
pub mod mtu;
pub mod nat;

pub use compute::compute;
pub use desired::{Desired, IpipDevice, Problem, Via, Vtep, VxlanDevice};
pub use driver::{ApplyError, OpenError, Reconciler, StepError};
pub use input::{BlockInfo, NodeInfo, PoolInfo, RoutingInput, Settings, vtep_mac};
pub use nat::NatOutgoing;
