//! podman 4.3 with its CNI network backend, confined to one directory: its
//! own `containers.conf` (through `CONTAINERS_CONF`, which makes podman
//! ignore every other one) and `storage.conf`, so no global configuration,
//! storage, lock or run directory is touched.
//!
//! podman has no daemon: each command is a process, and each container has
//! a `conmon` monitor that runs `podman container cleanup` (the CNI DEL)
//! when the container exits. Those inherit the environment and the node
//! namespace of the `podman` command that started them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::{CniSetup, unmount_below};

/// What a test's podman is built from.
#[derive(Debug)]
pub struct PodmanConfig<'a> {
    /// Holds the configuration, storage, run and lock directories.
    pub dir: &'a Path,
    pub cni: &'a CniSetup,
    /// The simulated node's network namespace every command runs in.
    pub node_netns: &'a Path,
    /// Environment handed to podman, which passes it on to the plugins.
    pub env: &'a [(&'a str, &'a str)],
}

/// A podman configuration; dropping it removes every container it made
/// and unmounts anything still mounted below its directory.
#[derive(Debug)]
pub struct Podman {
    dir: PathBuf,
    node_netns: PathBuf,
    env: Vec<(String, String)>,
}

impl Podman {
    pub fn new(config: &PodmanConfig<'_>) -> Podman {
        calico_testutil::require_binary("podman", "podman");
        calico_testutil::require_binary("runc", "runc");
        let dir = config.dir.to_path_buf();
        let d = dir.display();
        // runc, not crun: crun refuses this machine's hybrid cgroup
        // layout. The limits stay within the machine's own (20000 open
        // files); podman's defaults exceed them. Without systemd, cgroups
        // are managed through cgroupfs and events go to a file.
        let containers_conf = format!(
            r#"[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
lock_type = "file"
tmp_dir = "{d}/tmp"
volume_path = "{d}/volumes"

[network]
network_backend = "cni"
cni_plugin_dirs = ["{bin_dir}"]
network_config_dir = "{conf_dir}"
"#,
            bin_dir = config.cni.bin_dir.display(),
            conf_dir = config.cni.conf_dir.display(),
        );
        // podman keeps its database under the graph root (`libpod/`),
        // where `podman container cleanup`, started by conmon with
        // `--root`, looks for it too.
        let storage_conf = format!(
            r#"[storage]
driver = "vfs"
graphroot = "{d}/storage"
runroot = "{d}/run"
"#
        );
        std::fs::write(dir.join("containers.conf"), containers_conf).unwrap();
        std::fs::write(dir.join("storage.conf"), storage_conf).unwrap();
        let mut env: Vec<(String, String)> = vec![
            ("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into()),
            ("HOME".into(), dir.display().to_string()),
            (
                "CONTAINERS_CONF".into(),
                dir.join("containers.conf").display().to_string(),
            ),
            (
                "CONTAINERS_STORAGE_CONF".into(),
                dir.join("storage.conf").display().to_string(),
            ),
        ];
        env.extend(
            config
                .env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        Podman {
            dir,
            node_netns: config.node_netns.to_path_buf(),
            env,
        }
    }

    /// Runs `podman ARGS` in the node namespace; stdout on success, an
    /// error carrying stderr otherwise.
    pub fn run(&self, args: &[&str]) -> Result<String, String> {
        let output = Command::new("nsenter")
            .arg(format!("--net={}", self.node_netns.display()))
            .arg("podman")
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("running podman: {e}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "podman {args:?} failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        }
    }

    /// `podman inspect` of one container, as JSON.
    pub fn inspect(&self, name: &str) -> serde_json::Value {
        let out = self
            .run(&["inspect", name])
            .unwrap_or_else(|e| panic!("{e}"));
        let mut all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        all.remove(0)
    }

    /// A busybox root filesystem of its own for one container (`podman run
    /// --rootfs` creates mount points and `/etc` files in it).
    pub fn rootfs(&self, name: &str) -> PathBuf {
        super::image::busybox_rootfs(&self.dir.join("rootfs").join(name))
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        // Containers left by a failed test: removal runs the CNI DEL.
        let _ = self.run(&["rm", "--force", "--all", "--time", "0"]);
        unmount_below(&self.dir);
    }
}
