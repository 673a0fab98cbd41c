//! The BGP-4 finite state machine of one peer (RFC 4271 §8), with time
//! passed in.
//!
//! A [`Session`] owns up to two TCP connections to its peer (ours and the
//! peer's, while a collision is being resolved, §6.8), their hold and
//! keepalive timers, the connect-retry timer, and the graceful restart
//! helper state (RFC 4724 §4.2). It never touches a socket or a clock: the
//! caller reports what happened (`connected`, `message`, `closed`, `tick`,
//! ...) with the current [`Instant`] and drains [`Event`]s saying what to do
//! (open a connection, send a message, close one) and what happened to the
//! routes (session up or down, routes received, stale routes to flush).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use crate::attributes::{Received, interpret};
use crate::wire::{
    AS_TRANS, Capability, DecodeError, Family, GracefulRestart, GracefulRestartFamily, Message,
    Notification, Open, cease, code, fsm, open_error,
};

/// Identifies one TCP connection of a session.
pub type ConnId = u64;

/// RFC 4271 states, as BIRD and `calicoctl node status` name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    Idle,
    Connect,
    Active,
    OpenSent,
    OpenConfirm,
    Established,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Idle => "Idle",
            State::Connect => "Connect",
            State::Active => "Active",
            State::OpenSent => "OpenSent",
            State::OpenConfirm => "OpenConfirm",
            State::Established => "Established",
        })
    }
}

/// The hold time before an OPEN has been received (RFC 4271 §8.2.2
/// suggests four minutes).
const LARGE_HOLD: Duration = Duration::from_secs(240);

/// Graceful restart (RFC 4724) settings of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GracefulRestartConfig {
    /// Restart time we advertise, seconds (12 bits).
    pub restart_time: u16,
    /// The longest we keep a restarting peer's routes, whatever restart
    /// time it advertises (what Calico calls `maxRestartTime`).
    pub max_restart_time: Duration,
    /// Whether we tell peers our forwarding state survives our restarts
    /// (the kernel keeps our routes while the speaker restarts).
    pub forwarding_preserved: bool,
}

impl Default for GracefulRestartConfig {
    fn default() -> Self {
        GracefulRestartConfig {
            restart_time: 120,
            max_restart_time: Duration::from_secs(120),
            forwarding_preserved: false,
        }
    }
}

/// How to run a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionConfig {
    pub local_as: u32,
    pub remote_as: u32,
    pub local_id: Ipv4Addr,
    /// Hold time we propose, seconds; 0 or at least 3.
    pub hold_time: u16,
    /// Keepalive interval, seconds; a third of the hold time when unset.
    pub keepalive_time: Option<u16>,
    pub connect_retry: Duration,
    /// Never connect; wait for the peer (BIRD's `passive on`).
    pub passive: bool,
    pub families: Vec<Family>,
    pub graceful_restart: Option<GracefulRestartConfig>,
}

impl SessionConfig {
    pub fn new(local_as: u32, remote_as: u32, local_id: Ipv4Addr) -> Self {
        SessionConfig {
            local_as,
            remote_as,
            local_id,
            hold_time: 90,
            keepalive_time: None,
            connect_retry: Duration::from_secs(5),
            passive: false,
            families: vec![Family::IPV4_UNICAST, Family::IPV6_UNICAST],
            graceful_restart: Some(GracefulRestartConfig::default()),
        }
    }

    pub fn is_internal(&self) -> bool {
        self.local_as == self.remote_as
    }

    /// The OPEN this session sends.
    pub fn open(&self) -> Open {
        let mut capabilities: Vec<Capability> = self
            .families
            .iter()
            .map(|f| Capability::Multiprotocol(*f))
            .collect();
        capabilities.push(Capability::RouteRefresh);
        if let Some(gr) = &self.graceful_restart {
            capabilities.push(Capability::GracefulRestart(GracefulRestart {
                flags: 0,
                restart_time: gr.restart_time.min(0x0fff),
                families: self
                    .families
                    .iter()
                    .map(|f| GracefulRestartFamily {
                        family: *f,
                        flags: if gr.forwarding_preserved {
                            GracefulRestartFamily::FORWARDING_PRESERVED
                        } else {
                            0
                        },
                    })
                    .collect(),
            }));
        }
        capabilities.push(Capability::FourOctetAs(self.local_as));
        Open {
            my_as: u16::try_from(self.local_as).unwrap_or(AS_TRANS),
            hold_time: self.hold_time,
            bgp_id: self.local_id,
            capabilities,
            parameter_per_capability: false,
        }
    }
}

/// What both ends agreed on when the session came up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub remote_id: Ipv4Addr,
    pub remote_as: u32,
    /// Seconds; 0 means no hold timer and no keepalives.
    pub hold_time: u16,
    pub keepalive: Duration,
    pub four_octet_as: bool,
    pub families: Vec<Family>,
    pub route_refresh: bool,
    /// The peer's graceful restart capability, when both ends have one.
    pub remote_graceful_restart: Option<GracefulRestart>,
}

/// What the session asks of its owner, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Open a TCP connection to the peer and report `connected` or
    /// `connect_failed` with this id.
    Connect {
        conn: ConnId,
    },
    Send {
        conn: ConnId,
        message: Message,
    },
    /// Close the connection once what was sent before is flushed.
    Close {
        conn: ConnId,
    },
    Established(Negotiated),
    /// The session went down. Routes of the `graceful` families are kept,
    /// marked stale, for `stale_for`; all others are gone.
    Down {
        reason: String,
        graceful: Vec<Family>,
        stale_for: Duration,
    },
    Routes(Received),
    /// The peer asked for our routes of a family again (RFC 2918).
    RouteRefresh(Family),
    /// Stale routes of these families can go (End-of-RIB or timeout).
    FlushStale(Vec<Family>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConnState {
    Connecting,
    OpenSent,
    OpenConfirm,
    Established,
}

#[derive(Debug)]
struct Conn {
    id: ConnId,
    outgoing: bool,
    state: ConnState,
    hold: Option<Instant>,
    keepalive: Option<Instant>,
    negotiated: Option<Negotiated>,
}

#[derive(Debug)]
struct Stale {
    deadline: Instant,
    families: Vec<Family>,
}

/// One peer's session. See the module documentation.
#[derive(Debug)]
pub struct Session {
    config: SessionConfig,
    started: bool,
    conns: Vec<Conn>,
    next_conn: ConnId,
    retry_at: Option<Instant>,
    stale: Option<Stale>,
    last_error: Option<String>,
    reported_state: State,
    state_since: Option<Instant>,
    events: Vec<Event>,
}

impl Session {
    pub fn new(config: SessionConfig) -> Self {
        Session {
            config,
            started: false,
            conns: Vec::new(),
            next_conn: 1,
            retry_at: None,
            stale: None,
            last_error: None,
            reported_state: State::Idle,
            state_since: None,
            events: Vec::new(),
        }
    }

    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    /// The state as RFC 4271 names it, derived from the connections.
    pub fn state(&self) -> State {
        let best = self.conns.iter().map(|c| c.state).max_by_key(|s| match s {
            ConnState::Connecting => 0,
            ConnState::OpenSent => 1,
            ConnState::OpenConfirm => 2,
            ConnState::Established => 3,
        });
        match best {
            Some(ConnState::Established) => State::Established,
            Some(ConnState::OpenConfirm) => State::OpenConfirm,
            Some(ConnState::OpenSent) => State::OpenSent,
            Some(ConnState::Connecting) => State::Connect,
            None if self.started => State::Active,
            None => State::Idle,
        }
    }

    /// When the state last changed.
    pub fn state_since(&self) -> Option<Instant> {
        self.state_since
    }

    pub fn last_error(&self) -> Option<&str> {
        self.last_error.as_deref()
    }

    /// The agreement of the established connection, if any.
    pub fn negotiated(&self) -> Option<&Negotiated> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .and_then(|c| c.negotiated.as_ref())
    }

    /// The connection carrying the established session.
    pub fn established_conn(&self) -> Option<ConnId> {
        self.conns
            .iter()
            .find(|c| c.state == ConnState::Established)
            .map(|c| c.id)
    }

    /// Takes the events produced so far.
    pub fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    /// The next instant at which [`Session::tick`] has work to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .flat_map(|c| [c.hold, c.keepalive])
            .chain([self.retry_at, self.stale.as_ref().map(|s| s.deadline)])
            .flatten()
            .min()
    }

    /// ManualStart: connect (unless passive) and accept connections.
    pub fn start(&mut self, now: Instant) {
        if !self.started {
            self.started = true;
            if !self.config.passive {
                self.connect(now);
            }
        }
        self.note_state(now);
    }

    /// ManualStop: send `notification` on every open connection, close
    /// them, and stay idle.
    pub fn stop(&mut self, notification: Notification, now: Instant) {
        self.started = false;
        self.retry_at = None;
        self.stale = None;
        for conn in std::mem::take(&mut self.conns) {
            if conn.state != ConnState::Connecting {
                self.events.push(Event::Send {
                    conn: conn.id,
                    message: Message::Notification(notification.clone()),
                });
            }
            self.events.push(Event::Close { conn: conn.id });
            if conn.state == ConnState::Established {
                self.events.push(Event::Down {
                    reason: format!("stopped: {}", notification.describe()),
                    graceful: Vec::new(),
                    stale_for: Duration::ZERO,
                });
            }
        }
        self.note_state(now);
    }

    /// Our outgoing connection `conn` is up.
    pub fn connected(&mut self, conn: ConnId, now: Instant) {
        let established = self.established_conn().is_some();
        let Some(c) = self.conn_mut(conn) else {
            self.events.push(Event::Close { conn });
            return;
        };
        if c.state != ConnState::Connecting || established {
            self.remove(conn);
            self.events.push(Event::Close { conn });
            return;
        }
        c.state = ConnState::OpenSent;
        c.hold = Some(now + LARGE_HOLD);
        let open = self.config.open();
        self.events.push(Event::Send {
            conn,
            message: Message::Open(open),
        });
        self.note_state(now);
    }

    /// Our outgoing connection `conn` could not be made.
    pub fn connect_failed(&mut self, conn: ConnId, reason: &str, now: Instant) {
        if self.remove(conn).is_some() {
            self.last_error = Some(format!("Socket: {}", socket_error(reason)));
        }
        self.schedule_retry(now);
        self.note_state(now);
    }

    /// The peer connected to us. Returns the id of the new connection, or
    /// `None` when it is refused (session stopped, or two connections
    /// already), in which case the caller closes the socket.
    pub fn accept(&mut self, now: Instant) -> Option<ConnId> {
        if !self.started || self.conns.len() >= 2 {
            return None;
        }
        // An attempt of ours still connecting loses to a connection that is
        // already up (RFC 4271 §8.2.2, Connect state).
        if let Some(pending) = self
            .conns
            .iter()
            .find(|c| c.state == ConnState::Connecting)
            .map(|c| c.id)
        {
            self.remove(pending);
            self.events.push(Event::Close { conn: pending });
        }
        let id = self.new_conn_id();
        self.conns.push(Conn {
            id,
            outgoing: false,
            state: ConnState::OpenSent,
            hold: Some(now + LARGE_HOLD),
            keepalive: None,
            negotiated: None,
        });
        let open = self.config.open();
        self.events.push(Event::Send {
            conn: id,
            message: Message::Open(open),
        });
        self.note_state(now);
        Some(id)
    }

    /// The connection closed (by the peer, or an I/O error).
    pub fn closed(&mut self, conn: ConnId, reason: &str, now: Instant) {
        if self.conn_mut(conn).is_some() {
            // A transport failure is what graceful restart is for.
            self.fail(
                conn,
                None,
                Some(format!("Socket: {}", socket_error(reason))),
                true,
                now,
            );
        }
    }

    /// A message arrived on `conn`.
    pub fn message(&mut self, conn: ConnId, message: Message, now: Instant) {
        let Some(c) = self.conn_mut(conn) else {
            return;
        };
        if let Some(n) = &c.negotiated
            && n.hold_time > 0
        {
            c.hold = Some(now + Duration::from_secs(n.hold_time.into()));
        }
        let state = c.state;
        match (state, message) {
            (ConnState::Connecting, _) => {}
            (_, Message::Notification(n)) => {
                self.fail(
                    conn,
                    None,
                    Some(format!("Received: {}", n.describe())),
                    false,
                    now,
                );
            }
            (ConnState::OpenSent, Message::Open(open)) => self.on_open(conn, open, now),
            (ConnState::OpenSent, other) => {
                self.unexpected(conn, &other, fsm::UNEXPECTED_IN_OPEN_SENT, now)
            }
            (ConnState::OpenConfirm, Message::Keepalive) => self.on_established(conn, now),
            (ConnState::OpenConfirm, other) => {
                self.unexpected(conn, &other, fsm::UNEXPECTED_IN_OPEN_CONFIRM, now)
            }
            (ConnState::Established, Message::Keepalive) => {}
            (ConnState::Established, Message::Update(update)) => {
                let negotiated = c
                    .negotiated
                    .as_ref()
                    .expect("established connections are negotiated");
                match interpret(update, negotiated.four_octet_as, &negotiated.families) {
                    Ok(received) => self.on_routes(received),
                    Err(error) => self.decode_error(conn, error, now),
                }
            }
            (ConnState::Established, Message::RouteRefresh(r)) => {
                // Subtypes 1 and 2 only mark the start and end of a refresh
                // the peer is sending us (RFC 7313).
                if r.subtype == 0 {
                    self.events.push(Event::RouteRefresh(r.family));
                }
            }
            (ConnState::Established, other @ Message::Open(_)) => {
                self.unexpected(conn, &other, fsm::UNEXPECTED_IN_ESTABLISHED, now)
            }
        }
        self.note_state(now);
    }

    /// A message on `conn` could not be decoded: answer with the
    /// NOTIFICATION the decoder chose and drop the connection.
    pub fn decode_error(&mut self, conn: ConnId, error: DecodeError, now: Instant) {
        if self.conn_mut(conn).is_some() {
            self.fail(
                conn,
                Some(error.notification.clone()),
                Some(format!("BGP Error: {}", error.notification.describe())),
                false,
                now,
            );
        }
    }

    /// Timers: hold, keepalive, connect retry, stale routes.
    pub fn tick(&mut self, now: Instant) {
        let expired: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.hold.is_some_and(|t| t <= now))
            .map(|c| c.id)
            .collect();
        for conn in expired {
            self.fail(
                conn,
                Some(Notification::hold_timer_expired()),
                Some("BGP Error: Hold timer expired".to_string()),
                false,
                now,
            );
        }
        for i in 0..self.conns.len() {
            let c = &mut self.conns[i];
            if let (Some(t), Some(n)) = (c.keepalive, &c.negotiated)
                && t <= now
            {
                c.keepalive = Some(now + n.keepalive);
                self.events.push(Event::Send {
                    conn: c.id,
                    message: Message::Keepalive,
                });
            }
        }
        if self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            if self.started && !self.config.passive && self.state() != State::Established {
                // An attempt that has not connected within the retry time
                // is abandoned for a fresh one.
                if let Some(pending) = self
                    .conns
                    .iter()
                    .find(|c| c.state == ConnState::Connecting)
                    .map(|c| c.id)
                {
                    self.remove(pending);
                    self.events.push(Event::Close { conn: pending });
                }
                if self.conns.iter().all(|c| !c.outgoing) {
                    self.connect(now);
                }
            }
        }
        if let Some(stale) = self.stale.take_if(|s| s.deadline <= now) {
            self.events.push(Event::FlushStale(stale.families));
        }
        self.note_state(now);
    }

    fn connect(&mut self, now: Instant) {
        let id = self.new_conn_id();
        self.conns.push(Conn {
            id,
            outgoing: true,
            state: ConnState::Connecting,
            hold: None,
            keepalive: None,
            negotiated: None,
        });
        self.events.push(Event::Connect { conn: id });
        self.retry_at = Some(now + self.config.connect_retry);
    }

    fn schedule_retry(&mut self, now: Instant) {
        if self.started && !self.config.passive && self.retry_at.is_none() {
            self.retry_at = Some(now + self.config.connect_retry);
        }
    }

    fn new_conn_id(&mut self) -> ConnId {
        let id = self.next_conn;
        self.next_conn += 1;
        id
    }

    fn conn_mut(&mut self, conn: ConnId) -> Option<&mut Conn> {
        self.conns.iter_mut().find(|c| c.id == conn)
    }

    fn remove(&mut self, conn: ConnId) -> Option<Conn> {
        let i = self.conns.iter().position(|c| c.id == conn)?;
        Some(self.conns.remove(i))
    }

    /// Drops a connection, sending `notification` first if given. When it
    /// carried the session, the session goes down; `graceful_allowed` says
    /// whether graceful restart may keep the peer's routes.
    /// `reason` is what BIRD would show as the peer's info ("Socket: ...",
    /// "Received: ...", "BGP Error: ..."); `None` for routine closes such as
    /// collision resolution, which leave the last error as it was.
    fn fail(
        &mut self,
        conn: ConnId,
        notification: Option<Notification>,
        reason: Option<String>,
        graceful_allowed: bool,
        now: Instant,
    ) {
        let Some(c) = self.remove(conn) else {
            return;
        };
        if let Some(n) = notification {
            self.events.push(Event::Send {
                conn,
                message: Message::Notification(n),
            });
        }
        self.events.push(Event::Close { conn });
        if c.state == ConnState::Established {
            let negotiated = c
                .negotiated
                .expect("established connections are negotiated");
            let why = reason
                .clone()
                .unwrap_or_else(|| "Connection collision".to_string());
            self.session_down(&negotiated, why, graceful_allowed, now);
        }
        if reason.is_some() {
            self.last_error = reason;
        }
        self.schedule_retry(now);
        self.note_state(now);
    }

    fn session_down(
        &mut self,
        negotiated: &Negotiated,
        reason: String,
        graceful_allowed: bool,
        now: Instant,
    ) {
        let mut graceful = Vec::new();
        let mut stale_for = Duration::ZERO;
        if graceful_allowed
            && let (Some(ours), Some(theirs)) = (
                &self.config.graceful_restart,
                &negotiated.remote_graceful_restart,
            )
        {
            stale_for = Duration::from_secs(theirs.restart_time.into()).min(ours.max_restart_time);
            if !stale_for.is_zero() {
                graceful = theirs
                    .families
                    .iter()
                    .map(|f| f.family)
                    .filter(|f| negotiated.families.contains(f))
                    .collect();
            }
        }
        if graceful.is_empty() {
            self.stale = None;
        } else {
            self.stale = Some(Stale {
                deadline: now + stale_for,
                families: graceful.clone(),
            });
        }
        self.events.push(Event::Down {
            reason,
            graceful,
            stale_for,
        });
    }

    fn unexpected(&mut self, conn: ConnId, message: &Message, subcode: u8, now: Instant) {
        let notification = Notification::new(code::FSM, subcode, Vec::new());
        tracing::debug!(message_type = message.type_code(), "unexpected message");
        let reason = format!("BGP Error: {}", notification.describe());
        self.fail(conn, Some(notification), Some(reason), false, now);
    }

    fn on_open(&mut self, conn: ConnId, open: Open, now: Instant) {
        let reject = |subcode: u8, data: Vec<u8>, detail: String| {
            (Notification::new(code::OPEN_MESSAGE, subcode, data), detail)
        };
        let problem = if open.asn() != self.config.remote_as {
            Some(reject(
                open_error::BAD_PEER_AS,
                open.my_as.to_be_bytes().to_vec(),
                format!(
                    "peer is AS {}, expected AS {}",
                    open.asn(),
                    self.config.remote_as
                ),
            ))
        } else if open.bgp_id.is_unspecified()
            || (self.config.is_internal() && open.bgp_id == self.config.local_id)
        {
            Some(reject(
                open_error::BAD_BGP_IDENTIFIER,
                open.bgp_id.octets().to_vec(),
                format!("peer's router id {} is not acceptable", open.bgp_id),
            ))
        } else {
            None
        };
        if let Some((notification, detail)) = problem {
            tracing::warn!(%detail, "refusing the peer's OPEN");
            let reason = format!("BGP Error: {}", notification.describe());
            self.fail(conn, Some(notification), Some(reason), false, now);
            return;
        }
        let negotiated = self.negotiate(&open);

        // Collision detection (RFC 4271 §6.8).
        let others: Vec<(ConnId, ConnState)> = self
            .conns
            .iter()
            .filter(|c| c.id != conn)
            .map(|c| (c.id, c.state))
            .collect();
        let this_outgoing = self
            .conns
            .iter()
            .find(|c| c.id == conn)
            .is_some_and(|c| c.outgoing);
        let collision = Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION);
        for (other, state) in others {
            match state {
                ConnState::Connecting => {
                    self.remove(other);
                    self.events.push(Event::Close { conn: other });
                }
                ConnState::Established => {
                    let restarting = self
                        .conns
                        .iter()
                        .find(|c| c.id == other)
                        .and_then(|c| c.negotiated.as_ref())
                        .is_some_and(|n| n.remote_graceful_restart.is_some());
                    if restarting {
                        // The peer came back before we noticed it had gone:
                        // RFC 4724 §4.2 treats the old session as ended.
                        self.fail(
                            other,
                            None,
                            Some("Socket: Peer restarted".to_string()),
                            true,
                            now,
                        );
                    } else {
                        self.fail(conn, Some(collision), None, false, now);
                        return;
                    }
                }
                ConnState::OpenSent | ConnState::OpenConfirm => {
                    // Keep the connection initiated by the speaker with the
                    // higher BGP identifier.
                    let keep_outgoing = self.config.local_id > open.bgp_id;
                    let loser = if this_outgoing == keep_outgoing {
                        other
                    } else {
                        conn
                    };
                    self.fail(loser, Some(collision.clone()), None, false, now);
                    if loser == conn {
                        return;
                    }
                }
            }
        }
        let Some(c) = self.conn_mut(conn) else {
            return;
        };
        c.state = ConnState::OpenConfirm;
        if negotiated.hold_time > 0 {
            c.hold = Some(now + Duration::from_secs(negotiated.hold_time.into()));
            c.keepalive = Some(now + negotiated.keepalive);
        } else {
            c.hold = None;
            c.keepalive = None;
        }
        c.negotiated = Some(negotiated);
        self.events.push(Event::Send {
            conn,
            message: Message::Keepalive,
        });
    }

    fn negotiate(&self, open: &Open) -> Negotiated {
        let hold_time = self.config.hold_time.min(open.hold_time);
        let third = Duration::from_secs(u64::from(hold_time / 3).max(1));
        let keepalive = match self.config.keepalive_time {
            Some(k) => Duration::from_secs(k.max(1).into()).min(third),
            None => third,
        };
        let theirs = open.families();
        Negotiated {
            remote_id: open.bgp_id,
            remote_as: open.asn(),
            hold_time,
            keepalive,
            four_octet_as: open.four_octet_as().is_some(),
            families: self
                .config
                .families
                .iter()
                .copied()
                .filter(|f| theirs.contains(f))
                .collect(),
            route_refresh: open.route_refresh(),
            remote_graceful_restart: self
                .config
                .graceful_restart
                .as_ref()
                .and(open.graceful_restart().cloned()),
        }
    }

    fn on_established(&mut self, conn: ConnId, now: Instant) {
        let Some(c) = self.conn_mut(conn) else {
            return;
        };
        c.state = ConnState::Established;
        let negotiated = c
            .negotiated
            .clone()
            .expect("OpenConfirm connections are negotiated");
        // Any other connection still opening loses to this one.
        let others: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|c| c.id != conn)
            .map(|c| c.id)
            .collect();
        for other in others {
            self.fail(
                other,
                Some(Notification::cease(cease::CONNECTION_COLLISION_RESOLUTION)),
                None,
                false,
                now,
            );
        }
        self.retry_at = None;
        self.last_error = None;
        self.events.push(Event::Established(negotiated.clone()));
        // RFC 4724 §4.2: stale routes of a family the restarted peer did
        // not keep forwarding state for go at once; the others wait for its
        // End-of-RIB.
        if let Some(stale) = &mut self.stale {
            let kept: Vec<Family> = negotiated
                .remote_graceful_restart
                .iter()
                .flat_map(|gr| gr.families.iter())
                .filter(|f| f.forwarding_preserved())
                .map(|f| f.family)
                .collect();
            let (wait, flush): (Vec<Family>, Vec<Family>) =
                stale.families.iter().partition(|f| kept.contains(f));
            stale.families = wait;
            if !flush.is_empty() {
                self.events.push(Event::FlushStale(flush));
            }
            if self.stale.as_ref().is_some_and(|s| s.families.is_empty()) {
                self.stale = None;
            }
        }
        self.note_state(now);
    }

    fn on_routes(&mut self, received: Received) {
        if let (Some(family), Some(stale)) = (received.end_of_rib, &mut self.stale)
            && let Some(i) = stale.families.iter().position(|f| *f == family)
        {
            stale.families.remove(i);
            self.events.push(Event::FlushStale(vec![family]));
            if stale.families.is_empty() {
                self.stale = None;
            }
        }
        self.events.push(Event::Routes(received));
    }

    fn note_state(&mut self, now: Instant) {
        let state = self.state();
        if state != self.reported_state || self.state_since.is_none() {
            self.reported_state = state;
            self.state_since = Some(now);
        }
    }
}

/// An I/O error as BIRD words it: "Connection refused", without Rust's
/// "(os error 111)".
fn socket_error(reason: &str) -> String {
    if reason == "closed by peer" {
        return "Connection closed".to_string();
    }
    let text = match reason.find(" (os error") {
        Some(i) => &reason[..i],
        None => reason,
    };
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
