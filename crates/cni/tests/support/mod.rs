//! Real container runtimes as clients of the plugins: the pieces a runtime
//! needs on a machine with no registry and no systemd, each on paths of its
//! own under a temporary directory.
//!
//! - [`CniSetup`]: a plugin directory (our `calico` and `calico-ipam`, plus
//!   the reference `loopback` that containerd runs for `lo`) and a
//!   configuration directory holding one conflist with Calico's plugin and
//!   IPAM.
//! - [`image`]: a busybox root filesystem and an OCI image archive built
//!   from it, since nothing can be pulled.
//! - [`containerd`]: a containerd of its own, driven through the CRI gRPC
//!   API as the kubelet drives it.
//! - [`podman`]: podman with its CNI backend, with its own
//!   `containers.conf`, storage and run directories.
//! - [`probe`]: a TCP echo listener and a probe inside any network
//!   namespace, opened by path.
//!
//! Each runtime runs inside a simulated node namespace (entered with
//! `nsenter --net`, which leaves the mount namespace alone), so the
//! plugins it starts create their `cali…` interfaces and routes there and
//! the machine's own network is never touched.
#![allow(dead_code)]

pub mod containerd;
pub mod image;
pub mod podman;
pub mod probe;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};

const CALICO: &str = env!("CARGO_BIN_EXE_calico");
const CALICO_IPAM: &str = env!("CARGO_BIN_EXE_calico-ipam");
/// Where Debian's containernetworking-plugins puts `loopback`.
const REFERENCE_PLUGINS: &str = "/usr/lib/cni";

/// The plugin and configuration directories a runtime is pointed at.
#[derive(Debug)]
pub struct CniSetup {
    pub bin_dir: PathBuf,
    pub conf_dir: PathBuf,
    pub network: String,
}

impl CniSetup {
    /// Creates `<dir>/cni-bin` and `<dir>/cni-conf`; the conflist names the
    /// network `network`, the node [`crate::common::datastore::NODE`] and
    /// the embedded datastore at `datastore` (the environment does not
    /// reach every invocation: podman's cleanup process runs DEL with an
    /// environment of its own).
    pub fn new(dir: &Path, network: &str, datastore: &Path) -> Self {
        let bin_dir = dir.join("cni-bin");
        let conf_dir = dir.join("cni-conf");
        std::fs::create_dir_all(&bin_dir).unwrap();
        std::fs::create_dir_all(&conf_dir).unwrap();
        let loopback = Path::new(REFERENCE_PLUGINS).join("loopback");
        assert!(
            loopback.is_file(),
            "{} is missing: run scripts/setup.sh (package containernetworking-plugins)",
            loopback.display()
        );
        for (name, target) in [
            ("calico", Path::new(CALICO)),
            ("calico-ipam", Path::new(CALICO_IPAM)),
            ("loopback", loopback.as_path()),
        ] {
            std::os::unix::fs::symlink(target, bin_dir.join(name)).unwrap();
        }
        let conflist = serde_json::json!({
            "cniVersion": "1.0.0",
            "name": network,
            "plugins": [{
                "type": "calico",
                "log_level": "warning",
                "datastore_type": "embedded",
                "embedded_datastore_path": datastore,
                "nodename": crate::common::datastore::NODE,
                "mtu": 1440,
                "ipam": {"type": "calico-ipam"},
            }],
        });
        std::fs::write(
            conf_dir.join("10-calico.conflist"),
            serde_json::to_string_pretty(&conflist).unwrap(),
        )
        .unwrap();
        CniSetup {
            bin_dir,
            conf_dir,
            network: network.to_string(),
        }
    }
}

/// The host-side interface Calico names for a Kubernetes pod: `cali` and
/// the first 11 hex digits of SHA-1 over `namespace.pod`, computed here
/// independently of the plugin's own code.
pub fn k8s_veth_name(namespace: &str, pod: &str) -> String {
    let digest = Sha1::digest(format!("{namespace}.{pod}").as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    format!("cali{}", &hex[..11])
}

/// A daemon started by a test: stopped with SIGTERM by its PID, then
/// SIGKILL if it has not exited within `grace`, and always reaped.
#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Child,
    grace: Duration,
}

impl Daemon {
    pub fn spawn(name: &'static str, command: &mut Command, grace: Duration) -> Daemon {
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Daemon { name, child, grace }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Panics with `log` when the daemon has already exited.
    pub fn assert_running(&mut self, log: impl FnOnce() -> String) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("{} exited ({status}):\n{}", self.name, log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + self.grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A cgroup parent of the test's own (`/crs-<tag>-<unique>`), handed to a
/// runtime so the cgroups it makes for pods and monitors sit below it;
/// dropping it removes the emptied directories from every hierarchy.
#[derive(Debug)]
pub struct CgroupParent {
    path: String,
}

impl CgroupParent {
    pub fn new(tag: &str) -> CgroupParent {
        CgroupParent {
            path: format!("/{}", calico_testutil::unique_name(&format!("crs-{tag}-"))),
        }
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Drop for CgroupParent {
    fn drop(&mut self) {
        // cgroup v2 alone is mounted at the root; v1 has a directory per
        // hierarchy (and the hybrid layout adds `unified`).
        let root = Path::new("/sys/fs/cgroup");
        let mut hierarchies = vec![root.to_path_buf()];
        if let Ok(entries) = std::fs::read_dir(root) {
            hierarchies.extend(entries.flatten().map(|e| e.path()));
        }
        let dirs: Vec<PathBuf> = hierarchies
            .iter()
            .map(|h| h.join(self.path.trim_start_matches('/')))
            .collect();
        // A monitor killed just before may still be leaving its cgroup.
        wait_for(Duration::from_secs(5), || {
            for dir in &dirs {
                remove_cgroup_tree(dir);
            }
            dirs.iter().all(|d| !d.exists()).then_some(())
        });
    }
}

/// Removes an empty cgroup and its empty children, deepest first; a cgroup
/// that still holds a process stays.
fn remove_cgroup_tree(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_cgroup_tree(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Detaches every mount at or below `dir` (deepest first), so a runtime
/// that was stopped half-way leaves nothing mounted in a directory about to
/// be removed.
pub fn unmount_below(dir: &Path) {
    let Ok(mountinfo) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut mounts: Vec<PathBuf> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    mounts.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for mount in mounts {
        let _ = Command::new("umount").arg("-l").arg(&mount).status();
    }
}

/// Polls `check` every 100 ms until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
