//! Interface addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{
    AddressAttribute, AddressFlags, AddressHeaderFlags, AddressMessage, AddressScope,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use crate::socket::{Netlink, NetlinkError};

/// One address on an interface, as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: IpNet,
    /// Link-scope (for IPv6, the `fe80::/10` address every interface gets).
    pub link_scope: bool,
    /// Still doing duplicate address detection; not usable yet.
    pub tentative: bool,
}

impl Netlink {
    /// Adds `address` to the interface. IPv6 addresses skip duplicate
    /// address detection: the link is point-to-point and the address is
    /// ours by allocation.
    pub fn add_address(&mut self, index: u32, address: IpNet) -> Result<(), NetlinkError> {
        let mut message = AddressMessage::default();
        message.header.index = index;
        message.header.prefix_len = address.prefix_len();
        message.header.family = family_of(address.addr());
        let ip = address.addr();
        message.attributes.push(AddressAttribute::Local(ip));
        match ip {
            IpAddr::V4(_) => message.attributes.push(AddressAttribute::Address(ip)),
            IpAddr::V6(_) => {
                message.header.flags = AddressHeaderFlags::Nodad;
                message.attributes.push(AddressAttribute::Address(ip));
                message
                    .attributes
                    .push(AddressAttribute::Flags(AddressFlags::Nodad));
            }
        }
        self.execute(
            RouteNetlinkMessage::NewAddress(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Every address on interface `index` (both families).
    pub fn addresses(&mut self, index: u32) -> Result<Vec<Address>, NetlinkError> {
        let mut request = AddressMessage::default();
        request.header.index = index;
        let answers = self.dump(RouteNetlinkMessage::GetAddress(request))?;
        Ok(answers
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => address_from_message(&a),
                _ => None,
            })
            .filter(|a| a.index == index)
            .collect())
    }
}

pub(crate) fn family_of(ip: IpAddr) -> AddressFamily {
    match ip {
        IpAddr::V4(_) => AddressFamily::Inet,
        IpAddr::V6(_) => AddressFamily::Inet6,
    }
}

fn address_from_message(message: &AddressMessage) -> Option<Address> {
    let mut local = None;
    let mut address = None;
    let mut flags = AddressFlags::from_bits_truncate(message.header.flags.bits().into());
    for attribute in &message.attributes {
        match attribute {
            AddressAttribute::Local(ip) => local = Some(*ip),
            AddressAttribute::Address(ip) => address = Some(*ip),
            AddressAttribute::Flags(f) => flags = *f,
            _ => {}
        }
    }
    // For point-to-point links IFA_ADDRESS is the peer and IFA_LOCAL ours;
    // otherwise they are the same.
    let ip = local.or(address)?;
    Some(Address {
        index: message.header.index,
        address: IpNet::new(ip, message.header.prefix_len).ok()?,
        link_scope: message.header.scope == AddressScope::Link,
        tentative: flags.contains(AddressFlags::Tentative),
    })
}
