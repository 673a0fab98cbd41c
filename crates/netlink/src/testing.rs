//! Scratch network namespaces and connectivity probes for tests.
//!
//! Every namespace gets a unique name, is created with `ip netns add` and
//! removed when its handle is dropped, even when the test fails, so tests
//! never touch interfaces they did not create.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::netns::NetNs;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A named network namespace that exists for the lifetime of this value.
#[derive(Debug)]
pub struct ScratchNetns {
    name: String,
    ns: Option<NetNs>,
}

impl ScratchNetns {
    /// Creates `crs-<tag>-<pid>-<n>`; panics if `ip netns add` fails (tests
    /// need root).
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "crs-{tag}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("running ip netns add");
        assert!(
            status.success(),
            "ip netns add {name} failed (tests need root)"
        );
        let mut scratch = ScratchNetns { name, ns: None };
        let ns = NetNs::open(scratch.path()).expect("opening the new namespace");
        // Loopback up, as a container runtime would leave it.
        let _ = scratch.exec(&["ip", "link", "set", "lo", "up"]);
        scratch.ns = Some(ns);
        scratch
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `/var/run/netns/<name>`, what a runtime passes as `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from("/var/run/netns").join(&self.name)
    }

    pub fn netns(&self) -> &NetNs {
        self.ns.as_ref().expect("namespace is open")
    }

    /// Opens another handle on the namespace.
    pub fn open(&self) -> NetNs {
        NetNs::open(self.path()).expect("opening scratch namespace")
    }

    /// Runs a command inside the namespace and returns its stdout; an error
    /// carries stderr.
    pub fn exec(&self, argv: &[&str]) -> io::Result<String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "{argv:?} in {} failed: {}",
                self.name,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// Names of the links in the namespace.
    pub fn link_names(&self) -> Vec<String> {
        let mut netlink =
            crate::Netlink::open_in(self.netns()).expect("socket in scratch namespace");
        let answers = netlink
            .dump(netlink_packet_route::RouteNetlinkMessage::GetLink(
                Default::default(),
            ))
            .expect("dumping links");
        answers
            .into_iter()
            .filter_map(|m| match m {
                netlink_packet_route::RouteNetlinkMessage::NewLink(link) => {
                    link.attributes.into_iter().find_map(|a| match a {
                        netlink_packet_route::link::LinkAttribute::IfName(n) => Some(n),
                        _ => None,
                    })
                }
                _ => None,
            })
            .collect()
    }

    /// Starts a TCP listener on `ip` (port chosen by the kernel) inside the
    /// namespace ([`tcp_echo`]).
    pub fn tcp_echo(&self, ip: IpAddr) -> EchoServer {
        tcp_echo(self.netns(), ip)
    }

    /// Connects from inside the namespace ([`tcp_probe`]).
    pub fn tcp_probe(&self, address: SocketAddr) -> io::Result<()> {
        tcp_probe(self.netns(), address)
    }
}

/// Starts a TCP listener on `ip` (port chosen by the kernel) inside `ns`;
/// it echoes back what each connection sends first. The listener stops
/// when the returned value is dropped.
pub fn tcp_echo(ns: &NetNs, ip: IpAddr) -> EchoServer {
    let listener = ns
        .run(|| TcpListener::bind(SocketAddr::new(ip, 0)))
        .expect("entering namespace")
        .expect("binding listener");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let address = listener.local_addr().expect("listener address");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    let thread = std::thread::spawn(move || {
        while !stopped.load(Ordering::Relaxed) {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
                    let mut line = [0u8; 64];
                    if let Ok(n) = stream.read(&mut line) {
                        let _ = stream.write_all(&line[..n]);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => break,
            }
        }
    });
    EchoServer {
        address,
        stop,
        thread: Some(thread),
    }
}

/// Connects from inside `ns` to `address`, sends a greeting and expects
/// it echoed back.
pub fn tcp_probe(ns: &NetNs, address: SocketAddr) -> io::Result<()> {
    let mut stream = ns
        .run(|| TcpStream::connect_timeout(&address, Duration::from_secs(3)))
        .map_err(io::Error::other)??;
    stream.set_read_timeout(Some(Duration::from_secs(3)))?;
    stream.write_all(b"hello calico\n")?;
    // `read_exact` retries reads a signal interrupted, and waits for an
    // echo that arrives in pieces.
    let mut reply = [0u8; 13];
    stream.read_exact(&mut reply)?;
    if &reply == b"hello calico\n" {
        Ok(())
    } else {
        Err(io::Error::other(format!("unexpected echo {reply:?}")))
    }
}

impl Drop for ScratchNetns {
    fn drop(&mut self) {
        self.ns = None;
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A TCP echo listener started by [`ScratchNetns::tcp_echo`].
#[derive(Debug)]
pub struct EchoServer {
    pub address: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
