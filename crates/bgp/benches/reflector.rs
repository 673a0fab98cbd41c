//! How long a route reflector takes to bring up sessions with 100 clients:
//! our speaker against BIRD 2 in the same role, interleaved in one run.
//!
//! The reflector sits in a namespace of its own at 10.97.0.1; the clients
//! share a second namespace, joined to it by one veth pair, on 10.97.1.1
//! to 10.97.1.100. Each client is one of our speakers, all 100 in this
//! process on a runtime of their own (the reflector under test gets another
//! runtime, or is a `bird` process), each originating one /24. Clients are
//! the same whichever reflector they face, do little work each (one
//! session, one route out, 99 in), and are started fresh for every
//! measurement so no retry or back-off state carries over; 100 BIRD or
//! GoBGP processes as clients would cost more CPU on this 2-core machine
//! than the reflector being measured.
//!
//! Two scenarios, each measured for both reflectors:
//! - **reflector starts**: the clients are up and passive; the reflector is
//!   started configured with all 100 and connects to each. The clock starts
//!   just before the reflector does (process start and configuration for
//!   BIRD; building the driver and adding the peers for ours).
//! - **clients connect**: the reflector is up with 100 passive sessions;
//!   the clock starts when all clients are told to connect (active, each
//!   from its own address).
//!
//! and timed until
//! - every client reports Established (the moment each session came up is
//!   the client's own state-change time, so polling does not blur it), and
//! - every client holds the other 99 clients' routes (reflected by the
//!   reflector; polled every 10 ms).
//!
//! The time from the first session up to the last is printed too.
//!
//! BIRD gets `connect delay time 0`, `connect retry time 1` and `direct`
//! (the clients share its link; BIRD treats iBGP as multihop otherwise).
//! Even so BIRD 2.0.12 waits about a second (randomised below 1 s) before
//! its first connect ("Connect delayed by 1 seconds" in its log), which is
//! most of its figure when it starts. Its route figures are sometimes 3 s
//! longer: its log then shows the UPDATEs for one client queued and sent
//! exactly 3 s later, in a later turn of its event loop, not at once. When
//! all clients connect at once, some BIRD runs take about 1 s more: BIRD
//! listens with a backlog of 8 (`ss -ltn` shows it), ours with 128, and 1 s
//! is TCP's first SYN retransmission.
//!
//!     cargo bench -p calico-bgp --bench reflector -- [--clients N] [--rounds N] [--routes 0]
//!
//! `--routes 0` leaves the clients without routes, to time sessions alone.
//!
//! With `BENCH_BIRD_LOG` set, BIRD logs every protocol event and its log is
//! printed after each BIRD measurement.
//!
//! Needs root and the `bird2` package.

#[path = "../tests/support/mod.rs"]
mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use calico_bgp::driver::{Driver, DriverConfig, SpeakerHandle};
use calico_bgp::session::State;
use calico_bgp::sink::MemorySink;
use calico_bgp::speaker::{Origination, PeerConfig, SpeakerConfig};
use calico_netlink::testing::ScratchNetns;
use support::{Bird, run, scratch_dir};

const AS: u32 = 64512;
const REFLECTOR: Ipv4Addr = Ipv4Addr::new(10, 97, 0, 1);

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Client `i` (from 0): 10.97.1.`i + 1`, originating 10.200.`i`.0/24.
fn client_address(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 97, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

fn client_route(i: usize) -> ipnet::IpNet {
    let i = i as u32;
    ipnet::IpNet::new(IpAddr::V4(Ipv4Addr::from(0x0ac8_0000 + (i << 8))), 24).unwrap()
}

fn bird_config(clients: usize, passive: bool) -> String {
    let passive = if passive { "on" } else { "off" };
    let debug = if std::env::var_os("BENCH_BIRD_LOG").is_some() {
        "log stderr all;\ndebug protocols all;"
    } else {
        ""
    };
    let mut config = format!(
        "router id {REFLECTOR};
{debug}
protocol device {{}}
template bgp rr_client {{
  local {REFLECTOR} as {AS};
  direct;
  rr client;
  rr cluster id {REFLECTOR};
  connect delay time 0;
  connect retry time 1;
  passive {passive};
  ipv4 {{ import all; export all; }};
}}
"
    );
    for i in 0..clients {
        config.push_str(&format!(
            "protocol bgp c{i} from rr_client {{ neighbor {} as {AS}; }}\n",
            client_address(i)
        ));
    }
    config
}

fn driver(
    runtime: &tokio::runtime::Runtime,
    ns: &ScratchNetns,
    me: Ipv4Addr,
    cluster_id: Option<Ipv4Addr>,
) -> Running {
    runtime.block_on(async {
        let config = DriverConfig {
            speaker: SpeakerConfig {
                local_as: AS,
                router_id: me,
                cluster_id,
                address_v4: Some(me),
                address_v6: None,
            },
            listen: vec![SocketAddr::new(IpAddr::V4(me), 179)],
            netns: Some(ns.path()),
        };
        let (driver, handle) = Driver::new(config, Box::new(MemorySink::new())).expect("driver");
        (handle, tokio::spawn(driver.run()))
    })
}

type Running = (SpeakerHandle, tokio::task::JoinHandle<()>);

fn stop(runtime: &tokio::runtime::Runtime, running: Vec<Running>) {
    runtime.block_on(async {
        for (handle, _) in &running {
            let _ = handle.shutdown().await;
        }
        for (_, task) in running {
            let _ = task.await;
        }
    });
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Reflector {
    Ours,
    Bird,
}

/// Who starts and who connects.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Scenario {
    /// The clients are up and passive; the reflector starts, configured
    /// with all of them, and connects to each.
    ReflectorStarts,
    /// The reflector is up with passive sessions; all clients are told at
    /// once to connect to it.
    ClientsConnect,
}

struct Measurement {
    /// Start to the last session Established.
    all_up: f64,
    /// First session Established to the last.
    spread: f64,
    /// Start to every client holding every other client's route.
    all_routes: f64,
}

struct Bench {
    reflector_ns: ScratchNetns,
    clients_ns: ScratchNetns,
    reflector_rt: tokio::runtime::Runtime,
    clients_rt: tokio::runtime::Runtime,
    clients: usize,
    /// Whether clients originate a route each.
    routes: bool,
}

impl Bench {
    /// Fresh clients with their routes, not yet peered.
    fn start_clients(&self) -> Vec<Running> {
        let mut clients = Vec::with_capacity(self.clients);
        for i in 0..self.clients {
            let me = client_address(i);
            let running = driver(&self.clients_rt, &self.clients_ns, me, None);
            if self.routes {
                self.clients_rt.block_on(async {
                    running
                        .0
                        .originate(Origination::new(client_route(i)))
                        .await
                        .expect("originate");
                });
            }
            clients.push(running);
        }
        clients
    }

    /// Points every client at the reflector; returns once every client's
    /// loop has taken the change.
    fn peer_clients(&self, clients: &[Running], passive: bool) {
        self.clients_rt.block_on(async {
            for (i, (handle, _)) in clients.iter().enumerate() {
                let mut peer = PeerConfig::new(IpAddr::V4(REFLECTOR), AS);
                peer.passive = passive;
                // All clients share one interface: without this they would
                // all connect from its first address.
                peer.source_address = Some(IpAddr::V4(client_address(i)));
                peer.connect_retry = Duration::from_secs(1);
                handle.set_peer(peer).await.expect("set peer");
            }
        });
    }

    /// Starts a reflector configured with every client.
    fn start_reflector(
        &self,
        reflector: Reflector,
        passive: bool,
    ) -> (Option<Running>, Option<Bird>) {
        match reflector {
            Reflector::Ours => {
                let running = driver(
                    &self.reflector_rt,
                    &self.reflector_ns,
                    REFLECTOR,
                    Some(REFLECTOR),
                );
                self.reflector_rt.block_on(async {
                    for i in 0..self.clients {
                        let mut peer = PeerConfig::new(IpAddr::V4(client_address(i)), AS);
                        peer.rr_client = true;
                        peer.passive = passive;
                        peer.connect_retry = Duration::from_secs(1);
                        running.0.set_peer(peer).await.expect("set peer");
                    }
                    // A round trip: every peer above has been added.
                    running.0.status().await.expect("status");
                });
                (Some(running), None)
            }
            Reflector::Bird => {
                let bird = Bird::start_in_ns(
                    &self.reflector_ns,
                    &bird_config(self.clients, passive),
                    scratch_dir("bench-rr"),
                );
                (None, Some(bird))
            }
        }
    }

    fn measure(&self, reflector: Reflector, scenario: Scenario) -> Measurement {
        let clients = self.start_clients();
        let (ours, bird, start) = match scenario {
            Scenario::ReflectorStarts => {
                self.peer_clients(&clients, true);
                let start = Instant::now();
                let (ours, bird) = self.start_reflector(reflector, false);
                (ours, bird, start)
            }
            Scenario::ClientsConnect => {
                let (ours, bird) = self.start_reflector(reflector, true);
                if let Some(bird) = &bird {
                    // Passive sessions wait in Active once BIRD has started
                    // them.
                    let ready = Instant::now();
                    while bird
                        .birdc("show protocols")
                        .lines()
                        .filter(|l| l.contains("Passive"))
                        .count()
                        < self.clients
                    {
                        assert!(
                            ready.elapsed() < Duration::from_secs(30),
                            "{}",
                            bird.birdc("show protocols")
                        );
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
                let start = Instant::now();
                self.peer_clients(&clients, false);
                (ours, bird, start)
            }
        };

        // Sessions: each client's own record of when it came up.
        let established = loop {
            let times: Vec<Option<Instant>> = self.clients_rt.block_on(async {
                let mut times = Vec::with_capacity(clients.len());
                for (handle, _) in &clients {
                    let report = handle.status().await.expect("client status");
                    times.push(
                        report
                            .peers
                            .first()
                            .filter(|p| p.state == State::Established)
                            .and_then(|p| p.since),
                    );
                }
                times
            });
            if times.iter().all(Option::is_some) {
                break times.into_iter().flatten().collect::<Vec<_>>();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{reflector:?}, {scenario:?}: only {} of {} sessions up after 120 s",
                times.iter().filter(|t| t.is_some()).count(),
                self.clients
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let first = *established.iter().min().unwrap();
        let last = *established.iter().max().unwrap();

        // Routes: every client has the others' routes.
        let want = if self.routes { self.clients - 1 } else { 0 };
        let mut done = vec![false; clients.len()];
        let all_routes = loop {
            self.clients_rt.block_on(async {
                for (i, (handle, _)) in clients.iter().enumerate() {
                    if !done[i] {
                        let report = handle.status().await.expect("client status");
                        done[i] = report
                            .peers
                            .first()
                            .is_some_and(|p| p.routes_received >= want);
                    }
                }
            });
            if done.iter().all(|d| *d) {
                break start.elapsed();
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "{reflector:?}, {scenario:?}: only {} of {} clients have every route after 120 s",
                done.iter().filter(|d| **d).count(),
                self.clients
            );
            std::thread::sleep(Duration::from_millis(10));
        };

        if std::env::var_os("BENCH_BIRD_LOG").is_some()
            && let Some(b) = &bird
        {
            eprintln!("{}", b.log());
        }
        if let Some(running) = ours {
            stop(&self.reflector_rt, vec![running]);
        }
        drop(bird);
        stop(&self.clients_rt, clients);
        Measurement {
            all_up: last.duration_since(start).as_secs_f64(),
            spread: last.duration_since(first).as_secs_f64(),
            all_routes: all_routes.as_secs_f64(),
        }
    }
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn fmt(v: &[f64]) -> String {
    v.iter()
        .map(|t| format!("{t:.2}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn main() {
    // `cargo bench` passes --bench; nothing else of libtest applies.
    let clients = arg("--clients", 100);
    let rounds = arg("--rounds", 5);
    let routes = arg("--routes", 1) != 0;
    assert!((2..=1000).contains(&clients), "--clients takes 2 to 1000");
    // Named threads, so a profile tells the reflector from the clients.
    let runtime = |threads, name: &str| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name(name)
            .enable_all()
            .build()
            .expect("runtime")
    };
    let bench = Bench {
        reflector_ns: ScratchNetns::new("bgrrr"),
        clients_ns: ScratchNetns::new("bgrrc"),
        reflector_rt: runtime(2, "reflector"),
        clients_rt: runtime(2, "clients"),
        clients,
        routes,
    };
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
        bench.reflector_ns.name(),
        "type",
        "veth",
        "peer",
        "name",
        &y,
        "netns",
        bench.clients_ns.name(),
    ]);
    bench
        .reflector_ns
        .exec(&["ip", "addr", "add", &format!("{REFLECTOR}/16"), "dev", &x])
        .unwrap();
    bench
        .reflector_ns
        .exec(&["ip", "link", "set", &x, "up"])
        .unwrap();
    let batch = scratch_dir("bench-rr-addrs");
    let batch_file = batch.path().join("addresses");
    let lines: String = (0..clients)
        .map(|i| format!("addr add {}/16 dev {y}\n", client_address(i)))
        .collect();
    std::fs::write(&batch_file, lines).unwrap();
    bench
        .clients_ns
        .exec(&["ip", "-batch", batch_file.to_str().unwrap()])
        .unwrap();
    bench
        .clients_ns
        .exec(&["ip", "link", "set", &y, "up"])
        .unwrap();

    let kinds = [Reflector::Ours, Reflector::Bird];
    let scenarios = [Scenario::ReflectorStarts, Scenario::ClientsConnect];
    // results[scenario][reflector]
    let mut results: Vec<Vec<Vec<Measurement>>> = (0..2)
        .map(|_| (0..2).map(|_| Vec::new()).collect())
        .collect();
    for round in 0..rounds {
        for (s, scenario) in scenarios.iter().enumerate() {
            // Alternate who goes first, so drift over the run hits both alike.
            let order: [usize; 2] = if round % 2 == 0 { [0, 1] } else { [1, 0] };
            for k in order {
                let m = bench.measure(kinds[k], *scenario);
                eprintln!(
                    "round {round}: {scenario:?}, {:?}: all up {:.3} s (first to last {:.3} s), all routes {:.3} s",
                    kinds[k], m.all_up, m.spread, m.all_routes
                );
                results[s][k].push(m);
            }
        }
    }

    println!(
        "clients: {clients}, rounds: {rounds}, a route per client: {routes}; seconds, medians"
    );
    for (s, scenario) in scenarios.iter().enumerate() {
        println!();
        match scenario {
            Scenario::ReflectorStarts => {
                println!("Reflector starts (clients passive), from starting the reflector:")
            }
            Scenario::ClientsConnect => println!(
                "Clients connect (reflector up, passive), from telling the clients to connect:"
            ),
        }
        println!();
        println!(
            "| reflector | all sessions up | first to last up | every client has every route | all up, runs | every route, runs |"
        );
        println!("|---|---|---|---|---|---|");
        let column = |k: usize, f: fn(&Measurement) -> f64| -> Vec<f64> {
            results[s][k].iter().map(f).collect()
        };
        for (k, name) in ["calico-bgp", "BIRD 2.0.12"].iter().enumerate() {
            println!(
                "| {name} | {:.3} | {:.3} | {:.3} | {} | {} |",
                median(&column(k, |m| m.all_up)),
                median(&column(k, |m| m.spread)),
                median(&column(k, |m| m.all_routes)),
                fmt(&column(k, |m| m.all_up)),
                fmt(&column(k, |m| m.all_routes)),
            );
        }
        let ratio = |f: fn(&Measurement) -> f64| median(&column(0, f)) / median(&column(1, f));
        println!();
        println!(
            "calico-bgp / BIRD: all up {:.2}x, first to last {:.2}x, every route {:.2}x",
            ratio(|m| m.all_up),
            ratio(|m| m.spread),
            ratio(|m| m.all_routes)
        );
    }
}
