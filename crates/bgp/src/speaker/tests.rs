//! Several speakers wired together in memory: meshes, route reflection,
//! eBGP, graceful restart, with a clock the test moves.

use std::time::{Duration, Instant};

use super::*;
use crate::wire::decode;

/// One end of a connection: speaker, the peer it is for, connection id.
type End = (usize, IpAddr, ConnId);

/// Speakers and the connections between them.
struct Net {
    speakers: Vec<Speaker>,
    addresses: Vec<IpAddr>,
    /// ((speaker, its peer, conn), (speaker, its peer, conn))
    links: Vec<(End, End)>,
    /// Kernel route changes per speaker.
    routes: Vec<Vec<RouteChange>>,
    /// Speakers whose traffic is dropped (a dead node).
    down: Vec<usize>,
    now: Instant,
}

fn ip(n: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, n])
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

impl Net {
    fn new() -> Net {
        Net {
            speakers: Vec::new(),
            addresses: Vec::new(),
            links: Vec::new(),
            routes: Vec::new(),
            down: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Adds a speaker at 10.0.0.`n` in `asn`.
    fn add(&mut self, n: u8, asn: u32, cluster_id: Option<Ipv4Addr>) -> usize {
        self.speakers.push(Speaker::new(SpeakerConfig {
            local_as: asn,
            router_id: Ipv4Addr::new(10, 0, 0, n),
            cluster_id,
            address_v4: Some(Ipv4Addr::new(10, 0, 0, n)),
            address_v6: None,
        }));
        self.addresses.push(ip(n));
        self.routes.push(Vec::new());
        self.speakers.len() - 1
    }

    /// Peers `a` with `b`; the one with the higher address is passive, as
    /// Calico's mesh does it.
    fn peer(&mut self, a: usize, b: usize, tweak: impl Fn(&mut PeerConfig)) {
        for (x, y) in [(a, b), (b, a)] {
            let mut config = PeerConfig::new(self.addresses[y], self.speakers[y].config().local_as);
            config.passive = self.addresses[x] > self.addresses[y];
            tweak(&mut config);
            let now = self.now;
            self.speakers[x].set_peer(config, now);
        }
        self.run();
    }

    fn index_of(&self, address: IpAddr) -> Option<usize> {
        self.addresses.iter().position(|a| *a == address)
    }

    fn other_end(&self, end: End) -> Option<End> {
        self.links.iter().find_map(|&(x, y)| {
            if x == end {
                Some(y)
            } else if y == end {
                Some(x)
            } else {
                None
            }
        })
    }

    fn run(&mut self) {
        for _ in 0..10_000 {
            let mut busy = false;
            for i in 0..self.speakers.len() {
                let outputs = self.speakers[i].take_outputs();
                busy |= !outputs.is_empty();
                for output in outputs {
                    self.handle(i, output);
                }
            }
            if !busy {
                return;
            }
        }
        panic!("network never settles");
    }

    fn handle(&mut self, i: usize, output: Output) {
        let now = self.now;
        match output {
            Output::Connect { peer, conn } => {
                let j = self
                    .index_of(peer)
                    .filter(|j| !self.down.contains(j) && !self.down.contains(&i));
                let accepted = j.and_then(|j| {
                    let me = self.addresses[i];
                    self.speakers[j].accept(me, peer, now).map(|c| (j, c))
                });
                match accepted {
                    Some((j, theirs)) => {
                        let me = self.addresses[i];
                        self.links.push(((i, peer, conn), (j, me, theirs)));
                        self.speakers[i].connected(peer, conn, me, now);
                    }
                    None => self.speakers[i].connect_failed(peer, conn, "connection refused", now),
                }
            }
            Output::Send { peer, conn, bytes } => {
                if self.down.contains(&i) {
                    return;
                }
                if let Some((j, _, theirs)) = self.other_end((i, peer, conn)) {
                    let from = self.addresses[i];
                    match decode(&bytes, true) {
                        Ok(m) => self.speakers[j].message(from, theirs, m, now),
                        Err(e) => self.speakers[j].decode_error(from, theirs, e, now),
                    }
                }
            }
            Output::Close { peer, conn } => {
                let end = (i, peer, conn);
                if let Some((j, _, theirs)) = self.other_end(end) {
                    self.links.retain(|&(x, y)| x != end && y != end);
                    if !self.down.contains(&i) {
                        let from = self.addresses[i];
                        self.speakers[j].closed(from, theirs, "closed by peer", now);
                    }
                }
            }
            Output::Route(change) => self.routes[i].push(change),
        }
    }

    fn advance(&mut self, by: Duration) {
        let end = self.now + by;
        loop {
            let next = self.speakers.iter().filter_map(|s| s.next_deadline()).min();
            match next {
                Some(t) if t <= end => {
                    self.now = t.max(self.now);
                    let now = self.now;
                    for s in &mut self.speakers {
                        s.tick(now);
                    }
                    self.run();
                }
                _ => break,
            }
        }
        self.now = end;
    }

    fn originate(&mut self, i: usize, o: Origination) {
        let now = self.now;
        self.speakers[i].originate(o, now);
        self.run();
    }

    /// Kills speaker `i` without a word: its connections just go.
    fn crash(&mut self, i: usize) {
        let links: Vec<_> = self
            .links
            .iter()
            .filter(|(x, y)| x.0 == i || y.0 == i)
            .copied()
            .collect();
        self.links.retain(|(x, y)| x.0 != i && y.0 != i);
        let me = self.addresses[i];
        let now = self.now;
        for (x, y) in links {
            let (other, _, conn) = if x.0 == i { y } else { x };
            self.speakers[other].closed(me, conn, "connection reset", now);
        }
        self.run();
    }
}

fn installed(s: &Speaker, prefix: &str) -> Option<IpAddr> {
    s.installed().get(&net(prefix)).copied()
}

fn all_established(net: &Net) -> bool {
    net.speakers
        .iter()
        .all(|s| s.status().iter().all(|p| p.state == State::Established))
}

#[test]
fn a_two_node_mesh_exchanges_blocks() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |_| {});
    assert!(all_established(&n));
    let mut block = Origination::new(net("192.168.1.0/26"));
    block.communities = vec![(64512 << 16) | 100];
    n.originate(a, block);
    n.originate(b, Origination::new(net("192.168.2.0/26")));
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), Some(ip(1)));
    assert_eq!(installed(&n.speakers[a], "192.168.2.0/26"), Some(ip(2)));
    assert_eq!(
        installed(&n.speakers[a], "192.168.1.0/26"),
        None,
        "our own block is not a kernel route of ours"
    );
    let best = &n.speakers[b].best_paths()[&net("192.168.1.0/26")];
    assert_eq!(best.attrs.communities, vec![(64512 << 16) | 100]);
    assert_eq!(best.attrs.local_pref, Some(100));
    assert_eq!(
        n.routes[b],
        vec![RouteChange::Replace {
            prefix: net("192.168.1.0/26"),
            next_hop: ip(1),
            link_local: None,
            peer: ip(1)
        }]
    );
    // Withdrawing reaches the kernel of the other node.
    let now = n.now;
    n.speakers[a].withdraw(net("192.168.1.0/26"), now);
    n.run();
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), None);
    assert_eq!(
        n.routes[b].last(),
        Some(&RouteChange::Remove {
            prefix: net("192.168.1.0/26")
        })
    );
}

#[test]
fn routes_originated_before_the_session_arrive_when_it_comes_up() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    for i in 0..300u32 {
        let prefix = IpNet::new(Ipv4Addr::from(0xc0a8_0000 | (i << 6)).into(), 26).unwrap();
        n.originate(a, Origination::new(prefix));
    }
    n.peer(a, b, |_| {});
    assert_eq!(n.speakers[b].installed().len(), 300);
    assert_eq!(n.speakers[a].advertised(ip(2)).len(), 300);
}

#[test]
fn a_full_mesh_does_not_pass_ibgp_routes_on() {
    let mut n = Net::new();
    let nodes: Vec<usize> = (1..=3).map(|i| n.add(i, 64512, None)).collect();
    for x in 0..3 {
        for y in x + 1..3 {
            n.peer(nodes[x], nodes[y], |_| {});
        }
    }
    n.originate(nodes[0], Origination::new(net("192.168.1.0/26")));
    for &other in &nodes[1..] {
        assert_eq!(installed(&n.speakers[other], "192.168.1.0/26"), Some(ip(1)));
        // Learned only from the originator.
        assert_eq!(n.speakers[other].rib.paths(&net("192.168.1.0/26")).len(), 1);
    }
    assert!(n.speakers[nodes[1]].advertised(ip(3)).is_empty());
}

#[test]
fn a_route_reflector_passes_client_routes_between_clients() {
    let mut n = Net::new();
    let rr = n.add(10, 64512, Some(Ipv4Addr::new(244, 0, 0, 1)));
    let c1 = n.add(1, 64512, None);
    let c2 = n.add(2, 64512, None);
    for c in [c1, c2] {
        // Only the reflector's side marks the client.
        let now = n.now;
        let client = n.addresses[c];
        let mut to_client = PeerConfig::new(client, 64512);
        to_client.rr_client = true;
        to_client.passive = true;
        n.speakers[rr].set_peer(to_client, now);
        n.speakers[c].set_peer(PeerConfig::new(ip(10), 64512), now);
        n.run();
    }
    assert!(all_established(&n));
    n.originate(c1, Origination::new(net("192.168.1.0/26")));
    let best = &n.speakers[c2].best_paths()[&net("192.168.1.0/26")];
    assert_eq!(best.attrs.originator_id, Some(Ipv4Addr::new(10, 0, 0, 1)));
    assert_eq!(best.attrs.cluster_list, vec![Ipv4Addr::new(244, 0, 0, 1)]);
    assert_eq!(
        installed(&n.speakers[c2], "192.168.1.0/26"),
        Some(ip(1)),
        "the next hop is the originating client"
    );
    // The originator does not take its own route back.
    assert!(
        n.speakers[c1]
            .rib
            .paths(&net("192.168.1.0/26"))
            .iter()
            .all(|p| p.is_local())
    );
}

#[test]
fn ebgp_prepends_and_refuses_looped_paths() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 65000, None);
    let c = n.add(3, 64512, None);
    n.peer(a, b, |_| {});
    n.peer(b, c, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    let at_b = &n.speakers[b].best_paths()[&net("192.168.1.0/26")];
    assert_eq!(at_b.attrs.as_path, AsPath::sequence([64512]));
    // c is in a's AS: the path through b carries 64512 and is refused.
    assert!(n.speakers[c].best_paths().is_empty());
    assert_eq!(n.speakers[b].advertised(ip(3)).len(), 1, "b did send it");
}

#[test]
fn removing_a_peer_removes_its_routes() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    assert!(installed(&n.speakers[b], "192.168.1.0/26").is_some());
    let now = n.now;
    n.speakers[b].remove_peer(ip(1), now);
    n.run();
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), None);
    assert!(
        n.speakers[a]
            .status()
            .iter()
            .all(|p| p.state != State::Established)
    );
}

#[test]
fn a_crashed_peer_keeps_its_routes_through_graceful_restart() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    n.originate(a, Origination::new(net("192.168.9.0/26")));
    assert!(installed(&n.speakers[b], "192.168.1.0/26").is_some());
    let routes_before = n.routes[b].len();
    // a restarts: a new speaker with only one of its blocks.
    n.crash(a);
    assert_eq!(
        n.routes[b].len(),
        routes_before,
        "nothing removed while a restarts"
    );
    assert_eq!(n.speakers[b].status()[0].state, State::Active);
    let config = n.speakers[a].config().clone();
    n.speakers[a] = Speaker::new(config);
    n.speakers[a].originate(Origination::new(net("192.168.1.0/26")), n.now);
    let now = n.now;
    let mut to_b = PeerConfig::new(ip(2), 64512);
    to_b.passive = false;
    n.speakers[a].set_peer(to_b, now);
    n.run();
    n.advance(Duration::from_secs(6));
    assert!(all_established(&n));
    // Its End-of-RIB came without 192.168.9.0/26; since a did not claim
    // forwarding state, the stale routes went at once; the re-announced
    // one is back.
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), Some(ip(1)));
    assert_eq!(installed(&n.speakers[b], "192.168.9.0/26"), None);
}

#[test]
fn stale_routes_expire_when_the_peer_does_not_come_back() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |c| {
        c.graceful_restart = Some(GracefulRestartConfig {
            restart_time: 30,
            max_restart_time: Duration::from_secs(120),
            forwarding_preserved: true,
        })
    });
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    n.down.push(a);
    n.crash(a);
    n.advance(Duration::from_secs(29));
    assert!(installed(&n.speakers[b], "192.168.1.0/26").is_some());
    n.advance(Duration::from_secs(2));
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), None);
}

#[test]
fn a_silent_peer_loses_its_routes_at_hold_timer_expiry() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |c| c.hold_time = 9);
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    n.down.push(a);
    n.advance(Duration::from_secs(10));
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), None);
    assert!(n.speakers[b].status()[0].info.as_deref() == Some("BGP Error: Hold timer expired"));
}

#[test]
fn changing_export_settings_updates_what_was_sent() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 65000, None);
    let c = n.add(3, 64513, None);
    n.peer(a, b, |_| {});
    n.peer(b, c, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    assert!(installed(&n.speakers[c], "192.168.1.0/26").is_some());
    // b stops passing learned routes to c.
    let mut config = n.speakers[b].peer_config(ip(3)).unwrap().clone();
    config.learned = LearnedFilter::Nothing;
    let now = n.now;
    n.speakers[b].set_peer(config, now);
    n.run();
    assert_eq!(installed(&n.speakers[c], "192.168.1.0/26"), None);
    assert!(
        all_established(&n),
        "an export change does not reset the session"
    );
}

#[test]
fn peer_status_reports_state_and_counts() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |c| {
        c.name = format!("Mesh_{}", c.address.to_string().replace('.', "_"))
    });
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    let status = n.speakers[b].status();
    assert_eq!(status[0].name, "Mesh_10_0_0_1");
    assert_eq!(status[0].state, State::Established);
    assert_eq!(status[0].routes_received, 1);
    assert_eq!(n.speakers[a].status()[0].routes_sent, 1);
}

#[test]
fn reconcile_adds_changes_and_removes() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    let c = n.add(3, 64512, None);
    n.peer(b, a, |_| {});
    n.peer(c, a, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    n.originate(a, Origination::new(net("192.168.2.0/26")));
    assert_eq!(n.speakers[a].status().len(), 2);
    // a keeps only b and only the first block, now with a community.
    let mut to_b = n.speakers[a].peer_config(ip(2)).unwrap().clone();
    to_b.name = "Mesh_10_0_0_2".into();
    let mut block = Origination::new(net("192.168.1.0/26"));
    block.communities = vec![7];
    let now = n.now;
    n.speakers[a].reconcile(vec![to_b], vec![block], now);
    n.run();
    let status = n.speakers[a].status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].name, "Mesh_10_0_0_2");
    assert_eq!(
        status[0].state,
        State::Established,
        "a name change does not reset the session"
    );
    assert_eq!(n.speakers[b].installed().len(), 1);
    assert_eq!(
        n.speakers[b].best_paths()[&net("192.168.1.0/26")]
            .attrs
            .communities,
        vec![7]
    );
    assert!(n.speakers[c].installed().is_empty(), "c lost a as a peer");
}

#[test]
fn reconfiguring_the_speaker_restarts_sessions_and_keeps_everything() {
    let mut n = Net::new();
    let a = n.add(1, 64512, None);
    let b = n.add(2, 64512, None);
    n.peer(a, b, |_| {});
    n.originate(a, Origination::new(net("192.168.1.0/26")));
    let mut config = n.speakers[a].config().clone();
    config.cluster_id = Some(Ipv4Addr::new(244, 0, 0, 1));
    let now = n.now;
    n.speakers[a].reconfigure(config, now);
    n.run();
    n.advance(Duration::from_secs(6));
    assert!(all_established(&n));
    assert_eq!(
        n.speakers[a].config().cluster_id,
        Some(Ipv4Addr::new(244, 0, 0, 1))
    );
    assert_eq!(installed(&n.speakers[b], "192.168.1.0/26"), Some(ip(1)));
}
