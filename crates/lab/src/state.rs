//! The lab's record of everything it made: written after every step of
//! `up` (so a failed or interrupted `up` can still be taken down) and read
//! by every other command. One JSON file, `state.json`, in the lab
//! directory, replaced atomically.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize};

use crate::config::LabConfig;

/// The state file's name inside the lab directory.
pub const STATE_FILE: &str = "state.json";

/// A process the lab started and must stop by PID.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Process {
    pub pid: u32,
    /// The kernel's start time of the process (clock ticks since boot,
    /// field 22 of `/proc/PID/stat`): a PID reused by another process
    /// after ours ended is never signalled.
    pub start_time: u64,
    pub what: String,
    pub log: PathBuf,
}

/// A simulated node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub netns: String,
    /// Underlay address with its subnet, e.g. `10.11.1.11/24`.
    pub address: String,
    pub subnet: u8,
    /// The node's CNI configuration list (its `/etc/cni/net.d`).
    pub cni_conflist: PathBuf,
    pub agent: Option<Process>,
}

/// A pod: a namespace behind a node, attached by the CNI plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PodState {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub netns: String,
    pub container_id: String,
    pub uid: String,
    pub service_account: String,
    pub labels: BTreeMap<String, String>,
    /// The address the plugin gave it (empty until ADD succeeded).
    pub ip: String,
    /// The WorkloadEndpoint's name.
    pub endpoint: String,
}

impl PodState {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

/// How to reach the lab's datastore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum DatastoreState {
    Embedded {
        path: PathBuf,
    },
    Etcd {
        endpoint: String,
        data_dir: PathBuf,
        server: Option<Process>,
        /// Carries connections from inside each node namespace to etcd on
        /// the host's loopback (for the CNI plugin, which runs inside).
        forwarder: Option<Process>,
    },
}

/// Everything the lab made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Short random identifier in every name the lab gives the kernel.
    pub id: String,
    pub dir: PathBuf,
    /// Whether `up` created the directory (and `down` may remove it).
    pub created_dir: bool,
    pub config: LabConfig,
    /// Where `calico-node`, `calico` and `calico-ipam` are.
    pub bin_dir: PathBuf,
    pub datastore: Option<DatastoreState>,
    /// Every network namespace made, in creation order.
    pub namespaces: Vec<String>,
    pub nodes: Vec<NodeState>,
    pub pods: Vec<PodState>,
    /// Kubernetes namespaces and their labels, as `namespace add` set them.
    pub kube_namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Files and directories made inside `dir`, removed by `down`.
    pub files: Vec<PathBuf>,
}

impl State {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// The state of the lab in `dir`, `None` if no lab is up there.
    pub fn load(dir: &Path) -> anyhow::Result<Option<State>> {
        let path = State::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text)
            .map(Some)
            .with_context(|| format!("{} is not a calico-lab state file", path.display()))
    }

    /// The state of the lab in `dir`, or an error saying how to start one.
    pub fn require(dir: &Path) -> anyhow::Result<State> {
        State::load(dir)?.with_context(|| {
            format!(
                "no lab is up in {} (no {STATE_FILE}); start one with `calico-lab up`",
                dir.display()
            )
        })
    }

    /// Writes the state (to a temporary file, then renamed over the old
    /// one, so a crash never leaves half a file).
    pub fn save(&self) -> anyhow::Result<()> {
        let path = State::path(&self.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self).expect("the state serialises");
        std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
        std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))
    }

    pub fn node(&self, name: &str) -> Option<&NodeState> {
        self.nodes.iter().find(|n| n.name == name)
    }

    /// A pod by `namespace/name`, or by bare name when that is unique.
    pub fn pod(&self, key: &str) -> Option<&PodState> {
        if let Some((ns, name)) = key.split_once('/') {
            return self
                .pods
                .iter()
                .find(|p| p.namespace == ns && p.name == name);
        }
        let mut found = self.pods.iter().filter(|p| p.name == key);
        let first = found.next()?;
        found.next().is_none().then_some(first)
    }

    /// Every process the lab started, agents first.
    pub fn processes(&self) -> Vec<&Process> {
        let mut out: Vec<&Process> = self.nodes.iter().filter_map(|n| n.agent.as_ref()).collect();
        if let Some(DatastoreState::Etcd {
            server, forwarder, ..
        }) = &self.datastore
        {
            out.extend(forwarder.iter());
            out.extend(server.iter());
        }
        out
    }

    /// The netns name for a lab object: `cl-<id>-<what>`.
    pub fn netns_name(&self, what: &str) -> String {
        netns_name(&self.id, what)
    }
}

/// `cl-<id>-<what>`, with anything but letters, digits, `-`, `.` and `_`
/// replaced (namespace names become file names under /var/run/netns).
pub fn netns_name(id: &str, what: &str) -> String {
    let clean: String = what
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{}{id}-{clean}", crate::NETNS_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_lab_prefix_and_stay_file_names() {
        assert_eq!(netns_name("a1b2", "node-1"), "cl-a1b2-node-1");
        assert_eq!(netns_name("a1b2", "pod-dev/web 1"), "cl-a1b2-pod-dev_web_1");
    }

    #[test]
    fn state_round_trips_and_finds_pods() {
        let dir = tempfile::tempdir().unwrap();
        let mut state = State {
            id: "a1b2".into(),
            dir: dir.path().to_path_buf(),
            created_dir: false,
            config: LabConfig::default(),
            bin_dir: "/bin".into(),
            datastore: Some(DatastoreState::Embedded {
                path: dir.path().join("calico.db"),
            }),
            namespaces: vec!["cl-a1b2-fabric".into()],
            nodes: Vec::new(),
            pods: Vec::new(),
            kube_namespaces: BTreeMap::new(),
            files: Vec::new(),
        };
        for (ns, name) in [("dev", "web-1"), ("prod", "web-1"), ("prod", "db-1")] {
            state.pods.push(PodState {
                namespace: ns.into(),
                name: name.into(),
                node: "node-1".into(),
                netns: String::new(),
                container_id: String::new(),
                uid: String::new(),
                service_account: "default".into(),
                labels: BTreeMap::new(),
                ip: String::new(),
                endpoint: String::new(),
            });
        }
        assert!(State::load(dir.path()).unwrap().is_none());
        state.save().unwrap();
        let loaded = State::require(dir.path()).unwrap();
        assert_eq!(loaded, state);
        assert_eq!(loaded.pod("prod/web-1").unwrap().namespace, "prod");
        assert!(
            loaded.pod("web-1").is_none(),
            "ambiguous without a namespace"
        );
        assert_eq!(loaded.pod("db-1").unwrap().name, "db-1");
        std::fs::write(State::path(dir.path()), "{").unwrap();
        let error = State::load(dir.path()).unwrap_err().to_string();
        assert!(error.contains("is not a calico-lab state file"), "{error}");
    }
}
