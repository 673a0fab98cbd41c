//! BGP networking: what Calico runs BIRD and confd for, done by
//! calico-bgp's speaker inside the agent.
//!
//! ```text
//! feeds ─▶ Node, BGPConfiguration, BGPPeer, IPPool, affine blocks
//!            │ (flush, once per burst)
//!            ▼
//!   calico_bgp::config::desired ──Desired──▶ runner task ──apply──▶ speaker (Driver)
//!                                                │                     │ learned routes
//!                                        Running (watch)               ▼
//!                       status socket ◀──────────┤          NetlinkSink: node netns kernel
//!                  CalicoNodeStatus writer ◀─────┘
//! ```
//!
//! The loop owns the resources and computes the desired BGP settings; it
//! never waits on the speaker. The [`runner`] task owns the speaker (and
//! restarts it when the listen port changes); the [`socket`] server and
//! the [`reports`] writer read the running speaker through a watch channel.
//!
//! BGP is on unless `CALICO_NETWORKING_BACKEND` is `vxlan` or `none`, as
//! Calico runs BIRD only for its `bird` backend (the default).

pub mod reports;
pub mod runner;
pub mod socket;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use calico_bgp::config::{ConfigError, Desired, Inputs, SecretSource};
use calico_model::bgp::{BgpConfiguration, BgpPeer};
use calico_model::ippool::IpPool;
use calico_model::node::Node;
use calico_model::resource::AnyResource;
use ipnet::IpNet;
use tracing::{error, info, warn};

use crate::env::Env;

/// The variable naming the agent's BGP status socket (what
/// `calicoctl node status` reads).
pub const STATUS_SOCKET_ENV: &str = "CALICO_BGP_STATUS_SOCKET";
/// Where the status socket is by default: beside Calico's BIRD control
/// socket (`/var/run/calico/bird.ctl`).
pub const DEFAULT_STATUS_SOCKET: &str = "/var/run/calico/bgp.ctl";

/// Whether BGP networking is on: Calico's `bird` backend (the default);
/// `vxlan` and `none` run no BGP.
pub fn enabled(env: &Env) -> bool {
    !matches!(
        env.get("CALICO_NETWORKING_BACKEND")
            .map(str::to_ascii_lowercase)
            .as_deref(),
        Some("vxlan" | "none")
    )
}

/// The status socket's path from the environment.
pub fn status_socket(env: &Env) -> std::path::PathBuf {
    env.get(STATUS_SOCKET_ENV)
        .unwrap_or(DEFAULT_STATUS_SOCKET)
        .into()
}

/// The variable naming the directory BGP passwords are read from.
pub const SECRETS_DIR_ENV: &str = "CALICO_BGP_SECRETS_DIR";

/// BGP passwords (`secretKeyRef`s of BGPPeers and of `nodeMeshPassword`)
/// read from a directory laid out as Kubernetes mounts secrets: the value
/// of key `K` of secret `S` is the file `<dir>/S/K` (one trailing newline
/// is dropped). Calico reads them from the Kubernetes API, which an etcd
/// or embedded datastore has not got; without a directory a peer with a
/// password is skipped with a warning. Files are read each time the BGP
/// settings are computed.
#[derive(Debug, Clone, Default)]
pub struct SecretsDir(Option<std::path::PathBuf>);

impl SecretsDir {
    pub fn from_env(env: &Env) -> SecretsDir {
        SecretsDir(env.get(SECRETS_DIR_ENV).map(Into::into))
    }
}

/// A secret's name or key as Kubernetes allows them (so neither can
/// climb out of the directory).
fn secret_part_ok(part: &str) -> bool {
    !part.is_empty()
        && part != "."
        && part != ".."
        && part
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl SecretSource for SecretsDir {
    fn secret(&self, name: &str, key: &str) -> Option<String> {
        let dir = self.0.as_ref()?;
        if !secret_part_ok(name) || !secret_part_ok(key) {
            warn!(name, key, "not a valid secret name and key");
            return None;
        }
        let path = dir.join(name).join(key);
        match std::fs::read_to_string(&path) {
            Ok(mut value) => {
                if value.ends_with('\n') {
                    value.pop();
                }
                Some(value)
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "cannot read a BGP password");
                None
            }
        }
    }
}

/// The router id from `CALICO_ROUTER_ID`, when it is an IPv4 address.
/// (Calico's `hash` form is not supported: the node's address is used.)
pub fn router_id(env: &Env) -> Option<Ipv4Addr> {
    let value = env.get("CALICO_ROUTER_ID")?;
    match value.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            warn!(
                value,
                "CALICO_ROUTER_ID is not an IPv4 address; using the node's IPv4 address"
            );
            None
        }
    }
}

/// The cluster's Nodes and IP pools, and the BGP resources, by datastore
/// key: what the BGP settings and the cross-node routes are computed from.
#[derive(Debug, Default)]
pub struct ClusterResources {
    nodes: BTreeMap<String, Node>,
    configurations: BTreeMap<String, BgpConfiguration>,
    peers: BTreeMap<String, BgpPeer>,
    pools: BTreeMap<String, IpPool>,
}

impl ClusterResources {
    pub fn nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.values()
    }

    pub fn pools(&self) -> impl Iterator<Item = &IpPool> {
        self.pools.values()
    }

    /// Whether a resource is one of the kinds kept here.
    pub fn takes(resource: &AnyResource) -> bool {
        matches!(
            resource,
            AnyResource::Node(_)
                | AnyResource::BgpConfiguration(_)
                | AnyResource::BgpPeer(_)
                | AnyResource::IpPool(_)
        )
    }

    /// Stores a resource under its key; `false` for other kinds.
    pub fn put(&mut self, key: &str, resource: AnyResource) -> bool {
        let key = key.to_owned();
        match resource {
            AnyResource::Node(r) => {
                self.nodes.insert(key, r);
            }
            AnyResource::BgpConfiguration(r) => {
                self.configurations.insert(key, r);
            }
            AnyResource::BgpPeer(r) => {
                self.peers.insert(key, r);
            }
            AnyResource::IpPool(r) => {
                self.pools.insert(key, r);
            }
            _ => return false,
        }
        true
    }

    /// Forgets the resource under `key`; whether there was one.
    pub fn remove(&mut self, key: &str) -> bool {
        self.nodes.remove(key).is_some()
            | self.configurations.remove(key).is_some()
            | self.peers.remove(key).is_some()
            | self.pools.remove(key).is_some()
    }

    /// This node's BGP settings, as Calico's confd computes them.
    pub fn desired(
        &self,
        node_name: &str,
        blocks: &BTreeSet<IpNet>,
        router_id: Option<Ipv4Addr>,
        secrets: &dyn SecretSource,
    ) -> Result<Desired, ConfigError> {
        let nodes: Vec<Node> = self.nodes.values().cloned().collect();
        let configurations: Vec<BgpConfiguration> = self.configurations.values().cloned().collect();
        let peers: Vec<BgpPeer> = self.peers.values().cloned().collect();
        let pools: Vec<IpPool> = self.pools.values().cloned().collect();
        let blocks: Vec<IpNet> = blocks.iter().copied().collect();
        calico_bgp::config::desired(&Inputs {
            node_name,
            nodes: &nodes,
            configurations: &configurations,
            peers: &peers,
            pools: &pools,
            blocks: &blocks,
            secrets,
            router_id,
        })
    }
}

/// The loop's BGP state.
#[derive(Debug)]
pub(super) struct Bgp {
    router_id: Option<Ipv4Addr>,
    secrets: SecretsDir,
    /// Inputs changed since the last computation.
    pub dirty: bool,
    /// `None` when BGP networking is off.
    pub runner: Option<runner::Runner>,
    applied: Option<Desired>,
    warnings: BTreeSet<String>,
    error: Option<String>,
}

impl Bgp {
    pub fn new(
        runner: Option<runner::Runner>,
        router_id: Option<Ipv4Addr>,
        secrets: SecretsDir,
    ) -> Bgp {
        Bgp {
            router_id,
            secrets,
            dirty: true,
            runner,
            applied: None,
            warnings: BTreeSet::new(),
            error: None,
        }
    }

    pub fn enabled(&self) -> bool {
        self.runner.is_some()
    }

    /// Recomputes the desired settings if an input changed and hands them
    /// to the speaker when they differ from the last. Problems are logged
    /// once each; none stops the agent.
    pub fn flush(
        &mut self,
        resources: &ClusterResources,
        node_name: &str,
        blocks: &BTreeSet<IpNet>,
    ) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        let Some(runner) = &self.runner else {
            return;
        };
        match resources.desired(node_name, blocks, self.router_id, &self.secrets) {
            Ok(desired) => {
                if self.error.take().is_some() {
                    info!("BGP settings can be computed again");
                }
                let warnings: BTreeSet<String> = desired.warnings.iter().cloned().collect();
                for warning in warnings.difference(&self.warnings) {
                    warn!(warning = warning.as_str(), "BGP: skipping a resource");
                }
                self.warnings = warnings;
                if self.applied.as_ref() != Some(&desired) {
                    info!(
                        peers = desired.peers.len(),
                        originations = desired.originations.len(),
                        "BGP settings changed; applying them to the speaker"
                    );
                    runner.apply(desired.clone());
                    self.applied = Some(desired);
                }
            }
            Err(e) => {
                let message = e.to_string();
                if self.error.as_ref() != Some(&message) {
                    error!(
                        error = message.as_str(),
                        "cannot compute this node's BGP settings; the speaker keeps its previous settings"
                    );
                    self.error = Some(message);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_decides_whether_bgp_runs() {
        let env = |v: Option<&str>| match v {
            Some(v) => Env::from_pairs([("CALICO_NETWORKING_BACKEND", v)]),
            None => Env::default(),
        };
        assert!(enabled(&env(None)));
        assert!(enabled(&env(Some("bird"))));
        assert!(enabled(&env(Some(""))));
        assert!(!enabled(&env(Some("vxlan"))));
        assert!(!enabled(&env(Some("none"))));
        assert!(!enabled(&env(Some("VXLAN"))));
    }

    #[test]
    fn status_socket_is_overridable() {
        assert_eq!(
            status_socket(&Env::default()),
            std::path::PathBuf::from(DEFAULT_STATUS_SOCKET)
        );
        let env = Env::from_pairs([(STATUS_SOCKET_ENV, "/tmp/n1/bgp.ctl")]);
        assert_eq!(
            status_socket(&env),
            std::path::PathBuf::from("/tmp/n1/bgp.ctl")
        );
    }

    #[test]
    fn router_id_must_be_ipv4() {
        let env = |v: &str| Env::from_pairs([("CALICO_ROUTER_ID", v)]);
        assert_eq!(
            router_id(&env("10.0.0.9")),
            Some(Ipv4Addr::new(10, 0, 0, 9))
        );
        assert_eq!(router_id(&env("hash")), None);
        assert_eq!(router_id(&Env::default()), None);
    }

    fn parse(yaml: &str) -> Vec<AnyResource> {
        calico_model::parse_documents("test.yaml", yaml)
            .unwrap()
            .into_iter()
            .map(|d| d.resource)
            .collect()
    }

    #[test]
    fn resources_come_and_go_by_key() {
        let docs = parse(
            "---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: a}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: b}
spec: {bgp: {ipv4Address: 10.0.0.2/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: bad}
spec: {peerIP: not-an-address, asNumber: 64513}
",
        );
        let mut resources = ClusterResources::default();
        for (i, doc) in docs.into_iter().enumerate() {
            assert!(ClusterResources::takes(&doc));
            assert!(resources.put(&format!("k{i}"), doc));
        }
        let blocks = BTreeSet::from(["192.168.0.0/26".parse().unwrap()]);
        let desired = resources
            .desired("a", &blocks, None, &SecretsDir::default())
            .unwrap();
        assert_eq!(desired.peers.len(), 1, "{desired:?}");
        assert_eq!(desired.peers[0].name, "Mesh_10_0_0_2");
        assert_eq!(desired.originations.len(), 0, "no pool holds the block");
        assert_eq!(desired.warnings.len(), 1, "{:?}", desired.warnings);

        assert!(resources.remove("k1"));
        assert!(!resources.remove("k1"));
        let desired = resources
            .desired("a", &blocks, None, &SecretsDir::default())
            .unwrap();
        assert!(desired.peers.is_empty());
        assert!(resources.remove("k0"));
        assert!(matches!(
            resources.desired("a", &blocks, None, &SecretsDir::default()),
            Err(ConfigError::NoSuchNode { .. })
        ));
    }

    #[test]
    fn passwords_come_from_the_secrets_directory_and_stay_inside_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bgp-secrets")).unwrap();
        std::fs::write(dir.path().join("bgp-secrets/rr-password"), "s3cret\n").unwrap();
        std::fs::write(dir.path().join("outside"), "no").unwrap();
        let env = Env::from_pairs([(SECRETS_DIR_ENV, dir.path().to_str().unwrap())]);
        let secrets = SecretsDir::from_env(&env);
        assert_eq!(
            secrets.secret("bgp-secrets", "rr-password").as_deref(),
            Some("s3cret")
        );
        assert_eq!(secrets.secret("bgp-secrets", "missing"), None);
        assert_eq!(secrets.secret("..", "outside"), None);
        assert_eq!(secrets.secret("bgp-secrets/..", "outside"), None);
        assert_eq!(
            SecretsDir::default().secret("bgp-secrets", "rr-password"),
            None
        );
    }
}
