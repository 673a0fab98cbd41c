//! TCP reachability between network namespaces a runtime created, opened
//! by path: `calico_netlink::testing`'s echo listener and probe.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use calico_netlink::NetNs;
use calico_netlink::testing::{self, EchoServer};

/// A TCP echo listener on `ip` inside the namespace at `netns`; stops when
/// dropped.
pub fn echo(netns: &Path, ip: IpAddr) -> EchoServer {
    let ns = NetNs::open(netns).expect("opening the pod's namespace");
    testing::tcp_echo(&ns, ip)
}

/// Connects from inside the namespace at `netns` to `address`, sends a
/// greeting and expects it echoed back.
pub fn tcp_probe(netns: &Path, address: SocketAddr) -> io::Result<()> {
    let ns = NetNs::open(netns).map_err(io::Error::other)?;
    testing::tcp_probe(&ns, address)
}
