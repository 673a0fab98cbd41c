//! The routes this crate owns: IPv4 routes in the main table carrying its
//! protocol number. Routes with any other protocol (the CNI plugin's
//! workload routes, the kernel's connected routes, anyone else's) are
//! never read as ours, changed or deleted.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use calico_netlink::{Netlink, NetlinkError};
use ipnet::Ipv4Net;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
    RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// A route as the kernel holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KernelRoute {
    pub destination: Ipv4Net,
    pub blackhole: bool,
    pub gateway: Option<Ipv4Addr>,
    pub interface: Option<u32>,
    pub onlink: bool,
}

/// Our routes in the main table.
pub(crate) fn list(netlink: &mut Netlink, protocol: u8) -> Result<Vec<KernelRoute>, NetlinkError> {
    let mut request = RouteMessage::default();
    request.header.address_family = AddressFamily::Inet;
    request.header.table = RouteHeader::RT_TABLE_MAIN;
    request.header.protocol = RouteProtocol::from(protocol);
    let answers = netlink.dump(RouteNetlinkMessage::GetRoute(request))?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewRoute(r) if u8::from(r.header.protocol) == protocol => {
                route_of(&r)
            }
            _ => None,
        })
        .collect())
}

fn route_of(message: &RouteMessage) -> Option<KernelRoute> {
    let header = &message.header;
    if header.address_family != AddressFamily::Inet {
        return None;
    }
    let blackhole = match header.kind {
        RouteType::Unicast => false,
        RouteType::BlackHole => true,
        _ => return None,
    };
    let mut table = u32::from(header.table);
    let mut destination = Ipv4Addr::UNSPECIFIED;
    let mut gateway = None;
    let mut interface = None;
    for attribute in &message.attributes {
        match attribute {
            RouteAttribute::Destination(RouteAddress::Inet(ip)) => destination = *ip,
            RouteAttribute::Gateway(RouteAddress::Inet(ip)) => gateway = Some(*ip),
            RouteAttribute::Oif(index) => interface = Some(*index),
            RouteAttribute::Table(t) => table = *t,
            _ => {}
        }
    }
    if table != u32::from(RouteHeader::RT_TABLE_MAIN) {
        return None;
    }
    Some(KernelRoute {
        destination: Ipv4Net::new(destination, header.destination_prefix_length).ok()?,
        blackhole,
        gateway,
        interface,
        onlink: header.flags.contains(RouteFlags::Onlink),
    })
}

fn message(route: &KernelRoute, protocol: u8) -> RouteMessage {
    let mut message = RouteMessage::default();
    let header = &mut message.header;
    header.address_family = AddressFamily::Inet;
    header.destination_prefix_length = route.destination.prefix_len();
    header.table = RouteHeader::RT_TABLE_MAIN;
    header.protocol = RouteProtocol::from(protocol);
    header.scope = RouteScope::Universe;
    header.kind = if route.blackhole {
        RouteType::BlackHole
    } else {
        RouteType::Unicast
    };
    if route.onlink {
        header.flags = RouteFlags::Onlink;
    }
    message
        .attributes
        .push(RouteAttribute::Destination(RouteAddress::from(IpAddr::V4(
            route.destination.network(),
        ))));
    if let Some(gateway) = route.gateway {
        message
            .attributes
            .push(RouteAttribute::Gateway(RouteAddress::from(IpAddr::V4(
                gateway,
            ))));
    }
    if let Some(index) = route.interface {
        message.attributes.push(RouteAttribute::Oif(index));
    }
    message
}

/// Adds the route, replacing whatever route the main table has for the
/// same destination and metric.
pub(crate) fn replace(
    netlink: &mut Netlink,
    route: &KernelRoute,
    protocol: u8,
) -> Result<(), NetlinkError> {
    netlink.execute(
        RouteNetlinkMessage::NewRoute(message(route, protocol)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Deletes the route; one already gone is not an error.
pub(crate) fn delete(
    netlink: &mut Netlink,
    route: &KernelRoute,
    protocol: u8,
) -> Result<(), NetlinkError> {
    match netlink.execute(RouteNetlinkMessage::DelRoute(message(route, protocol)), 0) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// Routes to delete (ours, and no longer wanted in that form) and routes
/// to write.
pub(crate) fn diff(
    current: &[KernelRoute],
    desired: &[KernelRoute],
) -> (Vec<KernelRoute>, Vec<KernelRoute>) {
    let current: BTreeSet<KernelRoute> = current.iter().copied().collect();
    let desired: BTreeSet<KernelRoute> = desired.iter().copied().collect();
    let wanted_destinations: BTreeSet<Ipv4Net> = desired.iter().map(|r| r.destination).collect();
    // A route whose destination is still wanted is overwritten in place by
    // the replace; deleting it first would open a gap.
    let stale = current
        .iter()
        .filter(|r| !wanted_destinations.contains(&r.destination))
        .copied()
        .collect();
    let missing = desired.difference(&current).copied().collect();
    (stale, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn via(destination: &str, gateway: &str, interface: u32, onlink: bool) -> KernelRoute {
        KernelRoute {
            destination: destination.parse().unwrap(),
            blackhole: false,
            gateway: Some(gateway.parse().unwrap()),
            interface: Some(interface),
            onlink,
        }
    }

    #[test]
    fn diff_rewrites_changed_routes_in_place() {
        let current = [
            via("192.168.1.0/26", "10.0.1.12", 2, false),
            via("192.168.2.0/26", "192.168.2.1", 5, true),
            via("192.168.3.0/26", "192.168.3.1", 5, true),
        ];
        let desired = [
            via("192.168.1.0/26", "192.168.1.1", 5, true),
            via("192.168.2.0/26", "192.168.2.1", 5, true),
        ];
        let (stale, missing) = diff(&current, &desired);
        assert_eq!(stale, vec![current[2]]);
        assert_eq!(missing, vec![desired[0]]);
    }

    #[test]
    fn messages_carry_our_protocol_and_onlink() {
        let route = via("192.168.1.0/26", "192.168.1.1", 5, true);
        let m = message(&route, 80);
        assert_eq!(u8::from(m.header.protocol), 80);
        assert!(m.header.flags.contains(RouteFlags::Onlink));
        assert_eq!(route_of(&m), Some(route));
        let blackhole = KernelRoute {
            destination: "192.168.0.0/26".parse().unwrap(),
            blackhole: true,
            gateway: None,
            interface: None,
            onlink: false,
        };
        let m = message(&blackhole, 80);
        assert_eq!(m.header.kind, RouteType::BlackHole);
        assert_eq!(route_of(&m), Some(blackhole));
    }
}
