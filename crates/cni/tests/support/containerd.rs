//! A containerd 1.6 of the test's own (root, state directory, socket and
//! configuration under one directory) and a client of its CRI gRPC API
//! (`runtime.v1`), which is how the kubelet asks for pods.
//!
//! containerd's CRI plugin creates each pod's network namespace, runs the
//! CNI plugins of the first conflist in its configuration directory, then
//! starts the pod's sandbox container from `sandbox_image`.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use k8s_cri::v1::image_service_client::ImageServiceClient;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    ImageSpec, ImageStatusRequest, LinuxPodSandboxConfig, ListPodSandboxRequest, PodSandboxConfig,
    PodSandboxMetadata, PodSandboxStatusRequest, PodSandboxStatusResponse, RemovePodSandboxRequest,
    RunPodSandboxRequest, StopPodSandboxRequest, VersionRequest,
};
use tonic::transport::{Channel, Endpoint, Uri};

use super::{CniSetup, Daemon, unmount_below, wait_for};

/// containerd's namespace for everything the CRI plugin manages.
const K8S_NAMESPACE: &str = "k8s.io";
/// Longest a CRI call may take before the test fails instead of hanging.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What a test's containerd is built from.
#[derive(Debug)]
pub struct ContainerdConfig<'a> {
    /// Holds the root, state, socket, configuration and log.
    pub dir: &'a Path,
    pub cni: &'a CniSetup,
    /// An image already built locally; imported before the first pod.
    pub sandbox_image: &'a str,
    /// The simulated node's network namespace containerd runs in.
    pub node_netns: &'a Path,
    /// Environment handed to containerd, which passes it on to the plugins.
    pub env: &'a [(&'a str, &'a str)],
    /// The cgroup parent of every pod.
    pub cgroup_parent: &'a str,
}

/// A running containerd and a CRI client connected to it. Dropping it
/// stops and removes every pod left behind, stops containerd by its PID and
/// unmounts anything still mounted below its directory.
#[derive(Debug)]
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    log: PathBuf,
    runtime: tokio::runtime::Runtime,
    cri: RuntimeServiceClient<Channel>,
    images: ImageServiceClient<Channel>,
    cgroup_parent: String,
    daemon: Option<Daemon>,
}

impl Containerd {
    pub fn start(config: &ContainerdConfig<'_>) -> Containerd {
        let binary = calico_testutil::require_binary("containerd", "containerd");
        let dir = config.dir.to_path_buf();
        let socket = dir.join("containerd.sock");
        let log = dir.join("containerd.log");
        let conf = dir.join("config.toml");
        std::fs::write(&conf, config_toml(&dir, &socket, config)).unwrap();
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", config.node_netns.display()))
            .arg(binary)
            .arg("--config")
            .arg(&conf)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(config.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(&log).unwrap());
        // nsenter enters the namespace and execs containerd: one PID.
        let daemon = Daemon::spawn("containerd", &mut command, Duration::from_secs(10));

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let channel = {
            let socket = socket.clone();
            let connect = wait_for(Duration::from_secs(20), || socket.exists().then_some(()));
            if connect.is_none() {
                panic!(
                    "containerd did not open {}:\n{}",
                    socket.display(),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            runtime.block_on(async {
                Endpoint::try_from("http://[::]:50051")
                    .unwrap()
                    .connect_with_connector(tower::service_fn(move |_: Uri| {
                        let socket = socket.clone();
                        async move {
                            Ok::<_, std::io::Error>(TokioIo::new(
                                tokio::net::UnixStream::connect(socket).await?,
                            ))
                        }
                    }))
                    .await
                    .expect("connecting to containerd's socket")
            })
        };
        let containerd = Containerd {
            dir,
            socket,
            log,
            runtime,
            cri: RuntimeServiceClient::new(channel.clone()),
            images: ImageServiceClient::new(channel),
            cgroup_parent: config.cgroup_parent.to_string(),
            daemon: Some(daemon),
        };
        // The CRI plugin answers "not initialized yet" for a moment after
        // the socket appears.
        let mut last_error = None;
        let version = wait_for(Duration::from_secs(20), || {
            containerd
                .call(|mut cri| async move { cri.version(VersionRequest::default()).await })
                .map_err(|e| last_error = Some(e))
                .ok()
        })
        .unwrap_or_else(|| panic!("CRI Version: {last_error:?}\n{}", containerd.log()));
        assert_eq!(version.runtime_api_version, "v1", "{version:?}");
        containerd
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `ctr images import` into the CRI plugin's namespace, then waits until
    /// the CRI image service knows `reference`.
    pub fn import_image(&self, archive: &Path, reference: &str) {
        let output = Command::new("ctr")
            .arg("--address")
            .arg(&self.socket)
            .args(["-n", K8S_NAMESPACE, "images", "import"])
            .arg(archive)
            .output()
            .expect("running ctr");
        assert!(
            output.status.success(),
            "ctr images import: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let images = self.images.clone();
        let known = wait_for(Duration::from_secs(10), || {
            let mut images = images.clone();
            let request = ImageStatusRequest {
                image: Some(ImageSpec {
                    image: reference.to_string(),
                    ..Default::default()
                }),
                verbose: false,
            };
            self.runtime
                .block_on(images.image_status(request))
                .ok()
                .and_then(|r| r.into_inner().image)
        });
        assert!(known.is_some(), "CRI does not list {reference}");
    }

    /// RunPodSandbox for a pod with Kubernetes metadata; returns its id.
    pub fn run_pod(&self, namespace: &str, name: &str, uid: &str) -> Result<String, tonic::Status> {
        let config = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata {
                name: name.to_string(),
                uid: uid.to_string(),
                namespace: namespace.to_string(),
                attempt: 0,
            }),
            hostname: name.to_string(),
            log_directory: self.dir.join("pod-logs").join(uid).display().to_string(),
            labels: [
                ("io.kubernetes.pod.name", name),
                ("io.kubernetes.pod.namespace", namespace),
                ("io.kubernetes.pod.uid", uid),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
            linux: Some(LinuxPodSandboxConfig {
                cgroup_parent: self.cgroup_parent.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        self.call(|mut cri| async move {
            cri.run_pod_sandbox(RunPodSandboxRequest {
                config: Some(config),
                runtime_handler: String::new(),
            })
            .await
        })
        .map(|r| r.pod_sandbox_id)
    }

    /// PodSandboxStatus with containerd's verbose information.
    pub fn pod_status(&self, id: &str) -> Result<PodSandboxStatusResponse, tonic::Status> {
        let request = PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: true,
        };
        self.call(|mut cri| async move { cri.pod_sandbox_status(request).await })
    }

    /// The pod's address as the CRI reports it (what the kubelet puts in
    /// the pod's status).
    pub fn pod_ip(&self, id: &str) -> IpAddr {
        let status = self.pod_status(id).expect("PodSandboxStatus");
        let ip = status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default();
        ip.parse()
            .unwrap_or_else(|_| panic!("pod {id} has no address: {ip:?}"))
    }

    /// The pod's network namespace, from the runtime spec containerd
    /// reports in its verbose status.
    pub fn pod_netns(&self, id: &str) -> PathBuf {
        let status = self.pod_status(id).expect("PodSandboxStatus");
        let info: serde_json::Value = serde_json::from_str(
            status
                .info
                .get("info")
                .expect("verbose status has containerd's info"),
        )
        .unwrap();
        let path = info["runtimeSpec"]["linux"]["namespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|ns| ns["type"] == "network")
            .and_then(|ns| ns["path"].as_str())
            .unwrap_or_else(|| panic!("no network namespace in {info}"));
        PathBuf::from(path)
    }

    pub fn stop_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let request = StopPodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut cri| async move { cri.stop_pod_sandbox(request).await })
            .map(drop)
    }

    pub fn remove_pod(&self, id: &str) -> Result<(), tonic::Status> {
        let request = RemovePodSandboxRequest {
            pod_sandbox_id: id.to_string(),
        };
        self.call(|mut cri| async move { cri.remove_pod_sandbox(request).await })
            .map(drop)
    }

    /// Ids of every pod sandbox containerd knows, ready or not.
    pub fn pod_ids(&self) -> Result<Vec<String>, tonic::Status> {
        self.call(
            |mut cri| async move { cri.list_pod_sandbox(ListPodSandboxRequest::default()).await },
        )
        .map(|r| r.items.into_iter().map(|p| p.id).collect())
    }

    /// Runs one CRI call on the client's runtime, bounded by
    /// [`CALL_TIMEOUT`].
    fn call<T, F, Fut>(&self, f: F) -> Result<T, tonic::Status>
    where
        F: FnOnce(RuntimeServiceClient<Channel>) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let call = f(self.cri.clone());
        self.runtime.block_on(async {
            match tokio::time::timeout(CALL_TIMEOUT, call).await {
                Ok(result) => result.map(tonic::Response::into_inner),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "no answer from containerd in {CALL_TIMEOUT:?}"
                ))),
            }
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Pods left by a failed test: stopping runs the plugins' DEL and
        // removing deletes the sandbox container and its shim.
        if let Ok(ids) = self.pod_ids() {
            for id in ids {
                let _ = self.stop_pod(&id);
                let _ = self.remove_pod(&id);
            }
        }
        self.daemon = None;
        unmount_below(&self.dir);
    }
}

/// containerd's configuration: every path under `dir`, plugins that would
/// touch global paths (`/opt/containerd`, other snapshotters) disabled or
/// moved, the CRI plugin pointed at the test's CNI directories.
fn config_toml(dir: &Path, socket: &Path, config: &ContainerdConfig<'_>) -> String {
    let d = dir.display();
    format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp",
]

[grpc]
  address = "{socket}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{d}/opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  disable_apparmor = true

[plugins."io.containerd.grpc.v1.cri".containerd]
  snapshotter = "overlayfs"

[plugins."io.containerd.grpc.v1.cri".cni]
  bin_dir = "{bin_dir}"
  conf_dir = "{conf_dir}"
  max_conf_num = 1
"#,
        socket = socket.display(),
        sandbox_image = config.sandbox_image,
        bin_dir = config.cni.bin_dir.display(),
        conf_dir = config.cni.conf_dir.display(),
    )
}
