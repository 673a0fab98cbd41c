//! Real container runtimes as clients of the `calico` and `calico-ipam`
//! binaries, each configured with one conflist naming our plugin and our
//! IPAM over an embedded datastore file:
//!
//! - containerd 1.6 through its CRI gRPC API, as the kubelet drives it
//!   (RunPodSandbox, PodSandboxStatus, StopPodSandbox, RemovePodSandbox);
//! - podman 4.3 with its CNI network backend (`podman run --network`,
//!   `podman rm`).
//!
//! Every runtime runs inside a simulated node namespace with its own
//! directories, and is stopped by its PID. Needs root and the Debian
//! packages `containerd`, `podman`, `containernetworking-plugins` and
//! `busybox-static` (scripts/setup.sh installs them).

mod common;
mod support;

use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::datastore::{Datastore, NODE};
use common::node_namespace;
use ipnet::IpNet;
use support::containerd::{Containerd, ContainerdConfig};
use support::podman::{Podman, PodmanConfig};
use support::probe::{echo, tcp_probe};
use support::{CgroupParent, CniSetup, image, k8s_veth_name};

/// The only image there is: a local busybox, also the pods' sandbox image.
const BUSYBOX_IMAGE: &str = "docker.io/calico-rs/busybox:test";

fn pool_of(cidr: &str) -> Datastore {
    Datastore::with_pools(&[("default-ipv4-ippool", cidr, 26)])
}

struct CriPod {
    namespace: &'static str,
    name: &'static str,
    id: String,
    ip: IpAddr,
    netns: std::path::PathBuf,
}

#[test]
fn containerd_cri_pods_get_calico_addresses_and_reach_each_other() {
    let started = Instant::now();
    let pool: IpNet = "10.67.0.0/16".parse().unwrap();
    let store = pool_of(&pool.to_string());
    let node = node_namespace();
    let dir = tempfile::tempdir().unwrap();
    let network = "k8s-pod-network";
    let cni = CniSetup::new(dir.path(), network, store.path());
    let archive = image::busybox_oci_archive(dir.path(), BUSYBOX_IMAGE);
    let runtime_dir = dir.path().join("containerd");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    let datastore_path = store.path().display().to_string();
    let cgroup = CgroupParent::new("ctrd");
    let containerd = Containerd::start(&ContainerdConfig {
        dir: &runtime_dir,
        cni: &cni,
        sandbox_image: BUSYBOX_IMAGE,
        node_netns: &node.path(),
        env: &[("EMBEDDED_DATASTORE_PATH", &datastore_path)],
        cgroup_parent: cgroup.path(),
    });
    containerd.import_image(&archive, BUSYBOX_IMAGE);

    let mut pods = Vec::new();
    for (namespace, name) in [("shop", "web-0"), ("shop", "db-0")] {
        let uid = format!("uid-{name}-{}", std::process::id());
        let id = containerd
            .run_pod(namespace, name, &uid)
            .unwrap_or_else(|e| panic!("RunPodSandbox {namespace}/{name}: {e}"));
        let ip = containerd.pod_ip(&id);
        assert!(pool.contains(&ip), "{name} got {ip}, outside {pool}");
        let netns = containerd.pod_netns(&id);
        pods.push(CriPod {
            namespace,
            name,
            id,
            ip,
            netns,
        });
    }
    assert_ne!(pods[0].ip, pods[1].ip);

    let host_links = node.link_names();
    for pod in &pods {
        let veth = k8s_veth_name(pod.namespace, pod.name);
        assert!(
            host_links.contains(&veth),
            "{veth} for {}/{} not on the node: {host_links:?}",
            pod.namespace,
            pod.name
        );
        let endpoint = store
            .endpoints()
            .into_iter()
            .find(|e| e.spec.pod == pod.name && e.metadata.namespace == pod.namespace)
            .unwrap_or_else(|| panic!("no WorkloadEndpoint for {}", pod.name));
        let expected_name = format!(
            "{}-k8s-{}-eth0",
            NODE.replace('-', "--"),
            pod.name.replace('-', "--")
        );
        assert_eq!(endpoint.metadata.name, expected_name);
        assert_eq!(endpoint.spec.orchestrator, "k8s");
        assert_eq!(endpoint.spec.node, NODE);
        assert_eq!(endpoint.spec.container_id, pod.id);
        assert_eq!(endpoint.spec.interface_name, veth);
        assert_eq!(endpoint.spec.ip_networks, vec![format!("{}/32", pod.ip)]);
        assert_eq!(
            store.handle_addresses(&format!("{network}.{}", pod.id)),
            vec![pod.ip]
        );
    }

    for (from, to) in [(&pods[0], &pods[1]), (&pods[1], &pods[0])] {
        let listener = echo(&to.netns, to.ip);
        tcp_probe(&from.netns, listener.address).unwrap_or_else(|e| {
            panic!(
                "{} cannot reach {} at {}: {e}",
                from.name, to.name, listener.address
            )
        });
    }

    for pod in &pods {
        containerd
            .stop_pod(&pod.id)
            .unwrap_or_else(|e| panic!("StopPodSandbox {}: {e}", pod.name));
        containerd
            .remove_pod(&pod.id)
            .unwrap_or_else(|e| panic!("RemovePodSandbox {}: {e}", pod.name));
        assert!(!store.is_assigned(pod.ip), "{} still assigned", pod.ip);
        assert!(
            store
                .handle_addresses(&format!("{network}.{}", pod.id))
                .is_empty()
        );
        assert!(!pod.netns.exists(), "{} left behind", pod.netns.display());
    }
    assert!(store.endpoints().is_empty(), "{:?}", store.endpoints());
    let host_links = node.link_names();
    for pod in &pods {
        let veth = k8s_veth_name(pod.namespace, pod.name);
        assert!(!host_links.contains(&veth), "{veth} left: {host_links:?}");
    }
    assert!(containerd.pod_ids().unwrap().is_empty());
    drop(containerd);
    eprintln!("containerd test took {:?}", started.elapsed());
}

/// The container's address on `network`, from `podman inspect`.
fn podman_ip(podman: &Podman, container: &str, network: &str) -> IpAddr {
    let inspect = podman.inspect(container);
    let ip = inspect["NetworkSettings"]["Networks"][network]["IPAddress"]
        .as_str()
        .unwrap_or_default();
    ip.parse()
        .unwrap_or_else(|_| panic!("{container} has no address on {network}: {inspect}"))
}

#[test]
fn podman_containers_get_calico_addresses_and_talk() {
    let started = Instant::now();
    let pool: IpNet = "10.68.0.0/16".parse().unwrap();
    let store = pool_of(&pool.to_string());
    let node = node_namespace();
    let dir = tempfile::tempdir().unwrap();
    let network = "calico-net";
    let cni = CniSetup::new(dir.path(), network, store.path());
    let runtime_dir = dir.path().join("podman");
    std::fs::create_dir_all(&runtime_dir).unwrap();
    let datastore_path = store.path().display().to_string();
    let cgroup = CgroupParent::new("podman");
    let podman = Podman::new(&PodmanConfig {
        dir: &runtime_dir,
        cni: &cni,
        node_netns: &node.path(),
        env: &[("EMBEDDED_DATASTORE_PATH", &datastore_path)],
    });
    let run = |name: &str, script: &str| {
        let rootfs = podman.rootfs(name).display().to_string();
        podman
            .run(&[
                "run",
                "--detach",
                "--name",
                name,
                "--network",
                network,
                "--cgroup-parent",
                cgroup.path(),
                "--rootfs",
                &rootfs,
                "/bin/sh",
                "-c",
                script,
            ])
            .unwrap_or_else(|e| panic!("{e}"))
            .trim()
            .to_string()
    };

    // The listener prints what it receives and stays up, so both
    // containers hold their addresses at the same time. Its standard input
    // must stay open: busybox nc quits at end of input, which may come
    // before the talker's data.
    let server_id = run("listener", "sleep 600 | nc -l -p 8080");
    let server_ip = podman_ip(&podman, "listener", network);
    let client_id = run(
        "talker",
        &format!(
            "until echo hello-calico | nc {server_ip} 8080; do sleep 0.2; done; \
             echo sent; sleep 600"
        ),
    );
    let client_ip = podman_ip(&podman, "talker", network);
    for ip in [server_ip, client_ip] {
        assert!(pool.contains(&ip), "{ip} is outside {pool}");
    }
    assert_ne!(server_ip, client_ip);

    let received = support::wait_for(Duration::from_secs(20), || {
        let logs = podman.run(&["logs", "listener"]).ok()?;
        logs.contains("hello-calico").then_some(logs)
    });
    assert!(
        received.is_some(),
        "the listener got nothing: {:?}; talker said: {:?}; listener state: {}",
        podman.run(&["logs", "listener"]),
        podman.run(&["logs", "talker"]),
        podman.inspect("listener")["State"]
    );

    let host_links = node.link_names();
    let mut veths = Vec::new();
    for (id, ip) in [(&server_id, server_ip), (&client_id, client_ip)] {
        assert_eq!(store.handle_addresses(&format!("{network}.{id}")), vec![ip]);
        let endpoint = store
            .endpoints()
            .into_iter()
            .find(|e| &e.spec.container_id == id)
            .unwrap_or_else(|| panic!("no WorkloadEndpoint for container {id}"));
        // Outside Kubernetes, Calico names both after the container ID.
        assert_eq!(endpoint.spec.orchestrator, "cni");
        assert_eq!(
            endpoint.metadata.name,
            format!("{}-cni-{id}-eth0", NODE.replace('-', "--"))
        );
        assert_eq!(endpoint.spec.ip_networks, vec![format!("{ip}/32")]);
        let veth = format!("cali{}", &id[..11]);
        assert_eq!(endpoint.spec.interface_name, veth);
        assert!(
            host_links.contains(&veth),
            "{veth} not on the node: {host_links:?}"
        );
        veths.push(veth);
    }

    podman
        .run(&["rm", "--force", "--time", "0", "listener", "talker"])
        .unwrap_or_else(|e| panic!("{e}"));
    // A container that had already exited is torn down by podman's cleanup
    // process, which `rm` does not always wait for: wait for its DEL.
    let torn_down = support::wait_for(Duration::from_secs(20), || {
        let veths_gone = {
            let links = node.link_names();
            veths.iter().all(|v| !links.contains(v))
        };
        (!store.is_assigned(server_ip)
            && !store.is_assigned(client_ip)
            && store.endpoints().is_empty()
            && veths_gone)
            .then_some(())
    });
    assert!(torn_down.is_some(), "the containers' DEL did not finish");
    for (id, ip) in [(&server_id, server_ip), (&client_id, client_ip)] {
        assert!(!store.is_assigned(ip), "{ip} still assigned");
        assert!(
            store
                .handle_addresses(&format!("{network}.{id}"))
                .is_empty()
        );
    }
    assert!(store.endpoints().is_empty(), "{:?}", store.endpoints());
    let host_links = node.link_names();
    for veth in &veths {
        assert!(!host_links.contains(veth), "{veth} left: {host_links:?}");
    }
    drop(podman);
    eprintln!("podman test took {:?}", started.elapsed());
}
