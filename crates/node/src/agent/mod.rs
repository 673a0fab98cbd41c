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
//! (everything already queued is taken before acting) the loop flushes:
//! one generation, one job. Nothing is programmed until both feeds have
//! delivered a complete listing, so a restart never applies a partial
//! view; the first apply after a restart diffs against the kernel's
//! tables, so established connections keep flowing.

pub mod feed;
pub mod mirror;
pub mod resources;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use calico_dataplane::{DataplaneConfig, generate_with_report};
use calico_datastore::Backend;
use calico_model::resource::AnyResource;
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
use crate::health::{self, HealthStatus};
use crate::metrics::{self, Metrics};
use crate::routes::{self, DesiredRoutes};
use feed::{Feed, FeedEvent, Item};
use mirror::Mirror;

/// Name of the agent's nftables tables (one `ip`, one `ip6`).
pub const TABLE_NAME: &str = "calico";

/// How long to wait before retrying a failed dataplane update.
const RETRY_AFTER: Duration = Duration::from_secs(1);
/// How often the loop reports its health (and retries routes waiting for
/// their interface).
const HEARTBEAT: Duration = Duration::from_secs(1);

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
    Tick(Tick),
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
    /// Read but not used (another node's FelixConfiguration, a pending
    /// affinity).
    Ignored,
}

/// A running timer task and its period.
#[derive(Debug)]
struct Ticker {
    period: Duration,
    task: JoinHandle<()>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A running HTTP server and what it was started with.
#[derive(Debug)]
struct Server {
    host: String,
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Runs the agent until SIGTERM (or SIGINT). The kernel state is left in
/// place on exit, as Calico leaves it.
pub async fn run<B>(backend: B, options: AgentOptions) -> Result<(), AgentError>
where
    B: Backend + Clone + 'static,
{
    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut agent = Agent::new(options, tx.clone())?;

    let mut tasks = Vec::new();
    for feed in [Feed::Resources, Feed::Affinities] {
        let tx = tx.clone();
        tasks.push(tokio::spawn(feed::run(
            backend.clone(),
            feed,
            agent.node.clone(),
            move |event| tx.send(Msg::Feed(feed, event)).is_ok(),
        )));
    }
    tasks.push(spawn_signals(tx.clone())?);
    agent.heartbeat = Some(spawn_ticker(&tx, Tick::Heartbeat, HEARTBEAT));
    agent.apply_config();

    while let Some(msg) = rx.recv().await {
        if !agent.on_msg(msg) {
            break;
        }
        // Take everything already queued before acting on it.
        let mut stop = false;
        while let Ok(msg) = rx.try_recv() {
            if !agent.on_msg(msg) {
                stop = true;
                break;
            }
        }
        if stop {
            break;
        }
        agent.flush();
    }
    info!("shutting down; the dataplane is left in place");
    for task in tasks {
        task.abort();
    }
    agent.shutdown();
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

fn spawn_ticker(tx: &mpsc::UnboundedSender<Msg>, tick: Tick, period: Duration) -> Ticker {
    let tx = tx.clone();
    let task = tokio::spawn(async move {
        let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if tx.send(Msg::Tick(tick)).is_err() {
                return;
            }
        }
    });
    Ticker { period, task }
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
    listed: HashSet<Feed>,
    in_sync: bool,

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
    failing: Option<String>,
    retry_scheduled: bool,
    routes_waiting: usize,
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
    fn new(options: AgentOptions, tx: mpsc::UnboundedSender<Msg>) -> Result<Agent, AgentError> {
        let AgentOptions {
            node_name,
            netns,
            env,
            log_level,
            metrics,
        } = options;
        let layers = Layers::from_env(&env);
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
            listed: HashSet::new(),
            in_sync: false,
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
            failing: None,
            retry_scheduled: false,
            routes_waiting: 0,
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

    /// Handles one message; `false` to stop.
    fn on_msg(&mut self, msg: Msg) -> bool {
        match msg {
            Msg::Feed(feed, event) => self.on_feed(feed, event),
            Msg::Dataplane(outcome) => self.on_outcome(outcome),
            Msg::Tick(tick) => self.on_tick(tick),
            Msg::Shutdown => return false,
        }
        true
    }

    // ----- datastore -----

    fn on_feed(&mut self, feed: Feed, event: FeedEvent) {
        match event {
            FeedEvent::Resyncing => {
                if self.listed.contains(&feed) {
                    self.metrics.resyncs_started.inc();
                }
                if !self.in_sync {
                    self.metrics.resync_state.set(metrics::RESYNC_IN_PROGRESS);
                }
            }
            FeedEvent::Failed(message) => {
                self.metrics
                    .resync_state
                    .set(metrics::RESYNC_WAIT_FOR_DATASTORE);
                self.datastore_error = Some(message);
            }
            FeedEvent::Listing(items) => self.on_listing(feed, items),
            FeedEvent::Put(key, item) => {
                self.datastore_error = None;
                self.on_put(key, item);
            }
            FeedEvent::Delete(key) => self.on_delete(&key),
        }
    }

    /// A complete listing: whatever is known under the feed's prefix and
    /// absent from it was deleted meanwhile.
    fn on_listing(&mut self, feed: Feed, items: Vec<(String, Item)>) {
        self.datastore_error = None;
        let listed: HashSet<&str> = items.iter().map(|(k, _)| k.as_str()).collect();
        let gone: Vec<String> = self
            .known
            .keys()
            .filter(|k| feed.owns(k, &self.node) && !listed.contains(k.as_str()))
            .cloned()
            .collect();
        for key in gone {
            self.on_delete(&key);
        }
        // Engine updates go in as one batch: one settlement for the lot.
        let mut batch = Vec::new();
        let mut keys_by_resource: HashMap<String, String> = HashMap::new();
        for (key, item) in items {
            match item {
                Item::Resource(resource) if self.engine_resource(&resource) => {
                    let Some((update, delete)) = resources::to_update(*resource) else {
                        continue;
                    };
                    if let Some(Known::Engine(old)) = self.known.get(&key) {
                        if *old != delete {
                            batch.push(old.clone());
                        }
                    }
                    keys_by_resource.insert(update.describe(), key.clone());
                    self.known.insert(key, Known::Engine(delete));
                    batch.push(update);
                }
                other => self.on_put(key, other),
            }
        }
        self.metrics
            .calc_graph_updates_processed
            .inc_by(batch.len() as u64);
        let (changes, errors) = self.engine.apply_all(batch);
        for e in errors {
            let resource = match &e {
                calico_policy::EngineError::Invalid { resource, .. }
                | calico_policy::EngineError::Conversion { resource, .. } => resource.clone(),
            };
            let key = keys_by_resource.get(&resource).cloned().unwrap_or_default();
            self.reject(&key, &calico_datastore::display_chain(&e));
        }
        self.note_changes(&changes);
        if self.listed.insert(feed) {
            info!(?feed, "initial listing received");
        }
        if !self.in_sync && self.listed.len() == 2 {
            info!("in sync with the datastore");
            self.in_sync = true;
            self.metrics.resync_state.set(metrics::RESYNC_IN_SYNC);
            self.dirty_rules = true;
            self.dirty_routes = true;
        }
        if self.in_sync {
            self.metrics.resync_state.set(metrics::RESYNC_IN_SYNC);
        }
    }

    /// Whether the engine takes this resource (not configuration).
    fn engine_resource(&self, resource: &AnyResource) -> bool {
        !matches!(resource, AnyResource::FelixConfiguration(_))
    }

    fn reject(&mut self, key: &str, error: &str) {
        self.metrics.rejected_resources.inc();
        warn!(
            key,
            error, "skipping a resource the agent cannot use; any previous version stays in force"
        );
    }

    fn on_put(&mut self, key: String, item: Item) {
        match item {
            Item::Unreadable(error) => self.reject(&key, &error),
            Item::Affinity { block, confirmed } => {
                if let Some(Known::Affinity(old)) = self.known.get(&key) {
                    self.affine_blocks.remove(old);
                }
                if confirmed {
                    self.affine_blocks.insert(block);
                    self.known.insert(key, Known::Affinity(block));
                } else {
                    self.known.insert(key, Known::Ignored);
                }
                self.dirty_routes = true;
            }
            Item::Resource(resource) => match *resource {
                AnyResource::FelixConfiguration(config) => {
                    let name = config.metadata.name.as_str();
                    if name == "default" {
                        self.layers.set_global(Some(&config.spec));
                        self.known.insert(key, Known::GlobalConfig);
                        self.config_dirty = true;
                    } else if name == format!("node.{}", self.node) {
                        self.layers.set_per_host(Some(&config.spec));
                        self.known.insert(key, Known::HostConfig);
                        self.config_dirty = true;
                    } else {
                        self.known.insert(key, Known::Ignored);
                    }
                }
                resource => {
                    let Some((update, delete)) = resources::to_update(resource) else {
                        return;
                    };
                    self.metrics.calc_graph_updates_processed.inc();
                    let describe = update.describe();
                    match self.engine.apply(update) {
                        Ok(changes) => {
                            // The key may now name a different engine
                            // object (a renamed policy): remove the old.
                            if let Some(Known::Engine(old)) =
                                self.known.insert(key, Known::Engine(delete.clone()))
                            {
                                if old != delete {
                                    self.apply_to_engine(old);
                                }
                            }
                            self.note_changes(&changes);
                        }
                        Err(e) => {
                            debug!(resource = describe, "refused by the policy engine");
                            self.reject(&key, &calico_datastore::display_chain(&e));
                        }
                    }
                }
            },
        }
    }

    fn on_delete(&mut self, key: &str) {
        match self.known.remove(key) {
            Some(Known::Engine(delete)) => self.apply_to_engine(delete),
            Some(Known::GlobalConfig) => {
                self.layers.set_global(None);
                self.config_dirty = true;
            }
            Some(Known::HostConfig) => {
                self.layers.set_per_host(None);
                self.config_dirty = true;
            }
            Some(Known::Affinity(block)) => {
                self.affine_blocks.remove(&block);
                self.dirty_routes = true;
            }
            Some(Known::Ignored) | None => {}
        }
    }

    fn apply_to_engine(&mut self, update: Update) {
        self.metrics.calc_graph_updates_processed.inc();
        match self.engine.apply(update) {
            Ok(changes) => self.note_changes(&changes),
            Err(e) => {
                warn!(error = %calico_datastore::display_chain(&e), "the policy engine refused a delete")
            }
        }
    }

    fn note_changes(&mut self, changes: &calico_policy::Changes) {
        if changes.is_empty() {
            return;
        }
        self.mirror.update(&self.engine, changes);
        self.dirty_rules = true;
        if !changes.endpoints_updated.is_empty() || !changes.endpoints_removed.is_empty() {
            self.dirty_routes = true;
        }
    }

    // ----- configuration -----

    /// Resolves the configuration layers and applies what changed.
    fn apply_config(&mut self) {
        self.config_dirty = false;
        let (config, problems) = self.layers.resolve();
        if problems != self.reported_problems {
            for problem in &problems {
                warn!(%problem, "invalid configuration value");
            }
            self.reported_problems = problems;
        }
        if self.config.as_ref() == Some(&config) {
            return;
        }
        let first = self.config.is_none();
        let old = self.config.replace(config.clone()).unwrap_or_default();
        if first {
            info!(?config, "configuration resolved");
        } else {
            info!(?config, "configuration changed");
        }

        if (first || old.log_severity_screen != config.log_severity_screen)
            && let Some(hook) = &self.log_level
        {
            hook(config.log_severity_screen);
        }
        match config.dataplane() {
            Ok(mut dp) => {
                dp.table_name = TABLE_NAME.into();
                if dp != self.dataplane_config {
                    self.dataplane_config = dp;
                    self.dirty_rules = true;
                }
            }
            Err(e) => {
                error!(error = %e, "cannot use the configuration for the ruleset; keeping the previous settings")
            }
        }
        match config.failsafe() {
            Ok(failsafe) => {
                if failsafe != self.failsafe {
                    self.failsafe = failsafe;
                    self.dirty_rules = true;
                }
            }
            Err(e) => {
                error!(error = %e, "cannot use the failsafe ports; keeping the previous ones")
            }
        }
        if first || old.ipv6_support != config.ipv6_support {
            self.dirty_routes = true;
        }
        let protocol = routes::route_protocol(config.device_route_protocol);
        if protocol != self.route_protocol {
            self.route_protocol = protocol;
            self.route_protocol_changed = true;
            self.dirty_routes = true;
        }
        self.reschedule_repairs(&config);
        self.restart_servers(&config);
    }

    fn reschedule_repairs(&mut self, config: &FelixConfig) {
        let wanted = [
            (Tick::RepairTables, config.table_refresh_interval()),
            (Tick::RepairRoutes, config.route_refresh()),
        ];
        for (tick, period) in wanted {
            let slot = match tick {
                Tick::RepairTables => &mut self.table_repair,
                _ => &mut self.route_repair,
            };
            match period {
                None => *slot = None,
                Some(p) if slot.as_ref().map(|t| t.period) != Some(p) => {
                    *slot = Some(spawn_ticker(&self.tx, tick, p));
                }
                Some(_) => {}
            }
        }
    }

    fn restart_servers(&mut self, config: &FelixConfig) {
        let health_wanted = config
            .health_enabled
            .then(|| (config.health_host.clone(), config.health_port));
        let health_now = self
            .health_server
            .as_ref()
            .map(|s| (s.host.clone(), s.port));
        if health_wanted != health_now {
            self.health_server = None;
            if let Some((host, port)) = health_wanted {
                let receiver = self.health.subscribe();
                self.health_server = self.start_server("health", &host, port, |listener| {
                    health::spawn_health(listener, receiver)
                });
            }
        }
        let metrics_wanted = config.prometheus_metrics_enabled.then(|| {
            (
                config.prometheus_metrics_host.clone(),
                config.prometheus_metrics_port,
            )
        });
        let metrics_now = self
            .metrics_server
            .as_ref()
            .map(|s| (s.host.clone(), s.port));
        if metrics_wanted != metrics_now {
            self.metrics_server = None;
            if let Some((host, port)) = metrics_wanted {
                let metrics = self.metrics.clone();
                self.metrics_server = self.start_server("metrics", &host, port, |listener| {
                    health::spawn_metrics(listener, metrics)
                });
            }
        }
    }

    fn start_server(
        &self,
        what: &'static str,
        host: &str,
        port: u16,
        spawn: impl FnOnce(std::net::TcpListener) -> std::io::Result<JoinHandle<()>>,
    ) -> Option<Server> {
        let started = health::resolve_host(host, port).and_then(|address| {
            let listener = health::bind(self.netns.as_deref(), address)?;
            Ok((address, spawn(listener)?))
        });
        match started {
            Ok((address, task)) => {
                info!(server = what, %address, "listening");
                Some(Server {
                    host: host.to_owned(),
                    port,
                    task,
                })
            }
            Err(e) => {
                error!(server = what, host, port, error = %e, "cannot listen");
                None
            }
        }
    }

    // ----- timers and outcomes -----

    fn on_tick(&mut self, tick: Tick) {
        match tick {
            Tick::Heartbeat => {
                if self.routes_waiting > 0 {
                    self.dirty_routes = true;
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
            }
            Tick::Retry => {
                self.retry_scheduled = false;
                if self.failing.is_some() {
                    self.repair_tables = true;
                    self.repair_routes = true;
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
            self.routes_waiting = report.waiting;
            self.metrics
                .route_table_num_routes
                .set(report.programmed as f64);
        }
        let mut errors = Vec::new();
        if let Some(Err(e)) = &outcome.tables {
            errors.push(format!("nftables: {e}"));
        }
        if let Some(Err(e)) = &outcome.routes {
            errors.push(format!("routes: {e}"));
        }
        if errors.is_empty() {
            if outcome.tables.as_ref().is_some_and(Result::is_ok) && !self.programmed {
                info!(elapsed = ?outcome.elapsed, "dataplane programmed");
                self.programmed = true;
            }
            if self.failing.take().is_some() {
                info!("dataplane updates succeed again");
            }
        } else {
            self.metrics.dataplane_failures.inc();
            let message = errors.join("; ");
            error!(error = message, "dataplane update failed; retrying");
            self.failing = Some(message);
            if !self.retry_scheduled {
                self.retry_scheduled = true;
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RETRY_AFTER).await;
                    let _ = tx.send(Msg::Tick(Tick::Retry));
                });
            }
        }
        self.publish_health();
    }

    fn publish_health(&self) {
        let reason = if !self.in_sync {
            match &self.datastore_error {
                Some(e) => format!("not in sync with the datastore: {e}"),
                None => "not in sync with the datastore yet".into(),
            }
        } else if let Some(e) = &self.failing {
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

    // ----- flushing -----

    /// Acts on everything handled since the last flush: at most one
    /// generation and one job.
    fn flush(&mut self) {
        if self.config_dirty {
            self.apply_config();
        }
        if !self.in_sync {
            return;
        }
        let mut job = Job::default();
        if self.dirty_rules {
            self.dirty_rules = false;
            let started = Instant::now();
            self.mirror.dataplane.failsafe = self.failsafe.clone();
            let generation = generate_with_report(&self.mirror.dataplane, &self.dataplane_config);
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
    }
}
