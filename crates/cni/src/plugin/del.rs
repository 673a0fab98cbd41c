//! `DEL`: best effort and idempotent. Every step runs even if an earlier
//! one failed; what is already gone counts as done.

use super::{Invocation, Services, combine, ensure_ready};
use crate::endpoint::Deleted;
use crate::endpoint::StoreError;
use crate::error::{CniError, ErrorCode};
use crate::ipam::IpamRequest;
use crate::names::{self, Orchestrator, WorkloadIds};

/// How often to retry deleting an endpoint that changed under us.
const DELETE_ATTEMPTS: usize = 5;

/// Removes the container from the network: its WorkloadEndpoint (unless a
/// newer sandbox of the same pod owns it now), its interface, its
/// addresses. A second `DEL`, a `DEL` without a namespace, or one after the
/// namespace is gone all succeed.
pub async fn cmd_del(inv: &Invocation, svc: &Services<'_>) -> Result<(), CniError> {
    let env = &inv.env;
    let ids = WorkloadIds::new(&inv.node, &env.args, &env.container_id, &env.ifname);
    let name = ids
        .endpoint_name()
        .map_err(|e| CniError::from_error(ErrorCode::InvalidEnvironment, &e))?;
    ensure_ready(svc.store).await?;

    let mut failures = Vec::new();
    if let Err(e) = delete_endpoint(svc, &ids, &name).await {
        failures.push(e);
    }
    if let Some(netns) = &env.netns
        && let Err(e) = svc.dataplane.remove(netns, &env.ifname)
    {
        failures.push(
            CniError::from_error(ErrorCode::Internal, &e).prefixed("removing the pod's interface"),
        );
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
    if let Err(e) = svc.ipam.del(&request).await {
        failures.push(e.to_cni("releasing addresses"));
    }
    combine(&format!("DEL of container {}", env.container_id), failures)
}

async fn delete_endpoint(
    svc: &Services<'_>,
    ids: &WorkloadIds,
    name: &str,
) -> Result<(), CniError> {
    let context = || format!("deleting WorkloadEndpoint {}/{name}", ids.namespace);
    if ids.orchestrator == Orchestrator::Cni {
        return svc
            .store
            .delete(&ids.namespace, name, None)
            .await
            .map(drop)
            .map_err(|e| e.to_cni(&context()));
    }
    for _ in 0..DELETE_ATTEMPTS {
        let endpoint = svc
            .store
            .get(&ids.namespace, name)
            .await
            .map_err(|e| e.to_cni(&context()))?;
        let Some(endpoint) = endpoint else {
            return Ok(());
        };
        if !endpoint.spec.container_id.is_empty() && endpoint.spec.container_id != ids.container_id
        {
            // The pod has a newer sandbox; its endpoint is not ours to delete.
            tracing::info!(endpoint = name, owner = %endpoint.spec.container_id, "endpoint belongs to another container; kept");
            return Ok(());
        }
        let revision = Some(endpoint.metadata.resource_version.as_str()).filter(|r| !r.is_empty());
        match svc.store.delete(&ids.namespace, name, revision).await {
            Ok(Deleted::Deleted | Deleted::NotFound) => return Ok(()),
            Err(StoreError::Conflict { .. }) => continue,
            Err(e) => return Err(e.to_cni(&context())),
        }
    }
    Err(CniError::new(
        ErrorCode::TryAgainLater,
        format!("{}: it kept changing while being deleted", context()),
    ))
}
