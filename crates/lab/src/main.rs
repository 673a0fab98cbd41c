//! `calico-lab`: builds, inspects and removes a multi-node Calico cluster
//! made of network namespaces on this machine. See the crate docs.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use calico_lab::config::{DatastoreKind, Encapsulation, LabConfig, Mode};
use calico_lab::pod::{PodRequest, parse_labels};
use calico_lab::up::{UpOptions, up};
use calico_lab::{DEFAULT_DIR, commands, down, forward};
use clap::{Args, Parser, Subcommand};
use ipnet::Ipv4Net;

#[derive(Debug, Parser)]
#[command(
    name = "calico-lab",
    version,
    about = "A real multi-node Calico cluster on this machine, out of network namespaces",
    long_about = "calico-lab builds a Calico cluster out of network namespaces: an underlay \
(bridges and a router), one namespace per node running calico-node, pods attached by the \
calico CNI plugin, a datastore (embedded file or etcd). It prints the pods' connectivity, \
applies a sample Kubernetes NetworkPolicy and prints it again. Needs root."
)]
struct Cli {
    /// Where the lab keeps its state, datastore and logs.
    #[arg(long, global = true, env = "CALICO_LAB_DIR", default_value = DEFAULT_DIR)]
    dir: PathBuf,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Build the lab: underlay, datastore, agents, pods; then show
    /// connectivity before and after a sample policy.
    Up(UpArgs),
    /// Remove everything the lab made (safe to run twice).
    Down,
    /// Nodes with their agents' readiness, pods with their addresses.
    Status,
    /// Probe every pod pair over TCP and compare with policy explain;
    /// exits non-zero on any disagreement.
    Check {
        /// How long to wait for the agents to converge before judging.
        #[arg(long, default_value_t = 10)]
        timeout_seconds: u64,
    },
    /// Print shell exports pointing calicoctl at the lab's datastore:
    /// eval "$(calico-lab env)".
    Env,
    /// Run a command inside a node's or pod's network namespace
    /// (also `router`, `fabric`).
    Exec {
        /// A node (node-1), a pod (dev/web-1, or web-1 when unique).
        target: String,
        /// The command, after `--`.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Add or delete pods.
    #[command(subcommand)]
    Pod(PodCmd),
    /// Add Kubernetes namespaces (their labels reach policy as pcns.*).
    #[command(subcommand)]
    Namespace(NamespaceCmd),
    /// Carry connections from inside network namespaces to an address
    /// outside them (the lab runs this for etcd).
    #[command(hide = true)]
    Forward {
        #[arg(long)]
        target: SocketAddr,
        #[arg(long, required = true)]
        netns: Vec<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum PodCmd {
    /// Create a pod on a node through the calico CNI plugin.
    Add {
        /// NAMESPACE/NAME
        pod: String,
        #[arg(long)]
        node: String,
        /// k=v,k2=v2
        #[arg(long, default_value = "")]
        labels: String,
        #[arg(long, default_value = "default")]
        service_account: String,
    },
    /// Delete a pod (CNI DEL, then its namespace).
    Del {
        /// NAMESPACE/NAME
        pod: String,
    },
}

#[derive(Debug, Subcommand)]
enum NamespaceCmd {
    /// Create a namespace, or set its labels.
    Add {
        namespace: String,
        /// k=v,k2=v2
        #[arg(long, default_value = "")]
        labels: String,
    },
}

#[derive(Debug, Args)]
struct UpArgs {
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    #[arg(long, default_value_t = 2)]
    pods_per_node: usize,
    /// 1, or 2 subnets joined by a router (for CrossSubnet).
    #[arg(long, default_value_t = 1)]
    subnets: u8,
    /// VXLAN or IPIP (also the seeds' CALICO_IPV4POOL_VXLAN /
    /// CALICO_IPV4POOL_IPIP). Default: from the CALICO_IPV4POOL_VXLAN /
    /// CALICO_IPV4POOL_IPIP variables when set, else VXLAN.
    #[arg(long)]
    encapsulation_type: Option<Encapsulation>,
    /// Always, CrossSubnet or Never. Default: the mode in
    /// CALICO_IPV4POOL_VXLAN / CALICO_IPV4POOL_IPIP when set, else Always.
    /// Never: no overlay; the agents' BGP speakers (full mesh, AS 64512)
    /// carry the routes.
    #[arg(long)]
    encapsulation_mode: Option<Mode>,
    #[arg(long, env = "CALICO_IPV4POOL_CIDR", default_value = "192.168.0.0/16")]
    pod_cidr: Ipv4Net,
    #[arg(long, env = "CALICO_IPV4POOL_BLOCK_SIZE", default_value_t = 26)]
    block_size: u8,
    /// Masquerade pod traffic leaving the pool (CALICO_IPV4POOL_NAT_OUTGOING).
    #[arg(long)]
    nat_outgoing: bool,
    #[arg(long, default_value = "embedded")]
    datastore: DatastoreKind,
    /// Where calico-node, calico and calico-ipam are (default: beside
    /// calico-lab, else on PATH).
    #[arg(long, env = "CALICO_LAB_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Only build: no connectivity matrix and no sample policy.
    #[arg(long)]
    no_demo: bool,
}

/// The type and mode named by calico-node's pool variables, if any.
fn pool_variables() -> anyhow::Result<(Option<Encapsulation>, Option<Mode>)> {
    for (name, kind) in [
        ("CALICO_IPV4POOL_VXLAN", Encapsulation::Vxlan),
        ("CALICO_IPV4POOL_IPIP", Encapsulation::Ipip),
    ] {
        if let Some(value) = std::env::var(name).ok().filter(|v| !v.trim().is_empty()) {
            let mode: Mode = value
                .parse()
                .map_err(|e: String| anyhow::anyhow!("{name}: {e}"))?;
            if mode != Mode::Never {
                return Ok((Some(kind), Some(mode)));
            }
        }
    }
    Ok((None, None))
}

fn bin_dir(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let exe = std::env::current_exe().context("finding the calico-lab executable")?;
    let beside = exe.parent().map(Path::to_path_buf);
    if let Some(dir) = &beside
        && dir.join("calico-node").is_file()
    {
        return Ok(dir.clone());
    }
    if let Some(found) = calico_lab::system::find_program("calico-node", None) {
        return Ok(found.parent().map(Path::to_path_buf).unwrap_or_default());
    }
    Ok(beside.unwrap_or_default())
}

fn nat_outgoing(flag: bool) -> anyhow::Result<bool> {
    if flag {
        return Ok(true);
    }
    match std::env::var("CALICO_IPV4POOL_NAT_OUTGOING") {
        Ok(v) if !v.trim().is_empty() => match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Ok(true),
            "false" | "0" | "no" => Ok(false),
            other => anyhow::bail!("CALICO_IPV4POOL_NAT_OUTGOING={other:?} is not true or false"),
        },
        _ => Ok(false),
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = cli.dir;
    match cli.command {
        Cmd::Up(args) => {
            let (env_type, env_mode) = pool_variables()?;
            let config = LabConfig {
                nodes: args.nodes,
                pods_per_node: args.pods_per_node,
                subnets: args.subnets,
                encapsulation: args
                    .encapsulation_type
                    .or(env_type)
                    .unwrap_or(Encapsulation::Vxlan),
                mode: args.encapsulation_mode.or(env_mode).unwrap_or(Mode::Always),
                pod_cidr: args.pod_cidr,
                block_size: args.block_size,
                nat_outgoing: nat_outgoing(args.nat_outgoing)?,
                datastore: args.datastore,
            };
            up(UpOptions {
                config,
                dir,
                bin_dir: bin_dir(args.bin_dir)?,
                demo: !args.no_demo,
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Cmd::Down => down::down(&dir).map(|()| ExitCode::SUCCESS),
        Cmd::Status => commands::status(&dir),
        Cmd::Check { timeout_seconds } => {
            commands::check(&dir, Duration::from_secs(timeout_seconds))
        }
        Cmd::Env => commands::env(&dir),
        Cmd::Exec { target, command } => commands::exec(&dir, &target, &command),
        Cmd::Pod(PodCmd::Add {
            pod,
            node,
            labels,
            service_account,
        }) => {
            let Some((namespace, name)) = pod.split_once('/') else {
                anyhow::bail!("pod {pod:?}: expected NAMESPACE/NAME");
            };
            commands::pod_add(
                &dir,
                PodRequest {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    node,
                    labels: parse_labels(&labels)?,
                    service_account,
                },
            )
        }
        Cmd::Pod(PodCmd::Del { pod }) => commands::pod_del(&dir, &pod),
        Cmd::Namespace(NamespaceCmd::Add { namespace, labels }) => {
            let labels: BTreeMap<String, String> = parse_labels(&labels)?;
            commands::namespace_add(&dir, &namespace, labels)
        }
        Cmd::Forward { target, netns } => forward::run(target, &netns).map(|()| ExitCode::SUCCESS),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!(
                "calico-lab: {}",
                calico_datastore::display_chain(e.as_ref())
            );
            ExitCode::FAILURE
        }
    }
}
