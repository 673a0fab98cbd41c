//! Pods, attached as a container runtime attaches them: a network
//! namespace per pod, then the `calico` CNI plugin run inside the node's
//! namespace (where it creates the host end of the pod's veth) with the
//! runtime's `CNI_*` variables, Kubernetes' `CNI_ARGS` and the node's
//! network configuration on standard input.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::datastore::{self, Store};
use crate::kube;
use crate::state::{DatastoreState, NodeState, PodState, State};
use crate::system::{self, netns_path};

/// The network name of Calico's Kubernetes manifests.
pub const NETWORK_NAME: &str = "k8s-pod-network";
/// The CNI version of the lab's configuration lists.
pub const CNI_VERSION: &str = "1.0.0";
/// The MTU of every underlay link in the lab.
pub const UNDERLAY_MTU: u32 = 1500;

/// A node's CNI configuration list, as Calico's installer writes it to
/// `/etc/cni/net.d/10-calico.conflist` on each host.
pub fn conflist(state: &State, node: &NodeState) -> Value {
    let mtu = if state.config.encapsulates() {
        UNDERLAY_MTU - calico_routing::input::VXLAN_OVERHEAD
    } else {
        UNDERLAY_MTU
    };
    let mut calico = json!({
        "type": "calico",
        "log_level": "info",
        "log_file_path": state.dir.join("logs").join("cni.log"),
        "nodename": node.name,
        "mtu": mtu,
        "ipam": {"type": "calico-ipam"},
        "policy": {"type": "k8s"},
    });
    let object = calico.as_object_mut().expect("an object");
    match &state.datastore {
        Some(DatastoreState::Etcd { endpoint, .. }) => {
            object.insert("datastore_type".into(), json!("etcdv3"));
            object.insert("etcd_endpoints".into(), json!(endpoint));
        }
        Some(DatastoreState::Embedded { .. }) | None => {
            object.insert("datastore_type".into(), json!("embedded"));
        }
    }
    json!({
        "name": NETWORK_NAME,
        "cniVersion": CNI_VERSION,
        "plugins": [calico],
    })
}

/// What a runtime sends one plugin of a list: the plugin's configuration
/// with the list's name and version.
fn plugin_config(list: &Value, index: usize) -> Value {
    let mut plugin = list["plugins"][index].clone();
    let object = plugin.as_object_mut().expect("plugins are objects");
    object.insert("name".into(), list["name"].clone());
    object.insert("cniVersion".into(), list["cniVersion"].clone());
    plugin
}

/// Random lowercase hex.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buffer))
        .context("reading /dev/urandom")?;
    Ok(buffer.iter().map(|b| format!("{b:02x}")).collect())
}

/// A Kubernetes object name: lowercase letters, digits, `-`, `.`, at
/// most 63 characters, starting and ending with a letter or digit.
pub fn check_name(what: &str, name: &str) -> anyhow::Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        bail!(
            "{what} {name:?} is not a valid Kubernetes name (lowercase letters, digits, '-' and '.', at most 63, starting and ending with a letter or digit)"
        )
    }
}

/// Parses `k=v,k2=v2` (empty: no labels).
pub fn parse_labels(text: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((key, value)) = pair.split_once('=') else {
            bail!("label {pair:?} is not key=value");
        };
        let key = key.trim();
        if key.is_empty() {
            bail!("label {pair:?} has no key");
        }
        labels.insert(key.to_string(), value.trim().to_string());
    }
    Ok(labels)
}

/// Runs the plugin for `pod` with `command` (ADD or DEL).
fn run_plugin(
    state: &State,
    node: &NodeState,
    pod: &PodState,
    command: &str,
) -> anyhow::Result<String> {
    let list: Value = serde_json::from_slice(
        &std::fs::read(&node.cni_conflist)
            .with_context(|| format!("reading {}", node.cni_conflist.display()))?,
    )
    .with_context(|| format!("{} is not JSON", node.cni_conflist.display()))?;
    let stdin = plugin_config(&list, 0);
    let plugin = state.bin_dir.join("calico");
    let cni_args = format!(
        "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
        pod.namespace, pod.name, pod.container_id, pod.uid
    );
    let mut child = Command::new("ip");
    child
        .args(["netns", "exec", &node.netns])
        .arg(&plugin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", &pod.container_id)
        .env("CNI_NETNS", netns_path(&pod.netns))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", &state.bin_dir)
        .env("CNI_ARGS", cni_args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The embedded datastore's file is not part of the CNI configuration;
    // the plugin takes it from the environment, as calicoctl does.
    if let Some(datastore) = &state.datastore {
        for (key, value) in datastore::environment(datastore) {
            child.env(key, value);
        }
    }
    let mut child = child
        .spawn()
        .with_context(|| format!("running {}", plugin.display()))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(stdin.to_string().as_bytes())
        .context("writing the network configuration to the plugin")?;
    let output = child.wait_with_output().context("waiting for the plugin")?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        let message = serde_json::from_str::<Value>(&stdout)
            .ok()
            .map(|v| {
                format!(
                    "{} {}",
                    v["msg"].as_str().unwrap_or_default(),
                    v["details"].as_str().unwrap_or_default()
                )
            })
            .unwrap_or_else(|| stdout.clone());
        bail!(
            "CNI {command} of pod {} on {} failed: {}{}",
            pod.key(),
            node.name,
            message.trim(),
            match String::from_utf8_lossy(&output.stderr).trim() {
                "" => String::new(),
                stderr => format!("\n{stderr}"),
            }
        );
    }
    Ok(stdout)
}

/// The first address of a CNI result.
fn result_address(result: &str) -> anyhow::Result<String> {
    let value: Value = serde_json::from_str(result).context("the plugin's result is not JSON")?;
    let address = value["ips"][0]["address"]
        .as_str()
        .context("the plugin's result has no address")?;
    Ok(address.split('/').next().unwrap_or(address).to_string())
}

/// What `pod add` asks for.
#[derive(Debug, Clone)]
pub struct PodRequest {
    pub namespace: String,
    pub name: String,
    pub node: String,
    pub labels: BTreeMap<String, String>,
    pub service_account: String,
}

/// Creates a pod: its namespace, the profiles of its namespace and service
/// account, CNI ADD, then its identity on the WorkloadEndpoint.
pub fn add(state: &mut State, store: &Store, request: PodRequest) -> anyhow::Result<PodState> {
    check_name("namespace", &request.namespace)?;
    check_name("pod", &request.name)?;
    check_name("service account", &request.service_account)?;
    let node = state.node(&request.node).cloned().with_context(|| {
        format!(
            "no node {} in the lab (nodes: {})",
            request.node,
            state
                .nodes
                .iter()
                .map(|n| n.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let key = format!("{}/{}", request.namespace, request.name);
    if state.pod(&key).is_some() {
        bail!("pod {key} already exists");
    }
    if !state.kube_namespaces.contains_key(&request.namespace) {
        kube::ensure_namespace(store, &request.namespace, &BTreeMap::new())?;
        state
            .kube_namespaces
            .insert(request.namespace.clone(), BTreeMap::new());
    }
    kube::ensure_service_account(store, &request.namespace, &request.service_account)?;

    let netns = state.netns_name(&format!("pod-{}-{}", request.namespace, request.name));
    let mut pod = PodState {
        namespace: request.namespace,
        name: request.name,
        node: node.name.clone(),
        netns: netns.clone(),
        container_id: random_hex(32)?,
        uid: random_hex(16)?,
        service_account: request.service_account,
        labels: request.labels,
        ip: String::new(),
        endpoint: String::new(),
    };
    state.namespaces.push(netns.clone());
    state.pods.push(pod.clone());
    state.save()?;
    let attached = system::create_netns(&netns)
        .and_then(|()| run_plugin(state, &node, &pod, "ADD"))
        .and_then(|result| result_address(&result))
        .and_then(|ip| {
            pod.ip = ip;
            let (endpoint, _) = kube::sync_pod(store, &pod)?;
            pod.endpoint = endpoint;
            Ok(())
        });
    if let Err(e) = attached {
        // Leave nothing half made: the plugin undoes its own partial work
        // on a failed ADD, and DEL releases whatever is left.
        let _ = run_plugin(state, &node, &pod, "DEL");
        forget(state, &pod)?;
        return Err(e);
    }
    if let Some(stored) = state.pods.iter_mut().find(|p| p.key() == pod.key()) {
        *stored = pod.clone();
    }
    state.save()?;
    Ok(pod)
}

/// Removes a pod from the state and deletes its namespace.
fn forget(state: &mut State, pod: &PodState) -> anyhow::Result<()> {
    let _ = system::delete_netns(&pod.netns);
    state.namespaces.retain(|n| n != &pod.netns);
    state.pods.retain(|p| p.key() != pod.key());
    state.save()
}

/// Deletes a pod: CNI DEL (addresses released, endpoint removed), then its
/// namespace. A DEL failure is reported after the rest is cleaned up.
pub fn delete(state: &mut State, key: &str) -> anyhow::Result<PodState> {
    let pod = state
        .pod(key)
        .cloned()
        .with_context(|| format!("no pod {key} in the lab"))?;
    let outcome = match state.node(&pod.node).cloned() {
        Some(node) => run_plugin(state, &node, &pod, "DEL").map(drop),
        None => Ok(()),
    };
    forget(state, &pod)?;
    outcome.map(|()| pod)
}

/// Writes each node's configuration list.
pub fn write_conflists(state: &mut State) -> anyhow::Result<()> {
    for node in state.nodes.clone() {
        let dir = node
            .cni_conflist
            .parent()
            .expect("the conflist lives in the node's directory");
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let text = serde_json::to_string_pretty(&conflist(state, &node)).expect("serialisable");
        std::fs::write(&node.cni_conflist, text)
            .with_context(|| format!("writing {}", node.cni_conflist.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_names() {
        assert_eq!(
            parse_labels("app=web, tier = front,").unwrap(),
            BTreeMap::from([
                ("app".to_string(), "web".to_string()),
                ("tier".to_string(), "front".to_string())
            ])
        );
        assert!(parse_labels("").unwrap().is_empty());
        assert!(
            parse_labels("app")
                .unwrap_err()
                .to_string()
                .contains("key=value")
        );
        assert!(parse_labels("=x").is_err());
        assert!(check_name("pod", "web-1").is_ok());
        for bad in ["Web", "-web", "web_1", "", &"a".repeat(64)] {
            assert!(check_name("pod", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_runtime_hands_each_plugin_the_list_name_and_version() {
        let list = json!({"name": "net", "cniVersion": "1.0.0", "plugins": [{"type": "calico"}]});
        assert_eq!(
            plugin_config(&list, 0),
            json!({"type": "calico", "name": "net", "cniVersion": "1.0.0"})
        );
        assert_eq!(
            result_address(r#"{"ips":[{"address":"192.168.0.5/32"}]}"#).unwrap(),
            "192.168.0.5"
        );
        assert!(result_address("{}").is_err());
        assert_eq!(random_hex(4).unwrap().len(), 8);
    }
}
