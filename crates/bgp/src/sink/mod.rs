//! Where learned routes go: the [`RouteSink`] trait, an in-memory sink for
//! tests and embedders, and [`NetlinkSink`], which installs routes in a
//! network namespace's main table.
//!
//! The driver calls a sink from a thread of its own (never the event loop),
//! one batch of [`RouteChange`]s at a time, in order. A sink holds the
//! routes it was asked for and makes the kernel match; a failure to install
//! one route is logged and retried with the next batch, never fatal.

mod netlink;
mod pipeline;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use ipnet::IpNet;

pub use netlink::{NetlinkSink, ROUTE_PROTOCOL, SinkError};

use crate::speaker::RouteChange;

/// Receives the speaker's route changes.
pub trait RouteSink: Send + 'static {
    /// Applies one batch of changes, in order. An empty batch comes every
    /// second or so when nothing else does: the moment to retry failures.
    fn apply(&mut self, changes: Vec<RouteChange>);
}

/// A sink that only remembers: prefix → next hop. Clones share the table,
/// so a test can watch what a running speaker installed.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    routes: Arc<Mutex<BTreeMap<IpNet, IpAddr>>>,
}

impl MemorySink {
    pub fn new() -> Self {
        MemorySink::default()
    }

    /// The routes as they stand.
    pub fn routes(&self) -> BTreeMap<IpNet, IpAddr> {
        self.routes.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

impl RouteSink for MemorySink {
    fn apply(&mut self, changes: Vec<RouteChange>) {
        let Ok(mut routes) = self.routes.lock() else {
            return;
        };
        for change in changes {
            match change {
                RouteChange::Replace {
                    prefix, next_hop, ..
                } => {
                    routes.insert(prefix, next_hop);
                }
                RouteChange::Remove { prefix } => {
                    routes.remove(&prefix);
                }
            }
        }
    }
}
