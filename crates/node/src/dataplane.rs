//! The dataplane thread: the one place the agent writes to the kernel.
//!
//! The event loop computes desired state (an nftables [`Ruleset`], a set
//! of routes) and hands it over as a [`Job`]; this thread makes the kernel
//! match with the nftables reconciler (nft's library in process, on a
//! thread of its own inside the node's namespace, for small transactions;
//! the `nft` program run there through `nsenter` for large ones, listings,
//! and everything when the library cannot be loaded) and the route driver (a netlink
//! socket opened inside the namespace), then reports an [`Outcome`] back. Jobs
//! that arrive while one is being applied are merged, so a burst of
//! datastore updates becomes one nftables transaction.
//!
//! Blocking work stays off the async runtime's threads, and the thread
//! never changes namespace itself.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calico_datastore::display_chain;
use calico_netlink::{NetNs, Netlink};
use calico_nftables::{NftDriver, Reconciler, Report, Ruleset, TableId};
use tracing::{debug, info, warn};

use crate::routes::DesiredRoutes;
use crate::routes::kernel::{RouteDriver, RouteReport};

/// Work for the dataplane thread. `None` fields mean "unchanged".
#[derive(Debug, Clone, Default)]
pub struct Job {
    /// Increases with every job the loop sends.
    pub seq: u64,
    pub ruleset: Option<Arc<Ruleset>>,
    pub routes: Option<Arc<DesiredRoutes>>,
    /// Re-read the tables and undo drift.
    pub repair_tables: bool,
    /// Re-read the routing table and undo drift.
    pub repair_routes: bool,
    pub route_protocol: Option<u8>,
}

impl Job {
    /// Folds a later job into this one.
    fn merge(&mut self, later: Job) {
        self.seq = self.seq.max(later.seq);
        if later.ruleset.is_some() {
            self.ruleset = later.ruleset;
        }
        if later.routes.is_some() {
            self.routes = later.routes;
        }
        if later.route_protocol.is_some() {
            self.route_protocol = later.route_protocol;
        }
        self.repair_tables |= later.repair_tables;
        self.repair_routes |= later.repair_routes;
    }
}

/// What the thread did with a (merged) job.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The highest job sequence number included.
    pub seq: u64,
    /// `None`: no ruleset work was asked for.
    pub tables: Option<Result<Report, String>>,
    pub routes: Option<Result<RouteReport, String>>,
    /// Rules in the agent's tables (when the ruleset was applied).
    pub rules: usize,
    pub elapsed: Duration,
    /// When the thread started applying.
    pub started: Instant,
}

impl Outcome {
    pub fn failed(&self) -> bool {
        matches!(self.tables, Some(Err(_))) || matches!(self.routes, Some(Err(_)))
    }
}

/// Could not start the dataplane thread.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening network namespace {}", path.display())]
    Namespace {
        path: PathBuf,
        #[source]
        source: calico_netlink::NetNsError,
    },
    #[error("opening a netlink socket for routes")]
    Netlink(#[source] calico_netlink::NetlinkError),
    #[error("starting the dataplane thread")]
    Thread(#[source] std::io::Error),
}

/// The running thread; dropping it stops the thread after its current job.
#[derive(Debug)]
pub struct Dataplane {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Dataplane {
    /// Starts the thread for the namespace at `netns` (the process's own
    /// when `None`), owning `tables`. Every outcome is passed to `report`.
    pub fn start(
        netns: Option<PathBuf>,
        tables: Vec<TableId>,
        route_protocol: u8,
        report: impl Fn(Outcome) + Send + 'static,
    ) -> Result<Dataplane, StartError> {
        let (netlink, (nft, no_library)) = match &netns {
            None => (
                Netlink::open().map_err(StartError::Netlink)?,
                NftDriver::open(None),
            ),
            Some(path) => {
                let ns = NetNs::open(path).map_err(|source| StartError::Namespace {
                    path: path.clone(),
                    source,
                })?;
                (
                    Netlink::open_in(&ns).map_err(StartError::Netlink)?,
                    NftDriver::open(Some(&ns)),
                )
            }
        };
        match no_library {
            None => info!("nftables: small transactions through libnftables in process"),
            Some(e) => warn!(
                error = %display_chain(&e),
                "nftables: libnftables is not usable; running the nft program for each transaction"
            ),
        }
        let reconciler = Reconciler::new(nft, tables);
        let routes = RouteDriver::new(netlink, route_protocol);
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("dataplane".into())
            .spawn(move || run(rx, reconciler, routes, report))
            .map_err(StartError::Thread)?;
        Ok(Dataplane {
            jobs: Some(tx),
            thread: Some(thread),
        })
    }

    /// Queues a job; `false` if the thread is gone.
    pub fn send(&self, job: Job) -> bool {
        self.jobs.as_ref().is_some_and(|tx| tx.send(job).is_ok())
    }

    /// Stops the thread once its current job is done (leaving the kernel
    /// state in place).
    pub fn stop(&mut self) {
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Dataplane {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(
    jobs: Receiver<Job>,
    mut reconciler: Reconciler<NftDriver>,
    mut routes: RouteDriver,
    report: impl Fn(Outcome),
) {
    let mut ruleset: Option<Arc<Ruleset>> = None;
    let mut desired_routes: Option<Arc<DesiredRoutes>> = None;
    while let Ok(mut job) = jobs.recv() {
        while let Ok(later) = jobs.try_recv() {
            job.merge(later);
        }
        let started = Instant::now();
        let new_ruleset = job.ruleset.is_some();
        if let Some(r) = job.ruleset.take() {
            ruleset = Some(r);
        }
        let new_routes = job.routes.is_some();
        if let Some(r) = job.routes.take() {
            desired_routes = Some(r);
        }
        if let Some(protocol) = job.route_protocol {
            routes.set_protocol(protocol);
        }

        let mut rules = 0;
        let tables = match &ruleset {
            Some(desired) if new_ruleset || job.repair_tables => {
                rules = desired
                    .tables
                    .values()
                    .flat_map(|t| t.chains.values())
                    .map(|c| c.rules.len())
                    .sum();
                let result = if job.repair_tables {
                    reconciler.repair_blocking(desired)
                } else {
                    reconciler.apply_blocking(desired)
                };
                Some(result.map_err(|e| display_chain(&e)))
            }
            _ => None,
        };
        let route_result = match &desired_routes {
            Some(desired) if new_routes || job.repair_routes || job.route_protocol.is_some() => {
                let result = if job.repair_routes {
                    routes.repair(desired)
                } else {
                    routes.apply(desired)
                };
                Some(result.map_err(|e| display_chain(&e)))
            }
            _ => None,
        };
        let outcome = Outcome {
            seq: job.seq,
            tables,
            routes: route_result,
            rules,
            elapsed: started.elapsed(),
            started,
        };
        if outcome.failed() {
            warn!(?outcome, "dataplane update failed");
        } else {
            debug!(?outcome, "dataplane updated");
        }
        report(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_jobs_keep_the_latest_state_and_every_repair() {
        let first = Arc::new(Ruleset::new());
        let mut job = Job {
            seq: 1,
            ruleset: Some(first),
            repair_routes: true,
            ..Job::default()
        };
        let mut latest = Ruleset::new();
        latest.table_mut(TableId::inet("calico"));
        let latest = Arc::new(latest);
        job.merge(Job {
            seq: 2,
            repair_tables: true,
            ..Job::default()
        });
        job.merge(Job {
            seq: 3,
            ruleset: Some(latest.clone()),
            ..Job::default()
        });
        assert_eq!(job.seq, 3);
        assert!(Arc::ptr_eq(job.ruleset.as_ref().unwrap(), &latest));
        assert!(job.repair_tables && job.repair_routes);
        assert!(job.routes.is_none());
    }
}
