//! The agent's settings: resolving the configuration layers and applying
//! what changed (log level, ruleset settings, failsafe ports, route
//! protocol), and the timers and HTTP servers that follow them.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use super::{Agent, Msg, TABLE_NAME, Tick};
use crate::config::FelixConfig;
use crate::health;
use crate::routes;

/// A running timer task and its period.
#[derive(Debug)]
pub(super) struct Ticker {
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
pub(super) struct Server {
    host: String,
    port: u16,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub(super) fn spawn_ticker(
    tx: &mpsc::UnboundedSender<Msg>,
    tick: Tick,
    period: Duration,
) -> Ticker {
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

impl Agent {
    /// Resolves the configuration layers and applies what changed.
    pub(super) fn apply_config(&mut self) {
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
}
