//! calico-cni: the `calico` and `calico-ipam` CNI plugins.
pub mod args;
pub mod config;
pub mod env;
pub mod error;
pub mod names;
pub mod result;
pub mod version;
