//! The datastore at the key/value level: one [`Backend`] interface, two
//! engines.
//!
//! Owns: storing Calico's keys (`/calico/resources/v3/projectcalico.org/...`,
//! `/calico/ipam/v2/...`) and their bytes with etcd's model (a store-wide
//! revision, per-key create and mod revisions, compare-and-swap, watch from
//! a revision, compaction), and reading which datastore to use the way
//! Calico does ([`config`]).
//!
//! - [`EmbeddedBackend`]: one SQLite file in WAL mode that many processes
//!   share (the default on a single machine).
//! - [`EtcdBackend`]: etcd v3, keys and values verbatim, so an existing
//!   Calico etcd datastore is readable.
//! - [`AnyBackend`] and [`connect`]: pick one at run time from a
//!   [`config::DatastoreConfig`].
//!
//! Must not: know what a resource is (the typed layer is built on top of
//! this), spawn tasks, or run a blocking call on an async worker (unless
//! the caller asks for it with [`Execution::CallingThread`]).
//!
//! Start at [`Backend`], then [`config::DatastoreConfig::load`].

mod any;
mod backend;
pub mod config;
mod embedded;
mod error;
mod etcd;

pub use any::{AnyBackend, connect, connect_with};
pub use backend::{Backend, Event, KeyValue, Listing, Revision, WatchStream};
pub use config::{DatastoreConfig, EmbeddedConfig, EtcdConfig};
pub use embedded::{
    Durability, EmbeddedBackend, EmbeddedOptions, Execution, WAL_AUTOCHECKPOINT_PAGES,
};
pub use error::{BoxError, Error, display_chain};
pub use etcd::EtcdBackend;
