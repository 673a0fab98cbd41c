//! Tunnel devices and their addresses: read what is there, create the
//! VXLAN and IPIP devices, compare a VXLAN device with the desired one.
//!
//! The requests are built here from `netlink-packet-route` messages and
//! sent over `calico-netlink`'s socket, which is the one bound to the
//! node's namespace; `calico-netlink` itself only knows the veth and route
//! shapes the CNI plugin needs.

use std::net::{IpAddr, Ipv4Addr};

use calico_netlink::{Mac, Netlink, NetlinkError};
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::AddressFamily;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVxlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

use crate::desired::VxlanDevice;

/// A link as the driver needs to see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkState {
    pub index: u32,
    pub kind: Option<InfoKind>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    pub up: bool,
    pub vxlan: Option<VxlanAttributes>,
}

/// The VXLAN attributes that must match for a device to be reused.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VxlanAttributes {
    pub vni: Option<u32>,
    pub port: Option<u16>,
    pub local: Option<Ipv4Addr>,
    pub parent: Option<u32>,
}

/// The link called `name`, or `None`.
pub(crate) fn link(netlink: &mut Netlink, name: &str) -> Result<Option<LinkState>, NetlinkError> {
    let mut request = LinkMessage::default();
    request
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    let answers = match netlink.get(RouteNetlinkMessage::GetLink(request)) {
        Ok(answers) => answers,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    Ok(answers.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewLink(link) => Some(state_of(&link)),
        _ => None,
    }))
}

/// Every link: (name, MTU, up) for MTU detection.
pub(crate) fn all_links(netlink: &mut Netlink) -> Result<Vec<(String, u32, bool)>, NetlinkError> {
    let answers = netlink.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))?;
    Ok(answers
        .into_iter()
        .filter_map(|m| match m {
            RouteNetlinkMessage::NewLink(link) => {
                let name = link.attributes.iter().find_map(|a| match a {
                    LinkAttribute::IfName(n) => Some(n.clone()),
                    _ => None,
                })?;
                let mtu = link
                    .attributes
                    .iter()
                    .find_map(|a| match a {
                        LinkAttribute::Mtu(m) => Some(*m),
                        _ => None,
                    })
                    .unwrap_or(0);
                Some((name, mtu, link.header.flags.contains(LinkFlags::Up)))
            }
            _ => None,
        })
        .collect())
}

fn state_of(message: &LinkMessage) -> LinkState {
    let mut state = LinkState {
        index: message.header.index,
        kind: None,
        mac: None,
        mtu: None,
        up: message.header.flags.contains(LinkFlags::Up),
        vxlan: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::Address(bytes) => state.mac = bytes.as_slice().try_into().ok(),
            LinkAttribute::Mtu(mtu) => state.mtu = Some(*mtu),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    match info {
                        LinkInfo::Kind(kind) => state.kind = Some(kind.clone()),
                        LinkInfo::Data(InfoData::Vxlan(attributes)) => {
                            let mut vxlan = VxlanAttributes::default();
                            for a in attributes {
                                match a {
                                    InfoVxlan::Id(id) => vxlan.vni = Some(*id),
                                    InfoVxlan::Port(port) => vxlan.port = Some(*port),
                                    InfoVxlan::Local(ip) => vxlan.local = Some(*ip),
                                    InfoVxlan::Link(index) => vxlan.parent = Some(*index),
                                    _ => {}
                                }
                            }
                            state.vxlan = Some(vxlan);
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    state
}

/// What differs between an existing VXLAN device and the desired one in a
/// way only re-creating it can fix; `None` if it can be kept.
pub(crate) fn vxlan_mismatch(
    existing: &LinkState,
    desired: &VxlanDevice,
    parent: u32,
) -> Option<String> {
    if existing.kind != Some(InfoKind::Vxlan) {
        return Some(format!("it is a {:?} device, not vxlan", existing.kind));
    }
    let attributes = existing.vxlan.clone().unwrap_or_default();
    if attributes.vni != Some(desired.vni) {
        return Some(format!("VNI {:?}, not {}", attributes.vni, desired.vni));
    }
    if attributes.port != Some(desired.port) {
        return Some(format!("port {:?}, not {}", attributes.port, desired.port));
    }
    if attributes.local != Some(desired.local) {
        return Some(format!(
            "local address {:?}, not {}",
            attributes.local, desired.local
        ));
    }
    if attributes.parent != Some(parent) {
        return Some(format!(
            "parent interface {:?}, not {parent}",
            attributes.parent
        ));
    }
    None
}

/// Creates the VXLAN device (down; the caller brings it up once its
/// address is set). Learning is off: every remote VTEP is programmed.
pub(crate) fn create_vxlan(
    netlink: &mut Netlink,
    device: &VxlanDevice,
    parent: u32,
) -> Result<(), NetlinkError> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(device.name.clone()));
    message
        .attributes
        .push(LinkAttribute::Address(device.mac.to_vec()));
    message.attributes.push(LinkAttribute::Mtu(device.mtu));
    message.attributes.push(LinkAttribute::LinkInfo(vec![
        LinkInfo::Kind(InfoKind::Vxlan),
        LinkInfo::Data(InfoData::Vxlan(vec![
            InfoVxlan::Id(device.vni),
            InfoVxlan::Link(parent),
            InfoVxlan::Local(device.local),
            InfoVxlan::Port(device.port),
            InfoVxlan::Learning(false),
        ])),
    ]));
    netlink.execute(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Creates an IPIP device called `name`. On a kernel without IPIP this
/// fails with `EOPNOTSUPP` ("unknown device type").
pub(crate) fn create_ipip(netlink: &mut Netlink, name: &str) -> Result<(), NetlinkError> {
    let mut message = LinkMessage::default();
    message
        .attributes
        .push(LinkAttribute::IfName(name.to_string()));
    message
        .attributes
        .push(LinkAttribute::LinkInfo(vec![LinkInfo::Kind(
            InfoKind::IpIp,
        )]));
    netlink.execute(
        RouteNetlinkMessage::NewLink(message),
        NLM_F_CREATE | NLM_F_EXCL,
    )
}

/// Sets a link's MTU.
pub(crate) fn set_mtu(netlink: &mut Netlink, index: u32, mtu: u32) -> Result<(), NetlinkError> {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message.attributes.push(LinkAttribute::Mtu(mtu));
    netlink.execute(RouteNetlinkMessage::SetLink(message), 0)
}

/// The index of the interface holding `address`, if any.
pub(crate) fn interface_with(
    netlink: &mut Netlink,
    address: Ipv4Addr,
) -> Result<Option<u32>, NetlinkError> {
    let mut request = AddressMessage::default();
    request.header.family = AddressFamily::Inet;
    let answers = netlink.dump(RouteNetlinkMessage::GetAddress(request))?;
    Ok(answers.into_iter().find_map(|m| match m {
        RouteNetlinkMessage::NewAddress(a)
            if a.attributes.iter().any(
                |attr| matches!(attr, AddressAttribute::Local(IpAddr::V4(ip)) if *ip == address),
            ) =>
        {
            Some(a.header.index)
        }
        _ => None,
    }))
}

/// Makes `address`/32 the only IPv4 address on the link.
pub(crate) fn ensure_only_address(
    netlink: &mut Netlink,
    index: u32,
    address: Ipv4Addr,
) -> Result<bool, NetlinkError> {
    let wanted = ipnet::IpNet::from(IpAddr::V4(address));
    let mut present = false;
    let mut changed = false;
    for existing in netlink.addresses(index)? {
        if !existing.address.addr().is_ipv4() {
            continue;
        }
        if existing.address == wanted {
            present = true;
            continue;
        }
        let mut message = AddressMessage::default();
        message.header.family = AddressFamily::Inet;
        message.header.index = index;
        message.header.prefix_len = existing.address.prefix_len();
        message
            .attributes
            .push(AddressAttribute::Local(existing.address.addr()));
        message
            .attributes
            .push(AddressAttribute::Address(existing.address.addr()));
        match netlink.execute(RouteNetlinkMessage::DelAddress(message), 0) {
            Err(e) if !e.is_not_found() => return Err(e),
            _ => changed = true,
        }
    }
    if !present {
        netlink.add_address(index, wanted)?;
        changed = true;
    }
    Ok(changed)
}
