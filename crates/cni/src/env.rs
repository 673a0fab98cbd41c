//! The invocation parameters a runtime passes in `CNI_*` environment
//! variables, validated the way the reference implementation validates
//! them. Reading goes through a lookup function, so this stays free of I/O.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::args::CniArgs;
use crate::error::{CniError, ErrorCode};

/// `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Add,
    Del,
    Check,
    Status,
    Gc,
    Version,
}

impl Command {
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Status => "STATUS",
            Command::Gc => "GC",
            Command::Version => "VERSION",
        }
    }

    /// The variables this command cannot do without.
    fn required(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => {
                &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
            }
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
            Command::Status | Command::Gc => &["CNI_PATH"],
            Command::Version => &[],
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Command {
    type Err = CniError;

    fn from_str(text: &str) -> Result<Self, CniError> {
        Ok(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            "VERSION" => Command::Version,
            other => {
                return Err(CniError::new(
                    ErrorCode::InvalidEnvironment,
                    format!("unknown CNI_COMMAND: {other}"),
                ));
            }
        })
    }
}

/// Everything the runtime passed in the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CniEnv {
    pub command: Command,
    /// `CNI_CONTAINERID`; empty only for `STATUS`, `GC` and `VERSION`.
    pub container_id: String,
    /// `CNI_NETNS`; may be absent on `DEL` (containerd's second `DEL`).
    pub netns: Option<PathBuf>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, parsed.
    pub args: CniArgs,
    /// `CNI_ARGS` as given, for delegated plugins.
    pub args_raw: String,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<PathBuf>,
}

impl CniEnv {
    /// Reads and validates the `CNI_*` variables through `lookup` (for the
    /// process environment: `|k| std::env::var(k).ok()`). Every missing
    /// required variable is named in one error.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let get = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let Some(command_text) = get("CNI_COMMAND") else {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                "required env variables [CNI_COMMAND] missing",
            ));
        };
        let command: Command = command_text.parse()?;

        let missing: Vec<&str> = command
            .required()
            .iter()
            .copied()
            .filter(|name| get(name).is_none())
            .collect();
        if !missing.is_empty() {
            return Err(CniError::new(
                ErrorCode::InvalidEnvironment,
                format!("required env variables [{}] missing", missing.join(",")),
            ));
        }

        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        if command.required().contains(&"CNI_CONTAINERID") {
            validate_container_id(&container_id)?;
        }
        if command.required().contains(&"CNI_IFNAME") {
            validate_ifname(&ifname)?;
        }
        let args_raw = get("CNI_ARGS").unwrap_or_default();
        let args = args_raw.parse()?;
        Ok(CniEnv {
            command,
            container_id,
            netns: get("CNI_NETNS").map(PathBuf::from),
            ifname,
            args,
            args_raw,
            path: get("CNI_PATH")
                .map(|p| {
                    p.split(':')
                        .filter(|s| !s.is_empty())
                        .map(PathBuf::from)
                        .collect()
                })
                .unwrap_or_default(),
        })
    }
}

/// A container ID: alphanumeric first, then alphanumerics, `_`, `.`, `-`.
pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !valid_name(id) {
        return Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!(
                "invalid characters in CNI_CONTAINERID {id:?}: it must start with a letter or digit, then letters, digits, '_', '.' or '-'"
            ),
        ));
    }
    Ok(())
}

/// An interface name the kernel accepts: 1 to 15 bytes, not `.` or `..`,
/// no `/`, `:` or whitespace.
pub fn validate_ifname(name: &str) -> Result<(), CniError> {
    let error = |why: &str| {
        Err(CniError::new(
            ErrorCode::InvalidEnvironment,
            format!("invalid CNI_IFNAME {name:?}: {why}"),
        ))
    };
    if name.is_empty() {
        return error("interface name is empty");
    }
    if name.len() > 15 {
        return error("interface name is longer than 15 characters");
    }
    if name == "." || name == ".." {
        return error("interface name is . or ..");
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace())
    {
        return error("interface name contains / or : or whitespace");
    }
    Ok(())
}

/// Network names follow the same rule as container IDs.
pub(crate) fn valid_name(text: &str) -> bool {
    let mut chars = text.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Result<CniEnv, CniError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CniEnv::from_lookup(|k| map.get(k).cloned())
    }

    const ADD: &[(&str, &str)] = &[
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "a1b2c3"),
        ("CNI_NETNS", "/var/run/netns/cni-1234"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
        (
            "CNI_ARGS",
            "K8S_POD_NAMESPACE=kube-system;K8S_POD_NAME=coredns-1;K8S_POD_INFRA_CONTAINER_ID=a1b2c3;K8S_POD_UID=u-1;IgnoreUnknown=1",
        ),
    ];

    #[test]
    fn add_environment_parses() {
        let e = env(ADD).unwrap();
        assert_eq!(e.command, Command::Add);
        assert_eq!(e.container_id, "a1b2c3");
        assert_eq!(e.netns, Some(PathBuf::from("/var/run/netns/cni-1234")));
        assert_eq!(
            e.path,
            vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
        );
        assert_eq!(e.args.k8s_pod_namespace.as_deref(), Some("kube-system"));
        assert_eq!(e.args.k8s_pod_name.as_deref(), Some("coredns-1"));
    }

    #[test]
    fn every_missing_variable_is_named() {
        let error = env(&[("CNI_COMMAND", "ADD")]).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidEnvironment);
        assert_eq!(
            error.msg,
            "required env variables [CNI_CONTAINERID,CNI_NETNS,CNI_IFNAME,CNI_PATH] missing"
        );
        let error = env(&[]).unwrap_err();
        assert_eq!(error.msg, "required env variables [CNI_COMMAND] missing");
        let error = env(&[("CNI_COMMAND", "FROB")]).unwrap_err();
        assert_eq!(error.msg, "unknown CNI_COMMAND: FROB");
    }

    #[test]
    fn del_without_netns_is_valid() {
        let pairs: Vec<_> = ADD
            .iter()
            .copied()
            .filter(|(k, _)| *k != "CNI_NETNS")
            .map(|(k, v)| {
                if k == "CNI_COMMAND" {
                    (k, "DEL")
                } else {
                    (k, v)
                }
            })
            .collect();
        let e = env(&pairs).unwrap();
        assert_eq!(e.command, Command::Del);
        assert_eq!(e.netns, None);
    }

    #[test]
    fn version_status_and_gc_need_little() {
        assert_eq!(
            env(&[("CNI_COMMAND", "VERSION")]).unwrap().command,
            Command::Version
        );
        assert!(env(&[("CNI_COMMAND", "STATUS")]).is_err());
        assert_eq!(
            env(&[("CNI_COMMAND", "GC"), ("CNI_PATH", "/opt/cni/bin")])
                .unwrap()
                .command,
            Command::Gc
        );
    }

    #[test]
    fn bad_identifiers_are_rejected_by_name() {
        let with = |key: &str, value: &'static str| -> Vec<(&str, &str)> {
            ADD.iter()
                .map(|&(k, v)| if k == key { (k, value) } else { (k, v) })
                .collect()
        };
        let error = env(&with("CNI_CONTAINERID", "-abc")).unwrap_err();
        assert_eq!(error.code, ErrorCode::InvalidEnvironment);
        assert!(
            error.msg.contains("CNI_CONTAINERID \"-abc\""),
            "{}",
            error.msg
        );
        for (name, why) in [
            ("averyveryverylongname", "longer than 15"),
            ("eth/0", "contains /"),
            ("..", ". or .."),
        ] {
            let error = env(&with("CNI_IFNAME", name)).unwrap_err();
            assert!(error.msg.contains(why), "{name}: {}", error.msg);
        }
        let error = env(&with("CNI_ARGS", "K8S_POD_NAME")).unwrap_err();
        assert!(error.msg.contains("K8S_POD_NAME"), "{}", error.msg);
    }
}
