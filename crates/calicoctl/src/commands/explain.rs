//! `policy explain --from A --to B --port 80/tcp`: reads the policy
//! resources and endpoints from the datastore and asks calico-policy's
//! reference evaluator which tier, policy and rule decide the flow, for
//! the source's egress and the destination's ingress.

use std::net::IpAddr;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};

use calico_client::Client;
use calico_datastore::AnyBackend;
use calico_model::{
    GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, NetworkPolicy, NetworkSet, Profile, Tier,
    WorkloadEndpoint,
};
use calico_policy::EndpointKey;
use calico_policy::eval::{Flow, Packet, SideVerdict, Step};
use calico_policy::explain::{ResourceSet, explain};
use calico_policy::program::Failsafe;
use calico_policy::update::Update;

use crate::cli::{ExplainArgs, Global};
use crate::datastore::connect_checked;

/// The source port of the explained packet (any ephemeral port).
const SOURCE_PORT: u16 = 49152;

pub async fn run(global: &Global, args: &ExplainArgs) -> anyhow::Result<ExitCode> {
    let (protocol, port) = parse_port(args.port.as_deref(), args.protocol.as_deref())?;
    let client = connect_checked(global).await?;
    let (resources, workloads) = load(&client).await?;

    let (src_key, src_ip) = endpoint(&resources, &workloads, &args.from)
        .with_context(|| format!("--from {}", args.from))?;
    let (dst_key, dst_ip) =
        endpoint(&resources, &workloads, &args.to).with_context(|| format!("--to {}", args.to))?;
    if src_ip.is_ipv4() != dst_ip.is_ipv4() {
        bail!("--from {src_ip} and --to {dst_ip} are not of the same IP version");
    }
    let packet = match (protocol, port) {
        (1 | 58, _) => Packet::icmp(src_ip, dst_ip, if src_ip.is_ipv4() { 8 } else { 128 }, 0),
        (p, Some(port)) => Packet::with_ports(p, src_ip, SOURCE_PORT, dst_ip, port),
        (p, None) => Packet {
            src: src_ip,
            dst: dst_ip,
            protocol: p,
            src_port: None,
            dst_port: None,
            icmp: None,
        },
    };
    let flow = Flow {
        src_endpoint: src_key.clone(),
        dst_endpoint: dst_key.clone(),
        packet,
    };
    let explanation = explain(&resources, &Failsafe::default(), &flow);

    let name = |key: &Option<EndpointKey>, ip: IpAddr| match key {
        Some(k) => format!("{k} ({ip})"),
        None => format!("{ip} (not an endpoint)"),
    };
    let target = match port {
        Some(p) => format!("port {p}/{}", protocol_name(protocol)),
        None => protocol_name(protocol),
    };
    println!(
        "flow: {} -> {} {target}",
        name(&src_key, src_ip),
        name(&dst_key, dst_ip)
    );
    println!("verdict: {:?}", explanation.verdict);
    print_side(
        &format!("egress of {}", name(&src_key, src_ip)),
        &explanation.egress,
    );
    print_side(
        &format!("ingress of {}", name(&dst_key, dst_ip)),
        &explanation.ingress,
    );
    Ok(ExitCode::SUCCESS)
}

fn print_side(title: &str, side: &SideVerdict) {
    println!("{title}: {:?}", side.verdict);
    for step in &side.trail {
        println!("  {}", describe_step(step));
    }
    println!("  decided by: {}", side.decided_by);
}

fn describe_step(step: &Step) -> String {
    match step {
        Step::Log {
            stage,
            tier,
            owner,
            index,
        } => format!(
            "{}{owner}, rule {index}: Log ({stage:?})",
            tier_prefix(tier)
        ),
        Step::Pass {
            stage,
            tier,
            owner,
            index,
        } => format!(
            "{}{owner}, rule {index}: Pass to the next tier ({stage:?})",
            tier_prefix(tier)
        ),
        Step::TierPassed { stage, tier } => format!("tier {tier}: passed ({stage:?})"),
    }
}

fn tier_prefix(tier: &Option<String>) -> String {
    tier.as_ref()
        .map(|t| format!("tier {t}, "))
        .unwrap_or_default()
}

fn protocol_name(protocol: u8) -> String {
    match protocol {
        6 => "tcp".into(),
        17 => "udp".into(),
        132 => "sctp".into(),
        1 => "icmp".into(),
        58 => "icmpv6".into(),
        other => other.to_string(),
    }
}

fn protocol_number(name: &str) -> anyhow::Result<u8> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "tcp" => 6,
        "udp" => 17,
        "sctp" => 132,
        "icmp" => 1,
        "icmpv6" => 58,
        other => other
            .parse()
            .map_err(|_| anyhow!("unknown protocol {name:?}"))?,
    })
}

/// `80/tcp`, `53/udp`, `80` (tcp); or no port with `--protocol`.
fn parse_port(port: Option<&str>, protocol: Option<&str>) -> anyhow::Result<(u8, Option<u16>)> {
    let Some(port) = port else {
        let protocol = protocol_number(protocol.unwrap_or("tcp"))?;
        if matches!(protocol, 6 | 17 | 132) {
            bail!("--port is needed for {}", protocol_name(protocol));
        }
        return Ok((protocol, None));
    };
    let (number, proto) = port
        .split_once('/')
        .unwrap_or((port, protocol.unwrap_or("tcp")));
    let number: u16 =
        number.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            anyhow!("invalid --port {port:?}: expected PORT[/PROTOCOL], e.g. 80/tcp")
        })?;
    Ok((protocol_number(proto)?, Some(number)))
}

/// Everything policy depends on, read from the datastore.
async fn load(client: &Client<AnyBackend>) -> anyhow::Result<(ResourceSet, Vec<WorkloadEndpoint>)> {
    let mut updates: Vec<Update> = Vec::new();
    let read = "cannot read the policy resources";
    updates.extend(
        client
            .list_typed::<Tier>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<Profile>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<NetworkPolicy>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<GlobalNetworkPolicy>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<NetworkSet>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<GlobalNetworkSet>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    updates.extend(
        client
            .list_typed::<HostEndpoint>(None, None)
            .await
            .context(read)?
            .into_iter()
            .map(Update::from),
    );
    let workloads = client
        .list_typed::<WorkloadEndpoint>(None, None)
        .await
        .context(read)?;
    updates.extend(workloads.iter().cloned().map(Update::from));

    let mut resources = ResourceSet::new();
    for update in updates {
        let what = update.describe();
        // One bad resource does not stop the explanation (the agent skips
        // it the same way); say so.
        if let Err(e) = resources.apply(update) {
            eprintln!(
                "warning: {what} is left out: {}",
                calico_datastore::display_chain(&e)
            );
        }
    }
    Ok((resources, workloads))
}

/// `namespace/pod` (a workload endpoint, by pod, workload or endpoint
/// name) or an IP address (the endpoint owning it, if any).
fn endpoint(
    resources: &ResourceSet,
    workloads: &[WorkloadEndpoint],
    text: &str,
) -> anyhow::Result<(Option<EndpointKey>, IpAddr)> {
    if let Ok(ip) = text.parse::<IpAddr>() {
        return Ok((resources.endpoint_at(ip), ip));
    }
    let Some((namespace, pod)) = text.split_once('/') else {
        bail!("expected namespace/pod or an IP address");
    };
    let wep = workloads
        .iter()
        .find(|w| {
            w.metadata.namespace == namespace
                && (w.spec.pod == pod || w.spec.workload == pod || w.metadata.name == pod)
        })
        .ok_or_else(|| anyhow!("no workload endpoint for pod {pod} in namespace {namespace}"))?;
    let key = EndpointKey::workload(&wep.metadata.namespace, &wep.metadata.name);
    let ip = resources
        .address_of(&key, false)
        .or_else(|| resources.address_of(&key, true))
        .ok_or_else(|| {
            anyhow!(
                "workload endpoint {namespace}/{} has no address",
                wep.metadata.name
            )
        })?;
    Ok((Some(key), ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_and_protocols() {
        assert_eq!(parse_port(Some("80/tcp"), None).unwrap(), (6, Some(80)));
        assert_eq!(parse_port(Some("53/UDP"), None).unwrap(), (17, Some(53)));
        assert_eq!(parse_port(Some("8080"), None).unwrap(), (6, Some(8080)));
        assert_eq!(parse_port(None, Some("icmp")).unwrap(), (1, None));
        assert!(parse_port(None, None).is_err());
        assert!(parse_port(Some("http"), None).is_err());
        assert!(parse_port(Some("80/gre"), None).is_err());
    }
}
