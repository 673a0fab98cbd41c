//! The resources a flow is judged against, and building flows from
//! endpoints or addresses.

use std::collections::BTreeMap;
use std::net::IpAddr;

use calico_model::k8s::NetworkPolicy as K8sNetworkPolicy;
use calico_model::{
    GlobalNetworkPolicy, GlobalNetworkSet, HostEndpoint, NetworkPolicy, NetworkSet, Profile, Tier,
    WorkloadEndpoint,
};
use ipnet::IpNet;

use super::Item;
use crate::engine::EngineError;
use crate::eval::{Flow, Packet};
use crate::ids::{EndpointKey, PolicyKind};
use crate::knp;
use crate::normalize;
use crate::update::Update;

/// The resources as written, validated on the way in (an invalid update is
/// refused and the previous version kept, as the engine does).
#[derive(Debug, Clone, Default)]
pub struct ResourceSet {
    pub(super) tiers: BTreeMap<String, Tier>,
    pub(super) network_policies: BTreeMap<(String, String), NetworkPolicy>,
    pub(super) global_network_policies: BTreeMap<String, GlobalNetworkPolicy>,
    pub(super) kubernetes_network_policies: BTreeMap<(String, String), K8sNetworkPolicy>,
    pub(super) profiles: BTreeMap<String, Profile>,
    pub(super) network_sets: BTreeMap<(String, String), NetworkSet>,
    pub(super) global_network_sets: BTreeMap<String, GlobalNetworkSet>,
    pub(super) host_endpoints: BTreeMap<String, HostEndpoint>,
    pub(super) workload_endpoints: BTreeMap<(String, String), WorkloadEndpoint>,
}

fn nsn(namespace: &str, name: &str) -> (String, String) {
    (namespace.to_string(), name.to_string())
}

impl ResourceSet {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records an update.
    pub fn apply(&mut self, update: Update) -> Result<(), EngineError> {
        let resource = update.describe();
        let invalid = |source| EngineError::Invalid {
            resource: resource.clone(),
            source,
        };
        match update {
            Update::Tier(t) => {
                normalize::tier(&t).map_err(invalid)?;
                self.tiers.insert(t.metadata.name.clone(), *t);
            }
            Update::DeleteTier { name } => {
                self.tiers.remove(&name);
            }
            Update::NetworkPolicy(p) => {
                normalize::network_policy(&p, PolicyKind::NetworkPolicy).map_err(invalid)?;
                self.network_policies
                    .insert(nsn(&p.metadata.namespace, &p.metadata.name), *p);
            }
            Update::DeleteNetworkPolicy { namespace, name } => {
                self.network_policies.remove(&(namespace, name));
            }
            Update::GlobalNetworkPolicy(p) => {
                normalize::global_network_policy(&p).map_err(invalid)?;
                self.global_network_policies
                    .insert(p.metadata.name.clone(), *p);
            }
            Update::DeleteGlobalNetworkPolicy { name } => {
                self.global_network_policies.remove(&name);
            }
            Update::KubernetesNetworkPolicy(p) => {
                let converted = knp::convert(&p).map_err(|source| EngineError::Conversion {
                    resource: resource.clone(),
                    source,
                })?;
                normalize::network_policy(&converted.policy, PolicyKind::KubernetesNetworkPolicy)
                    .map_err(invalid)?;
                self.kubernetes_network_policies
                    .insert(nsn(&p.metadata.namespace, &p.metadata.name), *p);
            }
            Update::DeleteKubernetesNetworkPolicy { namespace, name } => {
                self.kubernetes_network_policies.remove(&(namespace, name));
            }
            Update::Profile(p) => {
                normalize::profile(&p).map_err(invalid)?;
                self.profiles.insert(p.metadata.name.clone(), *p);
            }
            Update::DeleteProfile { name } => {
                self.profiles.remove(&name);
            }
            Update::NetworkSet(n) => {
                normalize::network_set(&n).map_err(invalid)?;
                self.network_sets
                    .insert(nsn(&n.metadata.namespace, &n.metadata.name), *n);
            }
            Update::DeleteNetworkSet { namespace, name } => {
                self.network_sets.remove(&(namespace, name));
            }
            Update::GlobalNetworkSet(n) => {
                normalize::global_network_set(&n).map_err(invalid)?;
                self.global_network_sets.insert(n.metadata.name.clone(), *n);
            }
            Update::DeleteGlobalNetworkSet { name } => {
                self.global_network_sets.remove(&name);
            }
            Update::HostEndpoint(h) => {
                normalize::host_endpoint(&h).map_err(invalid)?;
                self.host_endpoints.insert(h.metadata.name.clone(), *h);
            }
            Update::DeleteHostEndpoint { name } => {
                self.host_endpoints.remove(&name);
            }
            Update::WorkloadEndpoint(w) => {
                normalize::workload_endpoint(&w).map_err(invalid)?;
                self.workload_endpoints
                    .insert(nsn(&w.metadata.namespace, &w.metadata.name), *w);
            }
            Update::DeleteWorkloadEndpoint { namespace, name } => {
                self.workload_endpoints.remove(&(namespace, name));
            }
        }
        Ok(())
    }

    /// Every resource as an upsert, tiers and profiles first.
    pub fn updates(&self) -> Vec<Update> {
        let mut out: Vec<Update> = Vec::new();
        out.extend(self.tiers.values().cloned().map(Update::from));
        out.extend(self.profiles.values().cloned().map(Update::from));
        out.extend(self.network_policies.values().cloned().map(Update::from));
        out.extend(
            self.global_network_policies
                .values()
                .cloned()
                .map(Update::from),
        );
        out.extend(
            self.kubernetes_network_policies
                .values()
                .cloned()
                .map(Update::from),
        );
        out.extend(self.network_sets.values().cloned().map(Update::from));
        out.extend(self.global_network_sets.values().cloned().map(Update::from));
        out.extend(self.host_endpoints.values().cloned().map(Update::from));
        out.extend(self.workload_endpoints.values().cloned().map(Update::from));
        out
    }

    /// Every endpoint, workloads first.
    pub fn endpoint_keys(&self) -> Vec<EndpointKey> {
        let mut out: Vec<EndpointKey> = self
            .workload_endpoints
            .keys()
            .map(|(ns, n)| EndpointKey::workload(ns, n))
            .collect();
        out.extend(self.host_endpoints.keys().map(EndpointKey::host));
        out
    }

    /// An address of the endpoint in the given family.
    pub fn address_of(&self, key: &EndpointKey, ipv6: bool) -> Option<IpAddr> {
        let item = Item::endpoint(self, key)?;
        item.nets
            .iter()
            .map(IpNet::addr)
            .find(|a| a.is_ipv6() == ipv6)
    }

    /// The endpoint owning an address, if exactly one does.
    pub fn endpoint_at(&self, addr: IpAddr) -> Option<EndpointKey> {
        let mut owners = Item::all(self)
            .into_iter()
            .filter(|i| i.endpoint.is_some() && i.nets.iter().any(|n| n.contains(&addr)));
        let first = owners.next()?;
        owners
            .next()
            .is_none()
            .then(|| first.endpoint.expect("filtered"))
    }
}

/// One end of a flow to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Peer {
    Endpoint(EndpointKey),
    /// An address; if it belongs to exactly one endpoint, that endpoint's
    /// policy applies.
    Address(IpAddr),
}

/// Why a flow could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("{0} does not exist (or has no addresses yet)")]
    UnknownEndpoint(EndpointKey),
    #[error("{endpoint} has no {family} address")]
    NoAddress {
        endpoint: EndpointKey,
        family: &'static str,
    },
}

impl ResourceSet {
    /// The flow from `src` to `dst`, with `packet` building the packet from
    /// the two addresses. Endpoints use their address in the family of a
    /// bare address on the other side, else IPv4 when both have one.
    pub fn flow(
        &self,
        src: &Peer,
        dst: &Peer,
        packet: impl FnOnce(IpAddr, IpAddr) -> Packet,
    ) -> Result<Flow, FlowError> {
        let family = |p: &Peer| match p {
            Peer::Address(a) => Some(a.is_ipv6()),
            Peer::Endpoint(_) => None,
        };
        let has = |p: &Peer, v6: bool| match p {
            Peer::Address(a) => a.is_ipv6() == v6,
            Peer::Endpoint(k) => self.address_of(k, v6).is_some(),
        };
        let v6 = family(src).or(family(dst)).unwrap_or_else(|| {
            !(has(src, false) && has(dst, false)) && has(src, true) && has(dst, true)
        });
        let resolve = |p: &Peer| -> Result<(Option<EndpointKey>, IpAddr), FlowError> {
            match p {
                Peer::Address(a) => Ok((self.endpoint_at(*a), *a)),
                Peer::Endpoint(k) => {
                    if Item::endpoint(self, k).is_none() {
                        return Err(FlowError::UnknownEndpoint(k.clone()));
                    }
                    let a = self.address_of(k, v6).ok_or_else(|| FlowError::NoAddress {
                        endpoint: k.clone(),
                        family: if v6 { "IPv6" } else { "IPv4" },
                    })?;
                    Ok((Some(k.clone()), a))
                }
            }
        };
        let (src_endpoint, s) = resolve(src)?;
        let (dst_endpoint, d) = resolve(dst)?;
        Ok(Flow {
            src_endpoint,
            dst_endpoint,
            packet: packet(s, d),
        })
    }
}
