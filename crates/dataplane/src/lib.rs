//! calico-dataplane: the policy dataplane generator. It turns the policy
//! engine's output (a [`Dataplane`]: one program per local endpoint, the
//! rules of every policy and profile in use, the members of every IP set)
//! into the agent's desired nftables state (a [`Ruleset`]), what Calico's
//! Felix does in its rule renderer and nftables managers.
//!
//! Owns: the shape of the agent's tables ([`generate`]): base chains on the
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
//! Where to start: [`generate`] and the packet path drawn in [`generate`'s
//! module](crate::generate). The agent owns the tables
//! [`DataplaneConfig::tables`] names (an `ip` and an `ip6` table, as
//! Calico's nftables mode), and applies each new generation with
//! `Reconciler::apply`, which sends only what changed.
//!
//! ```
//! use calico_dataplane::{DataplaneConfig, generate};
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
//! assert!(v4.chains.contains_key("cali-tw-cali0123456789a"));
//! assert!(v4.chains.contains_key("cali-pri-kns.demo"));
//! ```
//!
//! [`Dataplane`]: calico_policy::program::Dataplane
//! [`Ruleset`]: calico_nftables::Ruleset

pub mod config;
pub mod generate;
pub mod names;
pub mod rules;

pub use calico_policy::program::Direction;
pub use config::{ConfigError, DataplaneConfig, EndpointToHostAction, Marks, failsafe_from_felix};
pub use generate::{Generation, SkipReason, Skipped, generate, generate_with_report};
