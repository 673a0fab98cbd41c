//! `STATUS` and `GC` (CNI 1.1.0).

use super::{Invocation, Services, require_version};
use crate::env::Command;
use crate::error::{CniError, ErrorCode};

/// Ready when the datastore answers and says it is ready, and the IPAM can
/// assign addresses; otherwise error 50 (not available).
pub async fn cmd_status(inv: &Invocation, svc: &Services<'_>) -> Result<(), CniError> {
    require_version(inv.version, Command::Status)?;
    let unavailable = |msg: String, details: String| {
        CniError::new(ErrorCode::NotAvailable, msg).with_details(details)
    };
    match svc.store.datastore_ready().await {
        Ok(true) => {}
        Ok(false) => {
            return Err(unavailable(
                "Calico's datastore is not ready (ClusterInformation datastoreReady is false)"
                    .into(),
                String::new(),
            ));
        }
        Err(e) => {
            return Err(unavailable(
                "Calico's datastore cannot be reached".into(),
                e.to_string(),
            ));
        }
    }
    svc.ipam
        .status(&inv.env, &inv.conf, &inv.stdin)
        .await
        .map_err(|e| {
            unavailable(
                "IP address management is not available".into(),
                e.to_string(),
            )
        })
}

/// Releases the addresses of attachments the runtime no longer knows
/// (`cni.dev/valid-attachments`); everything else is left to the node's
/// garbage collection.
pub async fn cmd_gc(inv: &Invocation, svc: &Services<'_>) -> Result<(), CniError> {
    require_version(inv.version, Command::Gc)?;
    let valid = inv.conf.valid_attachments.clone().unwrap_or_default();
    svc.ipam
        .gc(&inv.env, &inv.conf, &inv.stdin, &inv.node, &valid)
        .await
        .map_err(|e| e.to_cni("releasing addresses of stale attachments"))
}
