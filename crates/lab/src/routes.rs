//! Waiting for cross-node routes: the agents program them (VXLAN tunnels,
//! or routes their BGP speakers exchanged) once the IPAM blocks of new
//! pods reach them, so `up` and `pod add` wait until every node has a
//! route covering every pod on another node before saying they are done.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::bail;
use ipnet::Ipv4Net;

use crate::state::State;
use crate::system;

/// The prefixes of a node's IPv4 routes (the default route left out).
fn prefixes(netns: &str) -> Vec<Ipv4Net> {
    system::ip_in(netns, &["-4", "route", "show", "table", "main"])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let first = line.split_whitespace().find(|w| *w != "blackhole")?;
            first
                .parse::<Ipv4Net>()
                .or_else(|_| first.parse::<Ipv4Addr>().map(Ipv4Net::from))
                .ok()
        })
        .collect()
}

/// The (node, pod address) pairs still without a route.
fn missing(state: &State) -> Vec<(String, Ipv4Addr)> {
    let mut out = Vec::new();
    for node in &state.nodes {
        let routes = prefixes(&node.netns);
        for pod in state.pods.iter().filter(|p| p.node != node.name) {
            let Ok(ip) = pod.ip.parse::<Ipv4Addr>() else {
                continue;
            };
            if !routes.iter().any(|r| r.contains(&ip)) {
                out.push((node.name.clone(), ip));
            }
        }
    }
    out
}

/// Waits until every node routes to every pod on the other nodes; the
/// time it took.
pub fn wait(state: &State, timeout: Duration) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let missing = missing(state);
        if missing.is_empty() {
            return Ok(start.elapsed());
        }
        if start.elapsed() > timeout {
            let list: Vec<String> = missing
                .iter()
                .map(|(node, ip)| format!("{node} has no route to {ip}"))
                .collect();
            bail!(
                "cross-node routes did not appear within {timeout:?}: {}; see the agents' logs under {}",
                list.join(", "),
                state.dir.join("logs").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
