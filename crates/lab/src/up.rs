//! `calico-lab up`: builds the whole cluster, step by step, recording
//! each thing it makes before making it; on failure it takes down what it
//! built and reports why.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use calico_routing::Reconciler;

use crate::config::{Encapsulation, LabConfig};
use crate::datastore::{self, Store};
use crate::pod::{self, PodRequest};
use crate::state::{DatastoreState, State};
use crate::{agent, check, down, kube, probe, routes, system, topology};

/// How `up` was asked to run.
#[derive(Debug, Clone)]
pub struct UpOptions {
    pub config: LabConfig,
    pub dir: PathBuf,
    pub bin_dir: PathBuf,
    /// Measure connectivity, apply the sample policy, measure again.
    pub demo: bool,
}

/// Prints progress with the time since `up` started.
#[derive(Debug)]
pub struct Progress {
    start: Instant,
}

impl Progress {
    pub fn new() -> Progress {
        Progress {
            start: Instant::now(),
        }
    }

    pub fn step(&self, text: &str) {
        println!("[{:6.2}s] {text}", self.start.elapsed().as_secs_f64());
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// How long `up` and `pod add` wait for the agents' cross-node routes.
pub const ROUTES_TIMEOUT: Duration = Duration::from_secs(30);

/// The Kubernetes namespaces of the demo pods and their labels.
const DEMO_NAMESPACES: [&str; 2] = ["dev", "prod"];
const DEMO_APPS: [&str; 4] = ["web", "db", "api", "cache"];

/// The demo pods: per node, alternating between `dev` and `prod`.
pub fn demo_pods(config: &LabConfig) -> Vec<PodRequest> {
    let mut pods = Vec::new();
    for index in 1..=config.nodes {
        for slot in 0..config.pods_per_node {
            let app = DEMO_APPS[(slot / 2) % DEMO_APPS.len()];
            let name = if slot < 2 * DEMO_APPS.len() {
                format!("{app}-{index}")
            } else {
                format!("{app}-{index}-{slot}")
            };
            pods.push(PodRequest {
                namespace: DEMO_NAMESPACES[slot % 2].to_string(),
                name,
                node: topology::node_name(index),
                labels: BTreeMap::from([("app".to_string(), app.to_string())]),
                service_account: app.to_string(),
            });
        }
    }
    pods
}

/// A short identifier not used by any namespace on the machine.
fn new_id() -> anyhow::Result<String> {
    for attempt in 0..100u32 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mixed = (std::process::id().wrapping_mul(2_654_435_761) ^ nanos ^ attempt) & 0xffff;
        let id = format!("{mixed:04x}");
        let prefix = crate::state::netns_name(&id, "");
        let taken = std::fs::read_dir("/var/run/netns")
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            })
            .unwrap_or(false);
        if !taken {
            return Ok(id);
        }
    }
    bail!("no free lab identifier")
}

/// Refuses IPIP before anything is built when the kernel lacks it.
fn check_ipip(id: &str) -> anyhow::Result<()> {
    let netns = crate::state::netns_name(id, "ipip-probe");
    system::create_netns(&netns)?;
    let supported = Reconciler::open_default(&system::netns_path(&netns))
        .map_err(anyhow::Error::from)
        .and_then(|mut r| r.ipip_supported().map_err(anyhow::Error::from));
    system::delete_netns(&netns)?;
    if !supported? {
        bail!(
            "this kernel has no IPIP support (it cannot create an ipip device such as tunl0: the ipip module is neither built in nor loadable), so --encapsulation-type IPIP cannot work here; use --encapsulation-type VXLAN, or --encapsulation-mode Never"
        );
    }
    Ok(())
}

/// Builds the lab.
pub fn up(options: UpOptions) -> anyhow::Result<()> {
    let progress = Progress::new();
    if !nix::unistd::geteuid().is_root() {
        bail!("calico-lab needs root: it creates network namespaces, links and routes");
    }
    options.config.validate().map_err(anyhow::Error::msg)?;
    if let Some(existing) = State::load(&options.dir)? {
        bail!(
            "a lab (id {}) is already up in {}; take it down first with `calico-lab down`",
            existing.id,
            options.dir.display()
        );
    }
    agent::require(&options.bin_dir)?;
    let id = new_id()?;
    if options.config.encapsulation == Encapsulation::Ipip && options.config.encapsulates() {
        check_ipip(&id)?;
    }

    let created_dir = !options.dir.exists();
    std::fs::create_dir_all(options.dir.join("logs"))
        .with_context(|| format!("creating {}", options.dir.display()))?;
    let mut state = State {
        id,
        dir: options.dir.clone(),
        created_dir,
        config: options.config.clone(),
        bin_dir: options.bin_dir.clone(),
        datastore: None,
        namespaces: Vec::new(),
        nodes: Vec::new(),
        pods: Vec::new(),
        kube_namespaces: BTreeMap::new(),
        files: vec![options.dir.join("logs")],
    };
    state.save()?;
    let c = &options.config;
    progress.step(&format!(
        "lab {} in {}: {} node(s), {} pod(s) per node, {} subnet(s), {} {}, pool {} /{}{}, {} datastore",
        state.id,
        state.dir.display(),
        c.nodes,
        c.pods_per_node,
        c.subnets,
        c.encapsulation,
        c.mode,
        c.pod_cidr,
        c.block_size,
        if c.nat_outgoing { ", natOutgoing" } else { "" },
        c.datastore
    ));
    match build(&mut state, &options, &progress) {
        Ok(agreed) => {
            progress.step(&format!(
                "lab up in {:.1} s; try `calico-lab status`, `calico-lab check`, `eval \"$(calico-lab env)\"; calicoctl get workloadendpoints -A -o wide`, and `calico-lab down`",
                progress.elapsed().as_secs_f64()
            ));
            if !agreed {
                bail!(
                    "the measured connectivity disagrees with policy (cells marked !); the lab is left up for `calico-lab check` and the agents' logs in {}",
                    state.dir.join("logs").display()
                );
            }
            Ok(())
        }
        Err(error) => {
            eprintln!(
                "calico-lab: up failed: {}",
                calico_datastore::display_chain(error.as_ref())
            );
            eprintln!("calico-lab: taking down what was built");
            if let Err(e) = down::down(&state.dir) {
                eprintln!(
                    "calico-lab: {}",
                    calico_datastore::display_chain(e.as_ref())
                );
            }
            Err(error.context("calico-lab up failed"))
        }
    }
}

/// Every step of `up`; returns whether the demo's measurements agreed
/// with policy.
fn build(state: &mut State, options: &UpOptions, progress: &Progress) -> anyhow::Result<bool> {
    topology::build(state, |line| progress.step(line))?;

    let datastore = match options.config.datastore {
        crate::config::DatastoreKind::Embedded => DatastoreState::Embedded {
            path: state.dir.join("calico.db"),
        },
        crate::config::DatastoreKind::Etcd => {
            let data_dir = state.dir.join("etcd");
            state.files.push(data_dir.clone());
            state.save()?;
            let log = state.dir.join("logs").join("etcd.log");
            let (endpoint, server) = datastore::start_etcd(&data_dir, &log)?;
            DatastoreState::Etcd {
                endpoint,
                data_dir,
                server: Some(server),
                forwarder: None,
            }
        }
    };
    if let DatastoreState::Embedded { path } = &datastore {
        for suffix in ["", "-wal", "-shm"] {
            state
                .files
                .push(PathBuf::from(format!("{}{suffix}", path.display())));
        }
    }
    state.datastore = Some(datastore);
    state.save()?;
    start_forwarder(state)?;
    let calicoctl_cfg = state.dir.join("calicoctl.cfg");
    std::fs::write(
        &calicoctl_cfg,
        datastore::calicoctl_config(state.datastore.as_ref().expect("set above")),
    )
    .with_context(|| format!("writing {}", calicoctl_cfg.display()))?;
    state.files.push(calicoctl_cfg);
    state.files.push(state.dir.join("nodes"));
    state.save()?;
    pod::write_conflists(state)?;
    progress.step(&format!(
        "datastore: {}",
        match state.datastore.as_ref().expect("set above") {
            DatastoreState::Embedded { path } => format!("embedded, {}", path.display()),
            DatastoreState::Etcd { endpoint, .. } => format!("etcd at {endpoint}"),
        }
    ));

    // Start-up on the first node creates the pool and the cluster-wide
    // resources; the others then only register themselves.
    for node in state.nodes.clone() {
        agent::startup(state, &node)?;
    }
    progress.step(
        "calico-node start-up: nodes registered, default pool and ClusterInformation created",
    );

    let store = Store::connect(state.datastore.as_ref().expect("set above"))?;
    for index in 0..state.nodes.len() {
        let process = agent::start(state, &state.nodes[index])?;
        state.nodes[index].agent = Some(process);
        state.save()?;
    }
    agent::wait_ready(state, Duration::from_secs(30))?;
    progress.step(&format!(
        "calico-node agents ready: {}",
        state
            .nodes
            .iter()
            .map(|n| format!(
                "{} (pid {})",
                n.name,
                n.agent.as_ref().map(|a| a.pid).unwrap_or(0)
            ))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    for namespace in DEMO_NAMESPACES {
        let labels = BTreeMap::from([("env".to_string(), namespace.to_string())]);
        kube::ensure_namespace(&store, namespace, &labels)?;
        state.kube_namespaces.insert(namespace.to_string(), labels);
    }
    state.save()?;
    for request in demo_pods(&options.config) {
        let pod = pod::add(state, &store, request)?;
        progress.step(&format!(
            "pod {} on {}: {} ({})",
            pod.key(),
            pod.node,
            pod.ip,
            pod.endpoint
        ));
    }
    let took = routes::wait(state, ROUTES_TIMEOUT)?;
    progress.step(&format!(
        "cross-node routes in place on every node ({}, {:.1} s)",
        options.config.routing_description(),
        took.as_secs_f64()
    ));

    if !options.demo || state.pods.len() < 2 {
        return Ok(true);
    }
    let pods = state.pods.clone();
    let (observed, expected, skipped) = check::converge(&store, &pods, Duration::from_secs(20))?;
    for line in &skipped {
        println!("warning: left out of the expectation: {line}");
    }
    progress.step("connectivity (TCP to port 8080 of every pod; ok = connects, x = blocked):");
    print!("{}", probe::render(&pods, &observed, Some(&expected)));
    let before_ok = check::mismatches(&observed, &expected).is_empty();

    let applied = kube::apply_manifest(&store, "the sample policy", kube::SAMPLE_POLICY)?;
    progress.step(&format!(
        "applied {} (namespace prod accepts connections only from prod):",
        applied.join(", ")
    ));
    for line in kube::SAMPLE_POLICY.lines() {
        println!("    {line}");
    }
    let (observed, expected, _) = check::converge(&store, &pods, Duration::from_secs(20))?;
    progress.step("connectivity with the policy:");
    print!("{}", probe::render(&pods, &observed, Some(&expected)));
    let after_ok = check::mismatches(&observed, &expected).is_empty();
    Ok(before_ok && after_ok)
}

/// Starts the etcd forwarder into the node namespaces (etcd only).
fn start_forwarder(state: &mut State) -> anyhow::Result<()> {
    let Some(DatastoreState::Etcd { endpoint, .. }) = &state.datastore else {
        return Ok(());
    };
    let target = endpoint.trim_start_matches("http://").to_string();
    let exe = std::env::current_exe().context("finding the calico-lab executable")?;
    let mut command = Command::new(exe);
    command.args([
        "--dir",
        &state.dir.display().to_string(),
        "forward",
        "--target",
        &target,
    ]);
    for node in &state.nodes {
        command.arg("--netns").arg(system::netns_path(&node.netns));
    }
    let log = state.dir.join("logs").join("forward.log");
    let process = system::spawn(command, "etcd forwarder", &log)?;
    if let Some(DatastoreState::Etcd { forwarder, .. }) = &mut state.datastore {
        *forwarder = Some(process);
    }
    state.save()?;
    // The forwarder binds its listeners at once: wait until the first
    // node's end answers, or report why it did not.
    let Some(node) = state.nodes.first() else {
        return Ok(());
    };
    let address: std::net::SocketAddr = target.parse().context("etcd's address")?;
    let ns = calico_netlink::NetNs::open(system::netns_path(&node.netns))?;
    let deadline = Instant::now() + Duration::from_secs(2);
    while ns
        .run(|| std::net::TcpStream::connect_timeout(&address, Duration::from_millis(100)))?
        .is_err()
    {
        if Instant::now() > deadline {
            bail!(
                "the etcd forwarder did not start; its log:\n{}",
                system::log_tail(&log, 5)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn demo_pods_alternate_namespaces_on_every_node() {
        let config = LabConfig::default();
        let pods = demo_pods(&config);
        let keys: Vec<String> = pods
            .iter()
            .map(|p| format!("{}/{}@{}", p.namespace, p.name, p.node))
            .collect();
        assert_eq!(
            keys,
            vec![
                "dev/web-1@node-1",
                "prod/web-1@node-1",
                "dev/web-2@node-2",
                "prod/web-2@node-2",
                "dev/web-3@node-3",
                "prod/web-3@node-3",
            ]
        );
        let many = demo_pods(&LabConfig {
            nodes: 1,
            pods_per_node: 12,
            ..LabConfig::default()
        });
        let mut names: Vec<String> = many
            .iter()
            .map(|p| format!("{}/{}", p.namespace, p.name))
            .collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), 12, "names never collide");
    }
}
