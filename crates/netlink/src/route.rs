//! Routes in the main table.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope, RouteType,
};

use crate::address::family_of;
use crate::socket::{Netlink, NetlinkError};

/// A unicast route through one interface, optionally via a gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub destination: IpNet,
    pub gateway: Option<IpAddr>,
    /// Output interface index.
    pub interface: u32,
    /// Link scope: the destination is directly on the link (no gateway).
    pub link_scope: bool,
}

impl Route {
    /// A route to `destination` straight out of `interface`.
    pub fn direct(destination: IpNet, interface: u32) -> Self {
        Route {
            destination,
            gateway: None,
            interface,
            // IPv6 has no route scopes beyond "universe" in the FIB.
            link_scope: destination.addr().is_ipv4(),
        }
    }

    /// A route to `destination` via `gateway` out of `interface`.
    pub fn via(destination: IpNet, gateway: IpAddr, interface: u32) -> Self {
        Route {
            destination,
            gateway: Some(gateway),
            interface,
            link_scope: false,
        }
    }
}

impl Netlink {
    /// Adds `route` to the main table; `EEXIST` if a route to the same
    /// destination is already there.
    pub fn add_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        self.execute(
            RouteNetlinkMessage::NewRoute(message_for(route)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Deletes `route`; a route that is already gone is not an error.
    pub fn delete_route(&mut self, route: &Route) -> Result<(), NetlinkError> {
        match self.execute(RouteNetlinkMessage::DelRoute(message_for(route)), 0) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    /// Unicast routes of one family in the main table, optionally only those
    /// out of `interface`.
    pub fn routes(
        &mut self,
        ipv6: bool,
        interface: Option<u32>,
    ) -> Result<Vec<Route>, NetlinkError> {
        let mut request = RouteMessage::default();
        request.header.address_family = family_of(if ipv6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        });
        request.header.table = RouteHeader::RT_TABLE_MAIN;
        if let Some(index) = interface {
            request.attributes.push(RouteAttribute::Oif(index));
        }
        let answers = self.dump(RouteNetlinkMessage::GetRoute(request))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) => route_from_message(&r),
                _ => None,
            })
            .filter(|r| interface.is_none_or(|i| r.interface == i))
            .collect())
    }
}

fn message_for(route: &Route) -> RouteMessage {
    let mut message = RouteMessage::default();
    let destination = route.destination.trunc();
    message.header.address_family = family_of(destination.addr());
    message.header.destination_prefix_length = destination.prefix_len();
    message.header.table = RouteHeader::RT_TABLE_MAIN;
    message.header.protocol = RouteProtocol::Boot;
    message.header.kind = RouteType::Unicast;
    message.header.scope = if route.link_scope {
        RouteScope::Link
    } else {
        RouteScope::Universe
    };
    if destination.prefix_len() > 0 {
        message
            .attributes
            .push(RouteAttribute::Destination(RouteAddress::from(
                destination.addr(),
            )));
    }
    if let Some(gateway) = route.gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(gateway)));
    }
    message
        .attributes
        .push(RouteAttribute::Oif(route.interface));
    message
}

fn route_from_message(message: &RouteMessage) -> Option<Route> {
    if message.header.kind != RouteType::Unicast
        || message.header.table != RouteHeader::RT_TABLE_MAIN
    {
        return None;
    }
    let mut destination = None;
    let mut gateway = None;
    let mut interface = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(a) => destination = ip_of(a),
            RouteAttribute::Gateway(a) => gateway = ip_of(a),
            RouteAttribute::Oif(i) => interface = Some(*i),
            RouteAttribute::Table(t) if *t != u32::from(RouteHeader::RT_TABLE_MAIN) => return None,
            _ => {}
        }
    }
    let prefix = message.header.destination_prefix_length;
    let destination = match destination {
        Some(ip) => IpNet::new(ip, prefix).ok()?,
        None if message.header.address_family
            == family_of(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)) =>
        {
            IpNet::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0).ok()?
        }
        None => IpNet::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0).ok()?,
    };
    Some(Route {
        destination,
        gateway,
        interface: interface?,
        link_scope: message.header.scope == RouteScope::Link,
    })
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(ip) => Some(IpAddr::V4(*ip)),
        RouteAddress::Inet6(ip) => Some(IpAddr::V6(*ip)),
        _ => None,
    }
}
