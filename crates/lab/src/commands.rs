//! The commands that work on a lab that is up: `status`, `exec`, `env`,
//! `check`, `pod add|del` and `namespace add`.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, ExitCode};
use std::time::Duration;

use anyhow::{Context, bail};

use crate::datastore::{self, Store};
use crate::pod::{self, PodRequest};
use crate::state::State;
use crate::up::{Progress, ROUTES_TIMEOUT};
use crate::{agent, check, kube, probe, routes, system};

fn store(state: &State) -> anyhow::Result<Store> {
    Store::connect(
        state
            .datastore
            .as_ref()
            .context("the lab has no datastore")?,
    )
}

/// `status`: nodes with their agents' health, pods with their addresses.
pub fn status(dir: &Path) -> anyhow::Result<ExitCode> {
    let state = State::require(dir)?;
    let c = &state.config;
    println!(
        "lab {} in {}: {} {}, pool {} /{}{}, {} datastore",
        state.id,
        state.dir.display(),
        c.encapsulation,
        c.mode,
        c.pod_cidr,
        c.block_size,
        if c.nat_outgoing { ", natOutgoing" } else { "" },
        c.datastore
    );
    let mut healthy = true;
    println!("\nNODE       ADDRESS          AGENT                 READINESS");
    for node in &state.nodes {
        let agent_text = match &node.agent {
            Some(p) if system::is_running(p) => format!("running (pid {})", p.pid),
            Some(p) => {
                healthy = false;
                format!("exited (pid {})", p.pid)
            }
            None => {
                healthy = false;
                "not started".into()
            }
        };
        let readiness = match agent::health(node, "/readiness") {
            Ok(()) => "ready".to_string(),
            Err(reason) => {
                healthy = false;
                format!("not ready: {reason}")
            }
        };
        println!(
            "{:<10} {:<16} {:<21} {readiness}",
            node.name, node.address, agent_text
        );
    }
    println!("\nPOD                  NODE       ADDRESS          LABELS");
    for pod in &state.pods {
        let labels: Vec<String> = pod.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<20} {:<10} {:<16} {} (serviceaccount {})",
            pod.key(),
            pod.node,
            pod.ip,
            labels.join(","),
            pod.service_account
        );
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The namespace `target` names: a node, a pod (`ns/name` or a unique
/// name), `router` or `fabric`.
fn target_netns(state: &State, target: &str) -> anyhow::Result<String> {
    if let Some(node) = state.node(target) {
        return Ok(node.netns.clone());
    }
    if let Some(pod) = state.pod(target) {
        return Ok(pod.netns.clone());
    }
    if matches!(target, "router" | "fabric") {
        return Ok(state.netns_name(target));
    }
    bail!(
        "no node or pod {target:?} in the lab (nodes: {}; pods: {})",
        state
            .nodes
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        state
            .pods
            .iter()
            .map(|p| p.key())
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// `exec TARGET -- CMD...`: runs a command inside the target's network
/// namespace, with the lab's datastore in its environment.
pub fn exec(dir: &Path, target: &str, command: &[String]) -> anyhow::Result<ExitCode> {
    let state = State::require(dir)?;
    let netns = target_netns(&state, target)?;
    let Some((program, args)) = command.split_first() else {
        bail!("nothing to run: calico-lab exec {target} -- COMMAND [ARGS...]");
    };
    let mut child = Command::new("ip");
    child.args(["netns", "exec", &netns, program]).args(args);
    if let Some(datastore) = &state.datastore {
        for (key, value) in datastore::environment(datastore) {
            child.env(key, value);
        }
    }
    // On a node, `calicoctl node status` reads that node's agent.
    if let Some(node) = state.nodes.iter().find(|n| n.name == target) {
        child.env("CALICO_BGP_STATUS_SOCKET", agent::bgp_socket(&state, node));
    }
    let status = child
        .status()
        .with_context(|| format!("running {program} in {target}"))?;
    Ok(ExitCode::from(
        status
            .code()
            .and_then(|c| u8::try_from(c).ok())
            .unwrap_or(1),
    ))
}

/// `env`: shell exports pointing calicoctl (and other Calico tools) at
/// the lab's datastore.
pub fn env(dir: &Path) -> anyhow::Result<ExitCode> {
    let state = State::require(dir)?;
    let datastore = state
        .datastore
        .as_ref()
        .context("the lab has no datastore")?;
    println!("# calico-lab {}: eval \"$(calico-lab env)\"", state.id);
    let all = [
        "DATASTORE_TYPE",
        "EMBEDDED_DATASTORE_PATH",
        "ETCD_ENDPOINTS",
        "ETCD_CA_CERT_FILE",
        "ETCD_CERT_FILE",
        "ETCD_KEY_FILE",
    ];
    let vars = datastore::environment(datastore);
    for name in all {
        match vars.iter().find(|(k, _)| *k == name) {
            Some((_, value)) => println!("export {name}={}", shell_quote(value)),
            None => println!("unset {name}"),
        }
    }
    if Path::new(calico_datastore::config::DEFAULT_CONFIG_FILE).exists() {
        println!(
            "# note: {} exists and calicoctl prefers it; use calicoctl --config {}",
            calico_datastore::config::DEFAULT_CONFIG_FILE,
            state.dir.join("calicoctl.cfg").display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn shell_quote(value: &str) -> String {
    if value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-:,=".contains(c))
    {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

/// `check`: probes every pair of pods, compares with policy, prints the
/// matrix; fails on any disagreement.
pub fn check(dir: &Path, timeout: Duration) -> anyhow::Result<ExitCode> {
    let state = State::require(dir)?;
    let store = store(&state)?;
    if state.pods.len() < 2 {
        println!("fewer than two pods: nothing to check");
        return Ok(ExitCode::SUCCESS);
    }
    let (observed, expected, skipped) = check::converge(&store, &state.pods, timeout)?;
    for line in &skipped {
        println!("warning: left out of the expectation: {line}");
    }
    println!(
        "connectivity (TCP to port 8080; ok = connects, x = blocked, ! = disagrees with policy explain):"
    );
    print!("{}", probe::render(&state.pods, &observed, Some(&expected)));
    let wrong = check::mismatches(&observed, &expected);
    let pairs = expected.len();
    let allowed = expected.values().filter(|v| **v).count();
    if wrong.is_empty() {
        println!(
            "check passed: {pairs} flows, {allowed} allowed and {} denied, exactly as policy explain says",
            pairs - allowed
        );
        return Ok(ExitCode::SUCCESS);
    }
    for (i, j) in &wrong {
        let (from, to) = (&state.pods[*i], &state.pods[*j]);
        println!(
            "MISMATCH {} ({}) -> {} ({}): policy says {}, the network {}",
            from.key(),
            from.ip,
            to.key(),
            to.ip,
            if expected[&(*i, *j)] { "allow" } else { "deny" },
            if observed.get(&(*i, *j)).copied().unwrap_or(false) {
                "connected"
            } else {
                "blocked it"
            }
        );
    }
    println!(
        "check failed: {} of {pairs} flows disagree with policy explain (see `calicoctl policy explain --from NS/POD --to NS/POD --port 8080/tcp`)",
        wrong.len()
    );
    Ok(ExitCode::FAILURE)
}

/// `pod add`.
pub fn pod_add(dir: &Path, request: PodRequest) -> anyhow::Result<ExitCode> {
    let mut state = State::require(dir)?;
    let store = store(&state)?;
    let progress = Progress::new();
    let pod = pod::add(&mut state, &store, request)?;
    println!(
        "pod {} on {}: {} (WorkloadEndpoint {})",
        pod.key(),
        pod.node,
        pod.ip,
        pod.endpoint
    );
    // A new pod may have claimed a new block, which the other nodes'
    // agents route to once they see it.
    let took = routes::wait(&state, ROUTES_TIMEOUT)?;
    progress.step(&format!(
        "cross-node routes in place ({:.1} s)",
        took.as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

/// `pod del`.
pub fn pod_del(dir: &Path, key: &str) -> anyhow::Result<ExitCode> {
    let mut state = State::require(dir)?;
    let pod = pod::delete(&mut state, key)?;
    println!("pod {} deleted (was {} on {})", pod.key(), pod.ip, pod.node);
    Ok(ExitCode::SUCCESS)
}

/// `namespace add`.
pub fn namespace_add(
    dir: &Path,
    namespace: &str,
    labels: BTreeMap<String, String>,
) -> anyhow::Result<ExitCode> {
    pod::check_name("namespace", namespace)?;
    let mut state = State::require(dir)?;
    let store = store(&state)?;
    kube::ensure_namespace(&store, namespace, &labels)?;
    let text: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    state.kube_namespaces.insert(namespace.to_string(), labels);
    state.save()?;
    println!(
        "namespace {namespace} (profile kns.{namespace}) labels: {}",
        if text.is_empty() {
            "none".to_string()
        } else {
            text.join(",")
        }
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_leaves_plain_values_alone() {
        assert_eq!(
            shell_quote("/run/calico-lab/calico.db"),
            "/run/calico-lab/calico.db"
        );
        assert_eq!(
            shell_quote("http://127.0.0.1:2379"),
            "http://127.0.0.1:2379"
        );
        assert_eq!(shell_quote("a b'c"), r"'a b'\''c'");
    }
}
