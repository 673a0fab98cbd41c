//! Per-namespace sysctls under `/proc/sys/net`.
//!
//! `/proc/sys/net` shows the network namespace of the thread that opens the
//! file, so writing one for another namespace means writing it from a thread
//! inside that namespace: [`write_in`] does that through [`NetNs::run`].

use std::io::{self, Write};
use std::path::PathBuf;

use crate::netns::{NetNs, NetNsError};

/// One sysctl to set, by its path under `/proc/sys` (`net/ipv4/ip_forward`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    pub key: String,
    pub value: &'static str,
    /// A failure to set an optional sysctl is reported as a warning only
    /// (Calico treats `proxy_delay` and `accept_ra` that way).
    pub optional: bool,
}

impl Sysctl {
    pub fn required(key: impl Into<String>, value: &'static str) -> Self {
        Sysctl {
            key: key.into(),
            value,
            optional: false,
        }
    }

    pub fn optional(key: impl Into<String>, value: &'static str) -> Self {
        Sysctl {
            key: key.into(),
            value,
            optional: true,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    #[error("setting sysctl {} = {value}", key.replace('/', "."))]
    Write {
        key: String,
        value: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("setting sysctls inside another network namespace")]
    Namespace {
        #[source]
        source: NetNsError,
    },
}

/// Writes one sysctl in the calling thread's namespace.
pub fn write(key: &str, value: &'static str) -> Result<(), SysctlError> {
    let path: PathBuf = ["/proc/sys", key].iter().collect();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|source| SysctlError::Write {
            key: key.to_string(),
            value,
            source,
        })
}

/// Reads one sysctl in the calling thread's namespace, trimmed.
pub fn read(key: &str) -> io::Result<String> {
    let path: PathBuf = ["/proc/sys", key].iter().collect();
    Ok(std::fs::read_to_string(path)?.trim().to_string())
}

/// Writes `settings` in order inside `ns`, stopping at the first required
/// one that fails. Failures of optional settings are returned for the
/// caller to report as warnings.
pub fn write_in(ns: &NetNs, settings: &[Sysctl]) -> Result<Vec<SysctlError>, SysctlError> {
    ns.run(|| {
        let mut warnings = Vec::new();
        for setting in settings {
            match write(&setting.key, setting.value) {
                Ok(()) => {}
                Err(e) if setting.optional => warnings.push(e),
                Err(e) => return Err(e),
            }
        }
        Ok(warnings)
    })
    .map_err(|source| SysctlError::Namespace { source })?
}
