//! The agent's Prometheus metrics, under Calico's names where Calico has
//! the metric (`felix_int_dataplane_apply_time_seconds`,
//! `felix_active_local_endpoints`, `felix_resyncs_started`, …), in the
//! Prometheus text format Calico's agent serves.
//!
//! The values are atomics written by the event loop and read by the
//! `/metrics` handler; nothing else is shared. (Written here rather than
//! with a metrics crate because the common one renames every counter to
//! `…_total`, which would break dashboards built on Calico's names.)

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A value that only goes up.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.inc_by(1);
    }

    pub fn inc_by(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicU64);

impl Gauge {
    pub fn set(&self, value: f64) {
        self.0.store(value.to_bits(), Ordering::Relaxed);
    }

    pub fn get(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

/// Observations counted into cumulative buckets.
#[derive(Debug)]
pub struct Histogram {
    bounds: Vec<f64>,
    buckets: Vec<AtomicU64>,
    count: AtomicU64,
    sum_micros: AtomicU64,
}

impl Histogram {
    pub fn new(bounds: &[f64]) -> Histogram {
        Histogram {
            bounds: bounds.to_vec(),
            buckets: bounds.iter().map(|_| AtomicU64::new(0)).collect(),
            count: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    /// Buckets for latencies from 1 ms to 10 s.
    pub fn latency() -> Histogram {
        Histogram::new(&[
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ])
    }

    pub fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        for (bound, bucket) in self.bounds.iter().zip(&self.buckets) {
            if seconds <= *bound {
                bucket.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_micros.fetch_add(
            u64::try_from(value.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}

/// Every metric the agent exports.
#[derive(Debug)]
pub struct Metrics {
    pub dataplane_apply_time: Histogram,
    pub dataplane_failures: Counter,
    pub calc_graph_update_time: Histogram,
    pub calc_graph_updates_processed: Counter,
    pub active_local_endpoints: Gauge,
    pub active_local_policies: Gauge,
    pub cluster_num_endpoints: Gauge,
    pub cluster_num_policies: Gauge,
    pub resyncs_started: Counter,
    pub resync_state: Gauge,
    pub route_table_num_routes: Gauge,
    pub nft_rules: Gauge,
    pub rejected_resources: Counter,
}

/// `felix_resync_state` values, as Calico's.
pub const RESYNC_WAIT_FOR_DATASTORE: f64 = 1.0;
pub const RESYNC_IN_PROGRESS: f64 = 2.0;
pub const RESYNC_IN_SYNC: f64 = 3.0;

impl Default for Metrics {
    fn default() -> Self {
        let metrics = Metrics {
            dataplane_apply_time: Histogram::latency(),
            dataplane_failures: Counter::default(),
            calc_graph_update_time: Histogram::latency(),
            calc_graph_updates_processed: Counter::default(),
            active_local_endpoints: Gauge::default(),
            active_local_policies: Gauge::default(),
            cluster_num_endpoints: Gauge::default(),
            cluster_num_policies: Gauge::default(),
            resyncs_started: Counter::default(),
            resync_state: Gauge::default(),
            route_table_num_routes: Gauge::default(),
            nft_rules: Gauge::default(),
            rejected_resources: Counter::default(),
        };
        metrics.resync_state.set(RESYNC_WAIT_FOR_DATASTORE);
        metrics
    }
}

fn number(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

impl Metrics {
    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let mut scalar = |name: &str, help: &str, kind: &str, value: String| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        let counter = |c: &Counter| c.get().to_string();
        let gauge = |g: &Gauge| number(g.get());
        scalar(
            "felix_int_dataplane_failures",
            "Number of times dataplane updates failed and will be retried.",
            "counter",
            counter(&self.dataplane_failures),
        );
        scalar(
            "felix_calc_graph_updates_processed",
            "Number of datastore updates processed by the policy engine.",
            "counter",
            counter(&self.calc_graph_updates_processed),
        );
        scalar(
            "felix_active_local_endpoints",
            "Number of active endpoints on this host.",
            "gauge",
            gauge(&self.active_local_endpoints),
        );
        scalar(
            "felix_active_local_policies",
            "Number of active policies on this host.",
            "gauge",
            gauge(&self.active_local_policies),
        );
        scalar(
            "felix_cluster_num_workload_endpoints",
            "Total number of endpoints cluster-wide.",
            "gauge",
            gauge(&self.cluster_num_endpoints),
        );
        scalar(
            "felix_cluster_num_policies",
            "Total number of policies cluster-wide.",
            "gauge",
            gauge(&self.cluster_num_policies),
        );
        scalar(
            "felix_resyncs_started",
            "Number of times the agent started a resync with the datastore.",
            "counter",
            counter(&self.resyncs_started),
        );
        scalar(
            "felix_resync_state",
            "Current datastore state (1 waiting for the datastore, 2 resyncing, 3 in sync).",
            "gauge",
            gauge(&self.resync_state),
        );
        scalar(
            "felix_route_table_num_routes",
            "Number of routes the agent maintains.",
            "gauge",
            gauge(&self.route_table_num_routes),
        );
        scalar(
            "felix_nft_rules",
            "Number of nftables rules in the agent's tables.",
            "gauge",
            gauge(&self.nft_rules),
        );
        scalar(
            "calico_node_rejected_resources",
            "Number of datastore resources the agent refused (logged with their key and skipped).",
            "counter",
            counter(&self.rejected_resources),
        );
        encode_histogram(
            &mut out,
            "felix_int_dataplane_apply_time_seconds",
            "Time in seconds that it took to apply a dataplane update.",
            &self.dataplane_apply_time,
        );
        encode_histogram(
            &mut out,
            "felix_calc_graph_update_time_seconds",
            "Seconds to update the policy engine and generate the ruleset for a batch of datastore updates.",
            &self.calc_graph_update_time,
        );
        out
    }
}

fn encode_histogram(out: &mut String, name: &str, help: &str, h: &Histogram) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
    for (bound, bucket) in h.bounds.iter().zip(&h.buckets) {
        let _ = writeln!(
            out,
            "{name}_bucket{{le=\"{}\"}} {}",
            number(*bound),
            bucket.load(Ordering::Relaxed)
        );
    }
    let count = h.count();
    let sum = h.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
    let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {count}");
    let _ = writeln!(out, "{name}_sum {sum}");
    let _ = writeln!(out, "{name}_count {count}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_uses_calicos_names_and_cumulative_buckets() {
        let m = Metrics::default();
        m.dataplane_failures.inc();
        m.active_local_endpoints.set(3.0);
        m.dataplane_apply_time.observe(Duration::from_millis(3));
        m.dataplane_apply_time.observe(Duration::from_millis(30));
        let text = m.encode();
        assert!(text.contains(
            "# TYPE felix_int_dataplane_failures counter\nfelix_int_dataplane_failures 1\n"
        ));
        assert!(text.contains("felix_active_local_endpoints 3\n"));
        assert!(text.contains("felix_resync_state 1\n"));
        assert!(text.contains("felix_int_dataplane_apply_time_seconds_bucket{le=\"0.0025\"} 0\n"));
        assert!(text.contains("felix_int_dataplane_apply_time_seconds_bucket{le=\"0.005\"} 1\n"));
        assert!(text.contains("felix_int_dataplane_apply_time_seconds_bucket{le=\"0.05\"} 2\n"));
        assert!(text.contains("felix_int_dataplane_apply_time_seconds_bucket{le=\"+Inf\"} 2\n"));
        assert!(text.contains("felix_int_dataplane_apply_time_seconds_sum 0.033\n"));
        assert!(!text.contains("_total"));
    }
}
