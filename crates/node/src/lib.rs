//! calico-node: the per-node agent. At start-up it registers the node and
//! creates the default IP pools (what Calico's calico-node start-up does);
//! then it turns the datastore into kernel state on this node: nftables
//! rules for policy and routes to local workloads (what Calico calls
//! Felix), and, with BGP networking, runs calico-bgp's speaker in place of
//! the BIRD daemon and confd that Calico runs beside Felix.
//!
//! Owns:
//! - [`startup`]: the node's name ([`nodename`]), its address from `IP` /
//!   `IP6` or autodetection, its AS number, the default pools from
//!   `CALICO_IPV4POOL_*` / `CALICO_IPV6POOL_*`, and the resources every
//!   Calico datastore holds (ClusterInformation, tiers, default
//!   FelixConfiguration, BGPConfiguration, IPAMConfiguration);
//! - [`config`]: the agent's parameters resolved from `FELIX_*` variables
//!   and the `node.<name>` and `default` FelixConfigurations, as Calico
//!   resolves them;
//! - [`agent`]: the event loop that feeds datastore resources to the policy
//!   engine, generates the ruleset and the desired routes, and hands them
//!   to the [`dataplane`] thread, which reconciles the kernel (nftables
//!   through calico-nftables, routes through [`routes::kernel`]);
//! - [`agent::bgp`]: BGP networking. Unless `CALICO_NETWORKING_BACKEND` is
//!   `vxlan` or `none`, the loop turns Node, BGPConfiguration, BGPPeer and
//!   IPPool resources and this node's affine blocks into the speaker's
//!   settings (`calico_bgp::config::desired`), a task applies them to the
//!   speaker, which opens its sockets and installs learned routes in the
//!   node's namespace; the agent serves `calicoctl node status` on a Unix
//!   socket (`CALICO_BGP_STATUS_SOCKET`, default
//!   `/var/run/calico/bgp.ctl`) and fills this node's CalicoNodeStatus
//!   resources;
//! - [`health`] and [`metrics`]: `/liveness`, `/readiness` and `/metrics`
//!   under Calico's names.
//!
//! Must not: decide policy (calico-policy does), shape the ruleset
//! (calico-dataplane does), decide BGP peerings or speak BGP (calico-bgp
//! does), or enter a network namespace on a runtime
//! thread: everything inside the node's namespace goes through sockets
//! opened there once, or through `nsenter` for nft.
//!
//! Where to start: [`agent::run`] and the picture in [`agent`]'s docs,
//! then [`startup::run`]. The binary (`src/main.rs`) wires them up from
//! the environment.
//!
//! ```text
//! datastore ──list+watch──▶ feeds ─▶ event loop ─▶ PolicyEngine ─▶ Mirror (Dataplane value)
//!                                        │                               │
//!                                        │                  generate() ruleset, desired routes
//!                                        ▼                               ▼
//!                                 config layers              dataplane thread: Reconciler (nft -f),
//!                                 health, metrics            RouteDriver (netlink), in the node's netns
//!                                        │
//!                 calico_bgp::config::desired (Node, BGPConfiguration, BGPPeer, IPPool, affine blocks)
//!                                        ▼
//!                        BGP runner task ─▶ calico-bgp speaker ─▶ peers (TCP 179, in the node's netns)
//!                                                  │ learned routes ─▶ NetlinkSink (node's netns kernel)
//!                                                  └─▶ status socket (calicoctl node status), CalicoNodeStatus
//! ```

pub mod agent;
pub mod config;
pub mod dataplane;
pub mod env;
pub mod health;
pub mod metrics;
pub mod nodename;
pub mod overlay;
pub mod routes;
pub mod startup;
