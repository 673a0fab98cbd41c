//! Typed access to Calico resources over the key/value datastore: what
//! Calico calls clientv3, plus the create-or-update and read-modify-write
//! logic calicoctl layers on it.
//!
//! Owns: turning resources into the keys and JSON values Calico's etcdv3
//! backend writes (and back, with `resourceVersion` = the key's mod
//! revision), the steps around each write that Calico's client takes
//! (defaults, validation, `uid` and `creationTimestamp`, the checks that
//! need the datastore such as "the tier exists" and "pools do not
//! overlap"), storing Kubernetes NetworkPolicies in kube-controllers'
//! `knp.default.<name>` form, typed watches, and creating the built-in
//! tiers and ClusterInformation.
//!
//! Must not: print, read the environment, spawn tasks, or read a clock or
//! a random source except through its [`Stamper`].
//!
//! Start at [`Client`]: [`Client::create`], [`Client::apply`],
//! [`Client::get`], [`Client::list`], [`Client::watch`].

mod checks;
mod client;
mod defaults;
mod error;
mod init;
mod kubernetes;
mod stamp;
mod watch;

pub use checks::PROTECTED_TIERS;
pub use client::{Applied, Client, ResourceList, validate};
pub use error::{Error, ResourceId};
pub use init::CLUSTER_INFO_NAME;
pub use stamp::{FixedStamper, Stamper, SystemStamper};
pub use watch::WatchEvent;
