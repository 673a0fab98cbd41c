//! The node's name, chosen as Calico chooses it: `NODENAME`, else the name
//! an earlier start stored in the nodename file
//! (`CALICO_NODENAME_FILE`, default `/var/lib/calico/nodename`), else
//! `HOSTNAME` (lower-cased), else the kernel's host name (lower-cased).
//! Start-up writes the name it used to the file, so later starts (and the
//! CNI plugin) agree on it.

use std::io;
use std::path::{Path, PathBuf};

use crate::env::Env;

pub const DEFAULT_NODENAME_FILE: &str = "/var/lib/calico/nodename";

/// Where the node name is stored.
pub fn nodename_file(env: &Env) -> PathBuf {
    PathBuf::from(
        env.get("CALICO_NODENAME_FILE")
            .unwrap_or(DEFAULT_NODENAME_FILE),
    )
}

#[derive(Debug, thiserror::Error)]
pub enum NodenameError {
    #[error("reading the node name from {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "no node name: set NODENAME (or HOSTNAME), or store one in {}",
        path.display()
    )]
    Missing { path: PathBuf },
    #[error("writing the node name to {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The node name; `kernel_hostname` is consulted last.
pub fn determine(
    env: &Env,
    kernel_hostname: impl FnOnce() -> Option<String>,
) -> Result<String, NodenameError> {
    if let Some(name) = env.get("NODENAME") {
        return Ok(name.to_owned());
    }
    let path = nodename_file(env);
    match std::fs::read_to_string(&path) {
        Ok(stored) if !stored.trim().is_empty() => return Ok(stored.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => return Err(NodenameError::Read { path, source }),
    }
    if let Some(name) = env.get("HOSTNAME") {
        return Ok(name.to_ascii_lowercase());
    }
    kernel_hostname()
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .ok_or(NodenameError::Missing { path })
}

/// The kernel's host name (of this UTS namespace).
pub fn kernel_hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname").ok()
}

/// Stores the name for later starts, creating the directory if needed.
pub fn store(path: &Path, name: &str) -> Result<(), NodenameError> {
    let write = || -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, name)
    };
    write().map_err(|source| NodenameError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_is_calicos() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sub/nodename");
        let file_var = file.to_str().unwrap();
        let env = |pairs: &[(&str, &str)]| {
            let mut e = Env::from_pairs(pairs.iter().copied());
            e.set("CALICO_NODENAME_FILE", file_var);
            e
        };
        let kernel = || Some("Kernel-Host\n".to_string());
        assert_eq!(determine(&env(&[]), kernel).unwrap(), "kernel-host");
        assert_eq!(
            determine(&env(&[("HOSTNAME", "Pod-Host")]), kernel).unwrap(),
            "pod-host"
        );
        store(&file, "stored-name").unwrap();
        assert_eq!(
            determine(&env(&[("HOSTNAME", "Pod-Host")]), kernel).unwrap(),
            "stored-name"
        );
        assert_eq!(
            determine(&env(&[("NODENAME", " Explicit ")]), kernel).unwrap(),
            "Explicit"
        );
        std::fs::remove_file(&file).unwrap();
        assert!(matches!(
            determine(&env(&[]), || None),
            Err(NodenameError::Missing { .. })
        ));
    }
}
