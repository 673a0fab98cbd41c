//! placeholder
pub mod agent;
pub mod config;
pub mod dataplane;
pub mod env;
pub mod health;
pub mod metrics;
pub mod nodename;
pub mod routes;
pub mod startup;
