//! Real packets: two namespaces joined by a veth pair, a TCP echo server in
//! one, policy applied there by the reconciler. Needs root.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use calico_netlink::testing::ScratchNetns;
use calico_nftables::{
    BaseChain, Chain, CtState, Hook, Key, Policy, PortProto, Rule, Ruleset, Table, Value,
};
use common::{NftNetns, calico};

const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);

/// An echo server that keeps connections open until the client closes
/// them, so a connection can outlive a ruleset change.
struct EchoServer {
    port: u16,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl EchoServer {
    fn start(ns: &ScratchNetns) -> EchoServer {
        let listener = ns
            .netns()
            .run(|| TcpListener::bind(SocketAddr::new(IpAddr::V4(SERVER_IP), 0)))
            .expect("entering the server namespace")
            .expect("binding");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let accept = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let stopped = stopped.clone();
                        workers.push(std::thread::spawn(move || echo(stream, &stopped)));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            for worker in workers {
                let _ = worker.join();
            }
        });
        EchoServer {
            port,
            stop,
            threads: vec![accept],
        }
    }

    fn address(&self) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(SERVER_IP), self.port)
    }
}

fn echo(mut stream: TcpStream, stop: &AtomicBool) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buf = [0u8; 256];
    while !stop.load(Ordering::Relaxed) {
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return,
        }
    }
}

impl Drop for EchoServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn connect(client: &ScratchNetns, to: SocketAddr) -> io::Result<TcpStream> {
    let stream = client
        .netns()
        .run(|| TcpStream::connect_timeout(&to, Duration::from_millis(1500)))
        .map_err(io::Error::other)??;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    Ok(stream)
}

/// Sends a line and expects it back.
fn round_trip(stream: &mut TcpStream, line: &str) -> io::Result<()> {
    stream.write_all(line.as_bytes())?;
    let mut buf = vec![0u8; line.len()];
    stream.read_exact(&mut buf)?;
    if buf == line.as_bytes() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "echo {:?}",
            String::from_utf8_lossy(&buf)
        )))
    }
}

/// The server's policy: established traffic first (the fast path), then a
/// guard chain holding per-port drops.
fn policy(drop_ports: &[u16]) -> Ruleset {
    let guard = Chain::regular(drop_ports.iter().map(|p| {
        Rule::new()
            .matching(Key::Dport(PortProto::Tcp), Value::port(*p))
            .counter()
            .drop()
    }));
    let input = Chain::base(
        BaseChain::filter(Hook::Input, 0, Policy::Accept),
        [
            Rule::new()
                .matching(
                    Key::CtState,
                    Value::CtState(CtState::ESTABLISHED | CtState::RELATED),
                )
                .accept(),
            Rule::new()
                .matching(Key::Iifname, Value::name("vsrv"))
                .jump("cali-guard"),
        ],
    );
    Ruleset::new().with_table(
        calico(),
        Table::new()
            .with_chain("filter-INPUT", input)
            .with_chain("cali-guard", guard),
    )
}

#[test]
fn policy_changes_affect_new_connections_and_spare_established_ones() {
    let server = NftNetns::new("nft-srv");
    let client = ScratchNetns::new("nft-cli");
    server
        .netns
        .exec(&[
            "ip",
            "link",
            "add",
            "vsrv",
            "type",
            "veth",
            "peer",
            "name",
            "vcli",
            "netns",
            client.name(),
        ])
        .expect("veth pair");
    server
        .netns
        .exec(&["ip", "addr", "add", "10.99.0.2/24", "dev", "vsrv"])
        .expect("server address");
    server
        .netns
        .exec(&["ip", "link", "set", "vsrv", "up"])
        .expect("server link up");
    client
        .exec(&["ip", "addr", "add", "10.99.0.1/24", "dev", "vcli"])
        .expect("client address");
    client
        .exec(&["ip", "link", "set", "vcli", "up"])
        .expect("client link up");

    let web = EchoServer::start(&server.netns);
    let admin = EchoServer::start(&server.netns);
    let mut reconciler = server.reconciler([calico()]);
    reconciler
        .apply_blocking(&policy(&[]))
        .expect("initial policy");

    // Everything is allowed: connections to both ports work, and stay open.
    let mut web_before = connect(&client, web.address()).expect("connect to web");
    round_trip(&mut web_before, "hello web\n").expect("web echo");
    let mut admin_before = connect(&client, admin.address()).expect("connect to admin");
    round_trip(&mut admin_before, "hello admin\n").expect("admin echo");

    // The desired state now drops new connections to the web port: one
    // chain is flushed and refilled in one transaction.
    let report = reconciler
        .apply_blocking(&policy(&[web.port]))
        .expect("adding the drop");
    assert_eq!(report.statements, 2, "flush + one rule: {report:?}");

    let refused = connect(&client, web.address());
    assert!(
        refused.is_err(),
        "a new connection to the dropped port must fail"
    );
    // Connections opened before the change keep working: the one the change
    // does not concern, and (through the established fast path) even the
    // one to the port that is now dropped.
    round_trip(&mut admin_before, "still there\n").expect("untouched connection survives");
    round_trip(&mut web_before, "still there\n").expect("established connection survives");
    let mut admin_after =
        connect(&client, admin.address()).expect("new connection to the other port");
    round_trip(&mut admin_after, "new\n").expect("admin echo after the change");

    // The drop counted the refused attempt.
    let listing = server.nft(&["list", "chain", "inet", "calico", "cali-guard"]);
    assert!(
        !listing.contains("packets 0 "),
        "the drop rule saw the SYNs: {listing}"
    );

    // And back.
    reconciler
        .apply_blocking(&policy(&[]))
        .expect("removing the drop");
    let mut web_again = connect(&client, web.address()).expect("connect after the drop is removed");
    round_trip(&mut web_again, "back\n").expect("web echo again");
}
