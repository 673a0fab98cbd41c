//! The policy engine: what Calico calls the calculation graph.
//!
//! (in progress)

pub mod index;
pub mod knp;
