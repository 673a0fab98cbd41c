//! calicoctl: the command-line interface over the Calico datastore, a
//! drop-in for Calico's: the same commands, flags, messages, table
//! columns and YAML/JSON output, over the embedded or etcd datastore.
//!
//! Owns: parsing the command line, reading manifests, printing, exit
//! codes, and printing each error (with its whole cause chain) once. The
//! typed datastore work is `calico-client`'s; resources and their
//! validation are `calico-model`'s.
//!
//! Beyond Calico: `selector check|match`, `convert` (kept from older
//! calicoctl) and `policy explain`.
//!
//! `node status` asks the local calico-node agent over its status socket
//! (`CALICO_BGP_STATUS_SOCKET`, default `/var/run/calico/bgp.ctl`) where
//! Calico's looks for the agent's process and asks BIRD's control socket;
//! the output is the same.
//!
//! Start at [`cli`] for the commands, then [`commands`].

mod cli;
mod commands;
mod datastore;
mod files;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// This binary's version, as `calicoctl version` prints it.
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    if let Err(e) = init_logging(&cli.global.log_level) {
        eprintln!("{e}");
        return ExitCode::FAILURE;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            // The whole cause chain, once, at the edge.
            eprintln!("{}", format!("{e:#}").trim_end());
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr at the level calicoctl's `--log-level` names (its
/// default, `panic`, logs nothing).
fn init_logging(level: &str) -> anyhow::Result<()> {
    let filter = match level.to_ascii_lowercase().as_str() {
        "panic" | "fatal" => "off",
        "error" => "error",
        "warn" | "warning" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" => "trace",
        other => anyhow::bail!(
            "unknown log level: {other}, expected one of: panic, fatal, error, warn, info, debug"
        ),
    };
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .try_init()
        .map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}
