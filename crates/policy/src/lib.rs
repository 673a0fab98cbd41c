//! The policy engine: what Calico calls the calculation graph. Pure: no
//! I/O, no clock, no tokio.
//!
//! Owns:
//! - the [label index](index): incremental matching of many selectors
//!   against many labelled items, with inheritance from profiles;
//! - [policy resolution](engine): from tiers, policies, profiles, network
//!   sets and endpoints to one dataplane-neutral [program] per
//!   endpoint, the rules of every policy in use, and the members of every
//!   IP set those rules name; incrementally, reporting what changed;
//! - [Kubernetes NetworkPolicy conversion](knp), exactly as Calico does it;
//! - [explain]: a reference evaluator that judges a flow straight
//!   from the resources, and [`eval`], which judges it from the program, so
//!   the two can be compared (and a dataplane tested against either).
//!
//! Must not: read the datastore, touch the kernel, or render nftables —
//! drivers and the ruleset generator sit on top of [`program::Dataplane`].
//!
//! Start at [`PolicyEngine`]: feed it [`Update`]s, read [`Changes`] and
//! [`PolicyEngine::snapshot`]. For "can A reach B?", build a
//! [`explain::ResourceSet`] and call [`explain::explain`].
//!
//! ```
//! use calico_model::{Action, ObjectMeta, Profile, Rule, WorkloadEndpoint};
//! use calico_policy::eval::{self, Flow, Packet, Verdict};
//! use calico_policy::{EndpointKey, EngineConfig, PolicyEngine, Update};
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
//! let changes = engine.apply(pod.into()).unwrap();
//! let web = EndpointKey::workload("demo", "node1-k8s-web-eth0");
//! assert!(changes.endpoints_updated.contains(&web));
//!
//! let flow = Flow {
//!     src_endpoint: None,
//!     dst_endpoint: Some(web),
//!     packet: Packet::tcp("10.9.9.9".parse().unwrap(), 40000, "10.0.0.5".parse().unwrap(), 80),
//! };
//! assert_eq!(eval::evaluate_flow(&engine.snapshot(), &flow).verdict, Verdict::Allow);
//! ```

mod compile;
pub mod engine;
pub mod eval;
pub mod explain;
pub mod ids;
pub mod index;
pub mod knp;
mod normalize;
pub mod program;
mod render;
pub mod update;

pub use engine::{Changes, EngineConfig, EngineError, EngineStats, PolicyEngine};
pub use ids::{EndpointKey, IpSetId, NetworkSetKey, PolicyKey, PolicyKind};
pub use normalize::InvalidResource;
pub use update::Update;
