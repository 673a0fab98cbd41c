//! Links: look up, create veth pairs, bring up, delete.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{
    InfoData, InfoKind, InfoVeth, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};

use crate::socket::{Netlink, NetlinkError};

/// A MAC address.
pub type Mac = [u8; 6];

/// What the kernel reports about one link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
    /// Administratively up (`IFF_UP`).
    pub up: bool,
    /// The link kind (`veth`, `vxlan`, …) when the kernel reports one.
    pub kind: Option<String>,
}

/// A veth pair to create. The first end is created in the socket's
/// namespace; the peer goes into `peer_netns` when given.
#[derive(Debug, Clone)]
pub struct VethSpec<'a> {
    pub name: &'a str,
    pub mac: Option<Mac>,
    pub peer_name: &'a str,
    pub peer_mac: Option<Mac>,
    pub peer_netns: Option<BorrowedFd<'a>>,
    /// Both ends get the same MTU; `None` keeps the kernel default.
    pub mtu: Option<u32>,
    /// Transmit and receive queues of both ends; `None` keeps one.
    pub queues: Option<u32>,
}

impl Netlink {
    /// The link called `name`, or `None` if there is none.
    pub fn link_by_name(&mut self, name: &str) -> Result<Option<Link>, NetlinkError> {
        let mut request = LinkMessage::default();
        request
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        self.get_link(request)
    }

    /// The link with interface index `index`, or `None` if there is none.
    pub fn link_by_index(&mut self, index: u32) -> Result<Option<Link>, NetlinkError> {
        let mut request = LinkMessage::default();
        request.header.index = index;
        self.get_link(request)
    }

    fn get_link(&mut self, request: LinkMessage) -> Result<Option<Link>, NetlinkError> {
        match self.get(RouteNetlinkMessage::GetLink(request)) {
            Ok(answers) => Ok(answers.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(link_from_message(&link)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates a veth pair; fails with `EEXIST` if either name is taken in
    /// its namespace, in which case nothing is created.
    pub fn add_veth(&mut self, spec: &VethSpec<'_>) -> Result<(), NetlinkError> {
        let mut peer = LinkMessage::default();
        peer.attributes
            .push(LinkAttribute::IfName(spec.peer_name.to_string()));
        if let Some(mtu) = spec.mtu {
            peer.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.peer_mac {
            peer.attributes.push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(queues) = spec.queues {
            peer.attributes.push(LinkAttribute::NumTxQueues(queues));
            peer.attributes.push(LinkAttribute::NumRxQueues(queues));
        }
        if let Some(fd) = spec.peer_netns {
            peer.attributes.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }

        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(spec.name.to_string()));
        if let Some(mtu) = spec.mtu {
            message.attributes.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(mac) = spec.mac {
            message
                .attributes
                .push(LinkAttribute::Address(mac.to_vec()));
        }
        if let Some(queues) = spec.queues {
            message.attributes.push(LinkAttribute::NumTxQueues(queues));
            message.attributes.push(LinkAttribute::NumRxQueues(queues));
        }
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Veth),
            LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer))),
        ]));
        self.execute(
            RouteNetlinkMessage::NewLink(message),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Sets a link administratively up.
    pub fn set_link_up(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message.header.flags = LinkFlags::Up;
        message.header.change_mask = LinkFlags::Up;
        self.execute(RouteNetlinkMessage::SetLink(message), 0)
    }

    /// Sets a link's hardware address.
    pub fn set_link_mac(&mut self, index: u32, mac: Mac) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        message
            .attributes
            .push(LinkAttribute::Address(mac.to_vec()));
        self.execute(RouteNetlinkMessage::SetLink(message), 0)
    }

    /// Deletes a link by index. Deleting one end of a veth pair deletes
    /// both, and the kernel drops every address and route on them.
    pub fn delete_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        let mut message = LinkMessage::default();
        message.header.index = index;
        self.execute(RouteNetlinkMessage::DelLink(message), 0)
    }

    /// Deletes the link called `name`. Returns whether it existed; a link
    /// that is already gone is not an error.
    pub fn delete_link_by_name(&mut self, name: &str) -> Result<bool, NetlinkError> {
        let mut message = LinkMessage::default();
        message
            .attributes
            .push(LinkAttribute::IfName(name.to_string()));
        match self.execute(RouteNetlinkMessage::DelLink(message), 0) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

fn link_from_message(message: &LinkMessage) -> Link {
    let mut link = Link {
        index: message.header.index,
        name: String::new(),
        mac: None,
        mtu: None,
        up: message.header.flags.contains(LinkFlags::Up),
        kind: None,
    };
    for attribute in &message.attributes {
        match attribute {
            LinkAttribute::IfName(name) => link.name.clone_from(name),
            LinkAttribute::Address(bytes) => link.mac = bytes.as_slice().try_into().ok(),
            LinkAttribute::Mtu(mtu) => link.mtu = Some(*mtu),
            LinkAttribute::LinkInfo(infos) => {
                for info in infos {
                    if let LinkInfo::Kind(kind) = info {
                        link.kind = Some(kind.to_string());
                    }
                }
            }
            _ => {}
        }
    }
    link
}

/// Formats a MAC address the way `ip link` and Calico print it.
pub fn format_mac(mac: &Mac) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Parses `aa:bb:cc:dd:ee:ff` (case-insensitive).
pub fn parse_mac(text: &str) -> Option<Mac> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        let part = parts.next()?;
        if part.len() != 2 {
            return None;
        }
        *byte = u8::from_str_radix(part, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips() {
        let mac = [0xee, 0xee, 0xee, 0xee, 0xee, 0xee];
        assert_eq!(format_mac(&mac), "ee:ee:ee:ee:ee:ee");
        assert_eq!(parse_mac("EE:ee:ee:ee:ee:ee"), Some(mac));
        assert_eq!(
            parse_mac("0a:1b:2c:3d:4e:5f"),
            Some([0x0a, 0x1b, 0x2c, 0x3d, 0x4e, 0x5f])
        );
        for bad in [
            "",
            "ee:ee:ee:ee:ee",
            "ee:ee:ee:ee:ee:ee:ee",
            "e:ee:ee:ee:ee:eee",
            "zz:ee:ee:ee:ee:ee",
        ] {
            assert_eq!(parse_mac(bad), None, "{bad:?}");
        }
    }
}
