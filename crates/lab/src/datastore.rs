//! The lab's datastore: the embedded file (default) or an etcd server the
//! lab starts on a free loopback port, and how every process the lab runs
//! (agents, the CNI plugin, calicoctl) is pointed at it.
//!
//! etcd listens on the host's loopback. The agents run on the host side
//! and reach it directly; the CNI plugin runs inside each node's namespace
//! (it creates the host end of the pod's veth there), where a forwarder
//! the lab starts listens on the same address and carries connections out
//! ([`crate::forward`]). So one `ETCD_ENDPOINTS` works everywhere, and no
//! address or route is added to the host.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calico_client::Client;
use calico_datastore::{AnyBackend, DatastoreConfig};
use calico_ipam::Ipam;

use crate::state::{DatastoreState, Process};
use crate::system;

/// Environment variables naming the datastore, as Calico's components read
/// them.
pub fn environment(datastore: &DatastoreState) -> Vec<(&'static str, String)> {
    match datastore {
        DatastoreState::Embedded { path } => vec![
            ("DATASTORE_TYPE", "embedded".into()),
            ("EMBEDDED_DATASTORE_PATH", path.display().to_string()),
        ],
        DatastoreState::Etcd { endpoint, .. } => vec![
            ("DATASTORE_TYPE", "etcdv3".into()),
            ("ETCD_ENDPOINTS", endpoint.clone()),
        ],
    }
}

/// The calicoctl configuration file for the datastore.
pub fn calicoctl_config(datastore: &DatastoreState) -> String {
    let spec = match datastore {
        DatastoreState::Embedded { path } => format!(
            "  datastoreType: embedded\n  embeddedDatastorePath: {}\n",
            path.display()
        ),
        DatastoreState::Etcd { endpoint, .. } => {
            format!("  datastoreType: etcdv3\n  etcdEndpoints: {endpoint}\n")
        }
    };
    format!(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {{}}\nspec:\n{spec}"
    )
}

/// The datastore configuration the components derive from
/// [`environment`].
fn config(datastore: &DatastoreState) -> DatastoreConfig {
    let vars = environment(datastore);
    DatastoreConfig::from_lookup(|name| {
        vars.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone())
    })
    .expect("the lab's own datastore settings are valid")
}

/// A connection to the datastore for the lab's own reads and writes, with
/// a small runtime to drive it: the lab is a sequential program that
/// blocks on each datastore call.
pub struct Store {
    runtime: tokio::runtime::Runtime,
    pub client: Client<AnyBackend>,
    pub ipam: Ipam<AnyBackend>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

impl Store {
    pub fn connect(datastore: &DatastoreState) -> anyhow::Result<Store> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting a runtime")?;
        let config = config(datastore);
        let backend = runtime
            .block_on(calico_datastore::connect(&config))
            .with_context(|| {
                format!("connecting to the lab's datastore ({})", config.describe())
            })?;
        Ok(Store {
            runtime,
            client: Client::new(backend.clone()),
            ipam: Ipam::new(backend),
        })
    }

    /// Runs one datastore operation to completion.
    pub fn run<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }
}

/// A loopback port free right now.
fn free_port() -> anyhow::Result<u16> {
    let listener =
        TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// Starts etcd with its data in `data_dir`, serving plain HTTP on a free
/// loopback port, and waits until it answers.
pub fn start_etcd(data_dir: &Path, log: &Path) -> anyhow::Result<(String, Process)> {
    let binary = system::find_program("etcd", None).context(
        "`etcd` was not found on PATH: --datastore etcd needs the Debian package etcd-server (scripts/setup.sh installs it)",
    )?;
    let mut last = None;
    for _ in 0..3 {
        let client_port = free_port()?;
        let peer_port = free_port()?;
        let endpoint = format!("http://127.0.0.1:{client_port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let mut command = Command::new(&binary);
        command
            .arg("--name")
            .arg("calico-lab")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen-client-urls", &endpoint])
            .args(["--advertise-client-urls", &endpoint])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("calico-lab={peer}")]);
        let process = system::spawn(command, "etcd", log)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, client_port));
        loop {
            if !system::is_running(&process) {
                let tail = system::log_tail(log, 5);
                if tail.contains("address already in use") {
                    last = Some(tail);
                    break;
                }
                bail!("etcd exited during start-up; its log:\n{tail}");
            }
            if TcpStream::connect_timeout(&address, Duration::from_millis(100)).is_ok() {
                return Ok((endpoint, process));
            }
            if Instant::now() > deadline {
                let _ = system::stop(&process, Duration::from_secs(2));
                bail!(
                    "etcd did not answer on {endpoint} within 10 s; its log:\n{}",
                    system::log_tail(log, 10)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    bail!(
        "etcd could not get a free port: {}",
        last.unwrap_or_default()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_component_is_pointed_at_the_same_datastore() {
        let embedded = DatastoreState::Embedded {
            path: "/run/calico-lab/calico.db".into(),
        };
        assert_eq!(
            environment(&embedded),
            vec![
                ("DATASTORE_TYPE", "embedded".to_string()),
                (
                    "EMBEDDED_DATASTORE_PATH",
                    "/run/calico-lab/calico.db".into()
                )
            ]
        );
        let text = calicoctl_config(&embedded);
        let parsed = DatastoreConfig::from_yaml(&text, "test").unwrap();
        assert_eq!(parsed, config(&embedded));

        let etcd = DatastoreState::Etcd {
            endpoint: "http://127.0.0.1:23790".into(),
            data_dir: "/x".into(),
            server: None,
            forwarder: None,
        };
        assert!(environment(&etcd).contains(&("ETCD_ENDPOINTS", "http://127.0.0.1:23790".into())));
        let parsed = DatastoreConfig::from_yaml(&calicoctl_config(&etcd), "test").unwrap();
        assert_eq!(parsed, config(&etcd));
    }
}
