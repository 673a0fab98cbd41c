//! How long 100k routes take from a BGP peer into the kernel: our speaker
//! against BIRD 2 doing the same, interleaved in one run.
//!
//! A BIRD "source" in its own namespace holds 100,000 static /26 routes.
//! Two receivers sit in namespaces of their own, each joined to the source
//! by a veth pair: our speaker (NetlinkSink) and BIRD (kernel protocol,
//! `export all`). Each round starts a fresh receiver, enables the source's
//! session to it, and times until all 100,000 routes are in the receiver's
//! main table; then the session is disabled, the receiver stopped and its
//! routes flushed. Rounds alternate ours / BIRD.
//!
//!     cargo bench -p calico-bgp --bench receive -- [--routes N] [--rounds N]
//!
//! Needs root and the `bird2` package.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use calico_bgp::driver::{Driver, DriverConfig};
use calico_bgp::sink::{NetlinkSink, ROUTE_PROTOCOL};
use calico_bgp::speaker::{PeerConfig, SpeakerConfig};
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

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes --bench; nothing else of libtest applies.
    let routes = arg("--routes", 100_000);
    let rounds = arg("--rounds", 3);
    let source_ns = ScratchNetns::new("bgsrc");
    let ours_ns = ScratchNetns::new("bgours");
    let bird_ns = ScratchNetns::new("bgbrx");
    link(&source_ns, "10.98.1.1", &ours_ns, "10.98.1.2");
    link(&source_ns, "10.98.2.1", &bird_ns, "10.98.2.2");
    let source = Bird::start_in_ns(&source_ns, &source_config(routes), scratch_dir("bench-src"));
    // Wait for the statics to be in the source's table.
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut ours_times = Vec::new();
    let mut bird_times = Vec::new();
    let mut ours_totals = Vec::new();
    let mut bird_totals = Vec::new();
    for round in 0..rounds {
        // Ours.
        let (handle, task) = runtime.block_on(async {
            let sink = NetlinkSink::open(Some(&ours_ns.path())).expect("sink");
            let config = DriverConfig {
                speaker: SpeakerConfig {
                    local_as: RECEIVER_AS,
                    router_id: Ipv4Addr::new(10, 98, 1, 2),
                    cluster_id: None,
                    address_v4: Some(Ipv4Addr::new(10, 98, 1, 2)),
                    address_v6: None,
                },
                listen: vec![SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(10, 98, 1, 2)),
                    179,
                )],
                netns: Some(ours_ns.path()),
                md5: None,
            };
            let (driver, handle) = Driver::new(config, Box::new(sink)).expect("driver");
            let task = tokio::spawn(driver.run());
            let mut peer = PeerConfig::new(IpAddr::V4(Ipv4Addr::new(10, 98, 1, 1)), SOURCE_AS);
            peer.passive = true;
            handle.set_peer(peer).await.expect("set peer");
            (handle, task)
        });
        let start = Instant::now();
        source.birdc("enable to_ours");
        let up = loop {
            let established = runtime.block_on(async {
                handle.status().await.is_ok_and(|r| {
                    r.peers
                        .iter()
                        .any(|p| p.state == calico_bgp::session::State::Established)
                })
            });
            if established {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "our session never came up"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        if std::env::var_os("BGP_BENCH_TRACE").is_some() {
            loop {
                let received = runtime.block_on(async {
                    handle
                        .status()
                        .await
                        .map(|r| r.peers[0].routes_received)
                        .unwrap_or(0)
                });
                if received >= routes {
                    eprintln!(
                        "  all received {:.2} s after the session came up",
                        up.elapsed().as_secs_f64()
                    );
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let t = wait_full(&ours_ns, ROUTE_PROTOCOL, routes, up);
        ours_times.push(t.as_secs_f64());
        ours_totals.push(start.elapsed().as_secs_f64());
        eprintln!(
            "round {round}: ours {:.2} s after the session came up",
            t.as_secs_f64()
        );
        source.birdc("disable to_ours");
        runtime.block_on(async {
            let _ = handle.shutdown().await;
            let _ = task.await;
        });
        ours_ns
            .exec(&["ip", "route", "flush", "proto", &ROUTE_PROTOCOL.to_string()])
            .unwrap();

        // BIRD.
        let receiver =
            Bird::start_in_ns(&bird_ns, &receiver_bird_config(), scratch_dir("bench-rx"));
        let start = Instant::now();
        source.birdc("enable to_bird");
        let up = loop {
            if receiver
                .birdc("show protocols from_source")
                .contains("Established")
            {
                break Instant::now();
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "BIRD's session never came up"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        let t = wait_full(&bird_ns, RTPROT_BIRD, routes, up);
        bird_times.push(t.as_secs_f64());
        bird_totals.push(start.elapsed().as_secs_f64());
        eprintln!(
            "round {round}: BIRD {:.2} s after the session came up",
            t.as_secs_f64()
        );
        source.birdc("disable to_bird");
        drop(receiver);
        bird_ns
            .exec(&["ip", "route", "flush", "proto", "bird"])
            .unwrap();
    }
    println!("routes: {routes}, rounds: {rounds}");
    println!(
        "| receiver | session up to all in kernel, median s | runs (s) | enable to all in kernel, runs (s) |"
    );
    println!("|---|---|---|---|");
    println!(
        "| calico-bgp (NetlinkSink) | {:.2} | {} | {} |",
        median(&mut ours_times.clone()),
        fmt(&ours_times),
        fmt(&ours_totals)
    );
    println!(
        "| BIRD 2.0.12 (kernel protocol) | {:.2} | {} | {} |",
        median(&mut bird_times.clone()),
        fmt(&bird_times),
        fmt(&bird_totals)
    );
    println!(
        "ours/BIRD (medians, session up to kernel): {:.2}x",
        median(&mut ours_times) / median(&mut bird_times)
    );
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}
