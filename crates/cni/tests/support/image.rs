//! A busybox root filesystem and an OCI image archive made from it, built
//! locally from Debian's `busybox-static` because no registry can be
//! reached.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

const BUSYBOX: &str = "/bin/busybox";
/// The applets the tests run; each is a symlink to `/bin/busybox`.
const APPLETS: &[&str] = &["sh", "sleep", "nc", "ip", "cat", "echo", "hostname"];

/// Creates `dir` holding `/bin/busybox` and its applet links, plus the
/// empty directories a runtime mounts over.
pub fn busybox_rootfs(dir: &Path) -> PathBuf {
    let busybox = Path::new(BUSYBOX);
    assert!(
        busybox.is_file(),
        "{BUSYBOX} is missing: run scripts/setup.sh (package busybox-static)"
    );
    for sub in ["bin", "etc", "proc", "sys", "dev", "tmp", "run"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    std::fs::copy(busybox, dir.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    dir.to_path_buf()
}

/// An OCI image archive (`ctr images import` format): one uncompressed
/// layer holding a busybox root filesystem, named `reference`. Its
/// entrypoint sleeps forever, so it also serves as a pod's sandbox
/// ("pause") image.
pub fn busybox_oci_archive(work: &Path, reference: &str) -> PathBuf {
    let rootfs = busybox_rootfs(&work.join("image-rootfs"));
    let layout = work.join("image-layout");
    let blobs = layout.join("blobs/sha256");
    std::fs::create_dir_all(&blobs).unwrap();

    let layer_tar = work.join("layer.tar");
    tar(&rootfs, &layer_tar);
    let layer = std::fs::read(&layer_tar).unwrap();
    let layer_digest = put_blob(&blobs, &layer);

    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Env": ["PATH=/bin"],
            "Entrypoint": ["/bin/sleep"],
            "Cmd": ["inf"],
        },
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_digest = put_blob(&blobs, &config);

    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": layer_digest,
            "size": layer.len(),
        }],
    });
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let manifest_digest = put_blob(&blobs, &manifest);

    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest,
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {"io.containerd.image.name": reference},
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();

    let archive = work.join("busybox-oci.tar");
    tar(&layout, &archive);
    archive
}

/// Stores `content` under its digest and returns `sha256:<hex>`.
fn put_blob(blobs: &Path, content: &[u8]) -> String {
    let hex: String = Sha256::digest(content)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    std::fs::write(blobs.join(&hex), content).unwrap();
    format!("sha256:{hex}")
}

/// Archives the contents of `dir` as root-owned entries.
fn tar(dir: &Path, archive: &Path) {
    let status = Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "--sort=name"])
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(archive)
        .arg(".")
        .status()
        .expect("running tar");
    assert!(status.success(), "tar of {} failed", dir.display());
}
