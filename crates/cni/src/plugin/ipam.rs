//! The `calico-ipam` plugin: Calico's IPAM for a runtime, or a plugin,
//! that delegates address management to it.

use super::{Invocation, require_version, version_reply};
use crate::env::Command;
use crate::error::{CniError, ErrorCode};
use crate::ipam::{Ipam, IpamRequest};
use crate::names::{self, WorkloadIds};

/// Runs the invocation's command against `ipam`; returns what to print.
/// `ADD` prints the abbreviated IPAM result (addresses and routes, no
/// interfaces).
pub async fn run_ipam(inv: &Invocation, ipam: &dyn Ipam) -> Result<Option<String>, CniError> {
    let env = &inv.env;
    let ids = WorkloadIds::new(&inv.node, &env.args, &env.container_id, &env.ifname);
    let handle = names::handle_id(&inv.conf.name, &env.container_id);
    let requested: Vec<_> = env.args.ip.into_iter().collect();
    let request = IpamRequest {
        env,
        conf: &inv.conf,
        stdin: &inv.stdin,
        handle_id: &handle,
        ids: &ids,
        requested: &requested,
    };
    match env.command {
        Command::Add => {
            let result = ipam
                .add(&request)
                .await
                .map_err(|e| e.to_cni("assigning addresses"))?;
            let text = result
                .to_json(inv.version)
                .map_err(|e| CniError::from_error(ErrorCode::IncompatibleVersion, &e))?;
            Ok(Some(text))
        }
        Command::Del => ipam
            .del(&request)
            .await
            .map(|()| None)
            .map_err(|e| e.to_cni("releasing addresses")),
        Command::Check => {
            require_version(inv.version, Command::Check)?;
            ipam.check(&request)
                .await
                .map(|()| None)
                .map_err(|e| e.to_cni("checking addresses"))
        }
        Command::Status => {
            require_version(inv.version, Command::Status)?;
            ipam.status(env, &inv.conf, &inv.stdin)
                .await
                .map(|()| None)
                .map_err(|e| {
                    CniError::new(
                        ErrorCode::NotAvailable,
                        "IP address management is not available",
                    )
                    .with_details(e.to_string())
                })
        }
        Command::Gc => {
            require_version(inv.version, Command::Gc)?;
            let valid = inv.conf.valid_attachments.clone().unwrap_or_default();
            ipam.gc(env, &inv.conf, &inv.stdin, &inv.node, &valid)
                .await
                .map(|()| None)
                .map_err(|e| e.to_cni("releasing addresses of stale attachments"))
        }
        Command::Version => Ok(Some(version_reply(&inv.stdin))),
    }
}
