//! `calico-node`: start-up (node registration, default pools) and then the
//! agent, as Calico's calico-node image runs them.
//!
//! ```text
//! calico-node [-startup | -felix] [--netns NAME|PATH]
//! calico-node -felix-live | -felix-ready     (health probes, exit 0 or 1)
//! ```
//!
//! Without `-startup` or `-felix`, start-up runs and then the agent.
//! Flags take one or two dashes, as Calico's. `--netns` (or
//! `CALICO_NETNS`) runs against a node's network namespace: addresses are
//! detected, rules and routes programmed and the health and metrics ports
//! opened inside it, while the process itself stays where it is (one agent
//! per simulated node).
//!
//! BGP: `CALICO_NETWORKING_BACKEND` (`bird`, the default, runs the BGP
//! speaker; `vxlan` and `none` do not), `CALICO_ROUTER_ID` (an IPv4
//! address), and `CALICO_BGP_STATUS_SOCKET`, the Unix socket
//! `calicoctl node status` reads (default `/var/run/calico/bgp.ctl`; give
//! each agent on one machine its own).

use std::io::{IsTerminal, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use calico_client::Client;
use calico_datastore::{DatastoreConfig, connect, display_chain};
use calico_node::agent::{self, AgentOptions, LogLevelHook};
use calico_node::config::{Layers, LogSeverity};
use calico_node::env::Env;
use calico_node::metrics::Metrics;
use calico_node::startup::host::HostNetns;
use calico_node::{health, nodename, startup};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Default)]
struct Args {
    startup: bool,
    felix: bool,
    live: bool,
    ready: bool,
    version: bool,
    netns: Option<String>,
}

fn parse_args(args: impl IntoIterator<Item = String>) -> anyhow::Result<Args> {
    let mut parsed = Args::default();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        let flag = arg.trim_start_matches('-');
        let (name, value) = match flag.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (flag, None),
        };
        match name {
            "startup" => parsed.startup = true,
            "felix" => parsed.felix = true,
            "felix-live" => parsed.live = true,
            "felix-ready" => parsed.ready = true,
            "v" | "version" => parsed.version = true,
            "netns" => {
                let value = match value {
                    Some(v) => v,
                    None => args
                        .next()
                        .context("--netns needs a namespace name or path")?,
                };
                parsed.netns = Some(value);
            }
            _ => anyhow::bail!(
                "unknown argument {arg:?}; usage: calico-node [-startup | -felix] [--netns NAME|PATH] | -felix-live | -felix-ready"
            ),
        }
    }
    Ok(parsed)
}

/// A namespace name means `/var/run/netns/NAME`, as `ip netns` binds it.
fn netns_path(value: &str) -> PathBuf {
    if value.contains('/') {
        PathBuf::from(value)
    } else {
        PathBuf::from("/var/run/netns").join(value)
    }
}

type FilterHandle = reload::Handle<EnvFilter, tracing_subscriber::Registry>;

/// Logging to standard error. `LOG_LEVEL` (a level or `tracing` filter)
/// fixes the level; otherwise start-up logs at `CALICO_STARTUP_LOGLEVEL`
/// (default info) and the agent follows `logSeverityScreen`.
fn init_logging(env: &Env) -> Option<FilterHandle> {
    let fixed = env.get("LOG_LEVEL").map(|v| {
        LogSeverity::parse(v)
            .map(|s| s.directive().to_owned())
            .unwrap_or_else(|| v.to_owned())
    });
    let initial = fixed.clone().unwrap_or_else(|| {
        env.get("CALICO_STARTUP_LOGLEVEL")
            .and_then(LogSeverity::parse)
            .unwrap_or(LogSeverity::Info)
            .directive()
            .to_owned()
    });
    let filter = EnvFilter::try_new(&initial).unwrap_or_else(|_| EnvFilter::new("info"));
    let (layer, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(layer)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    if fixed.is_some() { None } else { Some(handle) }
}

fn level_hook(handle: FilterHandle) -> LogLevelHook {
    Box::new(move |severity: LogSeverity| {
        let _ = handle.reload(EnvFilter::new(severity.directive()));
    })
}

/// `-felix-live` / `-felix-ready`: asks the health endpoint (inside the
/// node's namespace when given).
fn probe(env: &Env, netns: Option<PathBuf>, path: &str) -> anyhow::Result<()> {
    let (config, _) = Layers::from_env(env).resolve();
    let address = health::resolve_host(&config.health_host, config.health_port)?;
    let address = if address.ip().is_unspecified() {
        std::net::SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), address.port())
    } else {
        address
    };
    let connect = move || TcpStream::connect_timeout(&address, Duration::from_secs(5));
    let mut stream = match netns {
        None => connect(),
        Some(path) => calico_netlink::NetNs::open(&path)?.run(connect)?,
    }
    .with_context(|| format!("connecting to the health endpoint {address}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split_whitespace().nth(1).unwrap_or_default();
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default().trim();
    anyhow::ensure!(status == "200", "{path}: {status} {body}");
    Ok(())
}

async fn run(args: Args, env: Env, log: Option<FilterHandle>) -> anyhow::Result<()> {
    let netns = args
        .netns
        .clone()
        .or_else(|| env.get("CALICO_NETNS").map(str::to_owned))
        .map(|n| netns_path(&n));
    let node_name = nodename::determine(&env, nodename::kernel_hostname)?;
    let datastore = DatastoreConfig::from_env().context("reading the datastore configuration")?;
    let backend = connect(&datastore)
        .await
        .with_context(|| format!("connecting to the datastore {}", datastore.describe()))?;

    let run_startup = args.startup || !args.felix;
    let run_agent = args.felix || !args.startup;
    if run_startup {
        let host = match &netns {
            Some(path) => HostNetns::at(path),
            None => HostNetns::current(),
        };
        let client = Client::new(backend.clone());
        startup::run(&client, &env, &node_name, &host).await?;
    }
    if run_agent {
        let options = AgentOptions {
            node_name,
            netns,
            env,
            log_level: log.map(level_hook),
            metrics: Arc::new(Metrics::default()),
        };
        agent::run(backend, options).await?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let env = Env::from_process();
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("calico-node: {e}");
            return ExitCode::from(2);
        }
    };
    if args.version {
        println!("{}", startup::CALICO_VERSION);
        return ExitCode::SUCCESS;
    }
    if args.live || args.ready {
        let netns = args
            .netns
            .clone()
            .or_else(|| env.get("CALICO_NETNS").map(str::to_owned))
            .map(|n| netns_path(&n));
        let path = if args.ready {
            "/readiness"
        } else {
            "/liveness"
        };
        return match probe(&env, netns, path) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("calico-node: {}", display_chain(e.as_ref()));
                ExitCode::FAILURE
            }
        };
    }
    let log = init_logging(&env);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("calico-node: starting the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args, env, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{}", display_chain(e.as_ref()));
            eprintln!("calico-node: {}", display_chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_take_one_or_two_dashes() {
        let args = |a: &[&str]| parse_args(a.iter().map(|s| s.to_string()));
        let a = args(&["-felix", "--netns", "node1"]).unwrap();
        assert!(a.felix && !a.startup);
        assert_eq!(a.netns.as_deref(), Some("node1"));
        let a = args(&["--startup", "-netns=/proc/1/ns/net"]).unwrap();
        assert!(a.startup);
        assert_eq!(a.netns.as_deref(), Some("/proc/1/ns/net"));
        assert!(args(&["-felix-ready"]).unwrap().ready);
        assert!(args(&["--bogus"]).is_err());
        assert!(args(&["--netns"]).is_err());
        assert_eq!(netns_path("n1"), PathBuf::from("/var/run/netns/n1"));
        assert_eq!(netns_path("/x/y"), PathBuf::from("/x/y"));
    }
}
