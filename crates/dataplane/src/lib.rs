//! calico-dataplane: the policy dataplane generator. It turns the policy
//! engine's output (a [`Dataplane`]: one program per local endpoint, the
//! rules of every policy and profile in use, the members of every IP set)
//! into the agent's desired nftables state (a [`Ruleset`]), what Calico's
//! Felix does in its rule renderer and nftables managers.
//!
//! Owns: the shape of the agent's tables ([`generate()`]): base chains on the
//! forward, input and output hooks, dispatch from interface name to
//! endpoint chain through verdict maps, one chain per endpoint and
//! direction running its tiers and profiles, one chain per policy and
//! profile shared by every endpoint that uses it, named sets for
//! selector-derived addresses and named ports, failsafe ports for host
//! endpoints, and what happens to traffic from workloads to the host;
//! how one policy rule becomes nft rules ([`rules`]); names ([`names`]);
//! and the settings ([`DataplaneConfig`]).
//!
//! Must not: touch the kernel, read the datastore, or decide policy. The
//! policy engine (`calico-policy`) decides what is allowed; this crate only
//! says how nftables enforces it; `calico-nftables`' `Reconciler` applies
//! the difference to the kernel. The reference for "what is allowed" is
//! `calico_policy::eval` / `calico_policy::explain`, and the tests of this
//! crate compare the kernel's behaviour with them.
//!
//! Where to start: [`generate()`] and the packet path drawn in [`generate`'s
//! module](mod@crate::generate); then [`Generator`] for how a node's
//! ruleset is kept up to date in proportion to each change. The agent owns the tables
//! [`DataplaneConfig::tables`] names (an `ip` and an `ip6` table, as
//! Calico's nftables mode), and applies each new generation with
//! `Reconciler::apply`, which sends only what changed.
//!
//! # What the node agent does with it
//!
//! 1. Build the policy engine with `EngineConfig { local_node: Some(<this
//!    node>), failsafe: failsafe_from_felix(&felix_spec)? }`: the failsafe
//!    ports travel inside every [`Dataplane`], so the generator and the
//!    reference evaluator always agree on them.
//! 2. `DataplaneConfig::from_felix(&felix_spec)?` for the interface
//!    prefixes, `defaultEndpointToHostAction`, mark bits, log prefix and
//!    IPv6 support.
//! 3. One `calico_nftables::Reconciler` owning [`DataplaneConfig::tables`]
//!    (`ip calico`, `ip6 calico`), driven from a dedicated thread or
//!    `spawn_blocking`.
//! 4. After each batch of engine updates: [`Generator::generate`] with the
//!    engine's output and the keys its `Changes` named since the last call
//!    ([`Dirty::record`]), log every [`Skipped`] endpoint,
//!    `reconciler.apply(&ruleset)` (only the difference is sent, in one
//!    atomic transaction); on a timer, `reconciler.repair(&last)` to undo
//!    changes made behind its back. The generator remakes only the chains
//!    and sets that depend on what changed and hands back the others as
//!    they were (the same `Arc`), so generation, the reconciler's
//!    validation and diff, and its copy of the applied state cost in
//!    proportion to the change ([`generate_with_report`] makes a whole
//!    generation, the reference the generator is tested against).
//! 5. Forwarding on and the workload routes are the CNI plugin's and
//!    calico-netlink's business, not this crate's.
//!
//! # Differences from Calico
//!
//! - doNotTrack policy is enforced at raw priority, but what it allows is
//!   still connection-tracked: calico-nftables' model has no `notrack`
//!   statement. Verdicts are Calico's; replies to such flows are allowed by
//!   the connection-tracking fast path where Calico would need reverse
//!   untracked rules.
//! - Host endpoint egress policy also sees DNAT'd traffic in the output hook
//!   (the model has no `ct status` test to skip it there).
//! - No reverse-path (anti-spoofing) check for workloads (the model has no
//!   `fib` expression); Deny always drops (no `reject`); Log rules log at
//!   nft's default level (the model has no log level).
//! - Not generated: NAT (natOutgoing), encapsulation allow rules (VXLAN,
//!   IPIP, WireGuard), QoS controls, IPVS endpoint marks, flow-log NFLOG
//!   groups.
//!
//! ```
//! use calico_dataplane::{DataplaneConfig, Direction, generate};
//! use calico_model::{Action, ObjectMeta, Profile, Rule, WorkloadEndpoint};
//! use calico_policy::{EngineConfig, PolicyEngine};
//!
//! let mut engine = PolicyEngine::new(EngineConfig::default());
//! let mut ns = Profile { metadata: ObjectMeta::named("kns.demo"), ..Default::default() };
//! ns.spec.ingress = vec![Rule::new(Action::Allow)];
//! engine.apply(ns.into()).unwrap();
//! let mut pod = WorkloadEndpoint {
//!     metadata: ObjectMeta::namespaced("demo", "node1-k8s-web-eth0"),
//!     ..Default::default()
//! };
//! pod.spec.ip_networks = vec!["10.0.0.5/32".into()];
//! pod.spec.profiles = vec!["kns.demo".into()];
//! pod.spec.interface_name = "cali0123456789a".into();
//! engine.apply(pod.into()).unwrap();
//!
//! let config = DataplaneConfig::default();
//! let ruleset = generate(&engine.snapshot(), &config);
//! assert!(ruleset.validate().is_empty());
//! let v4 = &ruleset.tables[&config.tables()[0]];
//! let to_pod = calico_dataplane::workload_chain(v4, "cali0123456789a", Direction::Ingress);
//! assert!(to_pod.is_some_and(|chain| chain.starts_with("cali-tw-")));
//! assert!(v4.chains.contains_key("cali-pri-kns.demo"));
//! ```
//!
//! [`Dataplane`]: calico_policy::program::Dataplane
//! [`Ruleset`]: calico_nftables::Ruleset
//! [`Skipped`]: generate::Skipped

pub mod config;
pub mod generate;
pub mod names;
pub mod rules;

pub use calico_policy::program::Direction;
pub use config::{ConfigError, DataplaneConfig, EndpointToHostAction, Marks, failsafe_from_felix};
pub use generate::{
    Dirty, Generation, Generator, SkipReason, Skipped, generate, generate_with_report,
    workload_chain,
};
