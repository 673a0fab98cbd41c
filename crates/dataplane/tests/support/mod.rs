//! Shared by the integration tests (and the benchmark): a seeded random
//! generator, random clusters of Calico resources, and a simulated node
//! with pods in network namespaces.

#![allow(dead_code)]

pub mod cluster;
pub mod fixtures;
pub mod node;
pub mod rng;
