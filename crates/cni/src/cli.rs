//! The process edge of the `calico` and `calico-ipam` binaries: flags,
//! environment, stdin, the host's files, logging, the datastore
//! connection, the runtime; then the result or the error on stdout and the
//! exit code. Everything else happens in [`crate::plugin`].
//!
//! Like Calico, one program serves both names: it looks at the name it was
//! run as, so `calico-ipam` may be a copy of or a link to `calico`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use calico_client::Client;
use calico_datastore::{AnyBackend, DatastoreConfig, EmbeddedOptions, Execution};

use crate::config::{DEFAULT_MTU_FILE, NetConf};
use crate::dataplane::NetlinkDataplane;
use crate::datastore::{BlockAllocator, DatastoreStore};
use crate::endpoint::{EndpointStore, NoPodInfo};
use crate::env::{CniEnv, Command};
use crate::error::{CniError, ErrorCode};
use crate::ipam::{self, CalicoIpam, ExecIpam};
use crate::plugin::{self, HostFacts, Invocation, Services};
use crate::version::SpecVersion;

/// Which plugin this process is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Program {
    /// `calico`: the interface plugin.
    Calico,
    /// `calico-ipam`: Calico's IPAM plugin, for runtimes that delegate to it.
    CalicoIpam,
}

impl Program {
    /// The program named by `argv[0]` (`calico-ipam`, else `calico`).
    pub fn from_argv0(argv0: &str) -> Program {
        match Path::new(argv0).file_name().and_then(|n| n.to_str()) {
            Some(name) if name.starts_with("calico-ipam") => Program::CalicoIpam,
            _ => Program::Calico,
        }
    }

    fn about(self) -> &'static str {
        match self {
            Program::Calico => "Calico CNI plugin",
            Program::CalicoIpam => "Calico CNI IPAM",
        }
    }
}

/// Runs the program with the process's arguments, environment and stdin.
pub fn main(program: Program) -> ExitCode {
    let flags: Vec<String> = std::env::args().skip(1).collect();
    if flags.iter().any(|f| f == "-v" || f == "--version") {
        println!("v{}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    if program == Program::Calico && flags.iter().any(|f| f == "-t") {
        return test_connection();
    }

    let env = match CniEnv::from_lookup(|k| std::env::var(k).ok()) {
        Ok(env) => env,
        Err(e) if std::env::var_os("CNI_COMMAND").is_none() => {
            // Run by a person, not a runtime: say what this is.
            eprintln!("{} v{}", program.about(), env!("CARGO_PKG_VERSION"));
            let versions: Vec<&str> = SpecVersion::ALL.iter().map(|v| v.as_str()).collect();
            eprintln!("CNI protocol versions supported: {}", versions.join(", "));
            let _ = e;
            return ExitCode::SUCCESS;
        }
        Err(e) => return fail(&e, ""),
    };

    let mut stdin = Vec::new();
    if env.command != Command::Version
        && let Err(e) = std::io::stdin().read_to_end(&mut stdin)
    {
        return fail(
            &CniError::new(ErrorCode::Io, format!("error reading from stdin: {e}")),
            "",
        );
    }
    if env.command == Command::Version {
        let _ = std::io::stdin().read_to_end(&mut stdin);
        println!("{}", plugin::version_reply(&stdin));
        return ExitCode::SUCCESS;
    }

    let requested_version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let conf = match NetConf::parse(&stdin) {
        Ok(conf) => conf,
        Err(e) => return fail(&e, &requested_version),
    };
    init_logging(&conf);

    let facts = host_facts(&conf);
    let invocation = match program {
        Program::Calico => Invocation::new(env, stdin, &facts),
        Program::CalicoIpam => Invocation::new_for_ipam(env, stdin, &facts),
    };
    let invocation = match invocation {
        Ok(invocation) => invocation,
        Err(e) => return fail(&e, &requested_version),
    };

    let datastore = match datastore_config(&invocation.conf) {
        Ok(datastore) => datastore,
        Err(e) => return fail(&e, &requested_version),
    };
    // Only etcd and a delegated IPAM plugin (a child process) need tokio's
    // I/O and timers; the embedded store and Calico's IPAM work on this
    // thread, and a runtime without drivers starts faster.
    let mut builder = tokio::runtime::Builder::new_current_thread();
    if !matches!(datastore, DatastoreConfig::Embedded(_))
        || (program == Program::Calico && invocation.conf.ipam.ipam_type != "calico-ipam")
    {
        builder.enable_all();
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            return fail(
                &CniError::new(ErrorCode::Internal, format!("starting the runtime: {e}")),
                &requested_version,
            );
        }
    };
    let outcome = runtime.block_on(execute(program, &invocation, &datastore));
    match outcome {
        Ok(Some(text)) => {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(text.as_bytes());
            let _ = out.flush();
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(command = %invocation.env.command, container = %invocation.env.container_id, error = %e, "failed");
            fail(&e, &requested_version)
        }
    }
}

/// Connects to the datastore and runs the command.
async fn execute(
    program: Program,
    invocation: &Invocation,
    datastore: &DatastoreConfig,
) -> Result<Option<String>, CniError> {
    let backend = connect(&invocation.conf, datastore).await?;
    let store = DatastoreStore::new(Client::new(backend.clone()));
    let calico_ipam = CalicoIpam::new(BlockAllocator::new(backend));
    if program == Program::CalicoIpam {
        return plugin::run_ipam(invocation, &calico_ipam).await;
    }
    let exec = ExecIpam;
    let dataplane = NetlinkDataplane::current().map_err(|e| {
        CniError::from_error(ErrorCode::Internal, &e).prefixed("opening the host's netlink socket")
    })?;
    let services = Services {
        ipam: ipam::select(&invocation.conf, Some(&calico_ipam), &exec),
        store: &store,
        dataplane: &dataplane,
        pods: &NoPodInfo,
    };
    plugin::run(invocation, &services).await
}

/// The datastore named by the network configuration (its `datastore_type`
/// and `etcd_*` fields win over the environment, as in Calico).
fn datastore_config(conf: &NetConf) -> Result<DatastoreConfig, CniError> {
    let overrides = [
        ("DATASTORE_TYPE", &conf.datastore_type),
        ("ETCD_ENDPOINTS", &conf.etcd_endpoints),
        ("ETCD_DISCOVERY_SRV", &conf.etcd_discovery_srv),
        ("ETCD_KEY_FILE", &conf.etcd_key_file),
        ("ETCD_CERT_FILE", &conf.etcd_cert_file),
        ("ETCD_CA_CERT_FILE", &conf.etcd_ca_cert_file),
        ("EMBEDDED_DATASTORE_PATH", &conf.embedded_datastore_path),
    ];
    let authority = (!conf.etcd_authority.is_empty()).then(|| {
        let scheme = if conf.etcd_scheme.is_empty() {
            "http"
        } else {
            &conf.etcd_scheme
        };
        format!("{scheme}://{}", conf.etcd_authority)
    });
    DatastoreConfig::from_lookup(|name| {
        if let Some((_, value)) = overrides.iter().find(|(k, v)| *k == name && !v.is_empty()) {
            return Some((*value).clone());
        }
        if name == "ETCD_ENDPOINTS"
            && let Some(authority) = &authority
        {
            return Some(authority.clone());
        }
        std::env::var(name).ok()
    })
    .map_err(|e| {
        CniError::from_error(ErrorCode::InvalidConfig, &e).prefixed("datastore configuration")
    })
}

/// Opens the datastore `config` names.
async fn connect(conf: &NetConf, config: &DatastoreConfig) -> Result<AnyBackend, CniError> {
    // One operation at a time on a current-thread runtime, in a process
    // that lives for one command.
    let embedded = EmbeddedOptions {
        execution: Execution::CallingThread,
        durability: conf.embedded_durability()?,
        ..EmbeddedOptions::default()
    };
    calico_datastore::connect_with(config, embedded)
        .await
        .map_err(|e| {
            let code = if e.is_transient() {
                ErrorCode::TryAgainLater
            } else {
                ErrorCode::Internal
            };
            CniError::from_error(code, &e).prefixed(&format!(
                "connecting to the datastore ({})",
                config.describe()
            ))
        })
}

/// What the plugin needs from the host's files and environment.
fn host_facts(conf: &NetConf) -> HostFacts {
    let read = |path: &str| match std::fs::read_to_string(path) {
        Ok(text) => Some(text),
        Err(e) => {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path, error = %e, "cannot read");
            }
            None
        }
    };
    HostFacts {
        nodename_file: read(conf.nodename_file()),
        os_hostname: nix_hostname(),
        mtu_file: read(DEFAULT_MTU_FILE),
        interface_prefix: std::env::var("FELIX_INTERFACEPREFIX").ok(),
    }
}

fn nix_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// Logs go to stderr and, when `log_file_path` is set, to that file too, at
/// `log_level` (Calico's default: info).
fn init_logging(conf: &NetConf) {
    use tracing_subscriber::fmt::writer::MakeWriterExt;
    let level = match conf.log_level.to_ascii_lowercase().as_str() {
        "debug" => tracing::Level::DEBUG,
        "warning" | "warn" => tracing::Level::WARN,
        "error" | "fatal" | "panic" => tracing::Level::ERROR,
        _ => tracing::Level::INFO,
    };
    let file = (!conf.log_file_path.is_empty())
        .then(|| {
            let path = Path::new(&conf.log_file_path);
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .ok()
        })
        .flatten();
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_ansi(false)
        .with_target(false);
    let _ = match file {
        Some(file) => builder
            .with_writer(std::io::stderr.and(std::sync::Mutex::new(file)))
            .try_init(),
        None => builder.with_writer(std::io::stderr).try_init(),
    };
}

/// `calico -t`: exits 0 when the datastore answers and is ready.
fn test_connection() -> ExitCode {
    let mut stdin = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut stdin);
    let conf = match NetConf::parse(&stdin) {
        Ok(conf) => conf,
        Err(e) => return fail(&e, ""),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return fail(&CniError::new(ErrorCode::Internal, e.to_string()), ""),
    };
    let outcome = runtime.block_on(async {
        let backend = connect(&conf, &datastore_config(&conf)?).await?;
        let store = DatastoreStore::new(Client::new(backend));
        match store.datastore_ready().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(CniError::new(
                ErrorCode::Plugin(100),
                "Calico is currently not ready to process requests",
            )),
            Err(e) => Err(e.to_cni("data store connection failed")),
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(
            &CniError {
                code: ErrorCode::Plugin(100),
                ..e
            },
            "",
        ),
    }
}

/// Prints the error JSON on stdout, as the runtime expects, and fails.
fn fail(error: &CniError, cni_version: &str) -> ExitCode {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(error.to_json(cni_version).as_bytes());
    let _ = out.flush();
    ExitCode::FAILURE
}
