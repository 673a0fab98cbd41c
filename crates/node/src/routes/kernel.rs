//! The route driver: makes the main routing table hold the agent's
//! [`DesiredRoutes`], over an rtnetlink socket bound to the node's
//! namespace. Blocking; runs on the agent's dataplane thread.
//!
//! Like the nftables reconciler it remembers what it applied and sends
//! only the difference; it reads the kernel at the start, after a failure,
//! and on [`RouteDriver::repair`] (routes deleted or changed behind its
//! back come back). Only routes with the agent's protocol number are ever
//! deleted.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use calico_netlink::{Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use tracing::debug;

use super::{DesiredRoutes, Target};

/// A route as read from the main table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelRoute {
    pub destination: IpNet,
    pub kind: RouteType,
    pub interface: Option<u32>,
    pub protocol: u8,
    pub priority: Option<u32>,
}

/// Routing failures; the next reconciliation reads the kernel again.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("reading the main routing table")]
    List(#[source] NetlinkError),
    #[error("adding the route to {destination}")]
    Add {
        destination: IpNet,
        #[source]
        source: NetlinkError,
    },
    #[error("deleting the route to {destination}")]
    Delete {
        destination: IpNet,
        #[source]
        source: NetlinkError,
    },
}

/// What one reconciliation did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteReport {
    pub added: usize,
    pub deleted: usize,
    /// Workload routes waiting for their interface to appear.
    pub waiting: usize,
    pub read_kernel: bool,
    /// Routes of the agent's in the table afterwards.
    pub programmed: usize,
}

/// Owns the agent's routes in one namespace's main table.
#[derive(Debug)]
pub struct RouteDriver {
    netlink: Netlink,
    protocol: u8,
    /// What the table is known to hold of ours (only routes actually
    /// programmed: one waiting for its interface is absent).
    applied: Option<BTreeMap<IpNet, Target>>,
}

impl RouteDriver {
    pub fn new(netlink: Netlink, protocol: u8) -> RouteDriver {
        RouteDriver {
            netlink,
            protocol,
            applied: None,
        }
    }

    /// Changes the protocol the agent's routes carry; the next
    /// reconciliation re-reads the table.
    pub fn set_protocol(&mut self, protocol: u8) {
        if protocol != self.protocol {
            self.protocol = protocol;
            self.applied = None;
        }
    }

    /// Makes the table hold `desired`, diffing against what was applied.
    pub fn apply(&mut self, desired: &DesiredRoutes) -> Result<RouteReport, RouteError> {
        let result = self.reconcile(desired);
        if result.is_err() {
            self.applied = None;
        }
        result
    }

    /// Reads the table and puts back whatever differs from `desired`.
    pub fn repair(&mut self, desired: &DesiredRoutes) -> Result<RouteReport, RouteError> {
        self.applied = None;
        self.apply(desired)
    }

    fn reconcile(&mut self, desired: &DesiredRoutes) -> Result<RouteReport, RouteError> {
        let mut report = RouteReport::default();
        let current = match self.applied.take() {
            Some(applied) => applied,
            None => {
                report.read_kernel = true;
                self.read_ours()?
            }
        };
        let mut applied = BTreeMap::new();
        // Deletions first: an address may move between interfaces.
        for (destination, target) in &current {
            match desired.get(destination) {
                Some(wanted) if wanted == target => {
                    applied.insert(*destination, target.clone());
                }
                Some(_) => {} // replaced below
                None => {
                    self.delete(*destination, target)?;
                    report.deleted += 1;
                }
            }
        }
        // Interface indexes come from one dump, taken only when needed.
        let mut indexes: Option<BTreeMap<String, u32>> = None;
        for (destination, target) in desired {
            if applied.contains_key(destination) {
                continue;
            }
            let interface = match target {
                Target::Blackhole => None,
                Target::Interface(name) => {
                    if indexes.is_none() {
                        indexes = Some(self.link_indexes()?);
                    }
                    match indexes.as_ref().and_then(|i| i.get(name)) {
                        Some(index) => Some(*index),
                        None => {
                            // The CNI plugin has not created it yet, or it
                            // is gone; a later pass retries.
                            report.waiting += 1;
                            continue;
                        }
                    }
                }
            };
            self.replace(*destination, interface)?;
            applied.insert(*destination, target.clone());
            report.added += 1;
        }
        report.programmed = applied.len();
        debug!(?report, "routes reconciled");
        self.applied = Some(applied);
        Ok(report)
    }

    /// The agent's routes in the main table.
    fn read_ours(&mut self) -> Result<BTreeMap<IpNet, Target>, RouteError> {
        let routes = self.list()?;
        let names: BTreeMap<u32, String> = self
            .link_indexes()?
            .into_iter()
            .map(|(name, index)| (index, name))
            .collect();
        let mut ours = BTreeMap::new();
        for route in routes {
            if route.protocol != self.protocol {
                continue;
            }
            let target = match (route.kind, route.interface) {
                (RouteType::BlackHole, _) => Target::Blackhole,
                (RouteType::Unicast, Some(index)) => {
                    Target::Interface(names.get(&index).cloned().unwrap_or_default())
                }
                // Something of ours we would never program: remove it.
                _ => Target::Interface(String::new()),
            };
            ours.insert(route.destination, target);
        }
        Ok(ours)
    }

    /// Every interface's index, by name.
    fn link_indexes(&mut self) -> Result<BTreeMap<String, u32>, RouteError> {
        let answers = self
            .netlink
            .dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))
            .map_err(RouteError::List)?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => {
                    link.attributes.iter().find_map(|a| match a {
                        LinkAttribute::IfName(name) => Some((name.clone(), link.header.index)),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect())
    }

    /// Every route of both families in the main table.
    pub fn list(&mut self) -> Result<Vec<KernelRoute>, RouteError> {
        let mut out = Vec::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            request.header.table = RouteHeader::RT_TABLE_MAIN;
            let answers = self
                .netlink
                .dump(RouteNetlinkMessage::GetRoute(request))
                .map_err(RouteError::List)?;
            out.extend(answers.into_iter().filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => parse(&r),
                _ => None,
            }));
        }
        Ok(out)
    }

    fn replace(&mut self, destination: IpNet, interface: Option<u32>) -> Result<(), RouteError> {
        let message = self.message(destination, interface);
        self.netlink
            .execute(
                RouteNetlinkMessage::NewRoute(message),
                NLM_F_CREATE | NLM_F_REPLACE,
            )
            .map_err(|source| RouteError::Add {
                destination,
                source,
            })
    }

    fn delete(&mut self, destination: IpNet, target: &Target) -> Result<(), RouteError> {
        let mut message = self.message(destination, None);
        if matches!(target, Target::Interface(_)) {
            // Match any unicast route of ours to the destination.
            message.header.kind = RouteType::Unicast;
            message.header.scope = RouteScope::NoWhere;
        }
        match self
            .netlink
            .execute(RouteNetlinkMessage::DelRoute(message), 0)
        {
            Err(e) if e.is_not_found() => Ok(()),
            other => other.map_err(|source| RouteError::Delete {
                destination,
                source,
            }),
        }
    }

    fn message(&self, destination: IpNet, interface: Option<u32>) -> RouteMessage {
        let destination = destination.trunc();
        let mut message = RouteMessage::default();
        message.header.address_family = if destination.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        message.header.destination_prefix_length = destination.prefix_len();
        message.header.table = RouteHeader::RT_TABLE_MAIN;
        message.header.protocol = RouteProtocol::from(self.protocol);
        match interface {
            Some(index) => {
                message.header.kind = RouteType::Unicast;
                message.header.scope = if destination.addr().is_ipv4() {
                    RouteScope::Link
                } else {
                    RouteScope::Universe
                };
                message.attributes.push(RouteAttribute::Oif(index));
            }
            None => {
                message.header.kind = RouteType::BlackHole;
                message.header.scope = RouteScope::Universe;
            }
        }
        message
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                destination.addr(),
            )));
        message
    }
}

fn parse(message: &RouteMessage) -> Option<KernelRoute> {
    if message.header.table != RouteHeader::RT_TABLE_MAIN {
        return None;
    }
    let mut destination = None;
    let mut interface = None;
    let mut priority = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => {
                destination = Some(IpAddr::V4(*ip))
            }
            RouteAttribute::Destination(RouteAddress::Inet6(ip)) => {
                destination = Some(IpAddr::V6(*ip))
            }
            RouteAttribute::Oif(index) => interface = Some(*index),
            RouteAttribute::Priority(p) => priority = Some(*p),
            RouteAttribute::Table(t) if *t != u32::from(RouteHeader::RT_TABLE_MAIN) => {
                return None;
            }
            _ => {}
        }
    }
    let destination = destination.unwrap_or(match message.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    });
    Some(KernelRoute {
        destination: IpNet::new(destination, message.header.destination_prefix_length).ok()?,
        kind: message.header.kind,
        interface,
        protocol: u8::from(message.header.protocol),
        priority,
    })
}
