//! CNI delegation: running the IPAM plugin named by `ipam.type`.

use std::path::PathBuf;
use std::process::Stdio;

use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;

use super::{Ipam, IpamError, IpamRequest};
use crate::config::{Attachment, NetConf};
use crate::env::{CniEnv, Command};
use crate::error::{CniError, ErrorCode};
use crate::result::CniResult;

/// Runs the delegated IPAM plugin from `CNI_PATH`, with the environment the
/// `calico` plugin received (the command replaced as needed) and the same
/// configuration on stdin. Its stderr goes to ours.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExecIpam;

impl ExecIpam {
    fn find(plugin: &str, env: &CniEnv) -> Result<PathBuf, IpamError> {
        if plugin.is_empty() || plugin.contains('/') {
            return Err(IpamError::Invalid(format!(
                "IPAM plugin type {plugin:?} is not a plugin name"
            )));
        }
        env.path
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|candidate| candidate.is_file())
            .ok_or_else(|| IpamError::PluginNotFound {
                plugin: plugin.to_string(),
                searched: env.path.iter().map(|p| p.display().to_string()).collect(),
            })
    }

    /// Runs the plugin with `command`; returns its stdout on success.
    async fn run(
        &self,
        command: Command,
        env: &CniEnv,
        conf: &NetConf,
        stdin: &[u8],
        extra_args: Option<String>,
    ) -> Result<Vec<u8>, IpamError> {
        let plugin = conf.ipam.ipam_type.clone();
        let binary = Self::find(&plugin, env)?;
        // Calico adds IgnoreUnknown=1 so that IPAM plugins accept the
        // Kubernetes arguments they do not know.
        let mut args = String::from("IgnoreUnknown=1");
        if !env.args_raw.is_empty() {
            args.push(';');
            args.push_str(&env.args_raw);
        }
        if let Some(extra) = extra_args {
            args.push(';');
            args.push_str(&extra);
        }
        let path = std::env::join_paths(&env.path)
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = tokio::process::Command::new(&binary)
            .env("CNI_COMMAND", command.as_str())
            .env("CNI_CONTAINERID", &env.container_id)
            .env(
                "CNI_NETNS",
                env.netns
                    .as_ref()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            )
            .env("CNI_IFNAME", &env.ifname)
            .env("CNI_ARGS", args)
            .env("CNI_PATH", path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| IpamError::Exec {
                plugin: plugin.clone(),
                source,
            })?;
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin)
                .await
                .map_err(|source| IpamError::Exec {
                    plugin: plugin.clone(),
                    source,
                })?;
        }
        let output = child
            .wait_with_output()
            .await
            .map_err(|source| IpamError::Exec {
                plugin: plugin.clone(),
                source,
            })?;
        if output.status.success() {
            return Ok(output.stdout);
        }
        Err(IpamError::Plugin {
            error: parse_error(&output.stdout, output.status.code()),
            plugin,
        })
    }
}

/// Reads a plugin's error JSON; a plugin that printed something else still
/// produces an error carrying what it printed.
fn parse_error(stdout: &[u8], exit_code: Option<i32>) -> CniError {
    #[derive(serde::Deserialize)]
    struct Wire {
        code: u32,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<Wire>(stdout) {
        Ok(wire) => {
            CniError::new(ErrorCode::from_number(wire.code), wire.msg).with_details(wire.details)
        }
        Err(_) => CniError::new(
            ErrorCode::Internal,
            format!(
                "exited with status {} without a CNI error result",
                exit_code.map_or_else(|| "unknown".to_string(), |c| c.to_string())
            ),
        )
        .with_details(String::from_utf8_lossy(stdout).trim().to_string()),
    }
}

impl Ipam for ExecIpam {
    fn add<'a>(
        &'a self,
        request: &'a IpamRequest<'a>,
    ) -> BoxFuture<'a, Result<CniResult, IpamError>> {
        Box::pin(async move {
            let extra = match request.requested {
                [] => None,
                [ip] => Some(format!("IP={ip}")),
                _ => {
                    return Err(IpamError::Invalid(format!(
                        "a delegated IPAM plugin takes one requested address, not {}",
                        request.requested.len()
                    )));
                }
            };
            let stdout = self
                .run(
                    Command::Add,
                    request.env,
                    request.conf,
                    request.stdin,
                    extra,
                )
                .await?;
            let result = CniResult::from_slice(&stdout).map_err(|source| IpamError::Output {
                plugin: request.conf.ipam.ipam_type.clone(),
                source,
            })?;
            if result.ips.is_empty() {
                // Don't keep whatever the plugin may have recorded.
                let _ = self.del(request).await;
                return Err(IpamError::NoAddresses);
            }
            Ok(result)
        })
    }

    fn del<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            self.run(Command::Del, request.env, request.conf, request.stdin, None)
                .await
                .map(drop)
        })
    }

    fn check<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            self.run(
                Command::Check,
                request.env,
                request.conf,
                request.stdin,
                None,
            )
            .await
            .map(drop)
        })
    }

    fn status<'a>(
        &'a self,
        env: &'a CniEnv,
        conf: &'a NetConf,
        stdin: &'a [u8],
    ) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            self.run(Command::Status, env, conf, stdin, None)
                .await
                .map(drop)
        })
    }

    fn gc<'a>(
        &'a self,
        env: &'a CniEnv,
        conf: &'a NetConf,
        stdin: &'a [u8],
        _node: &'a str,
        _valid: &'a [Attachment],
    ) -> BoxFuture<'a, Result<(), IpamError>> {
        // The valid attachments are already in the configuration passed on.
        Box::pin(async move {
            self.run(Command::Gc, env, conf, stdin, None)
                .await
                .map(drop)
        })
    }
}
