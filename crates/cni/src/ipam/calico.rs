//! Calico's IPAM plugin logic (what the `calico-ipam` binary does), over an
//! allocator that keeps the records in the datastore.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use futures::future::BoxFuture;
use ipnet::IpNet;

use super::{Ipam, IpamError, IpamRequest};
use crate::config::{Attachment, NetConf};
use crate::env::CniEnv;
use crate::names::{Orchestrator, handle_id};
use crate::result::{CniResult, IpConfig, Route};

/// Attribute keys Calico records with every allocation.
pub const ATTRIBUTE_NODE: &str = "node";
pub const ATTRIBUTE_POD: &str = "pod";
pub const ATTRIBUTE_NAMESPACE: &str = "namespace";

/// A request for addresses picked by the allocator (Calico's
/// `AutoAssignArgs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoAssign {
    pub handle_id: String,
    pub node: String,
    pub num_v4: u32,
    pub num_v6: u32,
    /// Pools to use, by CIDR or IPPool name; empty means every pool that
    /// applies to the node.
    pub ipv4_pools: Vec<String>,
    pub ipv6_pools: Vec<String>,
    /// Recorded with the allocation: `node`, and for pods `pod` and
    /// `namespace`. The allocator adds its own timestamp.
    pub attributes: BTreeMap<String, String>,
    /// The pod's namespace, for pools with a namespace selector.
    pub namespace: Option<String>,
}

/// What [`AddressAllocator::auto_assign`] handed out. Each address keeps
/// the prefix of the block it came from (`10.244.3.7/26`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutoAssigned {
    pub v4: Vec<IpNet>,
    pub v6: Vec<IpNet>,
}

/// A request for one specific address (Calico's `AssignIPArgs`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplicitAssign {
    pub address: IpAddr,
    pub handle_id: String,
    pub node: String,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, thiserror::Error)]
pub enum AllocatorError {
    /// No free address in the pools that apply.
    #[error("no free addresses: {0}")]
    Exhausted(String),
    /// The requested address is taken, reserved, or in no pool.
    #[error("address not available: {0}")]
    NotAvailable(String),
    /// The datastore cannot be reached; retrying later may work.
    #[error("datastore unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync>),
}

/// What Calico's block allocator must offer the CNI plugin. Every write is
/// expected to be safe against concurrent plugins on the same and other
/// nodes (compare-and-swap on the datastore).
pub trait AddressAllocator: Send + Sync {
    /// Picks and records addresses under `request.handle_id`.
    fn auto_assign<'a>(
        &'a self,
        request: &'a AutoAssign,
    ) -> BoxFuture<'a, Result<AutoAssigned, AllocatorError>>;

    /// Records one specific address under `request.handle_id`.
    fn assign_ip<'a>(
        &'a self,
        request: &'a ExplicitAssign,
    ) -> BoxFuture<'a, Result<(), AllocatorError>>;

    /// Releases every address recorded under `handle_id`; an unknown handle
    /// is success.
    fn release_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<(), AllocatorError>>;

    /// The addresses recorded under `handle_id`.
    fn addresses_by_handle<'a>(
        &'a self,
        handle_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<IpAddr>, AllocatorError>>;

    /// Releases the addresses of every handle on `node` that starts with
    /// `handle_prefix` and is not in `keep`; returns the handles released.
    fn release_handles_except<'a>(
        &'a self,
        node: &'a str,
        handle_prefix: &'a str,
        keep: &'a BTreeSet<String>,
    ) -> BoxFuture<'a, Result<Vec<String>, AllocatorError>>;

    /// Whether addresses can be assigned now (pools exist and the datastore
    /// answers).
    fn ready<'a>(&'a self) -> BoxFuture<'a, Result<(), AllocatorError>>;
}

/// Calico's IPAM in-process.
#[derive(Debug)]
pub struct CalicoIpam<A> {
    allocator: A,
}

impl<A: AddressAllocator> CalicoIpam<A> {
    pub fn new(allocator: A) -> Self {
        CalicoIpam { allocator }
    }

    pub fn allocator(&self) -> &A {
        &self.allocator
    }
}

fn attributes(request: &IpamRequest<'_>) -> BTreeMap<String, String> {
    let mut attributes = BTreeMap::new();
    attributes.insert(ATTRIBUTE_NODE.to_string(), request.ids.node.clone());
    if request.ids.orchestrator == Orchestrator::Kubernetes {
        attributes.insert(ATTRIBUTE_POD.to_string(), request.ids.pod.clone());
        attributes.insert(
            ATTRIBUTE_NAMESPACE.to_string(),
            request.ids.namespace.clone(),
        );
    }
    attributes
}

fn allocator_error(source: AllocatorError) -> IpamError {
    IpamError::Allocator { source }
}

impl<A: AddressAllocator> CalicoIpam<A> {
    async fn assign(&self, request: &IpamRequest<'_>) -> Result<Vec<IpNet>, IpamError> {
        if !request.requested.is_empty() {
            let mut assigned = Vec::new();
            for address in request.requested {
                let explicit = ExplicitAssign {
                    address: *address,
                    handle_id: request.handle_id.to_string(),
                    node: request.ids.node.clone(),
                    attributes: attributes(request),
                };
                self.allocator
                    .assign_ip(&explicit)
                    .await
                    .map_err(allocator_error)?;
                assigned.push(IpNet::from(*address));
            }
            return Ok(assigned);
        }

        let (v4, v6) = request.conf.assign_families();
        let auto = AutoAssign {
            handle_id: request.handle_id.to_string(),
            node: request.ids.node.clone(),
            num_v4: u32::from(v4),
            num_v6: u32::from(v6),
            ipv4_pools: request.conf.ipam.ipv4_pools.clone(),
            ipv6_pools: request.conf.ipam.ipv6_pools.clone(),
            attributes: attributes(request),
            namespace: (request.ids.orchestrator == Orchestrator::Kubernetes)
                .then(|| request.ids.namespace.clone()),
        };
        let assigned = self
            .allocator
            .auto_assign(&auto)
            .await
            .map_err(allocator_error)?;
        let missing = match (v4 && assigned.v4.is_empty(), v6 && assigned.v6.is_empty()) {
            (true, _) => Some("IPv4"),
            (_, true) => Some("IPv6"),
            _ => None,
        };
        if let Some(family) = missing {
            return Err(IpamError::Allocator {
                source: AllocatorError::Exhausted(format!("no {family} address could be assigned")),
            });
        }
        let mut addresses = assigned.v4;
        addresses.extend(assigned.v6);
        Ok(addresses)
    }
}

impl<A: AddressAllocator> Ipam for CalicoIpam<A> {
    fn add<'a>(
        &'a self,
        request: &'a IpamRequest<'a>,
    ) -> BoxFuture<'a, Result<CniResult, IpamError>> {
        Box::pin(async move {
            match self.assign(request).await {
                // Like Calico's IPAM: one route per address, to the address
                // with its block's prefix. Their absence tells the plugin
                // the node agent programs the host side itself.
                Ok(addresses) => Ok(CniResult {
                    routes: addresses.iter().map(|a| Route::to(*a)).collect(),
                    ips: addresses
                        .into_iter()
                        .map(|address| IpConfig {
                            interface: None,
                            address,
                            gateway: None,
                        })
                        .collect(),
                    ..Default::default()
                }),
                Err(error) => {
                    // A partial assignment (IPv4 but not IPv6, or the first
                    // of several requested addresses) is given back.
                    if let Err(release) = self.allocator.release_by_handle(request.handle_id).await
                    {
                        tracing::warn!(handle = request.handle_id, error = %release, "releasing a partial assignment failed");
                    }
                    Err(error)
                }
            }
        })
    }

    fn del<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            self.allocator
                .release_by_handle(request.handle_id)
                .await
                .map_err(allocator_error)
        })
    }

    fn check<'a>(&'a self, request: &'a IpamRequest<'a>) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            let held = self
                .allocator
                .addresses_by_handle(request.handle_id)
                .await
                .map_err(allocator_error)?;
            if held.is_empty() {
                return Err(IpamError::Invalid(format!(
                    "no addresses are recorded for IPAM handle {}",
                    request.handle_id
                )));
            }
            Ok(())
        })
    }

    fn status<'a>(
        &'a self,
        _env: &'a CniEnv,
        _conf: &'a NetConf,
        _stdin: &'a [u8],
    ) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move { self.allocator.ready().await.map_err(allocator_error) })
    }

    fn gc<'a>(
        &'a self,
        _env: &'a CniEnv,
        conf: &'a NetConf,
        _stdin: &'a [u8],
        node: &'a str,
        valid: &'a [Attachment],
    ) -> BoxFuture<'a, Result<(), IpamError>> {
        Box::pin(async move {
            let keep: BTreeSet<String> = valid
                .iter()
                .map(|a| handle_id(&conf.name, &a.container_id))
                .collect();
            let prefix = format!("{}.", conf.name);
            let released = self
                .allocator
                .release_handles_except(node, &prefix, &keep)
                .await
                .map_err(allocator_error)?;
            if !released.is_empty() {
                tracing::info!(
                    count = released.len(),
                    "released addresses of stale attachments"
                );
            }
            Ok(())
        })
    }
}
