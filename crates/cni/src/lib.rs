//! calico-cni: the `calico` and `calico-ipam` CNI plugins.
pub mod args;
pub mod cli;
pub mod config;
pub mod dataplane;
pub mod datastore;
pub mod endpoint;
pub mod env;
pub mod error;
pub mod ipam;
pub mod names;
pub mod plugin;
pub mod result;
pub mod version;
