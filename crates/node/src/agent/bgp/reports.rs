//! CalicoNodeStatus: for each one whose `spec.node` is this node, the
//! agent fills the requested classes of its status (`Agent`, `BGP`,
//! `Routes`) every `spec.updatePeriodSeconds`, as Calico's calico-node
//! does. As there, a resource without a period is ignored, a period of 0
//! reports once, and the resource is written only when its status
//! changed (then with a new `lastUpdated`).
//!
//! The loop keeps the schedule ([`Reports`]); a writer task takes one due
//! resource at a time, reads the running speaker, fills the status
//! ([`fill`], pure) and writes it back, and reports the outcome to the
//! loop.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime};

use calico_bgp::driver::StatusReport;
use calico_bgp::rib::Path;
use calico_bgp::session::State;
use calico_client::Client;
use calico_datastore::Backend;
use calico_model::node::{
    BgpDaemonStatus, CalicoNodeBgpRouteStatus, CalicoNodeBgpStatus, CalicoNodePeer,
    CalicoNodeRoute, CalicoNodeRouteLearnedFrom, CalicoNodeStatus, CalicoNodeStatusStatus,
};
use ipnet::IpNet;
use tokio::sync::{mpsc, watch};
use tracing::{debug, error, info, warn};

use super::runner::Running;

/// Where the speaker's state is read from at one moment.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub report: StatusReport,
    pub paths: BTreeMap<IpNet, Path>,
    pub router_id: String,
    pub started: SystemTime,
    pub reconfigured: SystemTime,
}

impl Snapshot {
    /// Reads the running speaker; `None` when it is not running.
    pub async fn read(running: Option<Running>) -> Option<Snapshot> {
        let running = running?;
        let report = running.handle.status().await.ok()?;
        let paths = running.handle.best_paths().await.ok()?;
        Some(Snapshot {
            report,
            paths,
            router_id: running.router_id.to_string(),
            started: running.started,
            reconfigured: running.reconfigured,
        })
    }
}

/// The version our speaker reports where BIRD reports its own.
pub fn speaker_version() -> String {
    format!("calico-bgp v{}", env!("CARGO_PKG_VERSION"))
}

/// A time as BIRD's `show status` prints it (UTC).
fn bird_datetime(at: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(at)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The peer type Calico derives from a protocol name, and the address.
fn peer_kind(name: &str) -> Option<(&'static str, &'static str)> {
    let (kind, _) = name.split_once('_')?;
    Some(match kind {
        "Mesh" => ("NodeMesh", "NodeMesh"),
        "Node" => ("NodePeer", "BGPPeer"),
        "Global" => ("GlobalPeer", "BGPPeer"),
        _ => return None,
    })
}

/// Fills the classes `classes` of `status` from the speaker (`None`: not
/// running, which Calico reports as a daemon that is not ready, no peers
/// and no routes). Unknown classes are returned.
pub fn fill(
    status: &mut CalicoNodeStatusStatus,
    classes: &[String],
    speaker: Option<&Snapshot>,
) -> Vec<String> {
    let mut unknown = Vec::new();
    for class in classes {
        match class.as_str() {
            "Agent" => {
                let daemon = match speaker {
                    Some(s) => BgpDaemonStatus {
                        state: "Ready".into(),
                        version: speaker_version(),
                        router_id: s.router_id.clone(),
                        last_boot_time: bird_datetime(s.started),
                        last_reconfiguration_time: bird_datetime(s.reconfigured),
                    },
                    None => BgpDaemonStatus {
                        state: "NotReady".into(),
                        ..BgpDaemonStatus::default()
                    },
                };
                // One speaker serves both families, where Calico runs a
                // BIRD for each.
                status.agent.bird_v4 = daemon.clone();
                status.agent.bird_v6 = daemon;
            }
            "BGP" => status.bgp = speaker.map(bgp_status).unwrap_or_default(),
            "Routes" => status.routes = speaker.map(route_status).unwrap_or_default(),
            other => unknown.push(other.to_owned()),
        }
    }
    unknown
}

fn bgp_status(speaker: &Snapshot) -> CalicoNodeBgpStatus {
    let report = &speaker.report;
    let mut peers: Vec<_> = report.peers.iter().collect();
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    let mut bgp = CalicoNodeBgpStatus::default();
    for peer in peers {
        let Some((peer_type, _)) = peer_kind(&peer.name) else {
            continue;
        };
        let entry = CalicoNodePeer {
            peer_ip: peer.address.to_string(),
            peer_type: peer_type.into(),
            state: peer.state.to_string(),
            since: peer
                .since
                .map(|at| calico_bgp::status::bird_time(report.wall_time(at), report.wall))
                .unwrap_or_default(),
        };
        let established = peer.state == State::Established;
        if peer.address.is_ipv6() {
            bgp.peers_v6.push(entry);
            *if established {
                &mut bgp.number_established_v6
            } else {
                &mut bgp.number_not_established_v6
            } += 1;
        } else {
            bgp.peers_v4.push(entry);
            *if established {
                &mut bgp.number_established_v4
            } else {
                &mut bgp.number_not_established_v4
            } += 1;
        }
    }
    bgp
}

fn route_status(speaker: &Snapshot) -> CalicoNodeBgpRouteStatus {
    let names: BTreeMap<IpAddr, &str> = speaker
        .report
        .peers
        .iter()
        .map(|p| (p.address, p.name.as_str()))
        .collect();
    let mut routes = CalicoNodeBgpRouteStatus::default();
    for (prefix, path) in &speaker.paths {
        let route = match path.source.peer {
            // What we originate is, in Calico's BIRD, a static blackhole
            // route for the block.
            None => CalicoNodeRoute {
                route_type: "FIB".into(),
                destination: prefix.to_string(),
                gateway: "N/A".into(),
                interface: "blackhole".into(),
                learned_from: CalicoNodeRouteLearnedFrom {
                    source_type: "Static".into(),
                    peer_ip: String::new(),
                },
            },
            Some(peer) => {
                let source_type = names
                    .get(&peer)
                    .and_then(|name| peer_kind(name))
                    .map(|(_, source)| source)
                    .unwrap_or("BGPPeer");
                CalicoNodeRoute {
                    route_type: "FIB".into(),
                    destination: prefix.to_string(),
                    gateway: path
                        .attrs
                        .next_hop
                        .map(|h| h.to_string())
                        .unwrap_or_else(|| "N/A".into()),
                    interface: String::new(),
                    learned_from: CalicoNodeRouteLearnedFrom {
                        source_type: source_type.into(),
                        peer_ip: peer.to_string(),
                    },
                }
            }
        };
        if prefix.addr().is_ipv6() {
            routes.routes_v6.push(route);
        } else {
            routes.routes_v4.push(route);
        }
    }
    routes
}

/// A fill to do: the resource as last seen, under its datastore key.
#[derive(Debug)]
pub struct Job {
    pub key: String,
    pub resource: CalicoNodeStatus,
}

/// What the writer reports back.
#[derive(Debug)]
pub enum Written {
    /// The status had not changed; nothing was written.
    Unchanged,
    /// Written; the resource as stored now.
    Updated(Box<CalicoNodeStatus>),
    Failed(String),
}

/// The writer task: fills and writes one resource at a time, reporting
/// each outcome through `done`.
pub async fn writer<B: Backend>(
    client: Client<B>,
    mut jobs: mpsc::UnboundedReceiver<Job>,
    running: watch::Receiver<Option<Running>>,
    done: impl Fn(String, Written) -> bool,
) {
    while let Some(Job { key, resource }) = jobs.recv().await {
        let current = running.borrow().clone();
        let snapshot = Snapshot::read(current).await;
        let mut status = resource.status.clone();
        for class in fill(&mut status, &resource.spec.classes, snapshot.as_ref()) {
            warn!(
                resource = resource.metadata.name,
                class, "CalicoNodeStatus asks for a class that does not exist; skipping it"
            );
        }
        let outcome = if status == resource.status {
            Written::Unchanged
        } else {
            status.last_updated = Some(client.stamper().now());
            let mut updated = resource;
            updated.status = status;
            match client.update_typed(updated).await {
                Ok(stored) => Written::Updated(Box::new(stored)),
                Err(e) => Written::Failed(calico_datastore::display_chain(&e)),
            }
        };
        if !done(key, outcome) {
            return;
        }
    }
}

#[derive(Debug)]
struct Entry {
    resource: CalicoNodeStatus,
    due: Option<Instant>,
    busy: bool,
    /// The spec changed while the writer had it: report again at once.
    rerun: bool,
}

/// The schedule of this node's CalicoNodeStatus resources.
#[derive(Debug)]
pub struct Reports {
    node: String,
    entries: BTreeMap<String, Entry>,
    jobs: mpsc::UnboundedSender<Job>,
}

impl Reports {
    pub fn new(node: String, jobs: mpsc::UnboundedSender<Job>) -> Reports {
        Reports {
            node,
            entries: BTreeMap::new(),
            jobs,
        }
    }

    /// A CalicoNodeStatus was created or changed. Returns whether this node
    /// keeps it.
    pub fn put(&mut self, key: &str, resource: CalicoNodeStatus, now: Instant) -> bool {
        if resource.spec.node != self.node {
            self.entries.remove(key);
            return false;
        }
        if resource.spec.update_period_seconds.is_none() {
            error!(
                resource = resource.metadata.name,
                "CalicoNodeStatus has no updatePeriodSeconds; ignoring it"
            );
            self.entries.remove(key);
            return false;
        }
        match self.entries.get_mut(key) {
            // Our own write coming back, or a status-only change: the
            // schedule stands.
            Some(entry) if entry.resource.spec == resource.spec => entry.resource = resource,
            Some(entry) => {
                info!(
                    resource = resource.metadata.name,
                    "CalicoNodeStatus changed; reporting now"
                );
                entry.resource = resource;
                entry.due = Some(now);
                entry.rerun = entry.busy;
            }
            None => {
                info!(
                    resource = resource.metadata.name,
                    "reporting this node's status in a CalicoNodeStatus"
                );
                self.entries.insert(
                    key.to_owned(),
                    Entry {
                        resource,
                        due: Some(now),
                        busy: false,
                        rerun: false,
                    },
                );
            }
        }
        true
    }

    pub fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Hands every due resource to the writer.
    pub fn poll(&mut self, now: Instant) {
        for (key, entry) in &mut self.entries {
            if entry.busy || entry.due.is_none_or(|due| due > now) {
                continue;
            }
            entry.busy = true;
            let job = Job {
                key: key.clone(),
                resource: entry.resource.clone(),
            };
            if self.jobs.send(job).is_err() {
                error!("the CalicoNodeStatus writer has stopped");
                entry.busy = false;
            }
        }
    }

    /// The writer finished with `key`: keep what was stored and schedule
    /// the next report.
    pub fn written(&mut self, key: &str, outcome: Written, now: Instant) {
        let Some(entry) = self.entries.get_mut(key) else {
            return;
        };
        entry.busy = false;
        match outcome {
            Written::Unchanged => debug!(key, "node status unchanged"),
            Written::Updated(stored) => {
                if stored.spec == entry.resource.spec {
                    entry.resource = *stored;
                }
            }
            Written::Failed(error) => {
                warn!(
                    key,
                    error, "cannot write the CalicoNodeStatus; trying again next period"
                )
            }
        }
        let period = entry.resource.spec.update_period_seconds.unwrap_or(0);
        entry.due = if std::mem::take(&mut entry.rerun) {
            Some(now)
        } else {
            (period > 0).then(|| now + Duration::from_secs(u64::from(period)))
        };
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use calico_bgp::attributes::PathAttributes;
    use calico_bgp::rib::PathSource;
    use calico_bgp::speaker::PeerStatus;

    use super::*;

    fn snapshot() -> Snapshot {
        let now = Instant::now();
        // 2024-03-05 16:37:11 UTC.
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_709_656_631);
        let peer = |name: &str, address: &str, state| PeerStatus {
            name: name.into(),
            address: address.parse().unwrap(),
            remote_as: 64512,
            state,
            since: Some(now - Duration::from_secs(60)),
            info: None,
            routes_received: 1,
            routes_sent: 1,
        };
        let learned = Path {
            attrs: Arc::new(PathAttributes {
                next_hop: Some("10.0.0.2".parse().unwrap()),
                ..PathAttributes::default()
            }),
            source: PathSource {
                peer: Some("10.0.0.2".parse().unwrap()),
                external: false,
                router_id: Ipv4Addr::new(10, 0, 0, 2),
                rr_client: false,
            },
            stale: false,
        };
        let local = Path {
            attrs: Arc::new(PathAttributes::default()),
            source: PathSource::local(Ipv4Addr::new(10, 0, 0, 1)),
            stale: false,
        };
        Snapshot {
            report: StatusReport {
                now,
                wall,
                peers: vec![
                    peer("Mesh_10_0_0_2", "10.0.0.2", State::Established),
                    peer("Global_10_9_0_1", "10.9.0.1", State::Active),
                    peer("Mesh_fd00__2", "fd00::2", State::Established),
                ],
            },
            paths: BTreeMap::from([
                ("192.168.0.0/26".parse().unwrap(), local),
                ("192.168.1.0/26".parse().unwrap(), learned),
            ]),
            router_id: "10.0.0.1".into(),
            started: wall - Duration::from_secs(3600),
            reconfigured: wall - Duration::from_secs(60),
        }
    }

    fn classes(names: &[&str]) -> Vec<String> {
        names.iter().map(|c| c.to_string()).collect()
    }

    #[test]
    fn fills_the_requested_classes_from_the_speaker() {
        let mut status = CalicoNodeStatusStatus::default();
        let unknown = fill(
            &mut status,
            &classes(&["Agent", "BGP", "Routes", "Bogus"]),
            Some(&snapshot()),
        );
        assert_eq!(unknown, ["Bogus"]);
        let v4 = &status.agent.bird_v4;
        assert_eq!(
            (v4.state.as_str(), v4.router_id.as_str()),
            ("Ready", "10.0.0.1")
        );
        assert_eq!(v4.last_boot_time, "2024-03-05 15:37:11");
        assert_eq!(v4.last_reconfiguration_time, "2024-03-05 16:36:11");

        let bgp = &status.bgp;
        assert_eq!(
            (bgp.number_established_v4, bgp.number_not_established_v4),
            (1, 1)
        );
        assert_eq!(
            (bgp.number_established_v6, bgp.number_not_established_v6),
            (1, 0)
        );
        let peers: Vec<_> = bgp
            .peers_v4
            .iter()
            .map(|p| {
                (
                    p.peer_ip.as_str(),
                    p.peer_type.as_str(),
                    p.state.as_str(),
                    p.since.as_str(),
                )
            })
            .collect();
        assert_eq!(
            peers,
            [
                ("10.9.0.1", "GlobalPeer", "Active", "16:36:11"),
                ("10.0.0.2", "NodeMesh", "Established", "16:36:11"),
            ]
        );

        let routes: Vec<_> = status
            .routes
            .routes_v4
            .iter()
            .map(|r| {
                (
                    r.destination.as_str(),
                    r.gateway.as_str(),
                    r.learned_from.source_type.as_str(),
                    r.learned_from.peer_ip.as_str(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                ("192.168.0.0/26", "N/A", "Static", ""),
                ("192.168.1.0/26", "10.0.0.2", "NodeMesh", "10.0.0.2"),
            ]
        );
    }

    #[test]
    fn a_stopped_speaker_is_not_ready_and_other_classes_are_left_alone() {
        let mut status = CalicoNodeStatusStatus::default();
        fill(&mut status, &classes(&["BGP"]), Some(&snapshot()));
        assert_eq!(status.bgp.number_established_v4, 1);
        fill(&mut status, &classes(&["Agent"]), None);
        assert_eq!(status.agent.bird_v4.state, "NotReady");
        assert_eq!(status.agent.bird_v6.state, "NotReady");
        assert_eq!(
            status.bgp.number_established_v4, 1,
            "BGP was not asked for this time"
        );
        fill(&mut status, &classes(&["BGP", "Routes"]), None);
        assert_eq!(status.bgp, CalicoNodeBgpStatus::default());
    }

    fn request(node: &str, period: Option<u32>) -> CalicoNodeStatus {
        let mut r = CalicoNodeStatus::default();
        r.metadata.name = "s".into();
        r.spec.node = node.into();
        r.spec.classes = classes(&["BGP"]);
        r.spec.update_period_seconds = period;
        r
    }

    #[test]
    fn schedule_follows_the_period() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut reports = Reports::new("n1".into(), tx);
        let t0 = Instant::now();
        assert!(!reports.put("k-other", request("n2", Some(1)), t0));
        assert!(!reports.put("k-noperiod", request("n1", None), t0));
        assert!(reports.put("k", request("n1", Some(10)), t0));

        reports.poll(t0);
        assert_eq!(rx.try_recv().unwrap().key, "k");
        assert!(rx.try_recv().is_err(), "only this node's, with a period");
        reports.poll(t0);
        assert!(rx.try_recv().is_err(), "one job at a time");

        let mut stored = request("n1", Some(10));
        stored.metadata.resource_version = "7".into();
        reports.written("k", Written::Updated(Box::new(stored.clone())), t0);
        reports.poll(t0 + Duration::from_secs(9));
        assert!(rx.try_recv().is_err());
        reports.poll(t0 + Duration::from_secs(10));
        let job = rx.try_recv().unwrap();
        assert_eq!(job.resource.metadata.resource_version, "7");

        // Our write coming back changes nothing; a new spec reports now.
        let t1 = t0 + Duration::from_secs(10);
        reports.written("k", Written::Unchanged, t1);
        assert!(reports.put("k", stored.clone(), t1));
        reports.poll(t1 + Duration::from_secs(1));
        assert!(rx.try_recv().is_err());
        let mut changed = stored;
        changed.spec.update_period_seconds = Some(0);
        assert!(reports.put("k", changed, t1 + Duration::from_secs(1)));
        reports.poll(t1 + Duration::from_secs(1));
        assert!(rx.try_recv().is_ok());
        reports.written("k", Written::Unchanged, t1 + Duration::from_secs(2));
        reports.poll(t1 + Duration::from_secs(1000));
        assert!(rx.try_recv().is_err(), "a period of 0 reports once");

        reports.remove("k");
        assert!(reports.put("k", request("n1", Some(1)), t1));
        reports.poll(t1);
        assert!(rx.try_recv().is_ok());
    }
}
