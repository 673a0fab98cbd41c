//! The `calico` plugin's commands as library functions: [`cmd_add`],
//! [`cmd_del`], [`cmd_check`], [`cmd_status`], [`cmd_gc`], and [`run`] to
//! dispatch on `CNI_COMMAND`. Everything they touch comes in through
//! [`Services`] (IPAM, datastore, kernel, pod metadata), so the binary only
//! gathers inputs and prints outputs.

mod add;
mod check;
mod del;
mod ipam;
mod status;

use std::collections::BTreeMap;

pub use add::cmd_add;
pub use check::cmd_check;
pub use del::cmd_del;
pub use ipam::run_ipam;
pub use status::{cmd_gc, cmd_status};

use crate::config::NetConf;
use crate::dataplane::Dataplane;
use crate::endpoint::{EndpointStore, PodInfoSource};
use crate::env::{CniEnv, Command};
use crate::error::{CniError, ErrorCode};
use crate::ipam::Ipam;
use crate::names;
use crate::version::{SpecVersion, VersionReply};

/// What the plugin reads from the host rather than from the runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFacts {
    /// Content of the nodename file; `None` when it does not exist.
    pub nodename_file: Option<String>,
    pub os_hostname: String,
    /// Content of Calico's MTU file; `None` when it does not exist.
    pub mtu_file: Option<String>,
    /// `FELIX_INTERFACEPREFIX`.
    pub interface_prefix: Option<String>,
}

/// One invocation, validated: the environment, the configuration and what
/// follows from them.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub env: CniEnv,
    /// The configuration exactly as received.
    pub stdin: Vec<u8>,
    pub conf: NetConf,
    pub version: SpecVersion,
    pub node: String,
    pub mtu: Option<u32>,
    pub interface_prefix: String,
}

impl Invocation {
    /// Decodes and validates the configuration and works out the node name
    /// and MTU. Not for `VERSION`, which needs no configuration.
    pub fn new(env: CniEnv, stdin: Vec<u8>, facts: &HostFacts) -> Result<Self, CniError> {
        Self::build(env, stdin, facts, true)
    }

    /// As [`Invocation::new`] for the `calico-ipam` plugin, which (like
    /// Calico's) does not wait for the node agent's nodename file.
    pub fn new_for_ipam(env: CniEnv, stdin: Vec<u8>, facts: &HostFacts) -> Result<Self, CniError> {
        Self::build(env, stdin, facts, false)
    }

    fn build(
        env: CniEnv,
        stdin: Vec<u8>,
        facts: &HostFacts,
        wait_for_node: bool,
    ) -> Result<Self, CniError> {
        let conf = NetConf::parse(&stdin)?;
        let version = conf.version()?;
        conf.validate()?;
        let attachment = matches!(env.command, Command::Add | Command::Del | Command::Check);
        if wait_for_node
            && attachment
            && !conf.nodename_file_optional
            && facts.nodename_file.is_none()
            && conf.nodename.is_empty()
        {
            return Err(CniError::new(
                ErrorCode::TryAgainLater,
                format!(
                    "{} does not exist: check that the calico/node container is running and has mounted /var/lib/calico/",
                    conf.nodename_file()
                ),
            ));
        }
        let node = conf.resolve_nodename(facts.nodename_file.as_deref(), &facts.os_hostname);
        if node.is_empty() {
            return Err(CniError::new(
                ErrorCode::InvalidConfig,
                "cannot tell the node's name: set \"nodename\" in the configuration",
            ));
        }
        let mtu = if env.command == Command::Add || env.command == Command::Check {
            conf.resolve_mtu(facts.mtu_file.as_deref())?
        } else {
            None
        };
        Ok(Invocation {
            interface_prefix: names::interface_prefix(facts.interface_prefix.as_deref())
                .to_string(),
            env,
            stdin,
            conf,
            version,
            node,
            mtu,
        })
    }
}

/// Everything the plugin talks to.
#[derive(Clone, Copy)]
pub struct Services<'a> {
    pub ipam: &'a dyn Ipam,
    pub store: &'a dyn EndpointStore,
    pub dataplane: &'a dyn Dataplane,
    pub pods: &'a dyn PodInfoSource,
}

impl std::fmt::Debug for Services<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services").finish_non_exhaustive()
    }
}

/// Runs the invocation's command; returns what to print on stdout, if
/// anything.
pub async fn run(
    invocation: &Invocation,
    services: &Services<'_>,
) -> Result<Option<String>, CniError> {
    match invocation.env.command {
        Command::Add => {
            let result = cmd_add(invocation, services).await?;
            let text = result
                .to_json(invocation.version)
                .map_err(|e| CniError::from_error(ErrorCode::IncompatibleVersion, &e))?;
            Ok(Some(text))
        }
        Command::Del => cmd_del(invocation, services).await.map(|()| None),
        Command::Check => cmd_check(invocation, services).await.map(|()| None),
        Command::Status => cmd_status(invocation, services).await.map(|()| None),
        Command::Gc => cmd_gc(invocation, services).await.map(|()| None),
        Command::Version => Ok(Some(version_reply(&invocation.stdin))),
    }
}

/// The `VERSION` reply for the `cniVersion` on stdin (if any).
pub fn version_reply(stdin: &[u8]) -> String {
    let requested = serde_json::from_slice::<serde_json::Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
    serde_json::to_string(&VersionReply::new(requested.as_deref())).expect("serialisable")
}

/// Calico refuses to work while its datastore is being upgraded.
async fn ensure_ready(store: &dyn EndpointStore) -> Result<(), CniError> {
    match store.datastore_ready().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(CniError::new(
            ErrorCode::TryAgainLater,
            "Calico is currently not ready to process requests (ClusterInformation datastoreReady is false)",
        )),
        Err(e) => Err(e.to_cni("reading ClusterInformation")),
    }
}

/// Requires `version` to allow `command` (CHECK from 0.4.0, STATUS and GC
/// from 1.1.0).
fn require_version(version: SpecVersion, command: Command) -> Result<(), CniError> {
    let allowed = match command {
        Command::Check => version.supports_check(),
        Command::Status | Command::Gc => version.supports_status_and_gc(),
        _ => true,
    };
    if allowed {
        Ok(())
    } else {
        Err(CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("config version {version} does not allow {command}"),
        ))
    }
}

/// Labels every WorkloadEndpoint carries (Calico's client adds them on
/// write).
fn system_labels(namespace: &str, orchestrator: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "projectcalico.org/namespace".to_string(),
            namespace.to_string(),
        ),
        (
            "projectcalico.org/orchestrator".to_string(),
            orchestrator.to_string(),
        ),
    ])
}

/// Joins the failures of several independent steps into one error: the
/// code of the first, every message in the details.
fn combine(what: &str, failures: Vec<CniError>) -> Result<(), CniError> {
    let Some(first) = failures.first() else {
        return Ok(());
    };
    let code = if failures.iter().any(|f| f.code == ErrorCode::TryAgainLater) {
        ErrorCode::TryAgainLater
    } else {
        first.code
    };
    if failures.len() == 1 {
        return Err(CniError {
            code,
            msg: format!("{what}: {}", first.msg),
            details: first.details.clone(),
        });
    }
    Err(
        CniError::new(code, format!("{what}: {} steps failed", failures.len())).with_details(
            failures
                .iter()
                .map(|f| f.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
    )
}
