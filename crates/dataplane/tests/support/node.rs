//! A simulated node for kernel tests and the benchmark: one network
//! namespace plays the host, others play pods, attached as Calico's CNI
//! plugin attaches them (calico-netlink's workload plumbing: a `cali…` veth,
//! a /32 route, proxy ARP). The agent's tables are reconciled into the node
//! namespace with calico-nftables' reconciler, through `nsenter`; the test
//! process never changes namespace on its own threads.
//!
//! Listeners and probes: TCP listeners and UDP echo servers in each pod, and
//! probes that open their socket inside the source pod (on a dedicated
//! thread, bound to a chosen source port) and wait for an answer from
//! outside it.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use calico_netlink::testing::ScratchNetns;
use calico_netlink::{HostNetwork, WorkloadInterface, default_routes};
use calico_nftables::{NftCli, NftCommand, Reconciler, TableId};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The node namespace with its pods.
pub struct Node {
    pub ns: ScratchNetns,
    host: HostNetwork,
    pub pods: Vec<Pod>,
}

/// One pod: its namespace, addresses and host-side interface.
pub struct Pod {
    pub ns: ScratchNetns,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
    pub iface: String,
}

impl Node {
    /// A node namespace with forwarding on, as the agent sets it, and an
    /// uplink carrying the node's address and default route (a veth pair
    /// with both ends inside: this kernel has no dummy devices). Proxy ARP
    /// answers for the pods' gateway only when the node has a route to it.
    pub fn new(tag: &str) -> Node {
        let ns = ScratchNetns::new(tag);
        for cmd in [
            "ip link add uplink0 type veth peer name uplink1",
            "ip link set uplink0 up",
            "ip link set uplink1 up",
            "ip addr add 10.99.0.1/32 dev uplink0",
            "ip -6 addr add fd00:99::1/128 dev uplink0 nodad",
            "ip route add default dev uplink0",
            "ip -6 route add default dev uplink0",
            "sysctl -q -w net.ipv4.ip_forward=1",
            "sysctl -q -w net.ipv6.conf.all.forwarding=1",
        ] {
            ns.exec(&cmd.split(' ').collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("node setup `{cmd}`: {e}"));
        }
        let host = HostNetwork::new(ns.open()).expect("netlink socket in the node namespace");
        Node {
            ns,
            host,
            pods: Vec::new(),
        }
    }

    /// Creates a pod namespace and plumbs it with `iface` and `ip`.
    pub fn add_pod(&mut self, tag: &str, iface: &str, ip: Ipv4Addr) -> usize {
        self.add_dual_stack_pod(tag, iface, ip, None)
    }

    /// Creates a pod namespace and plumbs it with `iface`, `ip` and `ip6`.
    pub fn add_dual_stack_pod(
        &mut self,
        tag: &str,
        iface: &str,
        ip: Ipv4Addr,
        ip6: Option<Ipv6Addr>,
    ) -> usize {
        let pod = ScratchNetns::new(tag);
        let mut addresses = vec![IpAddr::V4(ip)];
        addresses.extend(ip6.map(IpAddr::V6));
        let spec = WorkloadInterface {
            host_ifname: iface.into(),
            pod_ifname: "eth0".into(),
            addresses,
            routes: default_routes(),
            mtu: None,
            queues: None,
            pod_mac: None,
            allow_ip_forwarding: false,
            host_routes: true,
        };
        self.host
            .add_workload(pod.netns(), &spec)
            .unwrap_or_else(|e| panic!("plumbing pod {iface}: {e}"));
        self.pods.push(Pod {
            ns: pod,
            ip,
            ip6,
            iface: iface.into(),
        });
        self.pods.len() - 1
    }

    /// A reconciler owning `tables` inside the node namespace.
    pub fn reconciler(&self, tables: Vec<TableId>) -> Reconciler<NftCli> {
        Reconciler::new(NftCli::new(NftCommand::in_netns(self.ns.path())), tables)
    }
}

/// TCP listeners and UDP echo servers on some ports of one address;
/// stopped on drop.
pub struct Listeners {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Listeners {
    pub fn start(at: Source<'_>, ports: &[u16]) -> Listeners {
        let addrs = at.addresses();
        let sockets = at
            .ns
            .netns()
            .run(|| -> io::Result<Vec<(TcpListener, UdpSocket)>> {
                let mut out = Vec::new();
                for addr in &addrs {
                    for p in ports {
                        let tcp = TcpListener::bind(SocketAddr::new(*addr, *p))?;
                        let udp = UdpSocket::bind(SocketAddr::new(*addr, *p))?;
                        out.push((tcp, udp));
                    }
                }
                Ok(out)
            })
            .expect("entering the pod namespace")
            .expect("binding listeners");
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (tcp, udp) in sockets {
            tcp.set_nonblocking(true).expect("non-blocking listener");
            let stopped = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stopped.load(Ordering::Relaxed) {
                    match tcp.accept() {
                        // The handshake is the answer; the connection is
                        // closed at once.
                        Ok((stream, _)) => drop(stream),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => return,
                    }
                }
            }));
            udp.set_read_timeout(Some(Duration::from_millis(20)))
                .expect("UDP read timeout");
            let stopped = stop.clone();
            threads.push(std::thread::spawn(move || {
                let mut buf = [0u8; 512];
                while !stopped.load(Ordering::Relaxed) {
                    if let Ok((n, from)) = udp.recv_from(&mut buf) {
                        let _ = udp.send_to(&buf[..n], from);
                    }
                }
            }));
        }
        Listeners { stop, threads }
    }
}

impl Drop for Listeners {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// TCP or UDP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
    /// An ICMP (ICMPv6) echo request from a raw socket; the probe's
    /// `src_port` is the echo identifier.
    IcmpEcho,
}

/// Where probes start: a namespace and the addresses to send from.
#[derive(Clone, Copy)]
pub struct Source<'a> {
    pub ns: &'a ScratchNetns,
    pub ip: Ipv4Addr,
    pub ip6: Option<Ipv6Addr>,
}

impl Pod {
    pub fn source(&self) -> Source<'_> {
        Source {
            ns: &self.ns,
            ip: self.ip,
            ip6: self.ip6,
        }
    }
}

impl Source<'_> {
    /// The address of the family of `dst`.
    pub fn address_for(&self, dst: IpAddr) -> IpAddr {
        match dst {
            IpAddr::V4(_) => IpAddr::V4(self.ip),
            IpAddr::V6(_) => IpAddr::V6(self.ip6.expect("an IPv6 address for an IPv6 probe")),
        }
    }

    fn addresses(&self) -> Vec<IpAddr> {
        let mut out = vec![IpAddr::V4(self.ip)];
        out.extend(self.ip6.map(IpAddr::V6));
        out
    }
}

impl Node {
    /// Every pod as a probe source, in order.
    pub fn sources(&self) -> Vec<Source<'_>> {
        self.pods.iter().map(Pod::source).collect()
    }

    /// Another namespace outside the node, joined to it by a veth pair:
    /// `node_if` with `node_ip`/24 in the node, `eth0` with `outside_ip`/24
    /// outside, and a route from outside to the pods' 10.65.0.0/16 via the
    /// node.
    pub fn add_outside(
        &self,
        tag: &str,
        node_if: &str,
        node_ip: Ipv4Addr,
        outside_ip: Ipv4Addr,
    ) -> ScratchNetns {
        let outside = ScratchNetns::new(tag);
        let node_cmds = [
            format!(
                "ip link add {node_if} type veth peer name eth0 netns {}",
                outside.name()
            ),
            format!("ip addr add {node_ip}/24 dev {node_if}"),
            format!("ip link set {node_if} up"),
        ];
        for cmd in &node_cmds {
            self.ns
                .exec(&cmd.split(' ').collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("`{cmd}`: {e}"));
        }
        let outside_cmds = [
            format!("ip addr add {outside_ip}/24 dev eth0"),
            "ip link set eth0 up".to_string(),
            format!("ip route add 10.65.0.0/16 via {node_ip}"),
        ];
        for cmd in &outside_cmds {
            outside
                .exec(&cmd.split(' ').collect::<Vec<_>>())
                .unwrap_or_else(|e| panic!("`{cmd}`: {e}"));
        }
        outside
    }
}

/// One connection attempt (or echo request) from a source to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Index into the sources given to [`run_probes`].
    pub src_pod: usize,
    pub transport: Transport,
    pub src_port: u16,
    pub dst: SocketAddr,
}

/// What a probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// An answer came back (a handshake, an echo, or a refusal): the
    /// packet got through.
    Answered,
    /// Nothing within the timeout: dropped.
    Silent,
    /// Something else went wrong (the probe itself is broken).
    Failed(String),
}

fn open(source: Source<'_>, probes: &[Probe]) -> Vec<io::Result<Socket>> {
    source
        .ns
        .netns()
        .run(|| {
            probes
                .iter()
                .map(|p| {
                    let (ty, proto) = match (p.transport, p.dst.is_ipv6()) {
                        (Transport::Tcp, _) => (Type::STREAM, Protocol::TCP),
                        (Transport::Udp, _) => (Type::DGRAM, Protocol::UDP),
                        (Transport::IcmpEcho, false) => (Type::RAW, Protocol::ICMPV4),
                        (Transport::IcmpEcho, true) => (Type::RAW, Protocol::ICMPV6),
                    };
                    let src = source.address_for(p.dst.ip());
                    let socket = Socket::new(Domain::for_address(p.dst), ty, Some(proto))?;
                    socket.set_reuse_address(true)?;
                    let port = match p.transport {
                        Transport::IcmpEcho => 0,
                        _ => p.src_port,
                    };
                    socket.bind(&SockAddr::from(SocketAddr::new(src, port)))?;
                    Ok(socket)
                })
                .collect()
        })
        .expect("entering the pod namespace")
}

fn attempt(socket: Socket, probe: &Probe, timeout: Duration) -> Outcome {
    let dst = SockAddr::from(probe.dst);
    let refused = |e: &io::Error| e.kind() == io::ErrorKind::ConnectionRefused;
    let silent = |e: &io::Error| {
        matches!(
            e.kind(),
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
        )
    };
    match probe.transport {
        Transport::Tcp => match socket.connect_timeout(&dst, timeout) {
            Ok(()) => Outcome::Answered,
            Err(e) if refused(&e) => Outcome::Answered,
            Err(e) if silent(&e) => Outcome::Silent,
            Err(e) => Outcome::Failed(e.to_string()),
        },
        Transport::Udp => {
            let run = || -> io::Result<Outcome> {
                socket.connect(&dst)?;
                let payload = format!("probe {}", probe.src_port);
                socket.send(payload.as_bytes())?;
                let deadline = Instant::now() + timeout;
                let udp: UdpSocket = socket.into();
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return Ok(Outcome::Silent);
                    }
                    udp.set_read_timeout(Some(left))?;
                    let mut buf = [0u8; 512];
                    match udp.recv(&mut buf) {
                        Ok(n) if &buf[..n] == payload.as_bytes() => return Ok(Outcome::Answered),
                        Ok(_) => continue,
                        Err(e) if refused(&e) => return Ok(Outcome::Answered),
                        Err(e) if silent(&e) => return Ok(Outcome::Silent),
                        Err(e) => return Err(e),
                    }
                }
            };
            run().unwrap_or_else(|e| Outcome::Failed(e.to_string()))
        }
        Transport::IcmpEcho => {
            echo(&socket, probe, timeout).unwrap_or_else(|e| Outcome::Failed(format!("echo: {e}")))
        }
    }
}

/// The Internet checksum (RFC 1071).
fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends an echo request with the probe's identifier and waits for the
/// matching reply. A raw socket sees every ICMP packet of its namespace,
/// so replies to other probes are skipped by identifier.
fn echo(socket: &Socket, probe: &Probe, timeout: Duration) -> io::Result<Outcome> {
    use std::io::Read;
    let v6 = probe.dst.is_ipv6();
    let (request_type, reply_type) = if v6 { (128u8, 129u8) } else { (8, 0) };
    let id = probe.src_port.to_be_bytes();
    let mut packet = vec![request_type, 0, 0, 0, id[0], id[1], 0, 1];
    packet.extend_from_slice(b"calico-rs probe");
    if !v6 {
        // The kernel fills in the ICMPv6 checksum, not the ICMP one.
        let sum = checksum(&packet).to_be_bytes();
        packet[2] = sum[0];
        packet[3] = sum[1];
    }
    socket.send_to(&packet, &SockAddr::from(probe.dst))?;
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Outcome::Silent);
        }
        socket.set_read_timeout(Some(left))?;
        let n = match (&*socket).read(&mut buf) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Ok(Outcome::Silent);
            }
            Err(e) => return Err(e),
        };
        // IPv4 raw sockets deliver the IP header too; IPv6 ones do not.
        let icmp = if v6 {
            &buf[..n]
        } else {
            let header = usize::from(buf[0] & 0x0f) * 4;
            match buf.get(header..n) {
                Some(rest) => rest,
                None => continue,
            }
        };
        if icmp.len() >= 8 && icmp[0] == reply_type && icmp[4..6] == id {
            return Ok(Outcome::Answered);
        }
    }
}

/// Runs every probe at once and returns what each saw, in order.
pub fn run_probes(sources: &[Source<'_>], probes: &[Probe], timeout: Duration) -> Vec<Outcome> {
    let mut sockets: Vec<Option<io::Result<Socket>>> = (0..probes.len()).map(|_| None).collect();
    for (index, source) in sources.iter().enumerate() {
        let mine: Vec<usize> = (0..probes.len())
            .filter(|i| probes[*i].src_pod == index)
            .collect();
        if mine.is_empty() {
            continue;
        }
        let list: Vec<Probe> = mine.iter().map(|i| probes[*i]).collect();
        for (i, socket) in mine.into_iter().zip(open(*source, &list)) {
            sockets[i] = Some(socket);
        }
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = sockets
            .into_iter()
            .zip(probes)
            .map(|(socket, probe)| {
                scope.spawn(move || match socket.expect("opened above") {
                    Ok(s) => attempt(s, probe, timeout),
                    Err(e) => Outcome::Failed(format!("opening the socket: {e}")),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Outcome::Failed("probe panicked".into()))
            })
            .collect()
    })
}
