//! Two sessions wired back to back through the wire codec, with a clock
//! the test moves.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::*;
use crate::attributes::{PathAttributes, announcements};
use crate::wire::{Update, decode};

const A_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B_ID: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

/// Sessions `a` and `b` and the connections between them.
struct Net {
    a: Session,
    b: Session,
    now: Instant,
    /// (conn of a, conn of b)
    links: Vec<(ConnId, ConnId)>,
    /// Whether messages get through (false: the wire went silent).
    delivering: bool,
    /// Events other than I/O, per side.
    a_log: Vec<Event>,
    b_log: Vec<Event>,
}

#[derive(Clone, Copy, PartialEq)]
enum Side {
    A,
    B,
}

impl Net {
    fn new(a: SessionConfig, b: SessionConfig) -> Net {
        Net {
            a: Session::new(a),
            b: Session::new(b),
            now: Instant::now(),
            links: Vec::new(),
            delivering: true,
            a_log: Vec::new(),
            b_log: Vec::new(),
        }
    }

    fn ibgp() -> Net {
        let mut b = SessionConfig::new(64512, 64512, B_ID);
        b.passive = true;
        Net::new(SessionConfig::new(64512, 64512, A_ID), b)
    }

    fn side(&mut self, side: Side) -> &mut Session {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn peer_conn(&self, side: Side, conn: ConnId) -> Option<ConnId> {
        self.links.iter().find_map(|&(a, b)| match side {
            Side::A if a == conn => Some(b),
            Side::B if b == conn => Some(a),
            _ => None,
        })
    }

    /// Delivers everything until both sides are quiet.
    fn run(&mut self) {
        for _ in 0..1000 {
            let a = self.a.take_events();
            let b = self.b.take_events();
            if a.is_empty() && b.is_empty() {
                return;
            }
            for e in a {
                self.handle(Side::A, e);
            }
            for e in b {
                self.handle(Side::B, e);
            }
        }
        panic!("sessions never settle");
    }

    fn handle(&mut self, side: Side, event: Event) {
        let other = if side == Side::A { Side::B } else { Side::A };
        let now = self.now;
        match event {
            Event::Connect { conn } => match self.side(other).accept(now) {
                Some(theirs) => {
                    self.links.push(if side == Side::A {
                        (conn, theirs)
                    } else {
                        (theirs, conn)
                    });
                    self.side(side).connected(conn, now);
                }
                None => self
                    .side(side)
                    .connect_failed(conn, "connection refused", now),
            },
            Event::Send { conn, message } => {
                if !self.delivering {
                    return;
                }
                if let Some(theirs) = self.peer_conn(side, conn) {
                    let bytes = message.to_bytes(true).unwrap();
                    let message = decode(&bytes, true).unwrap();
                    self.side(other).message(theirs, message, now);
                }
            }
            Event::Close { conn } => {
                if let Some(theirs) = self.peer_conn(side, conn) {
                    self.links
                        .retain(|&(a, b)| (if side == Side::A { a } else { b }) != conn);
                    if self.delivering {
                        self.side(other).closed(theirs, "closed by peer", now);
                    }
                }
            }
            other_event => match side {
                Side::A => self.a_log.push(other_event),
                Side::B => self.b_log.push(other_event),
            },
        }
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.a.tick(self.now);
        self.b.tick(self.now);
        self.run();
    }

    fn start(&mut self) {
        self.b.start(self.now);
        self.a.start(self.now);
        self.run();
    }

    fn send_from_b(&mut self, update: Update) {
        let conn = self.b.established_conn().unwrap();
        let a_conn = self.peer_conn(Side::B, conn).unwrap();
        self.a.message(a_conn, Message::Update(update), self.now);
        self.run();
    }
}

fn established(log: &[Event]) -> Vec<&Negotiated> {
    log.iter()
        .filter_map(|e| match e {
            Event::Established(n) => Some(n),
            _ => None,
        })
        .collect()
}

fn downs(log: &[Event]) -> Vec<(&str, &[Family], Duration)> {
    log.iter()
        .filter_map(|e| match e {
            Event::Down {
                reason,
                graceful,
                stale_for,
            } => Some((reason.as_str(), graceful.as_slice(), *stale_for)),
            _ => None,
        })
        .collect()
}

#[test]
fn active_and_passive_sessions_establish() {
    let mut net = Net::ibgp();
    net.b.config.hold_time = 30;
    net.start();
    assert_eq!(net.a.state(), State::Established);
    assert_eq!(net.b.state(), State::Established);
    let n = established(&net.a_log)[0];
    assert_eq!(n.remote_id, B_ID);
    assert_eq!(n.hold_time, 30, "the lower hold time wins");
    assert_eq!(n.keepalive, Duration::from_secs(10));
    assert!(n.four_octet_as && n.route_refresh);
    assert_eq!(n.families, vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert!(n.remote_graceful_restart.is_some());
    assert_eq!(net.links.len(), 1);
}

#[test]
fn keepalives_keep_the_session_up_for_hours() {
    let mut net = Net::ibgp();
    net.start();
    for _ in 0..720 {
        net.advance(Duration::from_secs(10));
    }
    assert_eq!(net.a.state(), State::Established);
    assert!(downs(&net.a_log).is_empty());
}

#[test]
fn a_silent_peer_expires_the_hold_timer() {
    let mut net = Net::ibgp();
    net.start();
    net.delivering = false;
    let conn = net.a.established_conn().unwrap();
    net.advance(Duration::from_secs(89));
    assert_eq!(net.a.state(), State::Established);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.a.state(), State::Active);
    let (reason, graceful, _) = downs(&net.a_log)[0];
    assert_eq!(reason, "BGP Error: Hold timer expired");
    assert!(graceful.is_empty(), "a NOTIFICATION ends graceful restart");
    let _ = conn;
    assert_eq!(net.a.last_error(), Some("BGP Error: Hold timer expired"));
}

#[test]
fn hold_timer_expiry_sends_the_notification() {
    let mut s = Session::new(SessionConfig::new(64512, 64512, A_ID));
    let now = Instant::now();
    s.start(now);
    let Event::Connect { conn } = s.take_events()[0] else {
        panic!()
    };
    s.connected(conn, now);
    s.take_events();
    s.tick(now + LARGE_HOLD);
    let events = s.take_events();
    assert_eq!(
        events[..2],
        [
            Event::Send {
                conn,
                message: Message::Notification(Notification::hold_timer_expired())
            },
            Event::Close { conn }
        ]
    );
}

#[test]
fn wrong_peer_as_is_refused_with_bad_peer_as() {
    let mut net = Net::ibgp();
    net.b.config.remote_as = 65000;
    net.start();
    assert_ne!(net.a.state(), State::Established);
    // As BIRD words it, on both ends.
    assert_eq!(net.b.last_error(), Some("BGP Error: Bad peer AS"));
    assert_eq!(net.a.last_error(), Some("Received: Bad peer AS"));
}

#[test]
fn same_router_id_on_ibgp_is_refused() {
    let mut net = Net::ibgp();
    net.b.config.local_id = A_ID;
    net.start();
    assert_ne!(net.a.state(), State::Established);
    for side in [&net.a, &net.b] {
        let error = side.last_error().unwrap();
        assert!(error.ends_with("Bad BGP identifier"), "{error}");
    }
}

#[test]
fn unexpected_messages_get_fsm_errors() {
    let cases = [
        (false, Message::Keepalive, fsm::UNEXPECTED_IN_OPEN_SENT),
        (
            true,
            Message::Update(Update::default()),
            fsm::UNEXPECTED_IN_OPEN_CONFIRM,
        ),
    ];
    for (after_open, message, subcode) in cases {
        let mut s = Session::new(SessionConfig::new(64512, 64512, A_ID));
        let now = Instant::now();
        s.start(now);
        let conn = 1;
        s.connected(conn, now);
        if after_open {
            let mut peer = SessionConfig::new(64512, 64512, B_ID).open();
            peer.hold_time = 90;
            s.message(conn, Message::Open(peer), now);
        }
        s.take_events();
        s.message(conn, message, now);
        let events = s.take_events();
        assert_eq!(
            events[0],
            Event::Send {
                conn,
                message: Message::Notification(Notification::new(code::FSM, subcode, vec![]))
            }
        );
    }
}

#[test]
fn refused_connections_are_retried_after_the_connect_retry_time() {
    let mut net = Net::ibgp();
    net.a.start(net.now);
    net.run();
    assert_eq!(net.a.state(), State::Active);
    assert!(net.a.last_error().unwrap().contains("refused"));
    net.b.start(net.now);
    net.advance(Duration::from_secs(4));
    assert_eq!(net.a.state(), State::Active);
    net.advance(Duration::from_secs(1));
    assert_eq!(net.a.state(), State::Established);
}

#[test]
fn both_active_sessions_settle_on_one_connection() {
    let mut a = SessionConfig::new(64512, 64512, A_ID);
    a.connect_retry = Duration::from_secs(3);
    let mut b = SessionConfig::new(64512, 64512, B_ID);
    b.connect_retry = Duration::from_secs(7);
    let mut net = Net::new(a, b);
    net.start();
    for _ in 0..10 {
        net.advance(Duration::from_secs(1));
    }
    assert_eq!(net.a.state(), State::Established);
    assert_eq!(net.b.state(), State::Established);
    assert_eq!(net.links.len(), 1);
    assert_eq!(established(&net.a_log).len(), 1);
}

#[test]
fn collisions_keep_the_connection_of_the_higher_router_id() {
    // Both ends connect at the same time; each sees two connections.
    for (a_id, b_id) in [(A_ID, B_ID), (B_ID, A_ID)] {
        let now = Instant::now();
        let mut a = Session::new(SessionConfig::new(64512, 64512, a_id));
        let mut b = Session::new(SessionConfig::new(64512, 64512, b_id));
        a.start(now);
        b.start(now);
        let (a_out, b_out) = (1, 1);
        a.connected(a_out, now);
        b.connected(b_out, now);
        let a_in = a.accept(now).unwrap();
        let b_in = b.accept(now).unwrap();
        a.take_events();
        b.take_events();
        // a_out <-> b_in, b_out <-> a_in.
        a.message(a_out, Message::Open(b.config.open()), now);
        a.message(a_in, Message::Open(b.config.open()), now);
        let events = a.take_events();
        let closed: Vec<ConnId> = events
            .iter()
            .filter_map(|e| match e {
                Event::Close { conn } => Some(*conn),
                _ => None,
            })
            .collect();
        let want_closed = if a_id > b_id { a_in } else { a_out };
        assert_eq!(closed, vec![want_closed], "a={a_id} b={b_id}");
        assert!(events.contains(&Event::Send {
            conn: want_closed,
            message: Message::Notification(Notification::cease(
                cease::CONNECTION_COLLISION_RESOLUTION
            ))
        }));
        let _ = b_in;
    }
}

#[test]
fn admin_stop_sends_cease_and_the_peer_goes_down() {
    let mut net = Net::ibgp();
    net.start();
    net.a
        .stop(Notification::cease(cease::ADMINISTRATIVE_SHUTDOWN), net.now);
    net.run();
    assert_eq!(net.a.state(), State::Idle);
    assert_eq!(net.b.state(), State::Active, "the passive side waits again");
    let (reason, graceful, _) = downs(&net.b_log)[0];
    assert!(reason.contains("Administrative shutdown"), "{reason}");
    assert!(graceful.is_empty());
}

fn update_for(prefix: &str) -> Update {
    let attrs = PathAttributes {
        next_hop: Some("10.0.0.2".parse().unwrap()),
        local_pref: Some(100),
        ..PathAttributes::default()
    };
    announcements(
        &attrs,
        Family::IPV4_UNICAST,
        &[prefix.parse().unwrap()],
        true,
    )
    .remove(0)
}

#[test]
fn routes_arrive_as_events() {
    let mut net = Net::ibgp();
    net.start();
    net.send_from_b(update_for("192.168.1.0/26"));
    let routes: Vec<&Received> = net
        .a_log
        .iter()
        .filter_map(|e| match e {
            Event::Routes(r) => Some(r),
            _ => None,
        })
        .collect();
    assert_eq!(
        routes[0].announced[0].1,
        vec!["192.168.1.0/26".parse::<ipnet::IpNet>().unwrap()]
    );
}

#[test]
fn malformed_updates_reset_the_session_with_their_notification() {
    let mut net = Net::ibgp();
    net.start();
    let conn = net.a.established_conn().unwrap();
    let error = decode(&[0xff; 19], true).unwrap_err();
    net.a.decode_error(conn, error.clone(), net.now);
    net.run();
    assert_eq!(net.b.last_error(), Some("Received: Bad message type"));
    assert!(downs(&net.b_log)[0].1.is_empty());
    // An UPDATE whose MP next hop does not fit its family.
    let mut net = Net::ibgp();
    net.start();
    let attrs = PathAttributes {
        next_hop: Some("10.0.0.2".parse().unwrap()),
        ..PathAttributes::default()
    };
    let bad = announcements(
        &attrs,
        Family::IPV6_UNICAST,
        &["fd00::/64".parse().unwrap()],
        true,
    )
    .remove(0);
    net.send_from_b(bad);
    let (reason, ..) = downs(&net.a_log)[0];
    assert_eq!(reason, "BGP Error: Optional attribute error");
}

#[test]
fn graceful_restart_keeps_routes_until_end_of_rib_or_timeout() {
    let mut net = Net::ibgp();
    net.b
        .config
        .graceful_restart
        .as_mut()
        .unwrap()
        .forwarding_preserved = true;
    net.a
        .config
        .graceful_restart
        .as_mut()
        .unwrap()
        .max_restart_time = Duration::from_secs(60);
    net.start();
    // b restarts: its connection drops without a NOTIFICATION.
    let b_conn = net.b.established_conn().unwrap();
    net.b = Session::new(net.b.config.clone());
    let a_conn = net.peer_conn(Side::B, b_conn).unwrap();
    net.links.clear();
    net.a.closed(a_conn, "connection reset", net.now);
    net.run();
    let (_, graceful, stale_for) = downs(&net.a_log)[0];
    assert_eq!(graceful, &[Family::IPV4_UNICAST, Family::IPV6_UNICAST]);
    assert_eq!(
        stale_for,
        Duration::from_secs(60),
        "capped by max restart time"
    );
    // It comes back and sends its IPv4 table.
    net.b.start(net.now);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.a.state(), State::Established);
    assert!(!net.a_log.iter().any(|e| matches!(e, Event::FlushStale(_))));
    net.send_from_b(Update::end_of_rib_marker(Family::IPV4_UNICAST));
    assert!(
        net.a_log
            .contains(&Event::FlushStale(vec![Family::IPV4_UNICAST]))
    );
    // IPv6 never gets its End-of-RIB: the stale timer ends it.
    net.advance(Duration::from_secs(55));
    assert!(
        net.a_log
            .contains(&Event::FlushStale(vec![Family::IPV6_UNICAST]))
    );
}

#[test]
fn a_restarted_peer_without_forwarding_state_is_flushed_at_once() {
    let mut net = Net::ibgp();
    net.start();
    let b_conn = net.b.established_conn().unwrap();
    let a_conn = net.peer_conn(Side::B, b_conn).unwrap();
    net.b = Session::new(net.b.config.clone());
    net.links.clear();
    net.a.closed(a_conn, "connection reset", net.now);
    net.b.start(net.now);
    net.advance(Duration::from_secs(5));
    assert_eq!(net.a.state(), State::Established);
    assert!(net.a_log.contains(&Event::FlushStale(vec![
        Family::IPV4_UNICAST,
        Family::IPV6_UNICAST
    ])));
}

#[test]
fn a_peer_reconnecting_while_established_replaces_the_old_session() {
    // The peer restarted so fast that its old connection still looks up.
    let mut net = Net::ibgp();
    net.start();
    let old = net.a.established_conn().unwrap();
    let conn = net.a.accept(net.now).unwrap();
    net.a.take_events();
    net.a
        .message(conn, Message::Open(net.b.config.open()), net.now);
    let events = net.a.take_events();
    assert!(events.contains(&Event::Close { conn: old }));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Down { graceful, .. } if !graceful.is_empty()))
    );
    net.a.message(conn, Message::Keepalive, net.now);
    assert_eq!(net.a.established_conn(), Some(conn));
}

#[test]
fn without_graceful_restart_a_second_connection_loses() {
    let mut net = Net::ibgp();
    net.a.config.graceful_restart = None;
    net.start();
    let old = net.a.established_conn().unwrap();
    let conn = net.a.accept(net.now).unwrap();
    net.a.take_events();
    net.a
        .message(conn, Message::Open(net.b.config.open()), net.now);
    let events = net.a.take_events();
    assert!(events.contains(&Event::Close { conn }));
    assert_eq!(net.a.established_conn(), Some(old));
}

#[test]
fn route_refresh_requests_reach_the_owner() {
    let mut net = Net::ibgp();
    net.start();
    let conn = net.a.established_conn().unwrap();
    net.a.message(
        conn,
        Message::RouteRefresh(crate::wire::RouteRefresh {
            family: Family::IPV6_UNICAST,
            subtype: 0,
        }),
        net.now,
    );
    net.a.message(
        conn,
        Message::RouteRefresh(crate::wire::RouteRefresh {
            family: Family::IPV4_UNICAST,
            subtype: 1,
        }),
        net.now,
    );
    assert_eq!(
        net.a.take_events(),
        vec![Event::RouteRefresh(Family::IPV6_UNICAST)]
    );
}

#[test]
fn four_octet_as_numbers_work_with_as_trans_in_the_open() {
    let mut a = SessionConfig::new(4_200_000_000, 4_200_000_001, A_ID);
    a.passive = false;
    let mut b = SessionConfig::new(4_200_000_001, 4_200_000_000, B_ID);
    b.passive = true;
    assert_eq!(a.open().my_as, AS_TRANS);
    let mut net = Net::new(a, b);
    net.start();
    assert_eq!(net.a.state(), State::Established);
    assert_eq!(established(&net.a_log)[0].remote_as, 4_200_000_001);
}
