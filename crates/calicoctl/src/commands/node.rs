//! `node status`: whether this machine's calico-node agent runs, and its
//! BGP peerings, as Calico prints them.
//!
//! Calico looks for the agent's process and asks BIRD over its control
//! socket; here both questions go to the agent's status socket (served by
//! calico-node, which renders the peer tables). An agent that does not
//! answer is an agent that is not running.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// The variable naming the agent's status socket, as calico-node reads it.
const SOCKET_ENV: &str = "CALICO_BGP_STATUS_SOCKET";
/// calico-node's default status socket.
const DEFAULT_SOCKET: &str = "/var/run/calico/bgp.ctl";
/// How long the agent has to answer (Calico gives BIRD two seconds a line).
const TIMEOUT: Duration = Duration::from_secs(5);

fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

pub async fn status() -> anyhow::Result<()> {
    let path = socket_path();
    let connected = tokio::time::timeout(TIMEOUT, UnixStream::connect(&path)).await;
    let Ok(Ok(mut stream)) = connected else {
        tracing::debug!(path = %path.display(), "no agent answers on the status socket");
        bail!("Calico process is not running.");
    };
    let reply = tokio::time::timeout(TIMEOUT, async {
        stream.write_all(b"show protocols\n").await?;
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    })
    .await
    .context("the agent did not answer in time")?
    .with_context(|| format!("reading the agent's status from {}", path.display()))?;
    if let Some(error) = reply.strip_prefix("error:") {
        bail!("the agent refused the status request:{}", error.trim_end());
    }
    print!("Calico process is running.\n{reply}");
    Ok(())
}
