//! How long 100k routes take from a BGP peer into the kernel: our speaker
//! against BIRD 2 doing the same, interleaved in one run.
//!
//! A source in its own namespace holds 100,000 /26 routes; two receivers
//! sit in namespaces of their own, each joined to the source by a veth
//! pair: our speaker (NetlinkSink) and BIRD (kernel protocol, `export
//! all`). Each measurement starts a fresh source and a fresh receiver and
//! times from the session coming up until all 100,000 routes are in the
//! receiver's main table (a netlink dump every 20 ms counts them); then
//! both are stopped and the routes flushed. Receivers alternate.
//!
//! Two sources, both measured in the same run: BIRD with static routes
//! (what the brief names), and our speaker originating them. BIRD as a
//! source sends all but its last partial UPDATE at once and that last one,
//! with its End-of-RIB, 0.6 to 3 s later (seen on the wire with tcpdump),
//! whoever receives; that wait is in the BIRD-source figures for both
//! receivers. Our speaker as a source sends everything at once, so those
//! figures show what the receivers themselves take.
//!
//!     cargo bench -p calico-bgp --bench receive -- [--routes N] [--rounds N]
//!
//! Needs root and the `bird2` package.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use calico_bgp::driver::{Driver, DriverConfig};
use calico_bgp::sink::MemorySink;
use calico_bgp::sink::{NetlinkSink, ROUTE_PROTOCOL};
use calico_bgp::speaker::{Origination, PeerConfig, SpeakerConfig};
use calico_netlink::testing::ScratchNetns;
use support::{Bird, run, scratch_dir};

const SOURCE_AS: u32 = 65000;
const RECEIVER_AS: u32 = 64512;
/// BIRD's route protocol number in the kernel.
const RTPROT_BIRD: u8 = 12;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn link(a: &ScratchNetns, a_ip: &str, b: &ScratchNetns, b_ip: &str) {
    let (x, y) = (
        calico_testutil::unique_name("bgx"),
        calico_testutil::unique_name("bgy"),
    );
    run(&[
        "ip",
        "link",
        "add",
        &x,
        "netns",
        a.name(),
        "type",
        "veth",
        "peer",
        "name",
        &y,
        "netns",
        b.name(),
    ]);
    for (ns, l, ip) in [(a, &x, a_ip), (b, &y, b_ip)] {
        ns.exec(&["ip", "addr", "add", &format!("{ip}/24"), "dev", l])
            .unwrap();
        ns.exec(&["ip", "link", "set", l, "up"]).unwrap();
    }
}

fn count(ns: &ScratchNetns, protocol: u8) -> usize {
    NetlinkSink::open(Some(&ns.path()))
        .map(|s| s.with_protocol(protocol))
        .and_then(|mut s| s.kernel_routes())
        .map(|r| r.len())
        .unwrap_or(0)
}

fn source_config(routes: usize) -> String {
    let mut statics = String::with_capacity(routes * 40);
    for i in 0..routes as u32 {
        let net = Ipv4Addr::from(0x0a00_0000 + i * 64);
        statics.push_str(&format!("  route {net}/26 blackhole;\n"));
    }
    format!(
        "router id 10.98.0.1;
protocol device {{}}
protocol static {{ ipv4; {statics} }}
template bgp feed {{ local as {SOURCE_AS}; connect delay time 1; connect retry time 1; ipv4 {{ import none; export all; }}; }}
protocol bgp to_ours from feed {{ disabled; local 10.98.1.1; neighbor 10.98.1.2 as {RECEIVER_AS}; }}
protocol bgp to_bird from feed {{ disabled; local 10.98.2.1; neighbor 10.98.2.2 as {RECEIVER_AS}; }}
"
    )
}

fn receiver_bird_config() -> String {
    format!(
        "router id 10.98.2.2;
protocol device {{}}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol bgp from_source {{ local 10.98.2.2 as {RECEIVER_AS}; neighbor 10.98.2.1 as {SOURCE_AS}; passive on; ipv4 {{ import all; export none; }}; }}
"
    )
}

/// Waits until `ns` has `want` routes of `protocol`; the elapsed time.
fn wait_full(ns: &ScratchNetns, protocol: u8, want: usize, start: Instant) -> Duration {
    loop {
        let n = count(ns, protocol);
        if n >= want {
            return start.elapsed();
        }
        if start.elapsed() > Duration::from_secs(120) {
            let listed = ns
                .exec(&["ip", "route", "show", "proto", &protocol.to_string()])
                .unwrap_or_default();
            panic!(
                "only {n} of {want} routes after 120 s ({} listed by ip route)",
                listed.lines().count()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh source BIRD with its static routes loaded: a BIRD that has fed
/// a session before is seconds slower to feed the next one, so every
/// measurement gets a new source.
fn fresh_source(ns: &ScratchNetns, routes: usize) -> Bird {
    let source = Bird::start_in_ns(ns, &source_config(routes), scratch_dir("bench-src"));
    let loaded = Instant::now();
    while !source
        .birdc("show route count")
        .contains(&format!("{routes} of {routes} routes"))
    {
        assert!(
            loaded.elapsed() < Duration::from_secs(120),
            "{}",
            source.birdc("show route count")
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    source
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Source {
    Bird,
    Ours,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Receiver {
    Ours,
    Bird,
}

struct Lab3 {
    source_ns: ScratchNetns,
    ours_ns: ScratchNetns,
    bird_ns: ScratchNetns,
    runtime: tokio::runtime::Runtime,
    routes: usize,
}

/// A running driver and its task.
type Running = (
    calico_bgp::driver::SpeakerHandle,
    tokio::task::JoinHandle<()>,
);

impl Lab3 {
    fn driver(
        &self,
        ns: &ScratchNetns,
        asn: u32,
        me: Ipv4Addr,
        listen: bool,
        sink: Box<dyn calico_bgp::sink::RouteSink>,
    ) -> Running {
        self.runtime.block_on(async {
            let config = DriverConfig {
                speaker: SpeakerConfig {
                    local_as: asn,
                    router_id: me,
                    cluster_id: None,
                    address_v4: Some(me),
                    address_v6: None,
                },
                listen: if listen {
                    vec![SocketAddr::new(IpAddr::V4(me), 179)]
                } else {
                    Vec::new()
                },
                netns: Some(ns.path()),
            };
            let (driver, handle) = Driver::new(config, sink).expect("driver");
            (handle, tokio::spawn(driver.run()))
        })
    }

    fn stop(&self, running: Running) {
        self.runtime.block_on(async {
            let _ = running.0.shutdown().await;
            let _ = running.1.await;
        });
    }

    fn established(&self, handle: &calico_bgp::driver::SpeakerHandle) -> bool {
        self.runtime.block_on(async {
            handle.status().await.is_ok_and(|r| {
                r.peers
                    .iter()
                    .any(|p| p.state == calico_bgp::session::State::Established)
            })
        })
    }

    /// One measurement: seconds from session up to all routes in the
    /// receiver's kernel.
    fn measure(&self, source: Source, receiver: Receiver) -> f64 {
        let (receiver_ns, source_ip, receiver_ip, protocol) = match receiver {
            Receiver::Ours => (&self.ours_ns, "10.98.1.1", "10.98.1.2", ROUTE_PROTOCOL),
            Receiver::Bird => (&self.bird_ns, "10.98.2.1", "10.98.2.2", RTPROT_BIRD),
        };
        let source_ip: Ipv4Addr = source_ip.parse().unwrap();
        let receiver_ip: Ipv4Addr = receiver_ip.parse().unwrap();

        // The receiver waits; the source connects.
        let mut ours_rx = None;
        let mut bird_rx = None;
        match receiver {
            Receiver::Ours => {
                let sink = NetlinkSink::open(Some(&self.ours_ns.path())).expect("sink");
                let running = self.driver(
                    &self.ours_ns,
                    RECEIVER_AS,
                    receiver_ip,
                    true,
                    Box::new(sink),
                );
                let mut peer = PeerConfig::new(IpAddr::V4(source_ip), SOURCE_AS);
                peer.passive = true;
                self.runtime
                    .block_on(running.0.set_peer(peer))
                    .expect("set peer");
                ours_rx = Some(running);
            }
            Receiver::Bird => {
                bird_rx = Some(Bird::start_in_ns(
                    &self.bird_ns,
                    &receiver_bird_config(),
                    scratch_dir("bench-rx"),
                ));
            }
        }
        let mut bird_source = None;
        let mut ours_source = None;
        match source {
            Source::Bird => {
                let s = fresh_source(&self.source_ns, self.routes);
                s.birdc(if receiver == Receiver::Ours {
                    "enable to_ours"
                } else {
                    "enable to_bird"
                });
                bird_source = Some(s);
            }
            Source::Ours => {
                let running = self.driver(
                    &self.source_ns,
                    SOURCE_AS,
                    source_ip,
                    false,
                    Box::new(MemorySink::new()),
                );
                self.runtime.block_on(async {
                    for i in 0..self.routes as u32 {
                        let prefix =
                            ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i * 64)), 26)
                                .unwrap();
                        running
                            .0
                            .originate(Origination::new(prefix))
                            .await
                            .expect("originate");
                    }
                    let mut peer = PeerConfig::new(IpAddr::V4(receiver_ip), RECEIVER_AS);
                    peer.source_address = Some(IpAddr::V4(source_ip));
                    peer.connect_retry = Duration::from_millis(200);
                    running.0.set_peer(peer).await.expect("set peer");
                });
                ours_source = Some(running);
            }
        }
        let start = Instant::now();
        let up = loop {
            let established = match (&ours_rx, &bird_rx) {
                (Some(r), _) => self.established(&r.0),
                (_, Some(b)) => b
                    .birdc("show protocols from_source")
                    .contains("Established"),
                _ => unreachable!(),
            };
            if established {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the session never came up"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let took = wait_full(receiver_ns, protocol, self.routes, up).as_secs_f64();

        if let Some(r) = ours_rx {
            self.stop(r);
        }
        drop(bird_rx);
        if let Some(s) = ours_source {
            self.stop(s);
        }
        drop(bird_source);
        receiver_ns
            .exec(&["ip", "route", "flush", "proto", &protocol.to_string()])
            .unwrap();
        took
    }
}

fn main() {
    // `cargo bench` passes --bench; nothing else of libtest applies.
    let routes = arg("--routes", 100_000);
    let rounds = arg("--rounds", 3);
    let lab = Lab3 {
        source_ns: ScratchNetns::new("bgsrc"),
        ours_ns: ScratchNetns::new("bgours"),
        bird_ns: ScratchNetns::new("bgbrx"),
        runtime: tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime"),
        routes,
    };
    link(&lab.source_ns, "10.98.1.1", &lab.ours_ns, "10.98.1.2");
    link(&lab.source_ns, "10.98.2.1", &lab.bird_ns, "10.98.2.2");

    let cells = [
        (Source::Bird, Receiver::Ours),
        (Source::Bird, Receiver::Bird),
        (Source::Ours, Receiver::Ours),
        (Source::Ours, Receiver::Bird),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); cells.len()];
    for round in 0..rounds {
        for (i, (source, receiver)) in cells.iter().enumerate() {
            let t = lab.measure(*source, *receiver);
            eprintln!("round {round}: source {source:?}, receiver {receiver:?}: {t:.2} s");
            times[i].push(t);
        }
    }
    println!(
        "routes: {routes}, rounds: {rounds}; seconds from session up to all routes in the receiver's kernel"
    );
    println!();
    println!("| source | receiver | median s | runs (s) |");
    println!("|---|---|---|---|");
    for (i, (source, receiver)) in cells.iter().enumerate() {
        let source = match source {
            Source::Bird => "BIRD 2.0.12 (static)",
            Source::Ours => "calico-bgp",
        };
        let receiver = match receiver {
            Receiver::Ours => "calico-bgp (NetlinkSink)",
            Receiver::Bird => "BIRD 2.0.12 (kernel protocol)",
        };
        println!(
            "| {source} | {receiver} | {:.2} | {} |",
            median(&mut times[i].clone()),
            fmt(&times[i])
        );
    }
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
