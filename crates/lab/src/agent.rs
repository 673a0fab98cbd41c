//! One `calico-node` per node, run as an operator runs Calico's
//! calico-node image: start-up first (it registers the node with its
//! address, creates the default pool from the `CALICO_IPV4POOL_*`
//! variables and the cluster-wide resources), then the agent, which
//! programs policy and local routes inside the node's namespace and
//! serves its health endpoint there.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calico_netlink::NetNs;

use crate::datastore;
use crate::state::{NodeState, Process, State};
use crate::system::{self, netns_path};

/// Where the agent's health endpoint listens inside the node's namespace
/// (Calico's default `healthPort`).
pub const HEALTH_PORT: u16 = 9099;

/// The `calico-node` binary.
pub fn binary(state: &State) -> PathBuf {
    state.bin_dir.join("calico-node")
}

fn log_path(state: &State, node: &str) -> PathBuf {
    state.dir.join("logs").join(format!("{node}.log"))
}

/// The node's BGP status socket (what `calicoctl node status` reads, with
/// `CALICO_BGP_STATUS_SOCKET` pointing at it).
pub fn bgp_socket(state: &State, node: &NodeState) -> PathBuf {
    state.dir.join("nodes").join(&node.name).join("bgp.ctl")
}

/// Where the lab's agents read BGP passwords: `<dir>/secrets/NAME/KEY`, as
/// a Kubernetes secret volume would hold them.
pub fn secrets_dir(state: &State) -> PathBuf {
    state.dir.join("secrets")
}

/// The environment calico-node gets, as a DaemonSet would set it.
fn command(state: &State, node: &NodeState, mode: &str) -> anyhow::Result<Command> {
    let datastore = state
        .datastore
        .as_ref()
        .context("the lab has no datastore yet")?;
    let node_dir = state.dir.join("nodes").join(&node.name);
    std::fs::create_dir_all(&node_dir)
        .with_context(|| format!("creating {}", node_dir.display()))?;
    let mut command = Command::new(binary(state));
    command
        .arg(mode)
        .arg("--netns")
        .arg(netns_path(&node.netns))
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("NODENAME", &node.name)
        .env("CALICO_NODENAME_FILE", node_dir.join("nodename"))
        .env("IP", &node.address)
        .env(
            "CALICO_NETWORKING_BACKEND",
            state.config.networking_backend(),
        )
        .env("CALICO_BGP_STATUS_SOCKET", bgp_socket(state, node))
        .env("CALICO_MTU_FILE", node_dir.join("mtu"))
        .env("CALICO_BGP_SECRETS_DIR", secrets_dir(state))
        .env("FELIX_HEALTHENABLED", "true")
        .env("FELIX_IPV6SUPPORT", "false")
        .env("FELIX_LOGSEVERITYSCREEN", "Info")
        .env("LOG_LEVEL", "info")
        .env("NO_COLOR", "1");
    for (key, value) in datastore::environment(datastore) {
        command.env(key, value);
    }
    for (key, value) in state.config.pool_environment() {
        command.env(key, value);
    }
    Ok(command)
}

/// Runs calico-node's start-up for `node` and waits for it.
pub fn startup(state: &State, node: &NodeState) -> anyhow::Result<()> {
    let log = log_path(state, &node.name);
    let mut command = command(state, node, "-startup")?;
    let output = command
        .output()
        .with_context(|| format!("running {}", binary(state).display()))?;
    let mut text = output.stdout;
    text.extend_from_slice(&output.stderr);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .and_then(|mut f| f.write_all(&text))
        .with_context(|| format!("writing {}", log.display()))?;
    if !output.status.success() {
        bail!(
            "calico-node start-up for {} failed ({}); its log ({}):\n{}",
            node.name,
            output.status,
            log.display(),
            system::log_tail(&log, 8)
        );
    }
    Ok(())
}

/// Starts the agent for `node` (logging to `logs/<node>.log`).
pub fn start(state: &State, node: &NodeState) -> anyhow::Result<Process> {
    let log = log_path(state, &node.name);
    system::spawn(
        command(state, node, "-felix")?,
        &format!("calico-node {}", node.name),
        &log,
    )
}

/// The agent's answer on `/readiness` (or `/liveness`), asked inside the
/// node's namespace: `Ok(())` for 200, the status and body otherwise.
pub fn health(node: &NodeState, path: &str) -> Result<(), String> {
    let ns = NetNs::open(netns_path(&node.netns)).map_err(|e| e.to_string())?;
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, HEALTH_PORT));
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&address, Duration::from_millis(500)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("no health endpoint ({e})"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    let status = response
        .split_whitespace()
        .nth(1)
        .unwrap_or("?")
        .to_string();
    if status == "200" {
        Ok(())
    } else {
        let body = response.split("\r\n\r\n").nth(1).unwrap_or("").trim();
        Err(format!("{status} {body}"))
    }
}

/// Waits until every agent reports ready, failing with the log of the
/// first one that exited or stayed unready.
pub fn wait_ready(state: &State, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for node in &state.nodes {
        let Some(agent) = &node.agent else { continue };
        loop {
            if !system::is_running(agent) {
                bail!(
                    "calico-node for {} exited; its log ({}):\n{}",
                    node.name,
                    agent.log.display(),
                    system::log_tail(&agent.log, 10)
                );
            }
            match health(node, "/readiness") {
                Ok(()) => break,
                Err(reason) if Instant::now() > deadline => bail!(
                    "calico-node for {} is not ready after {timeout:?} ({reason}); its log ({}):\n{}",
                    node.name,
                    agent.log.display(),
                    system::log_tail(&agent.log, 10)
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }
    Ok(())
}

/// Whether the binary exists, with the fix when it does not.
pub fn require(bin_dir: &Path) -> anyhow::Result<()> {
    for program in ["calico-node", "calico", "calico-ipam"] {
        let path = bin_dir.join(program);
        if !path.is_file() {
            bail!(
                "{} is missing: build the binaries first (cargo build --release -p calico-node -p calico-cni), or point --bin-dir at them",
                path.display()
            );
        }
    }
    Ok(())
}
