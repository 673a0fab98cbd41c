//! The policy engine: what Calico calls the calculation graph.
//!
//! (in progress)

mod compile;
pub mod engine;
pub mod eval;
pub mod explain;
pub mod ids;
pub mod index;
pub mod knp;
mod normalize;
pub mod program;
pub mod update;

pub use engine::{Changes, EngineConfig, EngineError, PolicyEngine};
pub use ids::{EndpointKey, IpSetId, NetworkSetKey, PolicyKey, PolicyKind};
pub use normalize::InvalidResource;
pub use update::Update;
