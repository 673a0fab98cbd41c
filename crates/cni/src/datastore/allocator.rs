//! [`AddressAllocator`] over Calico's block allocator.

use std::collections::BTreeSet;
use std::net::IpAddr;

use calico_client::Client;
use calico_datastore::Backend;
use calico_ipam::{AssignIpArgs, AutoAssignArgs, Ipam, IpamError};
use calico_model::{IpPool, IpPoolAllowedUse};
use futures::future::BoxFuture;
use ipnet::IpNet;

use crate::datastore::store_error;
use crate::endpoint::StoreError;
use crate::ipam::{AddressAllocator, AllocatorError, AutoAssign, AutoAssigned, ExplicitAssign};

/// Calico's block allocator (compare-and-swap on the datastore), plus the
/// typed client to resolve pools given by name.
#[derive(Debug)]
pub struct BlockAllocator<B> {
    ipam: Ipam<B>,
    client: Client<B>,
}

impl<B: Backend + Clone> BlockAllocator<B> {
    pub fn new(backend: B) -> Self {
        BlockAllocator {
            ipam: Ipam::new(backend.clone()),
            client: Client::new(backend),
        }
    }
}

fn allocator_error(error: IpamError) -> AllocatorError {
    if error.is_transient() {
        return AllocatorError::Unavailable(calico_datastore::display_chain(&error));
    }
    match error {
        IpamError::NoFreeBlocks { .. } | IpamError::BlockLimit { .. } => {
            AllocatorError::Exhausted(calico_datastore::display_chain(&error))
        }
        IpamError::NotInPool(_) | IpamError::UseNotAllowed { .. } => {
            AllocatorError::NotAvailable(calico_datastore::display_chain(&error))
        }
        other => AllocatorError::Other(Box::new(other)),
    }
}

/// Calico's `timestamp` attribute: Go's `time.Time.String()` of UTC now.
fn timestamp() -> String {
    chrono::Utc::now()
        .format("%Y-%m-%d %H:%M:%S%.f +0000 UTC")
        .to_string()
}

impl<B: Backend + Clone> BlockAllocator<B> {
    /// Pools given by CIDR or by IPPool name, as CIDRs (Calico's
    /// `ResolvePools`).
    async fn resolve_pools(
        &self,
        given: &[String],
        v4: bool,
    ) -> Result<Vec<IpNet>, AllocatorError> {
        if given.is_empty() {
            return Ok(Vec::new());
        }
        let mut pools: Option<Vec<IpPool>> = None;
        let mut out = Vec::new();
        for entry in given {
            let cidr = match entry.parse::<IpNet>() {
                Ok(cidr) => cidr,
                Err(_) => {
                    if pools.is_none() {
                        pools = Some(self.client.list_typed::<IpPool>(None, None).await.map_err(
                            |e| match store_error("IPPool", entry, e) {
                                StoreError::Unavailable(m) => AllocatorError::Unavailable(m),
                                other => AllocatorError::Other(Box::new(other)),
                            },
                        )?);
                    }
                    let pool = pools
                        .iter()
                        .flatten()
                        .find(|p| &p.metadata.name == entry)
                        .ok_or_else(|| {
                            AllocatorError::NotAvailable(format!("no IPPool named {entry:?}"))
                        })?;
                    pool.spec.cidr.parse().map_err(|_| {
                        AllocatorError::NotAvailable(format!(
                            "IPPool {entry:?} has an invalid cidr {:?}",
                            pool.spec.cidr
                        ))
                    })?
                }
            };
            if cidr.addr().is_ipv4() != v4 {
                return Err(AllocatorError::NotAvailable(format!(
                    "{entry:?} is not an IPv{} pool",
                    if v4 { 4 } else { 6 }
                )));
            }
            out.push(cidr);
        }
        Ok(out)
    }
}

impl<B: Backend + Clone> AddressAllocator for BlockAllocator<B> {
    fn auto_assign<'a>(
        &'a self,
        request: &'a AutoAssign,
    ) -> BoxFuture<'a, Result<AutoAssigned, AllocatorError>> {
        Box::pin(async move {
            let mut attrs = request.attributes.clone();
            attrs.insert("timestamp".into(), timestamp());
            let args = AutoAssignArgs {
                num4: request.num_v4 as usize,
                num6: request.num_v6 as usize,
                handle: Some(request.handle_id.clone()),
                attrs,
                hostname: request.node.clone(),
                ipv4_pools: self.resolve_pools(&request.ipv4_pools, true).await?,
                ipv6_pools: self.resolve_pools(&request.ipv6_pools, false).await?,
                max_blocks_per_host: 0,
                intended_use: IpPoolAllowedUse::Workload,
                namespace_labels: None,
            };
            match self.ipam.auto_assign(&args).await {
                Ok(assigned) => {
                    // A shortfall is reported by the caller, which releases
                    // the handle; say why here.
                    for family in [&assigned.v4, &assigned.v6] {
                        if let Some(why) = family.partial_fulfillment_error() {
                            tracing::warn!(handle = %request.handle_id, %why, "assignment fell short");
                        }
                    }
                    Ok(AutoAssigned {
                        v4: assigned.v4.ips,
                        v6: assigned.v6.ips,
                    })
                }
                Err(failure) => Err(allocator_error(failure.error)),
            }
        })
    }

    fn assign_ip<'a>(
        &'a self,
        request: &'a ExplicitAssign,
    ) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async move {
            let mut attrs = request.attributes.clone();
            attrs.insert("timestamp".into(), timestamp());
            let args = AssignIpArgs {
                ip: request.address,
                handle: Some(request.handle_id.clone()),
                attrs,
                hostname: request.node.clone(),
                intended_use: Some(IpPoolAllowedUse::Workload),
            };
            self.ipam.assign_ip(&args).await.map_err(allocator_error)
        })
    }

    fn release_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async move {
            self.ipam
                .release_by_handle(handle_id)
                .await
                .map(drop)
                .map_err(allocator_error)
        })
    }

    fn addresses_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, AllocatorError>> {
        Box::pin(async move {
            self.ipam
                .get_ips_by_handle(handle_id)
                .await
                .map_err(allocator_error)
        })
    }

    fn release_handles_except<'a>(
        &'a self,
        _node: &'a str,
        _handle_prefix: &'a str,
        _keep: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, AllocatorError>> {
        Box::pin(async {
            Err(AllocatorError::Other(
                "releasing stale handles per node is not offered by the block allocator yet; the IPAM garbage collector reclaims them"
                    .into(),
            ))
        })
    }

    fn ready<'a>(&'a self) -> BoxFuture<'a, Result<(), AllocatorError>> {
        Box::pin(async move {
            let pools =
                self.client.list_typed::<IpPool>(None, None).await.map_err(
                    |e| match store_error("IPPool", "", e) {
                        StoreError::Unavailable(m) => AllocatorError::Unavailable(m),
                        other => AllocatorError::Other(Box::new(other)),
                    },
                )?;
            if pools.iter().any(|p| !p.spec.disabled) {
                Ok(())
            } else {
                Err(AllocatorError::Exhausted("no enabled IPPool exists".into()))
            }
        })
    }
}
