//! The VXLAN device's permanent neighbour (ARP) entries, remote tunnel
//! address to VTEP MAC, and its forwarding database (FDB) entries, VTEP
//! MAC to the remote node's underlay address.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use calico_netlink::{Mac, Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_REPLACE};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

/// Which table: ARP (`AF_INET`) or the device's FDB (`AF_BRIDGE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Arp,
    Fdb,
}

impl Table {
    fn family(self) -> AddressFamily {
        match self {
            Table::Arp => AddressFamily::Inet,
            Table::Fdb => AddressFamily::Bridge,
        }
    }
}

/// One entry: for ARP, the IP and its MAC; for the FDB, the MAC and the
/// remote IP it is reached at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Entry {
    pub ip: Ipv4Addr,
    pub mac: Mac,
}

/// Permanent entries of `table` on interface `index`.
pub(crate) fn list(
    netlink: &mut Netlink,
    table: Table,
    index: u32,
) -> Result<Vec<Entry>, NetlinkError> {
    let mut request = NeighbourMessage::default();
    request.header.family = table.family();
    // With strict checking the kernel filters ARP dumps by an attribute
    // (a non-zero index in the header is refused) and FDB dumps by the
    // header's index.
    match table {
        Table::Arp => request.attributes.push(NeighbourAttribute::IfIndex(index)),
        Table::Fdb => request.header.ifindex = index,
    }
    let answers = netlink.dump(RouteNetlinkMessage::GetNeighbour(request))?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewNeighbour(n)
                if n.header.ifindex == index && n.header.state == NeighbourState::Permanent =>
            {
                entry_of(&n)
            }
            _ => None,
        })
        .collect())
}

fn entry_of(message: &NeighbourMessage) -> Option<Entry> {
    let mut ip = None;
    let mut mac = None;
    for attribute in &message.attributes {
        match attribute {
            NeighbourAttribute::Destination(NeighbourAddress::Inet(a)) => ip = Some(*a),
            // In an FDB dump the family is AF_BRIDGE, so the remote
            // address comes back undecoded.
            NeighbourAttribute::Destination(NeighbourAddress::Other(bytes)) => {
                ip = <[u8; 4]>::try_from(bytes.as_slice())
                    .ok()
                    .map(Ipv4Addr::from);
            }
            NeighbourAttribute::LinkLayerAddress(bytes) => mac = bytes.as_slice().try_into().ok(),
            _ => {}
        }
    }
    Some(Entry { ip: ip?, mac: mac? })
}

fn message(table: Table, index: u32, entry: &Entry) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = table.family();
    message.header.ifindex = index;
    message.header.state = NeighbourState::Permanent;
    if table == Table::Fdb {
        // The entry belongs to the VXLAN device itself, not to a bridge
        // it might be enslaved to.
        message.header.flags = NeighbourFlags::Own;
    }
    message
        .attributes
        .push(NeighbourAttribute::Destination(NeighbourAddress::Inet(
            entry.ip,
        )));
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(entry.mac.to_vec()));
    message
}

/// Adds or replaces one entry.
pub(crate) fn set(
    netlink: &mut Netlink,
    table: Table,
    index: u32,
    entry: &Entry,
) -> Result<(), NetlinkError> {
    netlink.execute(
        RouteNetlinkMessage::NewNeighbour(message(table, index, entry)),
        NLM_F_CREATE | NLM_F_REPLACE,
    )
}

/// Deletes one entry; one already gone is not an error.
pub(crate) fn delete(
    netlink: &mut Netlink,
    table: Table,
    index: u32,
    entry: &Entry,
) -> Result<(), NetlinkError> {
    match netlink.execute(
        RouteNetlinkMessage::DelNeighbour(message(table, index, entry)),
        0,
    ) {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// What to delete and what to set so that `current` becomes `desired`:
/// plain set differences, so an FDB MAC with a second remote address, or
/// an ARP entry with another MAC, is removed and the right one added.
pub(crate) fn diff(current: &[Entry], desired: &[Entry]) -> (Vec<Entry>, Vec<Entry>) {
    let current: BTreeSet<Entry> = current.iter().copied().collect();
    let desired: BTreeSet<Entry> = desired.iter().copied().collect();
    (
        current.difference(&desired).copied().collect(),
        desired.difference(&current).copied().collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ip: &str, last: u8) -> Entry {
        Entry {
            ip: ip.parse().unwrap(),
            mac: [0x66, 0, 0, 0, 0, last],
        }
    }

    #[test]
    fn diff_replaces_changed_and_removes_extra() {
        let current = [
            entry("10.0.0.1", 1),
            entry("10.0.0.2", 2),
            entry("10.0.0.3", 3),
        ];
        let desired = [
            entry("10.0.0.1", 1),
            entry("10.0.0.2", 9),
            entry("10.0.0.4", 4),
        ];
        let (stale, missing) = diff(&current, &desired);
        assert_eq!(stale, vec![entry("10.0.0.2", 2), entry("10.0.0.3", 3)]);
        assert_eq!(missing, vec![entry("10.0.0.2", 9), entry("10.0.0.4", 4)]);
        let (stale, missing) = diff(&desired, &desired);
        assert!(stale.is_empty() && missing.is_empty());
    }
}
