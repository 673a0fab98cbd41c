//! Installs learned routes in a network namespace's main table over
//! rtnetlink, marked with a protocol number of ours so they can be told
//! apart from everyone else's (and flushed).
//!
//! Next hops are installed as the peer sent them. A next hop that is not on
//! a connected network (an iBGP peer several hops away) is resolved the way
//! BIRD's `gateway recursive` does it: through the kernel's own route to the
//! next hop. An IPv6 route can also go via the link-local next hop the peer
//! sent, out of the interface towards the peer.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv6Addr};
use std::path::{Path, PathBuf};

use calico_netlink::{NetNs, Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::RouteSink;
use super::pipeline::Pipeline;
use crate::speaker::RouteChange;

/// The route protocol number our routes carry (`ip route show proto 196`).
/// Unassigned in the kernel's and iproute2's lists, so it belongs to no
/// other daemon.
pub const ROUTE_PROTOCOL: u8 = 196;

/// Errors talking to the kernel about routes.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("opening an rtnetlink socket in network namespace {}", netns.display())]
    Open {
        netns: PathBuf,
        #[source]
        source: NetlinkError,
    },
    #[error("opening network namespace {}", netns.display())]
    Namespace {
        netns: PathBuf,
        #[source]
        source: calico_netlink::NetNsError,
    },
    #[error("installing the route to {prefix} via {next_hop}")]
    Install {
        prefix: IpNet,
        next_hop: IpAddr,
        #[source]
        source: NetlinkError,
    },
    #[error("removing the route to {prefix}")]
    Remove {
        prefix: IpNet,
        #[source]
        source: NetlinkError,
    },
    #[error("listing routes")]
    List {
        #[source]
        source: NetlinkError,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Want {
    next_hop: IpAddr,
    link_local: Option<Ipv6Addr>,
    peer: IpAddr,
}

/// A [`RouteSink`] writing the kernel's main table.
#[derive(Debug)]
pub struct NetlinkSink {
    netlink: Netlink,
    /// Bulk requests; `None` if it could not be opened (then every route
    /// goes the one-request-at-a-time way).
    pipeline: Option<Pipeline>,
    protocol: u8,
    /// What the speaker asked for.
    wanted: BTreeMap<IpNet, Want>,
    /// Routes that failed to install, retried with every batch.
    failed: BTreeSet<IpNet>,
}

impl NetlinkSink {
    /// A sink for the namespace at `netns` (`None`: the caller's own).
    pub fn open(netns: Option<&Path>) -> Result<Self, SinkError> {
        let ns = match netns {
            None => None,
            Some(path) => Some(NetNs::open(path).map_err(|source| SinkError::Namespace {
                netns: path.to_path_buf(),
                source,
            })?),
        };
        let netlink = match &ns {
            None => Netlink::open(),
            Some(ns) => Netlink::open_in(ns),
        }
        .map_err(|source| SinkError::Open {
            netns: netns
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from("(current)")),
            source,
        })?;
        let pipeline = Pipeline::open(ns.as_ref())
            .map_err(|e| tracing::warn!(error = %e, "no bulk netlink socket; routes go one by one"))
            .ok();
        Ok(NetlinkSink {
            netlink,
            pipeline,
            protocol: ROUTE_PROTOCOL,
            wanted: BTreeMap::new(),
            failed: BTreeSet::new(),
        })
    }

    /// Uses another protocol number.
    pub fn with_protocol(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }

    /// Routes that could not be installed (and will be retried).
    pub fn failed(&self) -> impl Iterator<Item = &IpNet> {
        self.failed.iter()
    }

    /// Our routes as the kernel has them: prefix → gateway.
    pub fn kernel_routes(&mut self) -> Result<BTreeMap<IpNet, Option<IpAddr>>, SinkError> {
        let mut out = BTreeMap::new();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut request = RouteMessage::default();
            request.header.address_family = family;
            request.header.table = RouteHeader::RT_TABLE_MAIN;
            let answers = self
                .netlink
                .dump(RouteNetlinkMessage::GetRoute(request))
                .map_err(|source| SinkError::List { source })?;
            for answer in answers {
                let RouteNetlinkMessage::NewRoute(route) = answer else {
                    continue;
                };
                if u8::from(route.header.protocol) != self.protocol {
                    continue;
                }
                if let Some((prefix, gateway)) = describe(&route) {
                    out.insert(prefix, gateway);
                }
            }
        }
        Ok(out)
    }

    /// Removes every route carrying our protocol number, ours from an
    /// earlier run included. Returns how many went.
    pub fn flush(&mut self) -> Result<usize, SinkError> {
        let routes = self.kernel_routes()?;
        for prefix in routes.keys() {
            self.delete(*prefix)?;
        }
        self.wanted.clear();
        self.failed.clear();
        Ok(routes.len())
    }

    fn base(&self, prefix: IpNet) -> RouteMessage {
        let mut m = RouteMessage::default();
        m.header.address_family = match prefix {
            IpNet::V4(_) => AddressFamily::Inet,
            IpNet::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = prefix.prefix_len();
        m.header.table = RouteHeader::RT_TABLE_MAIN;
        m.header.protocol = RouteProtocol::from(self.protocol);
        m.header.scope = RouteScope::Universe;
        m.header.kind = RouteType::Unicast;
        if prefix.prefix_len() > 0 {
            m.attributes
                .push(RouteAttribute::Destination(RouteAddress::from(
                    prefix.addr(),
                )));
        }
        m
    }

    fn replace(
        &mut self,
        prefix: IpNet,
        gateway: IpAddr,
        oif: Option<u32>,
    ) -> Result<(), NetlinkError> {
        let mut m = self.base(prefix);
        m.attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
        if let Some(oif) = oif {
            m.attributes.push(RouteAttribute::Oif(oif));
        }
        self.netlink.execute(
            RouteNetlinkMessage::NewRoute(m),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    fn delete(&mut self, prefix: IpNet) -> Result<(), SinkError> {
        let m = self.base(prefix);
        match self.netlink.execute(RouteNetlinkMessage::DelRoute(m), 0) {
            Err(e) if !e.is_not_found() => Err(SinkError::Remove { prefix, source: e }),
            _ => Ok(()),
        }
    }

    /// The kernel's route to `address`: its gateway and interface.
    fn lookup(&mut self, address: IpAddr) -> Option<(Option<IpAddr>, Option<u32>)> {
        let mut m = RouteMessage::default();
        m.header.address_family = match address {
            IpAddr::V4(_) => AddressFamily::Inet,
            IpAddr::V6(_) => AddressFamily::Inet6,
        };
        m.header.destination_prefix_length = if address.is_ipv4() { 32 } else { 128 };
        m.attributes
            .push(RouteAttribute::Destination(RouteAddress::from(address)));
        let answers = self.netlink.get(RouteNetlinkMessage::GetRoute(m)).ok()?;
        answers.into_iter().find_map(|a| match a {
            RouteNetlinkMessage::NewRoute(r) => {
                let mut gateway = None;
                let mut oif = None;
                for attribute in &r.attributes {
                    match attribute {
                        RouteAttribute::Gateway(g) => gateway = ip_of(g),
                        RouteAttribute::Oif(i) => oif = Some(*i),
                        _ => {}
                    }
                }
                Some((gateway, oif))
            }
            _ => None,
        })
    }

    fn install(&mut self, prefix: IpNet, want: Want) -> Result<(), SinkError> {
        let first = match self.replace(prefix, want.next_hop, None) {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        // An IPv6 peer's link-local next hop, out of the interface that
        // reaches the peer.
        if let Some(ll) = want.link_local
            && let Some((_, Some(oif))) = self.lookup(want.peer)
            && self.replace(prefix, IpAddr::V6(ll), Some(oif)).is_ok()
        {
            return Ok(());
        }
        // A next hop behind a gateway: use the gateway (recursive next hop).
        if let Some((Some(gateway), oif)) = self.lookup(want.next_hop)
            && self.replace(prefix, gateway, oif).is_ok()
        {
            return Ok(());
        }
        Err(SinkError::Install {
            prefix,
            next_hop: want.next_hop,
            source: first,
        })
    }
}

impl RouteSink for NetlinkSink {
    fn apply(&mut self, changes: Vec<RouteChange>) {
        let mut todo: BTreeSet<IpNet> = std::mem::take(&mut self.failed);
        for change in changes {
            match change {
                RouteChange::Replace {
                    prefix,
                    next_hop,
                    link_local,
                    peer,
                } => {
                    self.wanted.insert(
                        prefix,
                        Want {
                            next_hop,
                            link_local,
                            peer,
                        },
                    );
                    todo.insert(prefix);
                }
                RouteChange::Remove { prefix } => {
                    self.wanted.remove(&prefix);
                    todo.insert(prefix);
                }
            }
        }
        let todo: Vec<IpNet> = todo.into_iter().collect();
        // Everything in bulk first; what fails there is redone one by one,
        // with the next-hop fallbacks of `install`.
        let redo: Vec<(IpNet, Option<i32>)> = match self.pipeline.as_mut() {
            Some(_) => {
                let requests = todo
                    .iter()
                    .map(|prefix| match self.wanted.get(prefix) {
                        Some(want) => {
                            let mut m = self.base(*prefix);
                            m.attributes
                                .push(RouteAttribute::Gateway(RouteAddress::from(want.next_hop)));
                            (
                                RouteNetlinkMessage::NewRoute(m),
                                NLM_F_CREATE | NLM_F_REPLACE,
                            )
                        }
                        None => (RouteNetlinkMessage::DelRoute(self.base(*prefix)), 0),
                    })
                    .collect();
                let outcome = self
                    .pipeline
                    .as_mut()
                    .map(|p| p.run(requests))
                    .unwrap_or_default();
                outcome
                    .failed
                    .into_iter()
                    .map(|(i, errno)| (todo[i], errno))
                    .collect()
            }
            None => todo.iter().map(|p| (*p, None)).collect(),
        };
        for (prefix, errno) in redo {
            let want = self.wanted.get(&prefix).copied();
            // Deleting what is already gone (ESRCH, ENOENT) is done.
            if want.is_none() && matches!(errno, Some(2) | Some(3)) {
                continue;
            }
            let result = match want {
                Some(want) => self.install(prefix, want),
                None => self.delete(prefix),
            };
            if let Err(e) = result {
                tracing::warn!(error = %crate::error_chain(&e), "route not applied; will retry");
                self.failed.insert(prefix);
            }
        }
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}

fn describe(route: &RouteMessage) -> Option<(IpNet, Option<IpAddr>)> {
    let mut destination = None;
    let mut gateway = None;
    for attribute in &route.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = ip_of(a),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            _ => {}
        }
    }
    let length = route.header.destination_prefix_length;
    let destination = destination.unwrap_or(match route.header.address_family {
        AddressFamily::Inet6 => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        _ => IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
    });
    Some((IpNet::new(destination, length).ok()?, gateway))
}
