//! calico-lab: a real multi-node Calico cluster on one Linux machine, out
//! of network namespaces, built in seconds: the quickest way to see
//! calico-rs work end to end.
//!
//! Owns: the lab's underlay (a bridge namespace, a router, one namespace
//! per node — [`topology`]), its datastore (the embedded file or an etcd
//! it starts — [`datastore`]), one `calico-node` per node ([`agent`]),
//! pods attached by the real `calico` CNI plugin as a runtime would
//! ([`pod`]), the Kubernetes identities kube-controllers would record
//! ([`kube`]), connectivity measured over TCP ([`probe`]) and compared
//! with policy explain ([`check`]), and a state file recording everything
//! it made so that `down` removes all of it ([`state`], [`down`]).
//!
//! Must not: touch the host's own interfaces, routes or nftables (every
//! link lives inside a lab namespace; nothing is added to the host's),
//! stop a process it did not start (PIDs are checked against their start
//! time), or decide policy or routes itself: the agents (policy, tunnels,
//! routes, BGP) and the CNI plugin do that; the lab only waits for their
//! cross-node routes ([`routes`]).
//!
//! Start at [`up::up`]; the binary (`src/main.rs`) is the command line.

pub mod agent;
pub mod check;
pub mod commands;
pub mod config;
pub mod datastore;
pub mod down;
pub mod forward;
pub mod kube;
pub mod pod;
pub mod probe;
pub mod routes;
pub mod state;
pub mod system;
pub mod topology;
pub mod up;

/// Every network namespace the lab makes is called `cl-<id>-<what>`.
pub const NETNS_PREFIX: &str = "cl-";

/// Where the lab keeps its state unless `--dir` says otherwise.
pub const DEFAULT_DIR: &str = "/run/calico-lab";
