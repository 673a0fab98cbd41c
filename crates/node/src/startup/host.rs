//! What start-up needs to know about the host's network: its interfaces
//! and their addresses, and which source address the kernel would use to
//! reach a destination. Read inside the node's network namespace (the
//! host's own, or a simulated node's), never by entering it on a shared
//! thread.

use std::collections::BTreeMap;
use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

use calico_netlink::{NetNs, NetNsError, Netlink, NetlinkError};
use ipnet::IpNet;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::address::{AddressAttribute, AddressMessage};
use netlink_packet_route::link::{LinkAttribute, LinkMessage};

/// One interface and its addresses (each with its subnet length).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostInterface {
    pub index: u32,
    pub name: String,
    pub addresses: Vec<IpNet>,
}

/// Errors reading the host's network.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("opening network namespace {}", path.display())]
    Namespace {
        path: PathBuf,
        #[source]
        source: NetNsError,
    },
    #[error("listing the host's interfaces and addresses")]
    List(#[source] NetlinkError),
    #[error("finding the source address towards {destination}")]
    Reach {
        destination: String,
        #[source]
        source: io::Error,
    },
}

/// Where to look: the namespace this process runs in, or a named one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostNetns {
    path: Option<PathBuf>,
}

impl HostNetns {
    /// The namespace the process runs in.
    pub fn current() -> HostNetns {
        HostNetns { path: None }
    }

    /// The namespace bound at `path` (e.g. `/var/run/netns/node1`).
    pub fn at(path: impl AsRef<Path>) -> HostNetns {
        HostNetns {
            path: Some(path.as_ref().to_path_buf()),
        }
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    fn open(&self) -> Result<Option<NetNs>, HostError> {
        match &self.path {
            None => Ok(None),
            Some(path) => NetNs::open(path)
                .map(Some)
                .map_err(|source| HostError::Namespace {
                    path: path.clone(),
                    source,
                }),
        }
    }

    /// An rtnetlink socket bound to the namespace.
    pub fn netlink(&self) -> Result<Netlink, HostError> {
        let socket = match self.open()? {
            None => Netlink::open(),
            Some(ns) => Netlink::open_in(&ns),
        };
        socket.map_err(HostError::List)
    }

    /// Every interface with its addresses, in the order Calico's
    /// autodetection walks them (highest interface index first).
    pub fn interfaces(&self) -> Result<Vec<HostInterface>, HostError> {
        list_interfaces(&mut self.netlink()?).map_err(HostError::List)
    }

    /// The source address the namespace's routing picks towards
    /// `destination` (an address or host name), found as Calico finds it:
    /// by connecting a UDP socket to port 80 there (nothing is sent).
    pub fn reach(&self, destination: &str, ipv6: bool) -> Result<IpAddr, HostError> {
        let reach_error = |source| HostError::Reach {
            destination: destination.to_owned(),
            source,
        };
        let target = if ipv6 && destination.parse::<std::net::Ipv6Addr>().is_ok() {
            format!("[{destination}]:80")
        } else {
            format!("{destination}:80")
        };
        let connect = move || -> io::Result<IpAddr> {
            let bind: SocketAddr = if ipv6 {
                "[::]:0".parse().expect("valid")
            } else {
                "0.0.0.0:0".parse().expect("valid")
            };
            let socket = UdpSocket::bind(bind)?;
            socket.connect(target.as_str())?;
            Ok(socket.local_addr()?.ip())
        };
        match self.open()? {
            None => connect().map_err(reach_error),
            Some(ns) => ns
                .run(connect)
                .map_err(|source| HostError::Namespace {
                    path: ns.path().to_path_buf(),
                    source,
                })?
                .map_err(reach_error),
        }
    }
}

/// Links and addresses in two dumps, grouped by interface.
pub fn list_interfaces(netlink: &mut Netlink) -> Result<Vec<HostInterface>, NetlinkError> {
    let mut interfaces: BTreeMap<u32, HostInterface> = BTreeMap::new();
    for message in netlink.dump(RouteNetlinkMessage::GetLink(LinkMessage::default()))? {
        let RouteNetlinkMessage::NewLink(link) = message else {
            continue;
        };
        let name = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::IfName(n) => Some(n.clone()),
            _ => None,
        });
        if let Some(name) = name {
            interfaces.insert(
                link.header.index,
                HostInterface {
                    index: link.header.index,
                    name,
                    addresses: Vec::new(),
                },
            );
        }
    }
    for message in netlink.dump(RouteNetlinkMessage::GetAddress(AddressMessage::default()))? {
        let RouteNetlinkMessage::NewAddress(address) = message else {
            continue;
        };
        let mut local = None;
        let mut peer = None;
        for attribute in &address.attributes {
            match attribute {
                AddressAttribute::Local(ip) => local = Some(*ip),
                AddressAttribute::Address(ip) => peer = Some(*ip),
                _ => {}
            }
        }
        let Some(ip) = local.or(peer) else { continue };
        let Ok(net) = IpNet::new(ip, address.header.prefix_len) else {
            continue;
        };
        if let Some(interface) = interfaces.get_mut(&address.header.index) {
            interface.addresses.push(net);
        }
    }
    // Calico walks the system's list (ordered by index) backwards.
    Ok(interfaces.into_values().rev().collect())
}
