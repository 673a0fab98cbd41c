//! The agent (what Calico calls Felix): one event loop that owns all
//! state. Child tasks only send [`Msg`]s in: the datastore feeds, the
//! timers, the signal handler, and the dataplane thread's outcomes.
//!
//! ```text
//! feeds ──Feed──▶ ┌──────────── Agent (event loop) ────────────┐
//! timers ─Tick──▶ │ config layers → FelixConfig                │
//! signal ─Shutdown│ resources → PolicyEngine → Mirror          │ ──Job──▶ dataplane thread
//!                 │   → generate() ruleset, desired routes     │ ◀─Outcome─ (nft, netlink)
//!                 └────────────────────────────────────────────┘
//! ```
//!
//! Handlers are synchronous `on_…` methods. After each burst of messages
//! the loop flushes: one generation, one job. A burst is everything already
//! queued, and while datastore updates keep arriving, whatever comes within
//! 2 ms of the last (20 ms at most), so a client writing many resources at
//! once causes one nftables transaction, not one per resource. Nothing is programmed until both feeds have
//! delivered a complete listing, so a restart never applies a partial
//! view; the first apply after a restart diffs against the kernel's
//! tables, so established connections keep flowing.
//!
//! With BGP networking on, the same loop also keeps the inputs of this
//! node's BGP settings and hands the settings to the speaker's task after
//! each burst; see [`bgp`].

pub mod bgp;
mod datastore;
pub mod feed;
pub mod mirror;
mod overlay;
pub mod resources;
mod settings;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_dataplane::DataplaneConfig;
use calico_datastore::Backend;
use calico_nftables::{Family, Ruleset, TableId};
use calico_policy::program::Failsafe;
use calico_policy::{EngineConfig, PolicyEngine, Update};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};

use crate::config::{ConfigProblem, FelixConfig, Layers, LogSeverity};
use crate::dataplane::{self, Dataplane, Job, Outcome};
use crate::env::Env;
use crate::health::HealthStatus;
use crate::metrics::Metrics;
use crate::overlay::{Overlay, OverlayOutcome};
use crate::routes::{self, DesiredRoutes};
use bgp::reports::{self as node_status, Reports, Written};
use bgp::runner::{Runner, Running};
use bgp::socket::StatusServer;
use bgp::{Bgp, ClusterResources};
use feed::{Feed, FeedEvent};
use mirror::Mirror;
use overlay::OverlayState;
use settings::{Server, Ticker, spawn_ticker};

/// The protocol number on cross-node routes (tunnels and same-subnet
/// routes), apart from the local workload routes' so that neither
/// driver removes the other's.
pub const OVERLAY_ROUTE_PROTOCOL: u8 = 81;
/// The variable naming the pod MTU file (Calico's CNI plugin reads
/// `/var/lib/calico/mtu`).
pub const MTU_FILE_ENV: &str = "CALICO_MTU_FILE";

/// Name of the agent's nftables tables (one `ip`, one `ip6`).
pub const TABLE_NAME: &str = "calico";

/// How long to wait before retrying a failed dataplane update.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the loop reports its health; also the first retry of routes
/// waiting for their interface.
const HEARTBEAT: Duration = Duration::from_secs(1);
/// After a datastore update, how long the loop waits for another before
/// generating (updates often come in bursts)…
const BATCH_QUIET: Duration = Duration::from_millis(2);
/// … and the most it waits in all.
const BATCH_MAX: Duration = Duration::from_millis(20);
/// The longest wait between retries of routes waiting for an interface
/// (the periodic route refresh also retries them).
const MAX_ROUTE_RETRY: Duration = Duration::from_secs(30);

/// Changes the process's log level (installed by the binary).
pub type LogLevelHook = Box<dyn Fn(LogSeverity) + Send>;

/// How to run the agent.
pub struct AgentOptions {
    pub node_name: String,
    /// The node's network namespace (`/var/run/netns/NAME`); the process's
    /// own when `None`.
    pub netns: Option<PathBuf>,
    /// The environment (`FELIX_*` variables are configuration).
    pub env: Env,
    /// Applies `logSeverityScreen`; `None` when the level is fixed.
    pub log_level: Option<LogLevelHook>,
    /// Where metrics are recorded (shared with the caller for tests).
    pub metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AgentOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentOptions")
            .field("node_name", &self.node_name)
            .field("netns", &self.netns)
            .finish_non_exhaustive()
    }
}

/// Why the agent could not run.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("starting the dataplane")]
    Dataplane(#[from] dataplane::StartError),
    #[error("installing the signal handler")]
    Signal(#[source] std::io::Error),
}

/// The loop's input.
#[derive(Debug)]
pub enum Msg {
    Feed(Feed, FeedEvent),
    Dataplane(Outcome),
    /// The routing thread applied cross-node routes.
    Overlay(OverlayOutcome),
    Tick(Tick),
    /// The CalicoNodeStatus writer finished with the resource under a key.
    NodeStatus(String, Written),
    Shutdown,
}

/// Timer events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tick {
    /// Re-read the nftables tables and undo drift.
    RepairTables,
    /// Re-read the routing table and undo drift.
    RepairRoutes,
    Heartbeat,
    /// Retry after a failed dataplane update.
    Retry,
}

/// What a datastore key stands for, so its deletion can be undone.
#[derive(Debug, Clone, PartialEq)]
enum Known {
    /// Applied to the engine; this update removes it.
    Engine(Update),
    GlobalConfig,
    HostConfig,
    Affinity(IpNet),
    /// A Node, IP pool or BGP resource ([`ClusterResources`]).
    Cluster,
    /// An IPAM block (cross-node routes).
    Block,
    /// A CalicoNodeStatus for this node.
    NodeStatus,
    /// Read but not used (another node's FelixConfiguration, a pending
    /// affinity).
    Ignored,
}

/// Runs the agent until SIGTERM (or SIGINT). The kernel state is left in
/// place on exit, as Calico leaves it.
pub async fn run<B>(backend: B, options: AgentOptions) -> Result<(), AgentError>
where
    B: Backend + Clone + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let status_socket = bgp::status_socket(&options.env);
    let (running_tx, running) = watch::channel::<Option<Running>>(None);
    let (jobs_tx, jobs) = mpsc::unbounded_channel();
    let mut agent = Agent::new(options, tx.clone(), running_tx, jobs_tx)?;

    let mut tasks = Vec::new();
    for feed in Feed::ALL {
        let tx = tx.clone();
        tasks.push(tokio::spawn(feed::run(
            backend.clone(),
            feed,
            agent.node.clone(),
            move |event| tx.send(Msg::Feed(feed, event)).is_ok(),
        )));
    }
    tasks.push(spawn_signals(tx.clone())?);
    {
        let tx = tx.clone();
        tasks.push(tokio::spawn(node_status::writer(
            calico_client::Client::new(backend.clone()),
            jobs,
            running.clone(),
            move |key, outcome| tx.send(Msg::NodeStatus(key, outcome)).is_ok(),
        )));
    }
    // The status socket answers whether or not BGP runs (calicoctl then
    // says that no BGP daemon runs); failing to open it stops nothing.
    let status_server = match StatusServer::start(&status_socket, running) {
        Ok(server) => {
            info!(path = %status_socket.display(), "serving BGP status");
            Some(server)
        }
        Err(e) => {
            let error = calico_datastore::display_chain(&e);
            error!(error, "cannot serve BGP status");
            None
        }
    };
    agent.heartbeat = Some(spawn_ticker(&tx, Tick::Heartbeat, HEARTBEAT));
    agent.apply_config();

    'outer: while let Some(msg) = rx.recv().await {
        if !agent.on_msg(msg) {
            break;
        }
        // A burst of datastore updates becomes one generation: take what
        // is queued, and while the datastore keeps delivering, wait a
        // little for more (never longer than BATCH_MAX in all).
        let batch_end = tokio::time::Instant::now() + BATCH_MAX;
        loop {
            while let Ok(msg) = rx.try_recv() {
                if !agent.on_msg(msg) {
                    break 'outer;
                }
            }
            if !agent.datastore_pending() || tokio::time::Instant::now() >= batch_end {
                break;
            }
            match tokio::time::timeout(BATCH_QUIET, rx.recv()).await {
                Ok(Some(msg)) => {
                    if !agent.on_msg(msg) {
                        break 'outer;
                    }
                }
                Ok(None) => break 'outer,
                Err(_) => break,
            }
        }
        agent.flush();
    }
    info!("shutting down; the dataplane is left in place");
    for task in tasks {
        task.abort();
    }
    drop(status_server);
    let runner = agent.bgp.runner.take();
    agent.shutdown();
    if let Some(runner) = runner {
        runner.stop().await;
    }
    Ok(())
}

fn spawn_signals(tx: mpsc::UnboundedSender<Msg>) -> Result<JoinHandle<()>, AgentError> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).map_err(AgentError::Signal)?;
    let mut int = signal(SignalKind::interrupt()).map_err(AgentError::Signal)?;
    Ok(tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        let _ = tx.send(Msg::Shutdown);
    }))
}

/// The loop's state. See the [module docs](self).
struct Agent {
    node: String,
    netns: Option<PathBuf>,
    tx: mpsc::UnboundedSender<Msg>,

    layers: Layers,
    config: Option<FelixConfig>,
    reported_problems: Vec<ConfigProblem>,
    config_dirty: bool,
    dataplane_config: DataplaneConfig,
    failsafe: Failsafe,
    route_protocol: u8,
    log_level: Option<LogLevelHook>,

    engine: PolicyEngine,
    mirror: Mirror,
    known: HashMap<String, Known>,
    affine_blocks: BTreeSet<IpNet>,
    bgp: Bgp,
    /// Nodes, IP pools and BGP resources, shared by BGP and cross-node
    /// routing.
    cluster: ClusterResources,
    overlay: OverlayState,
    /// The cross-node routing thread; `None` if it could not start.
    overlay_thread: Option<Overlay>,
    overlay_failing: Option<String>,
    reports: Reports,
    listed: HashSet<Feed>,
    in_sync: bool,
    /// Datastore updates handled since the last flush.
    feed_updates: bool,

    dataplane: Dataplane,
    seq: u64,
    dirty_rules: bool,
    dirty_routes: bool,
    repair_tables: bool,
    repair_routes: bool,
    route_protocol_changed: bool,
    last_ruleset: Option<Arc<Ruleset>>,
    last_routes: Option<Arc<DesiredRoutes>>,
    last_skipped: Vec<String>,
    /// Jobs sent and not yet reported, with when they were sent.
    in_flight: Vec<(u64, Instant)>,
    programmed: bool,
    tables_failing: Option<String>,
    routes_failing: Option<String>,
    retry_scheduled: bool,
    /// Workload routes waiting for their interface, and when to look
    /// again (backing off while nothing changes).
    routes_waiting: usize,
    routes_retry: Option<(Instant, Duration)>,
    datastore_error: Option<String>,

    metrics: Arc<Metrics>,
    health: watch::Sender<HealthStatus>,
    heartbeat: Option<Ticker>,
    table_repair: Option<Ticker>,
    route_repair: Option<Ticker>,
    health_server: Option<Server>,
    metrics_server: Option<Server>,
}

impl Agent {
    fn new(
        options: AgentOptions,
        tx: mpsc::UnboundedSender<Msg>,
        running: watch::Sender<Option<Running>>,
        node_status_jobs: mpsc::UnboundedSender<node_status::Job>,
    ) -> Result<Agent, AgentError> {
        let AgentOptions {
            node_name,
            netns,
            env,
            log_level,
            metrics,
        } = options;
        let layers = Layers::from_env(&env);
        let runner = if bgp::enabled(&env) {
            info!("BGP networking is on: the speaker starts once the node's settings are known");
            Some(Runner::start(netns.clone(), running))
        } else {
            info!("BGP networking is off (CALICO_NETWORKING_BACKEND)");
            None
        };
        let bgp = Bgp::new(
            runner,
            bgp::router_id(&env),
            bgp::SecretsDir::from_env(&env),
        );
        let overlay_thread = {
            let tx = tx.clone();
            let mtu_file = env
                .get(MTU_FILE_ENV)
                .unwrap_or(crate::overlay::DEFAULT_MTU_FILE)
                .into();
            match Overlay::start(
                netns.as_deref(),
                OVERLAY_ROUTE_PROTOCOL,
                mtu_file,
                move |outcome| {
                    let _ = tx.send(Msg::Overlay(outcome));
                },
            ) {
                Ok(thread) => Some(thread),
                Err(e) => {
                    let error = calico_datastore::display_chain(&e);
                    error!(error, "cannot start cross-node routing");
                    None
                }
            }
        };
        let reports = Reports::new(node_name.clone(), node_status_jobs);
        let (initial, _) = layers.resolve();
        let route_protocol = routes::route_protocol(initial.device_route_protocol);
        let tables = [Family::Ip, Family::Ip6]
            .into_iter()
            .map(|f| TableId::new(f, TABLE_NAME))
            .collect();
        let report = {
            let tx = tx.clone();
            move |outcome| {
                let _ = tx.send(Msg::Dataplane(outcome));
            }
        };
        let dataplane = Dataplane::start(netns.clone(), tables, route_protocol, report)?;
        let engine = PolicyEngine::new(EngineConfig {
            local_node: Some(node_name.clone()),
            failsafe: Failsafe::default(),
        });
        let mut mirror = Mirror::default();
        mirror.reset(&engine);
        let (health, _) = watch::channel(HealthStatus::starting());
        info!(node = node_name, netns = ?netns, "agent starting");
        Ok(Agent {
            node: node_name,
            netns,
            tx,
            layers,
            config: None,
            reported_problems: Vec::new(),
            config_dirty: true,
            dataplane_config: DataplaneConfig {
                table_name: TABLE_NAME.into(),
                ..DataplaneConfig::default()
            },
            failsafe: Failsafe::default(),
            route_protocol,
            log_level,
            engine,
            mirror,
            known: HashMap::new(),
            affine_blocks: BTreeSet::new(),
            bgp,
            reports,
            cluster: ClusterResources::default(),
            overlay: OverlayState::default(),
            overlay_thread,
            overlay_failing: None,
            listed: HashSet::new(),
            in_sync: false,
            feed_updates: false,
            dataplane,
            seq: 0,
            dirty_rules: false,
            dirty_routes: false,
            repair_tables: false,
            repair_routes: false,
            route_protocol_changed: false,
            last_ruleset: None,
            last_routes: None,
            last_skipped: Vec::new(),
            in_flight: Vec::new(),
            programmed: false,
            tables_failing: None,
            routes_failing: None,
            retry_scheduled: false,
            routes_waiting: 0,
            routes_retry: None,
            datastore_error: None,
            metrics,
            health,
            heartbeat: None,
            table_repair: None,
            route_repair: None,
            health_server: None,
            metrics_server: None,
        })
    }

    /// Whether datastore updates were handled since the last flush.
    fn datastore_pending(&self) -> bool {
        self.feed_updates
    }

    /// Handles one message; `false` to stop.
    fn on_msg(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Feed(feed, event) => {
                self.feed_updates = true;
                self.on_feed(feed, event);
            }
            Msg::Dataplane(outcome) => self.on_outcome(outcome),
            Msg::Overlay(outcome) => self.on_overlay_outcome(outcome),
            Msg::Tick(tick) => self.on_tick(tick),
            Msg::NodeStatus(key, outcome) => self.reports.written(&key, outcome, Instant::now()),
            Msg::Shutdown => return false,
        }
        true
    }

    // ----- timers and outcomes -----

    fn on_tick(&mut self, tick: Tick) {
        match tick {
            Tick::Heartbeat => {
                if let Some((at, backoff)) = self.routes_retry {
                    if Instant::now() >= at {
                        self.dirty_routes = true;
                        let backoff = (backoff * 2).min(MAX_ROUTE_RETRY);
                        self.routes_retry = Some((Instant::now() + backoff, backoff));
                    }
                }
                self.publish_health();
            }
            Tick::RepairTables => {
                debug!("repairing the nftables tables");
                self.repair_tables = true;
            }
            Tick::RepairRoutes => {
                debug!("repairing routes");
                self.repair_routes = true;
                self.resend_overlay();
            }
            Tick::Retry => {
                self.retry_scheduled = false;
                // The failed part's kernel state is unknown: read it again.
                self.repair_tables |= self.tables_failing.is_some();
                self.repair_routes |= self.routes_failing.is_some();
                if self.overlay_failing.is_some() {
                    self.resend_overlay();
                }
            }
        }
    }

    fn on_outcome(&mut self, outcome: Outcome) {
        self.in_flight.retain(|(seq, _)| *seq > outcome.seq);
        self.metrics.dataplane_apply_time.observe(outcome.elapsed);
        if outcome.tables.is_some() {
            self.metrics.nft_rules.set(outcome.rules as f64);
        }
        if let Some(Ok(report)) = &outcome.routes {
            if report.waiting == 0 {
                self.routes_retry = None;
            } else if report.waiting != self.routes_waiting || self.routes_retry.is_none() {
                self.routes_retry = Some((Instant::now() + HEARTBEAT, HEARTBEAT));
            }
            self.routes_waiting = report.waiting;
            self.metrics
                .route_table_num_routes
                .set(report.programmed as f64);
        }
        match &outcome.tables {
            Some(Ok(_)) => {
                if !self.programmed {
                    info!(elapsed = ?outcome.elapsed, "dataplane programmed");
                    self.programmed = true;
                }
                self.tables_failing = None;
            }
            Some(Err(e)) => self.tables_failing = Some(format!("nftables: {e}")),
            None => {}
        }
        match &outcome.routes {
            Some(Ok(_)) => self.routes_failing = None,
            Some(Err(e)) => self.routes_failing = Some(format!("routes: {e}")),
            None => {}
        }
        if outcome.failed() {
            self.metrics.dataplane_failures.inc();
            error!(
                error = self.failing().unwrap_or_default(),
                "dataplane update failed; retrying"
            );
            self.schedule_retry();
        }
        self.publish_health();
    }

    /// Sends a retry tick after [`RETRY_AFTER`], unless one is on its way.
    fn schedule_retry(&mut self) {
        if self.retry_scheduled {
            return;
        }
        self.retry_scheduled = true;
        let tx = self.tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY_AFTER).await;
            let _ = tx.send(Msg::Tick(Tick::Retry));
        });
    }

    /// What is failing in the dataplane, if anything.
    fn failing(&self) -> Option<String> {
        let parts: Vec<&str> = [
            &self.tables_failing,
            &self.routes_failing,
            &self.overlay_failing,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
        (!parts.is_empty()).then(|| parts.join("; "))
    }

    fn publish_health(&self) {
        let reason = if !self.in_sync {
            match &self.datastore_error {
                Some(e) => format!("not in sync with the datastore: {e}"),
                None => "not in sync with the datastore yet".into(),
            }
        } else if let Some(e) = self.failing() {
            format!("dataplane updates are failing: {e}")
        } else if !self.programmed {
            "dataplane not programmed yet".into()
        } else {
            String::new()
        };
        let status = HealthStatus {
            heartbeat: Instant::now(),
            ready: reason.is_empty(),
            reason,
            applying_since: self.in_flight.first().map(|(_, at)| *at),
        };
        self.health.send_replace(status);
    }

    // ----- cross-node routing -----

    fn flush_overlay(&mut self) {
        let Some(thread) = &self.overlay_thread else {
            return;
        };
        if let Some(job) = self.overlay.flush(
            &self.node,
            &self.cluster,
            thread.host_mtu,
            OVERLAY_ROUTE_PROTOCOL,
            self.bgp.enabled(),
        ) {
            thread.send(job);
        }
    }

    /// Applies the last cross-node state again (repair, retry).
    fn resend_overlay(&mut self) {
        if let (Some(thread), Some(job)) = (&self.overlay_thread, self.overlay.last()) {
            thread.send(job);
        }
    }

    fn on_overlay_outcome(&mut self, outcome: OverlayOutcome) {
        for change in &outcome.changes {
            info!(change = change.as_str(), "cross-node routing");
        }
        match outcome.error {
            None => self.overlay_failing = None,
            Some(e) => {
                if self.overlay_failing.as_ref() != Some(&e) {
                    error!(error = e.as_str(), "cross-node routing failed; retrying");
                }
                self.overlay_failing = Some(format!("cross-node routing: {e}"));
                self.schedule_retry();
            }
        }
        self.publish_health();
    }

    // ----- flushing -----

    /// Acts on everything handled since the last flush: at most one
    /// generation and one job.
    fn flush(&mut self) {
        self.feed_updates = false;
        if self.config_dirty {
            self.apply_config();
        }
        if !self.in_sync {
            return;
        }
        self.bgp
            .flush(&self.cluster, &self.node, &self.affine_blocks);
        self.flush_overlay();
        self.reports.poll(Instant::now());
        let mut job = Job::default();
        if self.dirty_rules {
            self.dirty_rules = false;
            let started = Instant::now();
            self.mirror.dataplane.failsafe = self.failsafe.clone();
            let generation = self.mirror.generate(&self.dataplane_config);
            let skipped: Vec<String> = generation.skipped.iter().map(ToString::to_string).collect();
            if skipped != self.last_skipped {
                for s in &skipped {
                    warn!(endpoint = s, "endpoint left out of the ruleset");
                }
                self.last_skipped = skipped;
            }
            let ruleset = Arc::new(generation.ruleset);
            self.metrics
                .calc_graph_update_time
                .observe(started.elapsed());
            self.last_ruleset = Some(ruleset.clone());
            job.ruleset = Some(ruleset);
        }
        if self.dirty_routes {
            self.dirty_routes = false;
            let desired = routes::desired(
                &self.mirror.dataplane,
                &self.affine_blocks,
                self.dataplane_config.ipv6,
            );
            let desired = Arc::new(desired);
            self.last_routes = Some(desired.clone());
            job.routes = Some(desired);
        }
        if self.repair_tables {
            self.repair_tables = false;
            job.repair_tables = true;
            job.ruleset = job.ruleset.or_else(|| self.last_ruleset.clone());
        }
        if self.repair_routes {
            self.repair_routes = false;
            job.repair_routes = true;
            job.routes = job.routes.or_else(|| self.last_routes.clone());
        }
        if self.route_protocol_changed {
            self.route_protocol_changed = false;
            job.route_protocol = Some(self.route_protocol);
        }
        let stats = self.engine.stats();
        self.metrics
            .active_local_endpoints
            .set(stats.local_endpoints as f64);
        self.metrics
            .active_local_policies
            .set(stats.active_policies as f64);
        self.metrics
            .cluster_num_endpoints
            .set(stats.endpoints as f64);
        self.metrics.cluster_num_policies.set(stats.policies as f64);
        if job.ruleset.is_none() && job.routes.is_none() && job.route_protocol.is_none() {
            return;
        }
        self.seq += 1;
        job.seq = self.seq;
        self.in_flight.push((job.seq, Instant::now()));
        if !self.dataplane.send(job) {
            error!("the dataplane thread has stopped");
        }
    }

    fn shutdown(&mut self) {
        self.heartbeat = None;
        self.table_repair = None;
        self.route_repair = None;
        self.health_server = None;
        self.metrics_server = None;
        self.dataplane.stop();
        self.overlay_thread = None;
    }
}
