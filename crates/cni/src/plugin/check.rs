//! `CHECK`: compares the attachment with the `prevResult` of its `ADD`.

use std::net::IpAddr;

use calico_netlink::WorkloadInterface;
use ipnet::IpNet;

use super::{Invocation, Services, combine, ensure_ready, require_version};
use crate::env::Command;
use crate::error::{CniError, ErrorCode};
use crate::ipam::IpamRequest;
use crate::names::{self, WorkloadIds};
use crate::result::CniResult;

/// Checks that the interface, its addresses and routes, the host side, the
/// WorkloadEndpoint and the IPAM records are all still as `ADD` left them.
/// Every difference is reported in one error.
pub async fn cmd_check(inv: &Invocation, svc: &Services<'_>) -> Result<(), CniError> {
    require_version(inv.version, Command::Check)?;
    let env = &inv.env;
    let netns = env.netns.as_deref().ok_or_else(|| {
        CniError::new(
            ErrorCode::InvalidEnvironment,
            "CNI_NETNS is required for CHECK",
        )
    })?;
    let Some(prev) = &inv.conf.prev_result else {
        return Err(CniError::new(
            ErrorCode::InvalidConfig,
            "CHECK needs the ADD's result in prevResult",
        ));
    };
    let prev = CniResult::from_value(prev)
        .map_err(|e| CniError::from_error(ErrorCode::Decode, &e).prefixed("reading prevResult"))?;
    let addresses = our_addresses(&prev, &env.ifname, &netns.display().to_string());
    if addresses.is_empty() {
        return Err(CniError::new(
            ErrorCode::InvalidConfig,
            format!("prevResult has no addresses for interface {}", env.ifname),
        ));
    }
    let ids = WorkloadIds::new(&inv.node, &env.args, &env.container_id, &env.ifname);
    let name = ids
        .endpoint_name()
        .map_err(|e| CniError::from_error(ErrorCode::InvalidEnvironment, &e))?;
    ensure_ready(svc.store).await?;

    let mut failures = Vec::new();
    let spec = WorkloadInterface {
        host_ifname: names::host_ifname(&inv.interface_prefix, &env.args, &env.container_id),
        pod_ifname: env.ifname.clone(),
        addresses: addresses.clone(),
        routes: inv.conf.pod_routes()?,
        mtu: inv.mtu,
        queues: None,
        pod_mac: None,
        allow_ip_forwarding: inv.conf.container_settings.allow_ip_forwarding,
        host_routes: !(inv.conf.ipam.ipam_type == "calico-ipam" && prev.routes.is_empty()),
    };
    if let Err(e) = svc.dataplane.check(netns, &spec) {
        failures.push(CniError::from_error(ErrorCode::Internal, &e));
    }

    match svc.store.get(&ids.namespace, &name).await {
        Ok(Some(endpoint)) => {
            if endpoint.spec.container_id != env.container_id {
                failures.push(CniError::new(
                    ErrorCode::Internal,
                    format!(
                        "WorkloadEndpoint {name} belongs to container {:?}, not {}",
                        endpoint.spec.container_id, env.container_id
                    ),
                ));
            }
            let mut recorded: Vec<String> = endpoint.spec.ip_networks.clone();
            let mut expected: Vec<String> = addresses
                .iter()
                .map(|a| IpNet::from(*a).to_string())
                .collect();
            recorded.sort();
            expected.sort();
            if recorded != expected {
                failures.push(CniError::new(
                    ErrorCode::Internal,
                    format!(
                        "WorkloadEndpoint {name} records {recorded:?}, the attachment has {expected:?}"
                    ),
                ));
            }
        }
        Ok(None) => failures.push(CniError::new(
            ErrorCode::Internal,
            format!("WorkloadEndpoint {}/{name} is missing", ids.namespace),
        )),
        Err(e) => failures.push(e.to_cni("reading the WorkloadEndpoint")),
    }

    let handle = names::handle_id(&inv.conf.name, &env.container_id);
    let request = IpamRequest {
        env,
        conf: &inv.conf,
        stdin: &inv.stdin,
        handle_id: &handle,
        ids: &ids,
        requested: &[],
    };
    if let Err(e) = svc.ipam.check(&request).await {
        failures.push(e.to_cni("checking the address records"));
    }
    combine(
        &format!("CHECK of container {}", env.container_id),
        failures,
    )
}

/// The addresses of `prevResult` that belong to our interface: those whose
/// `interface` index points at it, or all of them when none say.
fn our_addresses(prev: &CniResult, ifname: &str, netns: &str) -> Vec<IpAddr> {
    let ours = |index: usize| {
        prev.interfaces
            .get(index)
            .is_some_and(|i| i.name == ifname && i.sandbox.as_deref().is_none_or(|s| s == netns))
    };
    let indexed: Vec<IpAddr> = prev
        .ips
        .iter()
        .filter(|ip| ip.interface.is_some_and(ours))
        .map(|ip| ip.address.addr())
        .collect();
    if !indexed.is_empty() {
        return indexed;
    }
    prev.ips
        .iter()
        .filter(|ip| ip.interface.is_none())
        .map(|ip| ip.address.addr())
        .collect()
}
